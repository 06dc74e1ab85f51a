//! Venue mode, issue 12 item 10: four terminal processes (the real binary) scanning the
//! same tickets at once against one venue database and one ATS sandbox.
//!
//! The hole this closes, measured on main before venue mode: three terminals each
//! approved the same two tickets, $210 spent of $70 loaded. Here four stands start
//! together (each migrates at start, under the advisory lock), then each scans every
//! ticket, in its own shuffled order, closed-loop. Afterwards:
//! - no ticket is spent beyond its value in the venue ledger (`venue export`);
//! - every ticket is spent somewhere (bare scans take the whole balance);
//! - every decision a POS received is in the venue ledger exactly once, as received;
//! - every entry of every stand's own journal (`journal export`) is there exactly once.
#![cfg(feature = "venue")]

mod support;

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use support::pg;
use support::venue::{self, Rng, Stand, StandConfig, TICKET_CENTS};

const STANDS: usize = 4;
const TICKETS: usize = 30;

#[test]
fn four_stands_scanning_the_same_tickets_at_once_spend_each_ticket_once() {
    let Some(cluster) = pg::shared("four_stands_scanning_the_same_tickets_at_once") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(TICKETS);
    let tmp = tempfile::tempdir().unwrap();
    let configs: Vec<_> = (0..STANDS)
        .map(|i| {
            let mut c = StandConfig::new(&format!("stand-{}", i + 1), &sb.base_url(), &db);
            // This test is about contention, not latency: a loaded 2-core machine must
            // not turn row-lock waits into offline decisions.
            c.deadline_ms = 5000;
            c.venue_timeout_ms = 1500;
            c.write(&tmp.path().join(format!("stand-{}", i + 1)))
        })
        .collect();
    let tickets: Vec<String> = (0..TICKETS).map(venue::ticket).collect();
    let mut rng = Rng(0x5eed_0004);
    let lists: Vec<Vec<String>> = (0..STANDS)
        .map(|_| {
            let mut l = tickets.clone();
            rng.shuffle(&mut l);
            l
        })
        .collect();

    // All four start at once: migrations race unless the advisory lock holds.
    let stands: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    let progress = AtomicUsize::new(0);
    let mut stands = venue::scan_all(stands, lists, Duration::from_secs(20), &progress);
    for s in &mut stands {
        assert!(
            s.finish(Duration::from_secs(20)),
            "{} did not stop cleanly:\n{}",
            s.config.display(),
            s.stderr()
        );
    }
    let told: Vec<_> = stands.iter().flat_map(|s| s.decisions.clone()).collect();
    assert_eq!(told.len(), STANDS * TICKETS, "one decision per scan");
    let pending: Vec<_> = told
        .iter()
        .filter(|d| d.venue.as_deref() != Some("committed"))
        .collect();
    assert!(
        pending.is_empty(),
        "with the database up, every decision is committed in the venue ledger; these \
         were not: {:?}",
        pending
            .iter()
            .map(|d| (&d.terminal, &d.reason, &d.venue))
            .collect::<Vec<_>>()
    );

    let export = venue::venue_export(&configs[0]);
    let check = venue::check_ledger(&export, &told);
    assert_eq!(
        check.rows,
        told.len(),
        "the ledger holds exactly the decisions made"
    );
    for t in &tickets {
        let spent = check.spent.get(t).copied().unwrap_or(0);
        assert!(
            spent <= TICKET_CENTS as i64,
            "OVERSPENT: ticket {t} spent {spent} cents of {TICKET_CENTS} loaded"
        );
        assert_eq!(
            spent, TICKET_CENTS as i64,
            "ticket {t} was not spent anywhere"
        );
    }
    assert_eq!(
        check.overdraft_cents, 0,
        "no overdraft while every stand is online"
    );
    let approvals = told.iter().filter(|d| d.approve).count();
    assert_eq!(approvals, TICKETS, "one approval per ticket, venue-wide");
    // Every stand took part (shuffled orders: each wins some tickets).
    let mut winners: Vec<&str> = told
        .iter()
        .filter(|d| d.approve)
        .map(|d| d.terminal.as_str())
        .collect();
    winners.sort();
    winners.dedup();
    eprintln!(
        "VENUE STANDS: {approvals} approvals over {} stands",
        winners.len()
    );
    // Recorded order, and paging: `--since` the id of a row gives exactly the rows after
    // it; CSV holds the same rows.
    let seqs: Vec<i64> = export
        .iter()
        .filter_map(|r| r["venue_seq"].as_i64())
        .collect();
    assert_eq!(seqs.len(), export.len(), "every row carries venue_seq");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "rows in recorded order"
    );
    let mid = export.len() / 2;
    let (ok, out, err) = venue::agent(
        &configs[1],
        &[
            "venue",
            "export",
            "--format",
            "jsonl",
            "--since",
            venue::id_of(&export[mid]),
        ],
    );
    assert!(ok, "venue export --since: {err}");
    let after: Vec<String> = out
        .lines()
        .map(|l| venue::id_of(&serde_json::from_str(l).unwrap()).to_string())
        .collect();
    let expected: Vec<String> = export[mid + 1..]
        .iter()
        .map(|r| venue::id_of(r).to_string())
        .collect();
    assert_eq!(after, expected, "--since pages without gap or repeat");
    let (ok, csv, err) = venue::agent(&configs[2], &["venue", "export", "--format", "csv"]);
    assert!(ok, "venue export --format csv: {err}");
    assert_eq!(
        csv.lines().count(),
        export.len() + 1,
        "CSV: a header and the same rows"
    );
    let journaled = venue::check_journals_in_ledger(&export, &configs);
    assert_eq!(
        journaled,
        told.len(),
        "every journal entry was told to a POS"
    );
    drop(sb);
}
