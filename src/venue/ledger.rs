//! The venue's ledger of one ticket, as plain data: what `decide` reads and what an
//! entry does to the lines. No I/O (the worker reads and writes the rows).
//!
//! A row of `venue_lines` is one value line of one ticket: `loaded` is what ATS said
//! could be spent on it when a stand first saw it (`min(balance, amount)`: ATS never
//! learns of our redemptions), `redeemed` what every stand took since (minus voids).
//!
//! [`ticket_ledger`] turns the rows into the [`TicketLedger`] the money rules already
//! read: `baseline = loaded`, `unreflected = redeemed`, so `decide`'s
//! `min(balance, baseline) - unreflected` is exactly "what no stand has taken yet".
//! The rules stay in `decide`; only the ledger's origin changes.
//!
//! [`apply`] computes what a journal entry does to the rows: a decision adds its money
//! and items, a void takes them back (never below zero). What a decision takes beyond a
//! line's `loaded` is its overdraft: possible only for an entry decided without the
//! venue (offline at two stands), recorded with the entry, never refused.

use std::collections::BTreeMap;

use crate::decide::{LedgerLine, TicketLedger, Verdict};
use crate::money::Cents;
use crate::store::{EntryKind, JournalEntry};
use crate::ticket::{TicketRecord, ValueKind};

/// One row of `venue_lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueLine {
    /// The value line's id.
    pub av_id: String,
    /// Money or items.
    pub kind: ValueKind,
    /// What could be spent when first seen (cents or units).
    pub loaded: u64,
    /// What the venue's stands took since (cents or units).
    pub redeemed: u64,
}

/// `money` or `item`, as stored.
pub fn kind_str(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Money => "money",
        ValueKind::Item => "item",
    }
}

/// The inverse of [`kind_str`] (anything else reads as money).
pub fn kind_from(s: &str) -> ValueKind {
    if s == "item" {
        ValueKind::Item
    } else {
        ValueKind::Money
    }
}

/// The rows to create for a ticket first seen in `record` (`redeemed = 0`).
pub fn seed_from_record(record: &TicketRecord) -> Vec<VenueLine> {
    record
        .value
        .iter()
        .map(|v| VenueLine {
            av_id: v.av_id.clone(),
            kind: v.kind,
            loaded: v.balance.min(v.loaded),
            redeemed: 0,
        })
        .collect()
}

/// The rows to create before `entry` is applied: the record's lines, plus a line with
/// nothing loaded for any line the entry names that the record does not (the cache
/// lost it): its debit then shows as an overdraft instead of vanishing.
pub fn seed_for_entry(entry: &JournalEntry, record: Option<&TicketRecord>) -> Vec<VenueLine> {
    let mut seed = record
        .filter(|r| r.barcode == entry.barcode)
        .map(seed_from_record)
        .unwrap_or_default();
    let mut add = |av: &str, kind: ValueKind| {
        if !seed.iter().any(|l| l.av_id == av) {
            seed.push(VenueLine {
                av_id: av.to_string(),
                kind,
                loaded: 0,
                redeemed: 0,
            });
        }
    };
    for m in &entry.money {
        add(&m.av_id, ValueKind::Money);
    }
    for i in &entry.items {
        add(&i.av_id, ValueKind::Item);
    }
    seed
}

/// The ledger `decide` reads for a ticket whose rows are `lines`. `offline_cents` is
/// this terminal's offline money on the ticket (from its own ledger), so the
/// per-ticket offline cap still applies when ATS is away but the venue is not.
pub fn ticket_ledger(lines: &[VenueLine], offline_cents: Cents) -> TicketLedger {
    let mut out = TicketLedger {
        offline_cents,
        ..TicketLedger::default()
    };
    for l in lines {
        out.lines.insert(
            l.av_id.clone(),
            LedgerLine {
                unreflected: l.redeemed,
                baseline: Some(l.loaded),
                redeemed_total: l.redeemed,
            },
        );
    }
    out
}

