//! Shared helpers for the bench binaries (`harness = false`): percentiles, machine facts,
//! scratch directories, synthetic ticket records.
//!
//! Every bench prints plain text lines meant to be pasted into BENCHMARKS.md.

#![allow(dead_code)] // each bench binary uses a different subset

use std::path::PathBuf;
use std::time::Duration;

use concession_agent::ticket::{TicketInfo, TicketRecord, TicketStatus, ValueKind, ValueLine};

/// A set of timed samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    v: Vec<Duration>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples {
            v: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.v.push(d);
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100).
    pub fn pct(&self, p: f64) -> Duration {
        if self.v.is_empty() {
            return Duration::ZERO;
        }
        let mut s = self.v.clone();
        s.sort_unstable();
        let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[rank.clamp(1, s.len()) - 1]
    }

    pub fn mean(&self) -> Duration {
        if self.v.is_empty() {
            return Duration::ZERO;
        }
        self.v.iter().sum::<Duration>() / self.v.len() as u32
    }

    pub fn max(&self) -> Duration {
        self.v.iter().copied().max().unwrap_or_default()
    }

    pub fn min(&self) -> Duration {
        self.v.iter().copied().min().unwrap_or_default()
    }

    /// `name  n=..  min .. p50 .. p90 .. p99 .. max .. mean ..` in ms.
    pub fn line(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            self.len(),
            ms(self.min()),
            ms(self.pct(50.0)),
            ms(self.pct(90.0)),
            ms(self.pct(99.0)),
            ms(self.max()),
            ms(self.mean()),
        )
    }
}

/// The header matching [`Samples::line`].
pub const TABLE_HEAD: &str = "| what | n | min ms | p50 ms | p90 ms | p99 ms | max ms | mean ms |\n|---|---|---|---|---|---|---|---|";

/// Milliseconds with 3 decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// An integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// nproc, CPU model, load average and the disk under `dir`.
pub fn machine(dir: &std::path::Path) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let disk = std::process::Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "machine: nproc {nproc}; cpu {cpu}; loadavg {}; disk under {}: {disk}",
        load.trim(),
        dir.display()
    )
}

/// A fresh scratch directory under cargo's target tmp dir (same disk as the project).
pub fn scratch() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&base);
    tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("cannot make a scratch dir: {e}"))
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
pub fn rss_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// A redeemable EVENT01 ticket dated `today` with `cents` of money, fetched at `now_ms`.
pub fn record(barcode: &str, today: &str, cents: u64, now_ms: u64) -> TicketRecord {
    TicketRecord {
        barcode: barcode.to_string(),
        info: Some(TicketInfo {
            barcode: barcode.to_string(),
            event_name: "EVENT01".into(),
            event_date: Some(today.to_string()),
            event_time: Some("19:05".into()),
            acct_id: Some(100_479),
            section_name: Some("101".into()),
            row_name: Some("F".into()),
            seat_num: Some("12".into()),
            price_code: Some("A".into()),
            status: TicketStatus::Active,
        }),
        value: vec![ValueLine {
            av_id: format!("AV{barcode}"),
            kind: ValueKind::Money,
            description: "Food and beverage credit".into(),
            loaded: cents,
            balance: cents,
            valid_from: None,
            valid_until: None,
        }],
        fetched_at_ms: now_ms,
    }
}

/// The i-th synthetic barcode (12 digits).
pub fn barcode(i: usize) -> String {
    format!("{:012}", 300_000_000_000u64 + i as u64)
}

/// A tiny deterministic RNG (splitmix64) so runs are repeatable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The store options the benches use: the shipped default, with `CACHE_MB` overriding
/// sled's cache capacity; prints what it chose.
pub fn store_options() -> concession_agent::store::StoreOptions {
    let mut opts = concession_agent::store::StoreOptions::default();
    if let Some(mb) = std::env::var("CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        opts.cache_capacity_bytes = mb * 1024 * 1024;
    }
    println!(
        "sled cache_capacity_bytes {} ({} MiB)",
        opts.cache_capacity_bytes,
        opts.cache_capacity_bytes / (1024 * 1024)
    );
    opts
}
