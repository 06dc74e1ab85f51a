//! The agent: the scan loop, its worker threads, connectivity and shutdown.
//!
//! One thread owns the loop. It takes [`AgentRequest`]s (scans and voids) from one
//! channel, gathers evidence (fresh cache, or a live lookup bounded by the decision
//! deadline, or the cache under offline rules), asks the pure [`decide`] for a verdict,
//! commits it to the store (journal + ledger, flushed) and only then signals the POS.
//! ATS calls run on the [`lookup::Lookups`] worker pool; background prefetch and
//! refresh on their own thread ([`prefetch`]).

pub mod control;
mod deliver;
mod error;
mod evaluation;
pub mod health;
pub mod lookup;
mod observe;
mod outputs;
pub mod prefetch;
pub mod publish;
pub mod safetix;
mod unlisted;
mod venue;
mod venue_state;
mod venue_sync;

pub use error::AgentError;
pub use outputs::Outputs;

pub use venue_state::VenueState;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::ats::AtsClient;
use crate::clock::SharedClock;
use crate::config::Config;
pub use crate::date::local_date;
use crate::decide::{
    self, DecideInput, Decision, Evidence, Mode, OfflineCaps, Policy, ScanKind, TicketLedger,
};
use crate::money::Cents;
use crate::redact::{mask_barcode, masked_error};
use crate::scan::{AgentRequest, ScanEvent, ScanInput};
use crate::signal::{AgentStatus, DecisionEvent, VoidEvent, VoidOutcome};
use crate::store::{rfc3339_ms, NewDecision, Store, StoreError, VoidError};
use crate::ticket::TicketRecord;

pub use evaluation::Evaluation;
use health::Health;
use lookup::Lookups;

/// The policy `decide` applies, from the configuration.
pub fn policy_from(config: &Config) -> Policy {
    let o = &config.offline;
    Policy {
        offline: OfflineCaps {
            per_transaction_cents: o.per_transaction_cents,
            per_ticket_cents: o.per_ticket_cents,
            total_cents: o.total_cents,
            total_count: o.total_count.into(),
            max_cache_age_ms: o.max_cache_age.as_millis() as u64,
        },
        offline_partial: o.partial,
        online_cache_max_age_ms: config.cache.fresh.as_millis() as u64,
        max_transaction_cents: config.max_transaction_cents,
    }
}

/// How much of the deadline is kept for committing and signalling.
fn commit_reserve(deadline: Duration) -> Duration {
    (deadline / 10).min(Duration::from_millis(100))
}

/// The redemption agent.
pub struct Agent {
    config: Config,
    clock: SharedClock,
    store: Store,
    ats: Arc<AtsClient>,
    lookups: Lookups,
    health: Arc<Mutex<Health>>,
    policy: Policy,
    outputs: Outputs,
    mode: Mode,
    probe: Option<Receiver<bool>>,
    next_probe: Instant,
    /// The clock's trust as last logged (see [`Agent::clock_state`]).
    clock_trusted: bool,
    /// Set when the output answering local scans failed for good (see `deliver`).
    output_lost: Option<String>,
    /// The outputs were told `low_disk` (an approval was refused for disk headroom).
    low_disk: bool,
    /// Venue mode (docs/venue.md); inert without `[venue]`.
    venue: VenueState,
    prefetch: prefetch::Progress,
    /// Phone tickets through Presence (`[presence]`); `None`: denied unresolved.
    safetix: Option<safetix::Resolver>,
    /// The status file and metrics (`publish.rs`).
    publisher: publish::Publisher,
}

impl Agent {
    /// Builds the agent from its parts (the store open, the client built).
    pub fn new(
        config: Config,
        ats: Arc<AtsClient>,
        store: Store,
        clock: SharedClock,
        outputs: Outputs,
    ) -> Agent {
        let health = Arc::new(Mutex::new(Health::new(config.health.clone())));
        let lookups = Lookups::start(
            Arc::clone(&ats),
            store.clone(),
            Arc::clone(&health),
            clock.clone(),
            4,
        );
        let next_probe = clock.now();
        let safetix = safetix::Resolver::from_config(&config, &ats, &store, &clock);
        let mut publisher =
            publish::Publisher::new(&config, store.clone(), Arc::clone(&ats), clock.clone());
        if let Some(r) = &safetix {
            publisher.set_presence(Arc::clone(r.client())); // its budget and calls in status
        }
        Agent {
            policy: policy_from(&config),
            config,
            clock,
            store,
            ats,
            lookups,
            health,
            outputs,
            mode: Mode::Online,
            probe: None,
            next_probe,
            clock_trusted: true,
            output_lost: None,
            low_disk: false,
            venue: VenueState::default(),
            prefetch: prefetch::Progress::default(),
            safetix,
            publisher,
        }
    }

