//! The PostgreSQL harness the venue tests stand on (tests/support/pg.rs): a throwaway
//! cluster answers, refuses when stopped, comes back on the same port with its data,
//! hangs (accepts, never answers) and resumes, recovers from a killed backend, and
//! streams to a standby that can be promoted.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::pg::{self, Cluster, ClusterOptions};

#[test]
fn a_throwaway_cluster_answers_on_loopback_and_keeps_data_across_a_restart() {
    let Some(_) = pg::available("venue_harness") else {
        return;
    };
    let c = Cluster::new(ClusterOptions::default());
    let url = c.fresh_db();
    assert!(url.starts_with("postgres://concession@127.0.0.1:"), "{url}");
    c.psql(&url, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
    assert_eq!(c.psql(&url, "SELECT x FROM t"), "42");

    c.stop();
    let refused = TcpStream::connect(("127.0.0.1", c.port()));
    assert!(
        refused.is_err(),
        "a stopped cluster must refuse connections"
    );
    assert!(c.try_psql(&url, "SELECT 1").is_err());

    c.start();
    assert_eq!(c.psql(&url, "SELECT x FROM t"), "42");
    c.restart();
    assert_eq!(c.psql(&url, "SELECT x FROM t"), "42");
}

#[test]
fn a_hung_cluster_accepts_connections_and_never_answers_until_resumed() {
    let Some(_) = pg::available("venue_harness") else {
        return;
    };
    let c = Cluster::new(ClusterOptions::default());
    let url = c.fresh_db();
    let hang = c.hang();
    // The kernel completes the handshake; the postmaster never sends a byte.
    let mut s = TcpStream::connect(("127.0.0.1", c.port())).expect("accepted while hung");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 1];
    let r = s.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "a hung server answered: {r:?}"
    );
    assert!(t0.elapsed() >= Duration::from_millis(250));
    hang.resume();
    assert!(c.wait_ready(Duration::from_secs(10)));
    assert_eq!(c.psql(&url, "SELECT 1"), "1");
}