/// What one entry does to its ticket's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// New `redeemed` per changed line.
    pub redeemed: BTreeMap<String, u64>,
    /// Money taken beyond what was loaded (decisions only).
    pub overdraft_cents: Cents,
    /// Item units taken beyond what was loaded.
    pub overdraft_items: u64,
}

/// Applies `entry` to `lines` (which must hold every line it names: see
/// [`seed_for_entry`]). A deny changes nothing.
pub fn apply(lines: &[VenueLine], entry: &JournalEntry) -> Applied {
    let mut out = Applied::default();
    if entry.verdict != Verdict::Approve {
        return out;
    }
    let mut take: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &entry.money {
        *take.entry(m.av_id.as_str()).or_default() += m.cents;
    }
    for i in &entry.items {
        *take.entry(i.av_id.as_str()).or_default() += 1;
    }
    for (av, n) in take {
        let line = lines.iter().find(|l| l.av_id == av);
        let (loaded, before, kind) =
            line.map_or((0, 0, ValueKind::Money), |l| (l.loaded, l.redeemed, l.kind));
        let after = match entry.kind {
            EntryKind::Decision => before.saturating_add(n),
            EntryKind::Void => before.saturating_sub(n),
        };
        if entry.kind == EntryKind::Decision {
            // Only the part of this debit that goes past `loaded` is its overdraft.
            let over = after.saturating_sub(loaded) - before.saturating_sub(loaded);
            match kind {
                ValueKind::Money => out.overdraft_cents += over,
                ValueKind::Item => out.overdraft_items += over,
            }
        }
        out.redeemed.insert(av.to_string(), after);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{
        self, DecideInput, Evidence, ItemGrant, Mode, OfflineUsage, Policy, ScanKind,
    };
    use crate::store::MoneyLine;
    use crate::ticket::ValueLine;

    fn money(av: &str, loaded: u64, redeemed: u64) -> VenueLine {
        VenueLine {
            av_id: av.into(),
            kind: ValueKind::Money,
            loaded,
            redeemed,
        }
    }

    fn entry(kind: EntryKind, money: &[(&str, u64)], items: &[&str]) -> JournalEntry {
        JournalEntry {
            id: "t-000000000001".into(),
            seq: 1,
            kind,
            scan_time_ms: 0,
            scan_time: String::new(),
            terminal: "t".into(),
            barcode_masked: String::new(),
            barcode: "100000000001".into(),
            verdict: Verdict::Approve,
            reason: "approved".into(),
            approved_cents: money.iter().map(|m| m.1).sum(),
            money: money
                .iter()
                .map(|(a, c)| MoneyLine {
                    av_id: a.to_string(),
                    cents: *c,
                })
                .collect(),
            items: items
                .iter()
                .map(|a| ItemGrant {
                    av_id: a.to_string(),
                    description: "pizza".into(),
                })
                .collect(),
            source: decide::Source::Live,
            offline: false,
            offline_window: 0,
            latency_ms: 0,
            request: None,
            void_of: None,
            voided_by: None,
            venue: None,
            safetix: None,
        }
    }

    #[test]
    fn a_debit_within_the_loaded_value_has_no_overdraft() {
        let a = apply(
            &[money("m", 2000, 500)],
            &entry(EntryKind::Decision, &[("m", 1500)], &[]),
        );
        assert_eq!(a.redeemed["m"], 2000);
        assert_eq!(a.overdraft_cents, 0);
    }

    #[test]
    fn an_upload_past_the_loaded_value_is_an_overdraft_of_the_excess_only() {
        let a = apply(
            &[money("m", 2000, 1500)],
            &entry(EntryKind::Decision, &[("m", 1000)], &[]),
        );
        assert_eq!(a.redeemed["m"], 2500, "the debit is recorded, not dropped");
        assert_eq!(a.overdraft_cents, 500);
        // A line already overdrawn: the whole new debit is overdraft.
        let a = apply(
            &[money("m", 2000, 2500)],
            &entry(EntryKind::Decision, &[("m", 300)], &[]),
        );
        assert_eq!(a.overdraft_cents, 300);
    }

    #[test]
    fn a_void_gives_value_back_and_never_below_zero() {
        let a = apply(
            &[money("m", 2000, 1500)],
            &entry(EntryKind::Void, &[("m", 1000)], &[]),
        );
        assert_eq!(a.redeemed["m"], 500);
        assert_eq!(a.overdraft_cents, 0);
        let a = apply(
            &[money("m", 2000, 100)],
            &entry(EntryKind::Void, &[("m", 1000)], &[]),
        );
        assert_eq!(a.redeemed["m"], 0);
    }

    #[test]
    fn item_units_past_the_loaded_count_are_item_overdrafts() {
        let lines = [VenueLine {
            av_id: "p".into(),
            kind: ValueKind::Item,
            loaded: 1,
            redeemed: 1,
        }];
        let a = apply(&lines, &entry(EntryKind::Decision, &[], &["p"]));
        assert_eq!(a.redeemed["p"], 2);
        assert_eq!(a.overdraft_items, 1);
        assert_eq!(a.overdraft_cents, 0);
    }

    #[test]
    fn a_deny_changes_no_line() {
        let mut e = entry(EntryKind::Decision, &[], &[]);
        e.verdict = Verdict::Deny;
        assert_eq!(apply(&[money("m", 1, 0)], &e), Applied::default());
    }

    #[test]
    fn a_line_the_cache_lost_is_seeded_empty_so_its_debit_is_all_overdraft() {
        let e = entry(EntryKind::Decision, &[("gone", 700)], &[]);
        let seed = seed_for_entry(&e, None);
        assert_eq!(seed, vec![money("gone", 0, 0)]);
        assert_eq!(apply(&seed, &e).overdraft_cents, 700);
    }

    /// The venue ledger fed to the unchanged `decide`: a second stand sees what the
    /// first took, and cannot take it again.
    #[test]
    fn decide_on_the_venue_ledger_approves_only_what_no_stand_took() {
        let record = TicketRecord {
            barcode: "100000000001".into(),
            info: Some(crate::ticket::TicketInfo {
                barcode: "100000000001".into(),
                event_name: "EV".into(),
                event_date: Some("2026-12-01".into()),
                event_time: None,
                acct_id: None,
                section_name: None,
                row_name: None,
                seat_num: None,
                price_code: None,
                status: crate::ticket::TicketStatus::Active,
            }),
            value: vec![ValueLine {
                av_id: "m".into(),
                kind: ValueKind::Money,
                description: "F&B".into(),
                loaded: 2000,
                balance: 2000,
                valid_from: None,
                valid_until: None,
            }],
            fetched_at_ms: 1,
        };
        let seed = seed_from_record(&record);
        assert_eq!(seed[0].loaded, 2000);
        let policy = Policy::default();
        let scan = ScanKind::Barcode(record.barcode.clone());
        let run = |lines: &[VenueLine], amount| {
            let ledger = ticket_ledger(lines, 0);
            decide::decide(&DecideInput {
                scan: &scan,
                requested: Some(amount),
                evidence: Evidence::Live(&record),
                mode: Mode::Online,
                ledger: &ledger,
                usage: OfflineUsage::default(),
                policy: &policy,
                today: "2026-12-01",
                events: &[],
                clock_trusted: true,
            })
        };
        let d = run(&[money("m", 2000, 1500)], 1000);
        assert_eq!(d.approved_cents, 500, "{d:?}");
        let d = run(&[money("m", 2000, 2000)], 1000);
        assert_eq!(d.reason, decide::Reason::AlreadyRedeemed);
    }
}
