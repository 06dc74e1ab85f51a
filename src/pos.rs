//! The POS link: JSON lines, both ways, over TCP (docs/pos-protocol.md).
//!
//! The POS connects to the agent's `pos_listen` address and sends one request per line:
//! `{"type":"scan","barcode":"...","amount_cents":500,"request_id":"r1"}`,
//! `{"type":"void","decision_id":"...","request_id":"r2"}`, `{"type":"ping"}`, or a
//! plain barcode line (a scan without amount). [`PosServer`] turns requests into
//! [`AgentRequest`]s on the agent's channel; [`PosSignal`] writes the answers back
//! (`decision`, `void_result`, `status` lines) to the client that asked, or to every
//! client for scans made at the stand's own scanner. A malformed request gets an
//! `{"type":"error",...}` line; the connection stays open.
//!
//! Routing: every forwarded request carries a request id (the client's, or one the
//! server assigns: `pos<conn>-<n>`), remembered with the connection it came from. The
//! agent puts it in `DecisionEvent::request` / `VoidEvent::request_id`, and
//! [`PosSignal`] sends the line to that connection (first-in first-out when two clients
//! reuse the same id: the agent loop answers in the order requests arrive). A request
//! whose client has gone is answered nowhere (and logged).
//!
//! Threads: one accept thread, and per client a reader and a writer. Signals never
//! block: lines go to the writer through a bounded queue, and a client whose queue is
//! full (it stopped reading) is disconnected.
//!
//! Hostile clients (issue 11): a void is taken only from a connection that was told of
//! the decision, or one that presented the link's token (`auth`); a non-loopback
//! address needs a token; a request line (and, with a token, `auth`) must come within
//! the line timeout; a client idle that long may be closed to make room at the cap; and
//! each connection's scans go through its own token bucket, so one client cannot spend
//! the stand's ATS budget.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::SharedClock;
use crate::money::Cents;
use crate::redact::Secret;
use crate::scan::frame::{strip_aim, Frame, FrameConfig, Framer};
use crate::scan::source::wait_readable;
use crate::scan::{
    barcode, next_conn_id, AgentRequest, ConnId, Origin, ScanEvent, UnreadableReason,
};
use crate::signal::jsonl::{decision_line, status_line, void_line};
use crate::signal::{AgentStatus, DecisionEvent, Signal, SignalError};

/// Longest request line, in bytes (the line reader's heapless capacity).
pub const MAX_LINE: usize = 4096;
/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest `decision_id`, in characters.
pub const MAX_DECISION_ID: usize = 128;
/// Longest `barcode` string accepted in a JSON scan request, in bytes.
pub const MAX_BARCODE_FIELD: usize = 256;
/// Largest `amount_cents` accepted ($100,000.00).
pub const MAX_AMOUNT_CENTS: Cents = 10_000_000;
/// Longest `token` accepted in an `auth` request, in bytes.
pub const MAX_TOKEN: usize = 256;
/// Decisions whose owning connection the link remembers (for void ownership).
pub const OWNERS_KEPT: usize = 4096;

// ---------------------------------------------------------------------------------------
// Void answers

/// What became of a void request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VoidOutcome {
    /// The approval was reversed; its value counts as unspent again.
    Voided,
    /// No decision with that id on this terminal.
    NotFound,
    /// Already voided earlier (the answer repeats the first reversal).
    AlreadyVoided,
    /// The decision was a deny: nothing to reverse.
    NotApproved,
    /// Refused for another reason (see `error`).
    Refused,
}

/// The answer to a void request, sent as `{"type":"void_result", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoidEvent {
    /// The decision the POS asked to reverse.
    pub decision_id: String,
    /// The POS request id this answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What happened.
    pub outcome: VoidOutcome,
    /// Money reversed, integer cents.
    pub reversed_cents: Cents,
    /// Items reversed, one entry per unit.
    pub items: Vec<String>,
    /// Why, when not voided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the void was decided, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Terminal id.
    pub terminal: String,
}

/// An output that can also report void answers (POS link, JSON lines, console).
pub trait VoidSignal {
    /// Reports the answer to a void request.
    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError>;

    /// True when this output is how the one who made a scan from `origin` learns the
    /// decision. An approval that no answering output took is reversed by the agent
    /// (`undelivered`, issue 11). Default: stdout-like outputs answer every scan that
    /// did not come over the POS link (the link answers those itself).
    fn answers(&self, origin: &Origin) -> bool {
        !origin.is_pos()
    }
}

// ---------------------------------------------------------------------------------------
// Request parsing (pure)