    /// Turns venue mode on (the worker started, see `app::start_venue`).
    pub fn set_venue(&mut self, venue: VenueState) {
        if let Some(link) = venue.status_link() {
            self.publisher.set_venue_link(link); // heartbeats, pending uploads
        }
        self.venue = venue;
        self.venue_resume_window();
    }

    /// The store (for commands and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Shares the background refresher's progress with the agent (for its status).
    pub fn set_prefetch_progress(&mut self, progress: prefetch::Progress) {
        self.publisher.set_prefetch(progress.clone());
        self.prefetch = progress;
    }

    /// Where the background prefetch stands (pages, tickets, budget, waits).
    pub fn prefetch_progress(&self) -> prefetch::PrefetchProgress {
        self.prefetch.snapshot()
    }

    /// The ATS client.
    pub fn ats(&self) -> &Arc<AtsClient> {
        &self.ats
    }

    /// The connectivity mode as of the last check.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Forces the connectivity mode (tests, operator commands).
    pub fn force_mode(&mut self, mode: Mode) {
        if let Ok(mut h) = self.health.lock() {
            h.force(mode);
        }
        self.check_mode();
    }

    /// The wall clock against ATS's (`health.max_clock_skew_ms`): while it is wrong,
    /// nothing is approved from the cache (`clock_unsure`).
    pub fn clock_state(&self) -> crate::clock::ClockState {
        crate::clock::ClockState::judge(
            self.ats.clock_skew_ms(),
            self.config.health.max_clock_skew.as_millis() as u64,
            self.clock.wall_ms(),
        )
    }

    /// Now, for "today": the wall clock, or ATS's clock when ours is known to be wrong
    /// (a board at 1970 would otherwise find every ticket's value expired).
    fn venue_wall_ms(&self) -> u64 {
        let wall = self.clock.wall_ms();
        match self.clock_state() {
            crate::clock::ClockState::Wrong { skew_ms: Some(s) } => {
                u64::try_from(i128::from(wall) - i128::from(s)).unwrap_or(wall)
            }
            _ => wall,
        }
    }

    fn health_mode(&self) -> Mode {
        self.health
            .lock()
            .map(|h| h.mode())
            .unwrap_or(Mode::Offline)
    }

