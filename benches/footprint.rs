//! Benchmark 4: resident memory with N cached tickets, and start to ready.
//!
//! Each measurement runs in a fresh child process (this binary re-executed with a
//! `--child-*` argument) so `VmHWM` is that scenario's own peak.
//!
//! Memory (`--child-rss N DIR`): open a store with the shipped `StoreOptions` (sled
//! `cache_capacity_bytes` = the config default, 8 MiB), cache N tickets in prefetch-sized
//! transactions (`put_records`, 500 a chunk like a `get_av_barcodes` event chunk), flush,
//! then read every record back (a warm cache) and make 1,000 durable cache-hit decisions.
//! `VmRSS`/`VmHWM` are read from `/proc/self/status` after each phase. A second child
//! reopens the same store (a restarted agent) and reads every record again.
//!
//! Start to ready (`--child-start DIR`): the parent takes the time from `spawn` to the
//! child's `ready` line on stdout; the child loads `config/agent.toml` (store dir from
//! `CONCESSION_STORE_DIR`), opens the store and builds the ATS client (https endpoint,
//! TLS roots loaded). This is the agent's start-up without the lead's CLI; see
//! BENCHMARKS.md.
//!
//! The real binary at an event (`real_event`): `ats-sandbox --generate N` (rate limit
//! raised), then the agent binary's `cache prefetch` twice (new store, then a refresh
//! over it) and `run` with `prefetch_at_start` fed a scan every 250 ms on stdin; peak
//! resident memory is each child's `ru_maxrss` (what `/usr/bin/time -v` reports), scan
//! latency the decisions' `latency_ms`, disk the store directory's bytes.
//!
//! Env: `SIZES` (default `10000,100000`), `STARTS` (runs per case, default 10),
//! `EVENT_TICKETS` (default 100000, 0 skips), `EVENT_SCANS` (default 40), `SANDBOX_BIN`
//! (the `ats-sandbox` binary; default the one cargo built),
//! `CACHE_MB` (overrides `StoreOptions::cache_capacity_bytes` in the memory children),
//! `AGENT_BIN` (the agent binary to start; default the one cargo built for this bench),
//! `AGENT_ATS_URL` (the ATS url in its config; default `https://127.0.0.1:9`, refused).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::{env_usize, rss_kib, Samples, TABLE_HEAD};
use concession_agent::ats::{AtsClient, AtsConfig};
use concession_agent::config::Config;
use concession_agent::decide::{decide, DecideInput, Evidence, Mode, Policy, ScanKind};
use concession_agent::store::{rfc3339_ms, NewDecision, Store, StoreOptions};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn report(phase: &str) {
    let (rss, hwm) = rss_kib();
    println!(
        "rss {phase}: VmRSS {} MiB, VmHWM {} MiB",
        mib(rss),
        mib(hwm)
    );
}

