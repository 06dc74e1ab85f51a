//! Time as a dependency.
//!
//! Everything that waits or stamps (202 polling back-off, the decision deadline, GPIO
//! blink patterns, the sandbox's 202 cycle, cache ages) reads time through [`Clock`], so
//! tests drive time with [`ManualClock`] instead of sleeping for real.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of monotonic time, wall time and sleeping.
pub trait Clock: Send + Sync {
    /// Monotonic now, for deadlines and intervals.
    fn now(&self) -> Instant;
    /// Wall-clock time as milliseconds since the Unix epoch, for records and journals.
    fn wall_ms(&self) -> u64;
    /// Blocks the calling thread for `d` (a manual clock advances instead).
    fn sleep(&self, d: Duration);
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// The real clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to (or when something sleeps on it).
///
/// `sleep` advances the clock by the requested duration and returns at once, so code
/// that polls with back-off runs instantly in tests while seeing the time it asked for.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    base: Instant,
    offset: Duration,
    wall_base_ms: u64,
    slept: Vec<Duration>,
}

impl ManualClock {
    /// A manual clock whose wall time starts at `wall_start_ms`.
    pub fn new(wall_start_ms: u64) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                base: Instant::now(),
                offset: Duration::ZERO,
                wall_base_ms: wall_start_ms,
                slept: Vec::new(),
            })),
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.lock().offset += d;
    }

    /// Time elapsed on this clock since it was made.
    pub fn elapsed(&self) -> Duration {
        self.lock().offset
    }

    /// Every duration passed to `sleep`, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().slept.clone()
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A poisoned clock is still a valid clock: the state is plain numbers.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let s = self.lock();
        s.base + s.offset
    }
    fn wall_ms(&self) -> u64 {
        let s = self.lock();
        s.wall_base_ms + s.offset.as_millis() as u64
    }
    fn sleep(&self, d: Duration) {
        let mut s = self.lock();
        s.offset += d;
        s.slept.push(d);
    }
}

/// No wall clock this agent runs under reads earlier than this (2024-01-01 UTC): a
/// board whose clock reset to 1970 is wrong before any server is asked.
pub const EARLIEST_PLAUSIBLE_WALL_MS: u64 = 1_704_067_200_000;

/// The default largest disagreement with ATS's clock still trusted
/// (`health.max_clock_skew_ms`): 5 minutes.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// What the terminal knows about its own wall clock.
///
/// Ages of cached records, offline windows and "today" are read from the wall clock;
/// a clock that stepped (a board without a battery at 1970, an NTP correction of
/// hours) would make old data young and move money. ATS's `ping` answers carry the
/// server's time ([`crate::ats::wire::server_clock_ms`]); the client keeps the latest
/// skew and [`ClockState::judge`] turns it into a verdict. Pure: time comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    /// Never compared with ATS, and plausible: trusted (an agent that starts offline
    /// must still serve), but reported as unchecked.
    Unchecked,
    /// Within `max_skew_ms` of ATS's clock at the last comparison.
    Agrees {
        /// Local minus server, ms.
        skew_ms: i64,
    },
    /// Off by more than `max_skew_ms` from ATS's clock, or before
    /// [`EARLIEST_PLAUSIBLE_WALL_MS`]: not trusted.
    Wrong {
        /// Local minus server, ms (`None`: no server reading, the clock is implausible).
        skew_ms: Option<i64>,
    },
}

impl ClockState {
    /// Judges the clock from the latest skew (local minus server, ms) and the local
    /// wall time now.
    pub fn judge(skew_ms: Option<i64>, max_skew_ms: u64, wall_ms: u64) -> ClockState {
        let too_far = |s: i64| s.unsigned_abs() > max_skew_ms;
        match skew_ms {
            Some(s) if too_far(s) => ClockState::Wrong { skew_ms: Some(s) },
            _ if wall_ms < EARLIEST_PLAUSIBLE_WALL_MS => ClockState::Wrong { skew_ms },
            Some(s) => ClockState::Agrees { skew_ms: s },
            None => ClockState::Unchecked,
        }
    }

    /// True unless the clock is known to be wrong.
    pub fn is_trusted(self) -> bool {
        !matches!(self, ClockState::Wrong { .. })
    }

    /// For status lines and logs: `ok`, `unchecked`, or `wrong (+36000 s)`.
    pub fn describe(self) -> String {
        match self {
            ClockState::Unchecked => "unchecked".into(),
            ClockState::Agrees { .. } => "ok".into(),
            ClockState::Wrong { skew_ms: Some(s) } => {
                format!("wrong ({:+} s against ATS)", s / 1000)
            }
            ClockState::Wrong { skew_ms: None } => "wrong (before 2024)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_far_from_the_servers_or_at_1970_is_not_trusted() {
        let now = 1_796_117_405_000;
        let max = DEFAULT_MAX_CLOCK_SKEW_MS;
        assert_eq!(ClockState::judge(None, max, now), ClockState::Unchecked);
        assert!(ClockState::judge(Some(60_000), max, now).is_trusted());
        assert!(ClockState::judge(Some(-299_000), max, now).is_trusted());
        assert!(!ClockState::judge(Some(36_000_000), max, now).is_trusted());
        assert!(!ClockState::judge(Some(-36_000_000), max, now).is_trusted());
        assert!(!ClockState::judge(None, max, 5_000).is_trusted());
        assert!(!ClockState::judge(Some(0), max, 5_000).is_trusted());
        assert_eq!(
            ClockState::judge(Some(36_000_000), max, now).describe(),
            "wrong (+36000 s against ATS)"
        );
    }

    #[test]
    fn manual_clock_advances_on_sleep_and_records_it() {
        let c = ManualClock::new(1_000);
        let t0 = c.now();
        c.sleep(Duration::from_millis(300));
        c.advance(Duration::from_millis(200));
        assert_eq!(c.now() - t0, Duration::from_millis(500));
        assert_eq!(c.wall_ms(), 1_500);
        assert_eq!(c.sleeps(), vec![Duration::from_millis(300)]);
    }
}
