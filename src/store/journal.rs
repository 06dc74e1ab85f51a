//! The journal: one entry per decision (approve and deny) and per void.
//!
//! Ids are `{terminal}-{seq:012}`, with `seq` from a counter in `meta` that is
//! set in the same redo-log record that writes the entry, so ids are unique,
//! gapless and in order; entries are keyed by `seq`, so export order is decision order
//! even if the terminal id is changed later. The id is created and stored at decision
//! time and is the idempotency key for any upload or export.
//!
//! An entry carries the masked barcode (for people and logs) and the full normalised
//! barcode: reconciliation with ATS needs the real one, which is also why the store
//! directory is private (0700). Exports contain both; treat export files as customer
//! data.
//!
//! [`Store::commit_decision`] writes the entry, the ticket's ledger and the offline
//! usage as one record of the store's redo log (`wal.rs`: appended, synced, then applied
//! to `journal`, `ledger` and `meta`): when it returns `Ok`, the decision survives a crash
//! or power cut and the POS may be told.
//!
//! A void ([`Store::void`]) is a new entry of kind `void` that repeats the lines of the
//! decision it reverses (`void_of` names it); the original gets `voided_by`.

use serde::{Deserialize, Serialize};

use crate::decide::{verdict_serde, Decision, ItemGrant, Reason, Source, Verdict};
use crate::money::Cents;
use crate::redact::mask_barcode;
use crate::signal::DecisionEvent;

use super::codec::{self, read_u64, u64_key};
use super::db::{Store, META_OFFLINE, META_SEQ};
use super::error::db_err;
use super::error::{StoreError, VoidError};
use super::ledger::{decode_ledger, encode_ledger};
use super::wal::{TreeId, Writes};
use crate::ticket::TicketRecord;

/// A decision entry or a void entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A scan's decision.
    Decision,
    /// The reversal of an earlier approval.
    Void,
}

impl EntryKind {
    /// `decision` or `void`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Decision => "decision",
            EntryKind::Void => "void",
        }
    }
}

/// Money taken from (or, in a void, given back to) one value line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyLine {
    /// The value line.
    pub av_id: String,
    /// Cents.
    pub cents: Cents,
}

/// One journal entry, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// `{terminal}-{seq:012}`: unique, created at decision time.
    pub id: String,
    /// The sequence number inside the id.
    pub seq: u64,
    /// Decision or void.
    pub kind: EntryKind,
    /// Scan time (for a void: when it was voided), wall ms.
    pub scan_time_ms: u64,
    /// The same, RFC 3339 UTC with milliseconds.
    pub scan_time: String,
    /// Terminal id.
    pub terminal: String,
    /// Masked barcode (`********0001`); empty for unreadable input.
    pub barcode_masked: String,
    /// Full normalised barcode (needed for reconciliation); empty for unreadable input.
    pub barcode: String,
    /// Approve or deny (a void repeats the verdict of the decision it reverses).
    #[serde(with = "verdict_serde")]
    pub verdict: Verdict,
    /// A [`Reason`] name, or `void` for a void entry.
    pub reason: String,
    /// Money approved (a void: money given back), cents.
    pub approved_cents: Cents,
    /// Per value line.
    pub money: Vec<MoneyLine>,
    /// Items, one per unit.
    pub items: Vec<ItemGrant>,
    /// Where the evidence came from.
    pub source: Source,
    /// Decided under the offline rules.
    pub offline: bool,
    /// The offline window the entry was written in (see `Store::reset_offline_window`).
    pub offline_window: u64,
    /// Scan-to-decision time.
    pub latency_ms: u64,
    /// The POS request id, if the scan came with one.
    pub request: Option<String>,
    /// For a void entry: the decision it reverses.
    pub void_of: Option<String>,
    /// For a voided decision: the void entry.
    pub voided_by: Option<String>,
    /// For a phone ticket (SafeTix): how its barcode was found, `live` (Presence
    /// answered) or `cached` (Presence was out: the token's remembered mapping, offline;
    /// a replayed screenshot cannot be told apart). Absent for other scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetix: Option<String>,
    /// Venue mode only (src/venue): `venue` when decided on the venue ledger (its lines
    /// locked), `pending` when decided on this terminal's ledger because the venue was
    /// away or its commit in doubt. Absent outside venue mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
}