fn child_rss(n: usize, dir: &Path, fill: bool) {
    report("at start (empty process)");
    let opts = common::store_options();
    let store = Store::open(dir, opts).unwrap_or_else(|e| panic!("{e}"));
    report("store opened");
    let now = wall_ms();
    let today = rfc3339_ms(now)[..10].to_string();
    if fill {
        let mut i = 0;
        while i < n {
            let chunk: Vec<_> = (i..(i + 500).min(n))
                .map(|j| common::record(&common::barcode(j), &today, 1_000, now))
                .collect();
            store
                .put_records(chunk.iter())
                .unwrap_or_else(|e| panic!("{e}"));
            i += 500;
        }
        store.flush().unwrap_or_else(|e| panic!("{e}"));
        report(&format!("{n} tickets cached and flushed"));
    }
    let mut found = 0;
    for j in 0..n {
        if store
            .get_record(&common::barcode(j))
            .ok()
            .flatten()
            .is_some()
        {
            found += 1;
        }
    }
    assert_eq!(found, n, "every ticket is cached");
    report(&format!("all {n} records read back"));
    let policy = Policy {
        online_cache_max_age_ms: 3_600_000,
        ..Policy::default()
    };
    let mut rng = common::Rng(7);
    let flush_every = env_usize("FLUSH_EVERY", 0);
    for i in 0..1000 {
        if flush_every > 0 && i > 0 && i % flush_every == 0 {
            store.flush().unwrap_or_else(|e| panic!("{e}"));
        }
        let bc = common::barcode(rng.below(n));
        let rec = store
            .get_record(&bc)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("miss"));
        let ledger = store.ledger(&bc).unwrap_or_default();
        let scan = ScanKind::Barcode(bc.clone());
        let d = decide(&DecideInput {
            scan: &scan,
            requested: Some(100),
            evidence: Evidence::Cached {
                record: &rec,
                age_ms: wall_ms().saturating_sub(rec.fetched_at_ms),
            },
            mode: Mode::Online,
            ledger: &ledger,
            usage: Default::default(),
            policy: &policy,
            today: &today,
            events: &[],
            clock_trusted: true,
        });
        store
            .commit_decision(&NewDecision {
                scan_time_ms: wall_ms(),
                barcode: &bc,
                decision: &d,
                evidence: Some(&rec),
                latency_ms: 0,
                request: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
    report("after 1000 durable cache-hit decisions");
    println!(
        "size on disk: {} MiB",
        mib(store.size_on_disk().unwrap_or(0) / 1024)
    );
}

fn child_start(config: &Path) {
    let cfg = Config::load(config).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::open(
        &cfg.store_dir,
        StoreOptions {
            cache_capacity_bytes: cfg.cache.capacity_bytes,
            terminal_id: cfg.terminal_id.clone(),
            ..StoreOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("store: {e}"));
    let client = AtsClient::new(AtsConfig {
        base_url: "https://ats.example.invalid".into(),
        apikey: cfg.ats.apikey.clone(),
        ..AtsConfig::default()
    })
    .unwrap_or_else(|e| panic!("client: {e}"));
    // Touch both so nothing is optimised away.
    let _ = (store.terminal_id().len(), client.url().len());
    println!("ready");
}

fn run_child(args: &[&str], env: &[(&str, &Path)]) -> (String, std::time::Duration) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut out = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let mut text = String::new();
    let mut ready_at = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if line.trim() == "ready" && ready_at.is_none() {
            ready_at = Some(t.elapsed());
        }
        text.push_str(&line);
        line.clear();
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "child {args:?} failed:\n{text}");
    (text, ready_at.unwrap_or_default())
}

/// Starts the real agent binary (`run`, stdin scanner) and waits for its `ready` log
/// line on stderr. Returns the time to ready and the child's VmRSS/VmHWM then (KiB).
fn agent_start(bin: &Path, config: &Path) -> (std::time::Duration, u64, u64) {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["run", "--pos", "jsonl"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let err = BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut ready = None;
    let mut log = String::new();
    for line in err.lines() {
        let line = line.unwrap_or_default();
        if line.trim_end().ends_with(" ready") || line.trim_end().ends_with("] ready") {
            ready = Some(t.elapsed());
            break;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let ready = ready.unwrap_or_else(|| panic!("no ready line from the agent:\n{log}"));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss, hwm) = (get("VmRSS:"), get("VmHWM:"));
    // Closing stdin ends the only scan source: the agent stops by itself.
    drop(child.stdin.take());
    let _ = child.wait();
    (ready, rss, hwm)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-rss") => {
            let n = args[2].parse().unwrap_or_else(|e| panic!("{e}"));
            let fill = args[4] == "fill";
            return child_rss(n, Path::new(&args[3]), fill);
        }
        Some("--child-start") => return child_start(Path::new(&args[2])),
        _ => {}
    }
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let starts = env_usize("STARTS", 10);
    let dir = common::scratch();
    println!("{}", common::machine(dir.path()));
    println!("footprint: sizes {sizes:?}, {starts} starts per case");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml");

    let mut start_rows = Vec::new();
    for &n in &sizes {
        let store_dir = dir.path().join(format!("store-{n}"));
        let sd = store_dir.to_string_lossy().to_string();
        println!("\n## {n} cached tickets: fill (first process)");
        let (text, _) = run_child(&["--child-rss", &n.to_string(), &sd, "fill"], &[]);
        print!("{text}");
        println!("## {n} cached tickets: reopen and read all (restarted agent)");
        let (text, _) = run_child(&["--child-rss", &n.to_string(), &sd, "reopen"], &[]);
        print!("{text}");
        let cfg = config.to_string_lossy().to_string();
        let mut s = Samples::with_capacity(starts);
        for _ in 0..starts {
            let (_, ready) = run_child(
                &["--child-start", &cfg],
                &[("CONCESSION_STORE_DIR", &store_dir)],
            );
            s.push(ready);
        }
        start_rows.push(s.line(&format!(
            "start to ready: config + store open ({n} cached tickets) + client"
        )));
    }
    // The real binary: `AGENT_BIN` (e.g. the terminal build), else the one cargo built
    // for this bench (bench profile, default features: in-process sandbox).
    let bin = std::env::var_os("AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_concession-agent")));
    let url = std::env::var("AGENT_ATS_URL").unwrap_or_else(|_| "https://127.0.0.1:9".into());
    let mut agent_rows = Vec::new();
    let mut stores: Vec<(String, PathBuf)> = sizes
        .iter()
        .map(|n| {
            (
                format!("{n} cached tickets"),
                dir.path().join(format!("store-{n}")),
            )
        })
        .collect();
    stores.push((
        "new empty store".into(),
        dir.path().join("store-agent-empty"),
    ));
    for (what, store_dir) in &stores {
        let cfg_path = dir.path().join("agent-bench.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "terminal_id = \"bench-stand\"\nstore_dir = {:?}\n[ats]\nurl = {url:?}\napikey = \"bench-key\"\n[scanner]\nkind = \"stdin\"\n",
                store_dir.display().to_string()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut s = Samples::with_capacity(starts);
        let mut mem = (0, 0);
        for _ in 0..starts {
            let (ready, rss, hwm) = agent_start(&bin, &cfg_path);
            s.push(ready);
            mem = (mem.0.max(rss), mem.1.max(hwm));
        }
        agent_rows.push((
            s.line(&format!("agent binary start to ready ({what}, ats {url})")),
            format!(
                "agent binary at ready ({what}): VmRSS {} MiB, VmHWM {} MiB (max over runs)",
                mib(mem.0),
                mib(mem.1)
            ),
        ));
    }
    // The real binary at a real event (issue 10): `EVENT_TICKETS` (default 100000; 0
    // skips), `EVENT_SCANS` scans during `run` (default 40).
    let event = env_usize("EVENT_TICKETS", 100_000);
    #[cfg(target_os = "linux")]
    match sandbox_bin() {
        Some(sb) if event > 0 => {
            real_event(&bin, &sb, event, env_usize("EVENT_SCANS", 40), dir.path())
        }
        _ => println!("real event skipped (EVENT_TICKETS=0, or no SANDBOX_BIN)"),
    }
    println!("\nagent binary: {}", bin.display());
    println!(
        "agent binary size: {} bytes",
        std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0)
    );

    let empty = dir.path().join("store-empty");
    let cfg = config.to_string_lossy().to_string();
    let mut s = Samples::with_capacity(starts);
    for i in 0..starts {
        let d = empty.join(i.to_string());
        let (_, ready) = run_child(&["--child-start", &cfg], &[("CONCESSION_STORE_DIR", &d)]);
        s.push(ready);
    }
    start_rows.push(s.line("start to ready: config + new empty store + client"));
    // The part of every start above that reads the system trust store (https URL, no
    // ca_file): the PEM bundle is parsed when the client is built.
    let mut s = Samples::with_capacity(starts);
    for _ in 0..starts {
        let t = Instant::now();
        let client = AtsClient::new(AtsConfig {
            base_url: "https://ats.example.invalid".into(),
            apikey: concession_agent::redact::Secret::new("bench-key"),
            ..AtsConfig::default()
        })
        .unwrap_or_else(|e| panic!("client: {e}"));
        s.push(t.elapsed());
        drop(client);
    }
    start_rows.push(s.line("AtsClient::new, https (loads the system trust store)"));
    println!();
    println!("{TABLE_HEAD}");
    for r in start_rows {
        println!("{r}");
    }
    for (r, _) in &agent_rows {
        println!("{r}");
    }
    println!();
    for (_, m) in &agent_rows {
        println!("{m}");
    }
    println!("{}", common::machine(dir.path()));
}

