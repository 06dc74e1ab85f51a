//! Prefetch and refresh: loading an event's value into the cache before the doors open.
//!
//! One `get_av_barcodes` by event answers for up to 500 tickets per call ("a page"), so
//! a stand that prefetched its events spends no API call on most scans. The listing
//! carries value lines but not the seat; a prefetched ticket is recorded as `ACTIVE` for
//! its event (the listing leaves out void, reissued and returned tickets), and a record
//! already in the cache keeps its verified identity and only takes the new balances.
//!
//! A listing is streamed, never held whole: each page is written to the cache as it
//! arrives (plain sled inserts, no transaction: a sled transaction takes a lock every
//! reader and writer of the database waits on, which is what blocked the scan loop for
//! seconds behind a 100,000-ticket prefetch) and made durable without the redo log's
//! lock, and only then the pass's cursor (last barcode, page and ticket counts) is
//! moved past it. Memory stays bounded by one page, a page is usable as soon as it is
//! written, and a pass cut off (rate limit, stop, crash, restart) resumes after its last
//! written page. A rate limit is waited out (up to [`PrefetchRun::max_wait`]) instead
//! of ending the pass.
//!
//! A pass has a generation, the wall time it started. When a pass completes, its
//! generation is recorded for the event, and from then on a cached ticket of the event
//! older than it (one the pass did not list) is no longer read from the cache
//! (`Store::get_record`): the listing leaves out voided tickets, so a ticket voided
//! after an earlier prefetch must not stay approvable from cache. Only a completed pass
//! retires tickets; an interrupted one has not seen the whole event.
//!
//! The background refresher repeats the listing at an interval, paced so that the
//! per-minute budget always keeps a reserve for scans.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::ats::wire::EventSummary;
use crate::ats::{AtsClient, AtsError, RateWindow};
use crate::clock::SharedClock;
use crate::store::{PrefetchCursor, Store, StoreError};
use crate::ticket::{TicketInfo, TicketRecord, TicketStatus, ValueLine};

/// Why a prefetch failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrefetchError {
    /// ATS refused or could not be reached.
    Ats(AtsError),
    /// The cache could not be written.
    Store(StoreError),
    /// Stopped between pages (the pages written are kept; the next pass resumes).
    Stopped,
}

impl fmt::Display for PrefetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefetchError::Ats(e) => write!(f, "prefetch: ats: {e}"),
            PrefetchError::Store(e) => write!(f, "prefetch: store: {e}"),
            PrefetchError::Stopped => write!(f, "prefetch: stopped (the pages written are kept)"),
        }
    }
}

impl std::error::Error for PrefetchError {}

impl From<AtsError> for PrefetchError {
    fn from(e: AtsError) -> Self {
        PrefetchError::Ats(e)
    }
}

impl From<StoreError> for PrefetchError {
    fn from(e: StoreError) -> Self {
        PrefetchError::Store(e)
    }
}

/// Groups an event listing into one record per ticket (pure). A ticket's lines keep
/// the order ATS sent them; a line repeated with the same `av_id` replaces the earlier
/// one (a page overlap or a repeated row never adds value).
pub fn records_from_listing(
    event: &EventSummary,
    rows: Vec<(String, ValueLine)>,
    now_ms: u64,
) -> Vec<TicketRecord> {
    let mut by_ticket: BTreeMap<String, Vec<ValueLine>> = BTreeMap::new();
    for (barcode, line) in rows {
        crate::ticket::push_merged(by_ticket.entry(barcode).or_default(), line);
    }
    by_ticket
        .into_iter()
        .map(|(barcode, value)| TicketRecord {
            info: Some(TicketInfo {
                barcode: barcode.clone(),
                event_name: event.event_name.clone(),
                event_date: event.event_date.clone(),
                event_time: event.event_time.clone(),
                acct_id: None,
                section_name: None,
                row_name: None,
                seat_num: None,
                price_code: None,
                status: TicketStatus::Active,
            }),
            barcode,
            value,
            fetched_at_ms: now_ms,
        })
        .collect()
}

/// Adds `new` lines to `into`, each replacing a line with the same `av_id` (pure).
pub(crate) fn replace_lines_by_av_id(into: &mut Vec<ValueLine>, new: Vec<ValueLine>) {
    for line in new {
        match into.iter_mut().find(|l| l.av_id == line.av_id) {
            Some(old) => *old = line,
            None => into.push(line),
        }
    }
}

