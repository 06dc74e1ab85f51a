//! The venue worker: one thread that owns the database connection.
//!
//! The scan loop talks to it only through channels and waits with `recv_timeout`, so a
//! database that refuses, hangs (accepts and never answers), restarts or fails over
//! costs a scan at most `venue.timeout_ms` per step, never the decision deadline. The
//! worker connects, reconnects and drops the `Client` itself; a `Client` that must be
//! dropped is handed to a short-lived thread, since dropping one can block until its
//! connection closes (rust-postgres #755).
//!
//! A redemption is two steps on one open transaction:
//!
//! 1. [`VenueHandle::begin`]: the worker replays what is pending, then `BEGIN`s, creates
//!    the ticket's missing lines and locks them (`SELECT ... FOR UPDATE`) and hands them
//!    to the loop, which builds the ledger and calls `decide`.
//! 2. [`VenueTxn::commit`]: the loop has journaled the decision (its id is now fixed);
//!    the worker inserts it keyed by that id, updates the lines and `COMMIT`s.
//!
//! Dropping a [`VenueTxn`] (the loop gave up, or decided nothing that moves value)
//! rolls it back; so does the worker when the loop's answer does not come within the
//! step's deadline. No transaction is ever open during an ATS call: the loop has its
//! evidence before step 1.
//!
//! Replay ("catch-up"): every journal entry of this terminal is uploaded, in order,
//! each in its own transaction keyed by its id (`ON CONFLICT (id) DO NOTHING`), up to
//! the newest. The watermark (all entries up to it are in the venue) lives in memory
//! and in `venue_uploaded` in the store directory; losing it only costs re-uploads that
//! change nothing. On every new connection it is checked against the database (a
//! promoted standby may have missed the last commits of an asynchronous primary): when
//! the venue holds fewer of this terminal's entries than the watermark says, the whole
//! journal is uploaded again. Catch-up runs before every `begin` (so pending decisions
//! reach the venue before new online ones), when the worker is idle, at start and for
//! `venue sync`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use postgres::Client;

use super::budget::BudgetLink;
use super::config::VenueSettings;
use super::db::{self, Recorded};
use super::error::VenueError;
use super::ledger::VenueLine;
use super::txn::{Begin, CommitOutcome, Step, VenueTxn};
use super::watermark::{read_watermark, Flushed, WATERMARK_FILE};
use super::{connect, schema};
use crate::redact::mask_barcode;
use crate::store::Store;

/// How often an idle worker retries a lost connection and replays.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// The least time between two failed connection attempts made for scans (a lost
/// connection is retried at once).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

pub(super) enum Job {
    /// A draw found the ATS allowance low: claim now (`budget.rs`).
    Budget,
    Begin {
        barcode: String,
        seed: Vec<VenueLine>,
        deadline: Instant,
        reply: Sender<Result<Vec<VenueLine>, String>>,
        steps: Receiver<Step>,
    },
    Start {
        migrate: bool,
        reply: Sender<Result<Report, VenueError>>,
    },
    Sync {
        reply: Sender<Result<Report, VenueError>>,
    },
    Upload {
        deadline: Instant,
        reply: Sender<Result<Report, VenueError>>,
    },
}

/// What a start or a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Migrations applied now.
    pub migrated: Vec<i32>,
    /// Entries uploaded now (new in the venue).
    pub uploaded: u64,
    /// Of those, entries that overdrew a line.
    pub overdrafts: u64,
    /// Entries still not in the venue.
    pub pending: u64,
}

/// What the loop and commands can read about the worker.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) connected: AtomicBool,
    pub(super) pending: AtomicU64,
    /// When the current job started (ms since `epoch`, +1); 0 when idle.
    pub(super) busy_since: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

/// A snapshot of the worker's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueStatus {
    /// The worker holds a connection.
    pub connected: bool,
    /// Journal entries not yet confirmed in the venue.
    pub pending: u64,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The loop's side of the venue worker.
