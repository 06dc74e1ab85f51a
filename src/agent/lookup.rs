//! Asking ATS about one ticket, off the scan loop.
//!
//! A small pool of worker threads runs ATS calls. A ticket lookup is two calls,
//! `verify_barcode` and `get_av_barcodes`, sent to two workers at once so a scan pays
//! one round trip, not two. Whichever worker finishes second assembles the
//! [`TicketRecord`], writes it to the cache and sends it to the waiting loop; if the loop
//! has already decided (deadline passed), the record still refreshes the cache for the
//! next scan. Every call's outcome feeds the connectivity tracker, except the late
//! outcomes of a lookup the loop gave up on: the loop counted that miss already.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::agent::health::Health;
use crate::ats::{AtsClient, AtsError, RateWindow};
use crate::clock::SharedClock;
use crate::store::Store;
use crate::ticket::{TicketInfo, TicketRecord, ValueLine};

/// What a lookup produced.
pub type LookupResult = Result<TicketRecord, AtsError>;

type VerifyAnswer = Result<Option<TicketInfo>, AtsError>;
type ValueAnswer = Result<Option<Vec<ValueLine>>, AtsError>;

/// One lookup's meeting point for its two halves.
struct Pair {
    barcode: String,
    event: Option<String>,
    halves: Mutex<(Option<VerifyAnswer>, Option<ValueAnswer>)>,
    reply: Sender<LookupResult>,
    /// Set when the loop stopped waiting and counted the miss against connectivity;
    /// the calls' own outcomes are then not counted a second time.
    abandoned: AtomicBool,
}

/// A lookup in flight.
pub struct Pending {
    pair: Arc<Pair>,
    rx: Receiver<LookupResult>,
}

impl Pending {
    /// Waits up to `budget` for the record. On a timeout the lookup is abandoned: its
    /// calls go on and still refresh the cache, but their outcomes no longer feed the
    /// connectivity tracker (the caller counts the miss once).
    pub fn wait(&self, budget: Duration) -> Result<LookupResult, RecvTimeoutError> {
        let answer = self.rx.recv_timeout(budget);
        if answer.is_err() {
            self.pair.abandoned.store(true, Ordering::SeqCst);
        }
        answer
    }
}

enum Job {
    Verify(Arc<Pair>),
    Value(Arc<Pair>),
    Probe(Sender<bool>),
}

/// Shared by every worker.
struct Ctx {
    ats: Arc<AtsClient>,
    store: Store,
    health: Arc<Mutex<Health>>,
    clock: SharedClock,
}

/// The worker pool.
pub struct Lookups {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Lookups {
    /// Starts `workers` threads (at least 2, so both halves of a lookup run at once).
    pub fn start(
        ats: Arc<AtsClient>,
        store: Store,
        health: Arc<Mutex<Health>>,
        clock: SharedClock,
        workers: usize,
    ) -> Lookups {
        // Bounded: when ATS hangs, queued lookups are refused instead of piling up.
        let workers = workers.max(2);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(workers * 4);
        let ctx = Arc::new(Ctx {
            ats,
            store,
            health,
            clock,
        });
        let workers = (0..workers)
            .filter_map(|i| {
                let rx: Receiver<Job> = rx.clone();
                let ctx = Arc::clone(&ctx);
                std::thread::Builder::new()
                    .name(format!("ats-worker-{i}"))
                    .spawn(move || {
                        for job in rx.iter() {
                            run(&ctx, job);
                        }
                    })
                    .map_err(|e| log::error!("cannot start ats worker: {e}"))
                    .ok()
            })
            .collect();
        Lookups {
            jobs: Some(tx),
            workers,
        }
    }

    /// Starts a lookup; wait for the record (or the error) on the returned [`Pending`].
    /// Returns `None` when the pool is saturated (ATS is hanging): decide without it.
    pub fn lookup(&self, barcode: &str, event: Option<&str>) -> Option<Pending> {
        let jobs = self.jobs.as_ref()?;
        let (reply, rx) = crossbeam_channel::bounded(1);
        let pair = Arc::new(Pair {
            barcode: barcode.to_string(),
            event: event.map(str::to_string),
            halves: Mutex::new((None, None)),
            reply,
            abandoned: AtomicBool::new(false),
        });
        // Both halves or neither: a lone half would never complete the pair.
        if jobs.len() + 2 > jobs.capacity().unwrap_or(usize::MAX) {
            return None;
        }
        jobs.try_send(Job::Verify(Arc::clone(&pair))).ok()?;
        jobs.try_send(Job::Value(Arc::clone(&pair))).ok()?;
        Some(Pending { pair, rx })
    }