/// True when `record` is about `event` (case-insensitive, as ATS matches names).
fn is_of_event(record: &TicketRecord, event: &str) -> bool {
    record
        .info
        .as_ref()
        .is_some_and(|i| i.event_name.eq_ignore_ascii_case(event))
}

/// Merges a page's record with what is cached: keeps a verified identity of the same
/// event; and when the cached record was written in this pass (`fetched_at_ms` at or
/// after `pass_started_ms`: an earlier page ended inside this ticket's lines, or a
/// live lookup answered meanwhile), keeps its lines, replaced by `av_id`. A record from
/// an earlier pass is replaced: the listing is the newer truth.
fn merge_cached(
    old: Option<TicketRecord>,
    mut fresh: TicketRecord,
    pass_started_ms: u64,
) -> TicketRecord {
    let Some(old) = old else {
        return fresh;
    };
    let same_event = fresh
        .info
        .as_ref()
        .is_some_and(|f| is_of_event(&old, &f.event_name));
    if !same_event {
        return fresh;
    }
    if old.fetched_at_ms >= pass_started_ms {
        let mut lines = old.value;
        replace_lines_by_av_id(&mut lines, fresh.value);
        fresh.value = lines;
    }
    if let Some(info) = old.info {
        fresh.info = Some(info);
    }
    fresh
}

/// Where a prefetch stands, for the operator's terminal, the log and a status view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrefetchProgress {
    /// The event being (or last) fetched.
    pub event: String,
    /// What the prefetch is doing.
    pub state: PrefetchState,
    /// The generation of the pass: the wall time (ms) it started.
    pub pass_started_ms: u64,
    /// True when this pass resumed one that was cut off.
    pub resumed: bool,
    /// Pages written in this pass (including those before a resume).
    pub pages: u64,
    /// Tickets written in this pass (a ticket split over two pages counts twice).
    pub tickets: u64,
    /// Calls left this minute and today in the client's budget.
    pub calls_left: (u32, u32),
    /// While waiting for the rate budget: how long, ms.
    pub wait_ms: u64,
    /// Wall time (ms) the last pass of this event completed.
    pub completed_ms: Option<u64>,
    /// Why the last pass stopped short, if it did.
    pub last_error: Option<String>,
}

/// What a prefetch is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefetchState {
    /// Nothing has run yet.
    #[default]
    Idle,
    /// Fetching and writing pages.
    Fetching,
    /// Waiting for the rate budget (`wait_ms`).
    Waiting,
    /// The last pass completed.
    Done,
    /// The last pass stopped short (`last_error`); its pages are kept, the next pass
    /// resumes after them.
    Stopped,
}

/// A shared, cheaply cloned view of the prefetch's progress: the refresher writes it,
/// the agent (and a status view) reads it.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<PrefetchProgress>>);

impl Progress {
    /// A copy of the progress now.
    pub fn snapshot(&self) -> PrefetchProgress {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut PrefetchProgress)) -> PrefetchProgress {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        g.clone()
    }
}

/// How one prefetch runs.
pub struct PrefetchRun<'a> {
    /// Calls per minute kept for scans (background use: each page waits until more
    /// than this many are free); `None` spends the budget freely (the operator).
    pub reserve_per_minute: Option<u32>,
    /// Set to end the prefetch between pages (the pages written are kept).
    pub stop: &'a AtomicBool,
    /// Where progress is published.
    pub progress: &'a Progress,
    /// The longest rate-limit wait accepted before the pass stops (resumable).
    pub max_wait: Duration,
    /// `fetched_at_ms` for the records and the generation of a new pass, instead of the
    /// clock's time (tests: an old stamp makes the cache stale).
    pub stamp_ms: Option<u64>,
    /// Called after every page and while waiting (the operator's terminal).
    pub on_progress: Option<&'a mut dyn FnMut(&PrefetchProgress)>,
}

/// What a completed prefetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchSummary {
    /// Pages written in the pass.
    pub pages: u64,
    /// Tickets written in the pass (see [`PrefetchProgress::tickets`]).
    pub tickets: u64,
    /// True when the pass resumed one cut off earlier.
    pub resumed: bool,
    /// Time this run spent waiting out rate limits (on its clock).
    pub waited: Duration,
}

