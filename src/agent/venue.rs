//! The scan loop's venue hooks (src/venue, docs/venue.md): where a scan's ledger comes
//! from in venue mode, and what happens after the local journal write.
//!
//! - [`Agent::venue_begin`] (in `evaluate`, after the evidence is in hand): lock the
//!   ticket's lines in the venue. `true` when the venue cannot answer in time: the scan
//!   is then decided offline on the local ledger (the caller drops the live answer so the
//!   offline caps apply).
//! - [`Agent::venue_ledger`]: the venue ledger while a transaction is open, else the
//!   local one.
//! - [`Agent::venue_commit`] (in `handle_scan`, after the journal write): commit the
//!   journaled decision in the venue; when the commit is in doubt, void an approval
//!   locally and decide the scan again offline (module docs of `crate::venue`).
//!
//! Without the `venue` feature, or without `[venue]`, every hook is a no-op and the
//! agent is the single-terminal agent.

use crate::decide::TicketLedger;
use crate::store::{JournalEntry, StoreError};
use crate::ticket::TicketRecord;

use super::Agent;

impl Agent {
    /// Opens the venue transaction for a scan of `barcode` judged on `record` (see the
    /// module docs). Without a record (a deny: `not_listed`, `unknown_ticket`,
    /// `offline_unknown`) there is nothing to lock, but the decision is still recorded in
    /// a transaction of its own, as any other; without a barcode (noise) it is uploaded
    /// with the others. Returns `true` when the scan must be decided offline on the
    /// local ledger because the venue did not answer in time (only when there was a
    /// ledger to ask about: a deny without a record is the same either way).
    pub(super) fn venue_begin(
        &mut self,
        barcode: &str,
        record: Option<&TicketRecord>,
        received_at_ms: u64,
    ) -> bool {
        #[cfg(feature = "venue")]
        {
            use crate::venue::{ledger::seed_from_record, Begin};
            self.venue.txn = None; // an earlier, unfinished one rolls back
            self.venue.away = false;
            let Some(h) = &self.venue.handle else {
                return false;
            };
            // No record, no value to move: nothing to lock (the decision is uploaded
            // with the others).
            let record = record.filter(|r| !barcode.is_empty() && r.barcode == barcode);
            let seed = match record {
                Some(record) => seed_from_record(record),
                None if !barcode.is_empty() => Vec::new(),
                None => return false,
            };
            // Half of what is left of the deadline at most: the commit needs its turn.
            let wait = h.timeout().min(self.time_left(received_at_ms) / 2);
            match h.begin(barcode, seed, wait) {
                Begin::Locked(txn) => {
                    self.venue.txn = Some(txn);
                    false
                }
                Begin::Away(why) => {
                    log::warn!(
                        "venue: deciding {} on the local ledger (pending): {why}",
                        crate::redact::mask_barcode(barcode)
                    );
                    self.venue.away = true;
                    self.venue.was_away = true;
                    record.is_some()
                }
            }
        }
        #[cfg(not(feature = "venue"))]
        {
            let _ = (barcode, record, received_at_ms);
            false
        }
    }

    /// The venue ledger while a transaction is open (with this terminal's offline money
    /// on the ticket from `local`), else `local`.
    pub(super) fn venue_ledger(&self, local: TicketLedger) -> TicketLedger {
        #[cfg(feature = "venue")]
        if let Some(txn) = &self.venue.txn {
            return crate::venue::ledger::ticket_ledger(txn.lines(), local.offline_cents);
        }
        local
    }

    /// After the journal write of `entry` (decided in `eval`): commits it in the venue,
    /// or settles an in-doubt commit. Returns the entry the POS is to be told and its
    /// venue mark (`None` outside venue mode).
    pub(super) fn venue_commit(
        &mut self,
        scan: &crate::scan::ScanEvent,
        eval: &super::Evaluation,
        entry: JournalEntry,
        latency_ms: u64,
    ) -> Result<(JournalEntry, Option<&'static str>), StoreError> {
        #[cfg(feature = "venue")]
        {
            use crate::venue::{CommitOutcome, VenueMark};
            let Some(h) = &self.venue.handle else {
                return Ok((entry, None));
            };
            let wait = h.timeout().min(self.time_left(scan.received_at_ms));
            let Some(txn) = self.venue.txn.take() else {
                // Decided without a venue transaction: away (pending), or nothing to
                // lock (unreadable, no record): upload it now if the venue answers.
                let mark = if !self.venue.away && h.upload_now(wait) {
                    VenueMark::Committed
                } else {
                    VenueMark::Pending
                };
                return Ok((entry, Some(mark.as_str())));
            };
            let why = match txn.commit(&entry, wait) {
                CommitOutcome::Committed { .. } => {
                    return Ok((entry, Some(VenueMark::Committed.as_str())))
                }
                CommitOutcome::NotCommitted(why) | CommitOutcome::InDoubt(why) => why,
            };
            self.venue.was_away = true;
            if entry.verdict != crate::decide::Verdict::Approve {
                // A deny hands over nothing: tell it as it is; the replay records it.
                log::warn!("venue: commit of {} in doubt ({why}): pending", entry.id);
                return Ok((entry, Some(VenueMark::Pending.as_str())));
            }
            // The approval was decided on venue lines whose commit is in doubt: reverse it
            // locally and decide again on the local ledger under the offline caps.
            log::warn!(
                "venue: commit of {} in doubt ({why}): voided and decided again offline",
                entry.id
            );
            match self.store.void_for(
                &entry.id,
                self.clock.wall_ms(),
                scan.request_id.as_deref(),
                crate::venue::IN_DOUBT_VOID_REASON,
            ) {
                Ok(v) => {
                    // The status counts what the journal holds (issue 14).
                    self.publisher
                        .decided(&entry.to_event(), entry.offline, true);
                    self.publisher.voided(&v.entry);
                }
                Err(crate::store::VoidError::Store(e)) => return Err(e),
                Err(e) => {
                    // Cannot happen for an approval just journaled; if it does, the POS
                    // is told the decision as journaled, and the replay settles it.
                    log::error!("venue: cannot reverse {} ({e}): told as decided", entry.id);
                    return Ok((entry, Some(VenueMark::Pending.as_str())));
                }
            }
            let again = self.decide_offline(&eval.barcode, eval.record.as_ref(), scan.amount_cents);
            let second = self.store.commit_decision_marked(
                &crate::store::NewDecision {
                    scan_time_ms: scan.received_at_ms,
                    barcode: &eval.barcode,
                    decision: &again,
                    evidence: eval.record.as_ref(),
                    latency_ms,
                    request: scan.request_id.as_deref(),
                },
                Some(VenueMark::Pending.as_str()),
            )?;
            Ok((second, Some(VenueMark::Pending.as_str())))
        }
        #[cfg(not(feature = "venue"))]
        {
            let _ = (scan, eval, latency_ms);
            Ok((entry, None))
        }
    }

