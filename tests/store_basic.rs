//! Store round trips: schema, cache, ledger, commit, void, offline usage, reopen.

mod support;

use std::path::Path;

use concession_agent::decide::{
    decide, DecideInput, Decision, Evidence, Mode, OfflineUsage, Policy, Reason, ScanKind, Source,
    Verdict,
};
use concession_agent::store::{
    EntryKind, NewDecision, Store, StoreError, StoreOptions, TicketRecord, VoidError,
    SCHEMA_VERSION,
};
use concession_agent::ticket::{TicketInfo, ValueKind, ValueLine};
use support::fixtures::ticket_info;

const TODAY: &str = "2026-11-27";
const T0: u64 = 1_795_795_445_123;

fn opts() -> StoreOptions {
    StoreOptions {
        terminal_id: "stand-7".into(),
        ..StoreOptions::default()
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, opts()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn line(av: &str, kind: ValueKind, n: u64, balance: u64) -> ValueLine {
    ValueLine {
        av_id: av.into(),
        kind,
        description: if kind == ValueKind::Item {
            "Hot Dog".into()
        } else {
            "F&B credit".into()
        },
        loaded: n,
        balance,
        valid_from: None,
        valid_until: None,
    }
}

fn record(barcode: &str, value: Vec<ValueLine>, fetched_at_ms: u64) -> TicketRecord {
    TicketRecord {
        barcode: barcode.into(),
        info: Some(TicketInfo {
            acct_id: Some(100479),
            ..ticket_info(barcode, Some(TODAY))
        }),
        value,
        fetched_at_ms,
    }
}

/// Decides a scan against the store's current ledger and usage, and commits it.
fn scan(
    store: &Store,
    rec: &TicketRecord,
    requested: Option<u64>,
    mode: Mode,
    live: bool,
) -> (Decision, concession_agent::store::JournalEntry) {
    let ledger = store.ledger(&rec.barcode).unwrap_or_else(|e| panic!("{e}"));
    let usage = store.offline_usage().unwrap_or_else(|e| panic!("{e}"));
    let scan = ScanKind::Barcode(rec.barcode.clone());
    let evidence = if live {
        Evidence::Live(rec)
    } else {
        Evidence::Cached {
            record: rec,
            age_ms: 60_000,
        }
    };
    let policy = Policy::default();
    let d = decide(&DecideInput {
        scan: &scan,
        requested,
        evidence,
        mode,
        ledger: &ledger,
        usage,
        policy: &policy,
        today: TODAY,
        events: &[],
        clock_trusted: true,
    });
    let entry = store
        .commit_decision(&NewDecision {
            scan_time_ms: T0,
            barcode: &rec.barcode,
            decision: &d,
            evidence: Some(rec),
            latency_ms: 12,
            request: Some("pos-1"),
        })
        .unwrap_or_else(|e| panic!("commit: {e}"));
    (d, entry)
}

/// sled itself, behind the store's back (sled frees its lock shortly after a drop).
/// A store in `dir` where $20 ticket 100000000001 was redeemed for $1 once (in `mode`,
/// from a live or cached record), then closed cleanly (flushed). Returns the record.
fn redeemed_once(dir: &Path, mode: Mode, live: bool) -> TicketRecord {
    let rec = record(
        "100000000001",
        vec![line("AV1001", ValueKind::Money, 2000, 2000)],
        T0,
    );
    let s = open(dir);
    scan(&s, &rec, Some(100), mode, live);
    s.flush().unwrap();
    rec
}

fn raw_open(dir: &Path) -> sled::Db {
    for _ in 0..300 {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    panic!("sled lock never released");
}

#[test]
fn creates_the_directory_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/store");
    let _s = open(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn refuses_a_database_from_a_future_version() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    {
        let db = raw_open(tmp.path());
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    match Store::open(tmp.path(), opts()) {
        Err(StoreError::FutureSchema { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            let msg = StoreError::FutureSchema { found, supported }.to_string();
            assert!(msg.contains("newer"), "{msg}");
        }
        other => panic!("expected FutureSchema, got {other:?}"),
    }
}

/// A version-1 store (no redo log) is upgraded in place and keeps its journal; a log
/// file found next to it is not its own, so it is set aside, not replayed into it.
#[test]
fn upgrades_a_version_1_store_and_sets_a_foreign_log_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = redeemed_once(tmp.path(), Mode::Online, true);
    // Make it a version-1 store again, with a log file it never wrote.
    let log_before = std::fs::read(tmp.path().join("wal")).unwrap();
    {
        let db = raw_open(tmp.path());
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &1u32.to_be_bytes()[..])
            .unwrap();
        meta.remove("wal_lap").unwrap();
        meta.remove("store_id").unwrap();
        db.flush().unwrap();
    }
    let s = open(tmp.path());
    assert_eq!(s.journal_len(), 1);
    assert_eq!(s.wal_replayed_at_open(), 0);
    let aside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("wal.orphaned."))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(tmp.path().join(&aside[0])).unwrap(),
        log_before
    );
    let (_, e) = scan(&s, &rec, Some(100), Mode::Online, true);
    assert_eq!(e.id, "stand-7-000000000002");
    drop(s);
    let db = raw_open(tmp.path());
    let v = db
        .open_tree("meta")
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_ref(), &SCHEMA_VERSION.to_be_bytes()[..]);
    assert_eq!(SCHEMA_VERSION, 3);
}