    /// Starts a connectivity probe (`ping`); `true` arrives when ATS answered well.
    pub fn probe(&self) -> Option<Receiver<bool>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.jobs.as_ref()?.try_send(Job::Probe(tx)).ok()?;
        Some(rx)
    }

    /// Stops taking jobs and waits up to `grace` for running calls to end.
    pub fn shutdown(mut self, grace: Duration) {
        self.jobs = None;
        let until = Instant::now() + grace;
        for w in self.workers.drain(..) {
            while !w.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
            // A worker stuck in a black-holed call is left to its read timeout; the
            // process may exit under it, which loses nothing (nothing it holds is journaled).
        }
    }
}

/// Whether an outcome says ATS is reachable and healthy (API errors are answers).
fn reachable(e: &AtsError) -> bool {
    !e.is_retryable() && !matches!(e, AtsError::RateBudget { .. })
}

fn record_health(ctx: &Ctx, ok: bool, latency: Duration) {
    if let Ok(mut h) = ctx.health.lock() {
        h.record(ok, latency);
    }
}

fn run(ctx: &Ctx, job: Job) {
    let started = ctx.clock.now();
    match job {
        Job::Probe(reply) => {
            let ok = ctx.ats.ping().is_ok();
            let latency = ctx.clock.now().saturating_duration_since(started);
            if let Ok(mut h) = ctx.health.lock() {
                h.probe(ok, latency);
            }
            let _ = reply.send(ok);
        }
        Job::Verify(pair) => {
            let answer = ctx.ats.verify_barcode(&pair.barcode, pair.event.as_deref());
            note(ctx, &pair, &answer, started);
            complete(ctx, &pair, Some(answer), None);
        }
        Job::Value(pair) => {
            let answer = ctx.ats.get_av_barcodes(&pair.barcode);
            note(ctx, &pair, &answer, started);
            complete(ctx, &pair, None, Some(answer));
        }
    }
}

fn note<T>(ctx: &Ctx, pair: &Pair, answer: &Result<T, AtsError>, started: Instant) {
    if pair.abandoned.load(Ordering::SeqCst) {
        return;
    }
    let latency = ctx.clock.now().saturating_duration_since(started);
    match answer {
        Ok(_) => record_health(ctx, true, latency),
        // The server closed the budget (429, `Rate-Limit-Available: 0`): ATS is
        // throttling this terminal, which is a reason to be offline (docs/agent.md, "Connectivity").
        Err(AtsError::RateBudget {
            window: RateWindow::Server,
            ..
        }) => record_health(ctx, false, latency),
        Err(AtsError::RateBudget { .. }) => {} // our own refusal says nothing of the network
        Err(e) => record_health(ctx, reachable(e), latency),
    }
}

fn complete(ctx: &Ctx, pair: &Pair, verify: Option<VerifyAnswer>, value: Option<ValueAnswer>) {
    let both = {
        let mut h = match pair.halves.lock() {
            Ok(h) => h,
            Err(e) => e.into_inner(),
        };
        if verify.is_some() {
            h.0 = verify;
        }
        if value.is_some() {
            h.1 = value;
        }
        match (h.0.take(), h.1.take()) {
            (Some(a), Some(b)) => Some((a, b)),
            (a, b) => {
                h.0 = a;
                h.1 = b;
                None
            }
        }
    };
    let Some((verify, value)) = both else { return };
    let result = assemble(&pair.barcode, verify, value, ctx.clock.wall_ms());
    if let Ok(record) = &result {
        if let Err(e) = ctx.store.put_record(record) {
            log::warn!(
                "cache write failed: {}",
                crate::redact::masked_error(&e, &pair.barcode)
            );
        }
    }
    let _ = pair.reply.send(result);
}

/// Joins the two answers into one record. An unknown barcode is a record too (a cached
/// negative answer), so repeat scans of junk cost no calls.
pub fn assemble(
    barcode: &str,
    verify: VerifyAnswer,
    value: ValueAnswer,
    now_ms: u64,
) -> LookupResult {
    let info = verify?;
    let value = match (value, &info) {
        (Ok(v), _) => v.unwrap_or_default(),
        // Unknown to verify: the value answer cannot matter.
        (Err(_), None) => Vec::new(),
        (Err(e), Some(_)) => return Err(e),
    };
    Ok(TicketRecord {
        barcode: barcode.to_string(),
        info,
        value,
        fetched_at_ms: now_ms,
    })
}
