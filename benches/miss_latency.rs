//! Benchmark 2: cache-miss decision latency against the in-process sandbox with an
//! injected latency `L` (`Faults::latency_ms`), parallel lookup vs a sequential client.
//!
//! For each `L` (env `LATENCIES`, default `0,100,300`), interleaved sample by sample:
//!
//! - **agent (parallel)**: `Agent::handle_scan` of a ticket that is not cached: cache
//!   read, `agent::lookup::Lookups` (one worker runs `verify_barcode`, another
//!   `get_av_barcodes`; the second to finish assembles the record and writes the cache),
//!   `decide` on the live record, `Store::commit_decision` (durable), POS signal. Scan to
//!   signalled decision.
//! - **sequential client**: `verify_barcode` then `get_av_barcodes` on one thread, then
//!   the same decide + commit: about `2L`.
//!
//! The rate limits of both the sandbox and the client are raised for this bench (it
//! measures latency, not the budget; benchmark 3 measures the budget). Real clock: the
//! sandbox really sleeps `L`.
//!
//! Env: `SAMPLES` per series and latency (default 30), `LATENCIES`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::{env_usize, Samples, TABLE_HEAD};
use concession_agent::agent::lookup::assemble;
use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::ats::{AtsClient, AtsConfig};
use concession_agent::clock;
use concession_agent::config::{Config, RawConfig};
use concession_agent::decide::{decide, DecideInput, Evidence, Mode, Policy, ScanKind};
use concession_agent::redact::Secret;
use concession_agent::sandbox::{DataSet, Faults, Sandbox, SandboxConfig};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};
use concession_agent::store::{rfc3339_ms, NewDecision, Store, StoreOptions};
use concession_agent::ticket::TicketRecord;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn agent_config(url: &str, dir: &Path) -> Config {
    let text = format!(
        "store_dir = {:?}\nterminal_id = \"bench-stand\"\n[ats]\nrate_per_minute = 10000\nrate_per_day = 1000000\n",
        dir.display().to_string()
    );
    let mut raw = RawConfig::parse(&text, Path::new("bench")).unwrap_or_else(|e| panic!("{e}"));
    raw.ats.url = Some(url.to_string());
    raw.ats.apikey = Some("sandbox-key".into());
    raw.cache.prefetch_at_start = Some(false);
    Config::from_raw(raw).unwrap_or_else(|e| panic!("{e}"))
}

fn decide_commit(store: &Store, rec: &TicketRecord, today: &str, policy: &Policy) -> bool {
    let scan = ScanKind::Barcode(rec.barcode.clone());
    let ledger = store.ledger(&rec.barcode).unwrap_or_default();
    let usage = store.offline_usage().unwrap_or_default();
    let d = decide(&DecideInput {
        scan: &scan,
        requested: Some(100),
        evidence: Evidence::Live(rec),
        mode: Mode::Online,
        ledger: &ledger,
        usage,
        policy,
        today,
        events: &[],
        clock_trusted: true,
    });
    store
        .commit_decision(&NewDecision {
            scan_time_ms: wall_ms(),
            barcode: &rec.barcode,
            decision: &d,
            evidence: Some(rec),
            latency_ms: 0,
            request: None,
        })
        .unwrap_or_else(|e| panic!("commit: {e}"));
    d.is_approve()
}