/// One request from the POS, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PosRequest {
    /// Decide on a barcode (the text as sent, trimmed, AIM identifier removed;
    /// classified when forwarded).
    Scan {
        /// The barcode text.
        barcode: String,
        /// Amount to redeem, cents; `None`: whatever the ticket holds.
        amount_cents: Option<Cents>,
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Reverse an earlier approval.
    Void {
        /// The decision's `id`.
        decision_id: String,
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Liveness check, answered by the link itself with `{"type":"pong"}`.
    Ping {
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Presents the link's credential (`[pos] token`), answered by the link itself.
    Auth {
        /// The credential (never logged or echoed).
        token: Secret,
        /// The client's request id.
        request_id: Option<String>,
    },
}

/// Why a request line was refused. Messages are the `error` field of error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Not parseable JSON.
    InvalidJson,
    /// JSON, but not an object.
    NotObject,
    /// No `type` field.
    MissingType,
    /// `type` is not `scan`, `void` or `ping`.
    UnknownType,
    /// `request_id` is not a short printable string.
    BadRequestId,
    /// A required field is missing.
    Missing(&'static str),
    /// A field has the wrong JSON type or an unusable value.
    Invalid(&'static str),
    /// `amount_cents` is not a positive integer.
    BadAmount,
    /// `amount_cents` is above [`MAX_AMOUNT_CENTS`].
    AmountTooLarge,
    /// The line is longer than [`MAX_LINE`].
    TooLong,
    /// Control characters or invalid UTF-8 in the line.
    Unreadable(UnreadableReason),
    /// Too many requests waiting for answers.
    TooManyPending,
    /// The agent's queue is full.
    Busy,
    /// The agent is not taking requests any more.
    Stopped,
    /// The server already has its maximum number of clients.
    TooManyClients,
    /// The link has a token and this connection has not sent `auth` yet.
    AuthRequired,
    /// `auth` with the wrong token (the connection is closed).
    BadToken,
    /// `auth` on a link without a token.
    AuthNotConfigured,
    /// No `auth` within the line timeout (the connection is closed).
    AuthTimeout(Duration),
    /// A request line was not finished within the line timeout (the connection is
    /// closed).
    LineTimeout(Duration),
    /// This connection sent scans faster than its share.
    ScanRate(u32),
    /// Closed to make room for a new client.
    Evicted,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidJson => f.write_str("invalid json"),
            RequestError::NotObject => f.write_str("request must be a json object"),
            RequestError::MissingType => f.write_str("missing type"),
            RequestError::UnknownType => f.write_str("unknown type"),
            RequestError::BadRequestId => write!(
                f,
                "request_id must be a string of 1 to {MAX_REQUEST_ID} printable characters"
            ),
            RequestError::Missing(field) => write!(f, "missing {field}"),
            RequestError::Invalid(field) => write!(f, "invalid {field}"),
            RequestError::BadAmount => f.write_str("amount_cents must be a positive integer"),
            RequestError::AmountTooLarge => f.write_str("amount_cents too large"),
            RequestError::TooLong => write!(f, "request longer than {MAX_LINE} bytes"),
            RequestError::Unreadable(r) => write!(f, "unreadable request: {}", r.as_str()),
            RequestError::TooManyPending => f.write_str("too many pending requests"),
            RequestError::Busy => f.write_str("agent busy"),
            RequestError::Stopped => f.write_str("agent stopped"),
            RequestError::TooManyClients => f.write_str("too many clients"),
            RequestError::AuthRequired => f.write_str("authentication required: send auth first"),
            RequestError::BadToken => f.write_str("wrong token"),
            RequestError::AuthNotConfigured => f.write_str("this link has no token"),
            RequestError::AuthTimeout(t) => {
                write!(f, "no auth within {} ms: closing", t.as_millis())
            }
            RequestError::LineTimeout(t) => {
                write!(
                    f,
                    "request line not finished within {} ms: closing",
                    t.as_millis()
                )
            }
            RequestError::ScanRate(per_minute) => write!(
                f,
                "scan rate limit: this connection may send {per_minute} scans per minute"
            ),
            RequestError::Evicted => {
                f.write_str("closed to make room for a new client (this one was idle longest)")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// A refused request: the error, and the request id when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The request's id, when it had a valid one.
    pub request_id: Option<String>,
    /// What was wrong.
    pub error: RequestError,
}

impl Rejected {
    fn new(request_id: Option<String>, error: RequestError) -> Self {
        Rejected { request_id, error }
    }
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Parses one request line (already framed: no line end, no control characters).
/// A line that does not start with `{`, `[` or `"` is a bare barcode scan.
pub fn parse_line(line: &str) -> Result<PosRequest, Rejected> {
    let t = line.trim();
    if !(t.starts_with('{') || t.starts_with('[') || t.starts_with('"')) {
        return Ok(PosRequest::Scan {
            barcode: t.to_string(),
            amount_cents: None,
            request_id: None,
        });
    }
    let value: Value =
        serde_json::from_str(t).map_err(|_| Rejected::new(None, RequestError::InvalidJson))?;
    let obj = match value {
        Value::Object(o) => o,
        _ => return Err(Rejected::new(None, RequestError::NotObject)),
    };
    parse_object(&obj)
}

fn parse_object(obj: &Map<String, Value>) -> Result<PosRequest, Rejected> {
    let request_id = match obj.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if printable(s, MAX_REQUEST_ID) => Some(s.clone()),
        Some(_) => return Err(Rejected::new(None, RequestError::BadRequestId)),
    };
    let fail = |e: RequestError| Err(Rejected::new(request_id.clone(), e));
    let kind = match obj.get("type") {
        None | Some(Value::Null) => return fail(RequestError::MissingType),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return fail(RequestError::UnknownType),
    };
    match kind {
        "scan" => {
            let barcode = match obj.get("barcode") {
                None | Some(Value::Null) => return fail(RequestError::Missing("barcode")),
                Some(Value::String(s)) if s.len() <= MAX_BARCODE_FIELD => {
                    aim_stripped(s.trim()).trim().to_string()
                }
                Some(_) => return fail(RequestError::Invalid("barcode")),
            };
            let amount_cents = match obj.get("amount_cents") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(0) | None => return fail(RequestError::BadAmount),
                    Some(c) if c > MAX_AMOUNT_CENTS => return fail(RequestError::AmountTooLarge),
                    Some(c) => Some(c),
                },
                Some(_) => return fail(RequestError::BadAmount),
            };
            Ok(PosRequest::Scan {
                barcode,
                amount_cents,
                request_id,
            })
        }
        "void" => {
            let decision_id = match obj.get("decision_id") {
                None | Some(Value::Null) => return fail(RequestError::Missing("decision_id")),
                Some(Value::String(s)) if printable(s, MAX_DECISION_ID) => s.clone(),
                Some(_) => return fail(RequestError::Invalid("decision_id")),
            };
            Ok(PosRequest::Void {
                decision_id,
                request_id,
            })
        }
        "ping" => Ok(PosRequest::Ping { request_id }),
        "auth" => match obj.get("token") {
            None | Some(Value::Null) => fail(RequestError::Missing("token")),
            Some(Value::String(t)) if t.len() <= MAX_TOKEN => Ok(PosRequest::Auth {
                token: Secret::new(t.as_str()),
                request_id,
            }),
            Some(_) => fail(RequestError::Invalid("token")),
        },
        _ => fail(RequestError::UnknownType),
    }
}

fn aim_stripped(s: &str) -> &str {
    let rest = strip_aim(s.as_bytes());
    // The identifier is three ASCII bytes, so the rest starts on a char boundary.
    s.get(s.len() - rest.len()..).unwrap_or(s)
}

/// `{"type":"error","request_id":...,"error":"..."}` (no trailing newline).
pub fn error_line(request_id: Option<&str>, error: &RequestError) -> String {
    serde_json::json!({
        "type": "error",
        "request_id": request_id,
        "error": error.to_string(),
    })
    .to_string()
}

/// `{"type":"auth_result","request_id":...,"ok":true}` (no trailing newline).
pub fn auth_line(request_id: Option<&str>) -> String {
    serde_json::json!({ "type": "auth_result", "request_id": request_id, "ok": true }).to_string()
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `{"type":"pong","request_id":...}` (no trailing newline), before any status.
pub fn pong_line(request_id: Option<&str>) -> String {
    pong_line_with(request_id, None)
}

/// `{"type":"pong","request_id":...,"status":"ready"}` (no trailing newline): the
/// agent's current status, left out before the agent has signalled one.
pub fn pong_line_with(request_id: Option<&str>, status: Option<AgentStatus>) -> String {
    let mut v = serde_json::json!({ "type": "pong", "request_id": request_id });
    if let Some(s) = status {
        v["status"] = serde_json::to_value(s).unwrap_or_default();
    }
    v.to_string()
}

// ---------------------------------------------------------------------------------------
// Server

/// Why the POS link could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum PosError {
    /// Binding the listen address failed.
    Bind(io::Error),
    /// Starting a thread failed.
    Spawn(io::Error),
    /// A non-loopback listen address without a token.
    NoToken(SocketAddr),
}

impl fmt::Display for PosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PosError::Bind(e) => write!(f, "bind pos listener: {e}"),
            PosError::Spawn(e) => write!(f, "start pos thread: {e}"),
            PosError::NoToken(a) => write!(
                f,
                "{a} is not a loopback address: set pos.token_file (or pos.token) so that \
                 only a POS holding it can scan and void"
            ),
        }
    }
}

