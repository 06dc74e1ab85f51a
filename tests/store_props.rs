//! Property test over the real store: random sequences of scans (online and offline),
//! POS amounts, voids, returns online and restarts (the store closed and reopened), with
//! `decide` judging each scan from the store's own ledger and offline usage. Checks that
//! offline exposure never exceeds its caps, that no value line is ever redeemed past what
//! was loaded, that amounts never go negative, and that a restart changes nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use concession_agent::decide::{
    decide, DecideInput, Evidence, Mode, OfflineCaps, Policy, ScanKind, Verdict,
};
use concession_agent::store::{NewDecision, Store, StoreOptions};
use concession_agent::ticket::{TicketInfo, TicketRecord, ValueKind, ValueLine};
use proptest::prelude::*;
use support::fixtures::ticket_info;

const TODAY: &str = "2026-11-27";
const NOW_MS: u64 = 1_795_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Scan {
        ticket: usize,
        requested: Option<u64>,
        offline: bool,
    },
    Void {
        pick: usize,
    },
    BackOnline,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..3usize, prop::option::of(1..3000u64), any::<bool>())
            .prop_map(|(ticket, requested, offline)| Op::Scan { ticket, requested, offline }),
        3 => any::<usize>().prop_map(|pick| Op::Void { pick }),
        1 => Just(Op::BackOnline),
        2 => Just(Op::Restart),
    ]
}

fn record(i: usize, money: u64, items: u64) -> TicketRecord {
    let barcode = format!("30000000000{i}");
    let mut value = vec![ValueLine {
        av_id: format!("AVM{i}"),
        kind: ValueKind::Money,
        description: "credit".into(),
        loaded: money,
        balance: money,
        valid_from: None,
        valid_until: None,
    }];
    if items > 0 {
        value.push(ValueLine {
            av_id: format!("AVI{i}"),
            kind: ValueKind::Item,
            description: "Pizza and a Coke".into(),
            loaded: items,
            balance: items,
            valid_from: None,
            valid_until: None,
        });
    }
    TicketRecord {
        barcode: barcode.clone(),
        info: Some(TicketInfo {
            acct_id: Some(100479),
            ..ticket_info(&barcode, Some(TODAY))
        }),
        value,
        fetched_at_ms: NOW_MS,
    }
}

/// An approval still standing: its id, money lines and item lines.
type Approved = (String, Vec<(String, u64)>, Vec<String>);

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            cache_capacity_bytes: 1 << 20,
            terminal_id: "prop".into(),
            // A 16 KiB redo log holds four records (one per page), so histories cross
            // its checkpoints and restarts.
            wal_capacity_bytes: 4 * 4096,
            ..StoreOptions::default()
        },
    )
    .expect("store opens")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn offline_caps_and_balances_hold_across_restarts(
        tickets in prop::collection::vec((0..6000u64, 0..3u64), 3),
        caps in (1..3000u64, 1..4000u64, 1..8000u64, 1..8u64),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let records: Vec<TicketRecord> =
            tickets.iter().enumerate().map(|(i, (m, n))| record(i, *m, *n)).collect();
        let policy = Policy {
            offline: OfflineCaps {
                per_transaction_cents: caps.0,
                per_ticket_cents: caps.1,
                total_cents: caps.2,
                total_count: caps.3,
                max_cache_age_ms: 3_600_000,
            },
            offline_partial: true,
            online_cache_max_age_ms: 30_000,
            ..Policy::default()
        };
        let events = vec!["EVENT01".to_string()];
        // Net approved per value line, and approved ids (for voids).
        let mut net: BTreeMap<String, u64> = BTreeMap::new();
        let mut approved: Vec<Approved> = Vec::new();
        let mut scans = 0usize;

        for op in ops {
            match op {
                Op::Scan { ticket, requested, offline } => {
                    let rec = &records[ticket];
                    let ledger = store.ledger(&rec.barcode).unwrap();
                    let usage = store.offline_usage().unwrap();
                    let scan = ScanKind::Barcode(rec.barcode.clone());
                    let evidence = if offline {
                        Evidence::Cached { record: rec, age_ms: 1_000 }
                    } else {
                        Evidence::Live(rec)
                    };
                    let d = decide(&DecideInput {
                        scan: &scan,
                        requested,
                        evidence,
                        mode: if offline { Mode::Offline } else { Mode::Online },
                        ledger: &ledger,
                        usage,
                        policy: &policy,
                        today: TODAY,
                        events: &events,
                        clock_trusted: true,
                    });
                    let entry = store.commit_decision(&NewDecision {
                        scan_time_ms: NOW_MS,
                        barcode: &rec.barcode,
                        decision: &d,
                        evidence: Some(rec),
                        latency_ms: 1,
                        request: None,
                    }).unwrap();
                    scans += 1;
                    if d.verdict == Verdict::Approve {
                        prop_assert!(!d.offline || d.approved_cents <= policy.offline.per_transaction_cents);
                        for (av, c) in &d.money {
                            *net.entry(av.clone()).or_default() += c;
                        }
                        for item in &d.items {
                            *net.entry(item.av_id.clone()).or_default() += 1;
                        }
                        approved.push((
                            entry.id.clone(),
                            d.money.clone(),
                            d.items.iter().map(|i| i.av_id.clone()).collect(),
                        ));
                    }
                    let after = store.offline_usage().unwrap();
                    prop_assert!(after.cents <= policy.offline.total_cents, "{after:?}");
                    prop_assert!(after.count <= policy.offline.total_count, "{after:?}");
                    let tl = store.ledger(&rec.barcode).unwrap();
                    prop_assert!(tl.offline_cents <= policy.offline.per_ticket_cents, "{tl:?}");
                }
                Op::Void { pick } => {
                    if approved.is_empty() {
                        continue;
                    }
                    let (id, money, items) = approved.remove(pick % approved.len());
                    store.void(&id, NOW_MS, None).unwrap();
                    for (av, c) in money {
                        *net.get_mut(&av).unwrap() -= c;
                    }
                    for av in items {
                        *net.get_mut(&av).unwrap() -= 1;
                    }
                }
                Op::BackOnline => store.reset_offline_window().unwrap(),
                Op::Restart => {
                    let usage = store.offline_usage().unwrap();
                    let ledgers: Vec<_> =
                        records.iter().map(|r| store.ledger(&r.barcode).unwrap()).collect();
                    let len = store.journal_len();
                    drop(store);
                    store = open(dir.path());
                    prop_assert_eq!(store.offline_usage().unwrap(), usage);
                    for (r, l) in records.iter().zip(&ledgers) {
                        prop_assert_eq!(&store.ledger(&r.barcode).unwrap(), l);
                    }
                    prop_assert_eq!(store.journal_len(), len);
                }
            }
            // Never more than was loaded on any line, whatever the mix of modes.
            for r in &records {
                for line in &r.value {
                    let n = net.get(&line.av_id).copied().unwrap_or(0);
                    prop_assert!(n <= line.loaded, "{}: {n} > {}", line.av_id, line.loaded);
                }
            }
        }
        prop_assert!(store.journal_len() >= scans);
    }
}
