//! The venue's second thread: one fetch per event, and every stand's copy of it (issue
//! 13 items 2-4; docs/venue.md "One fetch per event").
//!
//! In venue mode this thread replaces the per-terminal refresher (`agent::prefetch`): no
//! terminal pages ATS for an event unless it holds the event's lease (`lease.rs`). It
//! owns its own connection (`connect.rs`, the same session guards as the decision
//! worker's), so a terminal holds two connections, and nothing it does ever queues
//! behind, or in front of, a decision: the scan loop only hands it live answers through a
//! bounded channel with `try_send` ([`TicketShare::share`]), and never waits for it. A
//! slow or hung database stalls this thread only; scans go on from the local cache.
//!
//! Each turn of its loop:
//!
//! 1. Live answers other stands can use (a cache miss answered by `verify_barcode` and
//!    `get_av_barcodes`) are written to the venue ticket table (`tickets.rs`), with their
//!    seat, so the next stand does not call ATS for that ticket and its seat index
//!    (SafeTix resolution, issue 17) knows the seat.
//! 2. For each served event: take or renew the lease (the holder renews every quarter of
//!    `venue.lease_ms`, a non-holder tries every eighth). The holder fetches one page of
//!    the listing (`AtsClient::get_av_barcodes_event_page`, through the client's budget,
//!    keeping `cache.budget_reserve_per_minute` for scans) with no transaction open,
//!    then writes the page and the pass's cursor in one short fenced transaction. A
//!    completed pass marks the tickets it did not list removed (voided, returned,
//!    reissued). A new pass starts `cache.refresh_interval_ms` after the last completed
//!    (on the holder's clock), and at start when `cache.prefetch_at_start` and none
//!    completed (else once this terminal has run for a refresh interval).
//! 3. Every `venue.sync_interval_ms` (and at once after a page): the rows changed since
//!    the last copy are copied into the local cache (a removed ticket as a record
//!    `decide` never approves). The copy cursor lives in memory: a terminal that starts
//!    late or restarts copies the whole table, over the LAN, with no ATS call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use postgres::Client;

use super::config::VenueSettings;
use super::error::VenueError;
use super::lease::{self, Held, PassCursor};
use super::tickets::{self, local_record};
use super::{connect, schema};
use crate::agent::prefetch::records_from_listing;
use crate::ats::wire::EventSummary;
use crate::ats::{AtsClient, AtsError, RateWindow};
use crate::clock::SharedClock;
use crate::store::Store;
use crate::ticket::TicketRecord;

/// Rows copied per statement.
const COPY_BATCH: i64 = 2_000;
/// Copy batches per turn, so lease renewals never wait behind a cold start's copy.
const COPY_BATCHES_PER_TURN: usize = 5;
/// The loop's idle step.
const TICK: Duration = Duration::from_millis(50);
/// After a connection failure, the next attempt waits this long.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// After an ATS failure that is not a rate limit (ATS down), the holder waits this long.
const ATS_BACKOFF: Duration = Duration::from_secs(5);

/// What the thread fetches and how often it copies.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// The events this terminal serves (`events`); each has its own lease.
    pub events: Vec<String>,
    /// `cache.prefetch_at_start`: the first pass starts at once when none completed.
    pub at_start: bool,
    /// `cache.refresh_interval_ms`.
    pub refresh_interval: Duration,
    /// `cache.budget_reserve_per_minute`: calls a minute a page never takes.
    pub reserve_per_minute: u32,
    /// `venue.lease_ms`.
    pub lease: Duration,
    /// `venue.sync_interval_ms`.
    pub sync_interval: Duration,
}

