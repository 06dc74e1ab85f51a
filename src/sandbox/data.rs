//! The sandbox's data set: events, accounts, tickets and their loaded value.
//!
//! Dates are stored as day offsets from "today" (the day the sandbox starts), so the
//! magic barcodes of `config/sandbox-data.json` always describe tonight's game. The
//! built-in set is that file, embedded at compile time so the binary works from any
//! directory. Tickets live in a `BTreeMap` keyed by barcode: lookups are cheap, event
//! listings come out sorted, and chunked answers resume with a range query.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::SandboxError;
use crate::date::{civil_from_days, days_from_civil};
use crate::money::{format_cents, parse_cents, Cents};

const BUILTIN_JSON: &str = include_str!("../../config/sandbox-data.json");

/// The account that `--generate` tickets belong to.
pub const GENERATED_ACCOUNT: u64 = 100_999;

/// An event (Archtics event name such as `EVENT01`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Archtics event name (`EVENT01`).
    pub event_name: String,
    /// Long name for people ("Home Opener").
    pub description: String,
    /// Event day relative to today (0 = today, -7 = a week ago).
    pub day_offset: i64,
    /// Start time, `HH:MM`.
    pub event_time: String,
    /// Venue name.
    #[serde(default)]
    pub venue: String,
    /// Opponent or performer.
    #[serde(default)]
    pub opponent: String,
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Archtics account id.
    pub acct_id: u64,
    /// First name.
    pub name_first: String,
    /// Last name.
    pub name_last: String,
    /// E-mail address.
    #[serde(default)]
    pub email_addr: String,
    /// `customer_query` answers 5020 (locked) for this account.
    #[serde(default)]
    pub locked: bool,
}

/// One added (loaded) value line on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedValue {
    /// Archtics id of the added value (`AV1001`).
    pub av_id: String,
    /// `M` money or `N` items.
    pub av_type: String,
    /// What it is ("Pizza and a Coke").
    pub description: String,
    /// Loaded amount in cents (items: units x 100).
    #[serde(with = "decimal")]
    pub amount: Cents,
    /// What is left, in cents (items: units x 100).
    #[serde(with = "decimal")]
    pub balance: Cents,
    /// First valid day relative to today, if limited.
    #[serde(default)]
    pub valid_from_offset: Option<i64>,
    /// Last valid day relative to today, if limited.
    #[serde(default)]
    pub valid_until_offset: Option<i64>,
}

/// A ticket (one seat for one event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The barcode (12 to 18 digits, optional letter).
    pub barcode: String,
    /// What this ticket demonstrates (not sent on the wire).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Event name.
    pub event_name: String,
    /// Owning account.
    pub acct_id: u64,
    /// Section.
    pub section_name: String,
    /// Row.
    pub row_name: String,
    /// Seat number.
    pub seat_num: String,
    /// Price code.
    #[serde(default)]
    pub price_code: String,
    /// Price paid, decimal string.
    #[serde(default)]
    pub purchase_price: String,
    /// `ACTIVE`, `VOID`, `REISSUED` or `RETURNED`.
    pub status: String,
    /// Every call about this barcode takes this long (a 202 cycle when above the threshold).
    #[serde(default)]
    pub slow_ms: u64,
    /// Entry scan time (`HH:MM:SS` on the event day), for `get_attendance`.
    #[serde(default)]
    pub entered_at: Option<String>,
    /// Entry gate.
    #[serde(default)]
    pub gate: Option<String>,
    /// Loaded value lines.
    #[serde(default)]
    pub value: Vec<AddedValue>,
}

#[derive(Debug, Deserialize)]
struct DataFile {
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    accounts: Vec<Account>,
    #[serde(default)]
    tickets: Vec<Ticket>,
}

/// Events, accounts and tickets the sandbox serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSet {
    events: Vec<Event>,
    accounts: BTreeMap<u64, Account>,
    tickets: BTreeMap<String, Ticket>,
}

impl Default for DataSet {
    fn default() -> Self {
        DataSet::builtin()
    }
}

impl DataSet {
    /// The built-in data set (`config/sandbox-data.json`, embedded).
    pub fn builtin() -> DataSet {
        // The embedded file is checked by this module's tests; failing here is a build bug.
        #[allow(clippy::expect_used)]
        DataSet::from_json(BUILTIN_JSON).expect("embedded sandbox-data.json is valid")
    }

