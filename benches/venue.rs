//! Benchmark 11 (issue 12): venue mode against single-terminal mode, on PostgreSQL on
//! loopback, both in one run.
//!
//! Everything runs as a venue runs it: the real `concession-agent` binary (this bench's
//! build of it), one process per stand, reading barcodes on stdin and printing JSON
//! lines (`run --pos jsonl`); an ATS sandbox in this process; a throwaway PostgreSQL
//! cluster started by the bench with `fsync` and `synchronous_commit` **on** (what a
//! venue gets; the tests turn fsync off). Each stand's cache is filled first
//! (`cache prefetch`, `fresh_ms` one hour), so every scan is a cache hit: what is
//! measured is the decision path, local durable write and (in venue mode) the venue
//! transaction, not ATS.
//!
//! 1. Latency: one single-terminal stand and one venue stand, scans alternating between
//!    them (a busy neighbour slows both alike), each a fresh ticket, closed-loop: the
//!    time from writing the barcode on stdin to reading its decision line, as a POS sees
//!    it. Target: venue p99 <= 10 ms.
//! 2. Throughput: `STANDS` venue stands (default 16) scanning at once, each closed-loop
//!    on its own tickets, for `THROUGHPUT_SECS`; then the same with single-terminal
//!    stands, for reference. Target: >= 1,000 venue decisions/s.
//!
//! Every venue decision must say `"venue":"committed"`; the bench counts any that do not.
//!
//! Env: `SAMPLES` (per mode, default 1000), `STANDS` (16), `THROUGHPUT_SECS` (5),
//! `PER_STAND` (tickets per venue throughput stand, default 1500), `PER_SINGLE` (tickets
//! every single-terminal stand scans, default 4000), `PG_DURABLE=0` (diagnostic: the
//! server's fsync off), `SYNC_COMMIT` (the stands' `venue.synchronous_commit`; unset:
//! the build's default, `off`), `PG_SET` (extra server settings, `name=value,...`),
//! `AGENT_BIN` (run another build of `concession-agent`,
//! e.g. a copy of an earlier one, for before/after figures in the same conditions).
//!
//! `cargo bench --features venue --bench venue`

mod common;
#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{env_usize, Samples, TABLE_HEAD};
use concession_agent::sandbox::{DataSet, Sandbox, SandboxConfig};
use crossbeam_channel::Receiver;
use serde_json::Value;

const FIRST_TICKET: u64 = 200_000_000_000;

fn ticket(n: usize) -> String {
    (FIRST_TICKET + n as u64).to_string()
}

fn agent() -> Command {
    let bin = std::env::var_os("AGENT_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_concession-agent").into());
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCESSION_") {
            c.env_remove(k);
        }
    }
    // The stands' warnings (each pending decision is one) would drown the figures; the
    // bench counts pending decisions from the POS lines instead.
    c.env("RUST_LOG", "error");
    c
}

fn write_config(dir: &Path, terminal: &str, ats: &str, venue: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("agent.toml");
    // Only when asked: a build from before the setting refuses the key.
    let sync = std::env::var("SYNC_COMMIT")
        .map(|v| format!("synchronous_commit = {v:?}\n"))
        .unwrap_or_default();
    let venue = venue
        .map(|u| format!("[venue]\nurl = {u:?}\ntimeout_ms = 300\n{sync}"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "terminal_id = {terminal:?}\n\
             store_dir = {store:?}\n\
             events = [\"EVENT01\"]\n\
             [ats]\n\
             url = {ats:?}\n\
             apikey = \"sandbox-key\"\n\
             rate_per_minute = 10000\n\
             rate_per_day = 10000000\n\
             [cache]\n\
             prefetch_at_start = false\n\
             fresh_ms = 3600000\n\
             [pos]\n\
             output = \"jsonl\"\n\
             {venue}",
            store = dir.join("store").display().to_string(),
        ),
    )
    .unwrap();
    path
}

