//! Noise: why a read is not a ticket, with a detail safe to log.

use std::fmt;

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
