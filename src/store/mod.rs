//! The durable store: the only code that touches sled.
//!
//! One sled database per terminal, in a directory created with mode 0700 (it holds
//! full barcodes). Four trees:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `cache` | barcode | the newest [`TicketRecord`] fetched from ATS |
//! | `ledger` | barcode | this terminal's [`TicketLedger`] for the ticket (see [`ledger`]) |
//! | `journal` | sequence number (u64, big endian) | one [`JournalEntry`] per decision or void |
//! | `meta` | name | schema version, the decision sequence, the offline window and usage |
//!
//! Every value carries a format byte before its JSON (`codec.rs`). The schema version
//! is checked on open: a database from a newer agent is refused with
//! [`StoreError::FutureSchema`] rather than misread.
//!
//! Durability: sled writes are durable only after [`Store::flush`] (sled's flush plus an
//! `fdatasync` of its log file: sled's flush alone uses `sync_file_range`, which does not
//! survive a power cut). A decision is committed in one transaction across `journal`,
//! `ledger` and `meta`, and the transaction's final writes are appended to the store's
//! write-ahead log (`wal.rs`) and `fdatasync`ed before [`Store::commit_decision`]
//! returns, so the agent signals the POS only for decisions that survive a crash or
//! power cut; sled persists them in its own time, and [`Store::open`] re-applies what
//! it lost. Voids and offline-window resets flush sled instead. Cache writes are not flushed on their own (a lost
//! cache entry only costs a lookup); sled flushes them within its background interval.
//!
//! No sled type appears in this module's public API.

