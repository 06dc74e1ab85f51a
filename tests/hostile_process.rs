//! The real binary against hostile process conditions (issue 11, items 4, 7, 8): a POS
//! output that goes away, SIGHUP, and what a core dump would hold. Each test starts
//! its own sandbox on loopback and its own store.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::decide::Verdict;
use concession_agent::pos::{PosOptions, PosServer};
use concession_agent::scan::AgentRequest;
use serde_json::Value;
use support::wait_for;

struct Stand {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Stand {
    fn new(url: &str) -> Stand {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "terminal_id = \"hostile\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
             [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\n\
             [cache]\nprefetch_at_start = false\n",
            store = dir.path().join("store").display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        Stand { dir, config }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = support::agent_command("info");
        c.arg("--config").arg(&self.config).args(args);
        c.current_dir(self.dir.path());
        c
    }

    fn journal(&self) -> Vec<Value> {
        let out = self
            .cmd(&["journal", "export"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn exited(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    match wait_for(limit, || child.try_wait().unwrap()) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            panic!("no exit within {limit:?}");
        }
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> crossbeam_channel::Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_json(rx: &crossbeam_channel::Receiver<String>, kind: &str) -> Value {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a line in time");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == kind {
            return v;
        }
    }
}

/// `run --pos jsonl | head -2`: the second approval cannot be reported, so it is
/// reversed in the journal, and the agent stops instead of approving more.
#[test]
fn an_approval_the_stdout_pos_never_saw_is_voided_and_the_agent_stops() {
    let sandbox = support::sandbox();
    let stand = Stand::new(&sandbox.base_url());
    let mut child = stand
        .cmd(&["run", "--pos", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    // Read the first decision, then close our end of the pipe, as `head` does.
    let mut reader = BufReader::new(stdout);
    stdin.write_all(b"100000000001\n").unwrap();
    stdin.flush().unwrap();
    let first = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "decision" {
            break v;
        }
    };
    assert_eq!(first["approved_cents"], 2000);
    drop(reader);
    // $15 + a hot dog, then $50: neither can be reported.
    let _ = stdin.write_all(b"100000000003\n");
    let _ = stdin.flush();
    let status = exited(&mut child, Duration::from_secs(20));
    let _ = stdin.write_all(b"100000000008\n");
    drop(stdin);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log: Vec<String> = stderr.iter().collect();
    let log = log.join("\n");
    assert!(log.contains("undelivered"), "{log}");
    assert!(log.contains("pos output lost"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let journal = stand.journal();
    let decisions: Vec<&Value> = journal.iter().filter(|e| e["kind"] == "decision").collect();
    let voids: Vec<&Value> = journal.iter().filter(|e| e["kind"] == "void").collect();
    assert_eq!(
        decisions.len(),
        2,
        "nothing after the failure was decided: {journal:?}"
    );
    assert_eq!(decisions[0]["id"], first["id"]);
    assert_eq!(
        decisions[0]["voided_by"],
        Value::Null,
        "the one it saw stands"
    );
    assert_eq!(voids.len(), 1, "{journal:?}");
    assert_eq!(voids[0]["reason"], "undelivered");
    assert_eq!(voids[0]["void_of"], decisions[1]["id"]);
    assert_eq!(decisions[1]["voided_by"], voids[0]["id"]);
    // Export form of a void (issue 16.3): nothing approved, the sale refunded.
    assert_eq!(voids[0]["approved_cents"], 0);
    assert_eq!(voids[0]["refunded_cents"], 1500);
    assert_eq!(voids[0]["net_cents"], -1500);

    // The value came back: the next run approves that ticket again.
    let out = stand
        .cmd(&["run", "--pos", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = out;
    out.stdin
        .take()
        .unwrap()
        .write_all(b"100000000003\n")
        .unwrap();
    let rx = lines_of(out.stdout.take().unwrap());
    let d = next_json(&rx, "decision");
    assert_eq!(
        (d["decision"].as_str(), d["approved_cents"].as_u64()),
        (Some("approve"), Some(1500))
    );
    assert_eq!(exited(&mut out, Duration::from_secs(20)).code(), Some(0));
}

/// The POS link's client asked and left before the answer: the approval is reversed.
#[test]
fn an_approval_for_a_pos_client_that_left_is_voided() {
    let sandbox = support::sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config = support::config(
        &sandbox.base_url(),
        &dir.path().join("store"),
        "events = [\"EVENT01\"]",
    );
    let clock = concession_agent::clock::system();
    let (tx, rx) = crossbeam_channel::unbounded();
    let srv = PosServer::bind_with(
        "127.0.0.1:0",
        tx,
        clock.clone(),
        PosOptions {
            poll_interval: Duration::from_millis(10),
            ..PosOptions::default()
        },
    )
    .unwrap();
    let link = app::connect_ats(&config, clock.clone()).unwrap();
    let store = app::open_store(&config).unwrap();
    let mut outputs = Outputs::default();
    outputs.push(Box::new(srv.signal()));
    let mut agent = Agent::new(config, Arc::clone(&link.client), store, clock, outputs);

    let mut c = std::net::TcpStream::connect(srv.local_addr()).unwrap();
    c.write_all(b"{\"type\":\"scan\",\"barcode\":\"100000000001\",\"request_id\":\"gone\"}\n")
        .unwrap();
    let Ok(AgentRequest::Scan(scan)) = rx.recv_timeout(Duration::from_secs(5)) else {
        panic!("a scan")
    };
    drop(c);
    assert!(
        wait_for(Duration::from_secs(5), || (srv.client_count() == 0)
            .then_some(()))
        .is_some()
    );
    let d = agent.handle_scan(&scan).unwrap();
    assert_eq!(d.decision, Verdict::Approve);
    let entry = agent.store().journal_entry(&d.id).unwrap().unwrap();
    let void = entry.voided_by.expect("reversed");
    let void = agent.store().journal_entry(&void).unwrap().unwrap();
    assert_eq!(void.reason, "undelivered");
    assert_eq!(void.approved_cents, 2000);
    agent.shutdown();
}

/// `call ... | head -1` and friends: a reader that went away ends the command quietly.
#[test]
fn a_command_writing_into_a_closed_pipe_ends_quietly_without_abort() {
    let sandbox = support::sandbox();
    let stand = Stand::new(&sandbox.base_url());
    for args in [
        &["call", "event_search", "start_date=2026-11-27"][..],
        &["ping"][..],
        &["journal", "export"][..],
    ] {
        // A journal with something to export.
        if args[0] == "journal" {
            let mut c = stand
                .cmd(&["run", "--pos", "jsonl"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(b"999999999999\n")
                .unwrap();
            assert_eq!(exited(&mut c, Duration::from_secs(20)).code(), Some(0));
        }
        let mut child = stand
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first byte
        let stderr = lines_of(child.stderr.take().unwrap());
        let status = exited(&mut child, Duration::from_secs(20));
        let log: Vec<String> = stderr.iter().collect();
        assert_eq!(status.code(), Some(141), "{args:?}: {status:?} {log:?}");
        assert!(
            !log.iter().any(|l| l.contains("panicked")),
            "{args:?}: {log:?}"
        );
    }
}

/// A hang-up is logged and ignored; SIGTERM still ends the agent with `stopping`.
#[test]
fn sighup_is_ignored_and_sigterm_still_stops_cleanly() {
    let sandbox = support::sandbox();
    let stand = Stand::new(&sandbox.base_url());
    let mut child = stand
        .cmd(&["run", "--pos", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    next_json(&out, "status");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let logged = wait_for(Duration::from_secs(10), || {
        err.try_iter().find(|l| l.contains("SIGHUP ignored"))
    });
    assert!(logged.is_some(), "the hang-up is logged");
    // Still deciding after the hang-up.
    stdin.write_all(b"100000000001\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_json(&out, "decision")["approved_cents"], 2000);
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = exited(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let rest: Vec<Value> = out
        .iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    assert!(rest.iter().any(|v| v["status"] == "stopping"), "{rest:?}");
    drop(stdin);
}

/// No core file may hold the API key: the unit says so, and so does the binary
/// (`hardening::set_non_dumpable` is its first act; its unit test checks the prctl).
#[test]
fn the_service_unit_forbids_core_dumps_and_documents_sighup() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/concession-agent.service"
    ))
    .unwrap();
    let service: Vec<&str> = unit
        .lines()
        .skip_while(|l| l.trim() != "[Service]")
        .take_while(|l| l.trim() != "[Install]")
        .map(str::trim)
        .collect();
    assert!(service.contains(&"LimitCORE=0"), "{service:?}");
    assert!(!service.iter().any(|l| l.starts_with("ExecReload")));
}

/// The binary: a non-loopback POS link without a token does not start; with one, a
/// client must `auth`, and the token never reaches the log (even at debug level).
#[test]
fn the_binary_guards_its_pos_link_with_the_token_and_never_logs_it() {
    let sandbox = support::sandbox();
    let stand = Stand::new(&sandbox.base_url());
    let base = std::fs::read_to_string(&stand.config).unwrap();
    let open = format!("{base}[pos]\nlisten = \"0.0.0.0:0\"\n");
    std::fs::write(&stand.config, &open).unwrap();
    let out = stand
        .cmd(&["run", "--pos", "jsonl"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pos.listen") && err.contains("token"), "{err}");

    let token = "pos-link-token-0123456789";
    let guarded = format!("{base}[pos]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n");
    std::fs::write(&stand.config, guarded).unwrap();
    let mut c = stand.cmd(&["run", "--pos", "jsonl"]);
    c.env("RUST_LOG", "debug");
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = err
            .recv_timeout(Duration::from_secs(20))
            .expect("a log line");
        log.push(line.clone());
        if let Some(rest) = line.split("POS link listening on ").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    let connect = || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s.try_clone().unwrap(), BufReader::new(s))
    };
    let recv = |r: &mut BufReader<std::net::TcpStream>| -> Value {
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["type"] != "status" {
                return v;
            }
        }
    };
    let (mut w, mut r) = connect();
    w.write_all(b"{\"type\":\"scan\",\"barcode\":\"100000000001\",\"request_id\":\"s0\"}\n")
        .unwrap();
    assert_eq!(
        recv(&mut r)["error"],
        "authentication required: send auth first"
    );
    w.write_all(b"{\"type\":\"auth\",\"token\":\"guess-guess-guess-guess\"}\n")
        .unwrap();
    assert_eq!(recv(&mut r)["error"], "wrong token");
    let (mut w, mut r) = connect();
    w.write_all(format!("{{\"type\":\"auth\",\"token\":\"{token}\"}}\n").as_bytes())
        .unwrap();
    assert_eq!(recv(&mut r)["ok"], true);
    w.write_all(b"{\"type\":\"scan\",\"barcode\":\"100000000001\",\"request_id\":\"s1\"}\n")
        .unwrap();
    let d = recv(&mut r);
    assert_eq!(
        (d["request"].as_str(), d["approved_cents"].as_u64()),
        (Some("s1"), Some(2000))
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(exited(&mut child, Duration::from_secs(15)).code(), Some(0));
    drop(child.stdin.take());
    log.extend(err.iter());
    let log = log.join("\n");
    assert!(log.contains("authenticated"), "{log}");
    assert!(!log.contains(token), "the token is in the log");
    assert!(
        !log.contains("guess-guess"),
        "a presented token is in the log"
    );
}