impl JournalEntry {
    /// The decision this entry records (for a void: the decision reversed, with reason
    /// `approved` standing in for `void`).
    pub fn decision(&self) -> Decision {
        Decision {
            verdict: self.verdict,
            reason: self.reason.parse().unwrap_or(Reason::Approved),
            approved_cents: self.approved_cents,
            money: self
                .money
                .iter()
                .map(|m| (m.av_id.clone(), m.cents))
                .collect(),
            items: self.items.clone(),
            source: self.source,
            offline: self.offline,
        }
    }

    /// The POS event for this decision entry (what the signals report); the reason is
    /// [`JournalEntry::decision`]'s.
    pub fn to_event(&self) -> DecisionEvent {
        DecisionEvent {
            id: self.id.clone(),
            time: self.scan_time.clone(),
            terminal: self.terminal.clone(),
            barcode: self.barcode_masked.clone(),
            decision: self.verdict,
            reason: self.decision().reason,
            approved_cents: self.approved_cents,
            items: self.items.iter().map(|i| i.description.clone()).collect(),
            source: self.source,
            latency_ms: self.latency_ms,
            request: self.request.clone(),
            venue: None,
        }
    }
}

/// A decision to commit.
#[derive(Debug, Clone, Copy)]
pub struct NewDecision<'a> {
    /// When the scan happened, wall ms.
    pub scan_time_ms: u64,
    /// The normalised barcode; `""` when there is none (unreadable, SafeTix).
    pub barcode: &'a str,
    /// What `decide` said.
    pub decision: &'a Decision,
    /// The record `decide` judged (live or cached), so the ledger is reconciled with
    /// it and baselines are set; `None` when there was none.
    pub evidence: Option<&'a TicketRecord>,
    /// Scan-to-decision time.
    pub latency_ms: u64,
    /// The POS request id.
    pub request: Option<&'a str>,
}

/// What a void did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voided {
    /// The void entry written to the journal.
    pub entry: JournalEntry,
    /// Money given back to the local ledger (it had not reached ATS).
    pub restored_cents: Cents,
    /// Item units given back to the local ledger.
    pub restored_items: u64,
    /// Money ATS had already subtracted: needs a refund upstream.
    pub upstream_cents: Cents,
    /// Item units ATS had already subtracted.
    pub upstream_items: u64,
}

/// Journal entries in id order (from [`Store::journal_since`]).
pub struct JournalIter {
    inner: sled::Iter,
}

impl Iterator for JournalIter {
    type Item = Result<JournalEntry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        let kv = self.inner.next()?;
        Some(
            kv.map_err(db_err)
                .and_then(|(_, v)| codec::decode("journal", &v)),
        )
    }
}

impl std::fmt::Debug for JournalIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalIter")
    }
}

/// The sequence number inside a decision id (`{terminal}-{seq}`).
pub fn seq_of(id: &str) -> Result<u64, StoreError> {
    id.rsplit_once('-')
        .and_then(|(_, seq)| seq.parse().ok())
        .ok_or_else(|| StoreError::BadId(id.chars().take(64).collect()))
}

fn make_id(terminal: &str, seq: u64) -> String {
    format!("{terminal}-{seq:012}")
}

impl Store {
    /// The next decision sequence number, set in `w`. Under the redo log's lock.
    fn next_seq(&self, w: &mut Writes) -> Result<u64, StoreError> {
        let seq = match self.meta.get(META_SEQ).map_err(db_err)? {
            None => 1,
            Some(v) => read_u64("meta/decision_seq", &v)? + 1,
        };
        w.set(TreeId::Meta, META_SEQ, u64_key(seq).to_vec());
        Ok(seq)
    }

    /// Journals a decision, updates the ticket's ledger (reconciled with the evidence,
    /// then debited) and the offline usage as one record of the redo log. Returns the
    /// entry with its new id. Only after `Ok` may the POS be told: the decision then
    /// survives a crash or power cut.
    pub fn commit_decision(&self, new: &NewDecision<'_>) -> Result<JournalEntry, StoreError> {
        self.commit_decision_marked(new, None)
    }

    /// [`Store::commit_decision`] with the entry's venue mark (see [`JournalEntry::venue`]).
    pub fn commit_decision_marked(
        &self,
        new: &NewDecision<'_>,
        venue: Option<&str>,
    ) -> Result<JournalEntry, StoreError> {
        self.commit_decision_flagged(new, venue, None)
    }

