//! Rate limits: a per-minute and a per-day fixed window, and their response headers.
//!
//! Headers follow the Ticketmaster gateway: `Rate-Limit` (the window's limit),
//! `Rate-Limit-Available` (calls left), `Rate-Limit-Over` (calls refused in the window)
//! and `Rate-Limit-Reset` (wall time in ms since the epoch when the window restarts).
//! They describe whichever window has fewer calls left (the day window on a tie).
//! Refused calls do not use up quota.

use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Default, Clone)]
struct Window {
    start: Option<(Instant, u64)>,
    count: u32,
    over: u32,
}

impl Window {
    fn roll(&mut self, len: Duration, now: Instant, wall_ms: u64) {
        let expired = match self.start {
            Some((s, _)) => now.saturating_duration_since(s) >= len,
            None => true,
        };
        if expired {
            *self = Window {
                start: Some((now, wall_ms)),
                count: 0,
                over: 0,
            };
        }
    }

    fn reset_ms(&self, len: Duration) -> u64 {
        self.start.map(|(_, w)| w).unwrap_or(0) + len.as_millis() as u64
    }
}

/// The verdict on one call, with the headers to send.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub headers: Vec<(String, String)>,
}

/// Both windows of the one sandbox key.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    minute: Window,
    day: Window,
}

impl RateLimiter {
    pub fn check(&mut self, now: Instant, wall_ms: u64, per_min: u32, per_day: u32) -> Verdict {
        self.minute.roll(MINUTE, now, wall_ms);
        self.day.roll(DAY, now, wall_ms);
        let allowed = self.minute.count < per_min && self.day.count < per_day;
        if allowed {
            self.minute.count += 1;
            self.day.count += 1;
        } else {
            if self.minute.count >= per_min {
                self.minute.over += 1;
            }
            if self.day.count >= per_day {
                self.day.over += 1;
            }
        }
        let min_left = per_min.saturating_sub(self.minute.count);
        let day_left = per_day.saturating_sub(self.day.count);
        let (limit, left, w, len) = if day_left <= min_left {
            (per_day, day_left, &self.day, DAY)
        } else {
            (per_min, min_left, &self.minute, MINUTE)
        };
        let headers = vec![
            ("Rate-Limit".to_string(), limit.to_string()),
            ("Rate-Limit-Available".to_string(), left.to_string()),
            ("Rate-Limit-Over".to_string(), w.over.to_string()),
            ("Rate-Limit-Reset".to_string(), w.reset_ms(len).to_string()),
        ];
        Verdict { allowed, headers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(v: &'a Verdict, name: &str) -> &'a str {
        v.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn minute_window_refuses_then_rolls_over() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.check(t0, 1_000, 2, 100).allowed);
        let v = rl.check(t0, 1_000, 2, 100);
        assert!(v.allowed);
        assert_eq!(header(&v, "Rate-Limit-Available"), "0");
        let v = rl.check(t0, 1_000, 2, 100);
        assert!(!v.allowed);
        assert_eq!(header(&v, "Rate-Limit"), "2");
        assert_eq!(header(&v, "Rate-Limit-Over"), "1");
        assert_eq!(header(&v, "Rate-Limit-Reset"), "61000");
        let v = rl.check(t0 + MINUTE, 61_000, 2, 100);
        assert!(v.allowed);
        assert_eq!(header(&v, "Rate-Limit-Available"), "1");
    }

    #[test]
    fn day_window_counts_across_minutes() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.check(t0, 0, 80, 2).allowed);
        assert!(rl.check(t0 + MINUTE, 60_000, 80, 2).allowed);
        let v = rl.check(t0 + MINUTE * 2, 120_000, 80, 2);
        assert!(!v.allowed);
        assert_eq!(header(&v, "Rate-Limit"), "2");
        assert_eq!(header(&v, "Rate-Limit-Reset"), "86400000");
    }
}
