//! Pure bookkeeping of what this terminal redeemed: the per-ticket ledger and the
//! terminal's offline usage.
//!
//! # The model
//!
//! ATS is the source of truth for balances, but it learns about this terminal's
//! redemptions late (they are uploaded or reconciled later). For every value line
//! (`av_id`) of a ticket the ledger keeps:
//!
//! - `unreflected`: what this terminal handed over (cents for money, units for items)
//!   that ATS has not yet been seen to subtract;
//! - `baseline`: the ATS balance seen when those unreflected amounts were recorded.
//!
//! What may still be spent on a line is `min(balance, baseline) - unreflected`
//! (saturating at zero): the `min` keeps an older cached record from resurrecting value
//! that a newer answer already showed as gone.
//!
//! When a newer ATS answer arrives ([`TicketLedger::reconcile`]) and a balance is lower
//! than the baseline, the drop is taken as our redemptions being reflected upstream:
//! `unreflected -= min(unreflected, drop)` and the baseline moves to the new balance.
//! A higher balance (value reloaded upstream) only moves the baseline. When a drop
//! and a reload happen between two answers the ledger cannot tell them apart and keeps
//! the redemption unreflected: it under-approves rather than over-approves.
//! Answers older than the newest one already applied are ignored.
//!
//! The store persists exactly these structures and applies decisions with the same
//! functions ([`TicketLedger::record_decision`], [`TicketLedger::restore`],
//! [`OfflineUsage::record`]), so the property tests' model and the store agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money::Cents;
use crate::ticket::{TicketRecord, ValueLine};

use super::words::{Decision, Verdict};

/// One value line's local bookkeeping (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    /// Redeemed here and not yet seen reflected upstream (cents or item units).
    pub unreflected: u64,
    /// The ATS balance seen when `unreflected` was recorded; `None` until first seen.
    pub baseline: Option<u64>,
    /// Everything this terminal ever redeemed on the line (minus voids), for reports.
    pub redeemed_total: u64,
}

/// What this terminal did with one ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLedger {
    /// Per `av_id`.
    pub lines: BTreeMap<String, LedgerLine>,
    /// Money approved offline on this ticket in the current offline window.
    pub offline_cents: Cents,
    /// `fetched_at_ms` of the newest ATS record applied by [`TicketLedger::reconcile`].
    pub seen_at_ms: u64,
}

/// What [`TicketLedger::restore`] gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Money returned to the ledger (was unreflected).
    pub cents: Cents,
    /// Item units returned to the ledger.
    pub items: u64,
    /// Money that ATS had already subtracted: a local void cannot give it back.
    pub reflected_cents: Cents,
    /// Item units that ATS had already subtracted.
    pub reflected_items: u64,
}

impl TicketLedger {
    /// Applies a (newer) ATS answer: drops below the baseline count as reflected.
    /// Returns `false` (and changes nothing) when `record` is older than one already
    /// applied.
    pub fn reconcile(&mut self, record: &TicketRecord) -> bool {
        if record.fetched_at_ms < self.seen_at_ms {
            return false;
        }
        for v in &record.value {
            if let Some(line) = self.lines.get_mut(&v.av_id) {
                if let Some(base) = line.baseline {
                    let drop = base.saturating_sub(v.balance);
                    line.unreflected -= line.unreflected.min(drop);
                }
                line.baseline = Some(v.balance);
            }
        }
        self.seen_at_ms = record.fetched_at_ms;
        true
    }

    /// What may still be spent on `line` (cents or units), never negative.
    pub fn available(&self, line: &ValueLine) -> u64 {
        match self.lines.get(&line.av_id) {
            None => line.balance,
            Some(l) => {
                let upstream = l.baseline.map_or(line.balance, |b| b.min(line.balance));
                upstream.saturating_sub(l.unreflected)
            }
        }
    }

    /// Records an approval: reconciles with the evidence `record` (when given), adds
    /// the money and items to the unreflected amounts, and counts offline money against
    /// this ticket. Denies only reconcile.
    pub fn record_decision(&mut self, decision: &Decision, record: Option<&TicketRecord>) {
        if let Some(r) = record {
            self.reconcile(r);
        }
        if decision.verdict != Verdict::Approve {
            return;
        }
        let balance_of = |av: &str| {
            record.and_then(|r| r.value.iter().find(|v| v.av_id == av).map(|v| v.balance))
        };
        let mut add = |av: &str, n: u64| {
            let line = self.lines.entry(av.to_string()).or_default();
            if line.baseline.is_none() {
                line.baseline = balance_of(av);
            }
            line.unreflected = line.unreflected.saturating_add(n);
            line.redeemed_total = line.redeemed_total.saturating_add(n);
        };
        for (av, cents) in &decision.money {
            add(av, *cents);
        }
        for item in &decision.items {
            add(&item.av_id, 1);
        }
        if decision.offline {
            self.offline_cents = self.offline_cents.saturating_add(decision.approved_cents);
        }
    }

    /// Gives back what an approval took (a void). Only amounts still unreflected come
    /// back; the rest is reported as already reflected upstream. `same_window` says
    /// whether the approval was made in the current offline window (its offline money
    /// then no longer counts against this ticket).
    pub fn restore(&mut self, decision: &Decision, same_window: bool) -> Restored {
        let mut out = Restored::default();
        let mut take = |av: &str, n: u64| -> u64 {
            match self.lines.get_mut(av) {
                None => 0,
                Some(line) => {
                    let back = line.unreflected.min(n);
                    line.unreflected -= back;
                    line.redeemed_total = line.redeemed_total.saturating_sub(n);
                    back
                }
            }
        };
        for (av, cents) in &decision.money {
            let back = take(av, *cents);
            out.cents += back;
            out.reflected_cents += cents - back;
        }
        for item in &decision.items {
            let back = take(&item.av_id, 1);
            out.items += back;
            out.reflected_items += 1 - back;
        }
        if decision.offline && same_window {
            self.offline_cents = self.offline_cents.saturating_sub(decision.approved_cents);
        }
        out
    }
}

/// The terminal's offline exposure since the offline window started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineUsage {
    /// Money approved offline.
    pub cents: Cents,
    /// Offline approvals (money or items).
    pub count: u64,
}

impl OfflineUsage {
    /// Counts an offline approval (anything else is ignored).
    pub fn record(&mut self, decision: &Decision) {
        if decision.offline && decision.verdict == Verdict::Approve {
            self.cents = self.cents.saturating_add(decision.approved_cents);
            self.count = self.count.saturating_add(1);
        }
    }

    /// Takes back a voided offline approval made in the current window.
    pub fn unrecord(&mut self, decision: &Decision) {
        if decision.offline && decision.verdict == Verdict::Approve {
            self.cents = self.cents.saturating_sub(decision.approved_cents);
            self.count = self.count.saturating_sub(1);
        }
    }
}