    /// [`Store::commit_decision`] with the entry's venue mark and its `safetix` flag
    /// (`live` / `cached`, see [`JournalEntry::safetix`]).
    pub fn commit_decision_flagged(
        &self,
        new: &NewDecision<'_>,
        venue: Option<&str>,
        safetix: Option<&str>,
    ) -> Result<JournalEntry, StoreError> {
        let d = new.decision;
        if d.is_approve() {
            // Before a full disk stops the journal, stop approving (`headroom.rs`).
            super::headroom::check(&self.dir, self.min_free)?;
        }
        let evidence = new.evidence.filter(|r| r.barcode == new.barcode);
        let mut wal = self.lock_wal();
        let mut w = Writes::default();
        let seq = self.next_seq(&mut w)?;
        let mut off = self.offline_state()?;
        let key = new.barcode.as_bytes();
        let old = if new.barcode.is_empty() {
            None
        } else {
            self.ledger.get(key).map_err(db_err)?
        };
        // Approvals create a ledger; other decisions only reconcile an existing one.
        if d.is_approve() || (old.is_some() && evidence.is_some()) {
            let mut l = decode_ledger(new.barcode, old.as_deref(), off.window)?;
            l.record_decision(d, evidence);
            w.set(
                TreeId::Ledger,
                key,
                encode_ledger(new.barcode, &l, off.window)?,
            );
        }
        if d.offline && d.is_approve() {
            off.usage.record(d);
            w.set(
                TreeId::Meta,
                META_OFFLINE,
                codec::encode("meta/offline", &off)?,
            );
        }
        let entry = JournalEntry {
            id: make_id(&self.issuer, seq),
            seq,
            kind: EntryKind::Decision,
            scan_time_ms: new.scan_time_ms,
            scan_time: crate::date::rfc3339_ms(new.scan_time_ms),
            terminal: self.terminal.clone(),
            barcode_masked: mask_barcode(new.barcode),
            barcode: new.barcode.to_string(),
            verdict: d.verdict,
            reason: d.reason.as_str().to_string(),
            approved_cents: d.approved_cents,
            money: d
                .money
                .iter()
                .map(|(av_id, cents)| MoneyLine {
                    av_id: av_id.clone(),
                    cents: *cents,
                })
                .collect(),
            items: d.items.clone(),
            source: d.source,
            offline: d.offline,
            offline_window: off.window,
            latency_ms: new.latency_ms,
            request: new.request.map(str::to_string),
            void_of: None,
            voided_by: None,
            safetix: safetix.map(str::to_string),
            venue: venue.map(str::to_string),
        };
        w.set(
            TreeId::Journal,
            &u64_key(seq),
            codec::encode("journal", &entry)?,
        );
        self.log_and_apply(&mut wal, w)?;
        Ok(entry)
    }

    /// Voids an approval: gives its unreflected money and items back to the ticket's
    /// ledger (and its offline usage, when it was made offline in the current window),
    /// journals a void entry and marks the original, as one record of the redo log.
    /// Refuses unknown ids, denies, void entries and decisions already voided.
    pub fn void(
        &self,
        decision_id: &str,
        now_ms: u64,
        request: Option<&str>,
    ) -> Result<Voided, VoidError> {
        self.void_for(decision_id, now_ms, request, "void")
    }

