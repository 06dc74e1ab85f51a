//! The Presence key's local rate budget.
//!
//! Presence has its own key and so its own quota, apart from the ATS key's: SafeTix
//! scans must not spend the budget that ATS lookups and prefetch share, nor the other
//! way round. The budget is the ATS client's rolling window ([`RateBudget`]) behind
//! its own lock; a 429 from Presence closes it for a minute (no reset is documented).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ats::RateBudget;

use super::error::PresenceError;

/// How long a 429 from Presence closes the budget.
pub const SERVER_CLOSURE: Duration = Duration::from_secs(60);

/// The Presence key's budget.
#[derive(Debug)]
pub struct PresenceBudget {
    inner: Mutex<RateBudget>,
}

impl PresenceBudget {
    /// `per_minute` calls in any 60 s, `per_day` in any 24 h.
    pub fn new(per_minute: u32, per_day: u32) -> PresenceBudget {
        PresenceBudget {
            inner: Mutex::new(RateBudget::new(per_minute, per_day)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateBudget> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one call, or refuses with [`PresenceError::RateBudget`].
    pub fn acquire(&self, now: Instant) -> Result<(), PresenceError> {
        self.lock()
            .try_acquire(now)
            .map_err(|(window, retry_in)| PresenceError::RateBudget { window, retry_in })
    }

    /// Presence answered 429: no call until the closure ends.
    pub fn close(&self, now: Instant) {
        self.lock().close_until(now + SERVER_CLOSURE);
    }

    /// Calls left now: (this minute, this day).
    pub fn remaining(&self, now: Instant) -> (u32, u32) {
        self.lock().remaining(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ats::RateWindow;

    #[test]
    fn refuses_past_the_minute_and_after_a_429() {
        let t0 = Instant::now();
        let b = PresenceBudget::new(2, 100);
        assert!(b.acquire(t0).is_ok());
        assert!(b.acquire(t0).is_ok());
        assert!(matches!(
            b.acquire(t0),
            Err(PresenceError::RateBudget {
                window: RateWindow::Minute,
                ..
            })
        ));
        let later = t0 + Duration::from_secs(61);
        assert!(b.acquire(later).is_ok());
        b.close(later);
        assert!(matches!(
            b.acquire(later),
            Err(PresenceError::RateBudget {
                window: RateWindow::Server,
                ..
            })
        ));
        assert_eq!(b.remaining(later), (0, 0));
    }
}