    /// Decides one scan without recording anything (the `lookup` command). It may call
    /// ATS and refresh the cache, as a real scan would.
    pub fn evaluate(
        &mut self,
        input: &ScanInput,
        requested: Option<Cents>,
        received_at_ms: u64,
    ) -> Evaluation {
        self.check_mode();
        let waited = self.clock.wall_ms().saturating_sub(received_at_ms);
        // The deadline runs from when the scan was read, not from when the loop got to it.
        let mut budget = (self.config.deadline)
            .saturating_sub(Duration::from_millis(waited))
            .saturating_sub(commit_reserve(self.config.deadline))
            // Venue mode: the two database steps keep their time too.
            .saturating_sub(self.venue.reserve(self.config.deadline));
        // A phone ticket: Presence and the seat index give the barcode (agent/safetix.rs).
        let resolver = self.safetix.as_mut();
        let (kind, via) = match safetix::scan_kind(resolver, input, received_at_ms, &mut budget) {
            Ok(k) => k,
            Err(deny) => return safetix::unresolved(deny),
        };
        // From a remembered mapping: offline rules, whatever ATS's state.
        let online = self.mode == Mode::Online && via != Some(safetix::Via::Cached);
        let now_ms = self.clock.wall_ms();
        let barcode = match &kind {
            ScanKind::Barcode(b) => b.clone(),
            _ => String::new(),
        };

        let cached = if barcode.is_empty() {
            None
        } else {
            self.store.get_record(&barcode).unwrap_or_else(|e| {
                log::warn!(
                    "cache read failed for {}: {}",
                    mask_barcode(&barcode),
                    masked_error(&e, &barcode)
                );
                None
            })
        };
        // `fresh_ms = 0` disables online cache use (as `decide` reads it): always ask.
        // A wrong clock makes every age meaningless: ask ATS instead.
        let clock_trusted = self.clock_state().is_trusted();
        let fresh = self.policy.online_cache_max_age_ms > 0
            && clock_trusted
            && cached
                .as_ref()
                .is_some_and(|r| r.age_ms(now_ms) <= self.policy.online_cache_max_age_ms);

        // A miss the served events' listings already answer: no call, and `not_listed`
        // (agent/unlisted.rs), journaled and committed in the venue as any deny.
        let unlisted = !barcode.is_empty() && online && cached.is_none() && self.listed_out(now_ms);
        let mut live: Option<TicketRecord> = None;
        let mut scan_mode = if online { Mode::Online } else { Mode::Offline };
        if !barcode.is_empty() && online && !fresh && !unlisted {
            // A scan that spent its deadline in the queue cannot wait for ATS: asking
            // would spend rate budget on an answer nobody waits for and count the
            // loop's delay against connectivity.
            if !budget.is_zero() {
                live = self.live_lookup(&barcode, budget);
            }
            if live.is_none() {
                // This scan falls back alone; the mode follows the rolling window.
                scan_mode = Mode::Offline;
            }
        }
        let record = live.clone().or(cached);
        // Venue mode: lock the ticket's lines in the venue, or, when it does not answer
        // in time, decide offline on the local ledger (the live answer then counts as a
        // cached one, so the offline caps apply).
        if self.venue_begin(&barcode, record.as_ref(), received_at_ms) {
            live = None;
            scan_mode = decide::Mode::Offline;
        }
        let evidence = match (&live, &record) {
            (Some(r), _) => Evidence::Live(r),
            (None, Some(r)) => Evidence::Cached {
                record: r,
                age_ms: r.age_ms(self.clock.wall_ms()),
            },
            (None, None) => Evidence::None,
        };
        let source = if live.is_some() {
            decide::Source::Live
        } else if scan_mode == Mode::Online {
            decide::Source::Cache
        } else {
            decide::Source::Offline
        };
        let ledger = if barcode.is_empty() {
            Ok(TicketLedger::default())
        } else {
            self.store.ledger(&barcode)
        };
        let (ledger, usage) = match (ledger, self.store.offline_usage()) {
            (Ok(l), Ok(u)) => (self.venue_ledger(l), u),
            (Err(e), _) | (_, Err(e)) => {
                // Without the ledger the agent cannot know what was spent: deny.
                log::error!("store read failed, denying: {}", masked_error(&e, &barcode));
                let decision = Decision::deny(
                    decide::Reason::StoreError,
                    source,
                    scan_mode == Mode::Offline,
                );
                return Evaluation {
                    barcode,
                    decision,
                    record,
                    safetix: via,
                };
            }
        };
        let today = local_date(self.venue_wall_ms(), self.config.utc_offset_minutes);
        // A remembered SafeTix mapping gets its own, lower caps (a screenshot replays it).
        let policy = safetix::policy(self.safetix.as_ref(), via, &self.policy);
        let decision = if unlisted {
            Decision::deny(decide::Reason::NotListed, decide::Source::Cache, false)
        } else {
            decide::decide(&DecideInput {
                scan: &kind,
                requested,
                evidence,
                mode: scan_mode,
                ledger: &ledger,
                usage,
                policy: &policy,
                today: &today,
                events: &self.config.events,
                clock_trusted,
            })
        };
        Evaluation {
            barcode,
            decision,
            record,
            safetix: via,
        }
    }

    /// Runs a live lookup, waiting at most `budget`. `None` when it did not arrive in
    /// time or failed (the late answer still refreshes the cache).
    fn live_lookup(&mut self, barcode: &str, budget: Duration) -> Option<TicketRecord> {
        let event = match self.config.events.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let pending = match self.lookups.lookup(barcode, event) {
            Some(p) => p,
            None => {
                log::warn!(
                    "ats workers saturated: deciding {} offline",
                    mask_barcode(barcode)
                );
                return None;
            }
        };
        match pending.wait(budget) {
            Ok(Ok(record)) => self.venue_share(record),
            Ok(Err(e)) => {
                log::warn!(
                    "ats lookup for {} failed: {}",
                    mask_barcode(barcode),
                    masked_error(&e, barcode)
                );
                None
            }
            Err(_) => {
                log::warn!(
                    "ats lookup for {} missed the {} ms deadline",
                    mask_barcode(barcode),
                    budget.as_millis()
                );
                if let Ok(mut h) = self.health.lock() {
                    h.record(false, budget);
                }
                None
            }
        }
    }