/// Format 1 of the store's values: a format byte, then JSON.
fn format_1<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![1u8];
    serde_json::to_writer(&mut out, v).unwrap();
    out
}

#[test]
fn upgrading_a_version_2_store_moves_its_cached_records_out_of_sled_without_losing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record(
        "100000000001",
        vec![line("AV1", ValueKind::Money, 2000, 1500)],
        T0,
    );
    let s = open(tmp.path());
    let (_, first) = scan(&s, &rec, Some(500), Mode::Online, true);
    drop(s);
    // What a version-2 agent left: its cache, a listing cursor and a seat in sled.
    let cursor = concession_agent::store::PrefetchCursor {
        pass_started_ms: T0 - 10,
        last_barcode: Some("100000000001".into()),
        pages: 3,
        tickets: 1500,
        ..Default::default()
    };
    let offline_only = record(
        "100000000002",
        vec![line("AV2", ValueKind::Money, 700, 700)],
        T0 + 5,
    );
    {
        let db = raw_open(tmp.path());
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &2u32.to_be_bytes()[..])
            .unwrap();
        let cache = db.open_tree("cache").unwrap();
        cache.insert("100000000001", format_1(&rec)).unwrap();
        cache
            .insert("100000000002", format_1(&offline_only))
            .unwrap();
        db.open_tree("prefetch")
            .unwrap()
            .insert("event01", format_1(&cursor))
            .unwrap();
        db.flush().unwrap();
    }
    let s = open(tmp.path());
    assert_eq!(s.get_record("100000000002").unwrap(), Some(offline_only));
    assert_eq!(s.get_record("100000000001").unwrap(), Some(rec.clone()));
    assert_eq!(s.prefetch_cursor("EVENT01").unwrap(), Some(cursor));
    assert_eq!(s.cache_stats().unwrap().entries, 2);
    assert_eq!(s.journal_len(), 1, "the journal stays in sled: {first:?}");
    let (_, e) = scan(&s, &rec, Some(100), Mode::Online, true);
    assert_eq!(e.id, "stand-7-000000000002");
    drop(s);
    // sled keeps no copy (a later pass must not be shadowed by it), and says version 3.
    let db = raw_open(tmp.path());
    let names: Vec<String> = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "cache" || n == "prefetch"),
        "{names:?}"
    );
    let v = db
        .open_tree("meta")
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_ref(), &3u32.to_be_bytes()[..]);
    drop(db);
    // Opening again moves nothing and loses nothing.
    let s = open(tmp.path());
    assert_eq!(s.cache_stats().unwrap().entries, 2);
}

