//! The POS link end to end on 127.0.0.1: requests reach the agent's channel, answers
//! reach the client that asked, malformed input gets error lines and never closes the
//! connection. Waiting is on channels and socket reads with timeouts, never sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use concession_agent::clock::ManualClock;
use concession_agent::decide::Verdict;
use concession_agent::pos::{PosOptions, PosServer};
use concession_agent::scan::{AgentRequest, Origin, ScanEvent, ScanInput};
use concession_agent::signal::{
    AgentStatus, DecisionEvent, Signal, SignalError, VoidEvent, VoidOutcome,
};
use crossbeam_channel::{unbounded, Receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
const START_MS: u64 = 1_764_266_400_000;

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

    /// Round trip that proves the server has registered this client.
    fn ping(&mut self, id: &str) {
        self.send(&format!(r#"{{"type":"ping","request_id":"{id}"}}"#));
        let v = self.recv();
        assert_eq!(v["type"], "pong");
        assert_eq!(v["request_id"], id);
    }

    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.r.read(&mut buf), Ok(0))
    }
}

fn server() -> (PosServer, Receiver<AgentRequest>) {
    server_with(PosOptions::default())
}

fn server_with(mut opts: PosOptions) -> (PosServer, Receiver<AgentRequest>) {
    opts.poll_interval = Duration::from_millis(20);
    let (tx, rx) = unbounded();
    let clock = ManualClock::new(START_MS).shared();
    (
        PosServer::bind_with("127.0.0.1:0", tx, clock, opts).unwrap(),
        rx,
    )
}

fn next_scan(rx: &Receiver<AgentRequest>) -> ScanEvent {
    match rx.recv_timeout(WAIT).expect("a request in time") {
        AgentRequest::Scan(s) => s,
        other => panic!("expected a scan, got {other:?}"),
    }
}

fn decision(request: Option<&str>, id: &str, cents: u64) -> DecisionEvent {
    DecisionEvent {
        id: id.into(),
        time: "2026-11-27T18:00:00.000Z".into(),
        terminal: "stand-12".into(),
        barcode: "********0001".into(),
        decision: Verdict::Approve,
        reason: concession_agent::decide::Reason::Approved,
        approved_cents: cents,
        items: vec![],
        source: concession_agent::decide::Source::Live,
        latency_ms: 3,
        request: request.map(str::to_string),
        venue: None,
    }
}

