//! Venue mode's durability with `venue.synchronous_commit = "off"` (docs/venue.md,
//! "Durability and latency"), against a real PostgreSQL started by the test.
//!
//! With asynchronous commits the server acknowledges a decision's `COMMIT` before its
//! WAL is flushed, so an immediate shutdown (a crash) loses the last commits. The
//! stand's journal holds every one of them; its replay watermark only moves past a
//! commit once the server's flushed WAL position covers it, so the replay brings the
//! lost ones back. Here the server's `wal_writer_delay` is at its maximum, so the WAL of
//! the last commits stays in the server's buffers (not even written to the OS) and a
//! SIGQUIT really loses them; the test checks that it did, then that after replay every
//! decision a POS was told is in the venue ledger exactly once:
//!
//! 1. the stand lives through the crash (it is stopped meanwhile, so the test can count
//!    what the server lost before the stand reconnects);
//! 2. the stand and the server die together (SIGKILL, then SIGQUIT): the restarted stand
//!    replays from its watermark file.
//!
//! Also: a reload on ATS raises a venue line's `loaded`, never lowers `redeemed`.
#![cfg(feature = "venue")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use concession_agent::decide::{self, Decision, ItemGrant, Reason, Source, Verdict};
use concession_agent::store::{NewDecision, Store, StoreOptions, TicketRecord};
use concession_agent::venue::ledger::{seed_from_record, ticket_ledger};
use concession_agent::venue::{Begin, CommitOutcome, RawVenue, VenueHandle, VenueSettings};
use support::pg::{self, Cluster, ClusterOptions};
use support::venue::{self, Decision as Told, Stand, StandConfig};

const WAIT: Duration = Duration::from_secs(10);

