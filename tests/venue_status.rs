//! `concession-agent venue status` (issue 14 item 3): real stands (processes of the real
//! binary) write heartbeats to a real PostgreSQL; `venue status` lists them.
//!
//! - two scanning stands are listed with their day, mode and budget; one killed (no
//!   heartbeat since) is `silent` once past the threshold, and a stand stopped cleanly
//!   says `stopped` (its last heartbeat), in text and JSON;
//! - a stand that approved offline while the venue database was away counts its pending
//!   uploads in its own `status` and metrics, and once it uploads, the overdraft it made
//!   is on its row.
#![cfg(feature = "venue")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pg;
use support::venue::{self, Stand, StandConfig, TICKET_CENTS};

/// `venue status ARGS...`: (success, stdout, stderr).
fn venue_status(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut a = vec!["venue", "status"];
    a.extend_from_slice(args);
    venue::agent(config, &a)
}

fn report(config: &Path) -> Value {
    let (ok, out, err) = venue_status(config, &["--format", "json"]);
    assert!(ok, "venue status failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("venue status json: {e}: {out}"))
}

fn row<'a>(r: &'a Value, terminal: &str) -> Option<&'a Value> {
    r["terminals"]
        .as_array()?
        .iter()
        .find(|t| t["terminal"] == terminal)
}

