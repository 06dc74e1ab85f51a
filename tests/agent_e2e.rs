//! The redemption agent end to end against the in-process sandbox: the online money
//! rules, voids, prefetch, a late answer, a restart, the journal export, and noise on
//! the TCP scanner, the POS link and a serial scanner (a pseudo-terminal).

mod support;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concession_agent::agent::Agent;
use concession_agent::app::{self, Wiring};
use concession_agent::decide::Verdict;
use concession_agent::sandbox::{DataSet, SandboxConfig};
use concession_agent::signal::AgentStatus;
use concession_agent::signal::VoidOutcome;
use concession_agent::store::{self, EntryKind, Format, JournalEntry};
use serde_json::Value;
use support::{sandbox_with, wait_for, Harness, Recorder};

const EVENT01: &str = "events = [\"EVENT01\"]";

fn reasons(h: &Harness) -> Vec<String> {
    h.seen
        .0
        .lock()
        .unwrap()
        .decisions
        .iter()
        .map(|d| d.reason.as_str().to_string())
        .collect()
}

#[test]
fn an_online_scan_is_approved_live_and_journaled_before_it_is_signalled() {
    let mut h = Harness::start(EVENT01);
    let d = h.scan("100000000001");
    assert_eq!(d.decision, Verdict::Approve);
    assert_eq!(d.reason, "approved");
    assert_eq!(d.approved_cents, 2000);
    assert_eq!(d.source, "live");
    assert_eq!(d.terminal, "test-stand");
    let journal = h.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].id, d.id);
    assert_eq!(journal[0].barcode, "100000000001");
    assert_eq!(journal[0].money.len(), 1);
    assert_eq!(journal[0].money[0].av_id, "AV1001");
    assert!(!journal[0].offline);
    // One live lookup: verify_barcode and get_av_barcodes, once each.
    let s = h.stats();
    assert_eq!(s.calls("verify_barcode"), 1);
    assert_eq!(s.calls("get_av_barcodes"), 1);
    assert_eq!(reasons(&h), ["approved"]);
}

#[test]
fn pos_amounts_are_approved_in_part_and_a_bare_scan_takes_the_rest() {
    let mut h = Harness::start(EVENT01);
    let first = h.scan_amount("100000000008", 1500);
    assert_eq!(
        (first.decision, first.reason.as_str(), first.approved_cents),
        (Verdict::Approve, "approved", 1500)
    );
    let rest = h.scan("100000000008");
    assert_eq!(
        (rest.decision, rest.reason.as_str(), rest.approved_cents),
        (Verdict::Approve, "approved", 3500)
    );
    let empty = h.scan_amount("100000000008", 100);
    assert_eq!(empty.decision, Verdict::Deny);
    assert_eq!(empty.reason, "already_redeemed");

    // Give the $35 back, then ask for more than is left: the rest, as a partial.
    let v = h.void(&rest.id);
    assert_eq!(v.outcome, VoidOutcome::Voided);
    assert_eq!(v.reversed_cents, 3500);
    let more = h.scan_amount("100000000008", 5000);
    assert_eq!(
        (more.decision, more.reason.as_str(), more.approved_cents),
        (Verdict::Approve, "partial", 3500)
    );
    let after = h.scan("100000000008");
    assert_eq!(after.reason, "already_redeemed");
}

#[test]
fn a_second_scan_of_the_same_ticket_is_already_redeemed() {
    let mut h = Harness::start(EVENT01);
    assert_eq!(h.scan("100000000001").decision, Verdict::Approve);
    let again = h.scan("100000000001");
    assert_eq!(again.decision, Verdict::Deny);
    assert_eq!(again.reason, "already_redeemed");
    assert_eq!(again.approved_cents, 0);
    // The second scan was answered from the fresh cache: no second lookup.
    assert_eq!(h.stats().calls("verify_barcode"), 1);
    assert_eq!(again.source, "cache");
}

