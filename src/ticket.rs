//! What the agent knows about one ticket: identity, status and loaded value.
//!
//! This is the domain model shared by the ATS client (which builds it from the wire),
//! the store (which caches it) and `decide` (which judges it). Wire names and quirks
//! stay in `ats::wire`; nothing here knows about JSON envelopes.

use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// Archtics' status of a ticket (`verify_barcode` `ticket_status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Valid for entry and redemption.
    Active,
    /// Voided by the box office.
    Void,
    /// Replaced by another barcode.
    Reissued,
    /// Returned by the holder.
    Returned,
    /// A status this version does not know; treated as not redeemable.
    Other(String),
}

impl TicketStatus {
    /// True only for [`TicketStatus::Active`].
    pub fn is_redeemable(&self) -> bool {
        matches!(self, TicketStatus::Active)
    }
}

/// Identity and seat of a ticket (from `verify_barcode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketInfo {
    /// The Archtics barcode, normalised.
    pub barcode: String,
    /// The event this ticket is for (Archtics event name, e.g. `EVENT01`).
    pub event_name: String,
    /// Event date as ATS sends it (`YYYY-MM-DD`), if any.
    pub event_date: Option<String>,
    /// Event time as ATS sends it, if any.
    pub event_time: Option<String>,
    /// Owning account.
    pub acct_id: Option<u64>,
    /// Section, row, seat, for people.
    pub section_name: Option<String>,
    /// Row name.
    pub row_name: Option<String>,
    /// Seat number.
    pub seat_num: Option<String>,
    /// Price code.
    pub price_code: Option<String>,
    /// Redeemable or not.
    pub status: TicketStatus,
}

/// The kind of a loaded value line (`av_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// `M`: money, amounts in cents.
    Money,
    /// `N`: items ("Pizza and a Coke"), amounts are unit counts.
    Item,
}

/// One loaded value line on a ticket (a `get_av_barcodes` row).
///
/// For [`ValueKind::Money`] `loaded` and `balance` are cents. For [`ValueKind::Item`]
/// they are whole units of the item named by `description` (ATS sends "1" or "1.00").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueLine {
    /// Archtics' id of this added value (stable per ticket).
    pub av_id: String,
    /// Money or items.
    pub kind: ValueKind,
    /// What it is, for people ("Food and beverage credit", "Pizza and a Coke").
    pub description: String,
    /// What was loaded.
    pub loaded: Cents,
    /// What Archtics believes is left.
    pub balance: Cents,
    /// First day it may be used (`YYYY-MM-DD`), if limited.
    pub valid_from: Option<String>,
    /// Last day it may be used (`YYYY-MM-DD`), if limited.
    pub valid_until: Option<String>,
}

/// Everything one lookup learned about a ticket, as cached.
///
/// `info` is `None` when ATS answered that the barcode is not known (a cached
/// negative answer); `value` is empty when the ticket carries no loaded value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The normalised barcode this record is about.
    pub barcode: String,
    /// Identity and status, or `None` for "ATS does not know this barcode".
    pub info: Option<TicketInfo>,
    /// Loaded value lines.
    pub value: Vec<ValueLine>,
    /// When ATS answered (wall ms) — the age that offline rules check.
    pub fetched_at_ms: u64,
}
