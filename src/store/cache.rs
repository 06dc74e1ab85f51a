//! The ticket cache: the newest ATS answer per barcode.
//!
//! A record never replaces one with a newer `fetched_at_ms` (a late answer from a slow
//! call must not overwrite a fresher one). Negative answers (`info: None`) are cached
//! too. Cache entries that cannot be decoded are treated as misses and logged: the
//! cache is disposable, the ledger and journal are not.
//!
//! The cache lives in its own redb database (`cachedb.rs`), apart from sled's journal
//! and ledger: a page of records is one redb write transaction, which no reader waits
//! on (the scan loop reads the last commit), and which never touches sled, so the loop's
//! journal commits never queue behind it either.
//!
//! The `prefetch` table holds one [`PrefetchCursor`] per event: where a listing pass
//! stands, so that a pass cut off resumes after its last written page.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::cachedb::{cache_err, CACHE, PREFETCH, SEATS};
use super::codec;
use super::db::Store;
use super::error::StoreError;
use super::{record, seats};
use crate::ticket::TicketRecord;

/// What the cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Cached tickets.
    pub entries: u64,
    /// Size of the whole store on disk (sled's `size_on_disk` and the cache's file).
    pub bytes_on_disk: u64,
    /// `fetched_at_ms` of the oldest cached record.
    pub oldest_fetched_ms: Option<u64>,
    /// `fetched_at_ms` of the newest cached record.
    pub newest_fetched_ms: Option<u64>,
}

fn is_newer(new: &TicketRecord, old: Option<&[u8]>) -> bool {
    match old.map(|b| record::decode(&new.barcode, b)) {
        Some(Ok(old)) => new.supersedes(&old),
        // Nothing there, or something unreadable: replace it.
        _ => true,
    }
}

/// Where a listing pass of one event stands (kept in the store, so a restart resumes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchCursor {
    /// The pass's generation: the wall time (ms) it started. Records it wrote are at
    /// least this new.
    pub pass_started_ms: u64,
    /// The last barcode of the last page written (`prev_barcode` of the next page).
    pub last_barcode: Option<String>,
    /// Pages written in this pass.
    pub pages: u64,
    /// Tickets written in this pass.
    pub tickets: u64,
    /// True once the pass is over (the next pass starts afresh): the whole listing was
    /// written (then `completed_ms` is set), or the pass was abandoned on an answer it
    /// could not page through.
    pub complete: bool,
    /// When the pass completed (wall ms); `None` for an abandoned pass.
    pub completed_ms: Option<u64>,
    /// The generation of the last pass that completed (kept while the next pass runs):
    /// cached tickets of the event older than it were not listed by it.
    #[serde(default)]
    pub last_complete_pass_ms: Option<u64>,
}

impl Store {
    /// Caches `record` unless a newer one is already cached. Returns whether it was
    /// stored.
    pub fn put_record(&self, record: &TicketRecord) -> Result<bool, StoreError> {
        Ok(self.put_records(std::iter::once(record))? == 1)
    }

    /// A record written after the last complete listing pass of its event, yet stamped
    /// well before that pass started, proves the pass was stamped by a clock that ran
    /// fast and has since been stepped back. Such a pass would hide every newer record
    /// of the event ([`Store::unlisted_since`] compares stamps), live answers included,
    /// until real time caught up with it: its retirement evidence is dropped instead
    /// (the next pass that completes sets it again, correctly stamped).
    fn forget_misdated_pass(&self, record: &TicketRecord) -> Result<(), StoreError> {
        let Some(info) = &record.info else {
            return Ok(());
        };
        let Some(mut cursor) = self.prefetch_cursor(&info.event_name)? else {
            return Ok(());
        };
        let misdated = cursor.last_complete_pass_ms.is_some_and(|started| {
            started
                > record
                    .fetched_at_ms
                    .saturating_add(crate::ticket::STAMP_LEAD_TOLERANCE_MS)
        });
        if misdated {
            log::warn!(
                "the last listing of {} is stamped in the future (a clock step): it no \
                 longer retires cached tickets until the next pass completes",
                info.event_name
            );
            cursor.last_complete_pass_ms = None;
            self.set_prefetch_cursor(&info.event_name, &cursor)?;
        }
        Ok(())
    }

    /// Stores `record` unless a newer one is cached, with its seat (`seats.rs`), in
    /// the write transaction `w`. The transaction makes the read and the write one
    /// step: no other writer runs between them.
    fn put_in(
        cache: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        seats: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        record: &TicketRecord,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let key = record.barcode.as_bytes();
        let newer = {
            let old = cache.get(key).map_err(cache_err)?;
            is_newer(record, old.as_ref().map(|g| g.value()))
        };
        if !newer {
            return Ok(false);
        }
        cache.insert(key, value).map_err(cache_err)?;
        // The seat index follows the cache; a failed index write costs a phone ticket
        // its resolution, never the record.
        if let Err(e) = seats::index_seat_in(seats, record) {
            log::warn!("seat index write failed: {e}");
        }
        Ok(true)
    }

    /// Caches many records (a prefetch page) in one write transaction, each unless a
    /// newer one is cached. Returns how many were stored. The page is usable by every
    /// reader once this returns, and durable with the next [`Store::sync_cache`].
    pub fn put_records<'a, I>(&self, records: I) -> Result<usize, StoreError>
    where
        I: IntoIterator<Item = &'a TicketRecord>,
    {
        let records: Vec<&TicketRecord> = records.into_iter().collect();
        let encoded = records
            .iter()
            .map(|r| record::encode(r))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self.tickets.write(|w| {
            let mut cache = w.open_table(CACHE).map_err(cache_err)?;
            let mut seats = w.open_table(SEATS).map_err(cache_err)?;
            let mut stored = Vec::new();
            for (r, v) in records.iter().zip(&encoded) {
                if Store::put_in(&mut cache, &mut seats, r, v)? {
                    stored.push(*r);
                }
            }
            Ok(stored)
        })?;
        for r in &stored {
            self.forget_misdated_pass(r)?;
        }
        Ok(stored.len())
    }