pub mod cache;
mod codec;
pub mod error;
pub mod export;
pub mod journal;
pub mod ledger;
mod wal;
/// Dates and timestamps (kept under this name for callers of the store).
pub use crate::date as time;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::decide::{OfflineUsage, TicketLedger};
pub use crate::ticket::TicketRecord;
pub use cache::CacheStats;
use error::db_err;
pub use error::StoreError;
pub use export::{export, Format};
pub use journal::{EntryKind, JournalEntry, JournalIter, MoneyLine, NewDecision, VoidOutcome};
pub use time::rfc3339_ms;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const META_SCHEMA: &[u8] = b"schema_version";
/// The file sled 0.34 keeps its log in, inside the store directory.
const SLED_LOG: &str = "db";
const META_SEQ: &[u8] = b"decision_seq";
const META_OFFLINE: &[u8] = b"offline";

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache size in bytes (default 4 MiB, the same as `cache.capacity_mb`
    /// in the agent's config; sled's own default is far larger than a terminal wants).
    pub cache_capacity_bytes: u64,
    /// This terminal's id: the prefix of every decision id.
    pub terminal_id: String,
    /// Size of the preallocated write-ahead log (default 8 MiB, at least 4 KiB). When it
    /// fills, a commit flushes sled durably and the log starts over.
    pub wal_capacity_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity_bytes: 4 * 1024 * 1024,
            terminal_id: "terminal".into(),
            wal_capacity_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The offline window and what was approved offline in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OfflineState {
    window: u64,
    usage: OfflineUsage,
}

/// The open store. `Send + Sync`; clones share the same database (the lookup workers
/// write the cache through a clone while the loop owns the journal).
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    cache: sled::Tree,
    ledger: sled::Tree,
    journal: sled::Tree,
    meta: sled::Tree,
    terminal: String,
    dir: PathBuf,
    /// sled's log file (`dir/db`), opened read-only to `fdatasync` it in [`Store::flush`].
    log: Arc<File>,
    /// The write-ahead log; its lock also orders every transaction that takes a
    /// sequence number (commits, voids) and offline-window resets.
    wal: Arc<Mutex<wal::Wal>>,
    /// Records re-applied from the write-ahead log at open.
    replayed: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`, creating the directory with mode 0700.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_capacity_bytes);
        let db = open_waiting_for_lock(&config)?;
        let log = Arc::new(File::open(dir.join(SLED_LOG))?);
        let (wal, records) = wal::Wal::open(dir, opts.wal_capacity_bytes.max(4096))?;
        let mut store = Store {
            cache: db.open_tree("cache").map_err(db_err)?,
            ledger: db.open_tree("ledger").map_err(db_err)?,
            journal: db.open_tree("journal").map_err(db_err)?,
            meta: db.open_tree("meta").map_err(db_err)?,
            db,
            terminal: opts.terminal_id,
            dir: dir.to_path_buf(),
            log,
            wal: Arc::new(Mutex::new(wal)),
            replayed: 0,
        };
        store.check_schema()?;
        store.replayed = store.replay(records)?;
        Ok(store)
    }

    /// Re-applies the write-ahead log records sled lost, flushes sled durably and
    /// rewinds the log. Returns how many records were applied.
    fn replay(&self, records: Vec<wal::Record>) -> Result<u64, StoreError> {
        use sled::Transactional;
        let mut seq = match self.meta.get(META_SEQ).map_err(db_err)? {
            None => 0,
            Some(v) => codec::read_u64("meta/decision_seq", &v)?,
        };
        let mut applied = 0;
        for rec in records {
            if rec.seq <= seq {
                continue;
            }
            if rec.seq != seq + 1 {
                return Err(StoreError::Corrupt {
                    what: "wal".into(),
                    detail: format!(
                        "the store holds decisions up to {seq} but the write-ahead log \
                         continues at {}",
                        rec.seq
                    ),
                });
            }
            let res: sled::transaction::TransactionResult<(), StoreError> =
                (&self.journal, &self.ledger, &self.meta).transaction(|(j, l, m)| {
                    for (tree, k, v) in &rec.writes {
                        let t = match tree {
                            wal::TreeId::Journal => j,
                            wal::TreeId::Ledger => l,
                            wal::TreeId::Meta => m,
                        };
                        t.insert(k.as_slice(), v.as_slice())?;
                    }
                    Ok(())
                });
            res.map_err(cache::tx_error)?;
            seq = rec.seq;
            applied += 1;
        }
        if applied > 0 {
            log::warn!("store: re-applied {applied} decision(s) from the write-ahead log");
        }
        let mut wal = self.lock_wal();
        self.flush()?;
        wal.recovered()?;
        Ok(applied)
    }

    /// Decisions re-applied from the write-ahead log when this store was opened (sled
    /// had not persisted them before the process ended).
    pub fn wal_replayed_at_open(&self) -> u64 {
        self.replayed
    }

    pub(crate) fn lock_wal(&self) -> MutexGuard<'_, wal::Wal> {
        // A panic while holding the lock leaves the log as consistent as a crash would.
        self.wal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a committed transaction durable: appends its final writes to the
    /// write-ahead log and waits for them (one `fdatasync`), or, when the log is full,
    /// flushes sled durably and starts the log over (a checkpoint).
    pub(crate) fn make_durable(
        &self,
        wal: &mut wal::Wal,
        rec: &wal::Record,
    ) -> Result<(), StoreError> {
        let bytes = rec.encode();
        if wal.fits(bytes.len()) {
            wal.append_durable(&bytes)
        } else {
            self.flush()?;
            wal.rewind();
            Ok(())
        }
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.meta.get(META_SCHEMA).map_err(db_err)? {
            None => {
                self.meta
                    .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..])
                    .map_err(db_err)?;
                self.flush()
            }
            Some(v) => {
                let arr: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    what: "meta/schema_version".into(),
                    detail: format!("expected 4 bytes, found {}", v.len()),
                })?;
                match u32::from_be_bytes(arr) {
                    SCHEMA_VERSION => Ok(()),
                    found if found > SCHEMA_VERSION => Err(StoreError::FutureSchema {
                        found,
                        supported: SCHEMA_VERSION,
                    }),
                    old => Err(StoreError::UnsupportedSchema(old)),
                }
            }
        }
    }

    /// The terminal id decisions are stamped with.
    pub fn terminal_id(&self) -> &str {
        &self.terminal
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes every write so far durable, power cuts included.
    ///
    /// sled's own flush writes its log with `sync_file_range(2)`, which waits for the
    /// data pages but persists neither the file's size (the log grows at its end) nor the
    /// disk's volatile write cache; sled only `fsync`s from its background thread, every
    /// 500 ms. The `fdatasync` of the log file after it closes that window: when this
    /// returns, the writes are on stable storage.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(db_err)?;
        self.log.sync_data()?;
        Ok(())
    }

    /// Money and approvals made offline since the offline window started.
    pub fn offline_usage(&self) -> Result<OfflineUsage, StoreError> {
        Ok(self.offline_state()?.usage)
    }

    /// The number of the current offline window (starts at 0, +1 per reset).
    pub fn offline_window(&self) -> Result<u64, StoreError> {
        Ok(self.offline_state()?.window)
    }

    /// Starts a new offline window: the terminal's offline usage goes back to zero, and
    /// so does every ticket's offline amount (lazily: a ticket ledger written in an
    /// earlier window reads as zero offline money).
    ///
    /// The agent calls this when it is back online (its rolling window says ATS answers
    /// again): the offline exposure of the past outage is then bounded by the caps and
    /// will be settled by reconciliation; the next outage gets fresh caps. Calling it
    /// while offline would reset the caps mid-outage, so don't.
    pub fn reset_offline_window(&self) -> Result<(), StoreError> {
        let _wal = self.lock_wal();
        let state = self.offline_state()?;
        let next = OfflineState {
            window: state.window + 1,
            usage: OfflineUsage::default(),
        };
        self.meta
            .insert(META_OFFLINE, codec::encode("meta/offline", &next)?)
            .map_err(db_err)?;
        self.flush()
    }

    fn offline_state(&self) -> Result<OfflineState, StoreError> {
        match self.meta.get(META_OFFLINE).map_err(db_err)? {
            None => Ok(OfflineState::default()),
            Some(v) => codec::decode("meta/offline", &v),
        }
    }

    /// Size of the database files on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(db_err)
    }
}

/// How long [`Store::open`] waits for the database lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens sled, retrying while the directory's lock is still held. sled releases its
/// file lock from background threads shortly after the last handle is dropped, so a
/// reopen right after a drop (a restart in the same process, tests) can briefly find
/// it taken. Another live process holding it still fails after [`LOCK_WAIT`].
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let start = Instant::now();
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && start.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(db_err(e)),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        // Made beforehand (mkdir -p, an installer's umask): the store holds full
        // barcodes, so a directory others may read is tightened to 0700.
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            log::warn!(
                "store directory {} had mode {:o}: setting 0700",
                dir.display(),
                mode & 0o777
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "store directory {} has mode {:o} and cannot be made private \
                             ({e}): run `chmod 700 {}`",
                        dir.display(),
                        mode & 0o777,
                        dir.display()
                    ),
                )
            })?;
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
