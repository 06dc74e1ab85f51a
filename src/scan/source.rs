//! Scanner sources: stdin, any readable file descriptor (pipes), serial ports and a TCP
//! listener for network scanners.
//!
//! Each source runs on its own thread, frames bytes with a [`Framer`] and sends every
//! read as [`AgentRequest::Scan`] into the agent's channel. Noise becomes an
//! `Unreadable` scan (the agent denies it); it never stops a source.
//!
//! A source ends when:
//! - its input ends (EOF, or a hang-up on a tty): [`SourceEnd::Eof`];
//! - the shared stop flag is set: [`SourceEnd::Stopped`] (checked at least every
//!   [`SourceOptions::poll_interval`]; file-descriptor sources wait with `poll(2)`,
//!   TCP connections with a read timeout, so no read blocks past it);
//! - the agent's channel is closed: [`SourceEnd::ChannelClosed`];
//! - reading fails: [`SourceEnd::Failed`].
//!
//! [`spawn_reader`] takes any `Read` (tests, files): it checks the stop flag between
//! reads only, so a blocking reader stops at its next read or EOF.
//!
//! The framer's buffer capacity is [`SOURCE_CAPACITY`] bytes; the configured
//! `FrameConfig::max_len` (default 64) is the limit within it.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};

use super::barcode::ScanInput;
use super::event::{next_conn_id, AgentRequest, Origin, ScanEvent};
use super::frame::{FrameConfig, Framer};
use crate::clock::SharedClock;

/// Capacity of a source's framing buffer, in bytes (the hard bound on one read).
pub const SOURCE_CAPACITY: usize = 256;

/// Default number of simultaneous network scanner connections.
pub const DEFAULT_MAX_SCANNERS: usize = 8;

/// Settings shared by every source.
#[derive(Clone)]
pub struct SourceOptions {
    /// Framing (prefix, suffix, AIM stripping, max length).
    pub frame: FrameConfig,
    /// Set to stop the source.
    pub stop: Arc<AtomicBool>,
    /// Stamps `received_at_ms`.
    pub clock: SharedClock,
    /// How often a waiting source looks at the stop flag (default 100 ms).
    pub poll_interval: Duration,
    /// Most simultaneous connections of a TCP scanner listener (default 8).
    pub max_connections: usize,
}

impl SourceOptions {
    /// Default framing and intervals with this clock and stop flag.
    pub fn new(clock: SharedClock, stop: Arc<AtomicBool>) -> Self {
        SourceOptions {
            frame: FrameConfig::default(),
            stop,
            clock,
            poll_interval: Duration::from_millis(100),
            max_connections: DEFAULT_MAX_SCANNERS,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("frame", &self.frame)
            .field("poll_interval", &self.poll_interval)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Why a source could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// Opening the device failed.
    Open(io::Error),
    /// Setting raw mode or the baud rate failed.
    Configure(io::Error),
    /// Binding the TCP listener failed.
    Bind(io::Error),
    /// Starting the thread failed.
    Spawn(io::Error),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Open(e) => write!(f, "open scanner device: {e}"),
            SourceError::Configure(e) => write!(f, "configure serial port: {e}"),
            SourceError::Bind(e) => write!(f, "bind scanner listener: {e}"),
            SourceError::Spawn(e) => write!(f, "start scanner thread: {e}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Open(e)
            | SourceError::Configure(e)
            | SourceError::Bind(e)
            | SourceError::Spawn(e) => Some(e),
        }
    }
}

/// How a source ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceEnd {
    /// The input ended (EOF, tty hang-up).
    Eof,
    /// The stop flag was set.
    Stopped,
    /// The agent's channel is closed.
    ChannelClosed,
    /// Reading failed.
    Failed(io::Error),
}

