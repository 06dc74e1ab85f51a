//! Hostile clients on the POS link (issue 11, item 3), on 127.0.0.1: voids of another
//! client's sale, the credential, slow and silent sockets, and a client flooding scans.
//! Link-level tests use a `ManualClock` (time moves only when the test says so);
//! end-to-end tests run the real agent loop on a sandbox.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concession_agent::agent::Agent;
use concession_agent::app::{self, Wiring};
use concession_agent::clock::ManualClock;
use concession_agent::config::{Config, RawConfig};
use concession_agent::decide::Verdict;
use concession_agent::pos::{PosError, PosOptions, PosServer};
use concession_agent::redact::Secret;
use concession_agent::scan::{AgentRequest, Origin, ScanEvent};
use concession_agent::signal::{DecisionEvent, Signal};
use crossbeam_channel::{unbounded, Receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
const START_MS: u64 = 1_764_266_400_000;
const TOKEN: &str = "correct-horse-battery-staple";

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Client { w, r }
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("a line in time");
        assert!(n > 0, "connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// The next line that is not a status line.
    fn answer(&mut self) -> Value {
        loop {
            let v = self.recv();
            if v["type"] != "status" {
                return v;
            }
        }
    }

    fn ping(&mut self, id: &str) {
        self.send(&format!(r#"{{"type":"ping","request_id":"{id}"}}"#));
        let v = self.answer();
        assert_eq!(
            (v["type"].as_str(), v["request_id"].as_str()),
            (Some("pong"), Some(id))
        );
    }

    fn auth(&mut self, token: &str) -> Value {
        self.send(&format!(
            r#"{{"type":"auth","token":"{token}","request_id":"a"}}"#
        ));
        self.answer()
    }

    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn server_with(opts: PosOptions) -> (PosServer, Receiver<AgentRequest>, ManualClock) {
    let (tx, rx) = unbounded();
    let clock = ManualClock::new(START_MS);
    let opts = PosOptions {
        poll_interval: Duration::from_millis(10),
        terminal: "stand-12".into(),
        ..opts
    };
    let srv = PosServer::bind_with("127.0.0.1:0", tx, clock.clone().shared(), opts).unwrap();
    (srv, rx, clock)
}

fn next_scan(rx: &Receiver<AgentRequest>) -> ScanEvent {
    match rx.recv_timeout(WAIT).expect("a request in time") {
        AgentRequest::Scan(s) => s,
        other => panic!("expected a scan, got {other:?}"),
    }
}

fn approval(request: Option<&str>, id: &str, cents: u64) -> DecisionEvent {
    DecisionEvent {
        id: id.into(),
        time: "2026-11-27T18:00:00.000Z".into(),
        terminal: "stand-12".into(),
        barcode: "********0003".into(),
        decision: Verdict::Approve,
        reason: concession_agent::decide::Reason::Approved,
        approved_cents: cents,
        items: vec![],
        source: concession_agent::decide::Source::Live,
        latency_ms: 5,
        request: request.map(str::to_string),
        venue: None,
    }
}

/// Client `a` scans; the "agent" approves $15 with id `d-1`, told to `a` only.
fn a_sale(
    srv: &PosServer,
    rx: &Receiver<AgentRequest>,
    a: &mut Client,
) -> concession_agent::pos::PosSignal {
    let mut sig = srv.signal();
    a.send(r#"{"type":"scan","barcode":"100000000003","request_id":"s1"}"#);
    let scan = next_scan(rx);
    assert!(sig.decision_to(&scan.origin, &approval(Some("s1"), "d-1", 1500)));
    assert_eq!(a.answer()["id"], "d-1");
    sig
}

#[test]
fn a_void_from_another_client_is_refused() {
    let (srv, rx, _clock) = server_with(PosOptions::default());
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    b.ping("b");
    a_sale(&srv, &rx, &mut a);

    // `b` guesses the sequential id: refused by the link, the agent never hears of it.
    b.send(r#"{"type":"void","decision_id":"d-1","request_id":"v-b"}"#);
    let v = b.answer();
    assert_eq!(v["type"], "void_result");
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["request_id"], "v-b");
    assert_eq!(v["terminal"], "stand-12");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not made on this connection"),
        "{v}"
    );
    assert!(rx.try_recv().is_err(), "nothing reached the agent");

    // The client that made the sale may void it.
    a.send(r#"{"type":"void","decision_id":"d-1","request_id":"v-a"}"#);
    match rx.recv_timeout(WAIT).expect("the void goes to the agent") {
        AgentRequest::Void { decision_id, .. } => assert_eq!(decision_id, "d-1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_void_with_the_token_reaches_the_agent_and_the_client_that_made_the_sale_is_told() {
    let (srv, rx, _clock) = server_with(PosOptions {
        token: Some(Secret::new(TOKEN)),
        ..PosOptions::default()
    });
    let mut a = Client::connect(srv.local_addr());
    assert_eq!(a.auth(TOKEN)["type"], "auth_result");
    let mut sig = a_sale(&srv, &rx, &mut a);
    // A manager's POS (or the same POS after a reconnect) holds the token.
    let mut m = Client::connect(srv.local_addr());
    let ok = m.auth(TOKEN);
    assert_eq!(
        (ok["type"].as_str(), ok["ok"].as_bool()),
        (Some("auth_result"), Some(true))
    );
    m.send(r#"{"type":"void","decision_id":"d-1","request_id":"v-m"}"#);
    let AgentRequest::Void { origin, .. } = rx.recv_timeout(WAIT).unwrap() else {
        panic!("a void")
    };
    // The void came from `m`'s connection: the answer routes there by its request id.
    assert!(matches!(origin, Origin::Pos { .. }), "{origin:?}");
    sig.void_result(&concession_agent::signal::VoidEvent {
        decision_id: "d-1".into(),
        request_id: Some("v-m".into()),
        outcome: concession_agent::signal::VoidOutcome::Voided,
        reversed_cents: 1500,
        items: vec![],
        error: None,
        time: "2026-11-27T18:00:09.000Z".into(),
        terminal: "stand-12".into(),
    })
    .expect("the link never fails a void answer");
    assert_eq!(m.answer()["outcome"], "voided");
    // The first client learns its sale was reversed (it would otherwise hand over the
    // goods again on a re-scan without knowing why the value came back).
    let told = a.answer();
    assert_eq!(
        (told["type"].as_str(), told["decision_id"].as_str()),
        (Some("void_result"), Some("d-1"))
    );
    assert_eq!(told["outcome"], "voided");
}

#[test]
fn with_a_token_nothing_but_auth_and_ping_is_taken_before_auth_and_a_wrong_token_closes() {
    let (srv, rx, _clock) = server_with(PosOptions {
        token: Some(Secret::new(TOKEN)),
        ..PosOptions::default()
    });
    let mut c = Client::connect(srv.local_addr());
    c.ping("p");
    c.send(r#"{"type":"scan","barcode":"100000000001","request_id":"s"}"#);
    let e = c.answer();
    assert_eq!(
        (e["type"].as_str(), e["request_id"].as_str()),
        (Some("error"), Some("s"))
    );
    assert_eq!(e["error"], "authentication required: send auth first");
    c.send(r#"{"type":"void","decision_id":"d-1","request_id":"v"}"#);
    assert_eq!(
        c.answer()["error"],
        "authentication required: send auth first"
    );
    assert!(rx.try_recv().is_err());

    let e = c.auth("not-the-token-at-all");
    assert_eq!(e["error"], "wrong token");
    assert!(
        !e.to_string().contains("not-the-token"),
        "the token is not echoed: {e}"
    );
    assert!(c.closed());

    // Without a token on the link, auth says so.
    let (srv, _rx, _clock) = server_with(PosOptions::default());
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(c.auth(TOKEN)["error"], "this link has no token");
}

#[test]
fn a_non_loopback_listen_address_without_a_token_is_refused() {
    let (tx, _rx) = unbounded();
    let clock = ManualClock::new(START_MS).shared();
    let err = PosServer::bind_with(
        "0.0.0.0:0",
        tx.clone(),
        clock.clone(),
        PosOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PosError::NoToken(_)), "{err}");
    assert!(err.to_string().contains("pos.token"), "{err}");
    let srv = PosServer::bind_with(
        "0.0.0.0:0",
        tx,
        clock,
        PosOptions {
            token: Some(Secret::new(TOKEN)),
            ..PosOptions::default()
        },
    );
    assert!(srv.is_ok());

    // The configuration refuses it before anything starts, and never prints the token.
    let cfg = |pos: &str| {
        let text = format!(
            "terminal_id = \"t\"\n[ats]\nurl = \"http://127.0.0.1:9\"\napikey = \"k\"\n[pos]\n{pos}\n"
        );
        Config::from_raw(RawConfig::parse(&text, std::path::Path::new("t")).unwrap())
    };
    let err = cfg("listen = \"0.0.0.0:7401\"").unwrap_err().to_string();
    assert!(err.contains("pos.listen") && err.contains("token"), "{err}");
    assert!(cfg("listen = \"127.0.0.1:7401\"").is_ok());
    assert!(cfg(&format!("listen = \"0.0.0.0:7401\"\ntoken = \"{TOKEN}\"")).is_ok());
    let err = cfg("listen = \"0.0.0.0:7401\"\ntoken = \"short-secret\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at least 16") && !err.contains("short-secret"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_token_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pos.token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "terminal_id = \"t\"\n[ats]\nurl = \"http://127.0.0.1:9\"\napikey = \"k\"\n\
         [pos]\nlisten = \"0.0.0.0:7401\"\ntoken_file = {:?}\n",
        path.display().to_string()
    );
    let parse = || Config::from_raw(RawConfig::parse(&text, std::path::Path::new("t")).unwrap());
    let err = parse().unwrap_err().to_string();
    assert!(
        err.contains("pos.token_file") && err.contains("644"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = parse().expect("a private token file is fine");
    assert_eq!(config.pos.token.unwrap().expose(), TOKEN);
}

#[test]
fn a_request_line_that_never_ends_is_closed_after_the_line_timeout() {
    let (srv, rx, clock) = server_with(PosOptions::default());
    let mut slow = Client::connect(srv.local_addr());
    slow.ping("s");
    slow.w
        .write_all(br#"{"type":"scan","barcode":"1000"#)
        .unwrap();
    // Time moves only here; each step is past the timeout, so the link closes the
    // connection on the first look after it saw the partial line.
    let mut closed = None;
    for _ in 0..500 {
        clock.advance(Duration::from_secs(11));
        slow.w
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut line = String::new();
        match slow.r.read_line(&mut line) {
            Ok(n) if n > 0 => {
                closed = Some(line);
                break;
            }
            _ => continue,
        }
    }
    let line = closed.expect("an error line before the close");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v["error"],
        "request line not finished within 10000 ms: closing"
    );
    slow.w.set_read_timeout(Some(WAIT)).unwrap();
    assert!(slow.closed());
    assert!(rx.try_recv().is_err(), "the partial line was no request");
}

#[test]
fn silent_sockets_cannot_lock_the_pos_out() {
    let (srv, rx, clock) = server_with(PosOptions::default());
    // The eight slots taken by sockets that never send a byte.
    let mut squatters: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(srv.local_addr()).unwrap())
        .collect();
    let registered = support::wait_for(WAIT, || (srv.client_count() == 8).then_some(()));
    assert!(registered.is_some());
    // While they are fresh, a newcomer is refused (a busy POS is never pushed off)...
    let mut early = Client::connect(srv.local_addr());
    assert_eq!(early.recv()["error"], "too many clients");
    // ...once they have been silent for the line timeout, the real POS gets a slot.
    clock.advance(Duration::from_secs(10));
    let mut pos = Client::connect(srv.local_addr());
    pos.ping("in");
    pos.send(r#"{"type":"scan","barcode":"100000000001","request_id":"r1"}"#);
    assert_eq!(next_scan(&rx).request_id.as_deref(), Some("r1"));
    // The evicted squatter was told why.
    let mut told = 0;
    for s in squatters.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = String::new();
        if BufReader::new(&*s).read_line(&mut buf).is_ok() && buf.contains("make room") {
            told += 1;
        }
    }
    assert_eq!(told, 1);
    assert_eq!(srv.client_count(), 8);
}

#[test]
fn with_a_token_a_socket_that_does_not_auth_in_time_is_closed() {
    let (srv, _rx, clock) = server_with(PosOptions {
        token: Some(Secret::new(TOKEN)),
        ..PosOptions::default()
    });
    let mut lazy = Client::connect(srv.local_addr());
    lazy.ping("l");
    let mut good = Client::connect(srv.local_addr());
    good.auth(TOKEN);
    clock.advance(Duration::from_secs(10));
    let v = lazy.answer();
    assert_eq!(v["error"], "no auth within 10000 ms: closing");
    assert!(lazy.closed());
    good.ping("still here");
}

#[test]
fn a_flooding_client_spends_only_its_own_scan_share() {
    let (srv, rx, clock) = server_with(PosOptions {
        scans_per_minute: Some(6),
        scan_burst: 3,
        ..PosOptions::default()
    });
    let mut flood = Client::connect(srv.local_addr());
    let mut other = Client::connect(srv.local_addr());
    for i in 0..20 {
        flood.send(&format!(
            r#"{{"type":"scan","barcode":"9999999{i:05}","request_id":"f{i}"}}"#
        ));
    }
    let mut refused = 0;
    for _ in 0..17 {
        let e = flood.answer();
        assert_eq!(
            e["error"],
            "scan rate limit: this connection may send 6 scans per minute"
        );
        refused += 1;
    }
    assert_eq!(refused, 17);
    let forwarded: Vec<ScanEvent> = (0..3).map(|_| next_scan(&rx)).collect();
    assert_eq!(forwarded.len(), 3);
    assert!(rx.try_recv().is_err());
    // The other client's share is its own.
    other.send(r#"{"type":"scan","barcode":"100000000001","request_id":"o1"}"#);
    assert_eq!(next_scan(&rx).request_id.as_deref(), Some("o1"));
    // The share refills with time: 10 s buys one scan at 6 per minute.
    clock.advance(Duration::from_secs(10));
    flood.send(r#"{"type":"scan","barcode":"100000000002","request_id":"f-late"}"#);
    assert_eq!(next_scan(&rx).request_id.as_deref(), Some("f-late"));
}

// ---------------------------------------------------------------------------------------
// End to end: the agent loop on a sandbox, the link as `app::start_io` builds it.

struct Stand {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Agent>>,
    running: Option<app::Running>,
    sandbox: concession_agent::sandbox::SandboxHandle,
    _dir: tempfile::TempDir,
}

impl Stand {
    fn start(extra: &str) -> Stand {
        let sandbox = support::sandbox();
        let dir = tempfile::tempdir().unwrap();
        let config = support::config(&sandbox.base_url(), &dir.path().join("store"), extra);
        let clock = concession_agent::clock::system();
        let mut wiring = Wiring::plan(&config, None).expect("wiring");
        wiring.console = false;
        wiring.jsonl_stdout = false;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(256);
        let (running, outputs) =
            app::start_io(&wiring, &tx, clock.clone(), Arc::clone(&stop)).expect("io starts");
        drop(tx);
        let link = app::connect_ats(&config, clock.clone()).unwrap();
        let store = app::open_store(&config).unwrap();
        let mut agent = Agent::new(config, link.client, store, clock, outputs);
        let s2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            agent.run(&rx, &s2).expect("the loop runs");
            agent
        });
        Stand {
            stop,
            thread: Some(thread),
            running: Some(running),
            sandbox,
            _dir: dir,
        }
    }

    fn pos_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .unwrap()
            .pos
            .as_ref()
            .unwrap()
            .local_addr()
    }

    fn stop(mut self) -> Agent {
        self.stop.store(true, Ordering::SeqCst);
        let agent = self.thread.take().unwrap().join().unwrap();
        drop(self.running.take());
        agent
    }
}

#[test]
fn a_void_from_another_client_is_refused_and_the_sale_stays_spent_end_to_end() {
    let stand = Stand::start("events = [\"EVENT01\"]\n[pos]\nlisten = \"127.0.0.1:0\"");
    let mut a = Client::connect(stand.pos_addr());
    let mut b = Client::connect(stand.pos_addr());
    a.send(r#"{"type":"scan","barcode":"100000000008","amount_cents":1500,"request_id":"a1"}"#);
    let d = a.answer();
    assert_eq!(
        (d["decision"].as_str(), d["approved_cents"].as_u64()),
        (Some("approve"), Some(1500))
    );
    let id = d["id"].as_str().unwrap().to_string();
    b.send(&format!(
        r#"{{"type":"void","decision_id":"{id}","request_id":"b1"}}"#
    ));
    assert_eq!(b.answer()["outcome"], "refused");
    // An unknown id still gets the agent's own answer.
    b.send(r#"{"type":"void","decision_id":"nope-000000000077","request_id":"b2"}"#);
    assert_eq!(b.answer()["outcome"], "not_found");
    let agent = stand.stop();
    let entry = agent.store().journal_entry(&id).unwrap().unwrap();
    assert_eq!(entry.voided_by, None, "the approval stands");
    agent.shutdown();
}

#[test]
fn a_client_flooding_unknown_barcodes_does_not_take_the_stand_offline() {
    let stand = Stand::start(
        "events = [\"EVENT01\"]\n[ats]\nrate_per_minute = 80\n[pos]\nlisten = \"127.0.0.1:0\"",
    );
    let mut flood = Client::connect(stand.pos_addr());
    let mut pos = Client::connect(stand.pos_addr());
    pos.ping("p");
    for i in 0..200 {
        flood.send(&format!(
            r#"{{"type":"scan","barcode":"9{i:011}","request_id":"f{i}"}}"#
        ));
    }
    let (mut decided, mut limited) = (0, 0);
    for _ in 0..200 {
        let v = flood.answer();
        match v["type"].as_str() {
            Some("decision") => decided += 1,
            Some("error") if v["error"].as_str().unwrap().starts_with("scan rate limit") => {
                limited += 1
            }
            _ => panic!("{v}"),
        }
    }
    // Default share: a quarter of 80 per minute, after a burst of 10.
    assert!(decided <= 12, "{decided} decided");
    assert_eq!(decided + limited, 200);
    // The stand's real POS is still served live, and nobody was told "offline".
    pos.send(r#"{"type":"scan","barcode":"100000000001","request_id":"real"}"#);
    let mut statuses = Vec::new();
    let d = loop {
        let v = pos.recv();
        if v["type"] == "status" {
            statuses.push(v["status"].clone());
            continue;
        }
        break v;
    };
    assert!(statuses.iter().all(|s| s != "offline"), "{statuses:?}");
    assert_eq!(d["request"], "real");
    assert_eq!(
        (d["decision"].as_str(), d["source"].as_str()),
        (Some("approve"), Some("live")),
        "{d}"
    );
    let calls = stand.sandbox.stats().total_requests;
    assert!(calls <= 2 * 12 + 2, "{calls} ATS requests");
    pos.ping("q");
    let agent = stand.stop();
    agent.shutdown();
}