/// How long to wait before retrying after `e`, when it is a rate limit worth waiting
/// for (the minute window or a server closure); `None` for every other error, and for
/// the day's budget (hours: the pass stops, resumable).
fn rate_wait(e: &AtsError) -> Option<Duration> {
    match e {
        AtsError::RateBudget {
            window: RateWindow::Day,
            ..
        } => None,
        AtsError::RateBudget { retry_after, .. } => Some(*retry_after),
        AtsError::RateLimited { retry_after, .. } => {
            Some(retry_after.unwrap_or(Duration::from_secs(60)))
        }
        _ => None,
    }
}

/// Runs `f` again while it fails on a rate limit worth waiting for (see `rate_wait`)
/// of at most `max_wait`, sleeping on `clock` in short steps; `on_wait` is told the
/// time left. Ends with [`PrefetchError::Stopped`] when `stop` is set while waiting.
/// For the calls around the listing (`event_search`), which the pages' own waiting
/// does not cover.
pub fn retry_rate_limited<T>(
    clock: &SharedClock,
    stop: &AtomicBool,
    max_wait: Duration,
    mut on_wait: impl FnMut(Duration),
    mut f: impl FnMut() -> Result<T, PrefetchError>,
) -> Result<T, PrefetchError> {
    loop {
        let wait = match f() {
            Err(PrefetchError::Ats(e)) => match rate_wait(&e) {
                Some(w) if w <= max_wait => w,
                _ => return Err(PrefetchError::Ats(e)),
            },
            other => return other,
        };
        let until = clock.now() + wait.max(Duration::from_millis(50));
        while clock.now() < until {
            if stop.load(Ordering::SeqCst) {
                return Err(PrefetchError::Stopped);
            }
            let left = until - clock.now();
            on_wait(left);
            clock.sleep(left.min(Duration::from_millis(500)));
        }
    }
}

/// Streams one event's listing into the cache, page by page, resuming a pass that was
/// cut off (see the module header). Returns when the pass completes; on an error the
/// pages written stay and the next call resumes after them.
pub fn prefetch_event_paged(
    ats: &AtsClient,
    store: &Store,
    event: &EventSummary,
    run: &mut PrefetchRun<'_>,
) -> Result<PrefetchSummary, PrefetchError> {
    let result = stream_event(ats, store, event, run);
    if let Err(PrefetchError::Ats(AtsError::Decode { .. })) = &result {
        // An answer this pass cannot page through would fail again at the same
        // cursor on every resume: the pass is abandoned (retiring nothing) and the next
        // one starts from the first page.
        if let Ok(Some(mut c)) = store.prefetch_cursor(&event.event_name) {
            c.complete = true;
            if let Err(e) = store.set_prefetch_cursor(&event.event_name, &c) {
                log::warn!("prefetch {}: {e}", event.event_name);
            }
        }
    }
    let snap = run.progress.update(|p| match &result {
        Ok(_) => {
            p.state = PrefetchState::Done;
            p.last_error = None;
        }
        Err(e) => {
            p.state = PrefetchState::Stopped;
            p.last_error = Some(e.to_string());
        }
    });
    if let Some(f) = run.on_progress.as_mut() {
        f(&snap);
    }
    result
}