impl fmt::Display for SourceEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceEnd::Eof => f.write_str("end of input"),
            SourceEnd::Stopped => f.write_str("stopped"),
            SourceEnd::ChannelClosed => f.write_str("agent channel closed"),
            SourceEnd::Failed(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// A running source thread.
#[derive(Debug)]
pub struct SourceHandle {
    name: String,
    thread: JoinHandle<SourceEnd>,
}

impl SourceHandle {
    /// The source's name (its origin label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread and says how the source ended.
    pub fn join(self) -> SourceEnd {
        self.thread
            .join()
            .unwrap_or_else(|_| SourceEnd::Failed(io::Error::other("scanner thread panicked")))
    }
}

fn spawn_named(
    name: String,
    f: impl FnOnce() -> SourceEnd + Send + 'static,
) -> Result<SourceHandle, SourceError> {
    let thread = std::thread::Builder::new()
        .name(format!("scan-{name}"))
        .spawn(f)
        .map_err(SourceError::Spawn)?;
    Ok(SourceHandle { name, thread })
}

/// Sends one scan, waiting for room in a bounded channel but never past a stop.
fn send_scan(
    tx: &Sender<AgentRequest>,
    opts: &SourceOptions,
    origin: &Origin,
    input: ScanInput,
) -> Result<(), SourceEnd> {
    if let ScanInput::Unreadable(u) = &input {
        log::info!("{}: unreadable scan ({u})", origin.label());
    }
    let mut req = AgentRequest::Scan(ScanEvent {
        input,
        amount_cents: None,
        request_id: None,
        received_at_ms: opts.clock.wall_ms(),
        origin: origin.clone(),
    });
    loop {
        match tx.send_timeout(req, opts.poll_interval) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Disconnected(_)) => return Err(SourceEnd::ChannelClosed),
            Err(SendTimeoutError::Timeout(r)) => {
                if opts.stopped() {
                    return Err(SourceEnd::Stopped);
                }
                req = r;
            }
        }
    }
}

/// The read loop shared by all sources. `wait` says whether input is ready (false:
/// timed out, look at the stop flag again).
fn pump<R: Read>(
    reader: &mut R,
    mut wait: impl FnMut(&R) -> io::Result<bool>,
    origin: &Origin,
    tx: &Sender<AgentRequest>,
    opts: &SourceOptions,
) -> SourceEnd {
    let mut framer: Framer<SOURCE_CAPACITY> = Framer::new(opts.frame.clone());
    let mut buf = [0u8; 512];
    loop {
        if opts.stopped() {
            return SourceEnd::Stopped;
        }
        match wait(reader) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return SourceEnd::Failed(e),
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut => continue,
                // A tty whose other end hung up (pty master closed, device gone).
                _ if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => 0,
                _ => return SourceEnd::Failed(e),
            },
        };
        if n == 0 {
            if let Some(frame) = framer.finish() {
                if let Err(end) = send_scan(tx, opts, origin, frame.into_input()) {
                    return end;
                }
            }
            return SourceEnd::Eof;
        }
        let mut inputs = Vec::new();
        framer.feed_inputs(&buf[..n], |i| inputs.push(i));
        for input in inputs {
            if let Err(end) = send_scan(tx, opts, origin, input) {
                return end;
            }
        }
    }
}

/// Waits up to `timeout` for `fd` to be readable (or hung up).
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    });
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    match poll(&mut fds, Some(&ts)) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads any `Read` (a `Cursor`, a file) as scanner input. The stop flag is checked
/// between reads only.
pub fn spawn_reader<R: Read + Send + 'static>(
    mut reader: R,
    origin: Origin,
    tx: Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SourceHandle, SourceError> {
    spawn_named(origin.label(), move || {
        pump(&mut reader, |_| Ok(true), &origin, &tx, &opts)
    })
}

/// Reads a file descriptor (a pipe, a tty, stdin) as scanner input, waiting with
/// `poll(2)` so the stop flag is seen within `poll_interval` even when no input comes.
pub fn spawn_fd<R: Read + AsFd + Send + 'static>(
    mut reader: R,
    origin: Origin,
    tx: Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SourceHandle, SourceError> {
    let interval = opts.poll_interval;
    spawn_named(origin.label(), move || {
        pump(
            &mut reader,
            |r| wait_readable(r.as_fd(), interval),
            &origin,
            &tx,
            &opts,
        )
    })
}

/// Standard input read straight from its file descriptor (std's line buffer would hide
/// pending bytes from `poll`).
struct StdinFd(io::Stdin);

impl Read for StdinFd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(self.0.as_fd(), buf)?)
    }
}