impl std::error::Error for PosError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PosError::Bind(e) | PosError::Spawn(e) => Some(e),
            PosError::NoToken(_) => None,
        }
    }
}

/// Limits and intervals of the POS link.
#[derive(Debug, Clone)]
pub struct PosOptions {
    /// Most simultaneous POS clients (default 8). More get a `too many clients` error
    /// line and are closed.
    pub max_clients: usize,
    /// Most requests waiting for an answer, all clients together (default 1024).
    pub max_pending: usize,
    /// Lines queued per client before it counts as stuck and is dropped (default 256).
    pub client_queue: usize,
    /// How often threads look at the stop flag (default 100 ms).
    pub poll_interval: Duration,
    /// Write timeout per line to a client (default 2 s).
    pub write_timeout: Duration,
    /// Stops the server when set (share the agent's flag, or use [`PosServer::shutdown`]).
    pub stop: Arc<AtomicBool>,
    /// The link's credential. Required to listen on a non-loopback address; when set,
    /// every client must `auth` before anything but `ping`, and an authenticated client
    /// may void any decision (a POS that reconnected voids its earlier sale).
    pub token: Option<Secret>,
    /// A request line must end within this time of its first byte, and with a token
    /// an unauthenticated client must `auth` within it of connecting (default 10 s).
    pub line_timeout: Duration,
    /// Scans per minute one connection may send (`None`: no limit).
    pub scans_per_minute: Option<u32>,
    /// Scans one connection may send at once before the per-minute rate applies.
    pub scan_burst: u32,
    /// Terminal id, for the `void_result` lines the link answers itself.
    pub terminal: String,
    /// Tells whether a decision id is in the journal, so that a void of a decision the
    /// link never saw (made before a restart, or long ago) is refused unless it does
    /// not exist at all (then the agent answers `not_found`). Without it, such voids
    /// go to the agent unchecked; the binary always sets it.
    pub journal: Option<JournalLookup>,
}

/// Whether a decision id exists in the journal (see [`PosOptions::journal`]).
#[derive(Clone)]
pub struct JournalLookup(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl fmt::Debug for JournalLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JournalLookup")
    }
}

impl Default for PosOptions {
    fn default() -> Self {
        PosOptions {
            max_clients: 8,
            max_pending: 1024,
            client_queue: 256,
            poll_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(2),
            stop: Arc::new(AtomicBool::new(false)),
            token: None,
            line_timeout: Duration::from_secs(10),
            scans_per_minute: None,
            scan_burst: 10,
            terminal: String::new(),
            journal: None,
        }
    }
}

struct Client {
    peer: SocketAddr,
    lines: Sender<Arc<str>>,
    stream: TcpStream,
    connected: Instant,
    /// When its last complete request arrived.
    last_request: Option<Instant>,
    /// Presented the link's token.
    authed: bool,
}

/// Which connections were told of a decision: who may void it without the token.
#[derive(Default)]
struct Owners {
    by_id: HashMap<String, Vec<ConnId>>,
    order: VecDeque<String>,
}

impl Owners {
    fn record(&mut self, id: &str, conns: Vec<ConnId>) {
        if id.is_empty() || conns.is_empty() {
            return;
        }
        if self.by_id.insert(id.to_string(), conns).is_none() {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > OWNERS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn owns(&self, id: &str, conn: ConnId) -> bool {
        self.by_id.get(id).is_some_and(|c| c.contains(&conn))
    }

    fn of(&self, id: &str) -> Vec<ConnId> {
        self.by_id.get(id).cloned().unwrap_or_default()
    }
}

/// A token bucket: `burst` scans at once, then `per_minute`.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: u32, per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute) / 60.0,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct Pending {
    by_id: HashMap<String, VecDeque<ConnId>>,
    total: usize,
}

impl Pending {
    fn push(&mut self, id: &str, conn: ConnId) {
        self.by_id
            .entry(id.to_string())
            .or_default()
            .push_back(conn);
        self.total += 1;
    }

