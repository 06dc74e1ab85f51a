//! Scanner input: framing raw bytes into reads, validating barcodes, and the sources
//! (stdin, serial, TCP) that feed the agent loop.
//!
//! Bytes go through [`frame::Framer`] (line ends, prefix/suffix, AIM identifiers, noise),
//! each read through [`barcode::classify`] into a [`ScanInput`], and a source thread
//! wraps it in a [`ScanEvent`] sent as [`AgentRequest::Scan`] into the one channel the
//! agent loop reads. The POS link ([`crate::pos`]) sends into the same channel.

pub mod barcode;
pub mod frame;
pub mod source;

use std::fmt;
use std::net::SocketAddr;

pub use barcode::{classify, Barcode, BarcodeError, SafeTix};
pub use frame::{FrameConfig, Framer, DEFAULT_MAX_LEN};
pub use source::{SourceEnd, SourceHandle, SourceOptions};

use crate::money::Cents;

/// Identifies one TCP connection (POS client or network scanner) for the life of the
/// process. Ids are never reused.
pub type ConnId = u64;

/// What one read turned out to be.
#[derive(Clone, PartialEq, Eq)]
pub enum ScanInput {
    /// A printed/static ticket barcode, validated and normalised.
    Barcode(Barcode),
    /// A rotating SafeTix payload: recognised, but cannot be resolved to a barcode
    /// (the agent denies it with reason `safetix_unresolved`).
    SafeTix(SafeTix),
    /// Noise: a read that is not a ticket (the agent denies it with reason `unreadable`).
    Unreadable(Unreadable),
}

impl fmt::Debug for ScanInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanInput::Barcode(b) => write!(f, "Barcode({b:?})"),
            ScanInput::SafeTix(s) => write!(f, "SafeTix({s:?})"),
            ScanInput::Unreadable(u) => write!(f, "Unreadable({u})"),
        }
    }
}

impl ScanInput {
    /// The barcode, when the read is one.
    pub fn barcode(&self) -> Option<&Barcode> {
        match self {
            ScanInput::Barcode(b) => Some(b),
            _ => None,
        }
    }

    /// The barcode masked for logs and POS lines; empty for anything else.
    pub fn masked(&self) -> String {
        match self {
            ScanInput::Barcode(b) => b.masked(),
            _ => String::new(),
        }
    }
}

/// Why a read is not a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnreadableReason {
    /// A control character (other than the line end) inside the read.
    ControlChar,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Longer than the framer's maximum; the rest of the line was discarded.
    TooLong,
    /// Only a prefix, suffix or symbology identifier, no data.
    Empty,
    /// Well-formed text that is neither a ticket barcode nor a SafeTix payload.
    NotABarcode,
}

impl UnreadableReason {
    /// Short snake_case name (`control_char`, `invalid_utf8`, `too_long`, `empty`,
    /// `not_a_barcode`), for logs and POS error details.
    pub fn as_str(self) -> &'static str {
        match self {
            UnreadableReason::ControlChar => "control_char",
            UnreadableReason::InvalidUtf8 => "invalid_utf8",
            UnreadableReason::TooLong => "too_long",
            UnreadableReason::Empty => "empty",
            UnreadableReason::NotABarcode => "not_a_barcode",
        }
    }
}

/// A read that is not a ticket, with a short detail that never contains the read itself
/// (it may be customer data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The kind of noise.
    pub reason: UnreadableReason,
    /// A short, safe description ("byte 0x07 at 3", "more than 64 bytes").
    pub detail: String,
}

impl Unreadable {
    /// Builds an unreadable report.
    pub fn new(reason: UnreadableReason, detail: impl Into<String>) -> Self {
        Unreadable {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.reason.as_str())
        } else {
            write!(f, "{}: {}", self.reason.as_str(), self.detail)
        }
    }
}

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
