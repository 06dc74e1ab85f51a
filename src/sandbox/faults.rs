//! Faults switched at runtime (Toxiproxy-style), and the seeded RNG that drives them.
//!
//! [`Faults`] is both the library type ([`super::SandboxHandle::set_faults`]) and the JSON
//! of `POST /__sandbox/faults`. Faults apply to ATS calls only, never to `/__sandbox/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::server::http::Response;

/// Faults to inject into ATS calls. Every field defaults to "off"; `{}` clears all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every ATS answer (through the sandbox clock).
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Every command goes through a 202 cycle that lasts this long.
    pub force_202_ms: Option<u64>,
    /// Fraction of ATS calls answered 503 (0..=1), drawn from the seeded RNG.
    pub status_503_rate: f64,
    /// Seed of the RNG behind `status_503_rate` and jitter (default fixed).
    pub seed: Option<u64>,
    /// Read the request, then close the connection without answering.
    pub drop_connection: bool,
    /// Read the request and never answer, until this fault is cleared (then close).
    pub black_hole: bool,
    /// Command answers are truncated, garbage JSON with status 200.
    pub malformed_body: bool,
    /// Command answers are padded to at least this many bytes (still valid JSON).
    pub oversized_body_bytes: Option<usize>,
    /// Command answers announce a longer `Content-Length` than they send, then close.
    pub truncate_body: bool,
    /// Overrides the per-minute rate limit.
    pub rate_per_minute: Option<u32>,
    /// Overrides the per-day rate limit.
    pub rate_per_day: Option<u32>,
    /// The next N ATS calls answer 503 (counts down; reads back what is left).
    pub fail_next: u32,
    /// Every 202 answer hands out a new `QTKN`; the old one is forgotten.
    pub rotate_qtkn: bool,
    /// `get_av_barcodes` answers send every row twice (a broken or hostile server).
    pub duplicate_av_rows: bool,
    /// Event listings read `prev_barcode` inclusively: each chunk starts with the last
    /// ticket of the previous one (pages overlap by one ticket).
    pub inclusive_prev_barcode: bool,
    /// `ping`'s `server_date` / `server_time` are this far from the sandbox's clock
    /// (ms, either sign): the terminal's clock then looks that far off.
    pub server_clock_offset_ms: i64,
}

impl Faults {
    /// True when no fault is active.
    pub fn is_clear(&self) -> bool {
        *self == Faults::default()
    }

    /// Checks ranges; the admin API answers 400 with this message.
    pub fn validate(&self) -> Result<(), String> {
        if !self.status_503_rate.is_finite() || !(0.0..=1.0).contains(&self.status_503_rate) {
            return Err("status_503_rate must be between 0 and 1".into());
        }
        Ok(())
    }

    /// Brings out-of-range values into range.
    pub fn clamped(mut self) -> Faults {
        if !self.status_503_rate.is_finite() {
            self.status_503_rate = 0.0;
        }
        self.status_503_rate = self.status_503_rate.clamp(0.0, 1.0);
        self
    }
}

/// Faults plus the RNG state they draw from.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    pub rng: Rng,
}

impl FaultState {
    pub fn new(faults: Faults) -> FaultState {
        let rng = Rng::new(faults.seed.unwrap_or(0x5eed_5eed));
        FaultState { faults, rng }
    }

    /// Decides whether this call gets a 503 (consumes `fail_next`, draws the RNG).
    pub fn take_503(&mut self) -> bool {
        if self.faults.fail_next > 0 {
            self.faults.fail_next -= 1;
            return true;
        }
        let rate = self.faults.status_503_rate;
        rate > 0.0 && self.rng.next_f64() < rate
    }

    /// Latency for this call, jitter included, in ms.
    pub fn latency_ms(&mut self) -> u64 {
        let j = self.faults.jitter_ms;
        let jitter = if j > 0 {
            self.rng.next_u64() % (j + 1)
        } else {
            0
        };
        self.faults.latency_ms.saturating_add(jitter)
    }
}

/// splitmix64: small, seedable, good enough for fault dice and tokens.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the process's random hasher keys (for cookie tokens).
    pub fn from_entropy() -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9);
        Rng(h.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 32 hex characters.
    pub fn token(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

/// Applies the body faults (`oversized_body_bytes`, `malformed_body`, `truncate_body`)
/// of `f` to an answer: shared by the ATS gateway and the Presence route.
pub fn apply_body_faults(f: &Faults, mut resp: Response) -> Response {
    if let Some(n) = f.oversized_body_bytes {
        if resp.body.len() < n {
            if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(&resp.body) {
                let pad = n.saturating_sub(resp.body.len() + 16);
                m.insert("padding".into(), Value::String("x".repeat(pad)));
                resp.body = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
            }
        }
    }
    if f.malformed_body {
        let keep = resp.body.len() / 2;
        resp.body.truncate(keep);
        resp.body.extend_from_slice(b"\x00<<garbage ]]}");
    }
    if f.truncate_body {
        resp.truncate = true;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_deterministic_for_a_seed() {
        let f = Faults {
            status_503_rate: 0.5,
            seed: Some(7),
            ..Faults::default()
        };
        let draw = |f: &Faults| {
            let mut s = FaultState::new(f.clone());
            (0..200).map(|_| s.take_503()).collect::<Vec<_>>()
        };
        let a = draw(&f);
        assert_eq!(a, draw(&f));
        let n = a.iter().filter(|x| **x).count();
        assert!((60..140).contains(&n), "{n}");
    }

    #[test]
    fn fail_next_counts_down() {
        let mut s = FaultState::new(Faults {
            fail_next: 2,
            ..Faults::default()
        });
        assert!(s.take_503());
        assert!(s.take_503());
        assert!(!s.take_503());
        assert_eq!(s.faults.fail_next, 0);
    }

    #[test]
    fn validates_and_rejects_unknown_fields() {
        let f: Faults = serde_json::from_str("{}").unwrap_or_else(|_| Faults {
            black_hole: true,
            ..Faults::default()
        });
        assert!(f.is_clear());
        assert!(serde_json::from_str::<Faults>(r#"{"latency":1}"#).is_err());
        let bad = Faults {
            status_503_rate: 1.5,
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        assert_eq!(bad.clamped().status_503_rate, 1.0);
    }
}
