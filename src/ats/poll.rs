//! The wait between polls of a 202 cycle: starts at `poll_initial`, grows x1.5 per
//! poll up to `poll_max`. Pure; the client sleeps on its injected clock.

use std::time::Duration;

/// Successive poll waits.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            next: initial.min(max),
            max,
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let w = self.next;
        self.next = w.checked_mul(3).map_or(self.max, |d| d / 2).min(self.max);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(300), Duration::from_secs(1));
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![300, 450, 675, 1000, 1000]);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(b.next_wait(), Duration::MAX);
        assert_eq!(b.next_wait(), Duration::MAX);
    }
}