#[test]
fn a_killed_backend_makes_the_cluster_recover_and_answer_again() {
    let Some(_) = pg::available("venue_harness") else {
        return;
    };
    let c = Cluster::new(ClusterOptions::default());
    let url = c.fresh_db();
    c.psql(&url, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    let pid = c.pid();
    c.crash_backends();
    assert_eq!(c.pid(), pid, "the postmaster stays; its sessions do not");
    assert_eq!(c.psql(&url, "SELECT x FROM t"), "7");
}

#[test]
fn a_standby_streams_from_the_primary_and_takes_writes_once_promoted() {
    let Some(_) = pg::available("venue_harness") else {
        return;
    };
    let primary = Cluster::new(ClusterOptions::default());
    primary.create_db("venue");
    primary.psql("venue", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let standby = primary.standby();
    primary.psql("venue", "INSERT INTO t VALUES (2)");
    standby.wait_caught_up(&primary);
    assert_eq!(standby.psql("venue", "SELECT sum(x) FROM t"), "3");
    assert!(standby
        .try_psql("venue", "INSERT INTO t VALUES (3)")
        .is_err());

    primary.stop();
    standby.promote();
    standby.psql("venue", "INSERT INTO t VALUES (3)");
    assert_eq!(standby.psql("venue", "SELECT sum(x) FROM t"), "6");
    let url = pg::multi_host_url(&[&primary, &standby], "venue");
    assert!(url.contains("target_session_attrs=read-write"), "{url}");
}

#[test]
fn the_shared_cluster_gives_each_test_its_own_database() {
    let Some(c) = pg::shared("venue_harness") else {
        return;
    };
    let a = c.fresh_db();
    let b = c.fresh_db();
    assert_ne!(a, b);
    c.psql(&a, "CREATE TABLE only_in_a (x int)");
    assert!(c.try_psql(&b, "SELECT * FROM only_in_a").is_err());
}

/// psql through `port` with each statement sent as its own query, in the background.
fn psql_statements(port: u16, db: &str, statements: &[&str]) -> std::process::Child {
    let bin = pg::bin_dir().unwrap();
    let mut c = std::process::Command::new(bin.join("psql"));
    c.args(["-X", "-q", "-h", "127.0.0.1", "-U", pg::USER, "-p"])
        .arg(port.to_string())
        .args(["-d", db]);
    for s in statements {
        c.args(["-c", s]);
    }
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn the_commit_trap_holds_a_commit_or_lets_it_commit_unseen() {
    let Some(c) = pg::shared("venue_harness") else {
        return;
    };
    let db_url = c.fresh_db();
    let db = db_url.rsplit('/').next().unwrap().to_string();
    c.psql(&db, "CREATE TABLE t (x int)");
    let trap = pg::CommitTrap::start(c.port());

    // Unarmed: passes through.
    let mut p = psql_statements(
        trap.port(),
        &db,
        &["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"],
    );
    assert!(p.wait().unwrap().success());
    assert_eq!(c.psql(&db, "SELECT sum(x) FROM t"), "1");

    // Held: the client hangs at COMMIT; killed there, nothing was committed.
    trap.arm(pg::TrapMode::HoldCommit);
    let mut p = psql_statements(
        trap.port(),
        &db,
        &["BEGIN", "INSERT INTO t VALUES (10)", "COMMIT"],
    );
    assert!(trap.wait_sprung(Duration::from_secs(10)));
    assert!(
        p.try_wait().unwrap().is_none(),
        "the client waits for its commit"
    );
    p.kill().unwrap();
    p.wait().unwrap();
    assert!(support::wait_for(Duration::from_secs(10), || {
        (c.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%'",
        ) == "0")
            .then_some(())
    })
    .is_some());
    assert_eq!(c.psql(&db, "SELECT sum(x) FROM t"), "1");

    // Swallowed: the commit lands; the client never hears it.
    trap.arm(pg::TrapMode::SwallowReply);
    let mut p = psql_statements(
        trap.port(),
        &db,
        &["BEGIN", "INSERT INTO t VALUES (100)", "COMMIT"],
    );
    assert!(trap.wait_sprung(Duration::from_secs(10)));
    assert!(support::wait_for(Duration::from_secs(10), || {
        (c.psql(&db, "SELECT sum(x) FROM t") == "101").then_some(())
    })
    .is_some());
    assert!(
        p.try_wait().unwrap().is_none(),
        "the client never heard of its commit"
    );
    p.kill().unwrap();
    p.wait().unwrap();
}

#[test]
fn a_link_passes_refuses_and_blackholes_one_clients_traffic() {
    let Some(c) = pg::shared("venue_harness") else {
        return;
    };
    let url = c.fresh_db();
    let db = url.rsplit('/').next().unwrap().to_string();
    let link = pg::Link::start(c.port());
    let via = |timeout: u64| {
        let bin = pg::bin_dir().unwrap();
        let mut psql = std::process::Command::new(bin.join("psql"));
        psql.args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", pg::USER, "-p"])
            .arg(link.port().to_string())
            .args(["-d", &db, "-c", "SELECT 41 + 1"])
            .env("PGCONNECT_TIMEOUT", timeout.to_string())
            .stdin(std::process::Stdio::null());
        support::output_within(psql, support::COMMAND_WAIT, "psql through the link").unwrap()
    };
    let out = via(5);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    link.set(pg::LinkMode::Refuse);
    let t0 = Instant::now();
    assert!(!via(5).status.success());
    assert!(t0.elapsed() < Duration::from_secs(2), "a refusal is quick");

    link.set(pg::LinkMode::Blackhole);
    let t0 = Instant::now();
    assert!(
        !via(1).status.success(),
        "nothing answers through a blackhole"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );

    link.set(pg::LinkMode::Pass);
    assert_eq!(String::from_utf8_lossy(&via(5).stdout).trim(), "42");
}
