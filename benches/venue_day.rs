//! Issue 13 item 5: ATS calls of a venue day on one key, today's per-terminal design
//! beside the venue design (one fetch per event, `venue/background.rs`, and the key's
//! shared budget, `ats/shared_budget.rs` + `venue/budget.rs`), in one run.
//!
//! N stands (default 1, 4, 16) on one key: the in-process sandbox with its shipped limits
//! (80 calls a minute, 5000 a day) and each stand's client with the same local budget.
//! An event of `TICKETS` tickets (default 40,000, $10 each, sandbox `generate`). Every
//! stand starts at the doors' opening (the cold start) and scans one ticket every 3 s
//! for `HOURS` (default 2) simulated hours: a new funded ticket mostly, a ticket already
//! seen (5%), an unknown barcode (3%), a void one (2%).
//!
//! Each stand is a real `Agent` (decide, journal, parallel lookups over loopback) with
//! its own store. One `ManualClock` is shared by the sandbox, the clients and the agents;
//! the simulated time advances 3 s / N between scans, round robin. The background parts
//! are driven in-line on that clock, so that no thread sleeps on it (a sleep on a manual
//! clock moves simulated time). Three designs:
//! - `today`: each stand's refresher (`cache.prefetch_at_start`, then every
//!   `cache.refresh_interval_ms`, keeping `cache.budget_reserve_per_minute` for scans,
//!   a 429 waited out for its `Retry-After` or 60 s) pages the listing itself, one page
//!   per 100 simulated ms at most;
//! - `venue-local`: each stand's fetch loop (`venue::background::FetchStepper`, the
//!   same code as the thread) takes turns at the same rate, against a real PostgreSQL
//!   (a throwaway cluster on loopback): lease, pages, copies every `venue.sync_interval_ms`,
//!   live answers shared; each stand's client keeps to its own local budget only (the
//!   design as first measured, before the shared budget was merged). Lease expiry is the
//!   database's time (real): no stand dies here, so it never expires.
//! - `venue`: the same, and each stand's client gated by the key's shared budget as the
//!   product wires it in venue mode (`app::attach_venue_budget`, `venue.stands = N`).
//!   The fetch loop turns on its own thread marked background
//!   (`ats::mark_thread_background`, as the product's fetch thread), driven in lock-step
//!   (one turn per request, the bench waits for its answer), so its pages draw only from
//!   the `any` pool and leave the scans' reserve.
//!   **Claims are made in-line, not on the decision worker.** The worker claims after
//!   each job and on an idle tick of 500 ms of *real* time (`venue/worker.rs`,
//!   `IDLE_TICK`), while here simulated time runs 10-20x faster than real time: an
//!   allowance lives 5 simulated seconds and is renewed one simulated second ahead, so
//!   the worker would renew late or not at all depending on the machine's load. The
//!   bench therefore makes the worker's claim itself (the same statement,
//!   `SELECT * FROM venue_ats_claim(...)`, on a connection of its own per stand, through
//!   the budget's own `claim_due` / `begin_claim` / `granted`): before each stand's
//!   turns and before each scan (the worker's "after every job" and idle tick), and at
//!   once on the drawing thread when a draw wants a refill (the product's wake-up, which
//!   queues a claim the worker answers within about a millisecond).
//!   **The claim counts the key's minute on the simulated clock.** `venue_ats_claim`
//!   reads `clock_timestamp()`; on the bench's claim connections a `bench_clock` schema
//!   ahead of `pg_catalog` in `search_path` shadows it with the simulated time the bench
//!   sets before each claim (`bench.now_ms`). Without this the database's 60-second
//!   window would span 10-20 simulated minutes and the shared budget would grant the key
//!   a tenth of its limit. The product's SQL is unchanged; leases keep the real time.
//!
//! The stands here do not use the venue redemption ledger (its cost is benches/venue.rs's
//! subject); their ledgers are local.
//!
//! Reported per design and N: ATS calls until every stand has the whole event (the cold
//! start) and over the whole day, answers 429, calls per scan, the simulated time until
//! every stand has the whole event, and scans denied `offline_unknown`.
//!
//! Env: `TICKETS` (40000), `HOURS` (2), `STANDS` (`1,4,16`), `DESIGNS`
//! (`today,venue-local,venue`),
//! `SCRATCH` (a directory for the stores; default /dev/shm when present: call counts do
//! not depend on the disk, and N stores fsyncing every decision would make the run take
//! far longer).
//!
//! `cargo bench --features venue,sandbox --bench venue_day`

