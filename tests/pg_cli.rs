//! `concession-agent venue migrate|sync|export` through the real binary, against a real
//! PostgreSQL (tests/support/pg.rs).

#![cfg(feature = "venue")]

mod support;

use std::path::Path;
use std::process::Stdio;

use support::pg;

fn agent(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = support::agent_command("warn");
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null());
    let what = format!("concession-agent {}", args.join(" "));
    let out = support::output_within(cmd, support::COMMAND_WAIT, &what).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &Path, venue: &str) -> std::path::PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "terminal_id = \"cli\"\nstore_dir = {:?}\n[ats]\nurl = \"http://127.0.0.1:9\"\n\
             apikey = \"k\"\n{venue}",
            dir.join("store").display().to_string()
        ),
    )
    .unwrap();
    p
}

#[test]
fn venue_migrate_applies_once_and_then_says_the_schema_is_current() {
    let Some(cluster) = pg::shared("pg_cli") else {
        return;
    };
    let url = cluster.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("[venue]\nurl = {url:?}\n"));
    let (ok, out, err) = agent(&config, &["venue", "migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("applied 1"), "{out}");
    let (ok, out, err) = agent(&config, &["venue", "migrate"]);
    assert!(ok, "{err}");
    let latest = concession_agent::venue::schema::LATEST;
    assert!(
        out.contains(&format!("current (version {latest})")),
        "{out}"
    );
    // Nothing journaled: sync has nothing to do and says so with exit 0.
    let (ok, _, err) = agent(&config, &["venue", "sync"]);
    assert!(ok, "{err}");
    assert!(err.contains("none pending"), "{err}");
    let (ok, out, err) = agent(&config, &["venue", "export", "--format", "csv"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("id,seq,kind,"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("overdraft_cents,overdraft_items,uploaded"),
        "{out}"
    );
    let (ok, _, err) = agent(
        &config,
        &["venue", "export", "--since", "nope-000000000001"],
    );
    assert!(!ok);
    assert!(err.contains("no decision with that id"), "{err}");
}

#[test]
fn venue_sync_fails_with_the_reason_when_the_database_is_away() {
    let Some(_) = pg::available("pg_cli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = pg::free_port();
    let config = write_config(
        dir.path(),
        &format!("[venue]\nurl = \"postgres://t@127.0.0.1:{port}/v\"\nstart_timeout_ms = 2000\n"),
    );
    let (ok, _, err) = agent(&config, &["venue", "sync"]);
    assert!(!ok);
    assert!(err.contains("venue database"), "{err}");
}

#[test]
fn venue_commands_without_a_venue_table_say_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (ok, _, err) = agent(&config, &["venue", "migrate"]);
    assert!(!ok);
    assert!(
        err.contains("[venue]") && err.contains("CONCESSION_VENUE_URL"),
        "{err}"
    );
}