/// Peak resident memory (KiB, `ru_maxrss`, as `/usr/bin/time -v` reports it) and exit
/// status of a finished child.
#[cfg(target_os = "linux")]
fn wait_peak(child: &mut std::process::Child) -> (u64, i32) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 only writes into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our own unwaited child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    (usage.ru_maxrss as u64, status)
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The `ats-sandbox` binary: `SANDBOX_BIN`, else the one cargo built with this bench.
fn sandbox_bin() -> Option<PathBuf> {
    std::env::var_os("SANDBOX_BIN")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_BIN_EXE_ats-sandbox").map(PathBuf::from))
}

/// Starts `ats-sandbox --generate n` on a free port with the rate limit raised (so only
/// the agent's own work shows) and returns it with its URL.
fn start_sandbox(bin: &Path, n: usize) -> (std::process::Child, String) {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--generate", &n.to_string()])
        .args(["--rate-per-minute", "100000", "--rate-per-day", "10000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut out = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let mut line = String::new();
    out.read_line(&mut line).unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("sandbox said {line:?}"))
        .to_string();
    (child, url)
}

/// The real binary at an event of `n` generated tickets (+5 built-in): `cache prefetch`
/// into a new store, a second `cache prefetch` (a refresh over a full cache), then `run`
/// with `prefetch_at_start` on a new store while a scan arrives on stdin every 250 ms
/// from the moment it starts. Peak memory is the child's `ru_maxrss`.
#[cfg(target_os = "linux")]
fn real_event(agent: &Path, sandbox: &Path, n: usize, scans: usize, dir: &Path) {
    let (mut sb, url) = start_sandbox(sandbox, n);
    let config = |store: &Path, scanner: &str| {
        let path = store.with_extension("toml");
        std::fs::write(
            &path,
            format!(
                "terminal_id = \"bench-stand\"\nstore_dir = {:?}\nevents = [\"EVENT01\"]\n\
                 [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\nrate_per_minute = 10000\n\
                 rate_per_day = 1000000\n[scanner]\nkind = {scanner:?}\n",
                store.display().to_string()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        path
    };
    println!(
        "\n## the real binary at an event of {} tickets ({url})",
        n + 5
    );
    let store = dir.join(format!("event-{n}"));
    let cfg = config(&store, "none");
    for pass in [
        "cache prefetch (new store)",
        "cache prefetch again (refresh)",
    ] {
        let t = Instant::now();
        let mut child = Command::new(agent)
            .arg("--config")
            .arg(&cfg)
            .args(["cache", "prefetch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", agent.display()));
        let mut said = String::new();
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines() {
                said.push_str(&line.unwrap_or_default());
            }
        }
        let (peak, status) = wait_peak(&mut child);
        println!(
            "{pass}: exit {status}, {:.2} s to a fully cached event, peak RSS {peak} kB \
             ({} MiB), store {} bytes on disk; it said: {said}",
            t.elapsed().as_secs_f64(),
            mib(peak),
            dir_bytes(&store),
        );
    }

    let store = dir.join(format!("event-run-{n}"));
    let cfg = config(&store, "stdin");
    let t = Instant::now();
    let mut child = Command::new(agent)
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--pos", "jsonl"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", agent.display()));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    // The time the log says the prefetch completed, from the start.
    let cached_at = std::thread::spawn(move || {
        let mut at = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if at.is_none() && line.contains("prefetched ") {
                at = Some(t.elapsed());
            }
        }
        at
    });
    let decisions = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter(|v| v.get("latency_ms").is_some())
            .map(|v| (t.elapsed(), v))
            .collect::<Vec<_>>()
    });
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    for k in 0..scans {
        let bc = 200_000_000_000u64 + ((k as u64 * 2477) % n.max(1) as u64);
        use std::io::Write;
        let _ = writeln!(stdin, "{bc}");
        let _ = stdin.flush();
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    drop(stdin);
    let (peak, status) = wait_peak(&mut child);
    let decisions = decisions.join().unwrap_or_default();
    let cached_at = cached_at.join().unwrap_or(None);
    let lat: Vec<u64> = decisions
        .iter()
        .filter_map(|(_, v)| v["latency_ms"].as_u64())
        .collect();
    let during: Vec<u64> = decisions
        .iter()
        .filter(|(at, _)| cached_at.is_none_or(|c| *at <= c))
        .filter_map(|(_, v)| v["latency_ms"].as_u64())
        .collect();
    let pct = |v: &[u64], p: f64| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mut sources = std::collections::BTreeMap::<String, usize>::new();
    for (_, v) in &decisions {
        let key = format!("{} via {}", v["decision"], v["source"]).replace('"', "");
        *sources.entry(key).or_default() += 1;
    }
    println!(
        "run with prefetch_at_start, a scan every 250 ms: exit {status}, peak RSS {peak} kB \
         ({} MiB), event fully cached {:.2} s after start, store {} bytes",
        mib(peak),
        cached_at.map_or(f64::NAN, |c| c.as_secs_f64()),
        dir_bytes(&store),
    );
    println!(
        "scan latency (ms, the decision's latency_ms), all {} scans: p50 {} p99 {} max {}; \
         the {} decided before the prefetch completed: p99 {} max {}; {sources:?}",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.iter().max().copied().unwrap_or(0),
        during.len(),
        pct(&during, 0.99),
        during.iter().max().copied().unwrap_or(0),
    );
    let _ = sb.kill();
    let _ = sb.wait();
}
