//! The client-side rate budget of one API key.
//!
//! ATS allows 80 calls a minute and 5000 a day per key, and every poll of a 202 cycle
//! is a call. The client keeps rolling windows of its own sends and refuses locally,
//! before any I/O, when a window is full. It also honours what the gateway says:
//! `Rate-Limit-Available: 0` or `Rate-Limit-Over` > 0 close the budget until
//! `Rate-Limit-Reset`, and a `429` closes it until `Retry-After`/`Rate-Limit-Reset` (a
//! minute when the server gives no hint). Pure state: time comes in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::error::RateWindow;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a server-side closure lasts when the server does not say.
pub const DEFAULT_SERVER_CLOSURE: Duration = MINUTE;
/// A server-announced closure is never trusted for longer than this.
const MAX_SERVER_CLOSURE: Duration = DAY;

/// What the gateway said about its rate limit on one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerRate {
    /// `Rate-Limit`: the quota (informational).
    pub limit: Option<u64>,
    /// `Rate-Limit-Available`: calls left.
    pub available: Option<u64>,
    /// `Rate-Limit-Over`: calls over the quota.
    pub over: Option<u64>,
    /// `Rate-Limit-Reset` or `Retry-After`, as time from now.
    pub reset_in: Option<Duration>,
}

impl ServerRate {
    /// Reads the headers through `get` (case-insensitive lookup by the caller).
    /// `wall_ms` is now as Unix milliseconds, to turn an absolute reset into a delay.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>, wall_ms: u64) -> Self {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let reset_in = get("rate-limit-reset")
            .and_then(|v| reset_delay(v, wall_ms))
            .or_else(|| num("retry-after").map(Duration::from_secs));
        ServerRate {
            limit: num("rate-limit"),
            available: num("rate-limit-available"),
            over: num("rate-limit-over"),
            reset_in,
        }
    }

    /// True when no rate header was present.
    pub fn is_empty(&self) -> bool {
        *self == ServerRate::default()
    }
}

/// The longest wait an absolute `Rate-Limit-Reset` (a Unix time) is believed for: the
/// gateway's windows are a minute long, and a longer wait read against this terminal's
/// wall clock says more about the clock (slow, reset to 1970) than about the gateway.
pub const MAX_ABSOLUTE_RESET: Duration = Duration::from_secs(120);

/// Turns a `Rate-Limit-Reset` value into a delay from now: Unix milliseconds (the
/// Ticketmaster gateway's form), Unix seconds, or seconds from now for small values.
///
/// An absolute value is a relative wait only through the local wall clock, which may
/// be wrong: a wait beyond [`MAX_ABSOLUTE_RESET`] is not believed (`None`, so the
/// caller falls back to `Retry-After` or [`DEFAULT_SERVER_CLOSURE`]). The wait itself
/// is then kept on the monotonic clock, so a later clock step cannot stretch it.
pub fn reset_delay(value: &str, wall_ms: u64) -> Option<Duration> {
    let v: u64 = value.trim().parse().ok()?;
    let target_ms = if v >= 100_000_000_000 {
        v
    } else if v >= 1_000_000_000 {
        v.saturating_mul(1000)
    } else {
        return Some(Duration::from_secs(v).min(MAX_SERVER_CLOSURE));
    };
    let wait = Duration::from_millis(target_ms.saturating_sub(wall_ms));
    (wait <= MAX_ABSOLUTE_RESET).then_some(wait)
}

/// Rolling per-minute and per-day budgets plus what the server announced.
#[derive(Debug, Clone)]
pub struct RateBudget {
    per_minute: u32,
    per_day: u32,
    minute: VecDeque<Instant>,
    day: VecDeque<Instant>,
    closed_until: Option<Instant>,
    server_available: Option<(u64, Option<Instant>)>,
    server_limit: Option<u64>,
}

