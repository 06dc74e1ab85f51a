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

#[cfg(test)]
mod tests {
    use super::*;

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