    /// Takes the oldest connection waiting on `id` (or that exact one, when given).
    fn take(&mut self, id: &str, conn: Option<ConnId>) -> Option<ConnId> {
        let q = self.by_id.get_mut(id)?;
        let pos = match conn {
            Some(c) => q.iter().position(|x| *x == c)?,
            None => 0,
        };
        let found = q.remove(pos);
        if q.is_empty() {
            self.by_id.remove(id);
        }
        if found.is_some() {
            self.total -= 1;
        }
        found
    }

    fn forget_conn(&mut self, conn: ConnId) {
        let mut removed = 0;
        self.by_id.retain(|_, q| {
            let before = q.len();
            q.retain(|c| *c != conn);
            removed += before - q.len();
            !q.is_empty()
        });
        self.total -= removed;
    }
}

struct Shared {
    clients: Mutex<HashMap<ConnId, Client>>,
    pending: Mutex<Pending>,
    owners: Mutex<Owners>,
    agent: Sender<AgentRequest>,
    clock: SharedClock,
    opts: PosOptions,
    seq: AtomicU64,
    /// The agent's status as last signalled (issue 14): sent to a client when it
    /// connects and carried by `pong`. Held while broadcasting a change and while a
    /// client is admitted, so a newcomer gets the current status exactly once in order.
    status: Mutex<Option<AgentStatus>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent between statements; a panic elsewhere must not
    // take the POS link down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn stopped(&self) -> bool {
        self.opts.stop.load(Ordering::Relaxed)
    }

    /// Makes room for a new client: closes one that has sent no complete request for
    /// the line timeout (one that never finished a request first, then the least
    /// recently active), so sockets that sit silent cannot lock the POS out. With a
    /// token only unauthenticated clients are evicted: a stranger must not push an
    /// authenticated POS off. False when none may go (the newcomer is refused).
    fn evict_one(&self) -> bool {
        let mut clients = lock(&self.clients);
        let token = self.opts.token.is_some();
        let now = self.clock.now();
        let idle = |c: &Client| {
            now.saturating_duration_since(c.last_request.unwrap_or(c.connected))
                >= self.opts.line_timeout
        };
        let victim = clients
            .iter()
            .filter(|(_, c)| idle(c) && !(token && c.authed))
            .min_by_key(|(_, c)| {
                (
                    c.last_request.is_some(),
                    c.last_request.unwrap_or(c.connected),
                )
            })
            .map(|(id, _)| *id);
        let Some(id) = victim else { return false };
        let gone = clients.remove(&id);
        // Written outside the lock: the signal side must never wait on this socket.
        drop(clients);
        if let Some(c) = gone {
            log::warn!("pos#{id} ({}) idle longest: closed to make room", c.peer);
            let mut s = &c.stream;
            let line = error_line(None, &RequestError::Evicted) + "\n";
            let _ = s.write_all(line.as_bytes());
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        true
    }

    /// Notes a complete request from `conn`; returns whether it is authenticated.
    fn touch(&self, conn: ConnId) -> bool {
        let now = self.clock.now();
        match lock(&self.clients).get_mut(&conn) {
            Some(c) => {
                c.last_request = Some(now);
                c.authed
            }
            None => false,
        }
    }

    /// An unauthenticated client may void what it was told of, and ask about ids the
    /// link never saw when the journal does not have them either (`not_found`).
    fn may_void(&self, decision_id: &str, conn: ConnId) -> bool {
        let owners = lock(&self.owners);
        if owners.owns(decision_id, conn) {
            return true;
        }
        if owners.by_id.contains_key(decision_id) {
            return false;
        }
        drop(owners);
        self.opts
            .journal
            .as_ref()
            .is_none_or(|known| !(known.0)(decision_id))
    }

    fn touch_authed(&self, conn: ConnId) -> bool {
        lock(&self.clients).get(&conn).is_some_and(|c| c.authed)
    }

    fn set_authed(&self, conn: ConnId) {
        if let Some(c) = lock(&self.clients).get_mut(&conn) {
            c.authed = true;
        }
    }

    /// Queues a line for one client; a client that stopped reading is dropped.
    fn send_to(&self, conn: ConnId, line: &Arc<str>) -> bool {
        let mut clients = lock(&self.clients);
        let Some(client) = clients.get(&conn) else {
            return false;
        };
        match client.lines.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("pos#{conn} ({}) not reading: disconnecting", client.peer);
                let _ = client.stream.shutdown(Shutdown::Both);
                clients.remove(&conn);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                clients.remove(&conn);
                false
            }
        }
    }

    /// Sends a line to every client; returns those that took it.
    fn broadcast(&self, line: &Arc<str>) -> Vec<ConnId> {
        let ids: Vec<ConnId> = lock(&self.clients).keys().copied().collect();
        ids.into_iter().filter(|c| self.send_to(*c, line)).collect()
    }

    /// Sends an answer to the client waiting on `request` (or everyone, for local scans).
    /// Returns the connections it went to; empty when it was for one client that is
    /// gone.
    fn route(&self, request: Option<&str>, conn: Option<ConnId>, line: String) -> Vec<ConnId> {
        let line: Arc<str> = Arc::from(line);
        let target = match request {
            Some(id) => match lock(&self.pending).take(id, conn).or(conn) {
                Some(c) => c,
                None => {
                    log::info!("no pos client waiting on {id:?}: answer not delivered");
                    return Vec::new();
                }
            },
            None => match conn {
                Some(c) => c,
                None => return self.broadcast(&line),
            },
        };
        if self.send_to(target, &line) {
            vec![target]
        } else {
            log::info!("pos#{target} gone: answer not delivered");
            Vec::new()
        }
    }

    /// Routes a decision and remembers who was told of it (they may void it).
    fn decision(&self, conn: Option<ConnId>, event: &DecisionEvent) -> bool {
        let to = self.route(event.request.as_deref(), conn, decision_line(event));
        let delivered = !to.is_empty();
        lock(&self.owners).record(&event.id, to);
        delivered
    }

    /// Routes a void answer; a reversal also goes to the clients that were told of the
    /// decision (when someone else voided it with the token, they must know).
    fn void_result(&self, conn: Option<ConnId>, event: &VoidEvent) {
        let line = void_line(event);
        let to = self.route(event.request_id.as_deref(), conn, line.clone());
        if event.outcome == VoidOutcome::Voided {
            let line: Arc<str> = Arc::from(line);
            for owner in lock(&self.owners).of(&event.decision_id) {
                if !to.contains(&owner) {
                    self.send_to(owner, &line);
                }
            }
        }
    }
}

