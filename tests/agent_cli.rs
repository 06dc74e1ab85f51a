//! The `concession-agent` binary: scans on stdin with noise, the operator commands
//! (`lookup`, `journal export`, `cache ...`, `ping`, `call`) and SIGTERM, each against a
//! sandbox this test starts on loopback.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use concession_agent::sandbox::SandboxHandle;
use serde_json::Value;
use support::wait_for;

/// A temp dir with a config pointing at `url`; the store lives inside it.
struct Stand {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Stand {
    fn new(url: &str) -> Stand {
        Stand::serving(url, r#"["EVENT01"]"#)
    }

    /// A stand serving `events` (a TOML array).
    fn serving(url: &str, events: &str) -> Stand {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "terminal_id = \"cli-stand\"\nstore_dir = {store:?}\nevents = {events}\n\
             [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\n\
             [cache]\nprefetch_at_start = false\n",
            store = dir.path().join("store").display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        Stand { dir, config }
    }

    fn on(sandbox: &SandboxHandle) -> Stand {
        Stand::new(&sandbox.base_url())
    }

    /// The binary with `--config`, a clean environment and a quiet log.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = support::agent_command("warn");
        c.arg("--config").arg(&self.config).args(args);
        c.current_dir(self.dir.path());
        c
    }

    /// Runs a command to completion (stdin closed), with a time limit.
    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child, Duration::from_secs(30))
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `run --pos jsonl` with `input` on stdin; returns the JSON lines on stdout.
    fn scan(&self, input: &[u8]) -> Vec<Value> {
        let mut child = self
            .cmd(&["run", "--pos", "jsonl"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin); // EOF: the agent decides what it read and exits
        let out = finish(child, Duration::from_secs(30));
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout)
    }

    fn journal(&self, args: &[&str]) -> String {
        let mut all = vec!["journal", "export"];
        all.extend_from_slice(args);
        self.ok(&all)
    }
}

/// Waits for a child with a time limit (killing it on overrun), collecting its output.
fn finish(child: Child, limit: Duration) -> Output {
    let id = child.id();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("concession-agent (pid {id}) still running after {limit:?}");
        }
    }
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn decisions(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "decision").collect()
}

fn noisy_stdin() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"100000000001\n");
    v.extend_from_slice(b"\n\r\n");
    v.extend_from_slice(b"hello\n");
    v.extend_from_slice(b"\x1b[A\n");
    v.extend_from_slice(b"12\xff\xfe34\n");
    v.extend_from_slice(&[b'7'; 300]);
    v.extend_from_slice(b"\n");
    v.extend_from_slice(b"tok3n::123456::654321::1764266400\n");
    v.extend_from_slice(b"]C1100000000002\r\n");
    v.extend_from_slice(b"100000000001\n");
    v.extend_from_slice(b"   \n");
    v.extend_from_slice(b"999999999999\n");
    v.extend_from_slice(b"100000000006\n");
    v.extend_from_slice(b"100000000005K\n");
    v.extend_from_slice(b"100000000003");
    v
}

const NOISY_REASONS: [&str; 12] = [
    "approved",
    "unreadable",
    "unreadable",
    "unreadable",
    "unreadable",
    "safetix_unresolved",
    "approved",
    "already_redeemed",
    "unknown_ticket",
    "wrong_event",
    "ticket_void",
    "approved",
];

#[test]
fn stdin_with_noise_gets_one_decision_line_per_read_and_exits_0_at_eof() {
    let sandbox = support::sandbox();
    let stand = Stand::on(&sandbox);
    let lines = stand.scan(&noisy_stdin());
    let ds = decisions(&lines);
    let reasons: Vec<&str> = ds.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, NOISY_REASONS, "{lines:?}");
    assert_eq!(ds[0]["approved_cents"], 2000);
    assert_eq!(ds[0]["barcode"], "********0001");
    assert_eq!(ds[0]["terminal"], "cli-stand");
    assert_eq!(ds[6]["items"][0], "Pizza and a Coke");
    assert_eq!(ds[11]["approved_cents"], 1500);
    for d in &ds {
        let approve = d["reason"] == "approved";
        assert_eq!(
            d["decision"],
            if approve { "approve" } else { "deny" },
            "{d}"
        );
        assert!(d["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cli-stand-")));
    }
    // Status lines frame the run: ready first, stopping last.
    assert_eq!(lines.first().unwrap()["status"], "ready");
    assert_eq!(lines.last().unwrap()["status"], "stopping");
    // Nothing on stdout is anything but a JSON line of a known type.
    assert!(lines
        .iter()
        .all(|l| l["type"] == "decision" || l["type"] == "status"));

    // The journal holds exactly those decisions, in order.
    let exported = json_lines(stand.journal(&[]).as_bytes());
    let ids: Vec<&str> = exported.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let decided: Vec<&str> = ds.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, decided);
}

