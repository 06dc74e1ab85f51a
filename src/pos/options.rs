//! The POS link's limits, intervals and credentials.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::redact::Secret;

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
    /// Stops the server when set (share the agent's flag, or use [`PosServer::shutdown`](super::PosServer::shutdown)).
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
