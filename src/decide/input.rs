//! What `decide` is given: the classified scan, the evidence and everything else a
//! decision needs, gathered by the agent.

use crate::money::Cents;
use crate::ticket::TicketRecord;

use super::ledger::{OfflineUsage, TicketLedger};
use super::policy::Policy;
use super::words::Mode;

/// The scan, as classified by the scan stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanKind {
    /// A normalised Archtics barcode.
    Barcode(String),
    /// A rotating SafeTix payload that was not resolved to a barcode.
    SafeTix,
    /// Noise: nothing the agent can read.
    Unreadable,
}

/// What the agent knows about the ticket for this scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence<'a> {
    /// A fresh ATS answer for this scan.
    Live(&'a TicketRecord),
    /// A cached ATS answer and its age.
    Cached {
        /// The cached record.
        record: &'a TicketRecord,
        /// How old it is (now - fetched_at), in ms.
        age_ms: u64,
    },
    /// Nothing.
    None,
}

/// Everything a decision needs. Built by the agent; nothing here is read from a clock
/// or a disk.
#[derive(Debug, Clone, Copy)]
pub struct DecideInput<'a> {
    /// The classified scan.
    pub scan: &'a ScanKind,
    /// The POS amount; `None` redeems everything available (money and items).
    pub requested: Option<Cents>,
    /// What is known about the ticket.
    pub evidence: Evidence<'a>,
    /// Online or offline for this scan.
    pub mode: Mode,
    /// This terminal's ledger for the ticket (empty for a new ticket).
    pub ledger: &'a TicketLedger,
    /// The terminal's offline usage in the current window.
    pub usage: OfflineUsage,
    /// The limits.
    pub policy: &'a Policy,
    /// Today, `YYYY-MM-DD` (the venue's local date).
    pub today: &'a str,
    /// Event names this terminal serves; empty = any event dated today.
    pub events: &'a [String],
    /// The terminal's wall clock agrees with ATS's (see `agent::health::ClockCheck`).
    /// When `false`, cached evidence is refused (`clock_unsure`): its age was measured
    /// with a clock that may be hours off.
    pub clock_trusted: bool,
}
