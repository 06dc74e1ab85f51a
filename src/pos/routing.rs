//! The link's routing tables (pure: no I/O): which connection waits on a request
//! id, which connections were told of a decision (void ownership), and each
//! connection's scan budget.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::scan::ConnId;

/// Decisions whose owning connection the link remembers (for void ownership).
pub const OWNERS_KEPT: usize = 4096;

/// Which connections were told of a decision: who may void it without the token.
#[derive(Default)]
pub(super) struct Owners {
    pub(super) by_id: HashMap<String, Vec<ConnId>>,
    pub(super) order: VecDeque<String>,
}

impl Owners {
    pub(super) fn record(&mut self, id: &str, conns: Vec<ConnId>) {
        if id.is_empty() || conns.is_empty() {
            return;
        }
        if self.by_id.insert(id.to_string(), conns).is_none() {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > OWNERS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    pub(super) fn owns(&self, id: &str, conn: ConnId) -> bool {
        self.by_id.get(id).is_some_and(|c| c.contains(&conn))
    }

    pub(super) fn of(&self, id: &str) -> Vec<ConnId> {
        self.by_id.get(id).cloned().unwrap_or_default()
    }
}

/// A token bucket: `burst` scans at once, then `per_minute`.
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) burst: f64,
    pub(super) per_sec: f64,
    pub(super) at: Instant,
}

impl Bucket {
    pub(super) fn new(burst: u32, per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute) / 60.0,
            at: now,
        }
    }

    pub(super) fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
pub(super) struct Pending {
    pub(super) by_id: HashMap<String, VecDeque<ConnId>>,
    pub(super) total: usize,
}

impl Pending {
    pub(super) fn push(&mut self, id: &str, conn: ConnId) {
        self.by_id
            .entry(id.to_string())
            .or_default()
            .push_back(conn);
        self.total += 1;
    }

    /// Takes the oldest connection waiting on `id` (or that exact one, when given).
    pub(super) fn take(&mut self, id: &str, conn: Option<ConnId>) -> Option<ConnId> {
        let q = self.by_id.get_mut(id)?;
        let pos = match conn {
            Some(c) => q.iter().position(|x| *x == c)?,
            None => 0,
        };
        let found = q.remove(pos);
        if q.is_empty() {
            self.by_id.remove(id);
        }
        if found.is_some() {
            self.total -= 1;
        }
        found
    }

    pub(super) fn forget_conn(&mut self, conn: ConnId) {
        let mut removed = 0;
        self.by_id.retain(|_, q| {
            let before = q.len();
            q.retain(|c| *c != conn);
            removed += before - q.len();
            !q.is_empty()
        });
        self.total -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_scan_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2, 6, t0);
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_secs(9)));
        assert!(b.take(t0 + Duration::from_secs(10)));
        // Idle time refills up to the burst only.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.take(later) && b.take(later) && !b.take(later));
    }

    #[test]
    fn owners_are_kept_for_a_bounded_number_of_decisions() {
        let mut o = Owners::default();
        for i in 0..OWNERS_KEPT + 10 {
            o.record(&format!("d-{i}"), vec![1]);
        }
        assert_eq!(o.by_id.len(), OWNERS_KEPT);
        assert!(!o.owns("d-0", 1));
        assert!(o.owns(&format!("d-{}", OWNERS_KEPT + 9), 1));
        assert!(!o.owns(&format!("d-{}", OWNERS_KEPT + 9), 2));
        o.record("", vec![1]);
        o.record("d-none", vec![]);
        assert!(!o.by_id.contains_key("d-none"));
    }

    #[test]
    fn pending_routes_reused_ids_first_in_first_out() {
        let mut p = Pending::default();
        p.push("r1", 1);
        p.push("r1", 2);
        p.push("r2", 2);
        assert_eq!(p.total, 3);
        assert_eq!(p.take("r1", None), Some(1));
        assert_eq!(p.take("r1", Some(9)), None);
        p.forget_conn(2);
        assert_eq!(p.total, 0);
        assert!(p.by_id.is_empty());
    }
}