#[test]
fn cache_round_trips_and_never_goes_back_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert_eq!(s.get_record("100000000001").unwrap(), None);
    let new = record(
        "100000000001",
        vec![line("AV1", ValueKind::Money, 2000, 1500)],
        2_000,
    );
    let old = record(
        "100000000001",
        vec![line("AV1", ValueKind::Money, 2000, 2000)],
        1_000,
    );
    assert!(s.put_record(&new).unwrap());
    assert!(!s.put_record(&old).unwrap());
    assert_eq!(s.get_record("100000000001").unwrap(), Some(new.clone()));
    let mut unknown = record("999999999999", vec![], 3_000);
    unknown.info = None;
    assert!(s.put_record(&unknown).unwrap());
    assert_eq!(s.get_record("999999999999").unwrap(), Some(unknown));

    let stats = s.cache_stats().unwrap();
    assert_eq!(stats.entries, 2);
    assert_eq!(stats.oldest_fetched_ms, Some(2_000));
    assert_eq!(stats.newest_fetched_ms, Some(3_000));
    assert!(stats.bytes_on_disk > 0);

    s.cache_clear().unwrap();
    assert_eq!(s.cache_stats().unwrap().entries, 0);
}

#[test]
fn prefetch_stores_many_records_in_one_batch_skipping_older_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let fresh = record("200000000000", vec![], 9_000);
    s.put_record(&fresh).unwrap();
    let batch: Vec<TicketRecord> = (0..300)
        .map(|i| record(&format!("2000000{i:05}"), vec![], 5_000))
        .collect();
    assert_eq!(s.put_records(&batch).unwrap(), 299);
    assert_eq!(s.get_record("200000000000").unwrap(), Some(fresh));
    assert_eq!(s.cache_stats().unwrap().entries, 300);
}

#[test]
fn commit_journals_and_debits_the_ledger_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let rec = record(
        "100000000008",
        vec![line("AV1008", ValueKind::Money, 5000, 5000)],
        T0,
    );
    let (d, e) = scan(&s, &rec, Some(1200), Mode::Online, true);
    assert_eq!(d.approved_cents, 1200);
    assert_eq!(e.id, "stand-7-000000000001");
    assert_eq!(e.kind, EntryKind::Decision);
    assert_eq!(e.barcode, "100000000008");
    assert_eq!(e.barcode_masked, "********0008");
    assert_eq!(e.scan_time, "2026-11-27T16:04:05.123Z");
    assert_eq!(e.request.as_deref(), Some("pos-1"));
    assert_eq!(e.decision(), d);
    let l = s.ledger("100000000008").unwrap();
    assert_eq!(l.lines["AV1008"].unreflected, 1200);
    assert_eq!(l.lines["AV1008"].baseline, Some(5000));
    assert_eq!(s.journal_entry(&e.id).unwrap(), Some(e.clone()));

    // The same record again: only the remainder is left.
    let (d2, e2) = scan(&s, &rec, None, Mode::Online, true);
    assert_eq!(d2.approved_cents, 3800);
    assert_eq!(e2.id, "stand-7-000000000002");
    let (d3, _) = scan(&s, &rec, None, Mode::Online, true);
    assert_eq!(d3.reason, Reason::AlreadyRedeemed);
    assert_eq!(s.journal_len(), 3);
    let ev = e2.to_event();
    assert_eq!((ev.approved_cents, ev.source.as_str()), (3800, "live"));
}

#[test]
fn denies_are_journaled_without_creating_a_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let d = Decision::deny(Reason::Unreadable, Source::Live, false);
    let e = s
        .commit_decision(&NewDecision {
            scan_time_ms: T0,
            barcode: "",
            decision: &d,
            evidence: None,
            latency_ms: 0,
            request: None,
        })
        .unwrap();
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(e.reason, "unreadable");
    let rec = record("100000000004", vec![], T0);
    let (d, _) = scan(&s, &rec, None, Mode::Online, true);
    assert_eq!(d.reason, Reason::NoValue);
    assert_eq!(s.ledger("100000000004").unwrap(), Default::default());
}