/// The ids of the venue ledger now.
fn ledger_ids(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .psql("venue", "SELECT id FROM venue_decisions")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Acknowledged `committed` decisions the ledger does not hold now.
fn lost(told: &[Told], have: &BTreeSet<String>) -> usize {
    told.iter()
        .filter(|d| d.venue.as_deref() == Some("committed") && !have.contains(&d.id))
        .count()
}

fn stop_process(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

#[test]
fn a_server_crash_that_loses_unflushed_commits_loses_no_acknowledged_decision_after_replay() {
    let Some(_) = pg::available("venue_durability") else {
        return;
    };
    let cluster = Cluster::new(ClusterOptions {
        durable: false,
        settings: vec![("wal_writer_delay".into(), "10s".into())],
    });
    let url = cluster.create_db("venue");
    let sb = venue::sandbox(80);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = StandConfig::new("stand-1", &sb.base_url(), &url);
    c.venue_extra = "synchronous_commit = \"off\"".into();
    let config = c.write(&tmp.path().join("stand-1"));
    let mut told: Vec<Told> = Vec::new();
    // A cache filled (and synced) before the event, as `prefetch_at_start` does: a stand
    // killed with the server then still has the ATS record of every ticket it replays.
    // (Without it, the replay seeds a lost line with nothing loaded and its debit shows
    // as an overdraft: recorded, not lost; docs/venue.md.)
    let (ok, _, err) = venue::agent(&config, &["cache", "prefetch"]);
    assert!(ok, "cache prefetch: {err}");

    // 1. The stand lives through the crash.
    let mut stand = Stand::spawn(&config);
    stand.wait_serving(Duration::from_secs(20));
    for i in 0..10 {
        let d = stand.decide(&venue::ticket(i), WAIT);
        assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    }
    let pid = stand.pid();
    stop_process(pid, libc::SIGSTOP);
    cluster.crash();
    cluster.start();
    let lost_alive = lost(&stand.decisions, &ledger_ids(&cluster));
    stop_process(pid, libc::SIGCONT);
    // The stand reconnects on its own; its first scans may be decided locally meanwhile.
    for i in 10..20 {
        stand.decide(&venue::ticket(i), WAIT);
    }
    // Each attempt on a fresh ticket (a second scan of a ticket is a second spend).
    let mut next = 20;
    assert!(
        support::wait_for(WAIT, || {
            let d = stand.decide(&venue::ticket(next), WAIT);
            next += 1;
            (d.venue.as_deref() == Some("committed")).then_some(())
        })
        .is_some(),
        "the stand never committed in the venue again after the restart"
    );

    // 2. The stand and the server die together, right after its last commits.
    for i in next..next + 10 {
        let d = stand.decide(&venue::ticket(i), WAIT);
        assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    }
    stand.kill();
    cluster.crash();
    cluster.start();
    told.append(&mut stand.decisions);
    let have = ledger_ids(&cluster);
    let lost_both = lost(&told, &have);
    // The killed stand's watermark file never claims a commit the crash could lose.
    let first_lost = told
        .iter()
        .filter(|d| d.venue.as_deref() == Some("committed") && !have.contains(&d.id))
        .filter_map(|d| d.id.rsplit('-').next()?.parse::<u64>().ok())
        .min();
    let file = std::fs::read_to_string(tmp.path().join("stand-1/store/venue_uploaded"))
        .unwrap_or_default();
    let saved: u64 = file
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if let Some(first) = first_lost {
        assert!(
            saved < first,
            "the watermark file says {saved}, past entry {first} that the crash lost"
        );
    }
    eprintln!(
        "acknowledged `committed` decisions the crash lost: {lost_alive} (stand alive), \
         {lost_both} (stand killed too); the killed stand's watermark file: {saved}, \
         first lost entry: {first_lost:?}"
    );
    assert!(
        lost_alive > 0 && lost_both > 0,
        "the crashes lost no acknowledged commit ({lost_alive}, {lost_both}): the test \
         did not exercise the replay (is synchronous_commit off?)"
    );

    let mut stand = Stand::spawn(&config);
    stand.wait_serving(Duration::from_secs(20));
    for i in next + 10..next + 15 {
        stand.decide(&venue::ticket(i), WAIT);
    }
    assert!(
        stand.finish(WAIT),
        "stand stops cleanly: {}",
        stand.stderr()
    );
    told.append(&mut stand.decisions);
    let (ok, err) = venue::venue_sync(&config);
    assert!(ok, "venue sync: {err}");

    let export = venue::venue_export(&config);
    let check = venue::check_ledger(&export, &told);
    let overdrawn: Vec<&serde_json::Value> = export
        .iter()
        .filter(|r| r["overdraft_cents"].as_i64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(
        check.overdraft_cents, 0,
        "one stand never overdraws: {overdrawn:?}"
    );
    let entries = venue::check_journals_in_ledger(&export, std::slice::from_ref(&config));
    assert_eq!(
        entries,
        export.len(),
        "nothing in the ledger but the journal"
    );
    sb.shutdown();
}

const BC: &str = "100000000001";

fn record(loaded: u64, balance: u64) -> TicketRecord {
    support::fixtures::money_record(BC, loaded, balance)
}

fn approval(cents: u64) -> Decision {
    Decision {
        verdict: Verdict::Approve,
        reason: Reason::Approved,
        approved_cents: cents,
        money: vec![("m1".into(), cents)],
        items: Vec::<ItemGrant>::new(),
        source: Source::Live,
        offline: false,
    }
}

#[test]
fn a_reload_on_ats_raises_the_venue_lines_loaded_and_never_lowers_what_was_redeemed() {
    let Some(cluster) = pg::shared("venue_durability") else {
        return;
    };
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("t1"),
        StoreOptions {
            terminal_id: "t1".into(),
            machine_id: None,
            min_free_bytes: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let settings = VenueSettings::from_raw(RawVenue {
        url: Some(url.clone()),
        timeout_ms: Some(2000),
        ..RawVenue::default()
    })
    .unwrap();
    let v = VenueHandle::start(settings, store.clone()).unwrap();
    v.start_up(true, WAIT).unwrap();
    let lines_with = |rec: &TicketRecord| {
        let Begin::Locked(txn) = v.begin(BC, seed_from_record(rec), WAIT) else {
            panic!("venue away");
        };
        let l = txn.lines()[0].clone();
        (txn, (l.loaded, l.redeemed))
    };

    // First seen with $20; $15 redeemed.
    let first = record(2000, 2000);
    let (txn, seen) = lines_with(&first);
    assert_eq!(seen, (2000, 0));
    let ledger = ticket_ledger(txn.lines(), 0);
    assert_eq!(ledger.lines["m1"].baseline, Some(2000));
    store.put_record(&first).unwrap();
    let entry = store
        .commit_decision(&NewDecision {
            scan_time_ms: 1,
            barcode: BC,
            decision: &approval(1500),
            evidence: Some(&first),
            latency_ms: 0,
            request: None,
        })
        .unwrap();
    assert!(matches!(
        txn.commit(&entry, WAIT),
        CommitOutcome::Committed { .. }
    ));

    // The fan reloads $10 on ATS (ATS never learned of the $15): loaded $30, balance $30.
    // The raise is part of the scan's transaction: committed with its decision.
    let reloaded = record(3000, 3000);
    let (txn, seen) = lines_with(&reloaded);
    assert_eq!(
        seen,
        (3000, 1500),
        "the reload raised loaded, redeemed kept"
    );
    store.put_record(&reloaded).unwrap();
    let entry = store
        .commit_decision(&NewDecision {
            scan_time_ms: 2,
            barcode: BC,
            decision: &approval(1000),
            evidence: Some(&reloaded),
            latency_ms: 0,
            request: None,
        })
        .unwrap();
    assert!(matches!(
        txn.commit(&entry, WAIT),
        CommitOutcome::Committed { .. }
    ));
    // A stand with an older record (before the reload) never lowers it back.
    let (txn, seen) = lines_with(&first);
    assert_eq!(seen, (3000, 2500), "a stale record lowered loaded");
    let ledger = ticket_ledger(txn.lines(), 0);
    let policy = decide::Policy::default();
    let d = decide::decide(&decide::DecideInput {
        scan: &decide::ScanKind::Barcode(BC.into()),
        requested: Some(5000),
        evidence: decide::Evidence::Live(&reloaded),
        mode: decide::Mode::Online,
        ledger: &ledger,
        usage: Default::default(),
        policy: &policy,
        today: "2026-12-01",
        events: &[],
        clock_trusted: true,
    });
    assert_eq!(
        d.approved_cents, 500,
        "what is left after the reload: {d:?}"
    );
    drop(txn);
    v.shutdown(WAIT);
}
