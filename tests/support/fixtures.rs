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

/// xorshift64: reproducible trials (the seed must not be 0).
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
