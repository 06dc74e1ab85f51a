//! Replay: uploading this terminal's journal to the venue after the watermark, in
//! order, idempotently by decision id (the argument is in the module docs of
//! `crate::venue`). An upload that overdraws a line is recorded as an overdraft.
//!
//! With asynchronous commits (`venue.synchronous_commit = "off"`) the watermark file
//! holds only what is known flushed on the server (`watermark.rs`): the idle tick reads
//! the server's WAL positions to learn it, `venue sync` waits for it before it says
//! nothing is pending, and a stopping worker waits for it briefly. Uploads themselves
//! wait for the server's local flush (`synchronous_commit = local` for their
//! transaction): a replay is the repair, not the scan's path, and a flushed commit that
//! wrote something flushes every commit before it (the WAL is one sequence), so after
//! a replay that uploaded anything everything up to it is known flushed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
                self.flushed.reset(0);
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
                let flush = !self.settings.commits_flushed();
                let recorded = db::upload(client, p, &self.issuer, &entry, record.as_ref(), flush)?;
                // A new row was written and flushed at commit: so was all before it.
                let flushed = self.settings.commits_flushed() || recorded != Recorded::Duplicate;
                self.flushed.committed(seq, flushed);
                match recorded {
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
            } else {
                self.flushed.skipped(seq);
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
            self.save_watermark();
        }
        self.publish_pending();
        report.pending = last.saturating_sub(self.watermark);
        Ok(report)
    }

    /// After an online commit: saves the watermark now and then, so that a stand that
    /// decides without pause (no idle tick) and then dies re-sends at most that many.
    pub(super) fn note_committed(&mut self) {
        if self.flushed.through >= self.saved + SAVE_EVERY {
            self.save_watermark();
        }
    }

    /// Writes what is known flushed to the watermark file, when it moved.
    pub(super) fn save_watermark(&mut self) {
        if self.flushed.through != self.saved {
            write_watermark(&self.watermark_path, &self.issuer, self.flushed.through);
            self.saved = self.flushed.through;
        }
    }

    /// Reads the server's WAL positions when a commit is not yet known flushed (one
    /// short statement; the idle tick), and saves the watermark.
    pub(super) fn confirm_flushed(&mut self) -> Result<(), VenueError> {
        if self.flushed.waiting() {
            let client = self.client.as_mut().ok_or_else(not_connected)?;
            let wal = db::wal_positions(client)?;
            self.flushed.observe(wal.flush, wal.insert);
        }
        self.save_watermark();
        Ok(())
    }

    /// `venue sync`: after the upload, waits (at most [`SETTLE`]) until the server has
    /// flushed every commit, so that "nothing pending" survives a server crash.
    pub(super) fn settle(&mut self, mut report: Report) -> Result<Report, VenueError> {
        let until = Instant::now() + SETTLE;
        self.confirm_flushed()?;
        while self.flushed.waiting() && Instant::now() < until {
            // The server's WAL writer flushes asynchronous commits every
            // `wal_writer_delay` (200 ms by default): poll at a fraction of that.
            std::thread::sleep(Duration::from_millis(20));
            self.confirm_flushed()?;
        }
        let last = self.local_last()?;
        report.pending = last.saturating_sub(self.flushed.through);
        Ok(report)
    }

    /// A stopping worker: waits briefly for the flush of its last commits (a server
    /// crash right after a stand shuts down for good would otherwise lose them until
    /// the stand replays again), then saves the watermark.
    pub(super) fn settle_at_exit(&mut self) {
        let until = Instant::now() + EXIT_SETTLE;
        while self.flushed.waiting() && self.client.is_some() && Instant::now() < until {
            if self.confirm_flushed().is_err() {
                break;
            }
            if self.flushed.waiting() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.save_watermark();
    }
}

/// Online commits between two watermark saves when the worker is never idle.
const SAVE_EVERY: u64 = 64;
/// How long `venue sync` waits for the server to flush asynchronous commits (three
/// times the default `wal_writer_delay` is the documented worst case).
const SETTLE: Duration = Duration::from_secs(2);
/// How long a stopping worker waits for it (the handle waits 500 ms for the thread).
const EXIT_SETTLE: Duration = Duration::from_millis(400);
