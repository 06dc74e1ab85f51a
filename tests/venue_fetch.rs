//! One fetch per event (issue 13 items 2-4), with real processes of the binary against a
//! real PostgreSQL and the ATS sandbox.
//!
//! The hole these close, measured on main: four terminals on one key (80 calls a minute)
//! started together at a 20,000-ticket event each fetched the whole event themselves;
//! the key ran out within seconds (6 answers 429) and 152 of 160 scans of funded tickets
//! in the next 20 s were denied `offline_unknown`. Here one terminal at a time holds the
//! event's lease and pages the listing into the venue ticket table, and every stand
//! copies it:
//! - four stands starting together: the event costs ATS one pass (tickets/500 + a few
//!   calls), no answer 429, and once every stand has copied it no funded ticket is denied
//!   and no scan calls ATS;
//! - the holder SIGKILLed mid-pass: another stand takes the lease over once it expires
//!   and resumes the pass after the last page written (the event is not fetched twice);
//! - a ticket that leaves the listing (voided) is marked removed by the next completed
//!   pass, and another stand stops approving it within one sync interval of that.
//!
//! Progress is read from the venue database (`venue_fetch_leases`, `venue_fetch_copies`),
//! polled with a deadline; no fixed sleeps.
#![cfg(feature = "venue")]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use concession_agent::sandbox::{DataSet, Faults, SandboxConfig, SandboxHandle};
use support::pg::{self, Cluster};
use support::venue::{self, Stand, StandConfig, TICKET_CENTS};

/// The event the sandbox's generated tickets belong to.
const EVENT: &str = "event01";