/// What the thread has done, for logs, status and tests.
#[derive(Debug, Default)]
pub struct FetchShared {
    connected: AtomicBool,
    /// Events whose lease this terminal holds.
    holding: Mutex<Vec<String>>,
    /// The highest change copied into the local cache.
    copied_seq: AtomicI64,
    /// Rows copied since start.
    copied_rows: AtomicU64,
    /// Pages this terminal fetched from ATS.
    pages: AtomicU64,
    /// Live records shared with the venue.
    shared_rows: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A snapshot of [`FetchShared`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStatus {
    /// The thread holds a connection.
    pub connected: bool,
    /// Events whose lease this terminal holds.
    pub holding: Vec<String>,
    /// The highest change copied.
    pub copied_seq: i64,
    /// Rows copied since start.
    pub copied_rows: u64,
    /// Pages fetched from ATS by this terminal.
    pub pages: u64,
    /// Live records written to the venue.
    pub shared_rows: u64,
    /// The last error.
    pub last_error: Option<String>,
}

/// The scan loop's side: hands live answers to the thread, never waiting.
#[derive(Debug, Clone)]
pub struct TicketShare(Sender<TicketRecord>);

impl TicketShare {
    /// Queues `record` for the venue ticket table; dropped when the queue is full (the
    /// record is in this stand's cache anyway; another stand may then ask ATS for it).
    pub fn share(&self, record: &TicketRecord) {
        if record.info.is_some() {
            let _ = self.0.try_send(record.clone());
        }
    }
}

/// The running thread.
pub struct VenueFetch {
    share: TicketShare,
    shared: Arc<FetchShared>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl VenueFetch {
    /// Starts the thread; it connects in the background. It ends when `stop` is set.
    pub fn start(
        settings: VenueSettings,
        plan: FetchPlan,
        ats: Arc<AtsClient>,
        store: Store,
        clock: SharedClock,
        stop: Arc<AtomicBool>,
    ) -> Result<VenueFetch, VenueError> {
        let (tx, rx) = bounded(1024);
        let shared = Arc::new(FetchShared::default());
        let mut f = Fetcher::new(settings, plan, ats, store, clock, Arc::clone(&shared));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("venue-fetch".into())
            .spawn(move || {
                // Its listing pages keep the scans' share of the key, venue-wide
                // (ats::shared_budget: a background thread's calls leave the reserve).
                crate::ats::mark_thread_background();
                f.run(&rx, &thread_stop)
            })
            .map_err(VenueError::Io)?;
        Ok(VenueFetch {
            share: TicketShare(tx),
            shared,
            thread: Some(thread),
            stop,
        })
    }

    /// The scan loop's sender of live answers.
    pub fn share(&self) -> TicketShare {
        self.share.clone()
    }

    /// What the thread has done.
    pub fn status(&self) -> FetchStatus {
        status_of(&self.shared)
    }

    /// Stops the thread, waiting at most `wait` (a thread stuck on a hung database is
    /// left behind: the process is ending).
    pub fn shutdown(mut self, wait: Duration) {
        self.stop.store(true, Ordering::SeqCst);
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

/// The fetch thread's loop driven by the caller, one turn at a time, on the caller's
/// thread: for benches on a `ManualClock` (`benches/venue_day.rs`), where a thread
/// sleeping on the shared clock would move simulated time. Same code as the thread.
pub struct FetchStepper {
    f: Fetcher,
    rx: Receiver<TicketRecord>,
    share: TicketShare,
    stop: AtomicBool,
}

impl FetchStepper {
    /// A stepper for one terminal (it connects on its first turn).
    pub fn new(
        settings: VenueSettings,
        plan: FetchPlan,
        ats: Arc<AtsClient>,
        store: Store,
        clock: SharedClock,
    ) -> FetchStepper {
        let (tx, rx) = bounded(1024);
        let f = Fetcher::new(settings, plan, ats, store, clock, Arc::default());
        FetchStepper {
            f,
            rx,
            share: TicketShare(tx),
            stop: AtomicBool::new(false),
        }
    }

    /// One turn of the loop; true when it did work worth another turn at once.
    pub fn turn(&mut self) -> bool {
        match self.f.turn(&self.rx, &self.stop) {
            Ok(busy) => busy,
            Err(e) => {
                self.f.failed(&e);
                false
            }
        }
    }

    /// The sender of live answers (give it to the agent).
    pub fn share(&self) -> TicketShare {
        self.share.clone()
    }

    /// What it has done.
    pub fn status(&self) -> FetchStatus {
        status_of(&self.f.shared)
    }
}

/// Where this terminal stands with one event's lease.
struct EventLease {
    /// Held (as of the last renewal), with the pass's state.
    held: Option<Held>,
    /// When to call `lease::hold` next.
    next_hold: Instant,
}

struct Fetcher {
    settings: VenueSettings,
    plan: FetchPlan,
    ats: Arc<AtsClient>,
    store: Store,
    clock: SharedClock,
    shared: Arc<FetchShared>,
    me: String,
    started: Instant,
    client: Option<Client>,
    next_connect: Option<Instant>,
    schema_ok: bool,
    /// The highest change copied into the local cache.
    copied: i64,
    /// The copy cursor was checked against this connection's database.
    checked_copy: bool,
    /// The venue passes whose listing the local cache holds in full, as last marked.
    listed: HashMap<String, u64>,
    next_copy: Option<Instant>,
    copy_now: bool,
    leases: HashMap<String, EventLease>,
    /// No page before this (a rate limit or ATS down).
    page_not_before: Option<Instant>,
}

/// What a turn of the page step did.
enum Paged {
    /// Nothing to do (or not ours).
    Idle,
    /// A page was written.
    Page,
}

impl Fetcher {
    fn new(
        settings: VenueSettings,
        plan: FetchPlan,
        ats: Arc<AtsClient>,
        store: Store,
        clock: SharedClock,
        shared: Arc<FetchShared>,
    ) -> Fetcher {
        Fetcher {
            me: store.terminal_id().to_string(),
            started: clock.now(),
            settings,
            plan,
            ats,
            store,
            clock,
            shared,
            client: None,
            next_connect: None,
            schema_ok: false,
            copied: 0,
            checked_copy: false,
            listed: HashMap::new(),
            next_copy: None,
            copy_now: false,
            leases: HashMap::new(),
            page_not_before: None,
        }
    }

    fn run(&mut self, shares: &Receiver<TicketRecord>, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let busy = match self.turn(shares, stop) {
                Ok(busy) => busy,
                Err(e) => {
                    self.failed(&e);
                    false
                }
            };
            if !busy {
                self.clock.sleep(TICK);
            }
        }
        // Stopping: hand the leases on at once instead of letting them expire.
        if let Some(mut c) = self.client.take() {
            for (event, l) in &self.leases {
                if l.held.is_some() {
                    if let Err(e) = lease::release(&mut c, event, &self.me) {
                        log::debug!("venue: releasing the lease of {event}: {e}");
                    }
                }
            }
            discard(c);
        }
    }

    /// One turn; true when it did work worth another turn at once.
    fn turn(
        &mut self,
        shares: &Receiver<TicketRecord>,
        stop: &AtomicBool,
    ) -> Result<bool, VenueError> {
        if !self.ensure_client()? {
            return Ok(false);
        }
        let mut busy = false;
        let batch: Vec<TicketRecord> = shares.try_iter().take(500).collect();
        if !batch.is_empty() {
            let client = self.client.as_mut().ok_or_else(not_connected)?;
            let n = tickets::write_live(client, &batch)?;
            self.shared.shared_rows.fetch_add(n, Ordering::SeqCst);
            self.copy_now = true;
            busy = true;
        }
        let events = self.plan.events.clone();
        for event in &events {
            if stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            if let Paged::Page = self.fetch_step(event)? {
                busy = true;
            }
        }
        let now = self.clock.now();
        if self.copy_now || self.next_copy.is_none_or(|t| now >= t) {
            self.copy_now = false;
            self.next_copy = Some(now + self.plan.sync_interval);
            busy |= self.copy()?;
        }
        Ok(busy)
    }

    /// Connects when there is no connection (with backoff), and checks that the schema
    /// has the ticket table (the decision worker migrates it). False: not ready yet.
    fn ensure_client(&mut self) -> Result<bool, VenueError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.drop_client();
        }
        if self.client.is_none() {
            let now = self.clock.now();
            if self.next_connect.is_some_and(|t| now < t) {
                return Ok(false);
            }
            self.next_connect = Some(now + RECONNECT_BACKOFF);
            let app = format!("concession-agent {} fetch", self.store.terminal_id());
            let client = connect::connect(&self.settings, &app)?;
            self.client = Some(client);
            self.checked_copy = false;
            self.shared.connected.store(true, Ordering::SeqCst);
        }
        if !self.schema_ok {
            let client = self.client.as_mut().ok_or_else(not_connected)?;
            let v = schema::current_version(client)?;
            if v < schema::LATEST {
                return Ok(false); // not migrated yet: the worker does it at start
            }
            self.schema_ok = true;
        }
        Ok(true)
    }

    fn drop_client(&mut self) {
        if let Some(c) = self.client.take() {
            discard(c);
        }
        self.shared.connected.store(false, Ordering::SeqCst);
        // Leases are re-checked on the next connection.
        for l in self.leases.values_mut() {
            l.held = None;
        }
        self.publish_holding();
    }

    fn failed(&mut self, e: &VenueError) {
        log::warn!("venue fetch: {e}");
        if let Ok(mut last) = self.shared.last_error.lock() {
            *last = Some(e.to_string());
        }
        let broken = match e {
            VenueError::Db(pe) => pe.as_db_error().is_none(),
            _ => false,
        };
        if broken || self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.drop_client();
        }
    }

    fn publish_holding(&self) {
        let held: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.held.is_some())
            .map(|(e, _)| e.clone())
            .collect();
        if let Ok(mut h) = self.shared.holding.lock() {
            *h = held;
        }
    }

