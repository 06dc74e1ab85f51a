//! What the agent shows of itself: its status (issue 14), published with the metrics
//! by `publish.rs` (the loop calls these at its changes of mode and at start), and the
//! clock's state in the log.

use super::Agent;
use crate::config::MetricsSettings;
use crate::decide::Mode;
use crate::status::StatusSnapshot;

impl Agent {
    /// Writes the metrics textfile as `settings` say, from `run` on, instead of as the
    /// configuration's `[metrics]` does.
    pub fn set_metrics(&mut self, settings: MetricsSettings) {
        self.publisher.set_metrics(settings);
    }

    /// What `concession-agent status` would say now (the status file's content).
    pub fn status(&self) -> StatusSnapshot {
        self.publisher.snapshot()
    }

    /// The mode the status reports (`online`, `offline`, `low_disk`).
    pub(super) fn publish_mode(&self) {
        let mode = match (self.low_disk, self.mode) {
            (true, _) => "low_disk",
            (false, Mode::Online) => "online",
            (false, Mode::Offline) => "offline",
        };
        self.publisher.set_mode(mode);
    }

    /// Starts the status file, the metrics and the export socket (`run`).
    pub(super) fn start_publishing(&mut self) {
        self.publish_mode();
        self.publisher.spawn();
    }

    /// Logs a change of the clock's state (at warn when it turns wrong, with the skew).
    pub(super) fn check_clock(&mut self) {
        let now = self.clock_state();
        if now.is_trusted() == self.clock_trusted {
            return;
        }
        self.clock_trusted = now.is_trusted();
        if self.clock_trusted {
            log::info!("clock {} again: cached records are trusted", now.describe());
        } else {
            log::warn!(
                "clock {}: no approvals from the cache (clock_unsure) until it agrees",
                now.describe()
            );
        }
    }
}
