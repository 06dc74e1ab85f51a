//! Domain fixtures the tests share: tickets as ATS would describe them.

use concession_agent::ticket::{TicketInfo, TicketStatus};

/// An active `EVENT01` ticket for `barcode` on `event_date`, with no account and no
/// seat. Tests that need more set it with struct update syntax:
/// `TicketInfo { acct_id: Some(100479), ..ticket_info(b, None) }`.
pub fn ticket_info(barcode: &str, event_date: Option<&str>) -> TicketInfo {
    TicketInfo {
        barcode: barcode.into(),
        event_name: "EVENT01".into(),
        event_date: event_date.map(Into::into),
        event_time: None,
        acct_id: None,
        section_name: None,
        row_name: None,
        seat_num: None,
        price_code: None,
        status: TicketStatus::Active,
    }
}
