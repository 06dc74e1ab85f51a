//! `concession-agent venue dashboard` (issue 14 item 4), in a real headless Chromium
//! against a real PostgreSQL and two stands (processes of the real binary) in venue
//! mode: the page, after its script ran, shows both stands, the silent one marked by a
//! word; with a token the data needs it; a non-loopback address without one is refused;
//! oversized, foreign-host and non-GET requests are refused.
//!
//! Chromium is Debian's `chromium` package (`.ci/run` installs it); without it these
//! tests skip, unless `CI` is set (then they fail), as the PostgreSQL ones do.
//! `CONCESSION_DASHBOARD_SCREENSHOT=PATH` also saves a screenshot of the page there
//! (docs/venue-dashboard.png is made so).
#![cfg(feature = "venue")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pg;
use support::venue::{self, Stand, StandConfig};

/// The chromium binary, or `None` (skip) when missing and not under CI.
fn chromium(test: &str) -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if !p.is_empty() {
                    return Some(PathBuf::from(p));
                }
            }
        }
    }
    if pg::ci() {
        panic!("{test}: chromium is missing under CI (apt-get install chromium)");
    }
    eprintln!("{test}: skipped: no chromium (apt-get install chromium)");
    None
}

/// Runs headless chromium with `args` then `url`; returns its stdout. At most 60 s.
fn run_chromium(bin: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The page as the browser has it after its script ran (it fetched the status once).
fn rendered_dom(bin: &Path, url: &str) -> String {
    run_chromium(bin, &["--virtual-time-budget=5000", "--dump-dom"], url)
}

/// A running `venue dashboard`.
struct Dashboard {
    child: Child,
    addr: String,
}

impl Dashboard {
    fn start(config: &Path, extra: &[&str]) -> Dashboard {
        let mut child = support::agent_command("warn")
            .arg("--config")
            .arg(config)
            .args(["venue", "dashboard", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dashboard starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_string();
        Dashboard { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP request; returns (status, body).
fn request(addr: &str, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (431) and stop reading before all of it is written.
    let _ = s.write_all(raw.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

fn get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"),
    )
}

/// Two stands in venue mode that scanned. stand-2 first approved a ticket while the
/// venue database was away, which stand-1 then spent in the venue: when stand-2 came
/// back and uploaded, its approval was recorded as an overdraft. stand-2 is then killed
/// and its heartbeat made old (silent). Returns stand-1's config and process.
struct Venue {
    _tmp: tempfile::TempDir,
    _sb: concession_agent::sandbox::SandboxHandle,
    c1: PathBuf,
    s1: Stand,
}

fn venue_with_one_silent_stand(cluster: &pg::Cluster) -> Venue {
    let db = cluster.fresh_db();
    let sb = venue::sandbox(4);
    let tmp = tempfile::tempdir().unwrap();
    let cfg =
        |name: &str| StandConfig::new(name, &sb.base_url(), &db).write(&tmp.path().join(name));
    let (c1, c2) = (cfg("stand-1"), cfg("stand-2"));
    let dead = db.replace(
        &format!(":{}/", cluster.port()),
        &format!(":{}/", pg::free_port()),
    );
    let mut away = StandConfig::new("stand-2", &sb.base_url(), &dead);
    away.venue_extra = "start_timeout_ms = 300".into();
    away.write(&tmp.path().join("stand-2"));
    let mut s2 = Stand::spawn(&c2);
    s2.wait_serving(Duration::from_secs(20));
    let d = s2.decide(&venue::ticket(0), Duration::from_secs(10));
    assert!(
        d.approve && d.venue.as_deref() == Some("pending"),
        "{:?}",
        d.raw
    );
    assert!(s2.finish(Duration::from_secs(20)));
    cfg("stand-2");
    let mut s1 = Stand::spawn(&c1);
    s1.wait_serving(Duration::from_secs(20));
    let d = s1.decide(&venue::ticket(0), Duration::from_secs(10));
    assert!(
        d.approve && d.venue.as_deref() == Some("committed"),
        "{:?}",
        d.raw
    );
    let mut s2 = Stand::spawn(&c2);
    s2.wait_serving(Duration::from_secs(20));
    for (s, t) in [(&mut s1, 1), (&mut s2, 2)] {
        let d = s.decide(&venue::ticket(t), Duration::from_secs(10));
        assert!(d.approve, "{:?}", d.raw);
    }
    // Both have sent a heartbeat with their decisions.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.psql(
            &db,
            "SELECT count(*) FROM venue_heartbeats \
             WHERE (status->'today'->>'decisions')::int > 0",
        );
        if out.trim() == "2" {
            break;
        }
        assert!(
            Instant::now() < until,
            "no heartbeats from both stands: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s2.kill();
    cluster.psql(
        &db,
        "UPDATE venue_heartbeats SET seen_at = now() - interval '5 minutes' \
         WHERE terminal = 'stand-2'",
    );
    Venue {
        _tmp: tmp,
        _sb: sb,
        c1,
        s1,
    }
}

#[test]
fn the_dashboard_in_a_real_browser_shows_both_stands_and_marks_the_silent_one() {
    let Some(bin) = chromium("the_dashboard_in_a_real_browser") else {
        return;
    };
    let Some(cluster) = pg::shared("the_dashboard_in_a_real_browser") else {
        return;
    };
    let mut v = venue_with_one_silent_stand(cluster);
    let d = Dashboard::start(&v.c1, &[]);
    assert!(d.addr.starts_with("127.0.0.1:"), "{}", d.addr);

    // The JSON route the page polls.
    let (code, body) = get(&d.addr, "/status.json", "");
    assert_eq!(code, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["totals"]["terminals"], 2, "{r:#}");

    let dom = rendered_dom(&bin, &d.url());
    for needle in [
        "data-terminal=\"stand-1\"",
        "data-terminal=\"stand-2\"",
        "data-state=\"silent\"",
        ">SILENT<",
        "ATTENTION: stand-2 SILENT OVERDRAFT",
        "OVERDRAFT 1 ($10.00)",
        "2 stands",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} not in the rendered page:\n{dom}"
        );
    }
    // stand-1 is fine: its row is not flagged.
    let row1 = dom
        .split("<tr ")
        .find(|r| r.contains("data-terminal=\"stand-1\""))
        .unwrap();
    assert!(
        row1.contains("class=\"fine\"") && row1.contains(">OK<"),
        "{row1}"
    );

    if let Ok(path) = std::env::var("CONCESSION_DASHBOARD_SCREENSHOT") {
        run_chromium(
            &bin,
            &[
                "--virtual-time-budget=5000",
                "--window-size=1640,400",
                &format!("--screenshot={path}"),
            ],
            &d.url(),
        );
        assert!(Path::new(&path).exists(), "no screenshot at {path}");
    }
    assert!(v.s1.finish(Duration::from_secs(20)));
}

#[test]
fn with_a_token_the_data_needs_it_and_the_page_carries_it_from_the_fragment() {
    let Some(bin) = chromium("with_a_token_the_data_needs_it") else {
        return;
    };
    let Some(cluster) = pg::shared("with_a_token_the_data_needs_it") else {
        return;
    };
    let mut v = venue_with_one_silent_stand(cluster);
    let tmp = tempfile::tempdir().unwrap();
    let token = "s3cret-token-0123456789";
    let tf = tmp.path().join("token");
    std::fs::write(&tf, format!("{token}\n")).unwrap();
    let d = Dashboard::start(&v.c1, &["--token-file", tf.to_str().unwrap()]);

    let (code, body) = get(&d.addr, "/status.json", "");
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("stand-1"));
    let (code, _) = get(
        &d.addr,
        "/status.json",
        "Authorization: Bearer wrong-token-0123456789\r\n",
    );
    assert_eq!(code, 401);
    let (code, body) = get(
        &d.addr,
        "/status.json",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("stand-1"));

    // Without the token the page loads but shows no stand, and says why.
    let dom = rendered_dom(&bin, &d.url());
    assert!(!dom.contains("data-terminal="), "{dom}");
    assert!(dom.contains("NOT UPDATING"), "{dom}");
    // With it, in the fragment, both.
    let dom = rendered_dom(&bin, &format!("{}#token={token}", d.url()));
    assert!(
        dom.contains("data-terminal=\"stand-1\"") && dom.contains("data-terminal=\"stand-2\""),
        "{dom}"
    );
    assert!(v.s1.finish(Duration::from_secs(20)));
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused_and_bad_requests_are_bounded() {
    let Some(cluster) = pg::shared("a_non_loopback_address_without_a_token") else {
        return;
    };
    let db = cluster.fresh_db();
    let tmp = tempfile::tempdir().unwrap();
    let c = StandConfig::new("it", "http://127.0.0.1:9", &db).write(tmp.path());
    let (ok, out, err) = venue::agent(&c, &["venue", "dashboard", "--listen", "0.0.0.0:0"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("--token-file") && err.contains("refusing"),
        "{err}"
    );

    let (ok, _, err) = venue::agent(&c, &["venue", "migrate"]);
    assert!(ok, "{err}");
    let d = Dashboard::start(&c, &[]);
    // The page itself: self-contained HTML, with the headers that keep it so.
    let raw = {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut o = String::new();
        s.read_to_string(&mut o).unwrap();
        o
    };
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.contains("Content-Security-Policy: default-src 'none'"),
        "{raw}"
    );
    let (code, body) = get(&d.addr, "/status.json", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"terminals\":[]"), "{body}");
    // A foreign Host (DNS rebinding) without a token.
    let (code, _) = request(
        &d.addr,
        "GET /status.json HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(code, 421);
    let (code, _) = request(&d.addr, "POST / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(code, 405);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (code, _) = request(&d.addr, &huge);
    assert_eq!(code, 431);
    let (code, _) = get(&d.addr, "/nothing", "");
    assert_eq!(code, 404);
    // A client that sends half a request and stalls is cut off; the server still serves.
    let mut stall = TcpStream::connect(&d.addr).unwrap();
    stall.write_all(b"GET / HT").unwrap();
    let (code, _) = get(&d.addr, "/", "");
    assert_eq!(code, 200);
    drop(stall);
}

#[test]
fn with_the_database_away_the_data_route_says_why_and_the_page_says_not_updating() {
    let Some(bin) = chromium("with_the_database_away") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dead = format!("postgres://concession@127.0.0.1:{}/venue", pg::free_port());
    // A port where nothing listens: refused at once.
    let c = StandConfig::new("it", "http://127.0.0.1:9", &dead).write(tmp.path());
    let d = Dashboard::start(&c, &[]);
    let (code, body) = get(&d.addr, "/status.json", "");
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let dom = rendered_dom(&bin, &d.url());
    assert!(dom.contains("NOT UPDATING"), "{dom}");
    assert!(!dom.contains("data-terminal="), "{dom}");
}

#[test]
fn the_first_request_after_the_database_restarts_answers_on_a_new_connection() {
    let Some(_) = pg::available("dashboard_restart") else {
        return;
    };
    // A cluster of its own: this test restarts it.
    let cluster = pg::Cluster::new(pg::ClusterOptions::default());
    let db = cluster.fresh_db();
    let tmp = tempfile::tempdir().unwrap();
    let c = StandConfig::new("it", "http://127.0.0.1:9", &db).write(tmp.path());
    let (ok, _, err) = venue::agent(&c, &["venue", "migrate"]);
    assert!(ok, "{err}");
    let d = Dashboard::start(&c, &[]);
    let (code, body) = get(&d.addr, "/status.json", "");
    assert_eq!(code, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    // Its kept connection dies with the restart; the next fresh report must still come.
    cluster.restart();
    let fresh = support::wait_for(Duration::from_secs(20), || {
        let (code, body) = get(&d.addr, "/status.json", "");
        assert_eq!(code, 200, "after the restart: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        (v["as_of"] != first["as_of"]).then_some(v)
    });
    assert!(fresh.is_some(), "no fresh report after the restart");
}