impl RateBudget {
    /// A budget of `per_minute` calls in any 60 s and `per_day` in any 24 h.
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        RateBudget {
            per_minute,
            per_day,
            minute: VecDeque::new(),
            day: VecDeque::new(),
            closed_until: None,
            server_available: None,
            server_limit: None,
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(t) = self.minute.front() {
            if now.saturating_duration_since(*t) >= MINUTE {
                self.minute.pop_front();
            } else {
                break;
            }
        }
        while let Some(t) = self.day.front() {
            if now.saturating_duration_since(*t) >= DAY {
                self.day.pop_front();
            } else {
                break;
            }
        }
        if let Some(until) = self.closed_until {
            if now >= until {
                self.closed_until = None;
            }
        }
        if let Some((_, Some(reset))) = self.server_available {
            if now >= reset {
                self.server_available = None;
            }
        }
    }

    /// Takes one call from the budget, or says which window refuses and for how long.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), (RateWindow, Duration)> {
        self.prune(now);
        if let Some(until) = self.closed_until {
            return Err((RateWindow::Server, until.saturating_duration_since(now)));
        }
        if self.minute.len() >= self.per_minute as usize {
            let wait = self.minute.front().map_or(MINUTE, |t| {
                MINUTE.saturating_sub(now.saturating_duration_since(*t))
            });
            return Err((RateWindow::Minute, wait));
        }
        if self.day.len() >= self.per_day as usize {
            let wait = self.day.front().map_or(DAY, |t| {
                DAY.saturating_sub(now.saturating_duration_since(*t))
            });
            return Err((RateWindow::Day, wait));
        }
        self.minute.push_back(now);
        self.day.push_back(now);
        Ok(())
    }

    /// Applies the rate headers of a response.
    pub fn observe(&mut self, now: Instant, server: &ServerRate) {
        if server.limit.is_some() {
            self.server_limit = server.limit;
        }
        let reset_at = server.reset_in.map(|d| now + d.min(MAX_SERVER_CLOSURE));
        if let Some(avail) = server.available {
            self.server_available = Some((avail, reset_at));
        }
        let spent = server.available == Some(0) || server.over.is_some_and(|o| o > 0);
        if spent {
            self.close_until(reset_at.unwrap_or(now + DEFAULT_SERVER_CLOSURE));
        }
    }

    /// Closes the budget until `until` (a 429, or the server's reset).
    pub fn close_until(&mut self, until: Instant) {
        self.closed_until = Some(match self.closed_until {
            Some(prev) if prev > until => prev,
            _ => until,
        });
    }

    /// Calls left now: (this minute, this day). A server-side closure makes both 0;
    /// a server-announced `Rate-Limit-Available` lowers the minute figure.
    pub fn remaining(&mut self, now: Instant) -> (u32, u32) {
        self.prune(now);
        if self.closed_until.is_some() {
            return (0, 0);
        }
        let used_min = u32::try_from(self.minute.len()).unwrap_or(u32::MAX);
        let used_day = u32::try_from(self.day.len()).unwrap_or(u32::MAX);
        let mut minute = self.per_minute.saturating_sub(used_min);
        let day = self.per_day.saturating_sub(used_day);
        if let Some((avail, _)) = self.server_available {
            minute = minute.min(u32::try_from(avail).unwrap_or(u32::MAX));
        }
        (minute.min(day), day)
    }

    /// New limits for the same windows (the calls already counted stay counted).
    pub fn set_limits(&mut self, per_minute: u32, per_day: u32) {
        self.per_minute = per_minute;
        self.per_day = per_day;
    }

    /// The quota the server last announced in `Rate-Limit`, if any.
    pub fn server_limit(&self) -> Option<u64> {
        self.server_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_window_rolls() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(3, 100);
        for _ in 0..3 {
            b.try_acquire(t0).unwrap();
        }
        assert_eq!(b.remaining(t0), (0, 97));
        let (w, wait) = b.try_acquire(t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(w, RateWindow::Minute);
        assert_eq!(wait, Duration::from_secs(50));
        b.try_acquire(t0 + MINUTE).unwrap();
        assert_eq!(b.remaining(t0 + MINUTE), (2, 96));
    }

    #[test]
    fn day_window_rolls() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(10, 2);
        b.try_acquire(t0).unwrap();
        b.try_acquire(t0 + Duration::from_secs(3600)).unwrap();
        let (w, wait) = b.try_acquire(t0 + Duration::from_secs(7200)).unwrap_err();
        assert_eq!(w, RateWindow::Day);
        assert_eq!(wait, DAY - Duration::from_secs(7200));
        b.try_acquire(t0 + DAY).unwrap();
    }

    #[test]
    fn server_available_zero_closes_until_reset() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(80, 5000);
        let s = ServerRate {
            available: Some(0),
            reset_in: Some(Duration::from_secs(5)),
            ..ServerRate::default()
        };
        b.observe(t0, &s);
        assert_eq!(b.remaining(t0), (0, 0));
        let (w, wait) = b.try_acquire(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!((w, wait), (RateWindow::Server, Duration::from_secs(4)));
        b.try_acquire(t0 + Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn server_available_lowers_remaining() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(80, 5000);
        b.observe(
            t0,
            &ServerRate {
                limit: Some(5000),
                available: Some(7),
                ..ServerRate::default()
            },
        );
        assert_eq!(b.remaining(t0), (7, 5000));
        assert_eq!(b.server_limit(), Some(5000));
    }

    #[test]
    fn over_without_reset_closes_for_a_minute() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(80, 5000);
        b.observe(
            t0,
            &ServerRate {
                over: Some(2),
                ..ServerRate::default()
            },
        );
        assert!(b.try_acquire(t0 + Duration::from_secs(59)).is_err());
        assert!(b.try_acquire(t0 + MINUTE).is_ok());
    }

    #[test]
    fn reset_values_in_every_form() {
        let wall = 1_700_000_000_000;
        assert_eq!(
            reset_delay("1700000005000", wall),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            reset_delay("1700000007", wall),
            Some(Duration::from_secs(7))
        );
        assert_eq!(reset_delay("30", wall), Some(Duration::from_secs(30)));
        assert_eq!(reset_delay("1600000000000", wall), Some(Duration::ZERO));
        // Absurdly far: not believed (the caller's default closure applies).
        assert_eq!(reset_delay("99999999999999999", wall), None);
        assert_eq!(reset_delay("soon", wall), None);
    }

    #[test]
    fn a_rate_reset_read_against_a_slow_clock_closes_the_budget_for_a_minute_not_an_hour() {
        // The gateway says "reset in 5 s" as a Unix time; this terminal's clock is an
        // hour slow, or at 1970.
        let reset = "1700000005000";
        for wall in [1_700_000_000_000 - 3_600_000, 5_000] {
            let server = ServerRate::from_headers(
                |n| match n {
                    "rate-limit-reset" => Some(reset),
                    "rate-limit-available" => Some("0"),
                    _ => None,
                },
                wall,
            );
            assert_eq!(server.reset_in, None, "wall {wall}");
            let t0 = Instant::now();
            let mut b = RateBudget::new(80, 5000);
            b.observe(t0, &server);
            assert!(b.try_acquire(t0).is_err());
            assert!(
                b.try_acquire(t0 + DEFAULT_SERVER_CLOSURE).is_ok(),
                "closed past a minute at wall {wall}"
            );
        }
    }

    #[test]
    fn reads_headers_case_insensitively_via_getter() {
        let h = [("rate-limit-available", "0"), ("rate-limit-reset", "12")];
        let s = ServerRate::from_headers(|n| h.iter().find(|(k, _)| *k == n).map(|(_, v)| *v), 0);
        assert_eq!(s.available, Some(0));
        assert_eq!(s.reset_in, Some(Duration::from_secs(12)));
        assert!(!s.is_empty());
    }
}
