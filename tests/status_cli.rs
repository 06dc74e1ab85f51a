//! `concession-agent status` (issue 14, item 1) and the commands that read the store,
//! against the real binary: while the agent runs (it answers from what the agent
//! publishes) and when it does not (it reads the store).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{wait_for, RunningAgent};

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

#[test]
fn status_and_journal_export_work_while_the_agent_runs_and_after_it_stops() {
    let sandbox = support::sandbox();
    let mut agent = RunningAgent::start(&sandbox.base_url(), "");
    agent.scan("100000000001");
    agent.scan("999999999999");
    agent.wait_decisions(2);

    // The agent publishes within about a second of a decision.
    let status = wait_for(Duration::from_secs(10), || {
        let s = json(&agent.command(&["status", "--format", "json"]));
        (s["today"]["decisions"] == 2).then_some(s)
    })
    .expect("status shows both decisions");
    assert_eq!(status["source"], "agent");
    assert_eq!(status["pid"], agent.child.id());
    assert_eq!(status["terminal"], "status-stand");
    assert_eq!(status["mode"], "online");
    assert!(status["mode_since"].is_string(), "{status}");
    assert_eq!(status["today"]["approvals"], 1);
    assert_eq!(status["today"]["approved_cents"], 2000);
    assert_eq!(status["last_decision"]["id"], "status-stand-000000000002");
    assert_eq!(status["last_decision"]["reason"], "unknown_ticket");
    assert_eq!(status["last_decision"]["barcode"], "********9999");
    assert_eq!(status["offline"]["used_cents"], 0);
    assert_eq!(status["offline"]["cap_cents"], 50_000);
    assert!(
        status["ats_budget"]["minute"].as_u64().unwrap() < 80,
        "{status}"
    );
    assert!(status["ats_calls"]["ok"].as_u64().unwrap() >= 2, "{status}");
    assert!(status["disk"]["free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["clock"]["state"], "ok");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["journal_entries"], 2);
    let text = String::from_utf8(agent.command(&["status"]).stdout).unwrap();
    assert!(text.contains("mode            online since"), "{text}");
    assert!(text.contains("2 decisions, 1 approved"), "{text}");
    // Full barcodes never leave the store through the status.
    for out in [&text, &status.to_string()] {
        assert!(
            !out.contains("100000000001") && !out.contains("999999999999"),
            "{out}"
        );
    }

    // `journal export` works while the agent runs: the agent reads its own store.
    let export = agent.command(&["journal", "export"]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let live_rows = String::from_utf8(export.stdout).unwrap();
    let ids: Vec<String> = live_rows
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        ["status-stand-000000000001", "status-stand-000000000002"]
    );
    let since = agent.command(&[
        "journal",
        "export",
        "--since",
        "status-stand-000000000001",
        "--format",
        "csv",
        "--mask-barcodes",
    ]);
    assert!(since.status.success());
    let csv = String::from_utf8(since.stdout).unwrap();
    assert_eq!(csv.lines().count(), 2, "header and one row: {csv}");
    assert!(
        csv.contains("status-stand-000000000002") && !csv.contains("999999999999"),
        "{csv}"
    );
    // A bad --since is the same error as without an agent, exit 1, no rows.
    let bad = agent.command(&["journal", "export", "--since", "other-stand-000000000001"]);
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("status-stand-000000000002"));

    // The commands that need the store say at once who holds it and what to do.
    let pid = agent.child.id().to_string();
    for (args, hint) in [
        (
            &["lookup", "100000000001"][..],
            "only the agent can read now",
        ),
        (&["cache", "clear"][..], "Stop the agent first"),
        (&["cache", "prefetch"][..], "prefetches by itself"),
        (&["store", "adopt"][..], "Stop the agent first"),
    ] {
        let started = Instant::now();
        let out = agent.command(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(
            err.contains(&format!("held by the running agent (pid {pid})")),
            "{err}"
        );
        assert!(err.contains(hint), "{err}");
        assert!(!err.contains("WouldBlock"), "{err}");
    }
    // `cache stats` answers with the agent's own count, made now.
    let stats = wait_for(Duration::from_secs(10), || {
        let out = agent.command(&["cache", "stats"]);
        out.status.success().then(|| json(&out))
    })
    .expect("cache stats from the agent");
    assert_eq!(stats["journal_entries"], 2);
    assert!(stats["entries"].is_u64(), "{stats}");

    assert!(agent.stop().success());
    let after = json(&agent.command(&["status", "--format", "json"]));
    assert_eq!(after["source"], "store");
    assert_eq!(after["mode"], "stopped");
    assert_eq!(after["today"]["decisions"], 2);
    assert_eq!(after["today"]["approved_cents"], 2000);
    assert_eq!(after["last_decision"]["id"], "status-stand-000000000002");
    assert!(after["ats_budget"].is_null());
    let text = String::from_utf8(agent.command(&["status"]).stdout).unwrap();
    assert!(
        text.contains("stopped (no agent holds the store)"),
        "{text}"
    );
    // A store this machine refuses to open (recorded by another machine) is read
    // through a copy, as `journal export` reads it.
    let other = agent.command_env(
        &["status", "--format", "json"],
        &[("CONCESSION_MACHINE_ID", "another-board")],
    );
    assert_eq!(json(&other)["today"]["decisions"], 2);
    // And the store is free again for the commands that need it.
    let export = agent.command(&["journal", "export"]);
    assert!(export.status.success());
    assert_eq!(String::from_utf8(export.stdout).unwrap(), live_rows);
    assert!(!agent.store_dir().join("control.sock").exists());

    // Held by a process that is not the agent that last published (here: this test,
    // as a `cache prefetch` would): no stale snapshot is passed off as the live one.
    let store = concession_agent::store::Store::open(
        &agent.store_dir(),
        concession_agent::store::StoreOptions {
            terminal_id: "status-stand".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let out = agent.command(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("publishes no status"), "{err}");
    let out = agent.command(&["journal", "export"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("held by another process"), "{err}");
    drop(store);
}

#[test]
fn status_without_a_store_says_no_agent_has_run_there() {
    let sandbox = support::sandbox();
    let mut agent = RunningAgent::start(&sandbox.base_url(), "");
    assert!(agent.stop().success());
    std::fs::remove_dir_all(agent.store_dir()).unwrap();
    let out = agent.command(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no store at"), "{err}");
    assert!(!agent.store_dir().exists(), "status created a store");
}
