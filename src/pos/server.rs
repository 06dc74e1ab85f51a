//! The TCP server of the POS link: its options, the accept thread and per client a
//! reader and a writer.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::link::{Client, Shared};
use super::options::PosOptions;
use super::request::{
    auth_line, error_line, parse_line, pong_line_with, same_secret, PosRequest, RequestError,
    MAX_LINE,
};
use super::routing::{Bucket, Owners, Pending};
use super::signal::PosSignal;
use crate::clock::SharedClock;
use crate::scan::frame::{Frame, FrameConfig, Framer};
use crate::scan::source::wait_readable;
use crate::scan::{
    barcode, next_conn_id, AgentRequest, ConnId, Origin, ScanEvent, UnreadableReason,
};
use crate::signal::jsonl::void_line;
use crate::signal::{VoidEvent, VoidOutcome};
use crate::sync::lock;

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

    /// The output half: a [`Signal`](crate::signal::Signal) writing answers to clients.
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

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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

pub(super) fn admit(
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
        let _ = tx.try_send(Arc::from(crate::signal::jsonl::status_line(s)));
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

pub(super) fn write_loop(mut stream: TcpStream, rx: Receiver<Arc<str>>) {
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
pub(super) struct ConnState {
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
pub(super) fn ends_inside_line(chunk: &[u8]) -> Option<bool> {
    let last_end = chunk.iter().rposition(|b| *b == b'\n' || *b == b'\r')?;
    Some(last_end + 1 < chunk.len())
}

pub(super) fn read_loop(
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
pub(super) enum Next {
    Continue,
    Close(&'static str),
}

pub(super) fn reply(out: &Sender<Arc<str>>, line: String) {
    // Full queue: the client is not reading; the signal side will drop it.
    let _ = out.try_send(Arc::from(line));
}

/// A `void_result` the link answers itself (the agent is not asked).
pub(super) fn refused_void(
    shared: &Shared,
    decision_id: &str,
    request_id: Option<&str>,
    why: &str,
) -> String {
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
pub(super) fn handle_frame(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_tells_whether_it_leaves_a_line_unfinished() {
        assert_eq!(ends_inside_line(b"1000"), None);
        assert_eq!(ends_inside_line(b"1000\n"), Some(false));
        assert_eq!(ends_inside_line(b"1000\r\n"), Some(false));
        assert_eq!(ends_inside_line(b"1\n2"), Some(true));
    }
}