    /// Loads a data set from a JSON file in the format of `config/sandbox-data.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<DataSet, SandboxError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SandboxError::Data(format!("read {}: {e}", path.display())))?;
        DataSet::from_json(&text)
    }

    /// Parses and checks a data set from JSON text.
    pub fn from_json(text: &str) -> Result<DataSet, SandboxError> {
        let file: DataFile =
            serde_json::from_str(text).map_err(|e| SandboxError::Data(format!("parse: {e}")))?;
        let mut ds = DataSet {
            events: Vec::new(),
            accounts: BTreeMap::new(),
            tickets: BTreeMap::new(),
        };
        for ev in file.events {
            if ds.event(&ev.event_name).is_some() {
                return Err(SandboxError::Data(format!(
                    "duplicate event {}",
                    ev.event_name
                )));
            }
            ds.events.push(ev);
        }
        for acct in file.accounts {
            ds.accounts.insert(acct.acct_id, acct);
        }
        for t in file.tickets {
            if ds.event(&t.event_name).is_none() {
                return Err(SandboxError::Data(format!(
                    "ticket {} names unknown event {}",
                    t.barcode, t.event_name
                )));
            }
            if !matches!(
                t.status.as_str(),
                "ACTIVE" | "VOID" | "REISSUED" | "RETURNED"
            ) {
                return Err(SandboxError::Data(format!(
                    "ticket {} has unknown status {}",
                    t.barcode, t.status
                )));
            }
            if let Some(v) = t
                .value
                .iter()
                .find(|v| v.av_type != "M" && v.av_type != "N")
            {
                return Err(SandboxError::Data(format!(
                    "value {} has av_type {} (want M or N)",
                    v.av_id, v.av_type
                )));
            }
            let bc = t.barcode.clone();
            if ds.tickets.insert(bc.clone(), t).is_some() {
                return Err(SandboxError::Data(format!("duplicate barcode {bc}")));
            }
        }
        Ok(ds)
    }

    /// Builder form of [`DataSet::generate`].
    pub fn with_generated(mut self, n: usize) -> DataSet {
        self.generate(n);
        self
    }

    /// Adds `n` EVENT01 tickets `200000000000 + i`, each with $10.00 (`AV2` + 6 digits),
    /// owned by account [`GENERATED_ACCOUNT`].
    pub fn generate(&mut self, n: usize) {
        self.accounts
            .entry(GENERATED_ACCOUNT)
            .or_insert_with(|| Account {
                acct_id: GENERATED_ACCOUNT,
                name_first: "Gen".into(),
                name_last: "Erated".into(),
                email_addr: "generated@example.com".into(),
                locked: false,
            });
        if self.event("EVENT01").is_none() {
            self.events.push(Event {
                event_name: "EVENT01".into(),
                description: "Home Opener".into(),
                day_offset: 0,
                event_time: "19:05".into(),
                venue: String::new(),
                opponent: String::new(),
            });
        }
        for i in 0..n {
            let barcode = format!("{}", 200_000_000_000u64 + i as u64);
            let t = Ticket {
                barcode: barcode.clone(),
                note: String::new(),
                event_name: "EVENT01".into(),
                acct_id: GENERATED_ACCOUNT,
                section_name: format!("{}", 200 + (i / 1000) % 100),
                row_name: format!("{}", (i / 20) % 50 + 1),
                seat_num: format!("{}", i % 20 + 1),
                price_code: "G".into(),
                purchase_price: "30.00".into(),
                status: "ACTIVE".into(),
                slow_ms: 0,
                entered_at: None,
                gate: None,
                value: vec![AddedValue {
                    av_id: format!("AV2{i:06}"),
                    av_type: "M".into(),
                    description: "Food and beverage credit".into(),
                    amount: 1000,
                    balance: 1000,
                    valid_from_offset: Some(-30),
                    valid_until_offset: Some(0),
                }],
            };
            self.tickets.insert(barcode, t);
        }
    }

    /// All events, in file order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The event named `name` (case-insensitive).
    pub fn event(&self, name: &str) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| e.event_name.eq_ignore_ascii_case(name))
    }

    /// The account `acct_id`.
    pub fn account(&self, acct_id: u64) -> Option<&Account> {
        self.accounts.get(&acct_id)
    }

    /// The account with this e-mail address (case-insensitive).
    pub fn account_by_email(&self, email: &str) -> Option<&Account> {
        self.accounts
            .values()
            .find(|a| a.email_addr.eq_ignore_ascii_case(email))
    }

    /// The ticket with this barcode.
    pub fn ticket(&self, barcode: &str) -> Option<&Ticket> {
        self.tickets.get(barcode)
    }

    /// Number of tickets.
    pub fn ticket_count(&self) -> usize {
        self.tickets.len()
    }

    /// All tickets, sorted by barcode.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    /// Tickets with a barcode strictly after `prev` (all when `None`), sorted.
    pub fn tickets_after<'a>(&'a self, prev: Option<&str>) -> impl Iterator<Item = &'a Ticket> {
        let start = match prev {
            Some(p) => Bound::Excluded(p.to_string()),
            None => Bound::Unbounded,
        };
        self.tickets
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, t)| t)
    }

    /// Sets the balance of one value line.
    pub fn set_balance(
        &mut self,
        barcode: &str,
        av_id: &str,
        balance: Cents,
    ) -> Result<(), SandboxError> {
        let t = self
            .tickets
            .get_mut(barcode)
            .ok_or_else(|| SandboxError::NotFound("barcode".into()))?;
        let v = t
            .value
            .iter_mut()
            .find(|v| v.av_id == av_id)
            .ok_or_else(|| SandboxError::NotFound("av_id".into()))?;
        v.balance = balance;
        Ok(())
    }

    /// Marks a ticket `VOID`.
    pub fn void_ticket(&mut self, barcode: &str) -> Result<(), SandboxError> {
        let t = self
            .tickets
            .get_mut(barcode)
            .ok_or_else(|| SandboxError::NotFound("barcode".into()))?;
        t.status = "VOID".into();
        Ok(())
    }
}

