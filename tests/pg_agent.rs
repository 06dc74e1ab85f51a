//! The agent's venue hooks (src/agent/venue.rs) in process, against a real PostgreSQL
//! behind the commit trap (tests/support/pg.rs): a commit whose answer never comes is
//! settled by id, never counted twice, and the POS hears the offline re-decision.

#![cfg(feature = "venue")]

mod support;

use std::time::Duration;

use concession_agent::app;
use support::pg::{self, CommitTrap, TrapMode};
use support::Harness;

const BC: &str = "100000000001"; // the sandbox's $20 ticket

fn harness(url: &str) -> Harness {
    let mut h = Harness::start(&format!(
        "deadline_ms = 2000\n[venue]\nurl = {url:?}\ntimeout_ms = 300\nstatement_timeout_ms = 300\n"
    ));
    let venue = app::start_venue(&h.config, h.agent.store()).expect("venue starts");
    h.agent.set_venue(venue);
    h
}

#[test]
fn a_committed_scan_says_committed_and_debits_the_venue_ledger() {
    let Some(cluster) = pg::shared("pg_agent") else {
        return;
    };
    let url = cluster.fresh_db();
    let mut h = harness(&url);
    let d = h.scan_amount(BC, 1500);
    assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    assert_eq!(d.approved_cents, 1500);
    let d = h.scan_amount(BC, 1500);
    assert_eq!(d.venue.as_deref(), Some("committed"));
    assert_eq!(
        d.approved_cents, 500,
        "the venue ledger had 500 left: {d:?}"
    );
    assert_eq!(
        cluster.psql(&url, "SELECT redeemed FROM venue_lines"),
        "2000"
    );
    assert_eq!(
        h.journal()[0].venue.as_deref(),
        Some("venue"),
        "the journal marks a decision made on the venue ledger"
    );
    h.agent.shutdown();
}

#[test]
fn a_commit_in_doubt_is_voided_decided_again_offline_and_settled_once_by_id() {
    let Some(cluster) = pg::shared("pg_agent") else {
        return;
    };
    let db = cluster.fresh_db();
    let trap = CommitTrap::start(cluster.port());
    let url = trap.url(db.rsplit('/').next().unwrap());
    let mut h = harness(&url);
    // The commit lands; its answer never comes.
    trap.arm(TrapMode::SwallowReply);
    let d = h.scan_amount(BC, 1500);
    assert!(trap.wait_sprung(Duration::from_secs(5)));
    assert_eq!(d.venue.as_deref(), Some("pending"), "{d:?}");
    assert_eq!(d.approved_cents, 1500, "offline caps allow 1500: {d:?}");
    let journal = h.journal();
    assert_eq!(journal.len(), 3, "{journal:?}");
    let (x, void, y) = (&journal[0], &journal[1], &journal[2]);
    assert_eq!(void.void_of.as_deref(), Some(x.id.as_str()));
    assert_eq!(void.reason, "venue_in_doubt");
    assert_eq!(y.id, d.id, "the POS heard the second decision");
    assert!(y.offline);
    assert_eq!(y.venue.as_deref(), Some("pending"));

    // The worker is stuck on the swallowed connection; between scans the agent starts
    // a new one, which uploads the void and the second decision (the first committed).
    let settled = support::wait_for(Duration::from_secs(20), || {
        h.agent.tick();
        let ids = cluster.psql(
            &db,
            "SELECT string_agg(id, ',' ORDER BY seq) FROM venue_decisions",
        );
        (ids == format!("{},{},{}", x.id, void.id, y.id)).then_some(())
    });
    assert!(
        settled.is_some(),
        "venue ledger: {}",
        cluster.psql(
            &db,
            "SELECT string_agg(id, ',' ORDER BY seq) FROM venue_decisions"
        )
    );
    // Counted once: 1500 (first) - 1500 (its reversal) + 1500 (what the POS was told).
    assert_eq!(
        cluster.psql(&db, "SELECT redeemed FROM venue_lines"),
        "1500"
    );
    // And the next scan is decided on the venue ledger again.
    let d = h.scan_amount(BC, 1500);
    assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    assert_eq!(d.approved_cents, 500, "{d:?}");
    h.agent.shutdown();
}
