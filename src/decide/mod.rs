//! The approve/deny rules, online and offline: a pure function.
//!
//! [`decide`] takes everything it needs as a [`DecideInput`] — the classified scan, the
//! POS amount, the evidence (a live ATS answer, a cached one with its age, or nothing),
//! the connectivity mode, this ticket's [`TicketLedger`], the terminal's
//! [`OfflineUsage`], the [`Policy`], today's date and the events served — and returns a
//! [`Decision`]. No I/O, no clock reads; a deny is a value, not an error.
//!
//! The rules (DESIGN.md section 4), in the order they are checked:
//!
//! 1. Unreadable input → `unreadable`; a SafeTix payload that was not resolved to a
//!    barcode → `safetix_unresolved`.
//! 2. Evidence. A live answer is judged under the online rules whatever the mode (a
//!    fresh answer beats the mode flag), source `live`. A cached answer while online and
//!    at most [`Policy::online_cache_max_age_ms`] old is judged like a live one, source
//!    `cache`. Any other cached answer is judged under the offline rules (source
//!    `offline`, `offline: true`): older than [`OfflineCaps::max_cache_age_ms`] →
//!    `stale_cache`. No evidence → `offline_unknown` (whatever the mode: without an
//!    answer there is nothing to approve). Cached evidence while the clock is not
//!    trusted ([`DecideInput::clock_trusted`]) → `clock_unsure`, before any age is
//!    read: an age measured by a wrong clock proves nothing.
//! 3. The record: ATS does not know it (or the record is about another barcode) →
//!    `unknown_ticket`; status not ACTIVE → `ticket_void`; not for an event this
//!    terminal serves → `wrong_event` (with no events configured, the event date must
//!    be today; a ticket without an event date is then refused). Two different rows
//!    for one value line (`av_id`) → `bad_record`; identical rows count once.
//! 4. A POS amount of zero → `invalid_request`.
//! 5. The value lines that count: money lines when the POS sent an amount, money and
//!    item lines for a bare scan. None loaded → `no_value`; none valid today
//!    (`valid_from`/`valid_until`, inclusive, compared as `YYYY-MM-DD`) →
//!    `value_expired`; nothing left after the ledger → `already_redeemed`.
//! 6. Amounts. With a POS amount: money only, up to the amount, across the money lines
//!    in the record's order. A bare scan: all available money plus one unit of each
//!    available item line. Never more than available (`min(balance, baseline) -
//!    unreflected`, see [`ledger`]), and never more on a line than was loaded on it
//!    (a `balance` above the line's `amount` is capped at the amount; a line with
//!    nothing loaded carries no value). Then at most
//!    [`Policy::max_transaction_cents`] of money per approval, online or offline: more
//!    asked (or available on a bare scan) is a `partial` approval of the maximum.
//! 7. Offline caps (offline decisions only): the terminal's offline count must stay
//!    within `total_count`, otherwise `offline_limit`. Money is limited to the smallest
//!    of `per_transaction_cents`, what `per_ticket_cents` leaves for this ticket and what
//!    `total_cents` leaves for the terminal. Items count toward the count, not cents.
//!    When the money asked exceeds that room: with [`Policy::offline_partial`] the room
//!    is approved (`partial`), without it the scan is denied (`offline_limit`); an
//!    approval that would hand over nothing is `offline_limit` too.
//! 8. Approve: `partial` when less money was approved than asked (the POS amount, or
//!    for a bare scan all available money), `approved` otherwise.

pub mod ledger;
pub mod policy;
mod rules;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::Cents;
use crate::ticket::TicketRecord;

pub use crate::signal::Verdict;
pub use ledger::{LedgerLine, OfflineUsage, Restored, TicketLedger};
pub use policy::{OfflineCaps, Policy};
pub use rules::decide;

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

/// Whether the agent can reach ATS for this scan (the agent's judgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// ATS answers.
    Online,
    /// ATS is unreachable, throttled or late for this scan.
    Offline,
}

/// Where the evidence for a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A fresh ATS answer (also used for denies made before any evidence was needed
    /// while online, e.g. `unreadable`).
    Live,
    /// A recent cached answer, judged under the online rules.
    Cache,
    /// Offline rules (cached answer or none).
    Offline,
}

