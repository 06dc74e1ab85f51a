//! The Presence client: one `ticket/validate` call, deadline-bounded.
//!
//! House rules, as for the ATS client: the call takes one unit of the Presence key's own
//! budget before it is sent; the whole exchange is bounded by the caller's deadline
//! (the scan's decision deadline, never more); redirects are never followed; plain
//! http only to loopback, otherwise TLS with the system trust store or `ca_file`. The
//! key travels in the `apikey` query parameter (as Presence documents), so every text
//! that could carry the URL (ureq's errors, echoed bodies) is scrubbed of it before it
//! becomes an error, and nothing here logs the token or the key.

use std::time::{Duration, Instant};

use ureq::Agent;

use crate::ats::http::{read_capped, CappedRead};
use crate::clock::SharedClock;

use super::budget::PresenceBudget;
use super::config::{PresenceConfig, PresenceEndpoint};
use super::error::{scrub, Phase, PresenceError};
use super::wire::{self, Validation};

/// A client for Presence `ticket/validate`. `Send + Sync`.
pub struct PresenceClient {
    cfg: PresenceConfig,
    endpoint: PresenceEndpoint,
    agent: Agent,
    budget: PresenceBudget,
    clock: SharedClock,
    /// Calls by result, for the status and metrics (as the ATS client's).
    calls: [std::sync::atomic::AtomicU64; 3],
}

impl std::fmt::Debug for PresenceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceClient")
            .field("url", &self.endpoint.url)
            .field("apikey", &"***")
            .finish_non_exhaustive()
    }
}