pub struct VenueHandle {
    jobs: Option<Sender<Job>>,
    shared: Arc<Shared>,
    epoch: Instant,
    timeout: Duration,
    thread: Option<JoinHandle<()>>,
    /// Kept to start a new worker when one is stuck ([`VenueHandle::recover_if_stuck`]).
    settings: VenueSettings,
    store: Store,
    /// One database round trip longer than this: the worker is stuck.
    stuck_after: Duration,
    /// The key's ATS budget, claimed by the worker (`budget.rs`).
    budget: Option<BudgetLink>,
    /// Shared with the status publisher (heartbeats, pending uploads).
    link: crate::status::VenueLink,
}

impl VenueHandle {
    /// Starts the worker for `store` (it reads the journal to replay it). Returns at
    /// once: the worker connects in the background.
    pub fn start(settings: VenueSettings, store: Store) -> Result<VenueHandle, VenueError> {
        VenueHandle::start_with_budget(settings, store, None)
    }

    /// [`start`](Self::start), the worker also claiming the key's ATS budget for `budget`.
    pub fn start_with_budget(
        settings: VenueSettings,
        store: Store,
        budget: Option<BudgetLink>,
    ) -> Result<VenueHandle, VenueError> {
        let epoch = Instant::now();
        let timeout = settings.timeout;
        // A job waits at most a statement, the loop's step and a statement; a server
        // that ACKs and never answers (hung, or a broken middlebox) exceeds it forever.
        let stuck_after = settings.statement_timeout * 2 + timeout + Duration::from_secs(1);
        let link = crate::status::VenueLink::default();
        let (jobs, shared, thread) = spawn_worker(&settings, &store, epoch, &budget, &link)?;
        Ok(VenueHandle {
            budget,
            link,
            jobs: Some(jobs),
            shared,
            epoch,
            timeout,
            thread: Some(thread),
            settings,
            store,
            stuck_after,
        })
    }

    /// When the worker has waited on one database round trip for longer than any
    /// server-side timeout allows (a server that accepts and never answers: no timeout
    /// of the client covers it, rust-postgres #869), leaves it behind and starts a new
    /// worker with a new connection. The old thread ends once its call returns (its job
    /// channel is closed); whatever it still commits is a journal entry the new one
    /// also uploads by id, so nothing counts twice. Returns true when it did.
    pub fn recover_if_stuck(&mut self) -> bool {
        let Some(busy) = self.busy_for().filter(|b| *b > self.stuck_after) else {
            return false;
        };
        match spawn_worker(
            &self.settings,
            &self.store,
            self.epoch,
            &self.budget,
            &self.link,
        ) {
            Ok((jobs, shared, thread)) => {
                log::warn!(
                    "venue worker stuck for {} ms on the database: starting a new one",
                    busy.as_millis()
                );
                self.jobs = Some(jobs);
                self.shared = shared;
                // Detached: it may never return.
                drop(self.thread.replace(thread));
                true
            }
            Err(e) => {
                log::error!("venue: cannot start a new worker: {e}");
                false
            }
        }
    }

    /// What the status publisher shares with the worker (`venue/heartbeat.rs`).
    pub fn status_link(&self) -> crate::status::VenueLink {
        self.link.clone()
    }

    /// `venue.timeout_ms`: how long a scan waits for one step.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The key's ATS calls left venue-wide (this minute, today) as of this stand's last
    /// answered claim; `None` without a budget or before one (docs/venue.md).
    pub fn budget_left(&self) -> Option<(u32, u32)> {
        self.budget.as_ref().and_then(|b| b.budget().venue_left())
    }

    /// Where this stand's ATS calls come from now (venue allowance, static share, hold).
    pub fn budget_mode(&self) -> Option<crate::ats::shared_budget::BudgetMode> {
        self.budget.as_ref().map(|b| b.budget().mode())
    }