    /// Takes or renews `event`'s lease when due; as its holder, fetches and writes one
    /// page when a pass runs or is due.
    fn fetch_step(&mut self, event: &str) -> Result<Paged, VenueError> {
        let now = self.clock.now();
        let lease_period = self.plan.lease;
        let entry = self.leases.entry(event.to_string()).or_insert(EventLease {
            held: None,
            next_hold: now,
        });
        if now >= entry.next_hold {
            let client = self.client.as_mut().ok_or_else(not_connected)?;
            let was_held = entry.held.is_some();
            let held = lease::hold(client, event, &self.me, lease_period)?;
            match &held {
                Some(h) if h.taken => {
                    let c = &h.cursor;
                    let pass = match (c.complete, c.last_complete_pass_ms) {
                        // A new lease row: no pass has run under any holder yet.
                        (true, None) if c.pages == 0 => "no pass yet".to_string(),
                        (true, _) => format!("pass complete after page {}", c.pages),
                        (false, _) => format!("pass resumes after page {}", c.pages),
                    };
                    log::info!("venue: fetch lease of {event} taken ({pass})");
                }
                None if was_held => log::warn!("venue: fetch lease of {event} lost"),
                _ => {}
            }
            entry.next_hold = now
                + if held.is_some() {
                    lease_period / 4
                } else {
                    lease_period / 8
                };
            entry.held = held;
            if was_held != entry.held.is_some() {
                self.publish_holding();
            }
        }
        let Some(held) = self.leases.get(event).and_then(|l| l.held.clone()) else {
            return Ok(Paged::Idle);
        };
        let uptime = now.saturating_duration_since(self.started);
        // Refreshes are timed on the holder's clock (a stand's skew only shifts one).
        let refresh_due = held.completed_ms.is_none_or(|c| {
            self.clock.wall_ms() >= c.saturating_add(self.plan.refresh_interval.as_millis() as u64)
        });
        let start_new = held.cursor.complete
            && refresh_due
            && (!held.never_completed
                || self.plan.at_start
                || uptime >= self.plan.refresh_interval);
        if held.cursor.complete && !start_new {
            return Ok(Paged::Idle);
        }
        if self.page_not_before.is_some_and(|t| now < t) {
            return Ok(Paged::Idle);
        }
        let (minute, _day) = self.ats.budget_remaining();
        if minute <= self.plan.reserve_per_minute {
            // Scans keep their reserve; the lease is renewed meanwhile.
            self.page_not_before = Some(now + Duration::from_millis(500));
            return Ok(Paged::Idle);
        }
        let mut cursor = held.cursor.clone();
        if start_new {
            cursor = PassCursor {
                pass_started_ms: self.clock.wall_ms(),
                last_complete_pass_ms: cursor.last_complete_pass_ms,
                ..PassCursor::default()
            };
        }
        self.page(event, cursor)
    }