    /// What is left of the scan's deadline, less the reserve for signalling.
    #[cfg(feature = "venue")]
    fn time_left(&self, received_at_ms: u64) -> std::time::Duration {
        let waited =
            std::time::Duration::from_millis(self.clock.wall_ms().saturating_sub(received_at_ms));
        self.config
            .deadline
            .saturating_sub(waited)
            .saturating_sub(super::commit_reserve(self.config.deadline))
    }

    /// The journal's venue mark for the scan being decided (`JournalEntry::venue`):
    /// `venue` on the venue ledger, `pending` on the local one, `None` outside venue mode.
    pub(super) fn venue_journal_mark(&self) -> Option<&'static str> {
        #[cfg(feature = "venue")]
        if self.venue.enabled() {
            return Some(if self.venue.txn.is_some() {
                "venue"
            } else {
                crate::venue::VenueMark::Pending.as_str()
            });
        }
        None
    }

    /// Drops an open venue transaction (the scan's decision was not journaled as
    /// decided: a store error or no headroom).
    pub(super) fn venue_abort(&mut self) {
        #[cfg(feature = "venue")]
        {
            self.venue.txn = None;
        }
    }

    /// At start: an offline window left open by an earlier run (decisions made while
    /// the venue was away, then a restart) closes like one opened in this run, once the
    /// venue holds every decision; a new process would otherwise never close it.
    pub(super) fn venue_resume_window(&mut self) {
        #[cfg(feature = "venue")]
        if self.venue.enabled() {
            let used = self
                .store
                .offline_usage()
                .map(|u| u.count > 0 || u.cents > 0);
            self.venue.was_away = used.unwrap_or(true);
        }
    }

    /// Between scans: once the venue is back and holds everything, the offline window
    /// closes (as when ATS comes back), if ATS is reachable too.
    pub(super) fn venue_tick(&mut self) {
        #[cfg(feature = "venue")]
        {
            let Some(h) = self.venue.handle.as_mut() else {
                return;
            };
            if h.recover_if_stuck() {
                self.venue.was_away = true;
            }
            if !self.venue.was_away || self.mode != super::Mode::Online {
                return;
            }
            let s = h.status();
            if s.connected && s.pending == 0 {
                self.venue.was_away = false;
                log::info!("venue database holds every decision again: offline window closed");
                if let Err(e) = self.store.reset_offline_window() {
                    log::error!("cannot close the offline window: {e}");
                }
            }
        }
    }

    /// The scan decided on the local ledger under the offline rules and caps (the
    /// evidence as a cached record: a live answer would lift the caps).
    #[cfg(feature = "venue")]
    fn decide_offline(
        &self,
        barcode: &str,
        record: Option<&TicketRecord>,
        requested: Option<crate::money::Cents>,
    ) -> crate::decide::Decision {
        use crate::decide::{self, DecideInput, Decision, Evidence, Reason, ScanKind, Source};
        let now = self.clock.wall_ms();
        let (ledger, usage) = match (self.store.ledger(barcode), self.store.offline_usage()) {
            (Ok(l), Ok(u)) => (l, u),
            _ => return Decision::deny(Reason::StoreError, Source::Offline, true),
        };
        let evidence = match record {
            Some(r) => Evidence::Cached {
                record: r,
                age_ms: r.age_ms(now),
            },
            None => Evidence::None,
        };
        let today = super::local_date(self.venue_wall_ms(), self.config.utc_offset_minutes);
        decide::decide(&DecideInput {
            scan: &ScanKind::Barcode(barcode.to_string()),
            requested,
            evidence,
            mode: decide::Mode::Offline,
            ledger: &ledger,
            usage,
            policy: &self.policy,
            today: &today,
            events: &self.config.events,
            clock_trusted: self.clock_state().is_trusted(),
        })
    }
}