fn stream_event(
    ats: &AtsClient,
    store: &Store,
    event: &EventSummary,
    run: &mut PrefetchRun<'_>,
) -> Result<PrefetchSummary, PrefetchError> {
    let clock = ats.clock().clone();
    let now = |stamp: Option<u64>| stamp.unwrap_or_else(|| clock.wall_ms());
    let name = event.event_name.as_str();
    let mut cursor = match store.prefetch_cursor(name)? {
        Some(c) if !c.complete => c,
        previous => {
            let c = PrefetchCursor {
                pass_started_ms: now(run.stamp_ms),
                last_complete_pass_ms: previous.and_then(|p| p.last_complete_pass_ms),
                ..PrefetchCursor::default()
            };
            // Written now, so that a pass cut off before its first page still resumes
            // with its own generation.
            store.set_prefetch_cursor(name, &c)?;
            c
        }
    };
    let resumed = cursor.pages > 0;
    if resumed {
        log::info!(
            "prefetch {name}: resuming after page {} ({} tickets written)",
            cursor.pages,
            cursor.tickets
        );
    }
    run.progress.update(|p| {
        *p = PrefetchProgress {
            event: name.to_string(),
            state: PrefetchState::Fetching,
            pass_started_ms: cursor.pass_started_ms,
            resumed,
            pages: cursor.pages,
            tickets: cursor.tickets,
            calls_left: ats.budget_remaining(),
            completed_ms: p.completed_ms.filter(|_| p.event == name),
            ..PrefetchProgress::default()
        }
    });
    let pace = run.reserve_per_minute.map(|r| (r, run.stop));
    let mut waited = Duration::ZERO;
    loop {
        if run.stop.load(Ordering::SeqCst) {
            return Err(PrefetchError::Stopped);
        }
        let page = match ats.get_av_barcodes_event_page(name, cursor.last_barcode.as_deref(), pace)
        {
            Ok(page) => page,
            // A paced wait ended by `stop` comes back as a rate refusal.
            Err(_) if run.stop.load(Ordering::SeqCst) => return Err(PrefetchError::Stopped),
            Err(e) => match rate_wait(&e) {
                Some(wait) if wait <= run.max_wait => {
                    let from = clock.now();
                    wait_out(&clock, wait, run, ats)?;
                    waited += clock.now().saturating_duration_since(from);
                    continue;
                }
                _ => return Err(e.into()),
            },
        };
        let Some((last, _)) = page.rows.last() else {
            break;
        };
        let last = last.clone();
        if cursor.last_barcode.as_deref() == Some(last.as_str()) {
            return Err(PrefetchError::Ats(AtsError::decode(
                "command1.av_barcodes",
                format!("event pages do not advance after page {}", cursor.pages),
            )));
        }
        let stamp = now(run.stamp_ms);
        let records: Vec<TicketRecord> = records_from_listing(event, page.rows, stamp)
            .into_iter()
            .map(|r| {
                let old = store.get_record(&r.barcode).ok().flatten();
                merge_cached(old, r, cursor.pass_started_ms)
            })
            .collect();
        store.put_records(records.iter())?;
        cursor.pages += 1;
        // A ticket that straddles the page boundary, or a server that reads
        // `prev_barcode` inclusively, repeats the previous page's last ticket: it was
        // counted there.
        let repeated = cursor.last_barcode.as_deref();
        cursor.tickets += records
            .iter()
            .filter(|r| Some(r.barcode.as_str()) != repeated)
            .count() as u64;
        cursor.last_barcode = Some(last);
        // The page is made durable before the cursor names it, so a cursor that
        // survives a crash never points past a page that did not (the cursor itself
        // is durable with the next page's sync: a crash re-fetches at most one page,
        // whose lines replace themselves by `av_id`).
        store.sync_cache()?;
        store.set_prefetch_cursor(name, &cursor)?;
        let snap = run.progress.update(|p| {
            p.pages = cursor.pages;
            p.tickets = cursor.tickets;
            p.calls_left = ats.budget_remaining();
            p.state = PrefetchState::Fetching;
            p.wait_ms = 0;
        });
        if cursor.pages % 20 == 0 {
            log::info!(
                "prefetch {name}: {} pages, {} tickets, {} calls left this minute",
                snap.pages,
                snap.tickets,
                snap.calls_left.0
            );
        }
        if let Some(f) = run.on_progress.as_mut() {
            f(&snap);
        }
        if !page.more {
            break;
        }
    }
    // A completed pass: what it did not list is no longer approvable from cache
    // (`Store::get_record` leaves out the event's records older than this pass).
    cursor.complete = true;
    cursor.completed_ms = Some(clock.wall_ms());
    cursor.last_complete_pass_ms = Some(cursor.pass_started_ms);
    store.set_prefetch_cursor(name, &cursor)?;
    store.sync_cache()?;
    run.progress.update(|p| {
        p.completed_ms = cursor.completed_ms;
    });
    Ok(PrefetchSummary {
        pages: cursor.pages,
        tickets: cursor.tickets,
        resumed,
        waited,
    })
}

/// Waits `wait` on the clock in short steps, publishing the time left; ends early
/// with [`PrefetchError::Stopped`] when `stop` is set.
fn wait_out(
    clock: &SharedClock,
    wait: Duration,
    run: &mut PrefetchRun<'_>,
    ats: &AtsClient,
) -> Result<(), PrefetchError> {
    let until = clock.now() + wait.max(Duration::from_millis(50));
    log::info!("prefetch: rate budget spent, waiting {} s", wait.as_secs());
    loop {
        let now = clock.now();
        if now >= until {
            return Ok(());
        }
        if run.stop.load(Ordering::SeqCst) {
            return Err(PrefetchError::Stopped);
        }
        let left = until - now;
        let snap = run.progress.update(|p| {
            p.state = PrefetchState::Waiting;
            p.wait_ms = left.as_millis() as u64;
            p.calls_left = ats.budget_remaining();
        });
        if let Some(f) = run.on_progress.as_mut() {
            f(&snap);
        }
        clock.sleep(left.min(Duration::from_millis(500)));
    }
}

