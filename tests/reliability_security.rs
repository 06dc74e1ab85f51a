//! Security promises, checked through the real binary.
//!
//! - The API key never appears in logs, errors or output, with a wrong key (401s) or the
//!   right one, at `RUST_LOG=debug`.
//! - Full barcodes never appear in the logs (stderr) at `RUST_LOG=debug`.
//! - Plain `http://` to a non-loopback host is refused before any connection.
//! - A group- or world-readable `apikey_file` is refused with a clear message; a 0600
//!   one works.
//! - The store directory is 0700, also when it existed with looser permissions.
//!
//! The sandbox admin API's loopback-only rule is covered by the sandbox's unit tests
//! (`sandbox::admin::tests::admin_peer_is_loopback_only`, `non_loopback_peer_gets_403`).

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use concession_agent::sandbox::SandboxConfig;

const RIGHT_KEY: &str = "RIGHT-KEY-7f3c9a1e5d2b";
const WRONG_KEY: &str = "WRONG-KEY-b8e2d4c6a0f1";
/// Known, unknown, other-event, void and item tickets: every log path a scan can take.
const BARCODES: [&str; 7] = [
    "100000000008",
    "100000000001",
    "100000000003",
    "100000000005",
    "100000000006",
    "999999999999",
    "100000000001",
];

fn agent() -> Command {
    support::agent_command("debug")
}

