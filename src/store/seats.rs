//! The seat index and the SafeTix token mappings: what turns a phone ticket into the
//! barcode whose record is cached.
//!
//! Two tables of the cache's database (`cachedb.rs`), both disposable like the cache
//! (not in the redo log; durable with the next [`Store::sync_cache`] or checkpoint;
//! emptied by [`Store::cache_clear`]):
//!
//! | table | key | value |
//! |---|---|---|
//! | `seats` | `event \0 section \0 row \0 seat` (trimmed, lower case) | barcode |
//! | `safetix` | SHA-256 of the payload's token | [`TokenMapping`] |
//!
//! The seat index is written wherever a record is cached ([`Store::put_record`],
//! [`Store::put_records`]) when the record has a seat, which only `verify_barcode`
//! gives (an event listing carries no seats). A token is stored only as its hash: the
//! store then holds nothing a forger could put on a phone, even though the token is
//! stable per ticket.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::cachedb::{cache_err, SEATS, TOKENS};
use super::codec;
use super::db::Store;
use super::error::StoreError;
use crate::ticket::TicketRecord;

/// What a resolved token pointed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMapping {
    /// The barcode of the ticket.
    pub barcode: String,
    /// When Presence last resolved it (wall ms).
    pub resolved_at_ms: u64,
}

/// One seat of one event, as Presence names it and `verify_barcode` records it. Parts
/// compare trimmed and without case (as ATS compares event names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat<'a> {
    /// The Archtics event name.
    pub event: &'a str,
    /// Section name.
    pub section: &'a str,
    /// Row name.
    pub row: &'a str,
    /// Seat number.
    pub seat: &'a str,
}

impl<'a> Seat<'a> {
    /// The seat of `record`, when `verify_barcode` gave it one (every part non-empty).
    pub fn of(record: &'a TicketRecord) -> Option<Seat<'a>> {
        let info = record.info.as_ref()?;
        let seat = Seat {
            event: info.event_name.trim(),
            section: info.section_name.as_deref()?.trim(),
            row: info.row_name.as_deref()?.trim(),
            seat: info.seat_num.as_deref()?.trim(),
        };
        let parts = [seat.event, seat.section, seat.row, seat.seat];
        (!parts.iter().any(|p| p.is_empty())).then_some(seat)
    }

    fn parts(&self) -> [&'a str; 4] {
        [self.event, self.section, self.row, self.seat]
    }

    /// True when both name the same seat.
    pub fn same(&self, other: &Seat<'_>) -> bool {
        self.parts()
            .iter()
            .zip(other.parts())
            .all(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim()))
    }
}

fn seat_key(k: &Seat<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in k.parts().into_iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend(part.trim().to_ascii_lowercase().bytes().filter(|b| *b != 0));
    }
    out
}