mod common;
#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::env_usize;
use concession_agent::agent::prefetch::records_from_listing;
use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::ats::shared_budget::{Claim, Grant, SharePlan};
use concession_agent::ats::wire::EventSummary;
use concession_agent::ats::{
    mark_thread_background, AtsClient, AtsError, RateWindow, SharedBudget,
};
use concession_agent::clock::{ManualClock, SharedClock};
use concession_agent::config::{Config, RawConfig};
use concession_agent::sandbox::{DataSet, Sandbox, SandboxConfig, Stats};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};
use concession_agent::store::Store;
use concession_agent::venue::background::{FetchPlan, FetchStepper};
use concession_agent::venue::budget::{self, key_hash};

const EVENT: &str = "EVENT01";
/// One scan per stand every this often.
const SCAN_EVERY: Duration = Duration::from_secs(3);
/// A background turn (a page) at most this often per stand.
const TURN_EVERY: Duration = Duration::from_millis(100);

fn calls(s: &Stats) -> u64 {
    s.calls_by_command.values().sum::<u64>() + s.polls
}

/// Calls by command, polls apart.
fn by_command(s: &Stats) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = s
        .calls_by_command
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    m.insert("polls".into(), s.polls);
    m
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    Today,
    /// One fetch per event, each stand on its own local budget only (as first measured).
    VenueLocal,
    /// One fetch per event and the key's shared budget (as the product runs in venue mode).
    Venue,
}

impl Design {
    fn venue(self) -> bool {
        self != Design::Today
    }

    fn label(self) -> &'static str {
        match self {
            Design::Today => "per terminal (today)",
            Design::VenueLocal => "venue (one fetch, local budgets)",
            Design::Venue => "venue (one fetch, shared budget)",
        }
    }
}

fn config(url: &str, dir: &Path, terminal: &str, venue: Option<&str>, stands: usize) -> Config {
    let mut text = format!(
        "store_dir = {:?}\nterminal_id = {terminal:?}\nevents = [{EVENT:?}]\n",
        dir.display().to_string()
    );
    if let Some(v) = venue {
        text.push_str(&format!("[venue]\nurl = {v:?}\nstands = {stands}\n"));
    }
    let mut raw = RawConfig::parse(&text, Path::new("bench")).unwrap_or_else(|e| panic!("{e}"));
    raw.ats.url = Some(url.to_string());
    raw.ats.apikey = Some("sandbox-key".into());
    raw.cache.prefetch_at_start = Some(true);
    Config::from_raw(raw).unwrap_or_else(|e| panic!("{e}"))
}

/// Today's refresher of one stand, driven in-line (see the module docs).
struct Pager {
    running: bool,
    cursor: Option<String>,
    next_pass: Instant,
    not_before: Instant,
    first_complete: Option<Instant>,
}

impl Pager {
    /// One page if one is due and the budget allows; true when a page was written.
    fn step(&mut self, ats: &AtsClient, store: &Store, clock: &SharedClock, cfg: &Config) -> bool {
        let now = clock.now();
        if now < self.not_before {
            return false;
        }
        if !self.running {
            if now < self.next_pass {
                return false;
            }
            self.running = true;
            self.cursor = None;
        }
        if ats.budget_remaining().0 <= cfg.cache.budget_reserve_per_minute {
            self.not_before = now + Duration::from_millis(500);
            return false;
        }
        match ats.get_av_barcodes_event_page(EVENT, self.cursor.as_deref(), None) {
            Ok(page) => {
                let summary = EventSummary {
                    event_name: EVENT.into(),
                    event_date: None,
                    event_time: None,
                };
                let last = page.rows.last().map(|(b, _)| b.clone());
                let records = records_from_listing(&summary, page.rows, clock.wall_ms());
                let _ = store.put_records(records.iter());
                if !page.more || last.is_none() {
                    self.running = false;
                    self.next_pass = now + cfg.cache.refresh_interval;
                    self.first_complete.get_or_insert(now);
                } else {
                    self.cursor = last;
                }
                true
            }
            Err(e) => {
                let wait = match e {
                    AtsError::RateBudget {
                        window: RateWindow::Day,
                        ..
                    } => cfg.cache.refresh_interval,
                    AtsError::RateBudget { retry_after, .. } => retry_after,
                    AtsError::RateLimited { retry_after, .. } => {
                        retry_after.unwrap_or(Duration::from_secs(60))
                    }
                    _ => Duration::from_secs(5),
                };
                self.not_before = now + wait.max(TURN_EVERY);
                false
            }
        }
    }
}