#[test]
fn lookup_prints_the_would_be_decision_and_redeems_nothing() {
    let sandbox = support::sandbox();
    let stand = Stand::on(&sandbox);
    for _ in 0..2 {
        let out: Value = serde_json::from_str(&stand.ok(&["lookup", "100000000001"])).unwrap();
        assert_eq!(out["decision"], "approve");
        assert_eq!(out["reason"], "approved");
        assert_eq!(out["approved_cents"], 2000);
        assert_eq!(out["barcode"], "********0001");
        assert_eq!(out["offline"], false);
        assert_eq!(out["ticket"]["barcode"], "100000000001");
    }
    let out: Value =
        serde_json::from_str(&stand.ok(&["lookup", "100000000008", "--amount-cents", "7000"]))
            .unwrap();
    assert_eq!(
        (out["reason"].as_str(), out["approved_cents"].as_u64()),
        (Some("partial"), Some(5000))
    );
    let out: Value = serde_json::from_str(&stand.ok(&["lookup", "hello"])).unwrap();
    assert_eq!(out["reason"], "unreadable");

    // Nothing journaled, nothing in the ledger: a real scan still gets everything.
    assert_eq!(stand.journal(&[]), "");
    let stats: Value = serde_json::from_str(&stand.ok(&["cache", "stats"])).unwrap();
    assert_eq!(stats["journal_entries"], 0);
    assert_eq!(stats["entries"], 2, "lookups refresh the cache: {stats}");
    let lines = stand.scan(b"100000000001\n100000000008\n");
    let ds = decisions(&lines);
    assert_eq!(ds[0]["approved_cents"], 2000);
    assert_eq!(ds[1]["approved_cents"], 5000);
}

#[test]
fn journal_export_writes_jsonl_and_csv_and_pages_with_since() {
    let sandbox = support::sandbox();
    let stand = Stand::on(&sandbox);
    let ds_lines = stand.scan(b"100000000001\nhello\n100000000002\n");
    let ds = decisions(&ds_lines);
    assert_eq!(ds.len(), 3);
    let ids: Vec<String> = ds
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();

    let all = json_lines(stand.journal(&["--format", "jsonl"]).as_bytes());
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["barcode"], "100000000001");
    assert_eq!(all[0]["approved_cents"], 2000);
    assert_eq!(all[1]["reason"], "unreadable");

    let since = json_lines(stand.journal(&["--since", &ids[0]]).as_bytes());
    let since_ids: Vec<&str> = since.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(since_ids, [ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(stand.journal(&["--since", &ids[2]]), "");

    let csv = stand.journal(&["--format", "csv"]);
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[0].starts_with("id,seq,kind,scan_time_ms,"));
    for (row, id) in rows[1..].iter().zip(&ids) {
        assert!(row.starts_with(&format!("{id},")), "{row}");
    }
    let csv_since = stand.journal(&["--format", "csv", "--since", &ids[1]]);
    assert_eq!(csv_since.split("\r\n").filter(|r| !r.is_empty()).count(), 2);

    // More scans later: the next page holds exactly those.
    let more = stand.scan(b"100000000003\n");
    let new_id = decisions(&more)[0]["id"].as_str().unwrap().to_string();
    let page = json_lines(stand.journal(&["--since", &ids[2]]).as_bytes());
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], new_id.as_str());
}

#[test]
fn cache_prefetch_stats_and_clear() {
    let sandbox = support::sandbox();
    let stand = Stand::on(&sandbox);
    let out = stand.ok(&["cache", "prefetch", "--event", "EVENT01"]);
    assert_eq!(out.trim(), "EVENT01: 5 tickets cached");
    let stats: Value = serde_json::from_str(&stand.ok(&["cache", "stats"])).unwrap();
    assert_eq!(stats["entries"], 5);
    assert!(stats["oldest_fetched"].is_string() && stats["newest_fetched"].is_string());
    assert_eq!(stats["journal_entries"], 0);

    // Scans of prefetched tickets make no call.
    let before = sandbox.stats();
    let ds_lines = stand.scan(b"100000000001\n100000000003\n");
    let ds = decisions(&ds_lines);
    assert!(ds.iter().all(|d| d["source"] == "cache"), "{ds:?}");
    let after = sandbox.stats();
    assert_eq!(
        after.calls("verify_barcode"),
        before.calls("verify_barcode")
    );
    assert_eq!(
        after.calls("get_av_barcodes"),
        before.calls("get_av_barcodes")
    );

    assert_eq!(stand.ok(&["cache", "clear"]).trim(), "cache cleared");
    let stats: Value = serde_json::from_str(&stand.ok(&["cache", "stats"])).unwrap();
    assert_eq!(stats["entries"], 0);
    assert!(stats["oldest_fetched"].is_null());
    // The journal stays.
    assert_eq!(stats["journal_entries"], 2);
}