fn main() {
    let samples = env_usize("SAMPLES", 30);
    let latencies: Vec<u64> = std::env::var("LATENCIES")
        .unwrap_or_else(|_| "0,100,300".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = common::scratch();
    println!("{}", common::machine(dir.path()));
    println!("miss_latency: samples {samples} per series, latencies {latencies:?} ms");

    let n_tickets = samples * latencies.len() * 2 + 10;
    let sandbox = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        data: DataSet::builtin().with_generated(n_tickets),
        rate_per_minute: 100_000,
        rate_per_day: 1_000_000,
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let ats = Arc::new(
        AtsClient::new(AtsConfig {
            base_url: sandbox.base_url(),
            apikey: Secret::new("sandbox-key"),
            rate_per_minute: 100_000,
            rate_per_day: 1_000_000,
            ..AtsConfig::default()
        })
        .unwrap_or_else(|e| panic!("client: {e}")),
    );
    let store = Store::open(&dir.path().join("store"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("store: {e}"));
    let sys = clock::system();
    let cfg = agent_config(&sandbox.base_url(), &dir.path().join("agent-store"));
    let link = app::connect_ats(&cfg, sys.clone()).unwrap_or_else(|e| panic!("{e}"));
    let agent_store = app::open_store(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut agent = Agent::new(
        cfg.clone(),
        Arc::clone(&link.client),
        agent_store,
        sys.clone(),
        Outputs::default(),
    );
    let today = rfc3339_ms(wall_ms())[..10].to_string();
    let policy = Policy::default();
    // Warm the connection pool and the sandbox's threads.
    for _ in 0..3 {
        let _ = ats.verify_barcode("100000000001", None);
    }

    // Warm the agent's connections and workers with a few misses.
    for i in 0..4 {
        let ev = ScanEvent {
            input: classify(&format!(
                "{:012}",
                200_000_000_000u64 + n_tickets as u64 - 1 - i
            )),
            amount_cents: Some(100),
            request_id: None,
            received_at_ms: sys.wall_ms(),
            origin: Origin::Stdin,
        };
        let _ = agent.handle_scan(&ev);
    }
    let mut next = 0usize;
    let mut take = || {
        next += 1;
        format!("{:012}", 200_000_000_000u64 + next as u64 - 1)
    };
    println!();
    println!("{TABLE_HEAD}");
    let mut summary = Vec::new();
    for &l in &latencies {
        sandbox.set_faults(Faults {
            latency_ms: l,
            ..Faults::default()
        });
        let mut par = Samples::with_capacity(samples);
        let mut seq = Samples::with_capacity(samples);
        let mut one_call = Samples::with_capacity(samples);
        for _ in 0..samples {
            // The agent: a scan of a ticket it has never seen.
            let bc = take();
            let ev = ScanEvent {
                input: classify(&bc),
                amount_cents: Some(100),
                request_id: None,
                received_at_ms: sys.wall_ms(),
                origin: Origin::Stdin,
            };
            let t = Instant::now();
            let d = agent
                .handle_scan(&ev)
                .unwrap_or_else(|e| panic!("scan: {e}"));
            par.push(t.elapsed());
            assert_eq!(d.source, "live", "{d:?}");
            assert_eq!(d.reason, "approved", "{d:?}");

            // Sequential client.
            let bc = take();
            let t = Instant::now();
            let v = ats.verify_barcode(&bc, None);
            let a = ats.get_av_barcodes(&bc);
            let rec = assemble(&bc, v, a, wall_ms()).unwrap_or_else(|e| panic!("{e}"));
            assert!(decide_commit(&store, &rec, &today, &policy));
            seq.push(t.elapsed());

            // One bare call (the round trip both series pay at least once).
            let t = Instant::now();
            let _ = ats.verify_barcode("100000000001", None);
            one_call.push(t.elapsed());
        }
        println!(
            "{}",
            par.line(&format!(
                "L={l}: miss through Agent::handle_scan (parallel lookup)"
            ))
        );
        println!(
            "{}",
            seq.line(&format!(
                "L={l}: miss, sequential verify then get_av + decide + commit"
            ))
        );
        println!(
            "{}",
            one_call.line(&format!("L={l}: one bare verify_barcode call"))
        );
        summary.push(format!(
            "L={l}: parallel p50 {} / p99 {} ms (target <= {} ms), sequential p50 {} ms; seq/par p50 {:.2}x",
            common::ms(par.pct(50.0)),
            common::ms(par.pct(99.0)),
            l + 10,
            common::ms(seq.pct(50.0)),
            seq.pct(50.0).as_secs_f64() / par.pct(50.0).as_secs_f64().max(1e-12)
        ));
    }
    println!();
    for s in summary {
        println!("{s}");
    }
    let st = sandbox.stats();
    println!(
        "sandbox stats: {} requests, by status {:?}",
        st.total_requests, st.by_status
    );
    agent.shutdown();
    sandbox.shutdown();
    println!("{}", common::machine(dir.path()));
}
