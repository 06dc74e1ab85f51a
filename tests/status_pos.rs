//! The POS link tells a client the agent's current status (issue 14, item 5): a
//! `status` line as soon as it connects, and `status` in every `pong`. Loopback only;
//! waits are socket reads with timeouts.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use concession_agent::clock::ManualClock;
use concession_agent::pos::PosServer;
use concession_agent::signal::{AgentStatus, Signal};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

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

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("a line in time");
        assert!(n > 0, "connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn ping(&mut self, id: &str) -> Value {
        writeln!(self.w, r#"{{"type":"ping","request_id":"{id}"}}"#).unwrap();
        let v = self.recv();
        assert_eq!(
            (v["type"].as_str(), v["request_id"].as_str()),
            (Some("pong"), Some(id))
        );
        v
    }
}

#[test]
fn a_client_connecting_while_the_agent_is_offline_is_told_so_first_and_pong_carries_the_status() {
    let (tx, _rx) = crossbeam_channel::unbounded();
    let clock = ManualClock::new(1_764_266_400_000).shared();
    let server = PosServer::bind("127.0.0.1:0", tx, clock).unwrap();
    let mut signal = server.signal();

    // Before the agent has said anything, a client gets no status and pong has none.
    let mut early = Client::connect(server.local_addr());
    let pong = early.ping("p0");
    assert!(pong.get("status").is_none_or(Value::is_null), "{pong}");

    signal.status(AgentStatus::Offline).unwrap();
    assert_eq!(
        early.recv(),
        serde_json::json!({"type":"status","status":"offline"})
    );

    // A client connecting now hears the current status first, before any answer.
    let mut late = Client::connect(server.local_addr());
    assert_eq!(
        late.recv(),
        serde_json::json!({"type":"status","status":"offline"})
    );
    assert_eq!(late.ping("p1")["status"], "offline");

    // A change reaches both; pong follows it.
    signal.status(AgentStatus::Ready).unwrap();
    for c in [&mut early, &mut late] {
        assert_eq!(c.recv()["status"], "ready");
        assert_eq!(c.ping("p2")["status"], "ready");
    }
    signal.status(AgentStatus::LowDisk).unwrap();
    let mut third = Client::connect(server.local_addr());
    assert_eq!(third.recv()["status"], "low_disk");
}

#[test]
fn the_real_agent_started_offline_tells_a_pos_that_connects_later() {
    // A port for the link: bound, read and released (the agent binds it next).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // ATS refuses connections: the agent starts offline.
    let agent = support::RunningAgent::start(
        "http://127.0.0.1:9",
        &format!("[pos]\nlisten = \"127.0.0.1:{port}\""),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stream =
        support::wait_for(WAIT, || TcpStream::connect(addr).ok()).expect("the POS link listens");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut c = Client {
        r: BufReader::new(stream.try_clone().unwrap()),
        w: stream,
    };
    // The link may be up a moment before the loop's first status: the first line is
    // that status either way (sent on connect, or broadcast when it comes).
    assert_eq!(
        c.recv(),
        serde_json::json!({"type":"status","status":"offline"})
    );
    writeln!(c.w, r#"{{"type":"ping","request_id":"p1"}}"#).unwrap();
    // (The agent says `offline` when it finds ATS away and again as its loop starts.)
    let pong = loop {
        let v = c.recv();
        if v["type"] == "pong" {
            break v;
        }
        assert_eq!(v, serde_json::json!({"type":"status","status":"offline"}));
    };
    assert_eq!(pong["status"], "offline");
    drop(agent);
}
