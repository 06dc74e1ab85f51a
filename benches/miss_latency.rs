//! Benchmark 2: cache-miss decision latency against the in-process sandbox with an
//! injected latency `L` (`Faults::latency_ms`), parallel lookup vs a sequential client.
//!
//! For each `L` (env `LATENCIES`, default `0,100,300`), interleaved sample by sample:
//!
//! - **parallel**: `verify_barcode` on a second thread while this thread runs
//!   `get_av_barcodes`, joins the answers into a `TicketRecord`, then `decide` on the live record and
//!   `Store::commit_decision` (durable). Scan to committed decision. (The agent's
//!   `Lookups` pool is not yet exported by `agent/mod.rs`; this is what it does.)
//! - **sequential client**: `verify_barcode` then `get_av_barcodes` on one thread, then
//!   the same decide + commit: about `2L`.
//!
//! The rate limits of both the sandbox and the client are raised for this bench (it
//! measures latency, not the budget; benchmark 3 measures the budget). Real clock: the
//! sandbox really sleeps `L`.
//!
//! Env: `SAMPLES` per series and latency (default 15), `LATENCIES`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{env_usize, Samples, TABLE_HEAD};
use concession_agent::ats::{AtsClient, AtsConfig, AtsError};
use concession_agent::decide::{decide, DecideInput, Evidence, Mode, Policy, ScanKind};
use concession_agent::redact::Secret;
use concession_agent::sandbox::{DataSet, Faults, Sandbox, SandboxConfig};
use concession_agent::store::{rfc3339_ms, NewDecision, Store, StoreOptions};
use concession_agent::ticket::{TicketInfo, TicketRecord, ValueLine};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Joins the two answers into one record (as `agent::lookup::assemble` does).
fn assemble(
    barcode: &str,
    verify: Result<Option<TicketInfo>, AtsError>,
    value: Result<Option<Vec<ValueLine>>, AtsError>,
    now_ms: u64,
) -> Result<TicketRecord, AtsError> {
    Ok(TicketRecord {
        barcode: barcode.to_string(),
        info: verify?,
        value: value?.unwrap_or_default(),
        fetched_at_ms: now_ms,
    })
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
    let samples = env_usize("SAMPLES", 15);
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
    let today = rfc3339_ms(wall_ms())[..10].to_string();
    let policy = Policy::default();
    // Warm the connection pool and the sandbox's threads.
    for _ in 0..3 {
        let _ = ats.verify_barcode("100000000001", None);
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
            // Parallel: verify on a second thread while this one runs get_av (what
            // the agent's lookup pool does with two workers).
            let bc = take();
            let t = Instant::now();
            let (v, a) = std::thread::scope(|s| {
                let h = s.spawn(|| ats.verify_barcode(&bc, None));
                let a = ats.get_av_barcodes(&bc);
                (h.join().unwrap_or_else(|_| panic!("verify thread")), a)
            });
            let rec = assemble(&bc, v, a, wall_ms()).unwrap_or_else(|e| panic!("{e}"));
            assert!(decide_commit(&store, &rec, &today, &policy));
            par.push(t.elapsed());

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
            par.line(&format!("L={l}: miss, parallel verify || get_av + decide + commit"))
        );
        println!(
            "{}",
            seq.line(&format!("L={l}: miss, sequential verify then get_av + decide + commit"))
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
    sandbox.shutdown();
    println!("{}", common::machine(dir.path()));
}