#[test]
fn reconcile_counts_a_lower_balance_as_reflected() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let rec = record(
        "100000000008",
        vec![line("AV1008", ValueKind::Money, 5000, 5000)],
        T0,
    );
    scan(&s, &rec, Some(1000), Mode::Online, true);
    // Nothing to reconcile for tickets without a ledger.
    assert!(!s.reconcile(&record("100000000001", vec![], T0)).unwrap());
    // Upstream reflected 600 of our 1000.
    let newer = record(
        "100000000008",
        vec![line("AV1008", ValueKind::Money, 5000, 4400)],
        T0 + 1,
    );
    assert!(s.reconcile(&newer).unwrap());
    let l = s.ledger("100000000008").unwrap();
    assert_eq!(l.lines["AV1008"].unreflected, 400);
    assert_eq!(l.lines["AV1008"].baseline, Some(4400));
    // Older answers change nothing; the same answer twice changes nothing.
    assert!(!s.reconcile(&rec).unwrap());
    assert!(!s.reconcile(&newer).unwrap());
    let (d, _) = scan(&s, &newer, None, Mode::Online, true);
    assert_eq!(d.approved_cents, 4000);
}

#[test]
fn void_restores_money_and_items_and_refuses_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let rec = record(
        "100000000003",
        vec![
            line("AV1003", ValueKind::Money, 1500, 1500),
            line("AV1004", ValueKind::Item, 1, 1),
        ],
        T0,
    );
    let (d, e) = scan(&s, &rec, None, Mode::Online, true);
    assert_eq!((d.approved_cents, d.items.len()), (1500, 1));
    let out = s.void(&e.id, T0 + 5_000, Some("pos-void")).unwrap();
    assert_eq!(out.restored_cents, 1500);
    assert_eq!(out.restored_items, 1);
    assert_eq!((out.upstream_cents, out.upstream_items), (0, 0));
    assert_eq!(out.entry.kind, EntryKind::Void);
    assert_eq!(out.entry.void_of.as_deref(), Some(e.id.as_str()));
    assert_eq!(out.entry.reason, "void");
    assert_eq!(
        s.journal_entry(&e.id).unwrap().unwrap().voided_by,
        Some(out.entry.id.clone())
    );
    // Value is back.
    let (d2, _) = scan(&s, &rec, None, Mode::Online, true);
    assert_eq!((d2.approved_cents, d2.items.len()), (1500, 1));

    match s.void(&e.id, T0, None) {
        Err(VoidError::AlreadyVoided { id, by }) => {
            assert_eq!((id, by), (e.id.clone(), out.entry.id.clone()))
        }
        other => panic!("expected AlreadyVoided, got {other:?}"),
    }
    assert!(matches!(
        s.void(&out.entry.id, T0, None),
        Err(VoidError::NotVoidable(_))
    ));
    assert!(matches!(
        s.void("stand-7-000000000999", T0, None),
        Err(VoidError::UnknownDecision(_))
    ));
    assert!(matches!(
        s.void("other-000000000001", T0, None),
        Err(VoidError::UnknownDecision(_))
    ));
    assert!(matches!(
        s.void("garbage", T0, None),
        Err(VoidError::BadId(_))
    ));
}

#[test]
fn void_reports_what_upstream_already_subtracted() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let rec = record(
        "100000000001",
        vec![line("AV1001", ValueKind::Money, 2000, 2000)],
        T0,
    );
    let (_, e) = scan(&s, &rec, Some(500), Mode::Online, true);
    s.reconcile(&record(
        "100000000001",
        vec![line("AV1001", ValueKind::Money, 2000, 1700)],
        T0 + 1,
    ))
    .unwrap();
    let out = s.void(&e.id, T0 + 2, None).unwrap();
    assert_eq!((out.restored_cents, out.upstream_cents), (200, 300));
}

