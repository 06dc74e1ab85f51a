//! The venue worker (src/venue/worker.rs) against a real PostgreSQL started by the test
//! (tests/support/pg.rs): migrations, the two-step redemption, replay by id, overdrafts,
//! a newer schema refused, and a hung database that never delays a scan past its wait.

#![cfg(feature = "venue")]

mod support;

use std::time::{Duration, Instant};

use concession_agent::decide::{self, Decision, ItemGrant, Reason, Source, Verdict};
use concession_agent::store::{NewDecision, Store, StoreOptions, TicketRecord};
use concession_agent::venue::ledger::{seed_from_record, ticket_ledger};
use concession_agent::venue::{
    Begin, CommitOutcome, RawVenue, VenueError, VenueHandle, VenueSettings,
};
use support::pg;

const BC: &str = "100000000001";

fn record(balance: u64) -> TicketRecord {
    support::fixtures::money_record(BC, 2000, balance)
}

fn approval(cents: u64, offline: bool) -> Decision {
    Decision {
        verdict: Verdict::Approve,
        reason: Reason::Approved,
        approved_cents: cents,
        money: vec![("m1".into(), cents)],
        items: Vec::<ItemGrant>::new(),
        source: if offline {
            Source::Offline
        } else {
            Source::Live
        },
        offline,
    }
}