/// Decimal-string amounts ("20.00") in the data file, cents in memory.
mod decimal {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Cents, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_cents(*c))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cents, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "amount must be a decimal string, got {other}"
                )))
            }
        };
        parse_cents(&text).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 for a wall time in ms shifted by `utc_offset_minutes`.
pub(crate) fn day_number(wall_ms: u64, utc_offset_minutes: i32) -> i64 {
    let ms = wall_ms as i64 + i64::from(utc_offset_minutes) * 60_000;
    ms.div_euclid(86_400_000)
}

/// `YYYY-MM-DD` for a day number (days since 1970-01-01).
pub(crate) fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` (also `YYYY-MM-DDTHH..` and `MM/DD/YYYY`) to a day number.
pub(crate) fn parse_day(text: &str) -> Option<i64> {
    let t = text.trim();
    let (y, m, d) = if let Some((a, rest)) = t.split_once('/') {
        let (b, c) = rest.split_once('/')?;
        (c.get(..4)?.parse().ok()?, a.parse().ok()?, b.parse().ok()?)
    } else {
        let date = t.get(..10)?;
        let mut it = date.split('-');
        let y: i64 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let d: u32 = it.next()?.parse().ok()?;
        (y, m, d)
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject 2023-02-31 and friends.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

// Howard Hinnant's civil calendar algorithms.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_every_magic_barcode() {
        let ds = DataSet::builtin();
        for i in 1..=10 {
            let bc = format!("1000000000{i:02}");
            assert!(ds.ticket(&bc).is_some(), "{bc}");
        }
        assert_eq!(
            ds.ticket("100000000005").map(|t| t.status.as_str()),
            Some("VOID")
        );
        assert_eq!(ds.ticket("100000000010").map(|t| t.slow_ms), Some(3000));
        assert!(ds.ticket("999999999999").is_none());
    }

    #[test]
    fn generates_many_tickets_fast() {
        let t0 = std::time::Instant::now();
        let ds = DataSet::builtin().with_generated(100_000);
        assert!(t0.elapsed() < std::time::Duration::from_secs(3));
        assert_eq!(ds.ticket_count(), 100_010);
        let t = ds.ticket("200000099999").map(|t| t.value[0].av_id.clone());
        assert_eq!(t.as_deref(), Some("AV2099999"));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(parse_day("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(
            format_day(parse_day("2026-11-27").unwrap_or(0)),
            "2026-11-27"
        );
        assert_eq!(parse_day("2023-02-31"), None);
        assert_eq!(parse_day("12/31/2016"), parse_day("2016-12-31"));
        assert_eq!(parse_day("nope"), None);
        assert_eq!(day_number(86_400_000 * 3 + 5, 0), 3);
        assert_eq!(day_number(86_400_000 * 3 + 5, -60), 2);
    }

    #[test]
    fn loads_a_data_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("data.json");
        std::fs::write(&path, BUILTIN_JSON).unwrap_or_else(|e| panic!("{e}"));
        let ds = DataSet::from_file(&path).map_err(|e| e.to_string());
        assert_eq!(ds, Ok(DataSet::builtin()));
        assert!(DataSet::from_file(dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn rejects_bad_files() {
        assert!(DataSet::from_json("{").is_err());
        let bad = r#"{"events":[],"tickets":[{"barcode":"1","event_name":"X","acct_id":1,
            "section_name":"1","row_name":"1","seat_num":"1","status":"ACTIVE"}]}"#;
        assert!(DataSet::from_json(bad).is_err());
    }
}