impl Source {
    /// `live`, `cache` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Cache => "cache",
            Source::Offline => "offline",
        }
    }
}

impl FromStr for Source {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Source::Live),
            "cache" => Ok(Source::Cache),
            "offline" => Ok(Source::Offline),
            _ => Err(UnknownName(s.to_string())),
        }
    }
}

/// Why a decision went the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Everything asked was approved.
    Approved,
    /// Less money was approved than asked.
    Partial,
    /// The scanner input was noise.
    Unreadable,
    /// A SafeTix payload the agent could not resolve to a barcode.
    SafetixUnresolved,
    /// ATS does not know the barcode.
    UnknownTicket,
    /// VOID, REISSUED, RETURNED or an unknown status.
    TicketVoid,
    /// Not for an event this terminal serves.
    WrongEvent,
    /// The value is outside its valid_from / valid_until dates.
    ValueExpired,
    /// No value loaded (of the kind asked for).
    NoValue,
    /// Value was loaded but is spent (here or upstream).
    AlreadyRedeemed,
    /// Offline and nothing cached about this ticket.
    OfflineUnknown,
    /// An offline cap would be exceeded.
    OfflineLimit,
    /// Offline and the cached record is older than allowed.
    StaleCache,
    /// The POS asked for zero.
    InvalidRequest,
    /// The ATS answer contradicts itself (two different rows for one value line): it
    /// cannot say what the ticket holds, so nothing is approved on it.
    BadRecord,
    /// The terminal's clock disagrees with ATS's by more than `health.max_clock_skew_ms`
    /// (or was never checked against it): a cached record's age cannot be trusted, so
    /// nothing is approved from the cache (live answers still are).
    ClockUnsure,
    /// The terminal's own store could not be read or written: nothing is approved
    /// that cannot be accounted for. Produced by the agent, never by `decide`.
    StoreError,
    /// Presence knows no such ticket (`NOT_FOUND`).
    SafetixNotFound,
    /// Presence says the ticket is not valid (`INVALID_TICKET`: void, replaced, an old screenshot).
    SafetixInvalid,
    /// Presence says the ticket was already scanned in (`ALREADY_ENTERED`).
    SafetixAlreadyEntered,
    /// Presence says the ticket was scanned out (`EXIT`).
    SafetixExited,
    /// Presence answered `INTERNAL_SCAN`.
    SafetixInternalScan,
    /// Presence refused the request (`BAD_REQUEST`: check the `[presence]` device ids).
    SafetixBadRequest,
    /// Presence answered `START_RESTRICTION`.
    SafetixStartRestriction,
    /// Presence answered `END_RESTRICTION`.
    SafetixEndRestriction,
    /// Presence answered `SECTION_RESTRICTION`.
    SafetixSectionRestriction,
    /// Presence answered `EVENT_RESTRICTION`.
    SafetixEventRestriction,
    /// Presence says the ticket is not valid yet (`TOO_EARLY`).
    SafetixTooEarly,
    /// Presence says the ticket is no longer valid (`TOO_LATE`).
    SafetixTooLate,
    /// Presence answered a status this version does not know.
    SafetixUnknownStatus,
    /// Presence said `OKAY` but named no readable seat.
    SafetixNoSeat,
    /// Presence said `OKAY` for more than one seat.
    SafetixAmbiguous,
    /// The seat Presence named is not in the seat index (its barcode was never verified here).
    SafetixSeatUnknown,
}

impl Reason {
    /// Every reason, for tables and tests.
    pub const ALL: [Reason; 33] = [
        Reason::Approved,
        Reason::Partial,
        Reason::Unreadable,
        Reason::SafetixUnresolved,
        Reason::UnknownTicket,
        Reason::TicketVoid,
        Reason::WrongEvent,
        Reason::ValueExpired,
        Reason::NoValue,
        Reason::AlreadyRedeemed,
        Reason::OfflineUnknown,
        Reason::OfflineLimit,
        Reason::StaleCache,
        Reason::InvalidRequest,
        Reason::StoreError,
        Reason::BadRecord,
        Reason::ClockUnsure,
        Reason::SafetixNotFound,
        Reason::SafetixInvalid,
        Reason::SafetixAlreadyEntered,
        Reason::SafetixExited,
        Reason::SafetixInternalScan,
        Reason::SafetixBadRequest,
        Reason::SafetixStartRestriction,
        Reason::SafetixEndRestriction,
        Reason::SafetixSectionRestriction,
        Reason::SafetixEventRestriction,
        Reason::SafetixTooEarly,
        Reason::SafetixTooLate,
        Reason::SafetixUnknownStatus,
        Reason::SafetixNoSeat,
        Reason::SafetixAmbiguous,
        Reason::SafetixSeatUnknown,
    ];