fn store(dir: &std::path::Path, terminal: &str) -> Store {
    Store::open(
        &dir.join(terminal),
        StoreOptions {
            terminal_id: terminal.into(),
            machine_id: None,
            min_free_bytes: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn settings(url: &str, timeout_ms: u64) -> VenueSettings {
    VenueSettings::from_raw(RawVenue {
        url: Some(url.into()),
        timeout_ms: Some(timeout_ms),
        ..RawVenue::default()
    })
    .unwrap()
}

fn journal(
    store: &Store,
    d: &Decision,
    rec: &TicketRecord,
) -> concession_agent::store::JournalEntry {
    store.put_record(rec).unwrap();
    store
        .commit_decision(&NewDecision {
            scan_time_ms: 1,
            barcode: BC,
            decision: d,
            evidence: Some(rec),
            latency_ms: 0,
            request: None,
        })
        .unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_redemption_locks_decides_on_the_venue_ledger_and_commits_once_by_id() {
    let Some(cluster) = pg::shared("pg_worker") else {
        return;
    };
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let s1 = store(dir.path(), "t1");
    let v = VenueHandle::start(settings(&url, 2000), s1.clone()).unwrap();
    let report = v.start_up(true, WAIT).unwrap();
    let every: Vec<i32> = (1..=concession_agent::venue::schema::LATEST).collect();
    assert_eq!(
        report.migrated, every,
        "a fresh database gets every migration"
    );

    // Step 1: lines created from the record and locked; the ledger shows all 2000.
    let rec = record(2000);
    let Begin::Locked(txn) = v.begin(BC, seed_from_record(&rec), WAIT) else {
        panic!("venue away");
    };
    assert_eq!(txn.lines()[0].loaded, 2000);
    assert_eq!(txn.lines()[0].redeemed, 0);
    let ledger = ticket_ledger(txn.lines(), 0);
    let policy = decide::Policy::default();
    let d = decide::decide(&decide::DecideInput {
        scan: &decide::ScanKind::Barcode(BC.into()),
        requested: Some(1500),
        evidence: decide::Evidence::Live(&rec),
        mode: decide::Mode::Online,
        ledger: &ledger,
        usage: Default::default(),
        policy: &policy,
        today: "2026-12-01",
        events: &[],
        clock_trusted: true,
    });
    assert_eq!(d.approved_cents, 1500);
    let entry = journal(&s1, &d, &rec);
    assert_eq!(
        txn.commit(&entry, WAIT),
        CommitOutcome::Committed { overdraft_cents: 0 }
    );
    assert_eq!(
        cluster.psql(&url, "SELECT redeemed FROM venue_lines WHERE av_id = 'm1'"),
        "1500"
    );

    // A second stand now sees 500 left.
    let s2 = store(dir.path(), "t2");
    let v2 = VenueHandle::start(settings(&url, 2000), s2.clone()).unwrap();
    v2.start_up(true, WAIT).unwrap();
    let Begin::Locked(txn2) = v2.begin(BC, seed_from_record(&rec), WAIT) else {
        panic!("venue away");
    };
    assert_eq!(txn2.lines()[0].redeemed, 1500);
    drop(txn2); // rolled back: nothing recorded

    // A replay of everything changes nothing: the id is already there.
    let r = v.sync(WAIT).unwrap();
    assert_eq!((r.uploaded, r.pending), (0, 0));
    assert_eq!(
        cluster.psql(
            &url,
            "SELECT count(*), sum(approved_cents) FROM venue_decisions"
        ),
        "1|1500"
    );
    v.shutdown(WAIT);
    v2.shutdown(WAIT);
}

#[test]
fn offline_approvals_at_two_stands_upload_in_order_and_the_excess_is_an_overdraft() {
    let Some(cluster) = pg::shared("pg_worker") else {
        return;
    };
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let rec = record(2000);
    let (s1, s2) = (store(dir.path(), "a"), store(dir.path(), "b"));
    // Both stands approved 1500 while the venue was away.
    let e1 = journal(&s1, &approval(1500, true), &rec);
    let e2 = journal(&s2, &approval(1500, true), &rec);
    // ...and stand a voided a second approval.
    let e3 = journal(&s1, &approval(200, true), &rec);
    s1.void(&e3.id, 2, None).unwrap();

    let v1 = VenueHandle::start(settings(&url, 2000), s1.clone()).unwrap();
    let r = v1.start_up(true, WAIT).unwrap();
    assert_eq!((r.uploaded, r.overdrafts, r.pending), (3, 0, 0), "{r:?}");
    let v2 = VenueHandle::start(settings(&url, 2000), s2.clone()).unwrap();
    let r = v2.start_up(true, WAIT).unwrap();
    assert_eq!((r.uploaded, r.overdrafts), (1, 1), "{r:?}");
    assert_eq!(
        cluster.psql(
            &url,
            &format!(
                "SELECT overdraft_cents FROM venue_decisions WHERE id = '{}'",
                e2.id
            )
        ),
        "1000"
    );
    // Recorded, not dropped; the void gave its 200 back.
    assert_eq!(
        cluster.psql(&url, "SELECT redeemed FROM venue_lines WHERE av_id = 'm1'"),
        "3000"
    );
    // Uploading again (a restart, `venue sync`) counts nothing twice.
    std::fs::remove_file(dir.path().join("a").join("venue_uploaded")).unwrap();
    let v1b = VenueHandle::start(settings(&url, 2000), s1.clone()).unwrap();
    let r = v1b.start_up(true, WAIT).unwrap();
    assert_eq!(r.uploaded, 0, "{r:?}");
    assert_eq!(
        cluster.psql(
            &url,
            "SELECT string_agg(id, ',' ORDER BY seq) FROM venue_decisions"
        ),
        format!(
            "{},{},{}-000000000003,{}",
            e1.id,
            e3.id,
            s1.id_prefix(),
            e2.id
        )
    );
    let mut out = Vec::new();
    let n = concession_agent::venue::cli::export(
        &settings(&url, 2000),
        "test",
        concession_agent::store::Format::Jsonl,
        None,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 4);
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[3]["overdraft_cents"], 1000);
    assert_eq!(rows[2]["verdict"], "void");
    assert_eq!(rows[1]["voided_by"], rows[2]["id"]);
    for v in [v1, v2, v1b] {
        v.shutdown(WAIT);
    }
}

#[test]
fn a_schema_newer_than_this_agent_is_refused_at_start() {
    let Some(cluster) = pg::shared("pg_worker") else {
        return;
    };
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "t");
    let v = VenueHandle::start(settings(&url, 2000), s.clone()).unwrap();
    v.start_up(true, WAIT).unwrap();
    cluster.psql(
        &url,
        "INSERT INTO venue_migrations (version, name) VALUES (99, 'future')",
    );
    v.shutdown(WAIT);
    let v = VenueHandle::start(settings(&url, 2000), s).unwrap();
    match v.start_up(true, WAIT) {
        Err(e @ VenueError::FutureSchema { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade the agent"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    v.shutdown(WAIT);
}

#[test]
fn a_hung_database_costs_a_scan_no_more_than_its_wait_and_the_worker_recovers() {
    let Some(_) = pg::available("pg_worker") else {
        return;
    };
    // Its own cluster: hanging the shared one would stall the other tests.
    let cluster = pg::Cluster::new(pg::ClusterOptions::default());
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "t");
    let v = VenueHandle::start(settings(&url, 200), s.clone()).unwrap();
    v.start_up(true, WAIT).unwrap();
    let rec = record(2000);
    let hang = cluster.hang();
    for _ in 0..5 {
        let t = Instant::now();
        let b = v.begin(BC, seed_from_record(&rec), Duration::from_millis(200));
        assert!(matches!(b, Begin::Away(_)));
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }
    // Meanwhile a pending decision is journaled; it is uploaded once the database
    // answers again.
    let e = journal(&s, &approval(700, true), &rec);
    drop(hang);
    let end = Instant::now() + WAIT;
    loop {
        if let Ok(r) = v.sync(Duration::from_secs(2)) {
            if r.pending == 0 {
                break;
            }
        }
        assert!(Instant::now() < end, "never caught up: {:?}", v.status());
    }
    assert_eq!(
        cluster.psql(
            &url,
            &format!(
                "SELECT approved_cents FROM venue_decisions WHERE id = '{}'",
                e.id
            )
        ),
        "700"
    );
    let Begin::Locked(txn) = v.begin(BC, seed_from_record(&rec), WAIT) else {
        panic!("venue still away: {:?}", v.status());
    };
    assert_eq!(txn.lines()[0].redeemed, 700);
    drop(txn);
    v.shutdown(WAIT);
}

#[test]
fn after_a_database_restart_the_next_scans_reconnect_without_waiting_for_a_backoff() {
    let Some(_) = pg::available("pg_worker") else {
        return;
    };
    let cluster = pg::Cluster::new(pg::ClusterOptions::default());
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "t");
    let v = VenueHandle::start(settings(&url, 300), s.clone()).unwrap();
    v.start_up(true, WAIT).unwrap();
    let rec = record(2000);
    cluster.restart();
    assert!(cluster.wait_ready(WAIT));
    // The old connection is dead; the first scan finds out, the next ones reconnect.
    let t = Instant::now();
    let mut tries = 0;
    let txn = loop {
        tries += 1;
        match v.begin(BC, seed_from_record(&rec), Duration::from_millis(300)) {
            Begin::Locked(txn) => break txn,
            Begin::Away(why) => {
                assert!(t.elapsed() < WAIT, "never reconnected: {why}");
            }
        }
    };
    assert!(tries <= 3, "{tries} scans to reconnect");
    drop(txn);
    v.shutdown(WAIT);
}

#[test]
fn a_database_away_at_start_is_migrated_when_it_answers_and_then_decides() {
    let Some(_) = pg::available("pg_worker") else {
        return;
    };
    let cluster = pg::Cluster::new(pg::ClusterOptions::default());
    let url = cluster.fresh_db();
    cluster.stop();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "t");
    let v = VenueHandle::start(settings(&url, 300), s.clone()).unwrap();
    assert!(v.start_up(true, Duration::from_secs(2)).is_err());
    let rec = record(2000);
    let e = journal(&s, &approval(300, true), &rec);
    cluster.start();
    assert!(cluster.wait_ready(WAIT));
    let end = Instant::now() + WAIT;
    let txn = loop {
        if let Begin::Locked(txn) = v.begin(BC, seed_from_record(&rec), Duration::from_millis(300))
        {
            break txn;
        }
        assert!(Instant::now() < end, "never ready: {:?}", v.status());
    };
    assert_eq!(txn.lines()[0].redeemed, 300, "the pending entry went first");
    drop(txn);
    assert_eq!(
        cluster.psql(
            &url,
            &format!("SELECT count(*) FROM venue_decisions WHERE id = '{}'", e.id)
        ),
        "1"
    );
    v.shutdown(WAIT);
}

/// docs/venue.md's grants are enough for a stand, and no more is needed: a terminal role
/// with only them starts (schema current), redeems, replays and exports; it cannot
/// rewrite a recorded decision.
#[test]
fn a_terminal_role_with_only_the_documented_grants_redeems_replays_and_exports() {
    let Some(cluster) = pg::shared("pg_worker") else {
        return;
    };
    let url = cluster.fresh_db();
    let db = url.rsplit('/').next().unwrap().to_string();
    let role = format!("terminal_{db}");
    // The owner migrates (as `venue migrate` would).
    concession_agent::venue::migrate_now(&settings(&url, 2000), "owner").unwrap();
    cluster.psql(
        &url,
        &format!(
            "CREATE ROLE {role} LOGIN;
             REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON venue_migrations TO {role};
             GRANT SELECT, INSERT, UPDATE ON venue_lines TO {role};
             GRANT SELECT, INSERT ON venue_decisions TO {role};
             GRANT USAGE ON SEQUENCE venue_decisions_seq_seq TO {role};"
        ),
    );
    let as_terminal = url.replacen(&format!("{}@", pg::USER), &format!("{role}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "t");
    let rec = record(2000);
    journal(&s, &approval(400, true), &rec);
    let v = VenueHandle::start(settings(&as_terminal, 2000), s.clone()).unwrap();
    let r = v.start_up(true, WAIT).unwrap();
    assert_eq!((r.migrated.len(), r.uploaded), (0, 1), "{r:?}");
    let Begin::Locked(txn) = v.begin(BC, seed_from_record(&rec), WAIT) else {
        panic!("venue away: {:?}", v.status());
    };
    assert_eq!(txn.lines()[0].redeemed, 400);
    let e = journal(&s, &approval(100, false), &rec);
    assert_eq!(
        txn.commit(&e, WAIT),
        CommitOutcome::Committed { overdraft_cents: 0 }
    );
    let mut out = Vec::new();
    let n = concession_agent::venue::export_now(
        &settings(&as_terminal, 2000),
        "t",
        concession_agent::store::Format::Jsonl,
        None,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 2);
    // A recorded decision cannot be rewritten by a stand.
    assert_eq!(
        cluster.psql(
            &url,
            &format!("SELECT has_table_privilege('{role}', 'venue_decisions', 'UPDATE')")
        ),
        "f"
    );
    v.shutdown(WAIT);
}
