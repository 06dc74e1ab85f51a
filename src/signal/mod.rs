//! Telling the point-of-sale (and the people at the stand) what was decided.
//!
//! Every output — console text for people, JSON lines for POS software, GPIO lights and
//! relays on kiosks, a good/bad beep back to the scanner — implements [`Signal`]. The
//! agent loop builds one [`DecisionEvent`] per decision (after the journal is flushed)
//! and hands it to every configured signal, and one [`VoidEvent`] per void request.

pub mod console;
pub mod gpio;
pub mod jsonl;
pub mod scanner_ack;

use std::fmt;

use serde::Serialize;

use crate::decide::{Reason, Source, Verdict};
use crate::money::Cents;
use crate::scan::Origin;

/// One decision as the POS sees it. Field names are the JSON-lines protocol (docs/pos-protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionEvent {
    /// Unique decision id, created and journaled at decision time (an idempotency key).
    pub id: String,
    /// Scan time, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Terminal id from the configuration.
    pub terminal: String,
    /// The barcode, masked (`********9012`); empty for unreadable input.
    pub barcode: String,
    /// `approve` or `deny`.
    pub decision: Verdict,
    /// Why: `approved`, `partial`, or a deny reason (`unknown_ticket`, `offline_limit`, ...).
    pub reason: Reason,
    /// Money approved, integer cents (0 on deny).
    pub approved_cents: Cents,
    /// Items approved ("Pizza and a Coke"), one entry per unit.
    pub items: Vec<String>,
    /// Where the evidence came from: `live`, `cache` or `offline`.
    pub source: Source,
    /// Scan-to-decision time.
    pub latency_ms: u64,
    /// The POS request id this answers, when the scan came from the POS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Venue mode only (docs/venue.md): `committed` (in the venue ledger) or `pending`
    /// (decided on the local ledger under the offline caps, to upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
}

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

/// The agent's state, for ready/offline lights and status lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Online and waiting for a scan.
    Ready,
    /// ATS unreachable: deciding under offline rules.
    Offline,
    /// Approvals refused: less free disk under the store than the journal's headroom
    /// (`store_min_free_mb`); denies go on. Back to `ready` or `offline` with the next
    /// approval once space is freed.
    LowDisk,
    /// Shutting down.
    Stopping,
}

/// Why a signal could not be delivered.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// Writing to the output failed (socket closed, serial unplugged).
    Io(std::io::Error),
    /// A GPIO pin refused a level change.
    Pin(String),
    /// The POS client the answer was for is gone (the output itself still works).
    Undelivered(String),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Io(e) => write!(f, "signal output failed: {e}"),
            SignalError::Pin(e) => write!(f, "gpio pin failed: {e}"),
            SignalError::Undelivered(why) => write!(f, "answer not delivered: {why}"),
        }
    }
}

impl std::error::Error for SignalError {}

impl From<std::io::Error> for SignalError {
    fn from(e: std::io::Error) -> Self {
        SignalError::Io(e)
    }
}

/// An output that reports decisions and status.
///
/// Implementations must not block for long: the loop calls them in line with the
/// customer waiting. Slow outputs (blink patterns) run their timing on their own thread.
pub trait Signal: Send {
    /// Reports one decision. Called after the decision is durably journaled.
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError>;
    /// Reports a change of agent status.
    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError>;

    /// Reports the answer to a void request. Default: nothing (outputs that show
    /// decisions only: lights, beeps).
    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        let _ = event;
        Ok(())
    }

    /// True when this output is how the one who made a scan from `origin` learns the
    /// decision. An approval that no answering output took is reversed by the agent
    /// (`undelivered`, issue 11). Default: false (lights and beeps tell nobody the
    /// amount); stdout-like outputs answer every scan that did not come over the POS
    /// link, and the link answers those itself.
    fn answers(&self, origin: &Origin) -> bool {
        let _ = origin;
        false
    }
}
