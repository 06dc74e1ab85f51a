//! The real binary, phone tickets on: neither the Presence key nor a SafeTix payload's
//! token reaches stdout or stderr, at `RUST_LOG=debug` or `trace` (the key travels in
//! the URL's query, which ureq prints whole at trace level unless told not to).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use concession_agent::sandbox::PRESENCE_APIKEY;

/// A Presence key nobody would print by accident (the sandbox refuses it: 401).
const WRONG_KEY: &str = "pk-distinctive-presence-key-42";

fn run(config: &Path, rust_log: &str, scans: &[String]) -> Output {
    let mut child = support::agent_command(rust_log)
        .env_remove("CONCESSION_PRESENCE_APIKEY")
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
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn the_presence_key_and_safetix_tokens_never_reach_the_output_even_at_trace() {
    let sb = support::sandbox();
    let tmp = tempfile::tempdir().unwrap();
    let phone = sb.safetix_payload("100000000001").unwrap();
    let void = sb.safetix_payload("100000000005").unwrap();
    let scans = vec![
        "100000000001".to_string(),
        phone.clone(),
        void.clone(),
        "STXUNKNOWNTOKEN0123456789::123456::654321::1700000000".to_string(),
    ];
    let tokens: Vec<&str> = scans[1..]
        .iter()
        .map(|s| s.split("::").next().unwrap())
        .collect();
    for (key, rust_log) in [
        (WRONG_KEY, "debug"),
        (WRONG_KEY, "trace"),
        (PRESENCE_APIKEY, "trace"),
    ] {
        let config = tmp.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "terminal_id = \"sec-stand\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
                 [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\n\
                 [cache]\nprefetch_at_start = false\n\
                 [presence]\napikey = {key:?}\nvenue_id = \"SANDBOX-PARK\"\n",
                store = tmp.path().join(rust_log).join(key).display().to_string(),
                url = sb.base_url(),
            ),
        )
        .unwrap();
        let o = run(&config, rust_log, &scans);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(out.matches("\"type\":\"decision\"").count(), 4, "{out}");
        for text in [&out, &err] {
            assert!(
                !text.contains(key),
                "{rust_log}: the Presence key is in the output"
            );
            for t in &tokens {
                assert!(
                    !text.contains(t),
                    "{rust_log}: a SafeTix token is in the output"
                );
            }
        }
        if key == PRESENCE_APIKEY {
            // With the right key the phone ticket resolved (the barcode was verified
            // first): approved $20 on the first scan, so the phone gets nothing more.
            assert!(out.contains("\"reason\":\"already_redeemed\""), "{out}");
            assert!(out.contains("\"reason\":\"safetix_invalid\""), "{out}");
            assert!(out.contains("\"reason\":\"safetix_not_found\""), "{out}");
        } else {
            assert!(err.contains("presence unauthorized"), "{err}");
        }
    }
}