/// `cache prefetch` on each config, all at once.
fn prefetch(configs: &[PathBuf]) {
    let children: Vec<Child> = configs
        .iter()
        .map(|c| {
            agent()
                .arg("--config")
                .arg(c)
                .args(["cache", "prefetch"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("prefetch starts")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cache prefetch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

struct Stand {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Stand {
    fn spawn(config: &Path) -> Stand {
        let mut child = agent()
            .arg("--config")
            .arg(config)
            .args(["run", "--pos", "jsonl"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agent starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let s = Stand {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        };
        // Serving once the first status line is out.
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let l = s
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .expect("the stand reports a status within 60 s");
            if l.contains("\"type\":\"status\"") {
                break;
            }
        }
        s
    }

    /// Scans and waits for the decision: (wall time, the line).
    fn decide(&mut self, barcode: &str) -> (Duration, Value) {
        let t0 = Instant::now();
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{barcode}").unwrap();
        stdin.flush().unwrap();
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("a decision within 30 s");
            if l.contains("\"type\":\"decision\"") {
                return (t0.elapsed(), serde_json::from_str(&l).unwrap());
            }
        }
    }

    fn stop(mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

#[derive(Default, Debug)]
struct Mix {
    approvals: usize,
    from_cache: usize,
    committed: usize,
    not_committed: usize,
}

impl Mix {
    fn add(&mut self, v: &Value, venue: bool) {
        self.approvals += (v["decision"] == "approve") as usize;
        self.from_cache += (v["source"] == "cache") as usize;
        if venue {
            if v["venue"] == "committed" {
                self.committed += 1;
            } else {
                self.not_committed += 1;
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if pg::bin_dir().is_none() {
        eprintln!("venue bench: PostgreSQL is not installed (no initdb); nothing measured");
        return;
    }
    let samples = env_usize("SAMPLES", 1000);
    let stands = env_usize("STANDS", 16);
    let secs = env_usize("THROUGHPUT_SECS", 5);
    let per_stand = env_usize("PER_STAND", 1500);
    let per_single = env_usize("PER_SINGLE", 4000);
    // Latency: `samples` tickets per mode (+ a warm-up). Throughput: venue stands share
    // one ledger, so each gets its own `per_stand` tickets; single-terminal stands each
    // have their own ledger, so they all scan the same `per_single` tickets.
    let warm = 50;
    let lat_tickets = 2 * (samples + warm);
    let tickets = lat_tickets + stands * per_stand + per_single;

    let scratch = common::scratch();
    println!("{}", common::machine(scratch.path()));
    // `PG_DURABLE=0` (a diagnostic, not a venue's setting): the server's own fsync off,
    // to see what PostgreSQL's WAL flush adds to the tail.
    // `PG_SET=name=value,name=value`: extra server settings (a diagnostic: e.g.
    // `wal_buffers=16MB`, what a server with `shared_buffers` of 512 MB or more gets;
    // the harness's 32 MB gives 1 MB).
    let settings = std::env::var("PG_SET")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let cluster = pg::Cluster::new(pg::ClusterOptions {
        durable: env_usize("PG_DURABLE", 1) != 0,
        settings,
    });
    let db = cluster.create_db("venue");
    println!(
        "postgres: {} ({}), fsync {}, synchronous_commit {} (the stands set their own), \
         wal_buffers {}",
        cluster.psql("venue", "SHOW server_version"),
        cluster.url("venue"),
        cluster.psql("venue", "SHOW fsync"),
        cluster.psql("venue", "SHOW synchronous_commit"),
        cluster.psql("venue", "SHOW wal_buffers"),
    );
    let sb = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: DataSet::builtin().with_generated(tickets),
        rate_per_minute: 1_000_000,
        rate_per_day: 100_000_000,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let ats = sb.base_url();

    // 1. Latency, alternating.
    let single_cfg = write_config(&scratch.path().join("single"), "bench-single", &ats, None);
    let venue_cfg = write_config(
        &scratch.path().join("venue"),
        "bench-venue",
        &ats,
        Some(&db),
    );
    let t = Instant::now();
    prefetch(&[single_cfg.clone(), venue_cfg.clone()]);
    println!(
        "prefetch of {tickets} tickets for 2 stands: {:?}",
        t.elapsed()
    );
    let mut single = Stand::spawn(&single_cfg);
    let mut venue = Stand::spawn(&venue_cfg);
    let (mut s_lat, mut v_lat) = (
        Samples::with_capacity(samples),
        Samples::with_capacity(samples),
    );
    let (mut s_mix, mut v_mix) = (Mix::default(), Mix::default());
    for i in 0..samples + warm {
        let (ds, ls) = single.decide(&ticket(2 * i));
        let (dv, lv) = venue.decide(&ticket(2 * i + 1));
        if i >= warm {
            s_lat.push(ds);
            v_lat.push(dv);
            s_mix.add(&ls, false);
            v_mix.add(&lv, true);
        }
    }
    single.stop();
    venue.stop();
    println!(
        "\n### Decision latency, scan written to decision line read (closed loop, fresh tickets)\n"
    );
    println!("{TABLE_HEAD}");
    println!("{}", s_lat.line("single-terminal (no `[venue]`)"));
    println!("{}", v_lat.line("venue (PostgreSQL on loopback)"));
    println!(
        "<!-- {} -->",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "\nsingle: {s_mix:?}\nvenue: {v_mix:?}\nvenue p99 {} ms (target <= 10 ms): {}",
        common::ms(v_lat.pct(99.0)),
        if v_lat.pct(99.0) <= Duration::from_millis(10) {
            "met"
        } else {
            "MISSED"
        }
    );

    // 2. Throughput (`STANDS=0`: latency only).
    if stands == 0 {
        sb.shutdown();
        return;
    }
    println!("\n### Throughput, {stands} stands at once, {secs} s, closed loop per stand\n");
    println!(
        "| mode | stands | decisions | seconds | decisions/s | committed/s | p50 ms | p99 ms | mix |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (mode, with_venue) in [("venue", true), ("single-terminal", false)] {
        let (base, stride, cap) = if with_venue {
            (lat_tickets, per_stand, per_stand)
        } else {
            (lat_tickets + stands * per_stand, 0, per_single)
        };
        let configs: Vec<PathBuf> = (0..stands)
            .map(|i| {
                write_config(
                    &scratch.path().join(format!("{mode}-{i}")),
                    &format!("bench-{mode}-{i}"),
                    &ats,
                    with_venue.then_some(db.as_str()),
                )
            })
            .collect();
        prefetch(&configs);
        let running: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
        let go = AtomicBool::new(false);
        let stop = AtomicBool::new(false);
        let ready = AtomicUsize::new(0);
        let mut elapsed = Duration::ZERO;
        let results: Vec<(Vec<Duration>, Mix, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = running
                .into_iter()
                .enumerate()
                .map(|(i, mut stand)| {
                    let (go, stop, ready) = (&go, &stop, &ready);
                    s.spawn(move || {
                        let mut lat = Vec::with_capacity(cap);
                        let mut mix = Mix::default();
                        ready.fetch_add(1, Ordering::SeqCst);
                        while !go.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        let mut n = 0;
                        while n < cap && !stop.load(Ordering::SeqCst) {
                            let (d, v) = stand.decide(&ticket(base + i * stride + n));
                            lat.push(d);
                            mix.add(&v, with_venue);
                            n += 1;
                        }
                        stand.stop();
                        (lat, mix, n)
                    })
                })
                .collect();
            while ready.load(Ordering::SeqCst) < stands {
                std::thread::sleep(Duration::from_millis(5));
            }
            let t0 = Instant::now();
            go.store(true, Ordering::SeqCst);
            // The measured window: a fixed run time is what a throughput figure is.
            std::thread::sleep(Duration::from_secs(secs as u64));
            stop.store(true, Ordering::SeqCst);
            let r: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            // Until the last stand's last decision (and its clean stop).
            elapsed = t0.elapsed();
            r
        });
        let total: usize = results.iter().map(|r| r.2).sum();
        let mut all = Samples::with_capacity(total);
        let mut mix = Mix::default();
        for (lat, m, _) in &results {
            for d in lat {
                all.push(*d);
            }
            mix.approvals += m.approvals;
            mix.from_cache += m.from_cache;
            mix.committed += m.committed;
            mix.not_committed += m.not_committed;
        }
        let secs_f = elapsed.as_secs_f64();
        println!(
            "| {mode} | {stands} | {total} | {secs_f:.2} | **{:.0}** | {} | {} | {} | {mix:?} |",
            total as f64 / secs_f,
            if with_venue {
                format!("{:.0}", mix.committed as f64 / secs_f)
            } else {
                "-".into()
            },
            common::ms(all.pct(50.0)),
            common::ms(all.pct(99.0)),
        );
        if total >= stands * cap {
            println!("(every stand ran out of tickets before the window ended: raise PER_STAND / PER_SINGLE)");
        }
        println!(
            "<!-- {} -->",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
    }
    println!(
        "\nvenue_decisions rows in the database: {}",
        cluster.psql("venue", "SELECT count(*) FROM venue_decisions")
    );
    sb.shutdown();
}