/// The schema whose `clock_timestamp()` shadows PostgreSQL's on the claim connections:
/// the simulated time the bench last set (`bench.now_ms`), so the venue counts the key's
/// minute on the clock the sandbox counts it on (see the module docs).
const SIM_CLOCK_SQL: &str = "
CREATE SCHEMA bench_clock;
CREATE FUNCTION bench_clock.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS
  $$ SELECT to_timestamp(current_setting('bench.now_ms')::float8 / 1000.0) $$;
";

/// One stand's claims on the key's shared budget, made in-line (see the module docs):
/// the same statement as the decision worker's (`venue/budget.rs`, `Worker::claim`).
struct Claimer {
    budget: Arc<SharedBudget>,
    plan: SharePlan,
    key_hash: String,
    terminal: String,
    pg: Mutex<postgres::Client>,
    clock: SharedClock,
    claims: AtomicU64,
    short: AtomicU64,
    failed: AtomicU64,
}

impl Claimer {
    /// A claim if one is due (the worker's `budget_tick`).
    fn tick(&self) {
        if !self.budget.claim_due() {
            return;
        }
        let Some(c) = self.budget.begin_claim() else {
            return;
        };
        let mut pg = self.pg.lock().unwrap_or_else(|e| e.into_inner());
        match claim(
            &mut pg,
            &self.key_hash,
            &self.terminal,
            &self.plan,
            &c,
            &self.clock,
        ) {
            Ok(g) => {
                self.claims.fetch_add(1, Ordering::Relaxed);
                if g.scan < c.want_scan || g.any < c.want_any {
                    self.short.fetch_add(1, Ordering::Relaxed);
                }
                self.budget.granted(&c, g);
            }
            Err(e) => {
                eprintln!("  claim failed: {e}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.budget.claim_failed(&c);
            }
        }
    }
}

fn claim(
    pg: &mut postgres::Client,
    key_hash: &str,
    terminal: &str,
    p: &SharePlan,
    c: &Claim,
    clock: &SharedClock,
) -> Result<Grant, postgres::Error> {
    let sql = format!(
        "SET bench.now_ms = '{}'; {}",
        clock.wall_ms(),
        budget::claim_sql(key_hash, terminal, p, c)
    );
    let rows = pg.simple_query(&sql)?;
    Ok(budget::grant_of(&rows).unwrap_or_else(|e| panic!("{e}")))
}

/// A stand's fetch loop on its own thread, marked background as the product's fetch
/// thread is (its pages draw only from the shared budget's `any` pool), turned in
/// lock-step by the bench: one turn per request, answered with (busy, copied_seq).
struct StepperThread {
    turn: mpsc::Sender<()>,
    done: mpsc::Receiver<(bool, i64)>,
    copied_seq: i64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StepperThread {
    fn start(mut stepper: FetchStepper) -> StepperThread {
        let (turn, rx) = mpsc::channel::<()>();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            mark_thread_background();
            while rx.recv().is_ok() {
                let busy = stepper.turn();
                let seq = stepper.status().copied_seq;
                if tx.send((busy, seq)).is_err() {
                    break;
                }
            }
        });
        StepperThread {
            turn,
            done,
            copied_seq: 0,
            thread: Some(thread),
        }
    }

    fn turn(&mut self) -> bool {
        if self.turn.send(()).is_err() {
            return false;
        }
        match self.done.recv() {
            Ok((busy, seq)) => {
                self.copied_seq = seq;
                busy
            }
            Err(_) => false,
        }
    }

