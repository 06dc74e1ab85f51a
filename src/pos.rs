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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::SharedClock;
use crate::money::Cents;
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

/// `{"type":"pong","request_id":...}` (no trailing newline).
pub fn pong_line(request_id: Option<&str>) -> String {
    serde_json::json!({ "type": "pong", "request_id": request_id }).to_string()
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
}

impl fmt::Display for PosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PosError::Bind(e) => write!(f, "bind pos listener: {e}"),
            PosError::Spawn(e) => write!(f, "start pos thread: {e}"),
        }
    }
}

impl std::error::Error for PosError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PosError::Bind(e) | PosError::Spawn(e) => Some(e),
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
        }
    }
}

struct Client {
    peer: SocketAddr,
    lines: Sender<Arc<str>>,
    stream: TcpStream,
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
    agent: Sender<AgentRequest>,
    clock: SharedClock,
    opts: PosOptions,
    seq: AtomicU64,
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

    fn broadcast(&self, line: &Arc<str>) {
        let ids: Vec<ConnId> = lock(&self.clients).keys().copied().collect();
        for conn in ids {
            self.send_to(conn, line);
        }
    }

    /// Sends an answer to the client waiting on `request` (or everyone, for local scans).
    /// Returns false when the answer was for one client and it is gone.
    fn route(&self, request: Option<&str>, conn: Option<ConnId>, line: String) -> bool {
        let line: Arc<str> = Arc::from(line);
        match request {
            Some(id) => {
                let target = lock(&self.pending).take(id, conn).or(conn);
                match target {
                    Some(c) => {
                        let sent = self.send_to(c, &line);
                        if !sent {
                            log::info!("pos#{c} gone: answer to {id:?} not delivered");
                        }
                        sent
                    }
                    None => {
                        log::info!("no pos client waiting on {id:?}: answer not delivered");
                        false
                    }
                }
            }
            None => match conn {
                Some(c) => self.send_to(c, &line),
                None => {
                    self.broadcast(&line);
                    true
                }
            },
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
        let listener = TcpListener::bind(addr).map_err(PosError::Bind)?;
        listener.set_nonblocking(true).map_err(PosError::Bind)?;
        let local_addr = listener.local_addr().map_err(PosError::Bind)?;
        let shared = Arc::new(Shared {
            clients: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            agent,
            clock,
            opts,
            seq: AtomicU64::new(1),
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
    if lock(&shared.clients).len() >= shared.opts.max_clients.max(1) {
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
    lock(&shared.clients).insert(
        conn,
        Client {
            peer,
            lines: tx.clone(),
            stream: control_stream,
        },
    );
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
    let why = loop {
        if shared.stopped() {
            break "stopping".to_string();
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
        let mut frames = Vec::new();
        framer.feed(&buf[..n], |f| frames.push(f));
        for f in frames {
            if !handle_frame(f, conn, peer, &out, &shared) {
                break;
            }
        }
    };
    // A partial line at the end is not a request: nobody would hear the answer.
    log::info!("pos#{conn}: {why}");
    lock(&shared.pending).forget_conn(conn);
    if let Some(c) = lock(&shared.clients).remove(&conn) {
        let _ = c.stream.shutdown(Shutdown::Read);
    }
}

fn reply(out: &Sender<Arc<str>>, line: String) {
    // Full queue: the client is not reading; the signal side will drop it.
    let _ = out.try_send(Arc::from(line));
}

/// Handles one framed line. Returns false when the agent has stopped.
fn handle_frame(
    frame: Frame<MAX_LINE>,
    conn: ConnId,
    peer: SocketAddr,
    out: &Sender<Arc<str>>,
    shared: &Shared,
) -> bool {
    let text = match frame {
        Frame::Text(t) => t,
        Frame::Noise(u) => {
            let err = match u.reason {
                UnreadableReason::TooLong => RequestError::TooLong,
                r => RequestError::Unreadable(r),
            };
            reply(out, error_line(None, &err));
            return true;
        }
    };
    let req = match parse_line(&text) {
        Ok(r) => r,
        Err(rej) => {
            log::info!("pos#{conn}: refused request: {}", rej.error);
            reply(out, error_line(rej.request_id.as_deref(), &rej.error));
            return true;
        }
    };
    let origin = Origin::Pos { conn, peer };
    let now = shared.clock.wall_ms();
    let assign = |id: Option<String>| {
        id.unwrap_or_else(|| format!("pos{conn}-{}", shared.seq.fetch_add(1, Ordering::Relaxed)))
    };
    let (request_id, agent_req) = match req {
        PosRequest::Ping { request_id } => {
            reply(out, pong_line(request_id.as_deref()));
            return true;
        }
        PosRequest::Scan {
            barcode: text,
            amount_cents,
            request_id,
        } => {
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
        return true;
    }
    match shared.agent.try_send(agent_req) {
        Ok(()) => {
            pending.push(&request_id, conn);
            true
        }
        Err(TrySendError::Full(_)) => {
            drop(pending);
            reply(out, error_line(Some(&request_id), &RequestError::Busy));
            true
        }
        Err(TrySendError::Disconnected(_)) => {
            drop(pending);
            reply(out, error_line(Some(&request_id), &RequestError::Stopped));
            false
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

impl PosSignal {
    /// Sends a decision to the client behind `origin` (a POS request), or to every
    /// client (a local scan). Use this when the loop still has the request's origin;
    /// [`Signal::decision`] routes by `event.request` alone.
    pub fn decision_to(&mut self, origin: &Origin, event: &DecisionEvent) {
        let conn = match origin {
            Origin::Pos { conn, .. } => Some(*conn),
            _ => None,
        };
        self.shared
            .route(event.request.as_deref(), conn, decision_line(event));
    }

    /// Sends a void answer to the client behind `origin` (or routes by request id).
    pub fn void_result_to(&mut self, origin: &Origin, event: &VoidEvent) {
        let conn = match origin {
            Origin::Pos { conn, .. } => Some(*conn),
            _ => None,
        };
        self.shared
            .route(event.request_id.as_deref(), conn, void_line(event));
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        lock(&self.shared.clients).len()
    }
}

impl Signal for PosSignal {
    /// Routes by `event.request`: to the client waiting on that id; without one (a local
    /// scan), to every client. Never blocks; an undeliverable answer is logged, not an
    /// error.
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        self.shared
            .route(event.request.as_deref(), None, decision_line(event));
        Ok(())
    }

    /// Sends a status line to every client.
    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        self.shared.broadcast(&Arc::from(status_line(status)));
        Ok(())
    }
}

impl VoidSignal for PosSignal {
    /// Routes by `event.request_id` like [`Signal::decision`].
    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        self.shared
            .route(event.request_id.as_deref(), None, void_line(event));
        Ok(())
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
