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

/// Two rows for one value line (`av_id`) that disagree: the answer cannot say what the
/// line holds, so the record built from it is refused (never approved twice, never
/// approved on a guess).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictingLine {
    /// The line's id.
    pub av_id: String,
}

impl std::fmt::Display for ConflictingLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "two different rows for value line {:?}",
            crate::redact::shorten(&self.av_id, 32)
        )
    }
}

impl std::error::Error for ConflictingLine {}

/// Adds one ATS row to a ticket's value lines: the one rule every builder of a record
/// goes through (a live `get_av_barcodes` answer, an event listing, a prefetch page).
///
/// A row identical to a line already there (a server that repeats a row, pages that
/// overlap) is dropped: a value line is spent once however often it is sent. A row with
/// the `av_id` of a line already there but other fields is a [`ConflictingLine`].
pub fn add_line(lines: &mut Vec<ValueLine>, line: ValueLine) -> Result<(), ConflictingLine> {
    match lines.iter().find(|l| l.av_id == line.av_id) {
        None => {
            lines.push(line);
            Ok(())
        }
        Some(same) if *same == line => Ok(()),
        Some(_) => Err(ConflictingLine { av_id: line.av_id }),
    }
}

/// [`add_line`] for builders that cannot refuse one row alone (a listing page grouped
/// into records): an exact duplicate is dropped, a conflicting row is kept next to the
/// first, so the record still shows the conflict and `decide` refuses it
/// (`bad_record`) instead of trusting either row.
pub fn push_merged(lines: &mut Vec<ValueLine>, line: ValueLine) {
    if let Err(ConflictingLine { .. }) = add_line(lines, line.clone()) {
        lines.push(line);
    }
}

/// Checks lines that did not come through [`add_line`] (a record cached by an older
/// version): exact duplicates are merged, a conflicting duplicate is an error.
pub fn merge_lines(lines: &[ValueLine]) -> Result<Vec<ValueLine>, ConflictingLine> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        add_line(&mut out, l.clone())?;
    }
    Ok(out)
}

/// How far in the future a record's stamp may lie and still count as "just now": the
/// slack of clocks read on different threads. Beyond it the stamp was written by a
/// clock that has since been stepped back.
pub const STAMP_FUTURE_SLACK_MS: u64 = 2_000;

/// How far a cached record's stamp may lead a newer answer's before the cached stamp
/// is taken for the work of a clock that ran fast: the decision-path clock sanity
/// threshold's default (5 min). Within it a late answer (stamped before a newer one
/// was cached) never overwrites the newer one.
pub const STAMP_LEAD_TOLERANCE_MS: u64 = crate::clock::DEFAULT_MAX_CLOCK_SKEW_MS;

impl TicketRecord {
    /// Adds one row to this record's value lines (see [`add_line`]).
    pub fn add_line(&mut self, line: ValueLine) -> Result<(), ConflictingLine> {
        add_line(&mut self.value, line)
    }

    /// How old this record is at wall time `now_ms`. A stamp in the future (beyond
    /// [`STAMP_FUTURE_SLACK_MS`]) was made by a clock that has since stepped back: its
    /// age is unknown, so it is [`u64::MAX`] (stale for every rule), never 0. An age
    /// that saturated at 0 made a record stamped by a clock 10 h fast look fresh for
    /// 10 h after the clock was corrected.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        if self.fetched_at_ms > now_ms.saturating_add(STAMP_FUTURE_SLACK_MS) {
            return u64::MAX;
        }
        now_ms.saturating_sub(self.fetched_at_ms)
    }

    /// True when this (new) record should replace `old` in the cache: it is at least as
    /// new, or `old`'s stamp leads it by more than [`STAMP_LEAD_TOLERANCE_MS`] (stamped
    /// by a clock that ran fast; without this, once the clock is corrected no answer
    /// could replace it until real time caught up with the bad stamp).
    pub fn supersedes(&self, old: &TicketRecord) -> bool {
        self.fetched_at_ms >= old.fetched_at_ms
            || old.fetched_at_ms - self.fetched_at_ms > STAMP_LEAD_TOLERANCE_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(av_id: &str, cents: u64) -> ValueLine {
        ValueLine {
            av_id: av_id.into(),
            kind: ValueKind::Money,
            description: "credit".into(),
            loaded: cents,
            balance: cents,
            valid_from: None,
            valid_until: None,
        }
    }

    fn stamped(ms: u64) -> TicketRecord {
        TicketRecord {
            barcode: "100000000001".into(),
            info: None,
            value: Vec::new(),
            fetched_at_ms: ms,
        }
    }

    #[test]
    fn a_record_stamped_in_the_future_is_of_unknown_age_not_young() {
        let now = 1_796_117_405_000;
        assert_eq!(stamped(now - 5_000).age_ms(now), 5_000);
        assert_eq!(stamped(now + 1_000).age_ms(now), 0);
        assert_eq!(stamped(now + 10 * 3_600_000).age_ms(now), u64::MAX);
    }

    #[test]
    fn a_live_answer_replaces_a_record_stamped_by_a_fast_clock() {
        let now = 1_796_117_405_000;
        assert!(stamped(now).supersedes(&stamped(now - 1)));
        // A late answer does not overwrite a slightly newer one...
        assert!(!stamped(now - 30_000).supersedes(&stamped(now)));
        // ...but a stamp 10 h ahead is a fast clock's, not a newer answer.
        assert!(stamped(now).supersedes(&stamped(now + 10 * 3_600_000)));
    }

    #[test]
    fn a_duplicated_value_line_is_kept_once() {
        let mut lines = Vec::new();
        add_line(&mut lines, line("A", 1000)).unwrap();
        add_line(&mut lines, line("A", 1000)).unwrap();
        add_line(&mut lines, line("B", 500)).unwrap();
        assert_eq!(lines, vec![line("A", 1000), line("B", 500)]);
    }

    #[test]
    fn two_different_rows_for_one_value_line_are_refused() {
        let mut lines = vec![line("A", 1000)];
        assert_eq!(
            add_line(&mut lines, line("A", 2000)),
            Err(ConflictingLine { av_id: "A".into() })
        );
        assert_eq!(lines, vec![line("A", 1000)]);
        assert!(merge_lines(&[line("A", 1000), line("A", 1000)]).is_ok());
        assert!(merge_lines(&[line("A", 1000), line("A", 999)]).is_err());
    }
}
