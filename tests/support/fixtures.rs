//! Domain fixtures the tests share: tickets as ATS would describe them.

use concession_agent::ticket::{TicketInfo, TicketRecord, TicketStatus, ValueKind, ValueLine};

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

/// A ticket of event `EV` (2026-12-01) with one money line `m1`: `loaded` cents,
/// `balance` left as ATS says, fetched at 1 ms (the venue ledger tests' ticket).
pub fn money_record(barcode: &str, loaded: u64, balance: u64) -> TicketRecord {
    TicketRecord {
        barcode: barcode.into(),
        info: Some(TicketInfo {
            event_name: "EV".into(),
            ..ticket_info(barcode, Some("2026-12-01"))
        }),
        value: vec![ValueLine {
            av_id: "m1".into(),
            kind: ValueKind::Money,
            description: "F&B".into(),
            loaded,
            balance,
            valid_from: None,
            valid_until: None,
        }],
        fetched_at_ms: 1,
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
