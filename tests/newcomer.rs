//! Issue 16: what a newcomer and an operator trip on, through the real binary.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

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

/// The binary in `cwd` (where no config/agent.toml is: the built-in demo config),
/// with `TMPDIR` at `tmp`, `input` on stdin.
fn demo(cwd: &Path, tmp: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = support::agent_command("warn")
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .env_remove("CONCESSION_MACHINE_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    finish(child, Duration::from_secs(30))
}

fn decisions(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "decision")
        .collect()
}

/// Issue 16.1: the README's run command kept its store in `var/` of the checkout, so
/// `100000000001` was `already_redeemed` on every run after the first while the hint
/// still offered it as "$20". The demo's store is now fresh per run, outside the
/// checkout, and removed at exit.
#[test]
fn the_demo_approves_its_first_ticket_on_every_run_and_leaves_no_state_behind() {
    let checkout = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for run in 0..2 {
        let out = demo(
            checkout.path(),
            tmp.path(),
            &["--pos", "jsonl"],
            b"100000000001\n100000000001\n",
        );
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let d = decisions(&out);
        assert_eq!(d.len(), 2, "run {run}: {d:?}");
        assert_eq!(d[0]["decision"], "approve", "run {run}: {d:?}");
        assert_eq!(d[0]["approved_cents"], 2000, "run {run}: {d:?}");
        assert_eq!(d[1]["reason"], "already_redeemed", "run {run}: {d:?}");
    }
    let left: Vec<_> = std::fs::read_dir(checkout.path()).unwrap().collect();
    assert!(left.is_empty(), "state left in the checkout: {left:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "demo store not removed: {left:?}");

    // The demo's journal is gone with it: `journal export` says so and how to keep one.
    let out = demo(checkout.path(), tmp.path(), &["journal", "export"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONCESSION_STORE_DIR"), "{err}");
}

/// A config file in a temp dir pointing at `url` with `apikey`; the store inside.
fn stand(url: &str, apikey: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let text = format!(
        "terminal_id = \"t\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
         [ats]\nurl = {url:?}\napikey = {apikey:?}\nconnect_timeout_ms = 500\n\
         [cache]\nprefetch_at_start = false\n",
        store = dir.path().join("store").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn run_with(config: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = support::agent_command("info")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    finish(child, Duration::from_secs(30))
}

fn statuses(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "status")
        .map(|v| v["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Issue 16.2: with a wrong API key the agent printed `ready`, stayed ready and denied
/// every scan `offline_unknown`. It now pings at start and stops, saying what to fix,
/// in the status, on the console and in the exit code (77, which the unit does not
/// restart on).
#[test]
fn a_wrong_api_key_stops_the_agent_at_start_saying_unauthorized() {
    let sandbox = support::sandbox();
    let (_dir, config) = stand(&sandbox.base_url(), "wrong-key");
    let out = run_with(&config, &["--pos", "jsonl"], b"100000000001\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains("unauthorized: check ats.apikey / CONCESSION_ATS_APIKEY"),
        "{err}"
    );
    assert!(!err.contains("wrong-key"), "the key is never shown: {err}");
    assert!(!err.contains(" ready"), "{err}");
    assert_eq!(statuses(&out), ["unauthorized"]);
    assert!(decisions(&out).is_empty());
    for cmd in [&["ping"][..], &["lookup", "100000000001"][..]] {
        let out = run_with(&config, cmd, b"");
        assert_eq!(out.status.code(), Some(77), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("check ats.apikey"),
            "{cmd:?}"
        );
    }
}

/// Issue 16.2: with ATS down at start the agent said `ready` before it knew it was
/// offline. Its first status is now `offline`, and no `ready` is logged.
#[test]
fn with_ats_down_at_start_the_first_status_is_offline_not_ready() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_dir, config) = stand(&format!("http://127.0.0.1:{port}"), "sandbox-key");
    let out = run_with(&config, &["--pos", "jsonl"], b"100000000001\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let st = statuses(&out);
    assert_eq!(st.first().map(String::as_str), Some("offline"), "{st:?}");
    assert!(!st.iter().any(|s| s == "ready"), "{st:?}");
    assert!(!err.contains("] ready"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "names the URL: {err}"
    );
    let d = decisions(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["decision"], "deny");
}

/// Issue 16.4: store errors named no path (`File exists (os error 17)`). The path is
/// now in the error type, whichever file or directory failed.
#[test]
fn store_errors_name_the_path_that_failed() {
    use concession_agent::store::{Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for dir in [file.clone(), file.join("store")] {
        let err = Store::open(&dir, StoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }
}

/// Issue 16.4: connection refused named no URL, and a certificate no trusted CA signed
/// (`UnknownIssuer`) did not point at `ats.ca_file`.
#[test]
fn ats_connect_and_certificate_errors_say_what_to_check() {
    use concession_agent::ats::{AtsClient, AtsConfig};
    use concession_agent::redact::Secret;
    use concession_agent::sandbox::{generate_self_signed, SandboxConfig};
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = |url: String, ca: Option<std::path::PathBuf>| AtsConfig {
        base_url: url,
        apikey: Secret::new("sandbox-key"),
        ca_file: ca,
        connect_timeout: Duration::from_secs(2),
        ..AtsConfig::default()
    };
    let c = AtsClient::new(cfg(format!("http://127.0.0.1:{port}"), None)).unwrap();
    let e = c.ping().unwrap_err().to_string();
    assert!(e.contains(&format!("http://127.0.0.1:{port}")), "{e}");
    assert!(e.contains("ats.url"), "{e}");

    let served = generate_self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let sandbox = support::sandbox_with(SandboxConfig {
        tls: Some(served.tls_pem()),
        ..SandboxConfig::default()
    });
    let other = generate_self_signed(&["localhost"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("other-ca.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let c = AtsClient::new(cfg(sandbox.base_url(), Some(ca))).unwrap();
    let e = c.ping().unwrap_err().to_string();
    assert!(e.contains("ats.ca_file"), "{e}");
    assert!(e.contains(&sandbox.base_url()), "{e}");
}

/// Issue 16.4: the sandbox's `bind: Address already in use` named no address, and a
/// serial scanner that cannot be opened named no device.
#[test]
fn bind_and_device_errors_name_the_address_and_the_device() {
    use concession_agent::sandbox::{Sandbox, SandboxConfig};
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Sandbox::start(SandboxConfig {
        listen: addr,
        ..SandboxConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(&addr.to_string()), "{err}");

    let dev = Path::new("/dev/ttyNOPE-concession-test");
    let err = concession_agent::scan::source::open_serial(dev, 9600)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&dev.display().to_string()), "{err}");
}