/// A stand's configuration: prefetch at start (through the lease), the ATS key's real
/// limits, and the lease and sync periods given.
fn stand_config(
    dir: &std::path::Path,
    name: &str,
    ats: &str,
    db: &str,
    lease_ms: u64,
    sync_ms: u64,
    cache_extra: &str,
) -> PathBuf {
    let mut c = StandConfig::new(name, ats, db);
    c.deadline_ms = 3000;
    c.venue_timeout_ms = 1000;
    c.venue_extra = format!("lease_ms = {lease_ms}\nsync_interval_ms = {sync_ms}\n");
    let path = c.write(&dir.join(name));
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("rate_per_minute = 10000", "rate_per_minute = 80")
        .replace("rate_per_day = 10000000", "rate_per_day = 5000")
        .replace(
            "prefetch_at_start = false",
            &format!("prefetch_at_start = true\n{cache_extra}"),
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `f` every 50 ms until it is `Some`, at most `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(holder, unexpired, pages, complete, ever completed, taken over)` of the event's
/// lease, if one was taken.
fn lease_row(c: &Cluster, db: &str) -> Option<(String, bool, u64, bool, bool, u64)> {
    let out = c
        .try_psql(
            db,
            &format!(
                "SELECT holder, expires_at > now(), pages, pass_complete, \
                 last_complete_pass_ms IS NOT NULL, taken_over \
                 FROM venue_fetch_leases WHERE event = '{EVENT}'"
            ),
        )
        .ok()?;
    let f: Vec<&str> = out.trim().split('|').collect();
    if f.len() != 6 {
        return None;
    }
    Some((
        f[0].to_string(),
        f[1] == "t",
        f[2].parse().ok()?,
        f[3] == "t",
        f[4] == "t",
        f[5].parse().ok()?,
    ))
}

/// The newest change in the venue ticket table, and how many rows it holds.
fn newest_change(c: &Cluster, db: &str) -> (i64, u64) {
    let out = c.psql(
        db,
        "SELECT coalesce(max(change_seq), 0), count(*) FROM venue_tickets",
    );
    let (a, b) = out.trim().split_once('|').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// How far `terminal` has copied the ticket table (0: not yet).
fn copied(c: &Cluster, db: &str, terminal: &str) -> i64 {
    c.try_psql(
        db,
        &format!("SELECT copied_seq FROM venue_fetch_copies WHERE terminal = '{terminal}'"),
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// Waits until the event's first pass completed and every one of `terminals` copied the
/// table up to its newest change; returns that change.
fn wait_fetched_everywhere(
    c: &Cluster,
    db: &str,
    terminals: &[String],
    timeout: Duration,
    stands: &[Stand],
) -> i64 {
    let done = poll(timeout, || {
        lease_row(c, db).filter(|l| l.4 && l.3).map(|_| ())
    });
    assert!(
        done.is_some(),
        "the event's listing did not complete within {timeout:?}: {:?}; stderr:\n{}",
        lease_row(c, db),
        stands
            .iter()
            .map(Stand::stderr)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let (newest, _) = newest_change(c, db);
    let all = poll(timeout, || {
        terminals
            .iter()
            .all(|t| copied(c, db, t) >= newest)
            .then_some(())
    });
    assert!(
        all.is_some(),
        "not every stand copied the ticket table up to change {newest}: {:?}",
        terminals
            .iter()
            .map(|t| (t, copied(c, db, t)))
            .collect::<Vec<_>>()
    );
    newest
}

fn sandbox_with_key_limits(tickets: usize) -> SandboxHandle {
    let mut data = DataSet::builtin();
    data.generate(tickets);
    // The sandbox's real limits for one key: 80 calls a minute, 5000 a day.
    support::sandbox_with(SandboxConfig {
        data,
        ..SandboxConfig::default()
    })
}

#[test]
fn four_stands_starting_together_fetch_a_20000_ticket_event_once_and_approve_from_the_copy() {
    let Some(cluster) = pg::shared("four_stands_fetch_once") else {
        return;
    };
    let db = cluster.fresh_db();
    let tickets = 20_000;
    let sb = sandbox_with_key_limits(tickets);
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=4).map(|i| format!("stand-{i}")).collect();
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| stand_config(tmp.path(), n, &sb.base_url(), &db, 3000, 200, ""))
        .collect();
    let t0 = Instant::now();
    let mut stands: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut stands {
        s.wait_serving(Duration::from_secs(30));
    }
    wait_fetched_everywhere(cluster, &db, &names, Duration::from_secs(120), &stands);
    let fetched_in = t0.elapsed();
    let cold = sb.stats();
    let pages = cold.calls("get_av_barcodes");
    eprintln!(
        "every stand had the whole event after {:.1} s; ATS calls: {} get_av_barcodes, {} \
         total, {} answered 429",
        fetched_in.as_secs_f64(),
        pages,
        cold.total_requests,
        cold.status(429)
    );
    assert!(
        pages <= (tickets / 500 + 5) as u64,
        "the event was fetched once, not once per stand: {pages} listing calls"
    );
    // `venue status` says who holds the lease and where the pass stands.
    let (ok, out, err) = venue::agent(&configs[0], &["venue", "status", "--format", "json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &r["fetches"][0];
    assert_eq!(
        (
            &f["event"],
            &f["live"],
            &f["pass_complete"],
            &f["ever_completed"]
        ),
        (
            &serde_json::Value::from("event01"),
            &serde_json::Value::from(true),
            &serde_json::Value::from(true),
            &serde_json::Value::from(true)
        ),
        "{r:#}"
    );
    assert!(names.iter().any(|n| f["holder"] == n.as_str()), "{f}");
    assert_eq!(f["tickets"].as_u64(), Some(tickets as u64 + 5), "{f}");
    let (ok, text, err) = venue::agent(&configs[0], &["venue", "status"]);
    assert!(ok, "{err}");
    assert!(
        text.contains("fetch of event01: held by stand-") && text.contains("last pass complete"),
        "{text}"
    );
    assert_eq!(cold.status(429), 0, "no answer 429: {cold:?}");

    // Every stand approves funded tickets from its copy, calling ATS for none of them.
    let mut denied = Vec::new();
    for (i, s) in stands.iter_mut().enumerate() {
        for k in 0..25 {
            let n = (i * 4_999 + k * 797) % tickets;
            let d = s.decide(&venue::ticket(n), Duration::from_secs(10));
            if !d.approve || d.cents != TICKET_CENTS {
                denied.push((s.config.clone(), n, d.reason.clone()));
            }
        }
    }
    assert!(
        denied.is_empty(),
        "funded tickets denied once the event was fetched: {denied:?}"
    );
    let after = sb.stats();
    assert_eq!(
        after.calls("verify_barcode") - cold.calls("verify_barcode"),
        0,
        "a scan of a copied ticket calls ATS: {after:?}"
    );
    assert_eq!(
        after.calls("get_av_barcodes"),
        pages,
        "no stand fetched the event again"
    );
    assert_eq!(after.status(429), 0, "no answer 429: {after:?}");

    // A barcode the venue's listing leaves out is denied `not_listed` at every stand,
    // with no ATS call, once its copy has caught up with the completed pass (marked at
    // the first copy after it: within a sync interval).
    for (i, s) in stands.iter_mut().enumerate() {
        let mut k = 0;
        let first = poll(Duration::from_secs(10), || {
            k += 1;
            let d = s.decide(&format!("9999{i:02}{k:06}"), Duration::from_secs(10));
            (d.reason == "not_listed").then_some(d)
        });
        assert!(first.is_some(), "{}: no not_listed", s.config.display());
        let calls = sb.stats().total_requests;
        let barcode = format!("9998{i:02}000001");
        let d = s.decide(&barcode, Duration::from_secs(10));
        assert_eq!(d.reason, "not_listed", "{:?}", d.raw);
        assert_eq!(sb.stats().total_requests, calls, "not_listed makes no call");
        // Committed in the venue as any deny, in its own transaction (not uploaded later).
        assert_eq!(d.venue.as_deref(), Some("committed"), "{:?}", d.raw);
        let row = cluster.psql(
            &db,
            &format!("SELECT reason, uploaded FROM venue_decisions WHERE barcode = '{barcode}'"),
        );
        assert_eq!(row, "not_listed|f", "{barcode}");
    }
    for s in &mut stands {
        assert!(s.finish(Duration::from_secs(20)), "{}", s.stderr());
    }
}

#[test]
fn the_lease_holder_killed_mid_pass_is_replaced_within_a_lease_period_and_the_pass_resumes() {
    let Some(cluster) = pg::shared("lease_holder_killed") else {
        return;
    };
    let db = cluster.fresh_db();
    let tickets = 20_000;
    let sb = venue::sandbox(tickets);
    // Slow pages, so that the kill lands mid-pass.
    sb.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let lease_ms = 2000;
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=3).map(|i| format!("stand-{i}")).collect();
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| stand_config(tmp.path(), n, &sb.base_url(), &db, lease_ms, 200, ""))
        .collect();
    let mut stands: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut stands {
        s.wait_serving(Duration::from_secs(30));
    }
    let (holder, _, pages_at_kill, ..) = poll(Duration::from_secs(60), || {
        lease_row(cluster, &db).filter(|l| l.2 >= 5 && !l.3)
    })
    .expect("a pass under way");
    let i = names
        .iter()
        .position(|n| *n == holder)
        .expect("a stand holds it");
    stands[i].kill();
    let killed = Instant::now();
    let (next, ..) = poll(Duration::from_secs(30), || {
        lease_row(cluster, &db).filter(|l| l.0 != holder && l.1)
    })
    .unwrap_or_else(|| panic!("nobody took the lease over: {:?}", lease_row(cluster, &db)));
    let took = killed.elapsed();
    eprintln!(
        "holder {holder} killed after page {pages_at_kill}; {next} took over after {} ms \
         (lease {lease_ms} ms)",
        took.as_millis()
    );
    // Expiry (at most one lease after the last renewal) plus the taker's retry period
    // (an eighth of a lease) and the test's own polling.
    assert!(
        took <= Duration::from_millis(lease_ms + lease_ms / 8 + 500),
        "taken over after {took:?}, lease {lease_ms} ms"
    );
    let rest: Vec<String> = names.iter().filter(|n| **n != holder).cloned().collect();
    let live: Vec<Stand> = stands
        .into_iter()
        .enumerate()
        .filter(|(k, _)| *k != i)
        .map(|(_, s)| s)
        .collect();
    wait_fetched_everywhere(cluster, &db, &rest, Duration::from_secs(120), &live);
    let (_, _, pages, complete, ever, taken_over) = lease_row(cluster, &db).unwrap();
    assert!(complete && ever && taken_over >= 1);
    let full = tickets.div_ceil(500) as u64;
    assert!(
        pages >= full,
        "the resumed pass counts the pages before the kill: {pages} of {full}"
    );
    let calls = sb.stats().calls("get_av_barcodes");
    // One pass, resumed: at most the page the holder was fetching when killed again,
    // and the empty page that may end a listing.
    assert!(
        calls <= full + 3,
        "the pass resumed after the last page written instead of starting over: {calls} \
         listing calls for {full} pages"
    );
    let generated = cluster.psql(
        &db,
        &format!(
            "SELECT count(*) FROM venue_tickets WHERE barcode >= '{}' AND length(barcode) = 12",
            venue::ticket(0)
        ),
    );
    assert_eq!(
        generated.trim(),
        tickets.to_string(),
        "every generated ticket in the venue table, once"
    );
}

#[test]
fn a_ticket_removed_from_the_listing_stops_being_approvable_at_another_stand_within_a_sync_interval(
) {
    let Some(cluster) = pg::shared("removed_ticket") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(1000);
    let sync_ms = 300;
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=2).map(|i| format!("stand-{i}")).collect();
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            stand_config(
                tmp.path(),
                n,
                &sb.base_url(),
                &db,
                2000,
                sync_ms,
                "refresh_interval_ms = 10000",
            )
        })
        .collect();
    let mut stands: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut stands {
        s.wait_serving(Duration::from_secs(30));
    }
    wait_fetched_everywhere(cluster, &db, &names, Duration::from_secs(60), &stands);
    let (holder, ..) = lease_row(cluster, &db).unwrap();
    let other = names.iter().position(|n| *n != holder).unwrap();
    let voided = venue::ticket(7);
    sb.void_ticket(&voided).unwrap();
    // The next pass (10 s after the first) leaves it out and marks it removed.
    let seq: i64 = poll(Duration::from_secs(60), || {
        cluster
            .try_psql(
                &db,
                &format!(
                    "SELECT change_seq FROM venue_tickets WHERE barcode = '{voided}' AND removed"
                ),
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .expect("the voided ticket marked removed by the next pass");
    let removed_at = Instant::now();
    let reached = poll(Duration::from_secs(10), || {
        (copied(cluster, &db, &names[other]) >= seq).then_some(())
    });
    let lag = removed_at.elapsed();
    assert!(
        reached.is_some(),
        "{} never copied the removal",
        names[other]
    );
    eprintln!(
        "removal copied by the other stand {} ms after it was seen in the table (sync \
         interval {sync_ms} ms)",
        lag.as_millis()
    );
    // One sync interval, plus the copy itself and the test's polling of psql.
    assert!(
        lag <= Duration::from_millis(sync_ms + 700),
        "removal reached the other stand after {lag:?}"
    );
    let s = &mut stands[other];
    let d = s.decide(&voided, Duration::from_secs(10));
    assert!(!d.approve, "a removed ticket approved: {:?}", d.raw);
    assert_eq!(d.reason, "ticket_void", "{:?}", d.raw);
    let d = s.decide(&venue::ticket(8), Duration::from_secs(10));
    assert!(d.approve, "a listed ticket still approved: {:?}", d.raw);
}

#[test]
fn a_terminal_starting_late_or_prefetching_by_hand_copies_the_venue_table_instead_of_calling_ats() {
    let Some(cluster) = pg::shared("late_terminal") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(2000);
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=3).map(|i| format!("stand-{i}")).collect();
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| stand_config(tmp.path(), n, &sb.base_url(), &db, 2000, 200, ""))
        .collect();
    let mut first = Stand::spawn(&configs[0]);
    first.wait_serving(Duration::from_secs(30));
    wait_fetched_everywhere(
        cluster,
        &db,
        &names[..1],
        Duration::from_secs(60),
        std::slice::from_ref(&first),
    );
    let listing_calls = sb.stats().calls("get_av_barcodes");

    // `cache prefetch` at a stopped terminal: copied through the venue, no ATS page.
    let (ok, out, err) = venue::agent(&configs[1], &["cache", "prefetch"]);
    assert!(ok, "cache prefetch failed: {err}");
    assert!(out.contains("copied from the venue"), "{out}");
    assert_eq!(sb.stats().calls("get_av_barcodes"), listing_calls, "{err}");

    // A terminal started late copies the table at start.
    let mut late = Stand::spawn(&configs[2]);
    late.wait_serving(Duration::from_secs(30));
    wait_fetched_everywhere(
        cluster,
        &db,
        &names[2..],
        Duration::from_secs(60),
        std::slice::from_ref(&late),
    );
    assert_eq!(sb.stats().calls("get_av_barcodes"), listing_calls);
    let verify_before = sb.stats().calls("verify_barcode");
    let d = late.decide(&venue::ticket(1234), Duration::from_secs(10));
    assert!(d.approve && d.cents == TICKET_CENTS, "{:?}", d.raw);
    assert_eq!(
        sb.stats().calls("verify_barcode"),
        verify_before,
        "a copied ticket is decided without ATS"
    );
}

#[test]
fn a_ticket_fetched_live_at_one_stand_reaches_the_next_with_its_seat_and_no_ats_call() {
    let Some(cluster) = pg::shared("live_share") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(100);
    let tmp = tempfile::tempdir().unwrap();
    let names = ["stand-1".to_string(), "stand-2".to_string()];
    // No listing pass: the only way the ticket reaches the table is the live lookup.
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let p = stand_config(tmp.path(), n, &sb.base_url(), &db, 2000, 200, "");
            let t = std::fs::read_to_string(&p)
                .unwrap()
                .replace("prefetch_at_start = true", "prefetch_at_start = false");
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect();
    let mut a = Stand::spawn(&configs[0]);
    let mut b = Stand::spawn(&configs[1]);
    a.wait_serving(Duration::from_secs(30));
    b.wait_serving(Duration::from_secs(30));
    // A barcode ATS does not know (looked up: no listing here) is a deny without a
    // record: still committed in a transaction of its own, not uploaded later.
    let d = a.decide("999999999999", Duration::from_secs(10));
    assert_eq!(
        (d.reason.as_str(), d.venue.as_deref()),
        ("unknown_ticket", Some("committed")),
        "{:?}",
        d.raw
    );
    let row = cluster.psql(
        &db,
        "SELECT uploaded FROM venue_decisions WHERE barcode = '999999999999'",
    );
    assert_eq!(row, "f");
    let barcode = venue::ticket(42);
    let d = a.decide(&barcode, Duration::from_secs(10));
    assert!(d.approve, "{:?}", d.raw);
    assert_eq!(sb.stats().calls("verify_barcode"), 2, "stand-1 asked ATS");
    let seq: i64 = poll(Duration::from_secs(10), || {
        cluster
            .try_psql(
                &db,
                &format!(
                    "SELECT change_seq FROM venue_tickets WHERE barcode = '{barcode}' \
                     AND verified->>'section_name' IS NOT NULL"
                ),
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .expect("the live answer, with its seat, in the venue ticket table");
    poll(Duration::from_secs(10), || {
        (copied(cluster, &db, &names[1]) >= seq).then_some(())
    })
    .expect("stand-2 copied it");
    let d = b.decide(&barcode, Duration::from_secs(10));
    // Spent at stand-1 (a bare scan takes the whole balance): the venue ledger says so.
    assert_eq!(d.reason, "already_redeemed", "{:?}", d.raw);
    assert_eq!(
        sb.stats().calls("verify_barcode"),
        2,
        "stand-2 decided from the copy, without ATS"
    );
    assert!(b.finish(Duration::from_secs(20)), "{}", b.stderr());
    assert!(a.finish(Duration::from_secs(20)), "{}", a.stderr());
    // stand-2's seat index (SafeTix resolution) knows the seat from the venue table.
    let store = concession_agent::store::Store::open(
        &tmp.path().join("stand-2").join("store"),
        concession_agent::store::StoreOptions {
            terminal_id: "stand-2".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let rec = store.get_record(&barcode).unwrap().expect("copied record");
    let seat = concession_agent::store::seats::Seat::of(&rec).expect("a seat");
    let by_seat = store.record_by_seat(&seat).unwrap().expect("found by seat");
    assert_eq!(by_seat.barcode, barcode);
}

#[test]
fn a_holder_that_wakes_after_losing_its_lease_cannot_write_over_its_successor() {
    use concession_agent::venue::lease::{self, PassCursor};
    let Some(cluster) = pg::shared("lease_fence") else {
        return;
    };
    let db = cluster.fresh_db();
    let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    concession_agent::venue::schema::migrate(&mut c).unwrap();
    let short = Duration::from_millis(300);
    let a = lease::hold(&mut c, "EVENT01", "stand-a", short).unwrap();
    assert!(a.is_some_and(|h| h.taken && h.never_completed));
    assert!(
        lease::hold(&mut c, "event01", "stand-b", short)
            .unwrap()
            .is_none(),
        "an unexpired lease is not taken over (event names match case-insensitively)"
    );
    // stand-a pauses past its lease; stand-b takes over.
    let b = poll(Duration::from_secs(5), || {
        lease::hold(&mut c, "EVENT01", "stand-b", Duration::from_secs(30)).unwrap()
    })
    .expect("taken over once expired");
    assert!(b.taken);
    let cursor = PassCursor {
        pass_started_ms: 1,
        last_barcode: Some("200000000499".into()),
        pages: 1,
        tickets: 500,
        ..PassCursor::default()
    };
    let mut tx = c.transaction().unwrap();
    assert!(
        !lease::save_cursor(&mut tx, "EVENT01", "stand-a", short, &cursor, None).unwrap(),
        "the old holder's page is refused"
    );
    drop(tx);
    let mut tx = c.transaction().unwrap();
    assert!(lease::save_cursor(&mut tx, "EVENT01", "stand-b", short, &cursor, None).unwrap());
    tx.commit().unwrap();
    let again = lease::hold(&mut c, "EVENT01", "stand-b", short)
        .unwrap()
        .unwrap();
    assert!(!again.taken, "a renewal is not a takeover");
    assert_eq!(again.cursor, cursor, "the cursor is the successor's");
}