#[test]
fn a_void_restores_the_value_once_and_unknown_ids_are_not_found() {
    let mut h = Harness::start(EVENT01);
    let d = h.scan("100000000001");
    assert_eq!(d.approved_cents, 2000);
    let v = h.void(&d.id);
    assert_eq!(v.outcome, VoidOutcome::Voided);
    assert_eq!(v.reversed_cents, 2000);
    assert_eq!(v.decision_id, d.id);
    assert!(v.error.is_none());

    let again = h.scan("100000000001");
    assert_eq!(again.decision, Verdict::Approve);
    assert_eq!(again.approved_cents, 2000);

    let twice = h.void(&d.id);
    assert_eq!(twice.outcome, VoidOutcome::AlreadyVoided);
    assert_eq!(twice.reversed_cents, 0);
    assert!(twice.error.is_some());

    let deny = h.scan("100000000001");
    assert_eq!(deny.reason, "already_redeemed");
    assert_eq!(h.void(&deny.id).outcome, VoidOutcome::NotApproved);

    assert_eq!(
        h.void("test-stand-000000009999").outcome,
        VoidOutcome::NotFound
    );
    assert_eq!(h.void("not-a-decision").outcome, VoidOutcome::NotFound);
    assert_eq!(h.void("").outcome, VoidOutcome::NotFound);

    // The journal: 3 decisions, 1 void entry; the original is marked voided.
    let j = h.journal();
    let voids: Vec<&JournalEntry> = j.iter().filter(|e| e.kind == EntryKind::Void).collect();
    assert_eq!(voids.len(), 1);
    assert_eq!(voids[0].void_of.as_deref(), Some(d.id.as_str()));
    let orig = j.iter().find(|e| e.id == d.id).unwrap();
    assert_eq!(orig.voided_by.as_deref(), Some(voids[0].id.as_str()));
    // Every void answer reached the POS outputs.
    assert_eq!(h.seen.0.lock().unwrap().voids.len(), 6);
}

#[test]
fn an_item_is_handed_over_once() {
    let mut h = Harness::start(EVENT01);
    let d = h.scan("100000000002");
    assert_eq!(d.decision, Verdict::Approve);
    assert_eq!(d.reason, "approved");
    assert_eq!(d.approved_cents, 0);
    assert_eq!(d.items, ["Pizza and a Coke"]);
    let again = h.scan("100000000002");
    assert_eq!(again.decision, Verdict::Deny);
    assert_eq!(again.reason, "already_redeemed");
    assert!(again.items.is_empty());
    // A POS amount asks for money only: an item-only ticket has none.
    assert_eq!(h.scan_amount("100000000002", 500).reason, "no_value");
}

#[test]
fn money_and_an_item_come_together_on_a_bare_scan() {
    let mut h = Harness::start(EVENT01);
    let d = h.scan("100000000003");
    assert_eq!(d.decision, Verdict::Approve);
    assert_eq!(d.reason, "approved");
    assert_eq!(d.approved_cents, 1500);
    assert_eq!(d.items, ["Hot Dog"]);
    assert_eq!(h.scan("100000000003").reason, "already_redeemed");
}

#[test]
fn tickets_that_cannot_be_redeemed_are_denied_with_their_reason() {
    let mut h = Harness::start(EVENT01);
    for (barcode, reason) in [
        ("100000000004", "no_value"),
        ("100000000005", "ticket_void"),
        ("100000000009", "ticket_void"),
        ("100000000006", "wrong_event"),
        ("999999999999", "unknown_ticket"),
        ("tok3n::123456::654321::1764266400", "safetix_unresolved"),
        ("hello", "unreadable"),
        ("12345", "unreadable"),
        ("bad::safetix", "unreadable"),
    ] {
        let d = h.scan(barcode);
        assert_eq!(d.decision, Verdict::Deny, "{barcode}");
        assert_eq!(d.reason, reason, "{barcode}");
        assert_eq!(d.approved_cents, 0, "{barcode}");
        assert!(d.items.is_empty(), "{barcode}");
        assert!(!d.id.is_empty(), "{barcode}: every deny is journaled");
    }
    // Unreadable input never reaches ATS and shows no barcode.
    let s = h.stats();
    assert_eq!(s.calls("verify_barcode"), 5);
    let j = h.journal();
    assert_eq!(j.len(), 9);
    assert!(j[5..].iter().all(|e| e.barcode.is_empty()));
    // An unknown ticket is remembered: scanning it again costs no call.
    assert_eq!(h.scan("999999999999").reason, "unknown_ticket");
    assert_eq!(h.stats().calls("verify_barcode"), 5);
}