    /// Decides, journals (flushed) and signals one scan.
    pub fn handle_scan(&mut self, scan: &ScanEvent) -> Result<DecisionEvent, AgentError> {
        let eval = self.evaluate(&scan.input, scan.amount_cents, scan.received_at_ms);
        let latency_ms = self.clock.wall_ms().saturating_sub(scan.received_at_ms);
        let flag = eval.safetix.map(safetix::Via::as_str);
        let new = NewDecision {
            scan_time_ms: scan.received_at_ms,
            barcode: &eval.barcode,
            decision: &eval.decision,
            evidence: eval.record.as_ref(),
            latency_ms,
            request: scan.request_id.as_deref(),
        };
        let mark = self.venue_journal_mark();
        let entry = match self.store.commit_decision_flagged(&new, mark, flag) {
            Ok(entry) => entry,
            Err(e @ StoreError::NoHeadroom { .. }) => {
                // Low disk: the approval is refused before the disk could stop the
                // journal (store/headroom.rs). The deny is journaled (it needs no new
                // space) and the agent goes on; approvals resume when space is freed.
                log::error!("approval refused, denying store_error: {e}");
                self.venue_abort();
                if !self.low_disk {
                    self.low_disk = true;
                    self.publish_mode();
                    self.outputs.each(|s| s.status(AgentStatus::LowDisk));
                }
                let deny = Decision::deny(
                    decide::Reason::StoreError,
                    eval.decision.source,
                    eval.decision.offline,
                );
                let new = NewDecision {
                    decision: &deny,
                    ..new
                };
                match self.store.commit_decision_flagged(&new, None, flag) {
                    Ok(entry) => {
                        let mut event = entry.to_event();
                        event.venue = self.venue_journal_mark().map(str::to_string);
                        self.publisher.decided(&event, entry.offline, true);
                        self.outputs.each(|s| s.decision(&event));
                        return Ok(event);
                    }
                    Err(e) => {
                        log::error!("journal write failed, denying: {e}");
                        let event = self.unjournaled_deny(scan, latency_ms);
                        self.outputs.each(|s| s.decision(&event));
                        return Err(e.into());
                    }
                }
            }
            Err(e) => {
                // Nothing is approved that is not journaled: tell the POS it was denied.
                log::error!("journal write failed, denying: {e}");
                self.venue_abort();
                let event = self.unjournaled_deny(scan, latency_ms);
                self.outputs.each(|s| s.decision(&event));
                return Err(e.into());
            }
        };
        // Venue mode: commit in the venue, or settle an in-doubt commit.
        let (entry, venue_mark) = match self.venue_commit(scan, &eval, entry, latency_ms) {
            Ok(v) => v,
            Err(e) => {
                log::error!("journal write failed, denying: {e}");
                let event = self.unjournaled_deny(scan, latency_ms);
                self.outputs.each(|s| s.decision(&event));
                return Err(e.into());
            }
        };
        if self.low_disk && eval.decision.is_approve() {
            // Space was freed: approvals go through again.
            self.low_disk = false;
            self.publish_mode();
            log::info!("disk space back above the headroom: approvals resume");
            let status = match self.mode {
                Mode::Online => AgentStatus::Ready,
                Mode::Offline => AgentStatus::Offline,
            };
            self.outputs.each(|s| s.status(status));
        }
        let mut event = entry.to_event();
        event.venue = venue_mark.map(str::to_string);
        self.publisher.decided(&event, entry.offline, true);
        log::debug!(
            "{} {} {} {} cents via {} in {} ms",
            event.id,
            event.decision.as_str(),
            event.barcode,
            event.approved_cents,
            event.source,
            event.latency_ms
        );
        self.signal_decision(scan, &event);
        Ok(event)
    }

    /// The deny of a scan the store could not take (no id; counted in the metrics only).
    fn unjournaled_deny(&self, scan: &ScanEvent, latency_ms: u64) -> DecisionEvent {
        let event = DecisionEvent {
            id: String::new(),
            time: rfc3339_ms(scan.received_at_ms),
            terminal: self.config.terminal_id.clone(),
            barcode: scan.input.masked(),
            decision: crate::decide::Verdict::Deny,
            reason: crate::decide::Reason::StoreError,
            approved_cents: 0,
            items: Vec::new(),
            source: crate::decide::Source::Offline,
            latency_ms,
            request: scan.request_id.clone(),
            venue: None,
        };
        self.publisher.decided(&event, false, false);
        event
    }

