//! The table of open 202 cycles, by `QTKN` (see [`super::polling`] for the cycle).
//!
//! Bounded: at most [`MAX_PENDING`] cycles are remembered, the oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde_json::Value;

use super::faults::Rng;

/// At most this many cycles are remembered; the oldest are forgotten first.
pub(crate) const MAX_PENDING: usize = 10_000;

/// One open 202 cycle.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The queued request body; a poll must repeat it.
    pub body: Value,
    /// When the command's answer is ready (sandbox clock).
    pub done_at: Instant,
    /// The `SID` cookie of the cycle.
    pub sid: String,
    /// The `BID` cookie of the cycle.
    pub bid: String,
}

/// Open 202 cycles by `QTKN`.
#[derive(Debug)]
pub(crate) struct PollTable {
    pending: HashMap<String, Pending>,
    order: VecDeque<String>,
    rng: Rng,
}

impl Default for PollTable {
    fn default() -> Self {
        PollTable {
            pending: HashMap::new(),
            order: VecDeque::new(),
            rng: Rng::from_entropy(),
        }
    }
}

impl PollTable {
    /// Opens a cycle for `body`, ready at `done_at`; returns its `QTKN`, `SID`, `BID`.
    pub fn insert(&mut self, body: Value, done_at: Instant) -> (String, String, String) {
        while self.pending.len() >= MAX_PENDING {
            match self.order.pop_front() {
                Some(old) => {
                    self.pending.remove(&old);
                }
                None => break,
            }
        }
        let (q, sid, bid) = (self.rng.token(), self.rng.token(), self.rng.token());
        self.pending.insert(
            q.clone(),
            Pending {
                body,
                done_at,
                sid: sid.clone(),
                bid: bid.clone(),
            },
        );
        self.order.push_back(q.clone());
        (q, sid, bid)
    }

    /// The open cycle for token `q`.
    pub fn get(&self, q: &str) -> Option<&Pending> {
        self.pending.get(q)
    }

    /// Forgets the cycle for token `q` (collected).
    pub fn remove(&mut self, q: &str) {
        self.pending.remove(q);
    }

    /// Moves the cycle for token `q` to a fresh token and returns it (`rotate_qtkn`).
    pub fn rekey(&mut self, q: &str) -> String {
        let p = self.pending.remove(q);
        let new_q = self.rng.token();
        if let Some(p) = p {
            self.pending.insert(new_q.clone(), p);
            self.order.push_back(new_q.clone());
        }
        new_q
    }

    /// Number of open cycles.
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}