#[test]
fn value_past_its_valid_until_date_is_expired() {
    // EVENT00 was a week ago; serve it so the event check passes and the date is judged.
    let mut h = Harness::start("events = [\"EVENT01\", \"EVENT00\"]");
    let d = h.scan("100000000007");
    assert_eq!(d.decision, Verdict::Deny);
    assert_eq!(d.reason, "value_expired");
    // A stand that serves only EVENT01 calls it the wrong event first.
    let mut h = Harness::start(EVENT01);
    assert_eq!(h.scan("100000000007").reason, "wrong_event");
}

#[test]
fn after_a_prefetch_scans_cost_no_ats_calls() {
    let data = DataSet::builtin().with_generated(600);
    let value_tickets: Vec<String> = data
        .tickets()
        .filter(|t| t.event_name == "EVENT01" && t.status == "ACTIVE" && !t.value.is_empty())
        .map(|t| t.barcode.clone())
        .collect();
    assert_eq!(value_tickets.len(), 605);
    let mut h = Harness::on(
        sandbox_with(SandboxConfig {
            data,
            ..SandboxConfig::default()
        }),
        EVENT01,
    );
    let cached = h.prefetch("EVENT01");
    assert_eq!(cached, 605);
    let prefetch_calls = h.calls();
    // event_search once, then 500-row chunks of the listing.
    assert_eq!(prefetch_calls, 3, "{:?}", h.stats());

    let started = Instant::now();
    let mut approved = 0u64;
    for b in &value_tickets {
        let d = h.scan(b);
        assert_eq!(d.decision, Verdict::Approve, "{b}: {}", d.reason);
        assert_eq!(d.source, "cache", "{b}");
        approved += d.approved_cents;
    }
    let elapsed = started.elapsed();
    let scan_calls = h.calls() - prefetch_calls;
    let s = h.stats();
    assert_eq!(s.calls("verify_barcode"), 0, "{s:?}");
    assert_eq!(s.calls("get_av_barcodes"), 2, "only the prefetch's: {s:?}");
    assert_eq!(scan_calls, 0);
    // $20 + $15 + $50 + $25 builtin, $10 x 600 generated; the pizza is an item.
    assert_eq!(approved, 2000 + 1500 + 5000 + 2500 + 600 * 1000);
    eprintln!(
        "prefetch: {prefetch_calls} calls for {cached} tickets; {} scans made {scan_calls} calls \
         ({:.3} calls per scan), {:.2} ms per scan",
        value_tickets.len(),
        scan_calls as f64 / value_tickets.len() as f64,
        elapsed.as_secs_f64() * 1000.0 / value_tickets.len() as f64
    );
    // A ticket the listing leaves out (no value) still costs one lookup.
    assert_eq!(h.scan("100000000004").reason, "no_value");
    assert_eq!(h.stats().calls("verify_barcode"), 1);
}