    /// Voids an earlier decision and reports the result to the outputs.
    pub fn handle_void(&mut self, decision_id: &str, request_id: Option<&str>) -> VoidEvent {
        let now = self.clock.wall_ms();
        let mut event = VoidEvent {
            decision_id: decision_id.to_string(),
            request_id: request_id.map(str::to_string),
            outcome: VoidOutcome::Voided,
            reversed_cents: 0,
            items: Vec::new(),
            error: None,
            time: rfc3339_ms(now),
            terminal: self.config.terminal_id.clone(),
        };
        match self.store.void(decision_id, now, request_id) {
            Ok(v) => {
                self.publisher.voided(&v.entry);
                event.reversed_cents = v.entry.approved_cents;
                event.items = v
                    .entry
                    .items
                    .iter()
                    .map(|i| i.description.clone())
                    .collect();
                if v.upstream_cents > 0 || v.upstream_items > 0 {
                    log::warn!(
                        "void {}: {} cents and {} items were already reflected upstream; refund them in ATS",
                        decision_id,
                        v.upstream_cents,
                        v.upstream_items
                    );
                }
            }
            Err(e) => {
                event.outcome = match &e {
                    VoidError::UnknownDecision(_) | VoidError::BadId(_) => VoidOutcome::NotFound,
                    VoidError::AlreadyVoided { .. } => VoidOutcome::AlreadyVoided,
                    VoidError::NotVoidable(_) => VoidOutcome::NotApproved,
                    _ => VoidOutcome::Refused,
                };
                event.error = Some(e.to_string());
            }
        }
        self.outputs.each(|s| s.void_result(&event));
        event
    }

    /// Handles one request from the scanner or POS channel.
    pub fn handle(&mut self, request: &AgentRequest) -> Result<(), AgentError> {
        // Nothing is decided that could not be reported.
        self.outputs_ok()?;
        match request {
            AgentRequest::Scan(scan) => {
                self.handle_scan(scan)?;
                self.outputs_ok()
            }
            AgentRequest::Void {
                decision_id,
                request_id,
                ..
            } => {
                self.handle_void(decision_id, request_id.as_deref());
                Ok(())
            }
        }
    }

    /// Re-reads the connectivity mode; on a change, tells the outputs and, when back
    /// online, closes the offline window (its caps start afresh next outage).
    pub fn check_mode(&mut self) {
        self.check_clock();
        let now = self.health_mode();
        if now == self.mode {
            return;
        }
        self.mode = now;
        self.publish_mode();
        let status = match now {
            Mode::Online => {
                log::info!("ATS reachable again: online");
                if let Err(e) = self.store.reset_offline_window() {
                    log::error!("cannot close the offline window: {e}");
                }
                AgentStatus::Ready
            }
            Mode::Offline => {
                log::warn!("ATS unreachable: offline rules apply");
                self.next_probe = self.clock.now() + self.config.health.probe_interval;
                AgentStatus::Offline
            }
        };
        self.outputs.each(|s| s.status(status));
    }