    /// The snake_case name used on the wire and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Approved => "approved",
            Reason::Partial => "partial",
            Reason::Unreadable => "unreadable",
            Reason::SafetixUnresolved => "safetix_unresolved",
            Reason::UnknownTicket => "unknown_ticket",
            Reason::TicketVoid => "ticket_void",
            Reason::WrongEvent => "wrong_event",
            Reason::ValueExpired => "value_expired",
            Reason::NoValue => "no_value",
            Reason::AlreadyRedeemed => "already_redeemed",
            Reason::OfflineUnknown => "offline_unknown",
            Reason::OfflineLimit => "offline_limit",
            Reason::StaleCache => "stale_cache",
            Reason::InvalidRequest => "invalid_request",
            Reason::StoreError => "store_error",
            Reason::BadRecord => "bad_record",
            Reason::ClockUnsure => "clock_unsure",
            Reason::SafetixNotFound => "safetix_not_found",
            Reason::SafetixInvalid => "safetix_invalid",
            Reason::SafetixAlreadyEntered => "safetix_already_entered",
            Reason::SafetixExited => "safetix_exited",
            Reason::SafetixInternalScan => "safetix_internal_scan",
            Reason::SafetixBadRequest => "safetix_bad_request",
            Reason::SafetixStartRestriction => "safetix_start_restriction",
            Reason::SafetixEndRestriction => "safetix_end_restriction",
            Reason::SafetixSectionRestriction => "safetix_section_restriction",
            Reason::SafetixEventRestriction => "safetix_event_restriction",
            Reason::SafetixTooEarly => "safetix_too_early",
            Reason::SafetixTooLate => "safetix_too_late",
            Reason::SafetixUnknownStatus => "safetix_unknown_status",
            Reason::SafetixNoSeat => "safetix_no_seat",
            Reason::SafetixAmbiguous => "safetix_ambiguous",
            Reason::SafetixSeatUnknown => "safetix_seat_unknown",
        }
    }

    /// True for `approved` and `partial`.
    pub fn is_approval(self) -> bool {
        matches!(self, Reason::Approved | Reason::Partial)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// A name that is not a known [`Reason`] or [`Source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

/// One unit of an item handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemGrant {
    /// The value line it comes from.
    pub av_id: String,
    /// What it is ("Pizza and a Coke").
    pub description: String,
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

/// The outcome of one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Approve or deny.
    #[serde(with = "verdict_serde")]
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// Money approved, cents (0 on deny); the sum of `money`.
    pub approved_cents: Cents,
    /// Which money lines are debited and by how much, in order.
    pub money: Vec<(String, Cents)>,
    /// Items handed over, one entry per unit.
    pub items: Vec<ItemGrant>,
    /// Where the evidence came from.
    pub source: Source,
    /// Decided under the offline rules (flagged for reconciliation).
    pub offline: bool,
}

impl Decision {
    /// A deny with nothing handed over.
    pub fn deny(reason: Reason, source: Source, offline: bool) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason,
            approved_cents: 0,
            money: Vec::new(),
            items: Vec::new(),
            source,
            offline,
        }
    }

    /// True when approved.
    pub fn is_approve(&self) -> bool {
        self.verdict == Verdict::Approve
    }

    /// Item descriptions, one per unit (what the POS shows).
    pub fn item_names(&self) -> Vec<String> {
        self.items.iter().map(|i| i.description.clone()).collect()
    }
}

/// Serde for [`Verdict`] (`approve` / `deny`), which the signal module only serializes.
pub mod verdict_serde {
    use super::Verdict;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `approve` or `deny`.
    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    /// Reads `approve` or `deny`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown verdict {s:?}")))
    }

    /// `approve` / `deny` to a [`Verdict`].
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "approve" => Some(Verdict::Approve),
            "deny" => Some(Verdict::Deny),
            _ => None,
        }
    }
}