    /// [`Store::void`] with the void entry's `reason`: `void` when the POS asked,
    /// `undelivered` when the agent reverses an approval no POS output could be told of
    /// (issue 11). Any short name; it is the entry's `reason` in exports.
    pub fn void_for(
        &self,
        decision_id: &str,
        now_ms: u64,
        request: Option<&str>,
        reason: &str,
    ) -> Result<Voided, VoidError> {
        let target = seq_of(decision_id).map_err(|e| match e {
            StoreError::BadId(id) => VoidError::BadId(id),
            other => VoidError::Store(other),
        })?;
        let mut wal = self.lock_wal();
        let unknown = || VoidError::UnknownDecision(decision_id.to_string());
        let raw = self
            .journal
            .get(u64_key(target))
            .map_err(db_err)?
            .ok_or_else(unknown)?;
        let mut orig: JournalEntry = codec::decode("journal", &raw)?;
        if orig.id != decision_id {
            return Err(unknown());
        }
        if let Some(by) = &orig.voided_by {
            return Err(VoidError::AlreadyVoided {
                id: orig.id.clone(),
                by: by.clone(),
            });
        }
        if orig.kind != EntryKind::Decision || orig.verdict != Verdict::Approve {
            return Err(VoidError::NotVoidable(orig.id.clone()));
        }
        let mut w = Writes::default();
        let seq = self.next_seq(&mut w)?;
        let mut off = self.offline_state()?;
        let d = orig.decision();
        let same_window = orig.offline_window == off.window;

        let key = orig.barcode.as_bytes();
        let old = self.ledger.get(key).map_err(db_err)?;
        let mut l = decode_ledger(&orig.barcode, old.as_deref(), off.window)?;
        let back = l.restore(&d, same_window);
        w.set(
            TreeId::Ledger,
            key,
            encode_ledger(&orig.barcode, &l, off.window)?,
        );
        if d.offline && same_window {
            off.usage.unrecord(&d);
            w.set(
                TreeId::Meta,
                META_OFFLINE,
                codec::encode("meta/offline", &off)?,
            );
        }

        let id = make_id(&self.issuer, seq);
        let entry = JournalEntry {
            id: id.clone(),
            seq,
            kind: EntryKind::Void,
            scan_time_ms: now_ms,
            scan_time: crate::date::rfc3339_ms(now_ms),
            terminal: self.terminal.clone(),
            reason: reason.into(),
            offline_window: off.window,
            latency_ms: 0,
            request: request.map(str::to_string),
            void_of: Some(orig.id.clone()),
            voided_by: None,
            venue: None,
            ..orig.clone()
        };
        orig.voided_by = Some(id);
        w.set(
            TreeId::Journal,
            &u64_key(orig.seq),
            codec::encode("journal", &orig)?,
        );
        w.set(
            TreeId::Journal,
            &u64_key(seq),
            codec::encode("journal", &entry)?,
        );
        self.log_and_apply(&mut wal, w)?;
        Ok(Voided {
            entry,
            restored_cents: back.cents,
            restored_items: back.items,
            upstream_cents: back.reflected_cents,
            upstream_items: back.reflected_items,
        })
    }

    /// One journal entry by id.
    pub fn journal_entry(&self, id: &str) -> Result<Option<JournalEntry>, StoreError> {
        let seq = seq_of(id)?;
        match self.journal.get(u64_key(seq)).map_err(db_err)? {
            None => Ok(None),
            Some(v) => {
                let e: JournalEntry = codec::decode("journal", &v)?;
                Ok((e.id == id).then_some(e))
            }
        }
    }

    /// The journal entry with sequence number `seq`, whatever its id.
    pub fn journal_entry_at(&self, seq: u64) -> Result<Option<JournalEntry>, StoreError> {
        match self.journal.get(u64_key(seq)).map_err(db_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(codec::decode("journal", &v)?)),
        }
    }

    /// Journal entries in id order, strictly after the entry `since` (all when `None`).
    /// `since` need not exist any more; only its sequence number counts.
    pub fn journal_since(&self, since: Option<&str>) -> Result<JournalIter, StoreError> {
        let inner = match since {
            None => self.journal.iter(),
            Some(id) => {
                let seq = seq_of(id)?;
                match seq.checked_add(1) {
                    Some(next) => self.journal.range(u64_key(next)..),
                    None => self.journal.range(u64_key(u64::MAX)..u64_key(u64::MAX)),
                }
            }
        };
        Ok(JournalIter { inner })
    }

    /// Number of journal entries.
    pub fn journal_len(&self) -> usize {
        self.journal.len()
    }

    /// The id of the newest journal entry, if any.
    pub fn last_decision_id(&self) -> Result<Option<String>, StoreError> {
        // The entry the decision sequence names (set in the same record as the entry),
        // not `journal.last()`: sled's reverse iteration carries a 1 MiB constant key
        // (`[255; 1 << 20]`), which made the terminal build 1 MB larger.
        let seq = match self.meta.get(META_SEQ).map_err(db_err)? {
            None => return Ok(None),
            Some(v) => read_u64("meta/decision_seq", &v)?,
        };
        Ok(self.journal_entry_at(seq)?.map(|e| e.id))
    }
}