    /// Housekeeping between scans: probes while offline.
    pub fn tick(&mut self) {
        self.venue_tick();
        if let Some(rx) = &self.probe {
            match rx.try_recv() {
                Ok(_) | Err(crossbeam_channel::TryRecvError::Disconnected) => self.probe = None,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
        }
        self.check_mode();
        if self.mode == Mode::Offline && self.probe.is_none() && self.clock.now() >= self.next_probe
        {
            self.probe = self.lookups.probe();
            self.next_probe = self.clock.now() + self.config.health.probe_interval;
        }
    }

    /// Runs until `stop` is set or the request channel closes, or the store stops
    /// accepting writes ([`AgentError::is_fatal`]: then it returns that error, after
    /// denying what is queued). Every request taken from the channel is finished
    /// (journaled, or denied when it cannot be, and signalled) before returning.
    pub fn run(
        &mut self,
        requests: &Receiver<AgentRequest>,
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        let mut fatal = None;
        // Started offline (ATS did not answer the start-up ping): say so, not `ready`.
        let first = match self.mode {
            Mode::Online => AgentStatus::Ready,
            Mode::Offline => AgentStatus::Offline,
        };
        self.outputs.each(|s| s.status(first));
        self.start_publishing();
        let tick = self
            .config
            .health
            .probe_interval
            .min(Duration::from_millis(250));
        while !stop.load(Ordering::SeqCst) {
            match requests.recv_timeout(tick) {
                Ok(req) => {
                    if let Err(e) = self.handle(&req) {
                        log::error!("{e}");
                        if e.is_fatal() {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
        }
        // Requests already read from a scanner are decided before stopping.
        while let Ok(req) = requests.try_recv() {
            if let Err(e) = self.handle(&req) {
                log::error!("{e}");
            }
        }
        self.outputs.each(|s| s.status(AgentStatus::Stopping));
        if let Err(e) = self.store.flush() {
            log::error!("final flush failed: {e}");
        }
        // The last status and metrics, with the final counters.
        self.publisher.finish("stopping");
        fatal.map_or(Ok(()), Err)
    }

    /// Stops the workers (waiting briefly for calls in flight).
    pub fn shutdown(mut self) {
        self.venue.shutdown();
        self.lookups.shutdown(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Signal, SignalError};

    /// Records decisions (other outputs get nothing here).
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<DecisionEvent>>>);

    impl Signal for Seen {
        fn decision(&mut self, e: &DecisionEvent) -> Result<(), SignalError> {
            self.0.lock().unwrap().push(e.clone());
            Ok(())
        }
        fn status(&mut self, _: AgentStatus) -> Result<(), SignalError> {
            Ok(())
        }
    }

    /// When the store stops accepting writes (a failed redo-log write), the scan in hand
    /// is denied `store_error`, and `run` returns the fatal error instead of denying
    /// every later scan: the binary exits and the service manager restarts it.
    #[test]
    fn run_ends_with_the_error_when_the_store_stops() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "store_dir = {:?}\nterminal_id = \"t\"\n[ats]\nurl = \"http://127.0.0.1:9\"\n\
             apikey = \"k\"\n[cache]\nprefetch_at_start = false\n",
            dir.path().join("store").display().to_string()
        );
        let raw = crate::config::RawConfig::parse(&text, std::path::Path::new("t")).unwrap();
        let config = Config::from_raw(raw).unwrap();
        let clock = crate::clock::system();
        // Built here rather than by `app` (which depends on the agent): nothing answers
        // on port 9, and this test makes no ATS call.
        let client = crate::ats::AtsClient::with_clock(
            crate::ats::AtsConfig {
                base_url: "http://127.0.0.1:9".into(),
                apikey: config.ats.apikey.clone(),
                ..crate::ats::AtsConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let store = Store::open(
            &config.store_dir,
            crate::store::StoreOptions {
                terminal_id: config.terminal_id.clone(),
                ..crate::store::StoreOptions::default()
            },
        )
        .unwrap();
        // The next log write fails, as on a disk that returns EIO.
        let read_only = std::fs::File::open(dir.path().join("store").join("wal")).unwrap();
        store.lock_wal().replace_file_for_test(read_only);
        let seen = Seen::default();
        let mut outputs = Outputs::default();
        outputs.push(Box::new(seen.clone()));
        let mut agent = Agent::new(config, Arc::new(client), store, clock.clone(), outputs);
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..3 {
            tx.send(AgentRequest::Scan(ScanEvent {
                input: crate::scan::barcode::classify("not a barcode"),
                amount_cents: None,
                request_id: None,
                received_at_ms: clock.wall_ms(),
                origin: crate::scan::Origin::Stdin,
            }))
            .unwrap();
        }
        let stop = AtomicBool::new(false);
        let err = agent.run(&rx, &stop).unwrap_err();
        assert!(err.is_fatal(), "{err}");
        assert!(err.to_string().contains("restart"), "{err}");
        // Every scan taken was answered, each with a deny: the first when its write
        // failed, the queued ones before returning.
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|e| e.reason == "store_error"), "{seen:?}");
        agent.shutdown();
    }

    #[test]
    fn an_ats_error_quoting_the_barcode_is_logged_masked() {
        let e = crate::ats::AtsError::Api {
            code: 5301,
            sql_code: 100,
            message: "Barcode 100000000001 not found".into(),
        };
        let line = masked_error(&e, "100000000001");
        assert!(!line.contains("100000000001"), "{line}");
        assert!(line.contains(&mask_barcode("100000000001")), "{line}");
    }
}