/// A config file; `ats` is the body of the `[ats]` table.
fn write_config(dir: &Path, store: &Path, ats: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "terminal_id = \"sec-stand\"\n\
             store_dir = {store:?}\n\
             events = [\"EVENT01\"]\n\
             [ats]\n{ats}\n\
             [cache]\n\
             prefetch_at_start = true\n",
            store = store.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Runs the agent with `stdin` as the scanner until stdin ends.
fn run_with_scans(mut cmd: Command, config: &Path, scans: &[&str]) -> Output {
    let mut child = cmd
        .arg("--config")
        .arg(config)
        .args(["run", "--pos", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for s in scans {
        writeln!(stdin, "{s}").unwrap();
    }
    drop(stdin); // end of input: the agent decides what it read and stops
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_no_key(what: &str, o: &Output) {
    let (out, err) = text(o);
    for key in [RIGHT_KEY, WRONG_KEY] {
        assert!(!out.contains(key), "{what}: api key on stdout:\n{out}");
        assert!(!err.contains(key), "{what}: api key on stderr:\n{err}");
    }
}

fn assert_barcodes_masked(what: &str, o: &Output) {
    let (_, err) = text(o);
    for b in BARCODES {
        assert!(
            !err.contains(b),
            "{what}: full barcode {b} in the log:\n{err}"
        );
    }
}

#[test]
fn the_api_key_and_full_barcodes_never_reach_the_output_at_debug_level() {
    let sb = support::sandbox_with(SandboxConfig {
        apikey: RIGHT_KEY.into(),
        ..SandboxConfig::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &tmp.path().join("store"),
        &format!("url = {:?}", sb.base_url()),
    );

    // A wrong key: every call is a 401, with the server's text in the errors.
    let mut runs = Vec::new();
    for key in [WRONG_KEY, RIGHT_KEY] {
        let mut cmd = agent();
        cmd.env("CONCESSION_ATS_APIKEY", key);
        runs.push((key, run_with_scans(cmd, &config, &BARCODES)));
        for args in [
            vec!["ping"],
            vec!["call", "verify_barcode", "barcode=100000000001"],
            vec!["lookup", "100000000008"],
            vec!["cache", "prefetch"],
        ] {
            let o = agent()
                .env("CONCESSION_ATS_APIKEY", key)
                .arg("--config")
                .arg(&config)
                .args(&args)
                .output()
                .unwrap();
            runs.push((key, o));
        }
    }
    for (key, o) in &runs {
        let what = if *key == WRONG_KEY {
            "wrong key"
        } else {
            "right key"
        };
        assert_no_key(what, o);
        assert_barcodes_masked(what, o);
    }
    // The runs did what they claim: 401s with the wrong key, approvals with the right.
    let (_, err) = text(&runs[0].1);
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "the wrong key was not refused:\n{err}"
    );
    let (out, _) = text(&runs[5].1);
    assert!(
        out.contains("\"decision\":\"approve\""),
        "the right key approved nothing:\n{out}"
    );
    assert!(
        out.contains("********0001"),
        "POS lines carry masked barcodes:\n{out}"
    );
}

/// Regression: at `RUST_LOG=trace` ureq hex-dumped the raw request (the `apikey` header
/// and the barcodes in the body, split over 16-byte rows, so a plain search missed it).
#[test]
fn trace_logging_never_dumps_the_wire() {
    let sb = support::sandbox_with(SandboxConfig {
        apikey: RIGHT_KEY.into(),
        ..SandboxConfig::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &tmp.path().join("store"),
        &format!("url = {:?}", sb.base_url()),
    );
    for key in [WRONG_KEY, RIGHT_KEY] {
        let mut cmd = agent();
        cmd.env("CONCESSION_ATS_APIKEY", key)
            .env("RUST_LOG", "trace");
        let o = run_with_scans(cmd, &config, &BARCODES);
        assert_no_key("trace", &o);
        assert_barcodes_masked("trace", &o);
        let (_, err) = text(&o);
        assert!(err.contains("TRACE"), "trace logging is on");
        assert!(
            !err.contains("ureq_proto::util"),
            "the wire dump is in the log"
        );
        // The hex rows of "apikey: " as ureq_proto printed them.
        assert!(!err.contains("6170 696b 6579"), "hex of the apikey header");
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &tmp.path().join("store"),
        "url = \"https://ats.example\"\napikey = \"k\"",
    );
    let started = Instant::now();
    // 192.0.2.0/24 is TEST-NET-1: a connection attempt would hang until its timeout.
    let o = agent()
        .env("CONCESSION_ATS_URL", "http://192.0.2.10:8080")
        .arg("--config")
        .arg(&config)
        .arg("ping")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("loopback") && err.contains("https"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it tried to connect"
    );
}

#[test]
fn a_readable_key_file_is_refused_and_a_private_one_works() {
    let sb = support::sandbox_with(SandboxConfig {
        apikey: RIGHT_KEY.into(),
        ..SandboxConfig::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("apikey");
    std::fs::write(&key, format!("{RIGHT_KEY}\n")).unwrap();
    let config = write_config(
        tmp.path(),
        &tmp.path().join("store"),
        &format!(
            "url = {:?}\napikey_file = {:?}",
            sb.base_url(),
            key.display().to_string()
        ),
    );
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = agent()
            .arg("--config")
            .arg(&config)
            .arg("ping")
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(!o.status.success(), "mode {mode:o} was accepted");
        assert!(
            err.contains("api key file") && err.contains("chmod 600"),
            "mode {mode:o}: unclear message:\n{err}"
        );
        assert!(!err.contains(RIGHT_KEY) && !out.contains(RIGHT_KEY));
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = agent()
        .arg("--config")
        .arg(&config)
        .arg("ping")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "0600 key file refused:\n{err}");
    assert!(out.contains("system_available") || !out.is_empty());
    assert!(!err.contains(RIGHT_KEY) && !out.contains(RIGHT_KEY));
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_store_directory_is_private_whether_new_or_preexisting() {
    let tmp = tempfile::tempdir().unwrap();
    // New, nested.
    let store = tmp.path().join("var").join("store");
    let config = write_config(tmp.path(), &store, "url = \"sandbox\"");
    let o = agent()
        .arg("--config")
        .arg(&config)
        .args(["cache", "stats"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(mode_of(&store), 0o700, "new store dir");

    // Made beforehand by someone else's umask (an installer, a mkdir -p).
    let store = tmp.path().join("existing");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_config(tmp.path(), &store, "url = \"sandbox\"");
    let o = agent()
        .arg("--config")
        .arg(&config)
        .args(["cache", "stats"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(mode_of(&store), 0o700, "pre-existing store dir");
}