/// Loads one event's value into the cache ([`prefetch_event_paged`] without progress
/// or waiting). `now_ms` stamps the records and starts a new pass. `pace` keeps a
/// per-minute reserve for scans (background use); `None` spends the budget freely.
/// Returns the tickets written.
pub fn prefetch_event(
    ats: &AtsClient,
    store: &Store,
    event: &EventSummary,
    now_ms: u64,
    pace: Option<(u32, &AtomicBool)>,
) -> Result<usize, PrefetchError> {
    let never = AtomicBool::new(false);
    let progress = Progress::default();
    let mut run = PrefetchRun {
        reserve_per_minute: pace.map(|(r, _)| r),
        stop: pace.map_or(&never, |(_, s)| s),
        progress: &progress,
        max_wait: Duration::ZERO,
        stamp_ms: Some(now_ms),
        on_progress: None,
    };
    let summary = prefetch_event_paged(ats, store, event, &mut run)?;
    Ok(summary.tickets as usize)
}

/// The events to prefetch: the configured ones (dated by `event_search` when it knows
/// them), or every event dated today.
pub fn events_to_prefetch(
    ats: &AtsClient,
    configured: &[String],
    today: &str,
) -> Result<Vec<EventSummary>, PrefetchError> {
    let todays = ats.event_search(today, today)?;
    if configured.is_empty() {
        return Ok(todays);
    }
    Ok(configured
        .iter()
        .map(|name| {
            todays
                .iter()
                .find(|e| e.event_name.eq_ignore_ascii_case(name))
                .cloned()
                .unwrap_or_else(|| EventSummary {
                    event_name: name.clone(),
                    event_date: None,
                    event_time: None,
                })
        })
        .collect())
}

/// Settings of the background refresher.
#[derive(Debug, Clone)]
pub struct RefreshPlan {
    /// Events this stand serves (empty: today's).
    pub events: Vec<String>,
    /// Venue offset from UTC, minutes.
    pub utc_offset_minutes: i32,
    /// Run once at start.
    pub at_start: bool,
    /// Then every this often.
    pub interval: Duration,
    /// Minute budget kept for scans.
    pub reserve_per_minute: u32,
    /// Where the refresher publishes its progress (the agent reads it for its status).
    pub progress: Progress,
}

/// Runs prefetch at start (if asked) and then every `interval`, until `stop`. A pass
/// cut off (rate limit, error, restart) resumes at the next run after its last page.
pub fn spawn_refresher(
    ats: Arc<AtsClient>,
    store: Store,
    clock: SharedClock,
    plan: RefreshPlan,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("prefetch".into())
        .spawn(move || {
            // Refresh keeps the scans' reserve of the key's venue-wide budget too.
            crate::ats::mark_thread_background();
            let mut next = if plan.at_start {
                clock.now()
            } else {
                clock.now() + plan.interval
            };
            while !stop.load(Ordering::SeqCst) {
                if clock.now() >= next {
                    let soon = refresh_once(&ats, &store, &clock, &plan, &stop);
                    // A pass cut short by a rate limit longer than it would wait
                    // resumes within a minute; anything else (done, the day's budget,
                    // ATS down) waits for the interval, so retries never eat the day's
                    // budget kept for scans.
                    let after = if soon {
                        plan.interval.min(Duration::from_secs(60))
                    } else {
                        plan.interval
                    };
                    next = clock.now() + after;
                }
                clock.sleep(Duration::from_millis(200));
            }
        })
}

/// One refresh of every served event; true when a pass was cut short by a minute or
/// server rate limit (worth resuming soon).
fn refresh_once(
    ats: &AtsClient,
    store: &Store,
    clock: &SharedClock,
    plan: &RefreshPlan,
    stop: &AtomicBool,
) -> bool {
    let today = crate::date::local_date(clock.wall_ms(), plan.utc_offset_minutes);
    let events = match events_to_prefetch(ats, &plan.events, &today) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("{e}");
            return is_short_rate_limit(&e);
        }
    };
    let mut soon = false;
    for event in &events {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let mut run = PrefetchRun {
            reserve_per_minute: Some(plan.reserve_per_minute),
            stop,
            progress: &plan.progress,
            max_wait: plan.interval.max(Duration::from_secs(60)),
            stamp_ms: None,
            on_progress: None,
        };
        match prefetch_event_paged(ats, store, event, &mut run) {
            Ok(s) => log::info!(
                "prefetched {} tickets of {} in {} pages",
                s.tickets,
                event.event_name,
                s.pages
            ),
            Err(PrefetchError::Stopped) => {
                log::info!(
                    "prefetch of {} stopped; its pages are kept",
                    event.event_name
                );
            }
            Err(e) => {
                soon |= is_short_rate_limit(&e);
                log::warn!("{} of {}; its pages are kept", e, event.event_name);
            }
        }
    }
    soon
}