    /// Fetches the page after `cursor` (no transaction open) and writes it fenced.
    fn page(&mut self, event: &str, mut cursor: PassCursor) -> Result<Paged, VenueError> {
        let prev = cursor.last_barcode.clone();
        let page = match self
            .ats
            .get_av_barcodes_event_page(event, prev.as_deref(), None)
        {
            Ok(p) => p,
            Err(e) => {
                let wait = match &e {
                    AtsError::RateBudget {
                        window: RateWindow::Day,
                        ..
                    } => self.plan.refresh_interval,
                    AtsError::RateBudget { retry_after, .. } => *retry_after,
                    AtsError::RateLimited { retry_after, .. } => {
                        retry_after.unwrap_or(Duration::from_secs(60))
                    }
                    AtsError::Decode { .. } => {
                        // An answer this pass cannot page through would fail again at
                        // the same cursor: the pass is abandoned (retiring nothing).
                        cursor.complete = true;
                        self.save_only(event, &cursor)?;
                        ATS_BACKOFF
                    }
                    _ => ATS_BACKOFF,
                };
                // The budget keeping its reserve for scans is the expected state of a
                // long pass on one key (a minute's wait, announced once a second):
                // info, not a warning.
                if matches!(e, AtsError::RateBudget { .. }) {
                    log::info!(
                        "venue fetch of {event}: {e}; next page in {} ms",
                        wait.as_millis()
                    );
                } else {
                    log::warn!(
                        "venue fetch of {event}: {e}; next page in {} ms",
                        wait.as_millis()
                    );
                }
                self.page_not_before = Some(self.clock.now() + wait.max(TICK));
                return Ok(Paged::Idle);
            }
        };
        let last = page.rows.last().map(|(b, _)| b.clone());
        if last.is_some() && last == prev {
            log::warn!("venue fetch of {event}: pages do not advance; pass abandoned");
            cursor.complete = true;
            self.save_only(event, &cursor)?;
            return Ok(Paged::Idle);
        }
        let summary = EventSummary {
            event_name: event.to_string(),
            event_date: None,
            event_time: None,
        };
        let stamp = self.clock.wall_ms();
        let records = records_from_listing(&summary, page.rows, stamp);
        let done = !page.more || last.is_none();
        if last.is_some() {
            cursor.pages += 1;
            cursor.tickets += records
                .iter()
                .filter(|r| Some(r.barcode.as_str()) != prev.as_deref())
                .count() as u64;
            cursor.last_barcode = last;
        }
        if done {
            cursor.complete = true;
            cursor.last_complete_pass_ms = Some(cursor.pass_started_ms);
        }
        let lease_period = self.plan.lease;
        let me = self.me.clone();
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let mut tx = client.transaction()?;
        let completed = done.then_some(stamp);
        if !lease::save_cursor(&mut tx, event, &me, lease_period, &cursor, completed)? {
            drop(tx); // rolled back: the page is the successor's to write
            log::warn!("venue: fetch lease of {event} lost before its page was written");
            if let Some(l) = self.leases.get_mut(event) {
                l.held = None;
                l.next_hold = self.clock.now();
            }
            self.publish_holding();
            return Ok(Paged::Idle);
        }
        if !records.is_empty() {
            tickets::write_page(
                &mut tx,
                event,
                records,
                cursor.pass_started_ms,
                prev.as_deref(),
            )?;
        }
        let removed = if done {
            tickets::retire_unlisted(&mut tx, event, cursor.pass_started_ms, stamp)?
        } else {
            0
        };
        tx.commit()?;
        self.shared.pages.fetch_add(1, Ordering::SeqCst);
        if done {
            log::info!(
                "venue: listing of {event} complete: {} tickets in {} pages, {removed} removed",
                cursor.tickets,
                cursor.pages
            );
        } else if cursor.pages == 1 {
            // A pass's first page: venue IT sees when each pass began.
            log::info!(
                "venue: listing pass of {event} started ({})",
                if cursor.last_complete_pass_ms.is_some() {
                    "a refresh"
                } else {
                    "the first pass: scan lookups keep to the reserve until it completes"
                }
            );
        } else if cursor.pages.is_multiple_of(20) {
            log::info!(
                "venue: fetching {event}: {} pages, {} tickets",
                cursor.pages,
                cursor.tickets
            );
        }
        if let Some(l) = self.leases.get_mut(event).and_then(|l| l.held.as_mut()) {
            l.cursor = cursor;
            if done {
                l.completed_ms = Some(stamp);
                l.never_completed = false;
            }
        }
        self.copy_now = true;
        Ok(Paged::Page)
    }

