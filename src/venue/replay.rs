//! Replay: uploading this terminal's journal to the venue after the watermark, in
//! order, idempotently by decision id (the argument is in the module docs of
//! `crate::venue`). An upload that overdraws a line is recorded as an overdraft.

use std::sync::atomic::Ordering;

use super::db::{self, Recorded};
use super::error::VenueError;
use super::watermark::write_watermark;
use super::worker::{not_connected, Report, Worker};
use crate::redact::mask_barcode;
use crate::store::journal::seq_of;

impl Worker {
    pub(super) fn local_last(&self) -> Result<u64, VenueError> {
        Ok(match self.store.last_decision_id()? {
            None => 0,
            Some(id) => seq_of(&id)?,
        })
    }

    pub(super) fn publish_pending(&self) {
        let last = self.local_last().unwrap_or(self.watermark);
        self.shared
            .pending
            .store(last.saturating_sub(self.watermark), Ordering::SeqCst);
        self.beat.link.set_watermark(self.watermark);
    }

    /// Uploads every entry after the watermark, in order (see the module docs).
    pub(super) fn catch_up(&mut self) -> Result<Report, VenueError> {
        let mut report = Report::default();
        let last = self.local_last()?;
        self.ensure_prepared()?;
        let p = self.prepared.as_ref().ok_or_else(not_connected)?;
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        if !self.verified {
            let held = db::count_through(client, &self.issuer, self.watermark)?;
            if held < self.watermark {
                log::warn!(
                    "venue database holds {held} of this terminal's first {} entries \
                     (a failover lost commits?): uploading the whole journal again",
                    self.watermark
                );
                self.watermark = 0;
            }
            self.verified = true;
        }
        let start = self.watermark;
        while self.watermark < last {
            // A heartbeat: a long replay is busy, not stuck.
            self.shared.busy_since.store(
                self.epoch.elapsed().as_millis() as u64 + 1,
                Ordering::SeqCst,
            );
            let seq = self.watermark + 1;
            if let Some(entry) = self.store.journal_entry_at(seq)? {
                let record = if entry.barcode.is_empty() {
                    None
                } else {
                    self.store.get_record(&entry.barcode).ok().flatten()
                };
                match db::upload(client, p, &self.issuer, &entry, record.as_ref())? {
                    Recorded::New {
                        overdraft_cents,
                        overdraft_items,
                    } => {
                        report.uploaded += 1;
                        if overdraft_cents > 0 || overdraft_items > 0 {
                            report.overdrafts += 1;
                            log::warn!(
                                "venue: {} overdrew {} by {} cents and {} items (approved \
                                 while the venue was away): recorded as an overdraft",
                                entry.id,
                                mask_barcode(&entry.barcode),
                                overdraft_cents,
                                overdraft_items
                            );
                        }
                    }
                    Recorded::Duplicate => {}
                }
            }
            self.watermark = seq;
        }
        if self.watermark != start {
            if report.uploaded > 0 {
                log::info!(
                    "venue: {} pending entries uploaded ({} overdrafts)",
                    report.uploaded,
                    report.overdrafts
                );
            }
            write_watermark(&self.watermark_path, &self.issuer, self.watermark);
        }
        self.publish_pending();
        report.pending = last.saturating_sub(self.watermark);
        Ok(report)
    }
}