    fn stop(mut self) {
        drop(self.turn);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct StandSim {
    agent: Agent,
    store: Store,
    client: Arc<AtsClient>,
    pager: Option<Pager>,
    stepper: Option<StepperThread>,
    claimer: Option<Arc<Claimer>>,
    has_all: Option<Duration>,
}

/// What the stand scans next.
struct Workload {
    rng: common::Rng,
    tickets: usize,
    seen: Vec<String>,
    unknown: u64,
}

impl Workload {
    fn next(&mut self) -> String {
        let roll = self.rng.below(100);
        match roll {
            0..=1 => "100000000005".into(),
            2..=4 => {
                self.unknown += 1;
                format!("{:012}", 900_000_000_000u64 + self.unknown)
            }
            5..=9 if !self.seen.is_empty() => {
                let i = self.rng.below(self.seen.len());
                self.seen[i].clone()
            }
            _ => {
                let b = format!(
                    "{:012}",
                    200_000_000_000u64 + self.rng.below(self.tickets) as u64
                );
                self.seen.push(b.clone());
                b
            }
        }
    }
}

#[derive(Debug, Default)]
struct Row {
    cold_calls: u64,
    all_at: Option<Duration>,
    total_calls: u64,
    r429: u64,
    scans: u64,
    offline_unknown: u64,
    by_reason: BTreeMap<String, u64>,
    real_s: f64,
    cold_by_command: BTreeMap<String, u64>,
    total_by_command: BTreeMap<String, u64>,
    /// Claims answered, answered with less than asked, failed (shared budget only).
    claims: (u64, u64, u64),
}

fn newest_change(pg: &mut postgres::Client) -> i64 {
    pg.query_one(
        "SELECT coalesce(max(change_seq), 0) FROM venue_tickets",
        &[],
    )
    .map(|r| r.get(0))
    .unwrap_or(0)
}

fn pass_done(pg: &mut postgres::Client) -> bool {
    pg.query_opt(
        "SELECT last_complete_pass_ms IS NOT NULL FROM venue_fetch_leases WHERE event = lower($1)",
        &[&EVENT],
    )
    .ok()
    .flatten()
    .is_some_and(|r| r.get(0))
}

fn run(
    design: Design,
    n: usize,
    tickets: usize,
    hours: u64,
    scratch: &Path,
    cluster: &pg::Cluster,
) -> Row {
    let real = Instant::now();
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
    let dir = tempfile::Builder::new()
        .prefix("venue-day-")
        .tempdir_in(scratch)
        .unwrap_or_else(|e| panic!("scratch: {e}"));
    let db = design.venue().then(|| {
        cluster.create_db(&format!(
            "day_{n}_{}",
            if design == Design::Venue {
                "shared"
            } else {
                "local"
            }
        ))
    });
    let mut pg = db.as_ref().map(|url| {
        concession_agent::venue::migrate_now(
            &config(&sandbox.base_url(), dir.path(), "x", Some(url), n)
                .venue
                .unwrap_or_else(|| panic!("venue config")),
            "bench",
        )
        .unwrap_or_else(|e| panic!("migrate: {e}"));
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect {url}: {e}"))
    });
    if design == Design::Venue {
        if let Some(pg) = pg.as_mut() {
            pg.batch_execute(SIM_CLOCK_SQL)
                .unwrap_or_else(|e| panic!("sim clock: {e}"));
        }
    }
    let mut stands: Vec<StandSim> = (0..n)
        .map(|i| {
            let terminal = format!("stand-{:02}", i + 1);
            let cfg = config(
                &sandbox.base_url(),
                &dir.path().join(&terminal),
                &terminal,
                db.as_deref(),
                n,
            );
            let link = app::connect_ats(&cfg, shared.clone()).unwrap_or_else(|e| panic!("{e}"));
            // The product's wiring of the key's budget (app::attach_venue_budget); its
            // claims are made here, in-line, instead of on the decision worker.
            let claimer = match (&db, design) {
                (Some(url), Design::Venue) => {
                    drop(app::attach_venue_budget(&cfg, &link.client));
                    let budget = Arc::clone(
                        link.client
                            .shared_budget()
                            .unwrap_or_else(|| panic!("no shared budget attached")),
                    );
                    let mut c = postgres::Client::connect(url, postgres::NoTls)
                        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
                    c.batch_execute("SET search_path = bench_clock, pg_catalog, public")
                        .unwrap_or_else(|e| panic!("search_path: {e}"));
                    let claimer = Arc::new(Claimer {
                        budget: Arc::clone(&budget),
                        plan: SharePlan {
                            per_minute: cfg.ats.rate_per_minute,
                            per_day: cfg.ats.rate_per_day,
                            stands: n as u32,
                            reserve_per_minute: cfg.cache.budget_reserve_per_minute,
                        },
                        key_hash: key_hash(cfg.ats.apikey.expose()),
                        terminal: terminal.clone(),
                        pg: Mutex::new(c),
                        clock: shared.clone(),
                        claims: AtomicU64::new(0),
                        short: AtomicU64::new(0),
                        failed: AtomicU64::new(0),
                    });
                    // A draw that wants a refill claims at once on the drawing thread
                    // (the product queues the claim to its worker, which answers in
                    // about a millisecond of real time).
                    let weak = Arc::downgrade(&claimer);
                    budget.set_wake(move || {
                        if let Some(c) = weak.upgrade() {
                            c.tick();
                        }
                    });
                    // The first allowance before the agent serves (as start_venue_with).
                    claimer.tick();
                    Some(claimer)
                }
                _ => None,
            };
            let store = app::open_store(&cfg).unwrap_or_else(|e| panic!("{e}"));
            #[allow(unused_mut)]
            let mut agent = Agent::new(
                cfg.clone(),
                Arc::clone(&link.client),
                store.clone(),
                shared.clone(),
                Outputs::default(),
            );
            let (pager, stepper) = match &cfg.venue {
                Some(v) if design.venue() => {
                    let plan = FetchPlan {
                        events: cfg.events.clone(),
                        at_start: cfg.cache.prefetch_at_start,
                        refresh_interval: cfg.cache.refresh_interval,
                        reserve_per_minute: cfg.cache.budget_reserve_per_minute,
                        lease: v.lease,
                        sync_interval: v.sync_interval,
                    };
                    let s = FetchStepper::new(
                        v.clone(),
                        plan,
                        Arc::clone(&link.client),
                        store.clone(),
                        shared.clone(),
                    );
                    agent.set_venue_share(s.share());
                    (None, Some(StepperThread::start(s)))
                }
                _ => (
                    Some(Pager {
                        running: false,
                        cursor: None,
                        next_pass: shared.now(),
                        not_before: shared.now(),
                        first_complete: None,
                    }),
                    None,
                ),
            };
            StandSim {
                agent,
                store,
                client: link.client,
                pager,
                stepper,
                claimer,
                has_all: None,
            }
        })
        .collect();
    let cfg0 = config(&sandbox.base_url(), dir.path(), "x", db.as_deref(), n);
    let t0 = shared.now();
    let step = SCAN_EVERY / n as u32;
    let turns = (step.as_millis() / TURN_EVERY.as_millis()).max(1) as usize;
    let steps = (hours * 3600 / SCAN_EVERY.as_secs()) as usize * n;
    let mut wl = Workload {
        rng: common::Rng(2026 + n as u64),
        tickets,
        seen: Vec::new(),
        unknown: 0,
    };
    let mut row = Row::default();
    let mut target_seq: Option<i64> = None;
    for k in 0..steps {
        for s in stands.iter_mut() {
            // The worker's tick (after every job, and when idle).
            if let Some(c) = &s.claimer {
                c.tick();
            }
            for _ in 0..turns {
                let busy = match (&mut s.pager, &mut s.stepper) {
                    (Some(p), _) => p.step(&s.client, &s.store, &shared, &cfg0),
                    (_, Some(st)) => st.turn(),
                    _ => false,
                };
                if !busy {
                    break;
                }
            }
        }
        // Who has the whole event now?
        if row.all_at.is_none() {
            let now = shared.now() - t0;
            match design {
                Design::Today => {
                    for s in stands.iter_mut() {
                        if s.has_all.is_none() {
                            if let Some(t) = s.pager.as_ref().and_then(|p| p.first_complete) {
                                s.has_all = Some(t - t0);
                            }
                        }
                    }
                }
                Design::Venue | Design::VenueLocal => {
                    if let Some(pg) = pg.as_mut() {
                        if target_seq.is_none() && k % n == 0 && pass_done(pg) {
                            target_seq = Some(newest_change(pg));
                        }
                    }
                    if let Some(target) = target_seq {
                        for s in stands.iter_mut() {
                            let copied = s.stepper.as_ref().map_or(0, |st| st.copied_seq);
                            if s.has_all.is_none() && copied >= target {
                                s.has_all = Some(now);
                            }
                        }
                    }
                }
            }
            if stands.iter().all(|s| s.has_all.is_some()) {
                row.all_at = stands.iter().filter_map(|s| s.has_all).max();
                let st = sandbox.stats();
                row.cold_calls = calls(&st);
                row.cold_by_command = by_command(&st);
            }
        }
        let text = wl.next();
        let s = &mut stands[k % n];
        if let Some(c) = &s.claimer {
            c.tick();
        }
        let ev = ScanEvent {
            input: classify(&text),
            amount_cents: None,
            request_id: None,
            received_at_ms: shared.wall_ms(),
            origin: Origin::Stdin,
        };
        let d = s
            .agent
            .handle_scan(&ev)
            .unwrap_or_else(|e| panic!("scan {k}: {e}"));
        *row.by_reason
            .entry(d.reason.as_str().to_string())
            .or_default() += 1;
        s.agent.tick();
        row.scans += 1;
        clock.advance(step);
    }
    // Let late lookups land before reading the stats.
    std::thread::sleep(Duration::from_millis(300));
    let st = sandbox.stats();
    row.total_calls = calls(&st);
    row.total_by_command = by_command(&st);
    row.r429 = st.status(429);
    row.offline_unknown = row.by_reason.get("offline_unknown").copied().unwrap_or(0);
    for s in stands {
        if let Some(c) = &s.claimer {
            row.claims.0 += c.claims.load(Ordering::Relaxed);
            row.claims.1 += c.short.load(Ordering::Relaxed);
            row.claims.2 += c.failed.load(Ordering::Relaxed);
            c.budget.set_wake(|| {});
        }
        if let Some(t) = s.stepper {
            t.stop();
        }
        s.agent.shutdown();
    }
    sandbox.shutdown();
    row.real_s = real.elapsed().as_secs_f64();
    row
}

fn main() {
    let tickets = env_usize("TICKETS", 40_000);
    let hours = env_usize("HOURS", 2).max(1) as u64;
    let ns: Vec<usize> = std::env::var("STANDS")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let designs: Vec<Design> = std::env::var("DESIGNS")
        .unwrap_or_else(|_| "today,venue-local,venue".into())
        .split(',')
        .filter_map(|d| match d.trim() {
            "today" => Some(Design::Today),
            "venue-local" => Some(Design::VenueLocal),
            "venue" => Some(Design::Venue),
            _ => None,
        })
        .collect();
    let scratch: PathBuf = std::env::var_os("SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            }
        });
    println!("{}", common::machine(&scratch));
    let cluster = pg::Cluster::new(pg::ClusterOptions::default());
    println!(
        "venue_day: {tickets} tickets, {hours} simulated h, one scan per {} s per stand, \
         key 80/min 5000/day, ManualClock; postgres {}",
        SCAN_EVERY.as_secs(),
        cluster.psql("postgres", "SHOW server_version")
    );
    println!(
        "\n| design | stands | cold-start calls | every stand has the event after (sim s) | \
         calls in {hours} h | 429 | calls/scan | offline_unknown | real s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &ns {
        for &d in &designs {
            let r = run(d, n, tickets, hours, &scratch, &cluster);
            println!(
                "| {} | {n} | {} | {} | {} | {} | {:.3} | {} | {:.0} |",
                d.label(),
                if r.all_at.is_some() {
                    r.cold_calls.to_string()
                } else {
                    "never".into()
                },
                r.all_at
                    .map(|t| format!("{:.0}", t.as_secs_f64()))
                    .unwrap_or_else(|| "never".into()),
                r.total_calls,
                r.r429,
                r.total_calls as f64 / r.scans.max(1) as f64,
                r.offline_unknown,
                r.real_s
            );
            eprintln!("  decisions by reason: {:?}", r.by_reason);
            eprintln!("  cold-start calls by command: {:?}", r.cold_by_command);
            eprintln!("  calls by command in the day: {:?}", r.total_by_command);
            if d == Design::Venue {
                eprintln!(
                    "  claims: {} answered, {} short of what they asked, {} failed",
                    r.claims.0, r.claims.1, r.claims.2
                );
            }
        }
    }
}
