//! The approve/deny rules, online and offline: a pure function.
//!
//! [`decide`] takes everything it needs as a [`DecideInput`] — the classified scan, the
//! POS amount, the evidence (a live ATS answer, a cached one with its age, or nothing),
//! the connectivity mode, this ticket's [`TicketLedger`], the terminal's
//! [`OfflineUsage`], the [`Policy`], today's date and the events served — and returns a
//! [`Decision`]. No I/O, no clock reads; a deny is a value, not an error.
//!
//! The rules (docs/agent.md, "Money rules"), in the order they are checked:
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

mod input;
pub mod ledger;
pub mod policy;
mod rules;
mod words;

pub use input::{DecideInput, Evidence, ScanKind};
pub use ledger::{LedgerLine, OfflineUsage, Restored, TicketLedger};
pub use policy::{OfflineCaps, Policy};
pub use rules::decide;
pub use words::{verdict_serde, Decision, ItemGrant, Mode, Reason, Source, UnknownName, Verdict};
