//! The typed ATS client over one private call function.
//!
//! Every command goes through [`AtsClient`]'s `call`: build the envelope with a fresh
//! `ref`, take one call from the rate budget, POST, and on `202 Accepted` keep the
//! call's cookies and re-send the identical body with them, waiting `poll_initial`
//! growing x1.5 to `poll_max`, until `200`, an error status, or the deadline. Time
//! and sleeping come from the injected [`SharedClock`]. Then `header.result` and
//! `command1.result` are checked and the typed command decodes `command1` through
//! [`wire`](super::wire).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use log::{debug, warn};
use serde_json::{Map, Value};

use crate::clock::{self, SharedClock};
use crate::redact::mask_barcode;
use crate::ticket::{TicketInfo, ValueLine};

use super::calls::{CallCounters, CallCounts};
use super::config::{AtsConfig, Endpoint};
use super::cookies::CallJar;
use super::error::{AtsError, Phase, RateWindow};
use super::http::{Http, Reply};
use super::poll::Backoff;
use super::rate::{RateBudget, ServerRate, DEFAULT_SERVER_CLOSURE};
use super::shared_budget::{self, BackgroundScope, SharedBudget};
use super::wire::{self, Envelope};

/// At most this many chunks are followed for one event listing.
pub const MAX_EVENT_CHUNKS: usize = 1000;
/// At most this many rows are accepted for one event listing.
pub const MAX_EVENT_ROWS: usize = 1_000_000;
/// At most this many polls in one call (the deadline and the budget normally stop
/// a cycle long before).
const MAX_POLLS: u32 = 10_000;
/// Error bodies are kept up to this many characters.
const MAX_MESSAGE: usize = 512;

/// One page of an event listing ([`AtsClient::get_av_barcodes_event_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// `(barcode, value line)` rows, in the order ATS sent them.
    pub rows: Vec<(String, ValueLine)>,
    /// True when ATS says more rows follow (ask again with the last barcode).
    pub more: bool,
}

/// A client for the ATS API. Cheap to clone (one `Arc`); `Send + Sync`.
#[derive(Clone)]
pub struct AtsClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: AtsConfig,
    endpoint: Endpoint,
    http: Http,
    clock: SharedClock,
    budget: Mutex<RateBudget>,
    /// The venue-wide budget of the key, drawn before the local one (venue mode only).
    shared: OnceLock<Arc<SharedBudget>>,
    seq: AtomicU64,
    /// ATS's clock (Unix ms) at the last answer that carried it (`ping`), and the
    /// monotonic instant it arrived: for the clock sanity check.
    server_clock: Mutex<Option<(u64, Instant)>>,
    /// Calls by result, for the status and the metrics.
    calls: CallCounters,
}

impl fmt::Debug for AtsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtsClient")
            .field("url", &self.inner.endpoint.url)
            .field("uid", &self.inner.cfg.uid)
            .field("apikey", &self.inner.cfg.apikey)
            .finish_non_exhaustive()
    }
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

impl AtsClient {
    /// A client on the system clock.
    pub fn new(cfg: AtsConfig) -> Result<AtsClient, AtsError> {
        AtsClient::with_clock(cfg, clock::system())
    }