#[test]
fn voiding_a_deny_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let rec = record("100000000004", vec![], T0);
    let (_, e) = scan(&s, &rec, None, Mode::Online, true);
    assert!(matches!(
        s.void(&e.id, T0, None),
        Err(VoidError::NotVoidable(_))
    ));
}

#[test]
fn offline_usage_accumulates_and_resets_with_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let a = record(
        "100000000008",
        vec![line("AV1008", ValueKind::Money, 5000, 5000)],
        T0,
    );
    let b = record(
        "100000000002",
        vec![line("AV1002", ValueKind::Item, 1, 1)],
        T0,
    );
    let (d, e) = scan(&s, &a, None, Mode::Offline, false);
    assert!(d.offline && e.offline);
    assert_eq!(d.approved_cents, 2500);
    assert_eq!(d.source, Source::Offline);
    let (d2, _) = scan(&s, &b, None, Mode::Offline, false);
    assert_eq!(d2.items.len(), 1);
    assert_eq!(
        s.offline_usage().unwrap(),
        OfflineUsage {
            cents: 2500,
            count: 2
        }
    );
    assert_eq!(s.ledger(&a.barcode).unwrap().offline_cents, 2500);
    // The ticket's offline cap is used up.
    let (d3, _) = scan(&s, &a, None, Mode::Offline, false);
    assert_eq!(d3.reason, Reason::OfflineLimit);

    // Void of an offline approval gives its exposure back.
    s.void(&e.id, T0, None).unwrap();
    assert_eq!(
        s.offline_usage().unwrap(),
        OfflineUsage { cents: 0, count: 1 }
    );
    assert_eq!(s.ledger(&a.barcode).unwrap().offline_cents, 0);
    let (d4, e4) = scan(&s, &a, Some(1000), Mode::Offline, false);
    assert_eq!(d4.approved_cents, 1000);

    s.reset_offline_window().unwrap();
    assert_eq!(s.offline_window().unwrap(), 1);
    assert_eq!(s.offline_usage().unwrap(), OfflineUsage::default());
    assert_eq!(s.ledger(&a.barcode).unwrap().offline_cents, 0);
    // Unreflected money is not forgotten by the reset.
    assert_eq!(
        s.ledger(&a.barcode).unwrap().lines["AV1008"].unreflected,
        1000
    );
    // A void from an earlier window gives value back but not exposure.
    s.void(&e4.id, T0, None).unwrap();
    assert_eq!(s.offline_usage().unwrap(), OfflineUsage::default());
    assert_eq!(s.ledger(&a.barcode).unwrap().lines["AV1008"].unreflected, 0);
}

#[test]
fn reopening_keeps_ledger_journal_usage_and_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record(
        "100000000008",
        vec![line("AV1008", ValueKind::Money, 5000, 5000)],
        T0,
    );
    let first_ids: Vec<String> = {
        let s = open(tmp.path());
        s.put_record(&rec).unwrap();
        let ids = (0..3)
            .map(|_| scan(&s, &rec, Some(100), Mode::Offline, false).1.id)
            .collect();
        drop(s);
        ids
    };
    let s = open(tmp.path());
    assert_eq!(s.get_record(&rec.barcode).unwrap(), Some(rec.clone()));
    assert_eq!(
        s.ledger(&rec.barcode).unwrap().lines["AV1008"].unreflected,
        300
    );
    assert_eq!(
        s.offline_usage().unwrap(),
        OfflineUsage {
            cents: 300,
            count: 3
        }
    );
    let ids: Vec<String> = s
        .journal_since(None)
        .unwrap()
        .map(|e| e.unwrap().id)
        .collect();
    assert_eq!(ids, first_ids);
    let (_, e) = scan(&s, &rec, Some(100), Mode::Online, true);
    assert_eq!(e.id, "stand-7-000000000004");
    assert!(e.id > first_ids[2]);
    assert_eq!(s.last_decision_id().unwrap(), Some(e.id));
}

