//! The decision worker's heartbeats (issue 14 item 3; the table, `venue status` and the
//! report are in `heartbeat.rs`): the newest status snapshot, upserted at most every
//! [`HEARTBEAT_EVERY`] when no scan waits. Apart from `heartbeat.rs` so that the worker
//! imports the heartbeat's state and `heartbeat.rs` imports nothing of the worker.

use std::time::Instant;

use super::heartbeat::{upsert, HEARTBEAT_EVERY};
use super::worker::Worker;

impl Worker {
    /// Writes a heartbeat when one is due and the worker holds a ready connection.
    pub(super) fn heartbeat_tick(&mut self) {
        if self.beat.at.is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        self.heartbeat_now();
    }

    /// Writes the newest snapshot if it was not written yet (at stop, and when due).
    pub(super) fn heartbeat_now(&mut self) {
        if !self.schema_ok {
            return;
        }
        let Some(client) = self.client.as_mut().filter(|c| !c.is_closed()) else {
            return;
        };
        let Some((n, snap)) = self.beat.link.newer_than(self.beat.sent) else {
            return;
        };
        match upsert(client, &snap) {
            Ok(()) => {
                if self.beat.failing {
                    log::info!("venue heartbeat written again");
                }
                self.beat.failing = false;
                self.beat.sent = n;
                self.beat.at = Some(Instant::now());
            }
            Err(e) => {
                if !self.beat.failing {
                    log::warn!("venue heartbeat: {e} (retried every few seconds; logged once)");
                }
                self.beat.failing = true;
                // Not again before the next interval: a failing statement must not
                // run on every tick.
                self.beat.at = Some(Instant::now());
                self.failed(&e);
            }
        }
    }
}