/// The TCP server of the POS link.
pub struct PosServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for PosServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl PosServer {
    /// Listens on `addr` with default [`PosOptions`]; requests go to `agent`.
    pub fn bind(
        addr: impl ToSocketAddrs,
        agent: Sender<AgentRequest>,
        clock: SharedClock,
    ) -> Result<PosServer, PosError> {
        PosServer::bind_with(addr, agent, clock, PosOptions::default())
    }

    /// Listens on `addr` with these options.
    pub fn bind_with(
        addr: impl ToSocketAddrs,
        agent: Sender<AgentRequest>,
        clock: SharedClock,
        opts: PosOptions,
    ) -> Result<PosServer, PosError> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(PosError::Bind)?.collect();
        if opts.token.is_none() {
            if let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(PosError::NoToken(*open));
            }
        }
        let listener = TcpListener::bind(&addrs[..]).map_err(PosError::Bind)?;
        listener.set_nonblocking(true).map_err(PosError::Bind)?;
        let local_addr = listener.local_addr().map_err(PosError::Bind)?;
        let shared = Arc::new(Shared {
            clients: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            owners: Mutex::new(Owners::default()),
            agent,
            clock,
            opts,
            seq: AtomicU64::new(1),
            status: Mutex::new(None),
        });
        let s2 = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("pos@{local_addr}"))
            .spawn(move || accept_loop(listener, s2))
            .map_err(PosError::Spawn)?;
        Ok(PosServer {
            local_addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address actually bound (for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The output half: a [`Signal`] (and [`VoidSignal`]) writing answers to clients.
    pub fn signal(&self) -> PosSignal {
        PosSignal {
            shared: self.shared.clone(),
        }
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        lock(&self.shared.clients).len()
    }

    /// Stops accepting, closes every client and waits for the threads.
    pub fn shutdown(&mut self) {
        self.shared.opts.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for PosServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        threads.retain(|h| !h.is_finished());
        match wait_readable(listener.as_fd(), shared.opts.poll_interval) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::error!("pos listener failed: {e}");
                break;
            }
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                log::debug!("pos accept: {e}");
                continue;
            }
        };
        if let Err(e) = admit(stream, peer, &shared, &mut threads) {
            log::warn!("pos client {peer}: {e}");
        }
    }
    for c in lock(&shared.clients).values() {
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    for h in threads {
        let _ = h.join();
    }
    lock(&shared.clients).clear();
}

fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    threads: &mut Vec<JoinHandle<()>>,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(shared.opts.write_timeout))?;
    stream.set_read_timeout(Some(
        shared.opts.poll_interval.max(Duration::from_millis(1)),
    ))?;
    if lock(&shared.clients).len() >= shared.opts.max_clients.max(1) && !shared.evict_one() {
        let mut s = stream;
        let line = error_line(None, &RequestError::TooManyClients) + "\n";
        let _ = s.write_all(line.as_bytes());
        let _ = s.shutdown(Shutdown::Both);
        return Err(io::Error::other("refused: too many clients"));
    }
    let conn = next_conn_id();
    let (tx, rx) = crossbeam_channel::bounded::<Arc<str>>(shared.opts.client_queue.max(1));
    let writer_stream = stream.try_clone()?;
    let control_stream = stream.try_clone()?;
    // The current status first (a POS that connects while the agent is offline must
    // know), under the status lock so a change being broadcast comes after it.
    let status = lock(&shared.status);
    if let Some(s) = *status {
        let _ = tx.try_send(Arc::from(status_line(s)));
    }
    lock(&shared.clients).insert(
        conn,
        Client {
            peer,
            lines: tx.clone(),
            stream: control_stream,
            connected: shared.clock.now(),
            last_request: None,
            authed: false,
        },
    );
    drop(status);
    log::info!("pos#{conn}: connected from {peer}");
    let writer = std::thread::Builder::new()
        .name(format!("pos#{conn}-w"))
        .spawn(move || write_loop(writer_stream, rx));
    let s2 = shared.clone();
    let reader = std::thread::Builder::new()
        .name(format!("pos#{conn}-r"))
        .spawn(move || read_loop(stream, conn, peer, tx, s2));
    match (writer, reader) {
        (Ok(w), Ok(r)) => {
            threads.push(w);
            threads.push(r);
            Ok(())
        }
        (w, r) => {
            if let Some(c) = lock(&shared.clients).remove(&conn) {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            threads.extend(w.ok());
            threads.extend(r.ok());
            Err(io::Error::other("cannot start client threads"))
        }
    }
}