#[test]
fn ids_increase_with_every_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let d = Decision::deny(Reason::Unreadable, Source::Live, false);
    let mut last = String::new();
    for _ in 0..50 {
        let e = s
            .commit_decision(&NewDecision {
                scan_time_ms: T0,
                barcode: "",
                decision: &d,
                evidence: None,
                latency_ms: 0,
                request: None,
            })
            .unwrap();
        assert!(e.id > last);
        last = e.id;
    }
    assert_eq!(last, "stand-7-000000000050");
}

#[test]
fn a_failed_commit_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    // Closed as the agent closes it: sled durable, nothing left to re-apply (a record
    // still in the redo log would be re-applied over the corruption below).
    let rec = redeemed_once(tmp.path(), Mode::Offline, false);
    {
        // Corrupt that ticket's ledger behind the store's back.
        let db = raw_open(tmp.path());
        db.open_tree("ledger")
            .unwrap()
            .insert("100000000001", &b"\x09garbage"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = open(tmp.path());
    let usage = s.offline_usage().unwrap();
    let d = decide(&DecideInput {
        scan: &ScanKind::Barcode(rec.barcode.clone()),
        requested: Some(100),
        evidence: Evidence::Cached {
            record: &rec,
            age_ms: 0,
        },
        mode: Mode::Offline,
        ledger: &Default::default(),
        usage,
        policy: &Policy::default(),
        today: TODAY,
        events: &[],
        clock_trusted: true,
    });
    assert!(d.is_approve());
    let err = s
        .commit_decision(&NewDecision {
            scan_time_ms: T0,
            barcode: &rec.barcode,
            decision: &d,
            evidence: Some(&rec),
            latency_ms: 0,
            request: None,
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!err.to_string().contains("100000000001"), "{err}");
    // No journal entry, no usage, no sequence number consumed.
    assert_eq!(s.journal_len(), 1);
    assert_eq!(s.offline_usage().unwrap(), usage);
    let other = record("100000000002", vec![], T0);
    let (_, e) = scan(&s, &other, None, Mode::Online, true);
    assert_eq!(e.id, "stand-7-000000000002");
}

/// A decision whose redo-log record is larger than the whole log (a ticket with dozens
/// of item lines, a 4 KiB log): the log grows for it, the decision is journaled and
/// survives a reopen, and the reopened log is back to its configured size.
#[test]
fn a_record_larger_than_the_log_grows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let small = StoreOptions {
        wal_capacity_bytes: 4096,
        ..opts()
    };
    let d = Decision {
        verdict: concession_agent::decide::Verdict::Approve,
        reason: Reason::Approved,
        approved_cents: 0,
        money: vec![],
        items: (0..40)
            .map(|i| concession_agent::decide::ItemGrant {
                av_id: format!("IT{i}"),
                description: "a very long item description ".repeat(8),
            })
            .collect(),
        source: Source::Live,
        offline: false,
    };
    let id = {
        let s = Store::open(tmp.path(), small.clone()).unwrap();
        let e = s
            .commit_decision(&NewDecision {
                scan_time_ms: T0,
                barcode: "100000000001",
                decision: &d,
                evidence: None,
                latency_ms: 0,
                request: None,
            })
            .unwrap();
        let log = std::fs::metadata(tmp.path().join("wal")).unwrap().len();
        assert!(log > 4096, "the log grew to {log} bytes");
        e.id
    };
    let s = Store::open(tmp.path(), small).unwrap();
    let e = s.journal_entry(&id).unwrap().expect("journaled");
    assert_eq!(e.items.len(), 40);
    assert_eq!(
        std::fs::metadata(tmp.path().join("wal")).unwrap().len(),
        4096
    );
}