impl PresenceClient {
    /// Validates `cfg` and builds the HTTP agent (TLS roots read here).
    pub fn new(cfg: PresenceConfig, clock: SharedClock) -> Result<PresenceClient, PresenceError> {
        let endpoint = cfg.validate()?;
        let tls = crate::ats::tls_config(cfg.ca_file.as_deref(), endpoint.tls)
            .map_err(|e| PresenceError::Config(e.to_string()))?;
        let proxy = if endpoint.loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .https_only(false)
            .tls_config(tls)
            .proxy(proxy)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(cfg.connect_timeout))
            .user_agent(concat!("concession-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let budget = PresenceBudget::new(cfg.rate_per_minute, cfg.rate_per_day);
        Ok(PresenceClient {
            cfg,
            endpoint,
            agent,
            budget,
            clock,
            calls: Default::default(),
        })
    }

    /// Presence calls since the client was built, by result: `ok` (an answer, whatever
    /// its status), `rate_limited` (the local budget or a 429), `failed` (the rest).
    pub fn call_counts(&self) -> crate::ats::CallCounts {
        use std::sync::atomic::Ordering::Relaxed;
        crate::ats::CallCounts {
            ok: self.calls[0].load(Relaxed),
            rate_limited: self.calls[1].load(Relaxed),
            failed: self.calls[2].load(Relaxed),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PresenceConfig {
        &self.cfg
    }

    /// The route posted to (without the key).
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Presence calls left now: (this minute, this day).
    pub fn budget_remaining(&self) -> (u32, u32) {
        self.budget.remaining(self.clock.now())
    }

    /// Asks Presence about `payload` (the whole scanned SafeTix text), read at
    /// `scan_time_ms`, answering by `deadline` at the latest. A `result.status` other
    /// than `OKAY` is an answer (`Ok`), not an error.
    pub fn validate(
        &self,
        payload: &str,
        scan_time_ms: u64,
        deadline: Instant,
    ) -> Result<Validation, PresenceError> {
        let r = self.validate_once(payload, scan_time_ms, deadline);
        let which = match &r {
            Ok(_) => 0,
            Err(PresenceError::RateBudget { .. } | PresenceError::Http { status: 429, .. }) => 1,
            Err(_) => 2,
        };
        self.calls[which].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r
    }

    fn validate_once(
        &self,
        payload: &str,
        scan_time_ms: u64,
        deadline: Instant,
    ) -> Result<Validation, PresenceError> {
        let now = self.clock.now();
        let within = deadline.saturating_duration_since(now);
        if within.is_zero() {
            return Err(PresenceError::Timeout {
                after: Duration::ZERO,
            });
        }
        self.budget.acquire(now)?;
        let key = self.cfg.apikey.expose();
        let body = wire::validate_body(payload, &self.cfg.device, scan_time_ms);
        let result = self.post(&body, within);
        // Nothing from outside keeps the key or the payload.
        let result = result.map_err(|e| scrub_error(e, key, payload));
        let (status, bytes) = result?;
        match status {
            200 => wire::parse_answer(&bytes).map_err(|e| scrub_error(e, key, payload)),
            401 | 403 => Err(PresenceError::Unauthorized {
                message: scrub(&text(&bytes, payload), key),
            }),
            s => {
                if s == 429 {
                    self.budget.close(self.clock.now());
                }
                Err(PresenceError::Http {
                    status: s,
                    message: scrub(&text(&bytes, payload), key),
                })
            }
        }
    }

    fn post(&self, body: &str, within: Duration) -> Result<(u16, Vec<u8>), PresenceError> {
        // The key is URL-safe (checked by `validate`), so it needs no encoding; the URL
        // with it lives only for this call.
        let url = format!("{}?apikey={}", self.endpoint.url, self.cfg.apikey.expose());
        let req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(Some(within))
            .build();
        let mut resp = req.send(body).map_err(|e| classify(e, within))?;
        let status = resp.status().as_u16();
        let limit = self.cfg.max_response_bytes;
        let bytes = read_capped(&mut resp, limit).map_err(|e| match e {
            CappedRead::TooLarge => PresenceError::TooLarge { limit },
            CappedRead::Failed(other) => match classify(other, within) {
                PresenceError::Transport { detail, .. } => PresenceError::Transport {
                    phase: Phase::Receive,
                    detail,
                },
                mapped => mapped,
            },
        })?;
        Ok((status, bytes))
    }
}

/// A body as text for an error, with the payload masked out (a server may echo it).
fn text(bytes: &[u8], payload: &str) -> String {
    let t = String::from_utf8_lossy(bytes);
    if payload.is_empty() {
        t.into_owned()
    } else {
        t.replace(payload, "<payload>")
    }
}

fn scrub_error(e: PresenceError, key: &str, payload: &str) -> PresenceError {
    let clean = |s: String| scrub(&s.replace(payload, "<payload>"), key);
    match e {
        PresenceError::Transport { phase, detail } => PresenceError::Transport {
            phase,
            detail: clean(detail),
        },
        PresenceError::Decode(m) => PresenceError::Decode(clean(m)),
        PresenceError::Http { status, message } => PresenceError::Http {
            status,
            message: clean(message),
        },
        other => other,
    }
}

/// Names the phase of a ureq error.
fn classify(e: ureq::Error, within: Duration) -> PresenceError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let transport = |phase: Phase, e: &E| PresenceError::Transport {
        phase,
        detail: e.to_string(),
    };
    match &e {
        E::Timeout(T::Global | T::PerCall) => PresenceError::Timeout { after: within },
        E::Timeout(T::Resolve | T::Connect) => transport(Phase::Connect, &e),
        E::Timeout(T::SendRequest | T::SendBody | T::PerWrite) => transport(Phase::Send, &e),
        E::Timeout(_) => transport(Phase::Receive, &e),
        E::HostNotFound | E::ConnectionFailed => transport(Phase::Connect, &e),
        E::Tls(_) | E::Pem(_) | E::Rustls(_) => transport(Phase::Tls, &e),
        E::Io(io) => {
            let phase = match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable => Phase::Connect,
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::WriteZero => Phase::Send,
                _ if io
                    .get_ref()
                    .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some()) =>
                {
                    Phase::Tls
                }
                _ => Phase::Receive,
            };
            transport(phase, &e)
        }
        _ => transport(Phase::Receive, &e),
    }
}