impl AsFd for StdinFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Reads scans from standard input (a keyboard-wedge scanner, or a person typing).
pub fn spawn_stdin(
    tx: Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SourceHandle, SourceError> {
    spawn_fd(StdinFd(io::stdin()), Origin::Stdin, tx, opts)
}

/// The device or address in an i/o error (`No such file or directory` alone names
/// nothing to check).
fn named(what: impl fmt::Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens a serial device and sets it up for a scanner: raw mode, `baud`, receiver on,
/// modem lines ignored, pending input discarded. Non-blocking; read it after `poll`.
pub fn open_serial(path: &Path, baud: u32) -> Result<File, SourceError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::termios::{self, ControlModes, OptionalActions, QueueSelector, SpecialCodeIndex};
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| SourceError::Open(named(path.display(), e.into())))?;
    let conf = |e: rustix::io::Errno| SourceError::Configure(named(path.display(), e.into()));
    let mut t = termios::tcgetattr(&fd).map_err(conf)?;
    t.make_raw();
    t.set_speed(baud).map_err(conf)?;
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    termios::tcsetattr(&fd, OptionalActions::Now, &t).map_err(conf)?;
    termios::tcflush(&fd, QueueSelector::IFlush).map_err(conf)?;
    Ok(File::from(fd))
}

/// Opens a serial scanner (see [`open_serial`]) and reads it on its own thread.
/// Opening errors come back here, at start-up.
pub fn spawn_serial(
    path: &Path,
    baud: u32,
    tx: Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SourceHandle, SourceError> {
    let file = open_serial(path, baud)?;
    spawn_fd(file, Origin::Serial(path.display().to_string()), tx, opts)
}

/// A TCP listener for network scanners: each connection sends plain barcode lines.
#[derive(Debug)]
pub struct TcpScannerSource {
    local_addr: SocketAddr,
    handle: SourceHandle,
}

impl TcpScannerSource {
    /// Binds `addr` and accepts scanners on a thread until the stop flag is set (at most
    /// `opts.max_connections` at once; more are closed at once). Each connection is
    /// read on its own thread; a connection ending does not end the listener.
    pub fn bind(
        addr: impl ToSocketAddrs,
        tx: Sender<AgentRequest>,
        opts: SourceOptions,
    ) -> Result<TcpScannerSource, SourceError> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(SourceError::Bind)?.collect();
        let shown = addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|e| SourceError::Bind(named(format!("scanner.listen {shown}"), e)))?;
        listener.set_nonblocking(true).map_err(SourceError::Bind)?;
        let local_addr = listener.local_addr().map_err(SourceError::Bind)?;
        let handle = spawn_named(format!("scanners@{local_addr}"), move || {
            accept_loop(listener, tx, opts)
        })?;
        Ok(TcpScannerSource { local_addr, handle })
    }

    /// The address actually bound (for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the listener (after the stop flag is set) and all its connections.
    pub fn join(self) -> SourceEnd {
        self.handle.join()
    }

    /// True once the listener thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

fn accept_loop(listener: TcpListener, tx: Sender<AgentRequest>, opts: SourceOptions) -> SourceEnd {
    let active = Arc::new(AtomicUsize::new(0));
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    let end = loop {
        if opts.stopped() {
            break SourceEnd::Stopped;
        }
        conns.retain(|h| !h.is_finished());
        match wait_readable(listener.as_fd(), opts.poll_interval) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => break SourceEnd::Failed(e),
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if is_transient_accept_error(&e) => continue,
            Err(e) => break SourceEnd::Failed(e),
        };
        if active.load(Ordering::SeqCst) >= opts.max_connections.max(1) {
            log::warn!(
                "scanner {peer} refused: {} connections already",
                opts.max_connections
            );
            drop(stream);
            continue;
        }
        let conn = next_conn_id();
        let origin = Origin::Scanner { conn, peer };
        log::info!("{}: connected from {peer}", origin.label());
        active.fetch_add(1, Ordering::SeqCst);
        let (tx, opts2, active2) = (tx.clone(), opts.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("scan-{}", origin.label()))
            .spawn(move || {
                let end = read_scanner(stream, &origin, &tx, &opts2);
                log::info!("{}: {end}", origin.label());
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => conns.push(h),
            Err(e) => {
                active.fetch_sub(1, Ordering::SeqCst);
                log::warn!("scanner {peer}: cannot start thread: {e}");
            }
        }
    };
    for h in conns {
        let _ = h.join();
    }
    end
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::NFILE.raw_os_error())
}

fn read_scanner(
    mut stream: TcpStream,
    origin: &Origin,
    tx: &Sender<AgentRequest>,
    opts: &SourceOptions,
) -> SourceEnd {
    if let Err(e) = stream.set_nonblocking(false).and_then(|()| {
        stream.set_read_timeout(Some(opts.poll_interval.max(Duration::from_millis(1))))
    }) {
        return SourceEnd::Failed(e);
    }
    pump(&mut stream, |_| Ok(true), origin, tx, opts)
}