fn token_key(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// Indexes `record`'s seat in the open `seats` table (no-op for a record without
/// one). Called where records are cached; the newest write for a seat wins, and
/// readers check the record.
pub(crate) fn index_seat_in(
    seats: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    record: &TicketRecord,
) -> Result<(), StoreError> {
    let Some(seat) = Seat::of(record) else {
        return Ok(());
    };
    let k = seat_key(&seat);
    let same = seats
        .get(k.as_slice())
        .map_err(cache_err)?
        .is_some_and(|v| v.value() == record.barcode.as_bytes());
    if !same {
        seats
            .insert(k.as_slice(), record.barcode.as_bytes())
            .map_err(cache_err)?;
    }
    Ok(())
}

impl Store {
    /// The cached record of the ticket at `seat`, if the index knows the seat and the
    /// record there is still about that seat (an entry left behind by a reissued seat
    /// must not resolve to the old barcode's record).
    pub fn record_by_seat(&self, seat: &Seat<'_>) -> Result<Option<TicketRecord>, StoreError> {
        let Some(barcode) = self.tickets.get(SEATS, &seat_key(seat))? else {
            return Ok(None);
        };
        let barcode = String::from_utf8_lossy(&barcode).into_owned();
        Ok(self
            .get_record(&barcode)?
            .filter(|r| Seat::of(r).is_some_and(|s| s.same(seat))))
    }

    /// Remembers that `token` resolved to `barcode` (stored as the token's hash).
    pub fn put_token_mapping(
        &self,
        token: &str,
        barcode: &str,
        resolved_at_ms: u64,
    ) -> Result<(), StoreError> {
        let v = codec::encode(
            "safetix",
            &TokenMapping {
                barcode: barcode.to_string(),
                resolved_at_ms,
            },
        )?;
        self.tickets.write(|w| {
            let mut t = w.open_table(TOKENS).map_err(cache_err)?;
            t.insert(token_key(token).as_slice(), v.as_slice())
                .map_err(cache_err)?;
            Ok(())
        })
    }

    /// What `token` last resolved to online, if anything. An unreadable entry is a miss.
    pub fn token_mapping(&self, token: &str) -> Result<Option<TokenMapping>, StoreError> {
        Ok(match self.tickets.get(TOKENS, &token_key(token))? {
            None => None,
            Some(v) => codec::decode("safetix", &v).ok(),
        })
    }

    /// Forgets `token` (Presence said it is no longer good).
    pub fn forget_token(&self, token: &str) -> Result<(), StoreError> {
        self.tickets.write(|w| {
            let mut t = w.open_table(TOKENS).map_err(cache_err)?;
            t.remove(token_key(token).as_slice()).map_err(cache_err)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::StoreOptions;
    use super::*;
    use crate::ticket::{TicketInfo, TicketStatus};

    fn record(barcode: &str, seat: Option<&str>, at: u64) -> TicketRecord {
        TicketRecord {
            barcode: barcode.into(),
            info: Some(TicketInfo {
                barcode: barcode.into(),
                event_name: "EVENT01".into(),
                event_date: None,
                event_time: None,
                acct_id: None,
                section_name: Some("101".into()),
                row_name: Some("A".into()),
                seat_num: seat.map(str::to_string),
                price_code: None,
                status: TicketStatus::Active,
            }),
            value: Vec::new(),
            fetched_at_ms: at,
        }
    }

    fn key(p: &str) -> Seat<'_> {
        let mut parts = p.split(':');
        let mut next = || parts.next().unwrap();
        Seat {
            event: "Event01",
            section: next(),
            row: next(),
            seat: next(),
        }
    }

    fn store(dir: &std::path::Path) -> Store {
        Store::open(
            dir,
            StoreOptions {
                machine_id: None,
                ..StoreOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn cached_records_with_a_seat_are_found_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir.path().join("s"));
        s.put_record(&record("100000000001", Some("1"), 1)).unwrap();
        s.put_record(&record("100000000002", None, 1)).unwrap();
        let r = s.record_by_seat(&key("101:a:1")).unwrap().unwrap();
        assert_eq!(r.barcode, "100000000001");
        assert!(s.record_by_seat(&key("101:A:2")).unwrap().is_none());
        // A reissued seat: the newer barcode takes the seat.
        s.put_record(&record("100000000099", Some("1"), 2)).unwrap();
        let r = s.record_by_seat(&key("101:A:1")).unwrap().unwrap();
        assert_eq!(r.barcode, "100000000099");
        s.cache_clear().unwrap();
        assert!(s.record_by_seat(&key("101:A:1")).unwrap().is_none());
    }

    #[test]
    fn an_index_entry_whose_record_moved_seats_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir.path().join("s"));
        s.put_record(&record("100000000001", Some("1"), 1)).unwrap();
        // A newer answer puts the same barcode in seat 7: seat 1's entry is stale.
        s.put_record(&record("100000000001", Some("7"), 2)).unwrap();
        assert!(s.record_by_seat(&key("101:A:1")).unwrap().is_none());
        assert!(s.record_by_seat(&key("101:A:7")).unwrap().is_some());
        // A record without a seat has none to be found by.
        let seatless = record("100000000002", None, 1);
        assert_eq!(Seat::of(&seatless), None);
    }

    #[test]
    fn token_mappings_are_kept_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir.path().join("s"));
        s.put_token_mapping("STXTOKEN-SECRET-1", "100000000001", 5)
            .unwrap();
        let m = s.token_mapping("STXTOKEN-SECRET-1").unwrap().unwrap();
        assert_eq!(m.barcode, "100000000001");
        assert_eq!(m.resolved_at_ms, 5);
        assert!(s.token_mapping("other").unwrap().is_none());
        s.tickets
            .for_each(TOKENS, |k, v| {
                assert!(!String::from_utf8_lossy(k).contains("STXTOKEN"));
                assert!(!String::from_utf8_lossy(v).contains("STXTOKEN"));
            })
            .unwrap();
        s.forget_token("STXTOKEN-SECRET-1").unwrap();
        assert!(s.token_mapping("STXTOKEN-SECRET-1").unwrap().is_none());
    }
}