    /// True when a listing pass of `record`'s event completed after `record` was
    /// fetched: that pass listed every ticket of the event and rewrote each one it
    /// listed, so this one was left out (voided, reissued, returned, or without value
    /// now). Such a record is never used: a ticket missing from a fresh listing must not
    /// stay approvable from cache. Checked on read, so a completed pass retires tickets
    /// without scanning the cache.
    fn unlisted_since(&self, record: &TicketRecord) -> Result<bool, StoreError> {
        let Some(info) = &record.info else {
            return Ok(false);
        };
        Ok(match self.last_complete_pass(&info.event_name)? {
            Some(started) => record.fetched_at_ms < started,
            None => false,
        })
    }

    /// The generation (start, wall ms) of the last completed listing pass of `event`.
    fn last_complete_pass(&self, event: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .prefetch_cursor(event)?
            .and_then(|c| c.last_complete_pass_ms))
    }

    /// When the newest complete listing of `event` that this cache holds in full was
    /// started (wall ms): this terminal's own last complete pass, or in venue mode the
    /// venue's, once its copy has caught up with it ([`Store::set_venue_listing`]).
    /// A barcode that no cached record holds was not in that listing.
    pub fn listing_complete_since(&self, event: &str) -> Result<Option<u64>, StoreError> {
        let own = self.last_complete_pass(event)?;
        let venue = self
            .tickets
            .get(PREFETCH, &venue_listing_key(event))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes);
        Ok(own.max(venue))
    }

    /// Venue mode: this cache now holds every row of the venue's listing pass of
    /// `event` that started at `pass_started_ms` (the copy caught up after the pass
    /// completed). Only [`Store::listing_complete_since`] reads it: unlike this
    /// terminal's own cursor it retires nothing (the venue marks unlisted tickets).
    pub fn set_venue_listing(&self, event: &str, pass_started_ms: u64) -> Result<(), StoreError> {
        self.tickets.write(|w| {
            let mut t = w.open_table(PREFETCH).map_err(cache_err)?;
            t.insert(
                venue_listing_key(event).as_slice(),
                pass_started_ms.to_be_bytes().as_slice(),
            )
            .map_err(cache_err)?;
            Ok(())
        })
    }

    /// The listing cursor of `event`, if a pass was ever started.
    pub fn prefetch_cursor(&self, event: &str) -> Result<Option<PrefetchCursor>, StoreError> {
        match self.tickets.get(PREFETCH, &cursor_key(event))? {
            None => Ok(None),
            // An unreadable cursor only costs a pass from the start.
            Some(v) => Ok(codec::decode("prefetch", &v).ok()),
        }
    }

    /// Records where `event`'s listing pass stands (durable with the next
    /// [`Store::sync_cache`] or checkpoint).
    pub fn set_prefetch_cursor(
        &self,
        event: &str,
        cursor: &PrefetchCursor,
    ) -> Result<(), StoreError> {
        let v = codec::encode("prefetch", cursor)?;
        self.tickets.write(|w| {
            let mut t = w.open_table(PREFETCH).map_err(cache_err)?;
            t.insert(cursor_key(event).as_slice(), v.as_slice())
                .map_err(cache_err)?;
            Ok(())
        })
    }

    /// The cached record for `barcode`, if any.
    pub fn get_record(&self, barcode: &str) -> Result<Option<TicketRecord>, StoreError> {
        let Some(bytes) = self.tickets.get(CACHE, barcode.as_bytes())? else {
            return Ok(None);
        };
        match record::decode(barcode, &bytes) {
            Ok(r) if self.unlisted_since(&r)? => {
                log::debug!(
                    "cache entry for {} predates the last complete listing of its event, \
                     which left it out: not used",
                    crate::redact::mask_barcode(barcode)
                );
                Ok(None)
            }
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                log::warn!(
                    "ignoring cache entry for {}: {e}",
                    crate::redact::mask_barcode(barcode)
                );
                Ok(None)
            }
        }
    }

    /// Counts and ages of the cache (reads every entry).
    pub fn cache_stats(&self) -> Result<CacheStats, StoreError> {
        let mut stats = CacheStats {
            bytes_on_disk: self.size_on_disk()?,
            ..CacheStats::default()
        };
        self.tickets.for_each(CACHE, |k, v| {
            stats.entries += 1;
            if let Ok(r) = record::decode(&String::from_utf8_lossy(k), v) {
                let t = r.fetched_at_ms;
                stats.oldest_fetched_ms = Some(stats.oldest_fetched_ms.map_or(t, |o| o.min(t)));
                stats.newest_fetched_ms = Some(stats.newest_fetched_ms.map_or(t, |o| o.max(t)));
            }
        })?;
        Ok(stats)
    }

    /// Empties the cache and the listing cursors (the ledger and journal stay).
    pub fn cache_clear(&self) -> Result<(), StoreError> {
        self.tickets.clear()?;
        self.tickets.sync()?;
        self.flush()
    }
}

/// Event names match case-insensitively (as ATS matches them).
fn cursor_key(event: &str) -> Vec<u8> {
    event.to_ascii_lowercase().into_bytes()
}

/// The venue's listing mark of `event`: apart from the cursors (`\0` sorts before any
/// event name's first byte and cannot be in one).
fn venue_listing_key(event: &str) -> Vec<u8> {
    let mut k = b"\0venue-listing:".to_vec();
    k.extend_from_slice(event.to_ascii_lowercase().as_bytes());
    k
}