/// True for a minute or server rate limit (not the day's budget).
fn is_short_rate_limit(e: &PrefetchError) -> bool {
    matches!(e, PrefetchError::Ats(a) if rate_wait(a).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::ValueKind;

    fn line(av_id: &str, balance: u64) -> ValueLine {
        ValueLine {
            av_id: av_id.into(),
            kind: ValueKind::Money,
            description: "credit".into(),
            loaded: 1000,
            balance,
            valid_from: None,
            valid_until: None,
        }
    }

    fn event() -> EventSummary {
        EventSummary {
            event_name: "EVENT01".into(),
            event_date: None,
            event_time: None,
        }
    }

    fn one(rows: Vec<(String, ValueLine)>, at: u64) -> TicketRecord {
        records_from_listing(&event(), rows, at).remove(0)
    }

    #[test]
    fn a_line_repeated_in_a_listing_is_kept_once_and_never_adds_value() {
        let rows = vec![
            ("1".to_string(), line("A", 1000)),
            ("1".to_string(), line("B", 500)),
            ("1".to_string(), line("A", 1000)),
        ];
        let r = one(rows, 5);
        assert_eq!(r.value, vec![line("A", 1000), line("B", 500)]);
    }

    #[test]
    fn a_line_repeated_with_another_balance_stays_visible_as_a_conflict() {
        // Two different rows for one value line: neither is trusted (ticket::push_merged
        // keeps both, so `decide` denies the record `bad_record` instead of picking one).
        let rows = vec![
            ("1".to_string(), line("A", 1000)),
            ("1".to_string(), line("B", 500)),
            ("1".to_string(), line("A", 700)),
        ];
        let r = one(rows, 5);
        assert_eq!(r.value.len(), 3);
        assert!(crate::ticket::merge_lines(&r.value).is_err());
    }

    #[test]
    fn a_ticket_split_over_two_pages_keeps_both_pages_lines_once() {
        // Page 1 ended inside ticket 1 (lines A, B); page 2 starts with B again and C.
        let first = one(
            vec![("1".into(), line("A", 1)), ("1".into(), line("B", 2))],
            100,
        );
        let second = one(
            vec![("1".into(), line("B", 3)), ("1".into(), line("C", 4))],
            101,
        );
        let merged = merge_cached(Some(first), second, 100);
        assert_eq!(merged.value, vec![line("A", 1), line("B", 3), line("C", 4)]);
    }

    #[test]
    fn a_record_from_an_earlier_pass_is_replaced_not_merged() {
        // A line that ATS no longer lists must not survive from the last pass.
        let old = one(
            vec![("1".into(), line("A", 1)), ("1".into(), line("GONE", 9))],
            50,
        );
        let fresh = one(vec![("1".into(), line("A", 0))], 101);
        let merged = merge_cached(Some(old), fresh, 100);
        assert_eq!(merged.value, vec![line("A", 0)]);
    }

    #[test]
    fn a_verified_identity_of_the_same_event_is_kept() {
        let mut old = one(vec![("1".into(), line("A", 1))], 50);
        if let Some(i) = old.info.as_mut() {
            i.section_name = Some("101".into());
            i.event_name = "event01".into();
        }
        let merged = merge_cached(Some(old), one(vec![("1".into(), line("A", 0))], 101), 100);
        assert_eq!(
            merged.info.and_then(|i| i.section_name).as_deref(),
            Some("101")
        );
    }

    #[test]
    fn only_rate_limits_of_the_minute_or_the_server_are_waited_out() {
        let minute = AtsError::RateBudget {
            window: RateWindow::Minute,
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(rate_wait(&minute), Some(Duration::from_secs(3)));
        let day = AtsError::RateBudget {
            window: RateWindow::Day,
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(rate_wait(&day), None);
        let server = AtsError::RateLimited {
            retry_after: None,
            message: String::new(),
        };
        assert_eq!(rate_wait(&server), Some(Duration::from_secs(60)));
    }
}