    /// The worker's state.
    pub fn status(&self) -> VenueStatus {
        VenueStatus {
            connected: self.shared.connected.load(Ordering::SeqCst),
            pending: self.shared.pending.load(Ordering::SeqCst),
            last_error: self.shared.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// How long the worker has been busy with one job (`None`: idle).
    fn busy_for(&self) -> Option<Duration> {
        let since = self.shared.busy_since.load(Ordering::SeqCst);
        (since != 0).then(|| {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            Duration::from_millis(now.saturating_sub(since))
        })
    }

    /// Step 1: lock the ticket's lines (creating them from `seed` when the venue has
    /// never seen the ticket). Waits at most `wait`.
    pub fn begin(&self, barcode: &str, seed: Vec<VenueLine>, wait: Duration) -> Begin {
        if let Some(busy) = self.busy_for().filter(|b| *b > self.timeout) {
            // Stuck on an earlier request (a hung database): do not queue behind it.
            return Begin::Away(format!(
                "venue worker busy for {} ms (database slow or hung)",
                busy.as_millis()
            ));
        }
        let Some(jobs) = &self.jobs else {
            return Begin::Away("venue worker stopped".into());
        };
        let (reply_tx, reply_rx) = bounded(1);
        let (steps_tx, steps_rx) = bounded(1);
        let job = Job::Begin {
            barcode: barcode.to_string(),
            seed,
            deadline: Instant::now() + wait,
            reply: reply_tx,
            steps: steps_rx,
        };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Begin::Away("venue worker queue full".into()),
            Err(TrySendError::Disconnected(_)) => {
                return Begin::Away("venue worker stopped".into())
            }
        }
        match reply_rx.recv_timeout(wait) {
            Ok(Ok(lines)) => Begin::Locked(VenueTxn {
                lines,
                steps: Some(steps_tx),
            }),
            Ok(Err(e)) => Begin::Away(e),
            Err(RecvTimeoutError::Timeout) => Begin::Away(format!(
                "no answer from the venue database within {} ms",
                wait.as_millis()
            )),
            Err(RecvTimeoutError::Disconnected) => Begin::Away("venue worker stopped".into()),
        }
    }

    /// Connects, applies migrations (when `migrate`) and replays, waiting at most
    /// `wait`. `Err(FutureSchema)` means this agent must not run against the database.
    pub fn start_up(&self, migrate: bool, wait: Duration) -> Result<Report, VenueError> {
        self.call(|reply| Job::Start { migrate, reply }, wait)
    }

    /// Uploads what is pending now (a decision made without a venue transaction), if the
    /// venue answers within `wait`. True when nothing is left pending.
    pub fn upload_now(&self, wait: Duration) -> bool {
        if self.busy_for().is_some_and(|b| b > self.timeout) {
            return false;
        }
        let Some(jobs) = &self.jobs else {
            return false;
        };
        let (tx, rx) = bounded(1);
        let job = Job::Upload {
            deadline: Instant::now() + wait,
            reply: tx,
        };
        if jobs.try_send(job).is_err() {
            return false;
        }
        matches!(rx.recv_timeout(wait), Ok(Ok(r)) if r.pending == 0)
    }

    /// Uploads every pending entry now (`venue sync`), waiting at most `wait`.
    pub fn sync(&self, wait: Duration) -> Result<Report, VenueError> {
        self.call(|reply| Job::Sync { reply }, wait)
    }

    fn call(
        &self,
        job: impl FnOnce(Sender<Result<Report, VenueError>>) -> Job,
        wait: Duration,
    ) -> Result<Report, VenueError> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| VenueError::Away("venue worker stopped".into()))?;
        let (tx, rx) = bounded(1);
        jobs.send_timeout(job(tx), wait)
            .map_err(|_| VenueError::Away("venue worker busy".into()))?;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(_) => Err(VenueError::Away(format!(
                "no answer from the venue database within {} ms",
                wait.as_millis()
            ))),
        }
    }

    /// Stops the worker, waiting at most `wait` for it (a worker stuck on a hung
    /// database is left behind: the process is ending).
    pub fn shutdown(mut self, wait: Duration) {
        self.jobs = None;
        // The budget's wake-up holds a sender too; the worker ends when the last goes.
        self.budget.iter().for_each(BudgetLink::unwire);
        if let Some(t) = self.thread.take() {
            let end = Instant::now() + wait;
            while !t.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

type Spawned = (Sender<Job>, Arc<Shared>, JoinHandle<()>);

fn spawn_worker(
    settings: &VenueSettings,
    store: &Store,
    epoch: Instant,
    budget: &Option<BudgetLink>,
    link: &crate::status::VenueLink,
) -> Result<Spawned, VenueError> {
    let (tx, rx) = bounded(16);
    let shared = Arc::new(Shared::default());
    let mut worker = Worker::new(settings.clone(), store.clone(), Arc::clone(&shared), epoch);
    worker.budget = budget.clone();
    if let Some(b) = budget {
        let jobs = tx.clone();
        b.wire(move || jobs.try_send(Job::Budget).is_ok());
    }
    worker.beat = super::heartbeat::Beat::new(link.clone());
    link.set_watermark(worker.watermark);
    let thread = std::thread::Builder::new()
        .name("venue".into())
        .spawn(move || worker.run(rx))
        .map_err(VenueError::Io)?;
    Ok((tx, shared, thread))
}

/// Drops a `Client` on its own thread: dropping can block on a dead connection.
fn discard(client: Client) {
    if let Err(e) = std::thread::Builder::new()
        .name("venue-drop".into())
        .spawn(move || drop(client))
    {
        log::warn!("venue: cannot start a thread to close a connection: {e}");
    }
}

pub(super) struct Worker {
    pub(super) settings: VenueSettings,
    pub(super) store: Store,
    pub(super) shared: Arc<Shared>,
    pub(super) epoch: Instant,
    pub(super) client: Option<Client>,
    /// The redemption's statements, prepared on `client` once the schema is there.
    pub(super) prepared: Option<db::Prepared>,
    pub(super) last_attempt: Option<Instant>,
    /// Every entry with a sequence number up to this one is in the venue.
    pub(super) watermark: u64,
    /// The watermark was checked against this connection's database.
    pub(super) verified: bool,
    /// The schema was checked (and migrated at start) on this run.
    pub(super) schema_ok: bool,
    pub(super) issuer: String,
    pub(super) watermark_path: PathBuf,
    /// The key's ATS budget this worker claims (`budget.rs`).
    pub(super) budget: Option<BudgetLink>,
    /// Heartbeats (`heartbeat.rs`).
    pub(super) beat: super::heartbeat::Beat,
    /// What of the watermark is known flushed on the server (`watermark.rs`).
    pub(super) flushed: Flushed,
    /// The watermark last written to the file.
    pub(super) saved: u64,
}

impl Worker {
    fn new(settings: VenueSettings, store: Store, shared: Arc<Shared>, epoch: Instant) -> Worker {
        let issuer = store.id_prefix().to_string();
        let watermark_path = store.dir().join(WATERMARK_FILE);
        let watermark = read_watermark(&watermark_path, &issuer);
        Worker {
            settings,
            store,
            shared,
            epoch,
            client: None,
            prepared: None,
            last_attempt: None,
            watermark,
            verified: false,
            schema_ok: false,
            issuer,
            watermark_path,
            budget: None,
            beat: Default::default(),
            flushed: Flushed::new(watermark),
            saved: watermark,
        }
    }

    fn run(&mut self, jobs: Receiver<Job>) {
        loop {
            match jobs.recv_timeout(IDLE_TICK) {
                Ok(job) => {
                    self.busy(true);
                    self.handle(job);
                    self.budget_tick();
                    if jobs.is_empty() {
                        self.heartbeat_tick(); // no scan waits: one short upsert
                    }
                    self.busy(false);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.busy(true);
                    self.idle();
                    self.budget_tick();
                    self.heartbeat_tick();
                    self.busy(false);
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.heartbeat_now(); // the last snapshot (`stopping`)
        self.settle_at_exit();
        self.prepared = None;
        if let Some(c) = self.client.take() {
            discard(c);
        }
    }

    fn busy(&self, on: bool) {
        let v = if on {
            self.epoch.elapsed().as_millis() as u64 + 1
        } else {
            0
        };
        self.shared.busy_since.store(v, Ordering::SeqCst);
    }

    fn note_error(&self, e: &str) {
        if let Ok(mut last) = self.shared.last_error.lock() {
            *last = Some(e.to_string());
        }
    }

    /// Retries a lost connection (with backoff) and replays what is pending.
    fn idle(&mut self) {
        if self.ensure_client(false).is_ok() {
            let r = self.ready().and_then(|()| self.catch_up());
            if let Err(e) = r.and_then(|_| self.confirm_flushed()) {
                self.failed(&e);
            }
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Budget => {} // claimed after every job (`run`)
            Job::Begin {
                barcode,
                seed,
                deadline,
                reply,
                steps,
            } => {
                if Instant::now() >= deadline {
                    return; // the loop stopped waiting: it decided locally
                }
                let ready = self.ensure_client(false).and_then(|()| self.ready());
                if let Err(e) = ready.and_then(|()| self.catch_up()) {
                    self.failed(&e);
                    let _ = reply.send(Err(e.to_string()));
                    return;
                }
                if Instant::now() >= deadline {
                    let _ = reply.send(Err("replay took the scan's time".into()));
                    return;
                }
                if let Err(e) = self.redeem(&barcode, &seed, &reply, &steps) {
                    log::warn!(
                        "venue: transaction for {} failed: {e}",
                        mask_barcode(&barcode)
                    );
                    self.failed(&e);
                }
            }
            Job::Start { migrate, reply } => {
                let r = self.start_up(migrate);
                if let Err(e) = &r {
                    self.failed(e);
                } else {
                    self.budget_tick(); // the first allowance before the agent serves
                }
                let _ = reply.send(r);
            }
            Job::Upload { deadline, reply } => {
                if Instant::now() >= deadline {
                    return;
                }
                let r = self
                    .ensure_client(false)
                    .and_then(|()| self.ready())
                    .and_then(|()| self.catch_up());
                if let Err(e) = &r {
                    self.failed(e);
                }
                let _ = reply.send(r);
            }
            Job::Sync { reply } => {
                let r = self
                    .ensure_client(true)
                    .and_then(|()| self.check_schema(false))
                    .and_then(|_| self.catch_up())
                    .and_then(|r| self.settle(r));
                if let Err(e) = &r {
                    self.failed(e);
                }
                let _ = reply.send(r);
            }
        }
    }

    fn start_up(&mut self, migrate: bool) -> Result<Report, VenueError> {
        self.ensure_client(true)?;
        let migrated = self.check_schema(migrate)?;
        let mut report = self.catch_up()?;
        report.migrated = migrated;
        Ok(report)
    }

    /// Prepares the redemption's statements on this connection (once).
    pub(super) fn ensure_prepared(&mut self) -> Result<(), VenueError> {
        if self.prepared.is_none() {
            let client = self.client.as_mut().ok_or_else(not_connected)?;
            self.prepared = Some(db::Prepared::new(client)?);
        }
        Ok(())
    }

    /// The schema is migrated, once per run (the database may have been away at start).
    pub(super) fn ready(&mut self) -> Result<(), VenueError> {
        self.check_schema(true).map(drop)
    }

    /// Applies migrations (or only checks the version) once per run.
    fn check_schema(&mut self, migrate: bool) -> Result<Vec<i32>, VenueError> {
        if self.schema_ok {
            return Ok(Vec::new());
        }
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let applied = if migrate {
            schema::migrate(client)?
        } else {
            let v = schema::current_version(client)?;
            if v > schema::LATEST {
                return Err(VenueError::FutureSchema {
                    found: v,
                    known: schema::LATEST,
                });
            }
            if v < schema::LATEST {
                return Err(VenueError::OldSchema {
                    found: v,
                    known: schema::LATEST,
                });
            }
            Vec::new()
        };
        self.schema_ok = true;
        Ok(applied)
    }

    /// Steps 1 and 2 of a redemption on one transaction (see the module docs).
    fn redeem(
        &mut self,
        barcode: &str,
        seed: &[VenueLine],
        reply: &Sender<Result<Vec<VenueLine>, String>>,
        steps: &Receiver<Step>,
    ) -> Result<(), VenueError> {
        let issuer = self.issuer.clone();
        if let Err(e) = self.ensure_prepared() {
            let _ = reply.send(Err(e.to_string()));
            return Err(e);
        }
        let p = self.prepared.as_ref().ok_or_else(not_connected)?;
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                return Err(e.into());
            }
        };
        let lines = match db::lock_lines(&mut tx, p, barcode, seed) {
            Ok(l) => l,
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                return Err(e);
            }
        };
        if reply.send(Ok(lines.clone())).is_err() {
            return Ok(()); // the loop gave up: rolled back when `tx` drops
        }
        // The loop decides and journals (an fsync); wait for it no longer than one
        // step's time, then roll back (its commit then reports `NotCommitted`).
        let wait = self.settings.timeout;
        let (entry, answer) = match steps.recv_timeout(wait) {
            Ok(Step::Commit(entry, answer)) => (entry, answer),
            Ok(Step::Abort) | Err(_) => return Ok(()),
        };
        let recorded = match db::record_entry(&mut tx, p, &issuer, &entry, &lines, false) {
            Ok((r, wal)) => {
                self.flushed.observe(wal.flush, wal.insert);
                r
            }
            Err(e) => {
                let _ = answer.send(CommitOutcome::NotCommitted(e.to_string()));
                return Err(e);
            }
        };
        match tx.commit() {
            Ok(()) => {
                let overdraft_cents = match recorded {
                    Recorded::New {
                        overdraft_cents, ..
                    } => overdraft_cents,
                    Recorded::Duplicate => 0,
                };
                if entry.seq == self.watermark + 1 {
                    self.watermark = entry.seq;
                    let flushed = self.settings.commits_flushed();
                    self.flushed.committed(self.watermark, flushed);
                    self.publish_pending();
                }
                let _ = answer.send(CommitOutcome::Committed { overdraft_cents });
                self.note_committed();
                Ok(())
            }
            Err(e) => {
                // A server's refusal of COMMIT is a rollback; a broken connection
                // leaves the outcome unknown.
                let outcome = if e.as_db_error().is_some() {
                    CommitOutcome::NotCommitted(e.to_string())
                } else {
                    CommitOutcome::InDoubt(e.to_string())
                };
                let _ = answer.send(outcome);
                Err(e.into())
            }
        }
    }

    /// Connects when there is no connection (at most once per backoff unless `now`).
    pub(super) fn ensure_client(&mut self, now: bool) -> Result<(), VenueError> {
        if let Some(c) = &self.client {
            if !c.is_closed() {
                return Ok(());
            }
            self.prepared = None;
            if let Some(c) = self.client.take() {
                discard(c);
            }
            self.shared.connected.store(false, Ordering::SeqCst);
        }
        if !now {
            if let Some(t) = self.last_attempt {
                if t.elapsed() < RECONNECT_BACKOFF {
                    let last = self.shared.last_error.lock().ok().and_then(|e| e.clone());
                    return Err(VenueError::Away(format!(
                        "retrying the connection shortly ({})",
                        last.as_deref().unwrap_or("unreachable")
                    )));
                }
            }
        }
        self.last_attempt = Some(Instant::now());
        let app = format!("concession-agent {}", self.store.terminal_id());
        let client = connect::connect(&self.settings, &app)?;
        log::info!("venue database connected");
        self.last_attempt = None;
        self.client = Some(client);
        self.verified = false;
        // What the old connection committed but never saw flushed may be lost.
        self.watermark = self.flushed.reconnected();
        self.shared.connected.store(true, Ordering::SeqCst);
        if let Ok(mut e) = self.shared.last_error.lock() {
            *e = None;
        }
        Ok(())
    }

    /// After an error: a connection that broke (anything but the server's own error
    /// answer) is discarded, and the next attempt reconnects.
    pub(super) fn failed(&mut self, e: &VenueError) {
        if !matches!(e, VenueError::Away(_)) {
            self.note_error(&e.to_string());
        }
        let broken = match e {
            VenueError::Db(pe) => pe.as_db_error().is_none(),
            VenueError::Away(_) => false,
            _ => false,
        };
        let closed = self.client.as_ref().is_some_and(|c| c.is_closed());
        if broken || closed {
            if self.client.is_some() {
                log::warn!("venue database connection lost: {e}");
            }
            self.prepared = None;
            if let Some(c) = self.client.take() {
                discard(c);
            }
            self.shared.connected.store(false, Ordering::SeqCst);
        }
    }
}

pub(super) fn not_connected() -> VenueError {
    VenueError::Away("not connected to the venue database".into())
}
