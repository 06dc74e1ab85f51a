//! Venue mode, issue 12 item 10: SIGKILL of a terminal between its local write and its
//! venue commit.
//!
//! The window is hit deterministically, not by many trials: the terminal reaches the
//! database through a [`CommitTrap`], a wire-protocol proxy that, once armed, catches
//! the terminal's next `COMMIT`. Four cases, on one store and one venue database, each
//! a terminal lifetime ended by SIGKILL:
//!
//! | trap | killed | the venue then holds the decision |
//! |---|---|---|
//! | hold the COMMIT | the moment the COMMIT is caught | no (the server rolls back) |
//! | hold the COMMIT | after the POS got its (pending) line | no |
//! | swallow the answer | the moment the COMMIT is caught | yes, the terminal cannot know |
//! | swallow the answer | after the POS got its (pending) line | yes, in doubt |
//!
//! After each kill the terminal starts again on the same store, replays, serves one more
//! scan and stops; `venue sync` exits 0. Then every decision any POS received and every
//! entry of the journal is in the venue ledger exactly once, as received, no ticket is
//! spent beyond its value, and a ticket whose POS was told after an in-doubt commit nets
//! to exactly what that POS was told (the first attempt reversed, committed or not).
#![cfg(feature = "venue")]

mod support;

use std::time::Duration;

use support::pg::{self, CommitTrap, TrapMode};
use support::venue::{self, Decision, Stand, StandConfig, TICKET_CENTS};

#[derive(Debug, Clone, Copy)]
enum KillAt {
    Commit,
    AfterPos,
}

