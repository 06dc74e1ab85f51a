//! The sandbox's shared, mutable state: data, faults, poll tokens, rate windows, stats.
//!
//! One `State` is shared by every connection thread and the [`super::SandboxHandle`].
//! Each part sits behind its own mutex, held only for short, non-blocking work.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::SandboxConfig;
use super::data::{day_number, DataSet};
use super::error::SandboxError;
use super::faults::{FaultState, Faults};
use super::poll_table::PollTable;
use super::ratelimit::RateLimiter;
use super::stats::Stats;
use crate::clock::SharedClock;
use crate::sync::lock;

/// Shared state of one sandbox.
pub(crate) struct State {
    pub apikey: String,
    pub dsn: String,
    pub products: Vec<String>,
    pub resource: String,
    pub rate_per_minute: u32,
    pub rate_per_day: u32,
    pub clock: SharedClock,
    pub sync_threshold: Duration,
    /// Today's day number (days since 1970-01-01), fixed at start.
    pub today: i64,
    pub started: Instant,
    pub tls: bool,
    original: DataSet,
    initial_faults: Faults,
    pub data: Mutex<DataSet>,
    pub faults: Mutex<FaultState>,
    pub polls: Mutex<PollTable>,
    pub limiter: Mutex<RateLimiter>,
    pub stats: Mutex<Stats>,
    /// ATS requests being handled right now (for `ping`).
    pub active: AtomicUsize,
    /// The Presence emulation (`presence.rs`).
    pub presence: super::presence::PresenceState,
}

impl State {
    pub fn new(cfg: &SandboxConfig) -> State {
        let faults = cfg.faults.clone().clamped();
        State {
            apikey: cfg.apikey.clone(),
            dsn: cfg.dsn.clone(),
            products: cfg.products.clone(),
            resource: cfg.resource.clone(),
            rate_per_minute: cfg.rate_per_minute,
            rate_per_day: cfg.rate_per_day,
            clock: cfg.clock.clone(),
            sync_threshold: cfg.sync_threshold,
            today: day_number(cfg.clock.wall_ms(), cfg.utc_offset_minutes),
            started: cfg.clock.now(),
            tls: cfg.tls.is_some(),
            original: cfg.data.clone(),
            initial_faults: faults.clone(),
            data: Mutex::new(cfg.data.clone()),
            faults: Mutex::new(FaultState::new(faults)),
            polls: Mutex::new(PollTable::default()),
            limiter: Mutex::new(RateLimiter::default()),
            stats: Mutex::new(Stats::default()),
            active: AtomicUsize::new(0),
            presence: Default::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
    }

    pub fn with_data<R>(
        &self,
        f: impl FnOnce(&mut DataSet) -> Result<R, SandboxError>,
    ) -> Result<R, SandboxError> {
        f(&mut lock(&self.data))
    }

    pub fn reset(&self) {
        *lock(&self.data) = self.original.clone();
        *lock(&self.faults) = FaultState::new(self.initial_faults.clone());
        *lock(&self.polls) = PollTable::default();
        *lock(&self.limiter) = RateLimiter::default();
        *lock(&self.stats) = Stats::default();
        self.presence.reset();
    }

    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}
