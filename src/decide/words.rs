//! The decision vocabulary: [`Verdict`], [`Reason`], [`Source`], [`Mode`] and the
//! [`Decision`] they make up. Every stage after `decide` (journal, signals, exports)
//! speaks these words; their snake_case names are the wire and journal strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Value handed over.
    Approve,
    /// Nothing handed over.
    Deny,
}

impl Verdict {
    /// `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }
}

/// Whether the agent can reach ATS: its connectivity mode (`agent::health`), and the
/// mode one scan is judged in (offline when ATS was late for it).
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

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the wire name (`"live"`), as the JSON lines and exports spell it.
impl PartialEq<&str> for Source {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
    /// No cached record, while every served event's listing is complete and fresh: the
    /// listings name every ticket that carries value, so this one carries none (or was
    /// loaded since the last pass). Decided without an ATS call (`cache.unlisted`).
    NotListed,
}

impl Reason {
    /// Every reason, for tables and tests.
    pub const ALL: [Reason; 34] = [
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
        Reason::NotListed,
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
            Reason::NotListed => "not_listed",
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

/// Compares with the wire name (`"approved"`), as the JSON lines and exports spell it.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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

/// Serde for [`Verdict`] (`approve` / `deny`) in the journal's own encoding.
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