#[test]
fn a_late_answer_is_decided_in_time_and_still_refreshes_the_cache() {
    // The slow ticket's calls take a 3 s 202 cycle; the deadline is 300 ms. Calls that
    // slow are not counted against connectivity here (slow_ms), so the stand stays online.
    let mut h =
        Harness::start("events = [\"EVENT01\"]\ndeadline_ms = 300\n[health]\nslow_ms = 20000");
    assert!(h
        .agent
        .store()
        .get_record("100000000010")
        .unwrap()
        .is_none());
    let started = Instant::now();
    let first = h.scan("100000000010");
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(400),
        "decided in {took:?}, deadline 300 ms"
    );
    assert!(first.latency_ms <= 400, "{}", first.latency_ms);
    // Nothing cached yet, deadline missed: offline rules, unknown ticket.
    assert_eq!(first.decision, Verdict::Deny);
    assert_eq!(first.reason, "offline_unknown");
    assert_eq!(first.source, "offline");

    let record = wait_for(Duration::from_secs(15), || {
        h.agent.store().get_record("100000000010").unwrap()
    })
    .expect("the late answer reaches the cache");
    assert_eq!(record.value.len(), 1);
    assert_eq!(record.value[0].balance, 2500);
    let calls = h.calls();

    let second = h.scan("100000000010");
    assert_eq!(second.decision, Verdict::Approve);
    assert_eq!(second.approved_cents, 2500);
    assert_eq!(second.source, "cache");
    assert!(second.latency_ms <= 400);
    assert_eq!(h.calls(), calls, "the second scan made no call");
}

#[test]
fn a_restart_keeps_the_ledger_and_the_decision_sequence() {
    let mut h = Harness::start(EVENT01);
    let first = h.scan("100000000001");
    assert_eq!(first.decision, Verdict::Approve);
    let partial = h.scan_amount("100000000008", 1000);
    assert_eq!(partial.approved_cents, 1000);
    let mut h = h.restart();
    let again = h.scan("100000000001");
    assert_eq!(again.decision, Verdict::Deny);
    assert_eq!(again.reason, "already_redeemed");
    let rest = h.scan("100000000008");
    assert_eq!(rest.approved_cents, 4000);
    let seq = |id: &str| store::journal::seq_of(id).unwrap();
    assert!(seq(&first.id) < seq(&partial.id));
    assert!(seq(&partial.id) < seq(&again.id));
    assert!(seq(&again.id) < seq(&rest.id));
    assert_eq!(h.journal().len(), 4);
    // A void after the restart still finds the decision made before it.
    assert_eq!(h.void(&first.id).outcome, VoidOutcome::Voided);
    assert_eq!(h.scan("100000000001").approved_cents, 2000);
}

fn export(h: &Harness, format: Format, since: Option<&str>) -> (u64, String) {
    let mut out = Vec::new();
    let n = store::export(h.agent.store(), format, since, &mut out).unwrap();
    (n, String::from_utf8(out).unwrap())
}

fn ids_of_jsonl(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn the_journal_exports_every_entry_exactly_once() {
    let mut h = Harness::start(EVENT01);
    let mut ids = Vec::new();
    for b in ["100000000001", "100000000001", "hello", "100000000002"] {
        ids.push(h.scan(b).id);
    }
    let v = h.void(&ids[0]);
    assert_eq!(v.outcome, VoidOutcome::Voided);
    let (n, page1) = export(&h, Format::Jsonl, None);
    assert_eq!(n, 5);
    let page1_ids = ids_of_jsonl(&page1);
    assert_eq!(page1_ids.len(), 5);
    assert_eq!(&page1_ids[..4], &ids[..]);
    let last = page1_ids.last().unwrap().clone();

    // More decisions, then the next page starts strictly after the last exported id.
    for b in ["100000000003", "999999999999", "100000000001"] {
        ids.push(h.scan(b).id);
    }
    let (n2, page2) = export(&h, Format::Jsonl, Some(&last));
    assert_eq!(n2, 3);
    let page2_ids = ids_of_jsonl(&page2);
    assert_eq!(page2_ids, &ids[4..]);
    let (n3, page3) = export(&h, Format::Jsonl, page2_ids.last().map(String::as_str));
    assert_eq!((n3, page3.as_str()), (0, ""));

    let all: Vec<String> = page1_ids.iter().chain(&page2_ids).cloned().collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no entry twice");
    assert_eq!(all.len(), h.agent.store().journal_len(), "no entry dropped");
    let (_, whole) = export(&h, Format::Jsonl, None);
    assert_eq!(ids_of_jsonl(&whole), all);

    // CSV: a header, then one row per entry (no field here holds a line break).
    let (nc, csv) = export(&h, Format::Csv, None);
    assert_eq!(nc, 8);
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 9);
    assert!(rows[0].starts_with("id,seq,kind,"));
    for (row, id) in rows[1..].iter().zip(&all) {
        assert!(row.starts_with(&format!("{id},")), "{row}");
    }
}