#[test]
fn cache_prefetch_without_an_event_loads_every_event_the_stand_serves() {
    let sandbox = support::sandbox();
    let stand = Stand::serving(&sandbox.base_url(), r#"["EVENT01", "EVENT02"]"#);
    let out = stand.ok(&["cache", "prefetch"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["EVENT01: 5 tickets cached", "EVENT02: 1 tickets cached"],
        "{out}"
    );
    let stats: Value = serde_json::from_str(&stand.ok(&["cache", "stats"])).unwrap();
    assert_eq!(stats["entries"], 6);
    // --event still picks one.
    let out = stand.ok(&["cache", "prefetch", "--event", "EVENT02"]);
    assert_eq!(out.trim(), "EVENT02: 1 tickets cached");
}

#[test]
fn ping_and_call_reach_the_sandbox_named_by_the_environment() {
    let sandbox = support::sandbox();
    // The file names a closed port; CONCESSION_ATS_URL wins.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let stand = Stand::new(&dead);
    let with_env = |args: &[&str]| -> Output {
        let child = stand
            .cmd(args)
            .env("CONCESSION_ATS_URL", sandbox.base_url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child, Duration::from_secs(30))
    };
    let ok_json = |args: &[&str]| -> Value {
        let out = with_env(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let ping = ok_json(&["ping"]);
    assert_eq!(ping["result"], 0, "{ping}");
    let call = ok_json(&["call", "ping"]);
    assert_eq!(call["command1"]["result"], 0, "{call}");
    let verify = ok_json(&["call", "verify_barcode", "barcode=100000000001"]);
    let c1 = &verify["command1"];
    assert_eq!(c1["result"], 0, "{verify}");
    assert_eq!(c1["event_name"], "EVENT01", "{verify}");
    // An API error is reported with its code, and the command fails.
    let unknown = with_env(&["call", "verify_barcode", "barcode=999999999999"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("5301") && err.contains("Barcode not found"),
        "{err}"
    );
    assert_eq!(sandbox.stats().calls("ping"), 2);
    assert_eq!(sandbox.stats().calls("verify_barcode"), 2);

    // Without the override the file's dead address is used: a failure, exit code 1.
    let out = stand.run(&["ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ping"));
    // A malformed field is refused before any call.
    let out = with_env(&["call", "ping", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key=value"));
}

#[test]
fn sigterm_while_running_ends_cleanly_with_the_journal_intact() {
    let sandbox = support::sandbox();
    let stand = Stand::on(&sandbox);
    let mut child = stand
        .cmd(&["run", "--pos", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded::<Value>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    stdin.write_all(b"100000000001\n").unwrap();
    stdin.flush().unwrap();
    let first = loop {
        let v = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a decision line in time");
        if v["type"] == "decision" {
            break v;
        }
    };
    assert_eq!(first["approved_cents"], 2000);

    // SIGTERM with stdin still open: the agent stops on the signal, not on EOF.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = wait_for(Duration::from_secs(15), || child.try_wait().unwrap());
    let Some(exited) = exited else {
        let _ = child.kill();
        panic!("no exit within 15 s of SIGTERM");
    };
    assert_eq!(exited.code(), Some(0), "{exited:?}");
    drop(stdin);
    reader.join().unwrap();
    let rest: Vec<Value> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l["status"] == "stopping"),
        "a stopping status line: {rest:?}"
    );
    assert!(rest.iter().all(|l| l["type"] != "decision"));

    let journal = json_lines(stand.journal(&[]).as_bytes());
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["id"], first["id"]);
    assert_eq!(journal[0]["approved_cents"], 2000);
    // The ledger survived too: the same ticket is spent on the next run.
    let again = stand.scan(b"100000000001\n");
    assert_eq!(decisions(&again)[0]["reason"], "already_redeemed");
}
