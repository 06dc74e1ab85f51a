//! The ticket cache: the newest ATS answer per barcode.
//!
//! A record never replaces one with a newer `fetched_at_ms` (a late answer from a slow
//! call must not overwrite a fresher one). Negative answers (`info: None`) are cached
//! too. Cache entries that cannot be decoded are treated as misses and logged: the
//! cache is disposable, the ledger and journal are not.

use serde::Serialize;

use super::codec;
use super::error::db_err;
use super::{Store, StoreError, TicketRecord};

/// What the cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Cached tickets.
    pub entries: u64,
    /// Size of the whole database on disk (sled's `size_on_disk`).
    pub bytes_on_disk: u64,
    /// `fetched_at_ms` of the oldest cached record.
    pub oldest_fetched_ms: Option<u64>,
    /// `fetched_at_ms` of the newest cached record.
    pub newest_fetched_ms: Option<u64>,
}

fn is_newer(new: &TicketRecord, old: Option<&[u8]>) -> bool {
    match old.map(|b| codec::decode::<TicketRecord>("cache", b)) {
        Some(Ok(old)) => new.supersedes(&old),
        // Nothing there, or something unreadable: replace it.
        _ => true,
    }
}

impl Store {
    /// Caches `record` unless a newer one is already cached. Returns whether it was
    /// stored.
    pub fn put_record(&self, record: &TicketRecord) -> Result<bool, StoreError> {
        let value = codec::encode("cache", record)?;
        let res: sled::transaction::TransactionResult<bool, StoreError> =
            self.cache.transaction(|t| {
                let old = t.get(record.barcode.as_bytes())?;
                if !is_newer(record, old.as_deref()) {
                    return Ok(false);
                }
                t.insert(record.barcode.as_bytes(), value.as_slice())?;
                Ok(true)
            });
        res.map_err(tx_error)
    }

    /// Caches many records in one transaction (prefetch). Older records than the ones
    /// cached are skipped. Returns how many were stored.
    pub fn put_records<'a, I>(&self, records: I) -> Result<usize, StoreError>
    where
        I: IntoIterator<Item = &'a TicketRecord>,
    {
        let mut encoded = Vec::new();
        for r in records {
            encoded.push((r, codec::encode("cache", r)?));
        }
        let res: sled::transaction::TransactionResult<usize, StoreError> =
            self.cache.transaction(|t| {
                let mut n = 0;
                for (r, value) in &encoded {
                    let old = t.get(r.barcode.as_bytes())?;
                    if is_newer(r, old.as_deref()) {
                        t.insert(r.barcode.as_bytes(), value.as_slice())?;
                        n += 1;
                    }
                }
                Ok(n)
            });
        res.map_err(tx_error)
    }

    /// The cached record for `barcode`, if any.
    pub fn get_record(&self, barcode: &str) -> Result<Option<TicketRecord>, StoreError> {
        let Some(bytes) = self.cache.get(barcode.as_bytes()).map_err(db_err)? else {
            return Ok(None);
        };
        match codec::decode("cache", &bytes) {
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
            bytes_on_disk: self.db.size_on_disk().map_err(db_err)?,
            ..CacheStats::default()
        };
        for kv in self.cache.iter() {
            let (_, v) = kv.map_err(db_err)?;
            stats.entries += 1;
            if let Ok(r) = codec::decode::<TicketRecord>("cache", &v) {
                let t = r.fetched_at_ms;
                stats.oldest_fetched_ms = Some(stats.oldest_fetched_ms.map_or(t, |o| o.min(t)));
                stats.newest_fetched_ms = Some(stats.newest_fetched_ms.map_or(t, |o| o.max(t)));
            }
        }
        Ok(stats)
    }

    /// Empties the cache (the ledger and journal stay).
    pub fn cache_clear(&self) -> Result<(), StoreError> {
        self.cache.clear().map_err(db_err)?;
        self.flush()
    }
}

/// Flattens a sled transaction error into a [`StoreError`].
pub(crate) fn tx_error(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Db(e.to_string()),
    }
}