fn write_loop(mut stream: TcpStream, rx: Receiver<Arc<str>>) {
    for line in rx.iter() {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if stream
            .write_all(&buf)
            .and_then(|()| stream.flush())
            .is_err()
        {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
    }
}

/// What the reader knows about its connection.
struct ConnState {
    conn: ConnId,
    peer: SocketAddr,
    connected: Instant,
    /// When the unfinished line in the framer got its first byte.
    partial_since: Option<Instant>,
    scans: Option<Bucket>,
}

/// Where a chunk leaves the line being read: `Some(true)` when it ends inside a line
/// (bytes after the last line end), `Some(false)` when it ends on a line end, `None`
/// when it has no line end at all (the line in progress goes on).
fn ends_inside_line(chunk: &[u8]) -> Option<bool> {
    let last_end = chunk.iter().rposition(|b| *b == b'\n' || *b == b'\r')?;
    Some(last_end + 1 < chunk.len())
}

fn read_loop(
    mut stream: TcpStream,
    conn: ConnId,
    peer: SocketAddr,
    out: Sender<Arc<str>>,
    shared: Arc<Shared>,
) {
    let cfg = FrameConfig {
        max_len: MAX_LINE,
        ..FrameConfig::default()
    };
    let mut framer: Framer<MAX_LINE> = Framer::new(cfg);
    let mut buf = [0u8; 1024];
    let now = shared.clock.now();
    let mut state = ConnState {
        conn,
        peer,
        connected: now,
        partial_since: None,
        scans: shared
            .opts
            .scans_per_minute
            .map(|r| Bucket::new(shared.opts.scan_burst, r, now)),
    };
    let timeout = shared.opts.line_timeout;
    let why = loop {
        if shared.stopped() {
            break "stopping".to_string();
        }
        // Slow or silent clients must not hold a slot for ever (issue 11).
        let now = shared.clock.now();
        let late = |since: Instant| now.saturating_duration_since(since) >= timeout;
        if state.partial_since.is_some_and(late) {
            reply(&out, error_line(None, &RequestError::LineTimeout(timeout)));
            break "line timeout".to_string();
        }
        if shared.opts.token.is_some() && late(state.connected) && !shared.touch_authed(conn) {
            reply(&out, error_line(None, &RequestError::AuthTimeout(timeout)));
            break "no auth in time".to_string();
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break "closed".to_string(),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => break e.to_string(),
        };
        match ends_inside_line(&buf[..n]) {
            Some(true) => state.partial_since = Some(shared.clock.now()),
            Some(false) => state.partial_since = None,
            None => {
                state.partial_since.get_or_insert(shared.clock.now());
            }
        }
        let mut frames = Vec::new();
        framer.feed(&buf[..n], |f| frames.push(f));
        let mut go_on = true;
        for f in frames {
            match handle_frame(f, &mut state, &out, &shared) {
                Next::Continue => {}
                Next::Close(why) => {
                    go_on = false;
                    log::info!("pos#{conn}: {why}");
                    break;
                }
            }
        }
        if !go_on {
            break "closed by the link".to_string();
        }
    };
    // A partial line at the end is not a request: nobody would hear the answer.
    log::info!("pos#{conn}: {why}");
    lock(&shared.pending).forget_conn(conn);
    if let Some(c) = lock(&shared.clients).remove(&conn) {
        let _ = c.stream.shutdown(Shutdown::Read);
    }
}

/// What the reader does after a line.
enum Next {
    Continue,
    Close(&'static str),
}

fn reply(out: &Sender<Arc<str>>, line: String) {
    // Full queue: the client is not reading; the signal side will drop it.
    let _ = out.try_send(Arc::from(line));
}

/// A `void_result` the link answers itself (the agent is not asked).
fn refused_void(shared: &Shared, decision_id: &str, request_id: Option<&str>, why: &str) -> String {
    void_line(&VoidEvent {
        decision_id: decision_id.to_string(),
        request_id: request_id.map(str::to_string),
        outcome: VoidOutcome::Refused,
        reversed_cents: 0,
        items: Vec::new(),
        error: Some(why.to_string()),
        time: crate::store::rfc3339_ms(shared.clock.wall_ms()),
        terminal: shared.opts.terminal.clone(),
    })
}

/// Handles one framed line.
fn handle_frame(
    frame: Frame<MAX_LINE>,
    state: &mut ConnState,
    out: &Sender<Arc<str>>,
    shared: &Shared,
) -> Next {
    let conn = state.conn;
    let text = match frame {
        Frame::Text(t) => t,
        Frame::Noise(u) => {
            let err = match u.reason {
                UnreadableReason::TooLong => RequestError::TooLong,
                r => RequestError::Unreadable(r),
            };
            reply(out, error_line(None, &err));
            return Next::Continue;
        }
    };
    let authed = shared.touch(conn);
    let req = match parse_line(&text) {
        Ok(r) => r,
        Err(rej) => {
            log::info!("pos#{conn}: refused request: {}", rej.error);
            reply(out, error_line(rej.request_id.as_deref(), &rej.error));
            return Next::Continue;
        }
    };
    let origin = Origin::Pos {
        conn,
        peer: state.peer,
    };
    let now = shared.clock.wall_ms();
    let assign = |id: Option<String>| {
        id.unwrap_or_else(|| format!("pos{conn}-{}", shared.seq.fetch_add(1, Ordering::Relaxed)))
    };
    // With a token, nothing but `auth` and `ping` before authenticating.
    let locked = shared.opts.token.is_some() && !authed;
    let (request_id, agent_req) = match req {
        PosRequest::Ping { request_id } => {
            reply(
                out,
                pong_line_with(request_id.as_deref(), *lock(&shared.status)),
            );
            return Next::Continue;
        }
        PosRequest::Auth { token, request_id } => {
            let Some(want) = &shared.opts.token else {
                reply(
                    out,
                    error_line(request_id.as_deref(), &RequestError::AuthNotConfigured),
                );
                return Next::Continue;
            };
            if same_secret(token.expose(), want.expose()) {
                shared.set_authed(conn);
                log::info!("pos#{conn}: authenticated");
                reply(out, auth_line(request_id.as_deref()));
                return Next::Continue;
            }
            log::warn!("pos#{conn} ({}): wrong token: closing", state.peer);
            reply(
                out,
                error_line(request_id.as_deref(), &RequestError::BadToken),
            );
            return Next::Close("wrong token");
        }
        PosRequest::Scan { request_id, .. } | PosRequest::Void { request_id, .. } if locked => {
            reply(
                out,
                error_line(request_id.as_deref(), &RequestError::AuthRequired),
            );
            return Next::Continue;
        }
        PosRequest::Scan {
            barcode: text,
            amount_cents,
            request_id,
        } => {
            // A flooding client spends its own share of the ATS budget, not the stand's.
            if let Some(bucket) = &mut state.scans {
                if !bucket.take(shared.clock.now()) {
                    let per_minute = shared.opts.scans_per_minute.unwrap_or(0);
                    reply(
                        out,
                        error_line(request_id.as_deref(), &RequestError::ScanRate(per_minute)),
                    );
                    return Next::Continue;
                }
            }
            let id = assign(request_id);
            let ev = ScanEvent {
                input: barcode::classify(&text),
                amount_cents,
                request_id: Some(id.clone()),
                received_at_ms: now,
                origin,
            };
            (id, AgentRequest::Scan(ev))
        }
        PosRequest::Void {
            decision_id,
            request_id,
        } => {
            // Only who was told of the sale may reverse it, or a holder of the token.
            if !authed && !shared.may_void(&decision_id, conn) {
                log::warn!("pos#{conn}: refused a void of {decision_id:?}: not its sale");
                let why = "this decision was not made on this connection: only the client \
                           that made the sale, or one authenticated with the link's token, may void it";
                reply(
                    out,
                    refused_void(shared, &decision_id, request_id.as_deref(), why),
                );
                return Next::Continue;
            }
            let id = assign(request_id);
            let req = AgentRequest::Void {
                decision_id,
                request_id: Some(id.clone()),
                origin,
                received_at_ms: now,
            };
            (id, req)
        }
    };
    // Register and send under one lock, so answers to a reused id come back in order.
    let mut pending = lock(&shared.pending);
    if pending.total >= shared.opts.max_pending {
        drop(pending);
        reply(
            out,
            error_line(Some(&request_id), &RequestError::TooManyPending),
        );
        return Next::Continue;
    }
    match shared.agent.try_send(agent_req) {
        Ok(()) => {
            pending.push(&request_id, conn);
            Next::Continue
        }
        Err(TrySendError::Full(_)) => {
            drop(pending);
            reply(out, error_line(Some(&request_id), &RequestError::Busy));
            Next::Continue
        }
        Err(TrySendError::Disconnected(_)) => {
            drop(pending);
            reply(out, error_line(Some(&request_id), &RequestError::Stopped));
            Next::Close("agent stopped")
        }
    }
}

/// The output half of the POS link: answers go to the client that asked.
#[derive(Clone)]
pub struct PosSignal {
    shared: Arc<Shared>,
}

impl fmt::Debug for PosSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosSignal").finish_non_exhaustive()
    }
}

