//! Benchmark 3: ATS calls per scan and 429s on a stand's workload, through the agent.
//!
//! The real `Agent` (decide, journal with flush, parallel lookups) runs against the
//! in-process sandbox with the shipped budgets (80 calls a minute, 5000 a day, on both
//! the client and the sandbox). One `ManualClock` is shared by the sandbox, the ATS
//! client and the agent: the simulated clock advances 1/RATE s between scans, so "10
//! simulated minutes at 2 scans a second" takes seconds of real time. Lookups still run
//! for real on the agent's worker threads over loopback (the sandbox adds no latency).
//!
//! The day: the event has `TICKETS` tickets with $10 loaded (sandbox `generate`) plus
//! the magic barcodes. Before the doors open the operator prefetches today's events
//! (`prefetch::events_to_prefetch` + `prefetch_event`, as `cache prefetch` does), then
//! `LEAD_S` simulated seconds pass. The refresher is run in-line at the configured
//! `refresh_interval` (15 min) when the minute budget is above the configured reserve
//! (the threaded refresher would sleep on the shared manual clock). Scans: families of
//! 1-5 tickets scanned one after another (bare scans and POS amounts), repeat scans of
//! tickets already seen (second purchases), unknown tickets, void/expired/other-event
//! magic tickets, and scanner noise.
//!
//! The loop calls `Agent::handle_scan` then `Agent::tick` per scan, as `Agent::run` does
//! (`tick` sends the connectivity probes while offline).
//!
//! Counted from the sandbox's `stats()`: calls during the scanning phase (first calls and
//! 202 polls) / scans, and every 429 over the whole run.
//!
//! Env: `TICKETS` (default 5000), `RATE` scans/s (default 2), `MINUTES` (default 10),
//! `SCENARIOS`: `lead:refresh` pairs in seconds (time from prefetch to the doors, and
//! the refresh interval; empty refresh = the shipped default), default `0:,300:,300:900`.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::env_usize;
use concession_agent::agent::prefetch::{events_to_prefetch, prefetch_event};
use concession_agent::agent::{local_date, Agent, Outputs};
use concession_agent::app;
use concession_agent::clock::ManualClock;
use concession_agent::config::{Config, RawConfig};
use concession_agent::sandbox::{DataSet, Sandbox, SandboxConfig, Stats};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};

fn calls(s: &Stats) -> u64 {
    s.calls_by_command.values().sum::<u64>() + s.polls
}

fn config(url: &str, dir: &Path, refresh_s: Option<u64>) -> Config {
    let text = format!(
        "store_dir = {:?}\nterminal_id = \"bench-stand\"\n",
        dir.display().to_string()
    );
    let mut raw = RawConfig::parse(&text, Path::new("bench")).unwrap_or_else(|e| panic!("{e}"));
    raw.ats.url = Some(url.to_string());
    raw.ats.apikey = Some("sandbox-key".into());
    raw.cache.prefetch_at_start = Some(false);
    if let Some(r) = refresh_s {
        raw.cache.refresh_interval_ms = Some(r * 1000);
    }
    Config::from_raw(raw).unwrap_or_else(|e| panic!("{e}"))
}

/// What the stand scans next.
struct Workload {
    rng: common::Rng,
    tickets: usize,
    family: Vec<String>,
    seen: Vec<String>,
    used: std::collections::BTreeSet<usize>,
    unknown_seq: u64,
}

impl Workload {
    fn next(&mut self) -> (String, Option<u64>) {
        let amount = |rng: &mut common::Rng| {
            if rng.chance(0.6) {
                Some(300 + 50 * rng.below(10) as u64)
            } else {
                None
            }
        };
        if let Some(bc) = self.family.pop() {
            let a = amount(&mut self.rng);
            self.seen.push(bc.clone());
            return (bc, a);
        }
        let roll = self.rng.below(1000);
        match roll {
            // 2% unknown tickets (wrong venue, typos the scanner accepted).
            0..=19 => {
                self.unknown_seq += 1;
                (
                    format!("{:012}", 900_000_000_000u64 + self.unknown_seq),
                    None,
                )
            }
            // 1% each: void, expired, other event today.
            20..=29 => ("100000000005".into(), None),
            30..=39 => ("100000000007".into(), None),
            40..=49 => ("100000000006".into(), Some(500)),
            // 1% scanner noise.
            50..=59 => ("##garbage##".into(), None),
            // 12% repeat scans: a ticket already scanned comes back.
            60..=179 if !self.seen.is_empty() => {
                let i = self.rng.below(self.seen.len());
                (self.seen[i].clone(), amount(&mut self.rng))
            }
            // Otherwise a new family of 1-5 arrives (consecutive barcodes, one account).
            _ => {
                let size = 1 + self.rng.below(5);
                let mut start = self.rng.below(self.tickets.saturating_sub(size).max(1));
                while self.used.contains(&start) {
                    start = (start + 7) % self.tickets.saturating_sub(size).max(1);
                }
                for i in 0..size {
                    self.used.insert(start + i);
                    self.family
                        .push(format!("{:012}", 200_000_000_000u64 + (start + i) as u64));
                }
                self.next()
            }
        }
    }
}

