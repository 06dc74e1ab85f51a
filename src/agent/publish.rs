//! Publishing the agent's status (`STORE_DIR/status.json`) and metrics textfile.
//!
//! The loop only updates [`Facts`] under a mutex (a decision, a void, a change of
//! mode: no I/O). A publisher thread builds the [`StatusSnapshot`] from those facts
//! and what other parts keep (the ATS client's budget and call counts, the prefetch
//! progress, the clock's state, the store's offline usage, the free disk), and writes
//! the status file about once a second (at once after a change) and the metrics
//! textfile every `[metrics] interval_s`. Counting the cache reads every entry, so the
//! thread does it once a minute (and soon after a prefetch page), never the loop. At
//! stop the loop writes both files a last time itself ([`Publisher::finish`]), so the
//! final counters are on disk when the process exits. The publisher also runs the
//! export socket (`control.rs`) for as long as the loop runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::agent::prefetch;
use crate::ats::AtsClient;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::config::MetricsSettings;
use crate::metrics::Metrics;
use crate::signal::DecisionEvent;
use crate::status::{
    self, AtsBudget, CacheStatus, ClockStatus, DayTotals, DiskStatus, LastDecision,
    OfflineExposure, PrefetchStatus, StatusSnapshot,
};
use crate::store::{rfc3339_ms, EntryKind, Store};
use crate::sync::lock;

/// How often the status file is rewritten when nothing changed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest time between two writes of the status file.
const MIN_SPACING: Duration = Duration::from_millis(200);
/// How often the cache is counted.
const CACHE_INTERVAL: Duration = Duration::from_secs(60);
/// How soon after a prefetch page the cache is counted again.
const RECOUNT_AFTER_PREFETCH: Duration = Duration::from_secs(5);

/// What only the loop knows, shared with the publisher thread.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `online`, `offline`, `low_disk` or `stopping`.
    pub mode: String,
    /// Since when (wall ms).
    pub mode_since_ms: u64,
    /// The venue's day so far.
    pub today: DayTotals,
    /// The newest journal entry.
    pub last: Option<LastDecision>,
    /// Journal entries (the newest sequence number: ids are gap-free from 1).
    pub journal_entries: u64,
    /// The counters of the metrics file.
    pub metrics: Metrics,
}

/// What the publisher reads besides [`Facts`].
#[derive(Clone)]
struct Sources {
    store: Store,
    store_dir: PathBuf,
    ats: Arc<AtsClient>,
    prefetch: prefetch::Progress,
    clock: SharedClock,
    terminal: String,
    caps: OfflineExposure,
    min_free_bytes: u64,
    max_clock_skew_ms: u64,
    utc_offset_minutes: i32,
    metrics: MetricsSettings,
    venue_mode: bool,
    /// Venue mode: the venue worker's side (heartbeat, pending uploads).
    venue_link: Option<status::VenueLink>,
    /// Phone tickets: the Presence client (its budget and call counts).
    presence: Option<Arc<crate::presence::PresenceClient>>,
}

/// The loop's side of the publisher: updates facts; the thread writes.
pub struct Publisher {
    facts: Arc<Mutex<Facts>>,
    sources: Sources,
    cache: Arc<Mutex<Option<CacheStatus>>>,
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// `journal export` while the agent runs (`control.rs`).
    control: Option<super::control::ControlServer>,
}