fn pos_conn(origin: &Origin) -> Option<ConnId> {
    match origin {
        Origin::Pos { conn, .. } => Some(*conn),
        _ => None,
    }
}

impl PosSignal {
    /// Sends a decision to the client behind `origin` (a POS request), or to every
    /// client (a local scan). Use this when the loop still has the request's origin;
    /// [`Signal::decision`] routes by `event.request` alone. Returns false when the
    /// client that asked is gone.
    pub fn decision_to(&mut self, origin: &Origin, event: &DecisionEvent) -> bool {
        self.shared.decision(pos_conn(origin), event)
    }

    /// Sends a void answer to the client behind `origin` (or routes by request id).
    pub fn void_result_to(&mut self, origin: &Origin, event: &VoidEvent) {
        self.shared.void_result(pos_conn(origin), event);
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        lock(&self.shared.clients).len()
    }
}

impl Signal for PosSignal {
    /// Routes by `event.request`: to the client waiting on that id; without one (a local
    /// scan), to every client. Never blocks. When the client that asked is gone the
    /// answer is [`SignalError::Undelivered`]: the agent reverses such an approval.
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        if self.shared.decision(None, event) || event.request.is_none() {
            Ok(())
        } else {
            Err(SignalError::Undelivered(
                "the pos client that asked has disconnected".into(),
            ))
        }
    }

    /// Sends a status line to every client, and remembers it for clients that
    /// connect later and for `pong`.
    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        let mut current = lock(&self.shared.status);
        *current = Some(status);
        self.shared.broadcast(&Arc::from(status_line(status)));
        drop(current);
        Ok(())
    }
}

