//! Venue mode, issue 12 item 10: failover to a promoted standby mid-run.
//!
//! A primary and a streaming standby (asynchronous, two clusters, two loopback ports);
//! two terminal processes reach them through the multi-host URL
//! `host=primary,standby` with `target_session_attrs=read-write`, going round their
//! tickets at a scanner's pace. The standby streams through a loopback link. After 30
//! commits, the link holds the stream (asynchronous replication falling behind), 20 more
//! commits are acknowledged to POSes on the primary alone, then the link drops what it
//! held and the primary dies (immediate shutdown: none of those commits reaches the
//! standby) and the standby is promoted. The terminals move to it on their own. Then,
//! after replay and `venue sync`:
//! - no decision acknowledged to a POS is missing from the promoted ledger, none is
//!   there twice, and each is as the POS was told (`venue export` through the same URL);
//! - every journal entry of both stands is there exactly once;
//! - no ticket is spent beyond its value except by recorded overdrafts.
//!
//! It also measures what asynchronous replication lost at the failover: decisions told
//! `committed` on the primary that the standby did not have when it was promoted (the
//! terminals' replay must bring them back).
#![cfg(feature = "venue")]

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::pg::{self, Cluster, ClusterOptions};
use support::venue::{self, Progress, Rng, Stand, StandConfig, TICKET_CENTS};

const STANDS: usize = 2;
const TICKETS: usize = 50;
const DEADLINE_MS: u64 = 1000;

#[test]
fn a_promoted_standby_holds_every_decision_acknowledged_to_a_pos_after_replay() {
    let Some(_) = pg::available("venue_failover") else {
        return;
    };
    let primary = Cluster::new(ClusterOptions::default());
    primary.create_db("venue");
    // The standby streams through a link of its own: the test cuts replication there.
    let replication = pg::Link::start(primary.port());
    let standby = primary.standby_through(&replication);
    let url = pg::multi_host_url(&[&primary, &standby], "venue");
    let sb = venue::sandbox(TICKETS);
    let tmp = tempfile::tempdir().unwrap();
    let configs: Vec<_> = (0..STANDS)
        .map(|i| {
            let mut c = StandConfig::new(&format!("stand-{}", i + 1), &sb.base_url(), &url);
            c.deadline_ms = DEADLINE_MS;
            c.write(&tmp.path().join(format!("stand-{}", i + 1)))
        })
        .collect();
    let tickets: Vec<String> = (0..TICKETS).map(venue::ticket).collect();
    let mut rng = Rng(0xfa11_0e55);
    let lists: Vec<Vec<String>> = (0..STANDS)
        .map(|_| {
            let mut l = tickets.clone();
            rng.shuffle(&mut l);
            l
        })
        .collect();
    let mut stands: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut stands {
        s.wait_serving(Duration::from_secs(20));
    }

    let progress = Progress::default();
    // (when the primary died, the ids the standby had at promotion)
    let at_failover: Mutex<Option<(Instant, BTreeSet<String>)>> = Mutex::new(None);
    let moved = Mutex::new(false);
    let stands = std::thread::scope(|s| {
        s.spawn(|| {
            let _stop = progress.stop_on_drop();
            let budget = Duration::from_secs(30);
            if progress.more_committed(30, budget) {
                // Replication falls behind: these commits never reach the standby.
                replication.set(pg::LinkMode::Blackhole);
                progress.more_committed(20, budget);
                let died = Instant::now();
                // The link drops what it held, then the primary dies (immediate
                // shutdown): none of those commits reaches the standby.
                replication.set(pg::LinkMode::Refuse);
                primary.crash();
                let ids: BTreeSet<String> = standby
                    .psql("venue", "SELECT id FROM venue_decisions")
                    .lines()
                    .map(str::to_string)
                    .collect();
                standby.promote();
                *at_failover.lock().unwrap() = Some((died, ids));
                // The stands move to the promoted standby on their own.
                *moved.lock().unwrap() = progress.more_committed(20, budget);
            }
        });
        venue::scan_until(
            stands,
            lists,
            Duration::from_millis(DEADLINE_MS) + Duration::from_secs(5),
            Duration::from_millis(10),
            &progress,
        )
    });
    assert!(
        moved.into_inner().unwrap(),
        "the stands did not commit on the promoted standby within 30 s"
    );
    let (died, standby_had) = at_failover
        .into_inner()
        .unwrap()
        .expect("the failover happened mid-run");
    let mut stands = stands;
    let told: Vec<_> = stands.iter().flat_map(|s| s.decisions.clone()).collect();
    for d in &told {
        assert!(
            d.latency_ms <= DEADLINE_MS,
            "{} took {} ms",
            d.id,
            d.latency_ms
        );
    }
    let lost_at_failover = told
        .iter()
        .filter(|d| d.venue.as_deref() == Some("committed") && d.at < died)
        .filter(|d| !standby_had.contains(&d.id))
        .count();
    let pending = told
        .iter()
        .filter(|d| d.venue.as_deref() == Some("pending"))
        .count();

    for s in &mut stands {
        assert!(s.finish(Duration::from_secs(20)), "{}", s.stderr());
    }
    for c in &configs {
        let (ok, err) = venue::venue_sync(c);
        assert!(ok, "venue sync through the promoted standby: {err}");
    }
    let export = venue::venue_export(&configs[0]);
    let check = venue::check_ledger(&export, &told);
    let journaled = venue::check_journals_in_ledger(&export, &configs);
    assert_eq!(journaled, check.rows);
    let mut over = std::collections::BTreeMap::<String, i64>::new();
    for row in &export {
        *over
            .entry(row["barcode"].as_str().unwrap_or_default().to_string())
            .or_default() += row["overdraft_cents"].as_i64().unwrap_or(0);
    }
    for (t, spent) in &check.spent {
        let o = over.get(t).copied().unwrap_or(0);
        assert!(
            *spent <= TICKET_CENTS as i64 + o,
            "ticket {t}: {spent} cents, overdraft {o}"
        );
        assert!(
            *spent <= (STANDS as u64 * TICKET_CENTS) as i64,
            "ticket {t}: {spent} cents, more than {STANDS} stands x its value"
        );
    }
    eprintln!(
        "VENUE FAILOVER: {} decisions, {pending} pending around the failover, \
         {lost_at_failover} acknowledged as committed on the primary but missing from the \
         standby at promotion (restored by replay), {} overdraft cents",
        told.len(),
        check.overdraft_cents
    );
    drop(sb);
}