    /// Saves the cursor alone (an abandoned pass).
    fn save_only(&mut self, event: &str, cursor: &PassCursor) -> Result<(), VenueError> {
        let lease_period = self.plan.lease;
        let me = self.me.clone();
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let mut tx = client.transaction()?;
        if lease::save_cursor(&mut tx, event, &me, lease_period, cursor, None)? {
            tx.commit()?;
            if let Some(l) = self.leases.get_mut(event).and_then(|l| l.held.as_mut()) {
                l.cursor = cursor.clone();
            }
        }
        Ok(())
    }

    /// Copies the rows changed since the last copy into the local cache. True when a
    /// batch limit was reached (more to copy at once).
    fn copy(&mut self) -> Result<bool, VenueError> {
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        if !self.checked_copy {
            // Another database (a fresh one, or a standby that missed the last
            // changes): a cursor above its newest change would never copy again.
            if tickets::newest_change(client)? < self.copied {
                log::warn!(
                    "venue: the ticket table is behind this terminal's copy: copying it again"
                );
                self.copied = 0;
            }
            self.checked_copy = true;
        }
        // Read first: what these passes wrote is committed before this copy starts.
        let passes = lease::completed_passes(client)?;
        let mut copied = 0usize;
        for _ in 0..COPY_BATCHES_PER_TURN {
            let rows = tickets::changes_since(client, self.copied, COPY_BATCH)?;
            let Some(last) = rows.last().map(|r| r.change_seq) else {
                break;
            };
            let records: Vec<TicketRecord> = rows
                .iter()
                .filter(|r| !r.record.barcode.is_empty())
                .map(local_record)
                .collect();
            self.store.put_records(records.iter()).map_err(store_err)?;
            copied += rows.len();
            self.copied = last;
            if (rows.len() as i64) < COPY_BATCH {
                break;
            }
        }
        // A full last batch: more is waiting.
        let more = copied >= COPY_BATCH as usize * COPY_BATCHES_PER_TURN;
        if !more {
            // Caught up: the cache holds each of those listings in full (`not_listed`,
            // agent/unlisted.rs).
            for (event, started) in &passes {
                if self.listed.get(event) != Some(started) {
                    self.store
                        .set_venue_listing(event, *started)
                        .map_err(store_err)?;
                    self.listed.insert(event.clone(), *started);
                }
            }
        }
        if copied == 0 {
            return Ok(false);
        }
        self.store.sync_cache().map_err(store_err)?;
        self.shared.copied_seq.store(self.copied, Ordering::SeqCst);
        let total = self
            .shared
            .copied_rows
            .fetch_add(copied as u64, Ordering::SeqCst)
            + copied as u64;
        tickets::note_copy(client, &self.me, self.copied, total)?;
        log::info!(
            "venue: copied {copied} ticket rows into the local cache (up to change {})",
            self.copied
        );
        self.copy_now |= more;
        Ok(more)
    }
}

fn status_of(s: &FetchShared) -> FetchStatus {
    FetchStatus {
        connected: s.connected.load(Ordering::SeqCst),
        holding: s.holding.lock().map(|h| h.clone()).unwrap_or_default(),
        copied_seq: s.copied_seq.load(Ordering::SeqCst),
        copied_rows: s.copied_rows.load(Ordering::SeqCst),
        pages: s.pages.load(Ordering::SeqCst),
        shared_rows: s.shared_rows.load(Ordering::SeqCst),
        last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
    }
}

fn store_err(e: crate::store::StoreError) -> VenueError {
    VenueError::Away(format!("local cache: {e}"))
}

fn not_connected() -> VenueError {
    VenueError::Away("not connected to the venue database".into())
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