fn scenario(tickets: usize, rate: usize, minutes: usize, lead_s: u64, refresh_s: Option<u64>) {
    let dir = common::scratch();
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let clock = ManualClock::new(start_ms);
    let shared = clock.shared();
    let sandbox = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        data: DataSet::builtin().with_generated(tickets),
        clock: shared.clone(),
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let cfg = config(&sandbox.base_url(), &dir.path().join("store"), refresh_s);
    let link = app::connect_ats(&cfg, shared.clone()).unwrap_or_else(|e| panic!("{e}"));
    let store = app::open_store(&cfg).unwrap_or_else(|e| panic!("{e}"));

    // Before the doors: the operator's prefetch of today's events.
    let real = Instant::now();
    let today = local_date(shared.wall_ms(), cfg.utc_offset_minutes);
    let events = events_to_prefetch(&link.client, &cfg.events, &today)
        .unwrap_or_else(|e| panic!("event_search: {e}"));
    let mut cached = 0;
    for ev in &events {
        cached += prefetch_event(&link.client, &store, ev, shared.wall_ms(), None)
            .unwrap_or_else(|e| panic!("prefetch {}: {e}", ev.event_name));
    }
    let prefetched_at = shared.now();
    let pre = sandbox.stats();
    println!(
        "\n## prefetch {lead_s} s before the doors, refresh every {} s, fresh_ms {} s: prefetch of {} events cached {cached} tickets with {} calls ({:.2} s real)",
        cfg.cache.refresh_interval.as_secs(),
        cfg.cache.fresh.as_secs(),
        events.len(),
        calls(&pre),
        real.elapsed().as_secs_f64()
    );
    clock.advance(Duration::from_secs(lead_s));
    let mut agent = Agent::new(
        cfg.clone(),
        std::sync::Arc::clone(&link.client),
        store.clone(),
        shared.clone(),
        Outputs::default(),
    );
    let before = sandbox.stats();

    let mut wl = Workload {
        rng: common::Rng(2026),
        tickets,
        family: Vec::new(),
        seen: Vec::new(),
        used: Default::default(),
        unknown_seq: 0,
    };
    let scans = rate * minutes * 60;
    let step = Duration::from_millis(1000 / rate as u64);
    let mut next_refresh = prefetched_at + cfg.cache.refresh_interval;
    let stop = AtomicBool::new(false);
    let mut refreshes = 0;
    let mut refresh_calls = 0;
    let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
    let mut by_source = std::collections::BTreeMap::<String, u64>::new();
    let mut per_minute = vec![0u64; minutes + 1];
    let real = Instant::now();
    for i in 0..scans {
        if shared.now() >= next_refresh
            && link.client.budget_remaining().0 > cfg.cache.budget_reserve_per_minute
        {
            let b = calls(&sandbox.stats());
            for ev in &events {
                let _ = prefetch_event(
                    &link.client,
                    &store,
                    ev,
                    shared.wall_ms(),
                    Some((cfg.cache.budget_reserve_per_minute, &stop)),
                );
            }
            refresh_calls += calls(&sandbox.stats()) - b;
            refreshes += 1;
            next_refresh = shared.now() + cfg.cache.refresh_interval;
        }
        let (text, amount) = wl.next();
        let c0 = calls(&sandbox.stats());
        let ev = ScanEvent {
            input: classify(&text),
            amount_cents: amount,
            request_id: None,
            received_at_ms: shared.wall_ms(),
            origin: Origin::Stdin,
        };
        let d = agent
            .handle_scan(&ev)
            .unwrap_or_else(|e| panic!("scan {i}: {e}"));
        *by_reason.entry(d.reason.as_str().to_string()).or_default() += 1;
        *by_source.entry(d.source.as_str().to_string()).or_default() += 1;
        // What `Agent::run` does after each request: probes while offline.
        agent.tick();
        per_minute[i * minutes / scans] += calls(&sandbox.stats()) - c0;
        clock.advance(step);
    }
    let real = real.elapsed().as_secs_f64();
    // Let late lookups land before reading the stats.
    std::thread::sleep(Duration::from_millis(200));
    let after = sandbox.stats();
    let scan_calls = calls(&after) - calls(&before);
    println!(
        "scans {scans} at {rate}/s over {minutes} simulated min ({real:.2} s real); calls during scanning {scan_calls} (of which refresh {refresh_calls} in {refreshes} refreshes)"
    );
    println!(
        "calls per scan after prefetch: {:.3} (target <= 0.3); scan lookups only: {:.3}",
        scan_calls as f64 / scans as f64,
        (scan_calls - refresh_calls) as f64 / scans as f64
    );
    println!(
        "429 answers over the whole run: {} (target 0); statuses {:?}; by command {:?}",
        after.status(429),
        after.by_status,
        after.calls_by_command
    );
    println!("scan-path calls per simulated minute: {per_minute:?}");
    println!("decisions by reason: {by_reason:?}");
    println!("decisions by source: {by_source:?}");
    agent.shutdown();
    sandbox.shutdown();
}

fn main() {
    let tickets = env_usize("TICKETS", 5000);
    let rate = env_usize("RATE", 2).max(1);
    let minutes = env_usize("MINUTES", 10).max(1);
    // lead:refresh pairs; an empty refresh keeps the shipped config.
    let scenarios: Vec<(u64, Option<u64>)> = std::env::var("SCENARIOS")
        .unwrap_or_else(|_| "0:,300:,300:900".into())
        .split(',')
        .filter_map(|s| {
            let (lead, refresh) = s.split_once(':').unwrap_or((s, ""));
            Some((lead.trim().parse().ok()?, refresh.trim().parse().ok()))
        })
        .collect();
    println!(
        "{}",
        common::machine(Path::new(env!("CARGO_TARGET_TMPDIR")))
    );
    println!(
        "stand_day: {tickets} tickets, {rate} scans/s, {minutes} simulated minutes, ManualClock shared by sandbox, client and agent"
    );
    for (lead, refresh) in scenarios {
        scenario(tickets, rate, minutes, lead, refresh);
    }
}