impl Publisher {
    /// Reads today's totals and the newest entry from the journal (only today's
    /// entries are read). Nothing is written until [`Publisher::spawn`].
    pub fn new(
        config: &Config,
        store: Store,
        ats: Arc<AtsClient>,
        clock: SharedClock,
    ) -> Publisher {
        let now_ms = clock.wall_ms();
        let date = crate::date::local_date(now_ms, config.utc_offset_minutes);
        let (today, newest) = DayTotals::from_journal(&store, &date, config.utc_offset_minutes)
            .unwrap_or_else(|e| {
                log::warn!("status: cannot read today's journal: {e}");
                (DayTotals::new(&date), None)
            });
        let o = &config.offline;
        let sources = Sources {
            store_dir: config.store_dir.clone(),
            store,
            ats,
            prefetch: prefetch::Progress::default(),
            clock,
            terminal: config.terminal_id.clone(),
            caps: OfflineExposure {
                used_cents: 0,
                cap_cents: o.total_cents,
                used_count: 0,
                cap_count: o.total_count.into(),
                per_transaction_cents: o.per_transaction_cents,
                per_ticket_cents: o.per_ticket_cents,
            },
            min_free_bytes: config.store_min_free_bytes,
            max_clock_skew_ms: config.health.max_clock_skew.as_millis() as u64,
            utc_offset_minutes: config.utc_offset_minutes,
            metrics: config.metrics.clone(),
            venue_mode: config.venue.is_some(),
            venue_link: None,
            presence: None,
        };
        Publisher {
            facts: Arc::new(Mutex::new(Facts {
                mode: "online".into(),
                mode_since_ms: now_ms,
                today,
                journal_entries: newest.as_ref().map_or(0, |e| e.seq),
                last: newest.as_ref().map(LastDecision::from_entry),
                metrics: Metrics::default(),
            })),
            sources,
            cache: Arc::new(Mutex::new(None)),
            wake: None,
            thread: None,
            stop: Arc::new(AtomicBool::new(false)),
            control: None,
        }
    }

    /// Where the prefetch progress comes from.
    pub fn set_prefetch(&mut self, progress: prefetch::Progress) {
        self.sources.prefetch = progress;
    }

    /// Where and how often the metrics textfile is written.
    pub fn set_metrics(&mut self, settings: MetricsSettings) {
        self.sources.metrics = settings;
    }

    /// Venue mode: every snapshot goes to the venue worker's heartbeat too, and the
    /// pending uploads are counted from its watermark. Before [`Publisher::spawn`].
    pub fn set_venue_link(&mut self, link: status::VenueLink) {
        self.sources.venue_link = Some(link);
    }

    /// Phone tickets: the Presence client's budget and calls go in the status too.
    /// Before [`Publisher::spawn`].
    pub fn set_presence(&mut self, client: Arc<crate::presence::PresenceClient>) {
        self.sources.presence = Some(client);
    }