#[test]
fn scan_requests_reach_the_agent_and_answers_reach_the_right_client() {
    let (srv, rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());

    a.send(r#"{"type":"scan","barcode":"]C1100000000001","amount_cents":500,"request_id":"a1"}"#);
    let sa = next_scan(&rx);
    b.send(r#"{"type":"scan","barcode":"100000000008","request_id":"b1"}"#);
    let sb = next_scan(&rx);

    assert!(matches!(&sa.input, ScanInput::Barcode(bc) if bc.as_str() == "100000000001"));
    assert_eq!(sa.amount_cents, Some(500));
    assert_eq!(sa.request_id.as_deref(), Some("a1"));
    assert_eq!(sa.received_at_ms, START_MS);
    assert!(sa.origin.is_pos());
    assert_eq!(sb.amount_cents, None);
    assert_ne!(sa.origin, sb.origin);

    // Answer b first: routing is by request id, not order.
    sig.decision(&decision(Some("b1"), "d-b1", 5000)).unwrap();
    sig.decision(&decision(Some("a1"), "d-a1", 500)).unwrap();
    let va = a.recv();
    let vb = b.recv();
    assert_eq!(va["type"], "decision");
    assert_eq!(va["id"], "d-a1");
    assert_eq!(va["request"], "a1");
    assert_eq!(va["approved_cents"], 500);
    assert_eq!(vb["id"], "d-b1");

    // Nothing extra went to either: the next line each sees is its own pong.
    a.ping("pa");
    b.ping("pb");
}

#[test]
fn reused_request_ids_are_answered_in_arrival_order_or_by_origin() {
    let (srv, rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    a.send(r#"{"type":"scan","barcode":"100000000001","request_id":"r1"}"#);
    let sa = next_scan(&rx);
    b.send(r#"{"type":"scan","barcode":"100000000002","request_id":"r1"}"#);
    let sb = next_scan(&rx);
    a.send(r#"{"type":"scan","barcode":"100000000003","request_id":"r1"}"#);
    let sa2 = next_scan(&rx);

    // In arrival order through the Signal trait.
    sig.decision(&decision(Some("r1"), "d1", 1)).unwrap();
    assert_eq!(a.recv()["id"], "d1");
    // Out of order, with the origin the loop kept.
    sig.decision_to(&sa2.origin, &decision(Some("r1"), "d3", 3));
    assert_eq!(a.recv()["id"], "d3");
    sig.decision_to(&sb.origin, &decision(Some("r1"), "d2", 2));
    assert_eq!(b.recv()["id"], "d2");
    drop(sa);
}

#[test]
fn a_bare_barcode_line_is_a_scan_with_an_assigned_request_id() {
    let (srv, rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    a.send("100000000002j");
    let s = next_scan(&rx);
    assert!(matches!(&s.input, ScanInput::Barcode(b) if b.channel() == Some('j')));
    let id = s.request_id.clone().expect("assigned id");
    assert!(id.starts_with("pos"), "{id}");
    sig.decision(&decision(Some(&id), "d-1", 0)).unwrap();
    let v = a.recv();
    assert_eq!(v["request"], id.as_str());

    // A bare line that is not a barcode is still a scan: the agent denies it.
    a.send("hello there");
    assert!(matches!(next_scan(&rx).input, ScanInput::Unreadable(_)));
    // So is a SafeTix payload.
    a.send("tok::123456::654321::1764266400");
    assert!(matches!(next_scan(&rx).input, ScanInput::SafeTix(_)));
}

#[test]
fn malformed_requests_get_error_lines_and_the_connection_stays_open() {
    let (srv, rx) = server();
    let mut a = Client::connect(srv.local_addr());
    let cases: [(&str, Option<&str>, &str); 10] = [
        ("{not json", None, "invalid json"),
        ("[1,2,3]", None, "request must be a json object"),
        (r#"{"request_id":"e1"}"#, Some("e1"), "missing type"),
        (
            r#"{"type":"refund","request_id":"e2"}"#,
            Some("e2"),
            "unknown type",
        ),
        (
            r#"{"type":"scan","request_id":"e3"}"#,
            Some("e3"),
            "missing barcode",
        ),
        (
            r#"{"type":"scan","barcode":"100000000001","amount_cents":-5,"request_id":"e4"}"#,
            Some("e4"),
            "amount_cents must be a positive integer",
        ),
        (
            r#"{"type":"scan","barcode":"100000000001","amount_cents":1e308,"request_id":"e5"}"#,
            Some("e5"),
            "amount_cents must be a positive integer",
        ),
        (
            r#"{"type":"scan","barcode":"100000000001","amount_cents":123456789012345678901234567890}"#,
            None,
            "amount_cents must be a positive integer",
        ),
        (
            r#"{"type":"void","request_id":"e6"}"#,
            Some("e6"),
            "missing decision_id",
        ),
        (
            r#"{"type":"scan","barcode":"100000000001","request_id":42}"#,
            None,
            "request_id must be a string of 1 to 64 printable characters",
        ),
    ];
    for (line, id, err) in cases {
        a.send(line);
        let v = a.recv();
        assert_eq!(v["type"], "error", "{line}");
        assert_eq!(v["error"], err, "{line}");
        match id {
            Some(id) => assert_eq!(v["request_id"], id, "{line}"),
            None => assert_eq!(v["request_id"], Value::Null, "{line}"),
        }
    }
    // Framing noise: control characters, invalid UTF-8, an overlong line.
    a.w.write_all(b"{\"type\":\"ping\"}\x07\n").unwrap();
    assert_eq!(a.recv()["error"], "unreadable request: control_char");
    a.w.write_all(b"\xff\xfe\n").unwrap();
    assert_eq!(a.recv()["error"], "unreadable request: invalid_utf8");
    let huge = format!(r#"{{"type":"scan","barcode":"{}"}}"#, "1".repeat(100_000));
    a.send(&huge);
    assert_eq!(a.recv()["error"], "request longer than 4096 bytes");
    // Nothing reached the agent, and the connection still works.
    assert!(rx.try_recv().is_err());
    a.send(r#"{"type":"scan","barcode":"100000000001","request_id":"ok"}"#);
    assert_eq!(next_scan(&rx).request_id.as_deref(), Some("ok"));
}

#[test]
fn local_scans_and_status_go_to_every_client() {
    let (srv, _rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    a.ping("a");
    b.ping("b");
    assert_eq!(srv.client_count(), 2);

    sig.decision(&decision(None, "d-local", 2000)).unwrap();
    sig.status(AgentStatus::Offline).unwrap();
    for c in [&mut a, &mut b] {
        let v = c.recv();
        assert_eq!(v["id"], "d-local");
        assert!(v.get("request").is_none());
        let s = c.recv();
        assert_eq!(s, serde_json::json!({"type":"status","status":"offline"}));
    }
    // decision_to with a local origin broadcasts too.
    sig.decision_to(&Origin::Stdin, &decision(None, "d-local2", 100));
    assert_eq!(a.recv()["id"], "d-local2");
    assert_eq!(b.recv()["id"], "d-local2");
}

#[test]
fn voids_reach_the_agent_and_the_result_reaches_the_requester() {
    let (srv, rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    b.ping("b");
    a.send(r#"{"type":"void","decision_id":"d-42","request_id":"v1"}"#);
    match rx.recv_timeout(WAIT).unwrap() {
        AgentRequest::Void {
            decision_id,
            request_id,
            origin,
            received_at_ms,
        } => {
            assert_eq!(decision_id, "d-42");
            assert_eq!(request_id.as_deref(), Some("v1"));
            assert!(origin.is_pos());
            assert_eq!(received_at_ms, START_MS);
        }
        other => panic!("{other:?}"),
    }
    sig.void_result(&VoidEvent {
        decision_id: "d-42".into(),
        request_id: Some("v1".into()),
        outcome: VoidOutcome::Voided,
        reversed_cents: 2000,
        items: vec![],
        error: None,
        time: "2026-11-27T18:00:09.000Z".into(),
        terminal: "stand-12".into(),
    })
    .unwrap();
    let v = a.recv();
    assert_eq!(v["type"], "void_result");
    assert_eq!(v["outcome"], "voided");
    assert_eq!(v["reversed_cents"], 2000);
    assert_eq!(v["request_id"], "v1");
    b.ping("b2"); // b saw nothing else
}

#[test]
fn answers_for_a_client_that_left_are_dropped_quietly() {
    let (srv, rx) = server();
    let mut sig = srv.signal();
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    a.send(r#"{"type":"scan","barcode":"100000000001","request_id":"gone"}"#);
    next_scan(&rx);
    b.ping("b");
    drop(a);
    // Wait until the server has noticed (a channel-free but bounded wait: the server
    // drops the client within its poll interval; ping b until the count is 1).
    for i in 0..500 {
        if srv.client_count() == 1 {
            break;
        }
        b.ping(&format!("w{i}"));
    }
    assert_eq!(srv.client_count(), 1);
    // The signal says so: the agent reverses an approval nobody was told of.
    assert!(matches!(
        sig.decision(&decision(Some("gone"), "d-x", 1)),
        Err(SignalError::Undelivered(_))
    ));
    b.ping("after"); // b did not get a's answer
}

#[test]
fn clients_over_the_limit_are_told_why_before_being_closed() {
    let (srv, _rx) = server_with(PosOptions {
        max_clients: 1,
        ..PosOptions::default()
    });
    let mut a = Client::connect(srv.local_addr());
    a.ping("a");
    let mut b = Client::connect(srv.local_addr());
    let v = b.recv();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"], "too many clients");
    assert!(b.closed());
    a.ping("a2");
}

#[test]
fn a_full_agent_queue_is_reported_not_dropped() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let opts = PosOptions {
        poll_interval: Duration::from_millis(20),
        ..PosOptions::default()
    };
    let srv = PosServer::bind_with("127.0.0.1:0", tx, ManualClock::new(0).shared(), opts).unwrap();
    let mut a = Client::connect(srv.local_addr());
    a.send(r#"{"type":"scan","barcode":"100000000001","request_id":"q1"}"#);
    a.send(r#"{"type":"scan","barcode":"100000000002","request_id":"q2"}"#);
    let v = a.recv();
    assert_eq!(v["error"], "agent busy");
    assert_eq!(v["request_id"], "q2");
    assert_eq!(next_scan(&rx).request_id.as_deref(), Some("q1"));
    drop(rx);
    a.send(r#"{"type":"scan","barcode":"100000000003","request_id":"q3"}"#);
    let v = a.recv();
    assert_eq!(v["error"], "agent stopped");
}

#[test]
fn shutdown_closes_every_client() {
    let (mut srv, _rx) = server();
    let mut a = Client::connect(srv.local_addr());
    a.ping("a");
    srv.shutdown();
    assert!(a.closed());
    assert!(TcpStream::connect(srv.local_addr()).is_err());
}