impl VoidSignal for PosSignal {
    /// Routes by `event.request_id` like [`Signal::decision`]; a reversal also reaches
    /// the clients that were told of the decision.
    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        self.shared.void_result(None, event);
        Ok(())
    }

    /// The link answers the scans it forwarded.
    fn answers(&self, origin: &Origin) -> bool {
        origin.is_pos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(line: &str) -> Rejected {
        match parse_line(line) {
            Err(r) => r,
            Ok(req) => panic!("{line} accepted as {req:?}"),
        }
    }

    #[test]
    fn parses_scan_requests() {
        assert_eq!(
            parse_line(
                r#"{"type":"scan","barcode":"100000000001","amount_cents":500,"request_id":"r1"}"#
            ),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: Some(500),
                request_id: Some("r1".into()),
            })
        );
        assert_eq!(
            parse_line(r#"{"type":"scan","barcode":"100000000001","amount_cents":null}"#),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: None,
                request_id: None,
            })
        );
    }

    #[test]
    fn json_barcodes_lose_their_aim_identifier() {
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":" ]C1100000000001 "}"#),
            Ok(PosRequest::Scan { barcode, .. }) if barcode == "100000000001"
        ));
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":"]Cé1"}"#),
            Ok(PosRequest::Scan { barcode, .. }) if barcode == "]Cé1"
        ));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":"100000000001","lane":3,"extra":{"a":[1]}}"#),
            Ok(PosRequest::Scan { .. })
        ));
    }

    #[test]
    fn parses_void_and_ping() {
        assert_eq!(
            parse_line(r#"{"type":"void","decision_id":"d-1","request_id":"r2"}"#),
            Ok(PosRequest::Void {
                decision_id: "d-1".into(),
                request_id: Some("r2".into()),
            })
        );
        assert_eq!(
            parse_line(r#"{"type":"ping"}"#),
            Ok(PosRequest::Ping { request_id: None })
        );
    }

    #[test]
    fn a_plain_line_is_a_bare_scan() {
        assert_eq!(
            parse_line("100000000001"),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: None,
                request_id: None,
            })
        );
        assert!(matches!(parse_line("hello"), Ok(PosRequest::Scan { .. })));
    }

    #[test]
    fn refuses_broken_json_and_non_objects() {
        assert_eq!(rejected("{").error, RequestError::InvalidJson);
        assert_eq!(
            rejected(r#"{"type":"scan",}"#).error,
            RequestError::InvalidJson
        );
        assert_eq!(rejected("[1,2]").error, RequestError::NotObject);
        assert_eq!(rejected(r#""100000000001""#).error, RequestError::NotObject);
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(rejected(&deep).error, RequestError::InvalidJson);
    }

    #[test]
    fn refuses_hostile_amounts() {
        let cases = [
            ("-500", RequestError::BadAmount),
            ("0", RequestError::BadAmount),
            ("5.5", RequestError::BadAmount),
            ("5.0", RequestError::BadAmount),
            ("1e3", RequestError::BadAmount),
            ("\"500\"", RequestError::BadAmount),
            ("true", RequestError::BadAmount),
            ("[500]", RequestError::BadAmount),
            ("{}", RequestError::BadAmount),
            ("18446744073709551615", RequestError::AmountTooLarge),
            ("18446744073709551616", RequestError::BadAmount),
            ("99999999999999999999999999999999", RequestError::BadAmount),
            ("10000001", RequestError::AmountTooLarge),
        ];
        for (amount, want) in cases {
            let line = format!(
                r#"{{"type":"scan","barcode":"100000000001","amount_cents":{amount},"request_id":"r9"}}"#
            );
            let r = rejected(&line);
            assert_eq!(r.error, want, "{amount}");
            assert_eq!(r.request_id.as_deref(), Some("r9"), "{amount}");
        }
        assert_eq!(
            rejected(r#"{"type":"scan","barcode":"1","amount_cents":1e400}"#).error,
            RequestError::InvalidJson
        );
    }

    #[test]
    fn refuses_wrong_types_and_missing_fields() {
        assert_eq!(
            rejected(r#"{"barcode":"1"}"#).error,
            RequestError::MissingType
        );
        assert_eq!(rejected(r#"{"type":7}"#).error, RequestError::UnknownType);
        assert_eq!(
            rejected(r#"{"type":"refund"}"#).error,
            RequestError::UnknownType
        );
        assert_eq!(
            rejected(r#"{"type":"scan"}"#).error,
            RequestError::Missing("barcode")
        );
        assert_eq!(
            rejected(r#"{"type":"scan","barcode":100000000001}"#).error,
            RequestError::Invalid("barcode")
        );
        let long = "1".repeat(MAX_BARCODE_FIELD + 1);
        assert_eq!(
            rejected(&format!(r#"{{"type":"scan","barcode":"{long}"}}"#)).error,
            RequestError::Invalid("barcode")
        );
        assert_eq!(
            rejected(r#"{"type":"void"}"#).error,
            RequestError::Missing("decision_id")
        );
        assert_eq!(
            rejected(r#"{"type":"void","decision_id":""}"#).error,
            RequestError::Invalid("decision_id")
        );
        assert_eq!(
            rejected(r#"{"type":"void","decision_id":["d"]}"#).error,
            RequestError::Invalid("decision_id")
        );
    }

    #[test]
    fn bad_request_ids_are_refused_and_not_echoed() {
        for id in ["7", "\"\"", "{}", "\"a\\u0007b\""] {
            let r = rejected(&format!(r#"{{"type":"ping","request_id":{id}}}"#));
            assert_eq!(r.error, RequestError::BadRequestId, "{id}");
            assert_eq!(r.request_id, None);
        }
        let long = "r".repeat(MAX_REQUEST_ID + 1);
        let r = rejected(&format!(r#"{{"type":"ping","request_id":"{long}"}}"#));
        assert_eq!(r.error, RequestError::BadRequestId);
    }

    #[test]
    fn error_lines_echo_the_request_id() {
        let v: Value =
            serde_json::from_str(&error_line(Some("r1"), &RequestError::BadAmount)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["error"], "amount_cents must be a positive integer");
        let v: Value = serde_json::from_str(&error_line(None, &RequestError::InvalidJson)).unwrap();
        assert_eq!(v["request_id"], Value::Null);
    }

    #[test]
    fn a_chunk_tells_whether_it_leaves_a_line_unfinished() {
        assert_eq!(ends_inside_line(b"1000"), None);
        assert_eq!(ends_inside_line(b"1000\n"), Some(false));
        assert_eq!(ends_inside_line(b"1000\r\n"), Some(false));
        assert_eq!(ends_inside_line(b"1\n2"), Some(true));
    }

    #[test]
    fn the_scan_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2, 6, t0);
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_secs(9)));
        assert!(b.take(t0 + Duration::from_secs(10)));
        // Idle time refills up to the burst only.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.take(later) && b.take(later) && !b.take(later));
    }

    #[test]
    fn owners_are_kept_for_a_bounded_number_of_decisions() {
        let mut o = Owners::default();
        for i in 0..OWNERS_KEPT + 10 {
            o.record(&format!("d-{i}"), vec![1]);
        }
        assert_eq!(o.by_id.len(), OWNERS_KEPT);
        assert!(!o.owns("d-0", 1));
        assert!(o.owns(&format!("d-{}", OWNERS_KEPT + 9), 1));
        assert!(!o.owns(&format!("d-{}", OWNERS_KEPT + 9), 2));
        o.record("", vec![1]);
        o.record("d-none", vec![]);
        assert!(!o.by_id.contains_key("d-none"));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn auth_requests_parse_and_their_token_is_not_printed() {
        let r = parse_line(r#"{"type":"auth","token":"s3cret-s3cret-s3cret","request_id":"a"}"#)
            .unwrap();
        assert!(format!("{r:?}").contains("Secret(***)"), "{r:?}");
        assert!(!format!("{r:?}").contains("s3cret"));
        assert_eq!(
            rejected(r#"{"type":"auth"}"#).error,
            RequestError::Missing("token")
        );
        assert_eq!(
            rejected(r#"{"type":"auth","token":5}"#).error,
            RequestError::Invalid("token")
        );
    }

    #[test]
    fn pending_routes_reused_ids_first_in_first_out() {
        let mut p = Pending::default();
        p.push("r1", 1);
        p.push("r1", 2);
        p.push("r2", 2);
        assert_eq!(p.total, 3);
        assert_eq!(p.take("r1", None), Some(1));
        assert_eq!(p.take("r1", Some(9)), None);
        p.forget_conn(2);
        assert_eq!(p.total, 0);
        assert!(p.by_id.is_empty());
    }
}
