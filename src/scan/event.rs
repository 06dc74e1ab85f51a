//! What the agent loop receives: a scan or a void, where it came from, and the
//! connection ids of TCP sources.

use std::fmt;
use std::net::SocketAddr;

use super::barcode::ScanInput;
use crate::money::Cents;

/// Identifies one TCP connection (POS client or network scanner) for the life of the
/// process. Ids are never reused.
pub type ConnId = u64;

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The agent's standard input (a keyboard-wedge scanner or a person typing).
    Stdin,
    /// A generic reader (tests, files, pipes), with a name for logs.
    Reader(String),
    /// A serial scanner at this device path.
    Serial(String),
    /// A network scanner connected to the scanner TCP listener.
    Scanner {
        /// Connection id.
        conn: ConnId,
        /// The scanner's address.
        peer: SocketAddr,
    },
    /// A POS client on the POS link; answers go back to this connection.
    Pos {
        /// Connection id.
        conn: ConnId,
        /// The POS's address.
        peer: SocketAddr,
    },
}

impl Origin {
    /// True for requests from a POS client (answers go to that client only).
    pub fn is_pos(&self) -> bool {
        matches!(self, Origin::Pos { .. })
    }

    /// Short label for logs and the console (`stdin`, `serial:/dev/ttyACM0`,
    /// `scanner#3`, `pos#2`).
    pub fn label(&self) -> String {
        match self {
            Origin::Stdin => "stdin".to_string(),
            Origin::Reader(name) => format!("reader:{name}"),
            Origin::Serial(path) => format!("serial:{path}"),
            Origin::Scanner { conn, .. } => format!("scanner#{conn}"),
            Origin::Pos { conn, .. } => format!("pos#{conn}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One scan, as the agent loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEvent {
    /// What was read.
    pub input: ScanInput,
    /// The amount the POS asks to redeem, in cents (`None`: whatever is available; local
    /// scanners never send an amount).
    pub amount_cents: Option<Cents>,
    /// The POS request id this scan answers (always set for POS requests: the client's
    /// id, or one the POS link assigned).
    pub request_id: Option<String>,
    /// When the read completed (wall ms, from the shared clock).
    pub received_at_ms: u64,
    /// Where it came from.
    pub origin: Origin,
}

/// Everything the agent loop is asked to do, from every source, on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentRequest {
    /// Decide on a scan.
    Scan(ScanEvent),
    /// Reverse an earlier approval (POS cancelled the sale). Answered with a
    /// [`crate::signal::VoidEvent`].
    Void {
        /// The `id` of the decision to reverse.
        decision_id: String,
        /// The POS request id (always set for POS requests).
        request_id: Option<String>,
        /// Where the request came from.
        origin: Origin,
        /// When it was received (wall ms).
        received_at_ms: u64,
    },
}

impl AgentRequest {
    /// Where the request came from.
    pub fn origin(&self) -> &Origin {
        match self {
            AgentRequest::Scan(s) => &s.origin,
            AgentRequest::Void { origin, .. } => origin,
        }
    }

    /// The POS request id, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            AgentRequest::Scan(s) => s.request_id.as_deref(),
            AgentRequest::Void { request_id, .. } => request_id.as_deref(),
        }
    }
}

static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh connection id (process-wide, never reused).
pub(crate) fn next_conn_id() -> ConnId {
    NEXT_CONN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