#[test]
fn sigkill_between_the_local_write_and_the_venue_commit_loses_and_doubles_nothing() {
    let Some(cluster) = pg::shared("venue_crash") else {
        return;
    };
    let db = cluster.fresh_db();
    let trap = CommitTrap::start(cluster.port());
    let db_name = db.rsplit('/').next().unwrap().to_string();
    let sb = venue::sandbox(20);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StandConfig::new("crash-stand", &sb.base_url(), &trap.url(&db_name));
    cfg.deadline_ms = 1000;
    cfg.venue_timeout_ms = 300;
    let config = cfg.write(tmp.path());

    let mut told: Vec<Decision> = Vec::new();
    let mut next = 0usize;
    let mut fresh = || {
        next += 1;
        venue::ticket(next - 1)
    };

    // Warm-up: the path works through the trap.
    let mut stand = Stand::spawn(&config);
    stand.wait_serving(Duration::from_secs(20));
    let d = stand.decide(&fresh(), Duration::from_secs(10));
    assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    stand.kill();
    told.append(&mut stand.decisions);

    let cases = [
        (TrapMode::HoldCommit, KillAt::Commit),
        (TrapMode::HoldCommit, KillAt::AfterPos),
        (TrapMode::SwallowReply, KillAt::Commit),
        (TrapMode::SwallowReply, KillAt::AfterPos),
    ];
    let mut report = Vec::new();
    // (barcode, cents the POS was told) of the cases killed after the POS line.
    let mut told_after: Vec<(String, u64, TrapMode)> = Vec::new();
    for (mode, kill_at) in cases {
        let mut stand = Stand::spawn(&config);
        stand.wait_serving(Duration::from_secs(20));
        // Replay of the previous case first: let its commit pass.
        let d = stand.decide(&fresh(), Duration::from_secs(10));
        assert_eq!(
            d.venue.as_deref(),
            Some("committed"),
            "{mode:?}/{kill_at:?}: {d:?}"
        );

        let barcode = fresh();
        // The COMMIT of this scan's transaction, not of a replay running meanwhile.
        trap.arm_for(mode, &barcode);
        stand.send(&barcode);
        assert!(
            trap.wait_sprung(Duration::from_secs(10)),
            "{mode:?}/{kill_at:?}: the terminal never sent a COMMIT for its scan"
        );
        let pos_line = match kill_at {
            KillAt::Commit => None,
            KillAt::AfterPos => {
                let d = stand
                    .next_decision(Duration::from_secs(5))
                    .unwrap_or_else(|| {
                        panic!(
                            "{mode:?}: no decision within the deadline:\n{}",
                            stand.stderr()
                        )
                    });
                assert_eq!(
                    d.venue.as_deref(),
                    Some("pending"),
                    "{mode:?}: a commit without an answer must be reported pending: {d:?}"
                );
                assert!(d.latency_ms <= 1000, "{mode:?}: {} ms", d.latency_ms);
                told_after.push((barcode.clone(), d.cents, mode));
                Some(d)
            }
        };
        stand.kill();
        let stderr = stand.stderr();
        told.append(&mut stand.decisions);

        // What the venue holds for that scan now, before any replay.
        let in_venue_now = |cluster: &pg::Cluster| -> usize {
            cluster
                .psql(
                    &db,
                    &format!(
                        "SELECT count(*) FROM venue_decisions WHERE barcode = '{barcode}' \
                         AND verdict = 'approve'"
                    ),
                )
                .parse()
                .unwrap()
        };
        let committed = if mode == TrapMode::SwallowReply {
            support::wait_for(Duration::from_secs(10), || {
                (in_venue_now(cluster) == 1).then_some(())
            })
            .is_some()
        } else {
            // The trap closes the server side once the terminal is gone: rolled back.
            support::wait_for(Duration::from_secs(10), || {
                (cluster.psql(
                    &db,
                    "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%'",
                ) == "0")
                    .then_some(())
            });
            in_venue_now(cluster) == 1
        };
        assert_eq!(
            committed,
            mode == TrapMode::SwallowReply,
            "{mode:?}/{kill_at:?}: the venue's view of the killed commit; its rows: {}\n\
             the terminal said:\n{stderr}",
            cluster.psql(
                &db,
                &format!(
                    "SELECT verdict, reason, kind FROM venue_decisions \
                     WHERE barcode = '{barcode}'"
                )
            )
        );
        let journal = venue::journal_export(&config);
        let journaled = journal.iter().any(|r| r["barcode"] == barcode.as_str());
        if let Some(d) = &pos_line {
            assert!(
                journal.iter().any(|r| venue::id_of(r) == d.id),
                "{mode:?}: the POS was told {} and the journal lacks it",
                d.id
            );
        }
        report.push(format!(
            "{mode:?}/{kill_at:?}: POS told {}, journaled before the kill {journaled}, \
             committed in the venue {committed}",
            pos_line
                .map(|d| format!("{} {}", d.raw["decision"], d.venue.unwrap_or_default()))
                .unwrap_or_else(|| "nothing".into())
        ));
    }

    // Last lifetime: replay the last case, one scan, clean stop.
    let mut stand = Stand::spawn(&config);
    stand.wait_serving(Duration::from_secs(20));
    let d = stand.decide(&fresh(), Duration::from_secs(10));
    assert_eq!(d.venue.as_deref(), Some("committed"), "{d:?}");
    assert!(stand.finish(Duration::from_secs(20)), "{}", stand.stderr());
    told.append(&mut stand.decisions);
    let (ok, err) = venue::venue_sync(&config);
    assert!(ok, "venue sync: {err}");

    let export = venue::venue_export(&config);
    let check = venue::check_ledger(&export, &told);
    let journaled = venue::check_journals_in_ledger(&export, std::slice::from_ref(&config));
    assert_eq!(
        journaled, check.rows,
        "the ledger holds the journal and nothing else"
    );
    for (t, spent) in &check.spent {
        assert!(*spent <= TICKET_CENTS as i64, "ticket {t}: {spent} cents");
    }
    // The in-doubt scans: the ledger nets to what the POS was told (the first attempt,
    // committed or not, is reversed by its void), never to both.
    for (b, cents, mode) in &told_after {
        assert_eq!(
            check.spent.get(b).copied().unwrap_or(0),
            *cents as i64,
            "{mode:?}: ticket {b} nets to something else than the {cents} cents the POS \
             was told"
        );
    }
    eprintln!("VENUE CRASH:\n  {}", report.join("\n  "));
    drop(sb);
}