/// Polls `venue status` until `f` holds (heartbeats come every few seconds).
fn wait_report(config: &Path, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = report(config);
        if f(&r) {
            return r;
        }
        assert!(
            Instant::now() < until,
            "{what}: never held; last report:\n{r:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn venue_status_lists_two_scanning_stands_and_marks_the_one_gone_silent() {
    let Some(cluster) = pg::shared("venue_status_lists_two_stands") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(4);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = |name: &str| {
        let mut c = StandConfig::new(name, &sb.base_url(), &db);
        // This test is about what venue IT reads, not latency: a loaded 2-core machine
        // must not turn a slow commit into a pending decision.
        c.deadline_ms = 5000;
        c.venue_timeout_ms = 1500;
        c.write(&tmp.path().join(name))
    };
    let (c1, c2) = (cfg("stand-1"), cfg("stand-2"));
    let mut s1 = Stand::spawn(&c1);
    let mut s2 = Stand::spawn(&c2);
    s1.wait_serving(Duration::from_secs(20));
    s2.wait_serving(Duration::from_secs(20));
    for (s, tickets) in [(&mut s1, [0, 1]), (&mut s2, [2, 3])] {
        for t in tickets {
            let d = s.decide(&venue::ticket(t), Duration::from_secs(10));
            assert!(
                d.approve && d.venue.as_deref() == Some("committed"),
                "{:?}",
                d.raw
            );
        }
    }
    let r = wait_report(&c1, "both stands report two decisions", |r| {
        ["stand-1", "stand-2"]
            .iter()
            .all(|t| row(r, t).is_some_and(|x| x["today"]["decisions"] == 2 && x["state"] == "ok"))
    });
    for t in ["stand-1", "stand-2"] {
        let x = row(&r, t).unwrap();
        assert_eq!(x["mode"], "online", "{x:#}");
        assert_eq!(x["attention"], false, "{x:#}");
        assert_eq!(x["pending_uploads"], 0, "{x:#}");
        assert_eq!(x["today"]["approved_cents"], 2 * TICKET_CENTS, "{x:#}");
        assert_eq!(x["overdrafts"]["count"], 0, "{x:#}");
        assert!(x["ats_budget"]["minute"].as_u64().is_some(), "{x:#}");
        assert_eq!(x["version"], env!("CARGO_PKG_VERSION"), "{x:#}");
        assert!(x["last_decision"]["barcode"]
            .as_str()
            .is_some_and(|b| b.contains('*')));
    }
    assert_eq!(r["totals"]["terminals"], 2);
    assert_eq!(r["totals"]["decisions"], 4);
    assert_eq!(r["totals"]["approved_cents"], 4 * TICKET_CENTS);
    // The key's budget, venue-wide: the stands' calls and the allowances they hold are
    // counted against its 10,000 a minute (StandConfig's limit).
    let minute = r["venue_budget"]["minute"]
        .as_u64()
        .expect("a venue-wide budget");
    let day = r["venue_budget"]["day"]
        .as_u64()
        .expect("a venue-wide budget");
    assert!(
        minute < 10_000 && day < 10_000_000,
        "{:#}",
        r["venue_budget"]
    );
    // Whether an event's first pass holds the scans to the reserve (none runs here).
    assert_eq!(
        r["venue_budget"]["first_pass"], false,
        "{:#}",
        r["venue_budget"]
    );

    // SIGKILL: no goodbye heartbeat. Its last one is made an hour old (the threshold is
    // seconds; no test waits that out).
    s2.kill();
    cluster.psql(
        &db,
        "UPDATE venue_heartbeats SET seen_at = now() - interval '1 hour' \
         WHERE terminal = 'stand-2'",
    );
    let r = report(&c1);
    let x = row(&r, "stand-2").unwrap();
    assert_eq!(x["state"], "silent", "{x:#}");
    assert_eq!(x["attention"], true, "{x:#}");
    assert!(x["seen_ago_ms"].as_u64().unwrap() >= 3_600_000, "{x:#}");
    assert_eq!(row(&r, "stand-1").unwrap()["state"], "ok");
    assert_eq!(
        (r["totals"]["ok"].clone(), r["totals"]["silent"].clone()),
        (1.into(), 1.into())
    );

    let (ok, text, err) = venue_status(&c1, &[]);
    assert!(ok, "{err}");
    assert!(
        text.contains("2 terminals, 1 ok, 1 silent"),
        "header says the counts:\n{text}"
    );
    let line = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("no line for {t}:\n{text}"))
            .to_string()
    };
    let l2 = line("stand-2");
    assert!(l2.contains("SILENT") && l2.contains("60 min ago"), "{l2}");
    let l1 = line("stand-1");
    assert!(l1.contains(" ok ") && l1.contains("2 dec $20.00"), "{l1}");
    assert!(
        text.contains("venue-wide ATS budget: ") && text.contains("calls left this minute"),
        "{text}"
    );

    // A longer threshold: the same hour-old heartbeat is not silent.
    let (ok, json, err) = venue_status(&c1, &["--format", "json", "--silent-after-s", "7200"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(row(&r, "stand-2").unwrap()["state"], "ok");

    // A clean stop writes a last heartbeat: stopped, not silent.
    assert!(s1.finish(Duration::from_secs(20)), "{}", s1.stderr());
    let r = report(&c1);
    let x = row(&r, "stand-1").unwrap();
    assert_eq!(x["state"], "stopped", "{x:#}");
    assert_eq!(x["mode"], "stopping", "{x:#}");
}

#[test]
fn pending_uploads_count_while_the_venue_is_away_and_the_overdraft_shows_once_uploaded() {
    let Some(cluster) = pg::shared("venue_status_pending_and_overdraft") else {
        return;
    };
    let db = cluster.fresh_db();
    let sb = venue::sandbox(2);
    let tmp = tempfile::tempdir().unwrap();
    let dir2 = tmp.path().join("stand-2");
    let metrics = dir2.join("stand.prom");
    // stand-2 first runs against a port where no database listens.
    let dead = db.replace(
        &format!(":{}/", cluster.port()),
        &format!(":{}/", pg::free_port()),
    );
    let mut away = StandConfig::new("stand-2", &sb.base_url(), &dead);
    away.venue_extra = "start_timeout_ms = 300".into();
    away.extra = format!(
        "[metrics]\ntextfile = {:?}\ninterval_s = 1\n",
        metrics.display().to_string()
    );
    let c2 = away.write(&dir2);
    let c1 = StandConfig::new("stand-1", &sb.base_url(), &db).write(&tmp.path().join("stand-1"));

    let mut s2 = Stand::spawn(&c2);
    s2.wait_serving(Duration::from_secs(20));
    let d = s2.decide(&venue::ticket(0), Duration::from_secs(10));
    assert!(
        d.approve && d.venue.as_deref() == Some("pending"),
        "{:?}",
        d.raw
    );
    // Its own status and metrics count the upload it owes.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out, err) = venue::agent(&c2, &["status", "--format", "json"]);
        assert!(ok, "{err}");
        let s: Value = serde_json::from_str(&out).unwrap();
        let prom = std::fs::read_to_string(&metrics).unwrap_or_default();
        if s["pending_uploads"] == 1 && prom.contains("\nconcession_pending_uploads 1\n") {
            break;
        }
        assert!(
            Instant::now() < until,
            "pending uploads never 1: status {s:#}\nmetrics:\n{prom}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s2.finish(Duration::from_secs(20)), "{}", s2.stderr());
    // Stopped, its store still says what it owes the venue.
    let (ok, out, err) = venue::agent(&c2, &["status", "--format", "json"]);
    assert!(ok, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&s["mode"], &s["venue_mode"], &s["pending_uploads"]),
        (&Value::from("stopped"), &Value::from(true), &Value::from(1)),
        "{s:#}"
    );

    // stand-1 spends the same ticket in the venue, then stand-2 comes back and uploads.
    let mut s1 = Stand::spawn(&c1);
    s1.wait_serving(Duration::from_secs(20));
    let d = s1.decide(&venue::ticket(0), Duration::from_secs(10));
    assert!(
        d.approve && d.venue.as_deref() == Some("committed"),
        "{:?}",
        d.raw
    );
    let mut back = away.clone();
    back.venue_url = db.clone();
    back.venue_extra = String::new();
    back.write(&dir2);
    let mut s2 = Stand::spawn(&c2);
    s2.wait_serving(Duration::from_secs(20));

    let r = wait_report(&c1, "stand-2 reports its overdraft", |r| {
        row(r, "stand-2")
            .is_some_and(|x| x["overdrafts"]["count"] == 1 && x["pending_uploads"] == 0)
    });
    let x = row(&r, "stand-2").unwrap();
    assert_eq!(x["overdrafts"]["cents"], d.cents, "{x:#}");
    // Its offline window, opened by the earlier run, closes once the venue holds every
    // decision (a new process once never closed it: $10.00 of the caps stayed used).
    let r = wait_report(&c1, "stand-2's offline window closes", |r| {
        row(r, "stand-2").is_some_and(|x| x["offline"]["used_cents"] == 0)
    });
    assert_eq!(row(&r, "stand-2").unwrap()["offline"]["used_count"], 0);
    assert_eq!(x["attention"], true, "an overdraft needs a look: {x:#}");
    assert_eq!(r["totals"]["overdrafts"]["count"], 1);
    let (ok, text, err) = venue_status(&c1, &[]);
    assert!(ok, "{err}");
    let l2 = text.lines().find(|l| l.starts_with("stand-2")).unwrap();
    assert!(l2.contains("1 ($10.00)"), "{text}");
    assert!(s1.finish(Duration::from_secs(20)));
    assert!(s2.finish(Duration::from_secs(20)));
}

#[test]
fn venue_status_against_a_database_without_the_heartbeat_table_says_to_migrate() {
    let Some(cluster) = pg::shared("venue_status_unmigrated") else {
        return;
    };
    let db = cluster.fresh_db();
    let tmp = tempfile::tempdir().unwrap();
    let c = StandConfig::new("it", "http://127.0.0.1:9", &db).write(tmp.path());
    let (ok, _, err) = venue_status(&c, &[]);
    assert!(!ok);
    assert!(err.contains("venue migrate"), "{err}");
    let (ok, _, err) = venue::agent(&c, &["venue", "migrate"]);
    assert!(ok, "{err}");
    let (ok, text, err) = venue_status(&c, &[]);
    assert!(ok, "{err}");
    assert!(text.contains("0 terminals"), "{text}");
}
