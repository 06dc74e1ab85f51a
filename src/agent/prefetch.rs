//! Prefetch and refresh: loading an event's value into the cache before the doors open.
//!
//! One `get_av_barcodes` by event answers for up to 500 tickets per call, so a stand
//! that prefetched its events spends no API call on most scans. The listing carries
//! value lines but not the seat; a prefetched ticket is recorded as `ACTIVE` for its
//! event (the listing leaves out void, reissued and returned tickets), and a record
//! already in the cache keeps its verified identity and only takes the new balances.
//! The background refresher repeats the listing at an interval, paced so that the
//! per-minute budget always keeps a reserve for scans.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ats::wire::EventSummary;
use crate::ats::{AtsClient, AtsError};
use crate::clock::SharedClock;
use crate::store::{Store, StoreError};
use crate::ticket::{TicketInfo, TicketRecord, TicketStatus, ValueLine};

/// Why a prefetch failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrefetchError {
    /// ATS refused or could not be reached.
    Ats(AtsError),
    /// The cache could not be written.
    Store(StoreError),
}

impl fmt::Display for PrefetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefetchError::Ats(e) => write!(f, "prefetch: ats: {e}"),
            PrefetchError::Store(e) => write!(f, "prefetch: store: {e}"),
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

/// Groups an event listing into one record per ticket (pure).
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

/// Keeps a verified identity already cached; takes the new balances and time.
fn merge(store: &Store, mut fresh: TicketRecord) -> TicketRecord {
    if let Ok(Some(old)) = store.get_record(&fresh.barcode) {
        if let Some(info) = old.info {
            if fresh
                .info
                .as_ref()
                .is_some_and(|f| f.event_name == info.event_name)
            {
                fresh.info = Some(info);
            }
        }
    }
    fresh
}

/// Loads one event's value into the cache. `pace` keeps a per-minute reserve for
/// scans (background use); `None` spends the budget freely (the operator's command).
pub fn prefetch_event(
    ats: &AtsClient,
    store: &Store,
    event: &EventSummary,
    now_ms: u64,
    pace: Option<(u32, &AtomicBool)>,
) -> Result<usize, PrefetchError> {
    let rows = match pace {
        Some((reserve, stop)) => {
            ats.get_av_barcodes_for_event_paced(&event.event_name, reserve, stop)?
        }
        None => ats.get_av_barcodes_for_event(&event.event_name)?,
    };
    let records: Vec<TicketRecord> = records_from_listing(event, rows, now_ms)
        .into_iter()
        .map(|r| merge(store, r))
        .collect();
    let n = store.put_records(records.iter())?;
    store.flush()?;
    Ok(n)
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
}

/// Runs prefetch at start (if asked) and then every `interval`, until `stop`.
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
            let mut next = if plan.at_start {
                clock.now()
            } else {
                clock.now() + plan.interval
            };
            while !stop.load(Ordering::SeqCst) {
                if clock.now() >= next {
                    refresh_once(&ats, &store, &clock, &plan, &stop);
                    next = clock.now() + plan.interval;
                }
                clock.sleep(Duration::from_millis(200));
            }
        })
}

fn refresh_once(
    ats: &AtsClient,
    store: &Store,
    clock: &SharedClock,
    plan: &RefreshPlan,
    stop: &AtomicBool,
) {
    let today = super::local_date(clock.wall_ms(), plan.utc_offset_minutes);
    let events = match events_to_prefetch(ats, &plan.events, &today) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("{e}");
            return;
        }
    };
    for event in &events {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match prefetch_event(
            ats,
            store,
            event,
            clock.wall_ms(),
            Some((plan.reserve_per_minute, stop)),
        ) {
            Ok(n) => log::info!("prefetched {n} tickets of {}", event.event_name),
            Err(e) => log::warn!("{} of {}", e, event.event_name),
        }
    }
}