// ---------------------------------------------------------------------------------------
// Input sources: the wiring of the binary, in-process.

/// The agent loop on a thread, fed by the sources `app::start_io` built from `extra`.
struct Live {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Agent>>,
    running: Option<app::Running>,
    seen: Recorder,
    _sandbox: concession_agent::sandbox::SandboxHandle,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start(extra: &str) -> Live {
        let sandbox = support::sandbox();
        let dir = tempfile::tempdir().unwrap();
        let config = support::config(&sandbox.base_url(), &dir.path().join("store"), extra);
        let clock = concession_agent::clock::system();
        let mut wiring = Wiring::plan(&config, None).expect("wiring");
        // Nothing on the test's stdout.
        wiring.console = false;
        wiring.jsonl_stdout = false;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(256);
        let (running, mut outputs) =
            app::start_io(&wiring, &tx, clock.clone(), Arc::clone(&stop)).expect("io starts");
        drop(tx);
        let seen = Recorder::default();
        outputs.push(Box::new(seen.clone()));
        let link = app::connect_ats(&config, clock.clone()).unwrap();
        let store = app::open_store(&config).unwrap();
        let mut agent = Agent::new(config, link.client, store, clock, outputs);
        let s2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            agent
                .run(&rx, &s2)
                .expect("the store keeps accepting writes");
            agent
        });
        Live {
            stop,
            thread: Some(thread),
            running: Some(running),
            seen,
            _sandbox: sandbox,
            _dir: dir,
        }
    }

    fn scanner_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.tcp_scanner.as_ref())
            .expect("tcp scanner")
            .local_addr()
    }

    fn pos_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.pos.as_ref())
            .expect("pos link")
            .local_addr()
    }

    fn decisions(&self) -> usize {
        self.seen.0.lock().unwrap().decisions.len()
    }

    /// Stops the loop; returns the agent (its store) after every request was finished.
    fn stop(mut self) -> Agent {
        self.stop.store(true, Ordering::SeqCst);
        let agent = self.thread.take().unwrap().join().expect("agent loop ends");
        drop(self.running.take());
        agent
    }
}

/// A POS client: JSON lines both ways.
struct PosClient {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl PosClient {
    fn connect(addr: std::net::SocketAddr) -> PosClient {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = PosClient {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        };
        // The pong proves the link registered us (broadcasts reach us from now on).
        c.send(r#"{"type":"ping","request_id":"hello"}"#);
        let pong = c.next_of("pong");
        assert_eq!(pong["request_id"], "hello");
        c
    }

    fn send(&mut self, line: &str) {
        self.out.write_all(line.as_bytes()).unwrap();
        self.out.write_all(b"\n").unwrap();
    }

    /// The next line of this type (status lines are skipped).
    fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("a line in time");
            assert!(n > 0, "pos link closed");
            let v: Value = serde_json::from_str(&line).expect("json line");
            if v["type"] == "status" && kind != "status" {
                continue;
            }
            assert_eq!(v["type"], kind, "{line}");
            return v;
        }
    }
}