    /// A client whose deadlines, poll waits and rate windows use `clock`.
    pub fn with_clock(cfg: AtsConfig, clock: SharedClock) -> Result<AtsClient, AtsError> {
        let endpoint = cfg.validate()?;
        let http = Http::new(&cfg, &endpoint)?;
        let budget = RateBudget::new(cfg.rate_per_minute, cfg.rate_per_day);
        Ok(AtsClient {
            inner: Arc::new(Inner {
                cfg,
                endpoint,
                http,
                clock,
                budget: Mutex::new(budget),
                shared: OnceLock::new(),
                seq: AtomicU64::new(0),
                server_clock: Mutex::new(None),
                calls: CallCounters::default(),
            }),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &AtsConfig {
        &self.inner.cfg
    }

    /// The URL every call is posted to.
    pub fn url(&self) -> &str {
        &self.inner.endpoint.url
    }

    /// A deadline `call_timeout` from now on the client's clock.
    pub fn default_deadline(&self) -> Instant {
        after(self.inner.clock.now(), self.inner.cfg.call_timeout)
    }

    /// Local wall clock minus ATS's (ms) as of the last answer that carried the
    /// server's time (`ping` sends `server_date` and `server_time`); `None` before one.
    /// Judge it with [`crate::clock::ClockState::judge`].
    ///
    /// The server's time is carried forward on the monotonic clock, so the skew follows
    /// the local wall clock: when NTP corrects a board that booted at 1970, the skew
    /// falls to near zero without another call.
    pub fn clock_skew_ms(&self) -> Option<i64> {
        let (server_ms, at) = (*self
            .inner
            .server_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner()))?;
        let clock = &self.inner.clock;
        let elapsed = clock.now().saturating_duration_since(at).as_millis();
        let server_now = i128::from(server_ms) + elapsed as i128;
        let skew = i128::from(clock.wall_ms()) - server_now;
        Some(skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Notes the server's clock from an answer that carries it.
    fn note_server_clock(&self, env: &Envelope) {
        let Some(server_ms) = wire::server_clock_ms(env.command1()) else {
            return;
        };
        let at = self.inner.clock.now();
        let mut last = self
            .inner
            .server_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *last = Some((server_ms, at));
    }

    /// Calls left in the local budget now: (this minute, this day). Both are 0 while
    /// the server has closed the budget (429 or `Rate-Limit-Available: 0`).
    pub fn budget_remaining(&self) -> (u32, u32) {
        let now = self.inner.clock.now();
        self.budget().remaining(now)
    }

    /// Venue mode: every call draws from `shared` first (docs/venue.md). Set once.
    pub fn set_shared_budget(&self, shared: Arc<SharedBudget>) -> Result<(), Arc<SharedBudget>> {
        self.inner.shared.set(shared)
    }

    /// The venue-wide budget this client draws from, if any.
    pub fn shared_budget(&self) -> Option<&Arc<SharedBudget>> {
        self.inner.shared.get()
    }

    /// Commands called since the client was built, by result (see [`CallCounts`]).
    pub fn call_counts(&self) -> CallCounts {
        self.inner.calls.get()
    }

    /// `ping`: returns `command1` (`system_available`, `db_name`, ...).
    pub fn ping(&self) -> Result<Value, AtsError> {
        self.ping_with_deadline(self.default_deadline())
    }

    /// [`ping`](Self::ping) with an explicit deadline (on the client's clock).
    pub fn ping_with_deadline(&self, deadline: Instant) -> Result<Value, AtsError> {
        self.scrubbed(|| {
            let env = self.call(wire::CMD_PING, &Map::new(), deadline)?;
            Ok(Value::Object(env.command1().clone()))
        })
    }

    /// `ats_ext_test_polling`: answers through a 202 cycle; returns `command1`.
    pub fn ats_ext_test_polling(&self) -> Result<Value, AtsError> {
        self.ats_ext_test_polling_with_deadline(self.default_deadline())
    }

    /// [`ats_ext_test_polling`](Self::ats_ext_test_polling) with an explicit deadline.
    pub fn ats_ext_test_polling_with_deadline(&self, deadline: Instant) -> Result<Value, AtsError> {
        self.scrubbed(|| {
            let env = self.call(wire::CMD_TEST_POLLING, &Map::new(), deadline)?;
            Ok(Value::Object(env.command1().clone()))
        })
    }

    /// `verify_barcode`: the ticket's identity and status, `None` when ATS does not
    /// know the barcode.
    pub fn verify_barcode(
        &self,
        barcode: &str,
        event_name: Option<&str>,
    ) -> Result<Option<TicketInfo>, AtsError> {
        self.verify_barcode_with_deadline(barcode, event_name, self.default_deadline())
    }

    /// [`verify_barcode`](Self::verify_barcode) with an explicit deadline.
    pub fn verify_barcode_with_deadline(
        &self,
        barcode: &str,
        event_name: Option<&str>,
        deadline: Instant,
    ) -> Result<Option<TicketInfo>, AtsError> {
        self.scrubbed(|| {
            let fields = wire::verify_fields(barcode, event_name);
            let env = match self.call(wire::CMD_VERIFY_BARCODE, &fields, deadline) {
                Ok(env) => env,
                Err(AtsError::Api { code, sql_code, .. }) if wire::is_not_found(code, sql_code) => {
                    debug!("verify_barcode {}: unknown", mask_barcode(barcode));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let answer = wire::decode_verify(env.command1(), barcode)?;
            if !answer.info.barcode.eq_ignore_ascii_case(barcode) {
                return Err(AtsError::decode(
                    "command1.barcode",
                    "answer is about another barcode",
                ));
            }
            Ok(Some(answer.info))
        })
    }

    /// `get_av_barcodes` for one barcode: its value lines (empty when it carries no
    /// value), `None` when ATS does not know the barcode.
    pub fn get_av_barcodes(&self, barcode: &str) -> Result<Option<Vec<ValueLine>>, AtsError> {
        self.get_av_barcodes_with_deadline(barcode, self.default_deadline())
    }

    /// [`get_av_barcodes`](Self::get_av_barcodes) with an explicit deadline.
    pub fn get_av_barcodes_with_deadline(
        &self,
        barcode: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<ValueLine>>, AtsError> {
        self.scrubbed(|| {
            let fields = wire::av_barcode_fields(barcode);
            let env = match self.call(wire::CMD_GET_AV_BARCODES, &fields, deadline) {
                Ok(env) => env,
                Err(AtsError::Api { code, sql_code, .. }) if wire::is_not_found(code, sql_code) => {
                    debug!("get_av_barcodes {}: unknown", mask_barcode(barcode));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let chunk = wire::decode_av_chunk(env.command1())?;
            let mut lines = Vec::with_capacity(chunk.rows.len());
            for (i, row) in chunk.rows.into_iter().enumerate() {
                if let Some(b) = &row.barcode {
                    if !b.eq_ignore_ascii_case(barcode) {
                        return Err(AtsError::decode(
                            format!("av_barcodes[{i}].barcode"),
                            "row is about another barcode",
                        ));
                    }
                }
                // A repeated row is one line; two different rows for one line refuse
                // the answer (the record would not say what the ticket holds).
                crate::ticket::add_line(&mut lines, row.line).map_err(|e| {
                    AtsError::decode(format!("av_barcodes[{i}].av_id"), e.to_string())
                })?;
            }
            Ok(Some(lines))
        })
    }

    /// `get_av_barcodes` for every barcode of an event, following chunks
    /// (`prev_barcode` = last barcode of the previous chunk) until `more_data` is `N`
    /// or a chunk is empty. Each chunk gets `call_timeout`.
    pub fn get_av_barcodes_for_event(
        &self,
        event_name: &str,
    ) -> Result<Vec<(String, ValueLine)>, AtsError> {
        self.scrubbed(|| self.event_listing(event_name, None, None))
    }

    /// The event listing for background prefetch: before each chunk it waits (on the
    /// client's clock) until more than `reserve_per_minute` calls of the minute budget
    /// are free, so scans always keep that many; and it keeps the same share of the day
    /// budget, at least `reserve_per_minute` calls (see `pace`). Gives up with
    /// [`AtsError::RateBudget`] when `stop` is set while waiting, or at once when the
    /// day's budget is down to its share.
    pub fn get_av_barcodes_for_event_paced(
        &self,
        event_name: &str,
        reserve_per_minute: u32,
        stop: &AtomicBool,
    ) -> Result<Vec<(String, ValueLine)>, AtsError> {
        self.scrubbed(|| self.event_listing(event_name, None, Some((reserve_per_minute, stop))))
    }

    /// One chunk ("page") of an event listing: the rows after `prev_barcode` (the last
    /// barcode of the previous page; `None` for the first page) and whether more follow.
    /// Background prefetch writes each page as it comes, so a listing cut short keeps
    /// what it fetched. With `pace`, waits for the budget first as
    /// [`get_av_barcodes_for_event_paced`](Self::get_av_barcodes_for_event_paced) does.
    pub fn get_av_barcodes_event_page(
        &self,
        event_name: &str,
        prev_barcode: Option<&str>,
        pace: Option<(u32, &AtomicBool)>,
    ) -> Result<EventPage, AtsError> {
        self.scrubbed(|| {
            let _bg = pace.map(|_| BackgroundScope::enter());
            if let Some((reserve, stop)) = pace {
                self.wait_for_budget(reserve, stop)?;
            }
            let fields = wire::av_event_fields(event_name, prev_barcode);
            let env = self.call(wire::CMD_GET_AV_BARCODES, &fields, self.default_deadline())?;
            let chunk = wire::decode_av_chunk(env.command1())?;
            let more = !chunk.rows.is_empty() && chunk.more_data != Some(false);
            let mut rows = Vec::with_capacity(chunk.rows.len());
            for (i, row) in chunk.rows.into_iter().enumerate() {
                let Some(barcode) = row.barcode else {
                    return Err(AtsError::decode(
                        format!("av_barcodes[{i}].barcode"),
                        "missing in event listing",
                    ));
                };
                rows.push((barcode, row.line));
            }
            Ok(EventPage { rows, more })
        })
    }

    /// The clock this client waits and stamps with.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Waits until [`pace`] says go; gives up when it refuses or `stop` is set.
    fn wait_for_budget(&self, reserve: u32, stop: &AtomicBool) -> Result<(), AtsError> {
        let cfg = &self.inner.cfg;
        loop {
            let (minute, day) = self.budget_remaining();
            let window = match pace(minute, day, reserve, cfg.rate_per_minute, cfg.rate_per_day) {
                Pace::Go => return Ok(()),
                Pace::Refuse(window) => window,
                Pace::Wait if stop.load(Ordering::SeqCst) => RateWindow::Minute,
                Pace::Wait => {
                    self.inner.clock.sleep(Duration::from_millis(500));
                    continue;
                }
            };
            return Err(AtsError::RateBudget {
                window,
                retry_after: Duration::from_secs(1),
            });
        }
    }

    /// [`get_av_barcodes_for_event`](Self::get_av_barcodes_for_event) with one
    /// deadline for the whole listing.
    pub fn get_av_barcodes_for_event_with_deadline(
        &self,
        event_name: &str,
        deadline: Instant,
    ) -> Result<Vec<(String, ValueLine)>, AtsError> {
        self.scrubbed(|| self.event_listing(event_name, Some(deadline), None))
    }

    /// `event_search` for events dated `start_date..=end_date` (`YYYY-MM-DD`); no
    /// events is an empty list, not an error.
    pub fn event_search(
        &self,
        start_date: &str,
        end_date: &str,
    ) -> Result<Vec<wire::EventSummary>, AtsError> {
        self.scrubbed(|| {
            let fields = wire::event_search_fields(start_date, end_date);
            match self.call(wire::CMD_EVENT_SEARCH, &fields, self.default_deadline()) {
                Ok(env) => wire::decode_events(env.command1()),
                Err(AtsError::Api { code, .. }) if code == wire::EVENT_SEARCH_NONE => {
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Any command: `fields` go into `command1` after `cmd`, `ref`, `uid` and `dsn`
    /// (they may override `uid` and `dsn`, not `cmd` or `ref`). Returns the whole
    /// response body; API errors are still mapped to [`AtsError::Api`].
    pub fn call_raw(&self, cmd: &str, fields: Map<String, Value>) -> Result<Value, AtsError> {
        self.call_raw_with_deadline(cmd, fields, self.default_deadline())
    }

    /// [`call_raw`](Self::call_raw) with an explicit deadline.
    pub fn call_raw_with_deadline(
        &self,
        cmd: &str,
        fields: Map<String, Value>,
        deadline: Instant,
    ) -> Result<Value, AtsError> {
        self.scrubbed(|| {
            if let Some(k) = fields
                .keys()
                .find(|k| k.eq_ignore_ascii_case("cmd") || k.eq_ignore_ascii_case("ref"))
            {
                return Err(AtsError::Config(format!(
                    "field {k:?} is set by the client"
                )));
            }
            if cmd.is_empty() || cmd.len() > 64 {
                return Err(AtsError::Config("cmd must be 1 to 64 characters".into()));
            }
            Ok(self.call(cmd, &fields, deadline)?.body)
        })
    }

    fn event_listing(
        &self,
        event_name: &str,
        deadline: Option<Instant>,
        pace: Option<(u32, &AtomicBool)>,
    ) -> Result<Vec<(String, ValueLine)>, AtsError> {
        let mut out: Vec<(String, ValueLine)> = Vec::new();
        let mut prev: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let _bg = pace.map(|_| BackgroundScope::enter());
        for chunk_no in 0..MAX_EVENT_CHUNKS {
            if let Some((reserve, stop)) = pace {
                self.wait_for_budget(reserve, stop)?;
            }
            let chunk_deadline = match deadline {
                Some(d) => d.min(self.default_deadline()),
                None => self.default_deadline(),
            };
            let fields = wire::av_event_fields(event_name, prev.as_deref());
            let env = self.call(wire::CMD_GET_AV_BARCODES, &fields, chunk_deadline)?;
            let chunk = wire::decode_av_chunk(env.command1())?;
            debug!(
                "event {event_name} chunk {chunk_no}: {} rows, more_data {:?}",
                chunk.rows.len(),
                chunk.more_data
            );
            if chunk.rows.is_empty() {
                return merge_listing(out);
            }
            let before = out.len();
            for (i, row) in chunk.rows.into_iter().enumerate() {
                let Some(barcode) = row.barcode else {
                    return Err(AtsError::decode(
                        format!("av_barcodes[{i}].barcode"),
                        "missing in event listing",
                    ));
                };
                out.push((barcode, row.line));
            }
            if out.len() > MAX_EVENT_ROWS {
                return Err(AtsError::decode(
                    "command1.av_barcodes",
                    format!("event listing over {MAX_EVENT_ROWS} rows"),
                ));
            }
            if chunk.more_data == Some(false) {
                return merge_listing(out);
            }
            let last = out.last().map(|(b, _)| b.clone()).unwrap_or_default();
            if !seen.insert(last.clone()) {
                return Err(AtsError::decode(
                    "command1.av_barcodes",
                    format!("event chunks do not advance after {before} rows"),
                ));
            }
            prev = Some(last);
        }
        Err(AtsError::decode(
            "command1.more_data",
            format!("event listing longer than {MAX_EVENT_CHUNKS} chunks"),
        ))
    }

    /// Runs `f` and removes the API key from any error text it returns.
    fn scrubbed<T>(&self, f: impl FnOnce() -> Result<T, AtsError>) -> Result<T, AtsError> {
        f().map_err(|e| scrub_error(e, self.inner.cfg.apikey.expose()))
    }

    fn budget(&self) -> MutexGuard<'_, RateBudget> {
        // The budget is plain counters: a poisoned lock is still usable.
        self.inner.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_ref(&self) -> String {
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        format!("ca-{:x}-{n}", self.inner.clock.wall_ms())
    }

    /// One command: envelope, 202 cycle, result check.
    fn call(
        &self,
        cmd: &str,
        fields: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<Envelope, AtsError> {
        let deadline = deadline.min(self.default_deadline());
        let reference = self.next_ref();
        let cfg = &self.inner.cfg;
        let body = wire::request_body(
            &cfg.src_sys_name,
            cmd,
            &reference,
            &cfg.uid,
            &cfg.dsn,
            fields,
        );
        let result = self
            .exchange(&body, &reference, deadline)
            .and_then(|env| wire::check_result(&env).map(|()| env));
        self.inner.calls.count(result.as_ref().map(drop));
        result
    }

    /// POSTs `body` until it is answered, polling through 202s with this call's own
    /// cookie jar.
    fn exchange(
        &self,
        body: &str,
        reference: &str,
        deadline: Instant,
    ) -> Result<Envelope, AtsError> {
        let clock = &self.inner.clock;
        let cfg = &self.inner.cfg;
        let start = clock.now();
        let mut jar = CallJar::new();
        let mut backoff = Backoff::new(cfg.poll_initial, cfg.poll_max);
        let mut polls: u32 = 0;
        let timeout = |now: Instant, polls: u32| AtsError::Timeout {
            elapsed: now.saturating_duration_since(start),
            polls,
        };
        loop {
            let now = clock.now();
            if now >= deadline {
                return Err(timeout(now, polls));
            }
            shared_budget::acquire(self.inner.shared.get(), &self.inner.budget, now)?;
            let cookie = jar.header();
            let within = deadline.saturating_duration_since(now);
            let reply =
                match self
                    .inner
                    .http
                    .post(body, cfg.apikey.expose(), cookie.as_deref(), within)
                {
                    Ok(r) => r,
                    Err(AtsError::Timeout { .. }) => return Err(timeout(clock.now(), polls)),
                    Err(AtsError::Transport { phase, detail }) if polls > 0 => {
                        return Err(AtsError::Transport {
                            phase: Phase::Poll,
                            detail: format!("{phase}: {detail}"),
                        })
                    }
                    Err(e) => return Err(e),
                };
            self.observe_rate(&reply);
            for c in &reply.set_cookies {
                if !jar.absorb(c) {
                    warn!("ats: ignored a malformed or excess cookie");
                }
            }
            match reply.status {
                200 => {
                    let env = wire::parse_envelope(&reply.body, reference)?;
                    self.note_server_clock(&env);
                    return Ok(env);
                }
                202 => {
                    polls += 1;
                    if polls > MAX_POLLS {
                        return Err(timeout(clock.now(), polls));
                    }
                    let now = clock.now();
                    if now >= deadline {
                        return Err(timeout(now, polls));
                    }
                    let wait = backoff
                        .next_wait()
                        .min(deadline.saturating_duration_since(now));
                    debug!(
                        "ats 202: poll {polls} in {wait:?} with {} cookies",
                        jar.len()
                    );
                    clock.sleep(wait);
                }
                _ => return Err(self.status_error(&reply)),
            }
        }
    }

    fn observe_rate(&self, reply: &Reply) {
        let clock = &self.inner.clock;
        let server = ServerRate::from_headers(|n| reply.header(n), clock.wall_ms());
        if !server.is_empty() {
            self.budget().observe(clock.now(), &server);
        }
    }

    fn status_error(&self, reply: &Reply) -> AtsError {
        let text = String::from_utf8_lossy(&reply.body);
        let message = wire::shorten(text.trim(), MAX_MESSAGE);
        if wire::is_no_data_for_token(&message) || message_has_token_error(&reply.body) {
            return AtsError::NoDataForToken { message };
        }
        match reply.status {
            401 => AtsError::Unauthorized { message },
            404 => AtsError::NotFound { message },
            429 => {
                let clock = &self.inner.clock;
                let server = ServerRate::from_headers(|n| reply.header(n), clock.wall_ms());
                let wait = server.reset_in.unwrap_or(DEFAULT_SERVER_CLOSURE);
                let now = clock.now();
                self.budget().close_until(after(now, wait));
                warn!("ats 429: budget closed for {wait:?}");
                AtsError::RateLimited {
                    retry_after: server.reset_in,
                    message,
                }
            }
            503 => AtsError::Unavailable { message },
            status => AtsError::Status { status, message },
        }
    }
}

/// True when a JSON error body carries a "No data for token" message.
fn message_has_token_error(body: &[u8]) -> bool {
    let Ok(env) = wire::parse_envelope(body, "") else {
        return false;
    };
    matches!(
        wire::check_result(&env),
        Err(AtsError::NoDataForToken { .. })
    )
}

/// Replaces every occurrence of `key` in the error's texts with `***`.
fn scrub_error(e: AtsError, key: &str) -> AtsError {
    if key.is_empty() {
        return e;
    }
    let s = |t: String| {
        if t.contains(key) {
            t.replace(key, "***")
        } else {
            t
        }
    };
    match e {
        AtsError::Config(m) => AtsError::Config(s(m)),
        AtsError::Unauthorized { message } => AtsError::Unauthorized {
            message: s(message),
        },
        AtsError::NotFound { message } => AtsError::NotFound {
            message: s(message),
        },
        AtsError::RateLimited {
            retry_after,
            message,
        } => AtsError::RateLimited {
            retry_after,
            message: s(message),
        },
        AtsError::Unavailable { message } => AtsError::Unavailable {
            message: s(message),
        },
        AtsError::Status { status, message } => AtsError::Status {
            status,
            message: s(message),
        },
        AtsError::Api {
            code,
            sql_code,
            message,
        } => AtsError::Api {
            code,
            sql_code,
            message: s(message),
        },
        AtsError::NoDataForToken { message } => AtsError::NoDataForToken {
            message: s(message),
        },
        AtsError::Transport { phase, detail } => AtsError::Transport {
            phase,
            detail: s(detail),
        },
        AtsError::Decode { field, detail } => AtsError::Decode {
            field: s(field),
            detail: s(detail),
        },
        other @ (AtsError::RateBudget { .. }
        | AtsError::Timeout { .. }
        | AtsError::TooLarge { .. }) => other,
    }
}

/// What a paced (background) call does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Enough budget is left for scans: call.
    Go,
    /// The minute's reserve is reached: wait for the window to roll.
    Wait,
    /// The day's reserve is reached: waiting would take hours, give up.
    Refuse(RateWindow),
}

/// Paces background calls (pure): go while more than `reserve` calls are left this
/// minute and more than the day's share is left today. The day keeps the same share
/// as the minute (`reserve * per_day / per_minute`), and never less than `reserve`:
/// without it a refresher repeating big listings spends the whole day, and the scans
/// after it get no live answer; and since the minute figure never exceeds the day's,
/// a smaller day reserve would leave the refresher waiting for hours mid-listing.
fn pace(minute: u32, day: u32, reserve: u32, per_minute: u32, per_day: u32) -> Pace {
    let share = (u64::from(reserve) * u64::from(per_day)).div_ceil(u64::from(per_minute.max(1)));
    if u64::from(day) <= share.max(u64::from(reserve)) {
        Pace::Refuse(RateWindow::Day)
    } else if minute > reserve {
        Pace::Go
    } else {
        Pace::Wait
    }
}

/// Merges an event listing's rows: a row sent twice (pages that overlap because the
/// server reads `prev_barcode` inclusively, or a repeated row) is kept once, in its
/// first place; two different rows for one ticket's value line refuse the listing.
/// Sorts an index (a u32 and a flag: 5 bytes a row), not the rows themselves.
fn merge_listing(rows: Vec<(String, ValueLine)>) -> Result<Vec<(String, ValueLine)>, AtsError> {
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    let key = |i: u32| {
        let (b, l) = &rows[i as usize];
        (b.as_str(), l.av_id.as_str())
    };
    order.sort_by(|a, b| key(*a).cmp(&key(*b)).then(a.cmp(b)));
    let mut drop = vec![false; rows.len()];
    for w in order.windows(2) {
        let (first, next) = (w[0], w[1]);
        if key(first) != key(next) {
            continue;
        }
        // Rows of one key sit side by side in `order`: each must equal its neighbour.
        if rows[first as usize].1 != rows[next as usize].1 {
            return Err(AtsError::decode(
                "command1.av_barcodes",
                format!(
                    "ticket {}: {}",
                    mask_barcode(&rows[next as usize].0),
                    crate::ticket::ConflictingLine {
                        av_id: rows[next as usize].1.av_id.clone()
                    }
                ),
            ));
        }
        drop[next as usize] = true;
    }
    if !drop.contains(&true) {
        return Ok(rows);
    }
    let dupes = drop.iter().filter(|d| **d).count();
    debug!("event listing: {dupes} repeated rows merged");
    Ok(rows
        .into_iter()
        .zip(drop)
        .filter_map(|(r, d)| (!d).then_some(r))
        .collect())
}

#[cfg(test)]
mod tests;
