//! The cache's own database: redb, in the file `cache.redb` of the store directory.
//!
//! The ticket cache, the prefetch cursors, the seat index and the token mappings are
//! the bulk of the store (100,000 tickets at a large event) and are rewritten by every
//! listing pass. In sled they made every open replay a log of tens of megabytes (12-14
//! MiB resident before any work) and every pass grow the log by a superseded copy of
//! each ticket (issue 10, BENCHMARKS.md section 6). redb has no log to replay (its
//! tree is the file: an open reads the header, and after a crash the allocator state a
//! quick-repair commit saved), frees a rewritten page at the next durable commit, and
//! its page cache is bounded by the size given here. sled keeps the journal, the
//! ledger, `meta` and nothing else, so its own open stays cheap.
//!
//! Writes are redb write transactions with [`redb::Durability::None`]: visible to every
//! reader at once, durable with the next [`CacheDb::sync`] (a commit with
//! `Durability::Immediate`, which persists every earlier commit with it). redb commits
//! are ordered: a crash keeps a prefix of them, so a cursor written after its page
//! never survives without that page. Readers never wait on a writer (redb's readers
//! see the last commit); writers wait on each other, which only the cache's writers
//! (prefetch, the lookup workers, the Presence resolver) do, never the scan loop.
//!
//! No redb type leaves the store module.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};

use super::error::StoreError;

/// The cache's file, inside the store directory.
pub(crate) const CACHE_FILE: &str = "cache.redb";

/// A table of byte keys and byte values (the values carry the store's format bytes).
pub(crate) type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// barcode → the newest cached `TicketRecord` (`record.rs`).
pub(crate) const CACHE: Bytes = TableDefinition::new("cache");
/// event name (lower case) → its `PrefetchCursor`.
pub(crate) const PREFETCH: Bytes = TableDefinition::new("prefetch");
/// seat key → barcode (`seats.rs`).
pub(crate) const SEATS: Bytes = TableDefinition::new("seats");
/// SHA-256 of a SafeTix token → its `TokenMapping` (`seats.rs`).
pub(crate) const TOKENS: Bytes = TableDefinition::new("safetix");

const TABLES: [Bytes; 4] = [CACHE, PREFETCH, SEATS, TOKENS];

/// Commits without [`Durability::Immediate`] after which the next one is made durable
/// anyway. Pages of the last durable state that a non-durable commit replaces are only
/// freed by a durable one (redb cannot reuse them: a crash returns to that state), and
/// the lookup workers' answers are commits that no prefetch page follows: this bounds
/// the file's growth and what a crash loses, for one `fsync` (on a worker thread) per
/// so many answers.
const DURABLE_EVERY: u32 = 256;

/// How long an open waits for another handle of this process to let the file go.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The open cache database; clones share it.
#[derive(Clone)]
pub(crate) struct CacheDb {
    db: Arc<Database>,
    path: PathBuf,
    /// Commits since the last durable one.
    unsynced: Arc<AtomicU32>,
}

impl std::fmt::Debug for CacheDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheDb").field("path", &self.path).finish()
    }
}

/// A redb error as the store's.
pub(crate) fn cache_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(format!("cache database: {e}"))
}

impl CacheDb {
    /// Opens (or creates) `dir/cache.redb` with a page cache of `cache_bytes` (read
    /// cache and write buffer together: redb's default is 1 GiB).
    pub(crate) fn open(dir: &Path, cache_bytes: usize) -> Result<CacheDb, StoreError> {
        let path = dir.join(CACHE_FILE);
        let start = Instant::now();
        let db = loop {
            match Database::builder()
                .set_cache_size(cache_bytes)
                .create(&path)
            {
                Ok(db) => break db,
                // A handle of this process dropped a moment ago on another thread.
                Err(DatabaseError::DatabaseAlreadyOpen) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => {
                    return Err(StoreError::Db(format!("{}: {e}", path.display())));
                }
            }
        };
        let me = CacheDb {
            db: Arc::new(db),
            path,
            unsynced: Arc::new(AtomicU32::new(0)),
        };
        me.write(|w| {
            for t in TABLES {
                w.open_table(t).map_err(cache_err)?;
            }
            Ok(())
        })?;
        Ok(me)
    }

    /// The value under `key` in `table`, as of the last commit.
    pub(crate) fn get(&self, table: Bytes, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(cache_err)?;
        let t = match r.open_table(table) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(cache_err(e)),
        };
        let v = t.get(key).map_err(cache_err)?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    /// Runs `f` in one write transaction and commits it (not durable until the next
    /// [`CacheDb::sync`], or until [`DURABLE_EVERY`] commits have gone by). An error
    /// from `f` aborts the transaction: nothing of it is written.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.db.begin_write().map_err(cache_err)?;
        let durable = self.unsynced.fetch_add(1, Ordering::Relaxed) + 1 >= DURABLE_EVERY;
        if durable {
            w.set_durability(Durability::Immediate).map_err(cache_err)?;
            w.set_quick_repair(true);
        } else {
            w.set_durability(Durability::None).map_err(cache_err)?;
        }
        let out = f(&w)?;
        w.commit().map_err(cache_err)?;
        if durable {
            self.unsynced.store(0, Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Makes every commit so far durable (one `fsync` of the file, two with redb's
    /// header). Quick repair saves the allocator state with it, so an open after a
    /// crash reads that state instead of walking every tree.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        let mut w = self.db.begin_write().map_err(cache_err)?;
        w.set_durability(Durability::Immediate).map_err(cache_err)?;
        w.set_quick_repair(true);
        w.commit().map_err(cache_err)?;
        self.unsynced.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Calls `f` with every entry of `table`, in key order, as of the last commit.
    pub(crate) fn for_each(
        &self,
        table: Bytes,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let r = self.db.begin_read().map_err(cache_err)?;
        let t = r.open_table(table).map_err(cache_err)?;
        for kv in t.iter().map_err(cache_err)? {
            let (k, v) = kv.map_err(cache_err)?;
            f(k.value(), v.value());
        }
        Ok(())
    }

    /// Empties every table (one transaction; durable with the next sync).
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        self.write(|w| {
            for t in TABLES {
                w.delete_table(t).map_err(cache_err)?;
                w.open_table(t).map_err(cache_err)?;
            }
            Ok(())
        })
    }

    /// Size of the file on disk.
    pub(crate) fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(std::fs::metadata(&self.path)?.len())
    }
}