    /// Starts the thread that writes the status file (and the metrics file), and the
    /// export socket. Once.
    pub fn spawn(&mut self) {
        if self.thread.is_some() {
            return;
        }
        match super::control::ControlServer::start(
            self.sources.store.clone(),
            &self.sources.store_dir,
        ) {
            Ok(c) => self.control = Some(c),
            Err(e) => log::warn!(
                "export socket {}: {e}: `journal export` needs the agent stopped",
                self.sources
                    .store_dir
                    .join(super::control::SOCKET)
                    .display()
            ),
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let facts = Arc::clone(&self.facts);
        let cache = Arc::clone(&self.cache);
        let sources = self.sources.clone();
        let stop = Arc::clone(&self.stop);
        match std::thread::Builder::new()
            .name("status".into())
            .spawn(move || publish_loop(&facts, &cache, &sources, &rx, &stop))
        {
            Ok(h) => {
                self.thread = Some(h);
                self.wake = Some(tx);
            }
            Err(e) => log::error!("status thread: {e}: no status file or metrics"),
        }
    }

    fn changed(&self) {
        if let Some(w) = &self.wake {
            // Full: a wake-up is already pending.
            let _ = w.try_send(());
        }
    }

    /// The agent's mode now (`online`, `offline`, `low_disk`, `stopping`).
    pub fn set_mode(&self, mode: &str) {
        let mut f = lock(&self.facts);
        if f.mode != mode {
            f.mode = mode.to_string();
            f.mode_since_ms = self.sources.clock.wall_ms();
            drop(f);
            self.changed();
        }
    }

    /// Counts a decision; `journaled` is false for the deny of a scan the store could
    /// not take (it has no id and is in no journal: only the metrics count it).
    pub fn decided(&self, event: &DecisionEvent, offline: bool, journaled: bool) {
        let now_ms = self.sources.clock.wall_ms();
        let mut f = lock(&self.facts);
        f.metrics.record_decision(
            event.decision.as_str(),
            event.reason.as_str(),
            event.source.as_str(),
            event.approved_cents,
            Duration::from_millis(event.latency_ms),
        );
        if journaled {
            let approve = event.decision.as_str() == "approve";
            self.roll_day(&mut f, now_ms);
            f.today
                .count(EntryKind::Decision, approve, offline, event.approved_cents);
            f.journal_entries = f.journal_entries.max(seq_of(&event.id));
            f.last = Some(LastDecision {
                id: event.id.clone(),
                time: event.time.clone(),
                kind: "decision".into(),
                decision: event.decision.as_str().into(),
                reason: event.reason.as_str().into(),
                approved_cents: event.approved_cents,
                source: event.source.as_str().into(),
                barcode: event.barcode.clone(),
            });
        }
        drop(f);
        self.changed();
    }

    /// Counts a void the store wrote (its journal entry; a refused void changes
    /// nothing).
    pub fn voided(&self, entry: &crate::store::JournalEntry) {
        let now_ms = self.sources.clock.wall_ms();
        let mut f = lock(&self.facts);
        f.metrics.record_void(entry.approved_cents);
        self.roll_day(&mut f, now_ms);
        f.today
            .count(EntryKind::Void, false, false, entry.approved_cents);
        f.journal_entries = f.journal_entries.max(entry.seq);
        f.last = Some(LastDecision::from_entry(entry));
        drop(f);
        self.changed();
    }

    /// A new venue day starts from zero.
    fn roll_day(&self, f: &mut Facts, now_ms: u64) {
        let date = crate::date::local_date(now_ms, self.sources.utc_offset_minutes);
        if f.today.date != date {
            f.today = DayTotals::new(&date);
        }
    }

    /// The snapshot now (what the file would say).
    pub fn snapshot(&self) -> StatusSnapshot {
        let facts = lock(&self.facts).clone();
        let cache = lock(&self.cache).clone();
        build(&facts, cache, &self.sources)
    }

    /// Stops the thread and writes both files a last time, with `mode`.
    pub fn finish(&mut self, mode: &str) {
        drop(self.control.take());
        self.set_mode(mode);
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        if let Some(h) = self.thread.take() {
            let _ = h.join();
            // Only a publisher that was started writes files (the `lookup` command's
            // agent never is).
            let facts = lock(&self.facts).clone();
            let cache = lock(&self.cache).clone();
            write_files(&facts, cache, &self.sources, true, &mut Failing::default());
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

fn seq_of(id: &str) -> u64 {
    crate::store::journal::seq_of(id).unwrap_or(0)
}

fn build(facts: &Facts, cache: Option<CacheStatus>, s: &Sources) -> StatusSnapshot {
    let now_ms = s.clock.wall_ms();
    let usage = s.store.offline_usage().unwrap_or_else(|e| {
        log::warn!("status: cannot read the offline usage: {e}");
        Default::default()
    });
    let (minute, day) = s.ats.budget_remaining();
    let clock = crate::clock::ClockState::judge(s.ats.clock_skew_ms(), s.max_clock_skew_ms, now_ms);
    let date = crate::date::local_date(now_ms, s.utc_offset_minutes);
    let today = if facts.today.date == date {
        facts.today.clone()
    } else {
        DayTotals::new(&date)
    };
    StatusSnapshot {
        version: status::VERSION.into(),
        terminal: s.terminal.clone(),
        source: "agent".into(),
        as_of_ms: now_ms,
        as_of: rfc3339_ms(now_ms),
        pid: Some(std::process::id()),
        mode: facts.mode.clone(),
        mode_since_ms: Some(facts.mode_since_ms),
        mode_since: Some(rfc3339_ms(facts.mode_since_ms)),
        last_decision: facts.last.clone(),
        today,
        offline: OfflineExposure {
            used_cents: usage.cents,
            used_count: usage.count,
            ..s.caps.clone()
        },
        pending_uploads: s
            .venue_link
            .as_ref()
            .and_then(|l| l.pending(facts.journal_entries)),
        venue_mode: s.venue_mode,
        ats_budget: Some(AtsBudget { minute, day }),
        ats_calls: Some(s.ats.call_counts()),
        presence_budget: s.presence.as_ref().map(|p| {
            let (minute, day) = p.budget_remaining();
            AtsBudget { minute, day }
        }),
        presence_calls: s.presence.as_ref().map(|p| p.call_counts()),
        prefetch: Some(prefetch_status(&s.prefetch.snapshot())),
        cache,
        journal_entries: facts.journal_entries,
        disk: DiskStatus::read(&s.store_dir, s.min_free_bytes),
        clock: ClockStatus::from_state(clock),
    }
}

/// Which writes failed last time: a failure is logged when it starts and when it
/// ends, not every second.
#[derive(Default)]
struct Failing {
    status: bool,
    metrics: bool,
}

/// Logs `result` only when it differs from the last one of its kind.
fn note(what: &str, failing: &mut bool, result: Result<(), status::StatusError>) {
    match result {
        Err(e) if !*failing => {
            *failing = true;
            log::warn!("{what}: {e} (again every write until it works; logged once)");
        }
        Ok(()) if *failing => {
            *failing = false;
            log::info!("{what}: written again");
        }
        _ => {}
    }
}

/// Writes the status file, and the metrics file when `metrics` (and configured).
fn write_files(
    facts: &Facts,
    cache: Option<CacheStatus>,
    s: &Sources,
    metrics: bool,
    failing: &mut Failing,
) {
    let snap = build(facts, cache, s);
    if let Some(link) = &s.venue_link {
        link.offer(&snap);
    }
    note(
        "status",
        &mut failing.status,
        status::publish(&s.store_dir, &snap),
    );
    if let (true, Some(path)) = (metrics, &s.metrics.textfile) {
        let text = facts.metrics.render(&snap);
        note(
            "metrics",
            &mut failing.metrics,
            status::write_replacing(path, text.as_bytes()),
        );
    }
}

fn publish_loop(
    facts: &Mutex<Facts>,
    cache: &Mutex<Option<CacheStatus>>,
    s: &Sources,
    wake: &Receiver<()>,
    stop: &AtomicBool,
) {
    let mut next_cache: Option<Instant> = None;
    let mut next_metrics: Option<Instant> = None;
    let mut warned = false;
    let mut last_write: Option<Instant> = None;
    let mut last_pass = None;
    let mut failing = Failing::default();
    while !stop.load(Ordering::SeqCst) {
        // A burst of decisions wakes the thread for each: at most one write per
        // MIN_SPACING.
        if let Some(gap) = last_write.map(|t| MIN_SPACING.saturating_sub(t.elapsed())) {
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        let now = Instant::now();
        last_write = Some(now);
        // A prefetch page changes the cache: count again soon after (not per page).
        let p = s.prefetch.snapshot();
        let pass = (p.pass_started_ms, p.pages, p.state);
        if last_pass != Some(pass) {
            last_pass = Some(pass);
            next_cache = Some(next_cache.map_or(now, |t| t.min(now + RECOUNT_AFTER_PREFETCH)));
        }
        if next_cache.is_none_or(|t| now >= t) {
            match CacheStatus::count(&s.store, s.clock.wall_ms()) {
                Ok(c) => *lock(cache) = Some(c),
                Err(e) if !warned => {
                    warned = true;
                    log::warn!("status: cannot count the cache: {e}");
                }
                Err(_) => {}
            }
            next_cache = Some(now + CACHE_INTERVAL);
        }
        let metrics_due = next_metrics.is_none_or(|t| now >= t);
        if metrics_due {
            next_metrics = Some(now + s.metrics.interval);
        }
        let f = lock(facts).clone();
        let c = lock(cache).clone();
        write_files(&f, c, s, metrics_due, &mut failing);
        match wake.recv_timeout(STATUS_INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The refresher's progress as the status shows it.
fn prefetch_status(p: &prefetch::PrefetchProgress) -> PrefetchStatus {
    let state = serde_json::to_value(p.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    PrefetchStatus {
        event: p.event.clone(),
        state,
        pages: p.pages,
        tickets: p.tickets,
        wait_ms: p.wait_ms,
        completed: p.completed_ms.map(rfc3339_ms),
        last_error: p.last_error.clone(),
    }
}