#[test]
fn noise_on_the_tcp_scanner_and_the_pos_link_never_stops_the_decisions() {
    let live = Live::start(
        "events = [\"EVENT01\"]\n[scanner]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
         [pos]\nlisten = \"127.0.0.1:0\"",
    );
    let mut pos = PosClient::connect(live.pos_addr());

    // A network scanner sends barcodes and noise; its decisions go to every POS client.
    let mut scanner = TcpStream::connect(live.scanner_addr()).unwrap();
    let mut noise = Vec::new();
    noise.extend_from_slice(b"100000000001\r\n");
    noise.extend_from_slice(b"\r\n\n");
    noise.extend_from_slice(b"\x1b[A\r\n");
    noise.extend_from_slice(b"12\xff\xfe34\r\n");
    noise.extend_from_slice(&[b'7'; 300]);
    noise.extend_from_slice(b"\r\nhello\n");
    noise.extend_from_slice(b"tok3n::123456::654321::1764266400\n");
    noise.extend_from_slice(b"]C1100000000002\r\n");
    noise.extend_from_slice(b"100000000001\n");
    scanner.write_all(&noise).unwrap();
    let want = [
        ("approve", "approved"),
        ("deny", "unreadable"),
        ("deny", "unreadable"),
        ("deny", "unreadable"),
        ("deny", "unreadable"),
        ("deny", "safetix_unresolved"),
        ("approve", "approved"),
        ("deny", "already_redeemed"),
    ];
    for (verdict, reason) in want {
        let d = pos.next_of("decision");
        assert_eq!(
            (d["decision"].as_str(), d["reason"].as_str()),
            (Some(verdict), Some(reason)),
            "{d}"
        );
        assert!(d.get("request").is_none(), "a local scan: {d}");
    }

    // The POS's own requests, noise in between; answers carry the request id.
    pos.send(r#"{"type":"scan","barcode":"100000000008","amount_cents":1500,"request_id":"r1"}"#);
    let d = pos.next_of("decision");
    assert_eq!(d["request"], "r1");
    assert_eq!(d["approved_cents"], 1500);
    let id = d["id"].as_str().unwrap().to_string();
    pos.send("{not json");
    assert_eq!(pos.next_of("error")["error"], "invalid json");
    pos.send(r#"{"type":"scan","request_id":"r2"}"#);
    let e = pos.next_of("error");
    assert_eq!(
        (e["request_id"].as_str(), e["error"].as_str()),
        (Some("r2"), Some("missing barcode"))
    );
    pos.send(r#"{"type":"scan","barcode":"100000000008","amount_cents":0,"request_id":"r3"}"#);
    assert_eq!(pos.next_of("error")["request_id"], "r3");
    pos.send("garbage-line");
    let d = pos.next_of("decision");
    assert_eq!(d["reason"], "unreadable");
    assert!(
        d["request"].as_str().is_some_and(|r| r.starts_with("pos")),
        "{d}"
    );
    pos.send(&format!(
        r#"{{"type":"void","decision_id":"{id}","request_id":"r4"}}"#
    ));
    let v = pos.next_of("void_result");
    assert_eq!(
        (v["request_id"].as_str(), v["outcome"].as_str()),
        (Some("r4"), Some("voided"))
    );
    assert_eq!(v["reversed_cents"], 1500);
    pos.send(r#"{"type":"void","decision_id":"nope-000000000077","request_id":"r5"}"#);
    assert_eq!(pos.next_of("void_result")["outcome"], "not_found");
    pos.send(r#"{"type":"scan","barcode":"100000000008","request_id":"r6"}"#);
    let d = pos.next_of("decision");
    assert_eq!(
        (d["request"].as_str(), d["approved_cents"].as_u64()),
        (Some("r6"), Some(5000))
    );

    // The scanner connection still works after all that.
    scanner.write_all(b"100000000003\r\n").unwrap();
    let d = pos.next_of("decision");
    assert_eq!(d["approved_cents"], 1500);
    assert_eq!(d["items"][0], "Hot Dog");

    let agent = live.stop();
    // Every decision was journaled: 8 scanner reads + 3 POS scans + 1 more read; + 1 void.
    assert_eq!(agent.store().journal_len(), 13);
    agent.shutdown();
}

/// A pseudo-terminal pair: the master (the "scanner") and the slave's path.
fn pty() -> (std::fs::File, PathBuf) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = Path::new(OsStr::from_bytes(name.as_bytes())).to_path_buf();
    (std::fs::File::from(master), path)
}

#[test]
fn noise_on_a_serial_scanner_never_stops_the_decisions() {
    let (mut master, path) = pty();
    let live = Live::start(&format!(
        "events = [\"EVENT01\"]\n[scanner]\nkind = \"serial\"\npath = {:?}\nbaud = 9600",
        path.display().to_string()
    ));
    let seen = live.seen.clone();
    let wait_decisions = |n: usize| {
        wait_for(Duration::from_secs(10), || {
            (seen.0.lock().unwrap().decisions.len() >= n).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{n} decisions in time, got {:?}",
                seen.0.lock().unwrap().decisions
            )
        })
    };
    // Raw mode: control bytes reach the framer instead of becoming signals.
    master
        .write_all(b"]C1100000000001\r\n\x03\r\n\x1a\r\n\r\n12\xff34\r\nhello\r\n")
        .unwrap();
    wait_decisions(5);
    master.write_all(&[b'9'; 200]).unwrap();
    master
        .write_all(b"\r\n100000000001\r\n100000000002\r\n999999999999\r\n")
        .unwrap();
    wait_decisions(9);
    let got: Vec<(Verdict, String)> = seen
        .0
        .lock()
        .unwrap()
        .decisions
        .iter()
        .map(|d| (d.decision, d.reason.as_str().to_string()))
        .collect();
    let want: Vec<(Verdict, String)> = [
        (Verdict::Approve, "approved"),
        (Verdict::Deny, "unreadable"),
        (Verdict::Deny, "unreadable"),
        (Verdict::Deny, "unreadable"),
        (Verdict::Deny, "unreadable"),
        (Verdict::Deny, "unreadable"),
        (Verdict::Deny, "already_redeemed"),
        (Verdict::Approve, "approved"),
        (Verdict::Deny, "unknown_ticket"),
    ]
    .into_iter()
    .map(|(v, r)| (v, r.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(live.decisions() == 9);
    let agent = live.stop();
    assert_eq!(agent.store().journal_len(), 9);
    let statuses = seen.0.lock().unwrap().statuses.clone();
    assert_eq!(statuses.first(), Some(&AgentStatus::Ready));
    assert_eq!(statuses.last(), Some(&AgentStatus::Stopping));
    agent.shutdown();
    drop(master);
}

#[test]
fn with_fresh_ms_0_every_online_scan_asks_ats_even_when_the_cache_looks_brand_new() {
    // A record whose age reads as 0 ms (here stamped ahead of the clock, as after the
    // clock steps back) must not count as fresh when online cache use is off.
    let mut h = Harness::start("events = [\"EVENT01\"]\n[cache]\nfresh_ms = 0");
    let ahead = h.clock.wall_ms() + 5_000;
    assert_eq!(h.prefetch_at("EVENT01", ahead), 5);
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision, d.approved_cents, d.source.as_str()),
        (Verdict::Approve, 2000, "live")
    );
    assert_eq!(h.stats().calls("verify_barcode"), 1);
}

#[test]
fn upstream_balances_reconcile_with_the_ledger_without_double_spending() {
    let mut h = Harness::start(EVENT01);
    assert_eq!(h.scan("100000000001").approved_cents, 2000);
    // A refresh before ATS has seen the redemption does not bring the value back.
    h.prefetch("EVENT01");
    assert_eq!(h.scan("100000000001").reason, "already_redeemed");
    // ATS debits it (the redemption is reflected upstream): still nothing left.
    h.sandbox.set_balance("100000000001", "AV1001", 0).unwrap();
    h.prefetch("EVENT01");
    assert_eq!(h.scan("100000000001").reason, "already_redeemed");
    // Value reloaded upstream: exactly the new value is approved, once.
    h.sandbox
        .set_balance("100000000001", "AV1001", 1200)
        .unwrap();
    h.prefetch("EVENT01");
    let d = h.scan("100000000001");
    assert_eq!((d.decision, d.approved_cents), (Verdict::Approve, 1200));
    assert_eq!(h.scan("100000000001").reason, "already_redeemed");
    let ledger = h.agent.store().ledger("100000000001").unwrap();
    assert_eq!(ledger.lines["AV1001"].unreflected, 1200);
}
