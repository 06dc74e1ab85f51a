//! The store itself: the [`Store`] handle and its options, opening (schema check,
//! identity, redo-log recovery), the redo log's write path and checkpoints, flushing,
//! and the offline window. The other files of `store` add methods to [`Store`] per
//! concept (cache, journal, ledger, snapshot, export).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cachedb::CacheDb;
use super::error::{at, db_err, StoreError};
use super::identity::{self, Access, Identity};
use super::{codec, headroom, migrate, wal};
use crate::decide::OfflineUsage;

/// The schema version this build writes and reads. Version 2 added the redo log: a
/// version-1 store is upgraded at open; an older agent refuses a version-2 store rather
/// than ignore decisions that only the log holds. Version 3 moved the cache (records,
/// prefetch cursors, seat index, token mappings) out of sled into its own redb file
/// (`cachedb.rs`): older stores are upgraded at open (`migrate.rs`), and an agent of
/// version 2 refuses the store rather than run on an empty cache it would not know is
/// elsewhere.
pub const SCHEMA_VERSION: u32 = 3;

const META_SCHEMA: &[u8] = b"schema_version";
/// The file sled 0.34 keeps its log in, inside the store directory.
pub(super) const SLED_LOG: &str = "db";
pub(super) const META_SEQ: &[u8] = b"decision_seq";
pub(super) const META_OFFLINE: &[u8] = b"offline";
/// The redo log's current lap (see `wal.rs`).
const META_WAL_LAP: &[u8] = b"wal_lap";
/// This store's random id, carried by its redo-log records.
const META_STORE_ID: &[u8] = b"store_id";
/// The machine the store belongs to and its issuer tag (`identity.rs`).
const META_IDENTITY: &[u8] = b"identity";

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Page cache size in bytes of each of the store's databases (default 2 MiB, the
    /// same as `cache.capacity_mb` in the agent's config): sled's (journal, ledger) and
    /// the cache's redb file, whose write buffer is half of it at most. Both databases'
    /// own defaults (sled 1 GiB, redb 1 GiB) are far larger than a terminal wants.
    pub cache_capacity_bytes: u64,
    /// This terminal's id: the prefix of every decision id.
    pub terminal_id: String,
    /// Size of the preallocated redo log (default 4 MiB: 1,024 decisions, one per 4 KiB
    /// page; at least 4 KiB). When it fills, a commit first makes sled durable (a
    /// checkpoint, about two `fdatasync`s) and the log starts over.
    pub wal_capacity_bytes: u64,
    /// This machine's id (`identity.rs`): a store recorded by another machine is
    /// refused. Default: [`identity::this_machine`]; `None` turns the check off.
    pub machine_id: Option<String>,
    /// Free space kept on the store's filesystem (`headroom.rs`): below it, approvals
    /// are refused with [`StoreError::NoHeadroom`] (default 8 MiB; 0 turns it off).
    pub min_free_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity_bytes: 2 * 1024 * 1024,
            terminal_id: "terminal".into(),
            wal_capacity_bytes: 4 * 1024 * 1024,
            machine_id: identity::this_machine(),
            min_free_bytes: headroom::DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// The offline window and what was approved offline in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct OfflineState {
    pub(super) window: u64,
    pub(super) usage: OfflineUsage,
}

/// The open store. `Send + Sync`; clones share the same database (the lookup workers
/// write the cache through a clone while the loop owns the journal).
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) db: sled::Db,
    pub(super) ledger: sled::Tree,
    pub(super) journal: sled::Tree,
    pub(super) meta: sled::Tree,
    /// The cache's own database (`cachedb.rs`): cached records, listing cursors of
    /// prefetch passes, the seat index and token mappings; not logged.
    pub(super) tickets: CacheDb,
    pub(super) terminal: String,
    /// The prefix of new decision ids: the terminal id, plus the issuer tag of an
    /// adopted store (`identity.rs`).
    pub(super) issuer: String,
    /// Free space kept on the filesystem (`headroom.rs`).
    pub(super) min_free: u64,
    pub(super) dir: PathBuf,
    /// sled's log file (`dir/db`), opened read-only to `fdatasync` it in checkpoints.
    pub(super) log: Arc<File>,
    /// The redo log. Every write to `journal`, `ledger` and `meta` holds its lock,
    /// which also makes their read-modify-write cycles serial.
    pub(super) wal: Arc<Mutex<wal::Wal>>,
    /// Records re-applied from the redo log at open.
    pub(super) replayed: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`, creating the directory with mode 0700.
    ///
    /// Refuses a store recorded by another machine ([`StoreError::Cloned`]; see
    /// `identity.rs`). Errors name the directory.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_as(dir, opts, Access::Own)
    }

    /// Makes the store in `dir` this machine's (`concession-agent store adopt`):
    /// records this machine and a new issuer tag, so every id issued from now on differs
    /// from those of any other copy of the store. Returns the store and the new prefix of
    /// decision ids.
    pub fn adopt(dir: &Path, opts: StoreOptions) -> Result<(Store, String), StoreError> {
        if !dir.join(SLED_LOG).is_file() {
            return Err(StoreError::File {
                path: dir.to_path_buf(),
                op: "adopt",
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store there"),
            });
        }
        let store = Store::open_as(dir, opts, Access::Adopt)?;
        let issuer = store.issuer.clone();
        Ok((store, issuer))
    }

    /// [`Store::open`] with the identity rule of `access` (`identity.rs`).
    pub(crate) fn open_as(
        dir: &Path,
        opts: StoreOptions,
        access: Access,
    ) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_capacity_bytes)
            // No background flush: what must survive is in the redo log, and sled is
            // made durable at checkpoints (log full, prefetch, stop). sled's 500 ms
            // flusher only added device flushes (SD card wear) that collided with the
            // log's writes.
            .flush_every_ms(None);
        let db = open_waiting_for_lock(&config, dir)?;
        let log =
            Arc::new(File::open(dir.join(SLED_LOG)).map_err(at(&dir.join(SLED_LOG), "open"))?);
        let tickets = CacheDb::open(dir, opts.cache_capacity_bytes as usize)?;
        let ledger = db.open_tree("ledger").map_err(db_err)?;
        let journal = db.open_tree("journal").map_err(db_err)?;
        let meta = db.open_tree("meta").map_err(db_err)?;
        migrate::move_cache_out_of_sled(&db, &tickets)?;
        let fresh = check_schema(&meta)? == Schema::Fresh;
        let store_id = match meta.get(META_STORE_ID).map_err(db_err)? {
            Some(v) if !fresh => codec::read_u64("meta/store_id", &v)?,
            _ => new_store_id(dir, &meta)?,
        };
        let lap = match meta.get(META_WAL_LAP).map_err(db_err)? {
            None => 0,
            Some(v) => codec::read_u64("meta/wal_lap", &v)?,
        };
        let (wal, records) = wal::Wal::open(dir, opts.wal_capacity_bytes, store_id, lap)
            .map_err(|e| e.in_store(&dir.join(wal::WAL_FILE), "open the redo log"))?;
        let mut store = Store {
            ledger,
            journal,
            meta,
            tickets,
            db,
            issuer: opts.terminal_id.clone(),
            terminal: opts.terminal_id,
            min_free: opts.min_free_bytes,
            dir: dir.to_path_buf(),
            log,
            wal: Arc::new(Mutex::new(wal)),
            replayed: records.len() as u64,
        };
        store
            .recover(records)
            .map_err(|e| e.in_store(dir, "recover"))?;
        store.settle_identity(opts.machine_id.as_deref(), access)?;
        Ok(store)
    }

    /// Checks (and records) which machine the store belongs to (`identity.rs`), and
    /// sets the prefix of new decision ids.
    fn settle_identity(&mut self, machine: Option<&str>, access: Access) -> Result<(), StoreError> {
        let recorded: Option<Identity> = match self.meta.get(META_IDENTITY).map_err(db_err)? {
            None => None,
            Some(v) => Some(codec::decode("meta/identity", &v)?),
        };
        if machine.is_none() && access == Access::Own {
            log::warn!(
                "store: this machine has no id ({}, or machine_id in the config): \
                 a copied store cannot be detected",
                identity::MACHINE_ID_FILES.join(", ")
            );
        }
        let verdict = identity::judge(
            &self.dir,
            recorded.as_ref(),
            machine,
            access,
            identity::random_tag,
        )?;
        let current = match verdict {
            identity::Verdict::Keep => recorded,
            identity::Verdict::Record(id) => {
                let mut wal = self.lock_wal();
                let mut writes = wal::Writes::default();
                writes.set(
                    wal::TreeId::Meta,
                    META_IDENTITY,
                    codec::encode("meta/identity", &id)?,
                );
                self.log_and_apply(&mut wal, writes)?;
                if access == Access::Adopt {
                    // Durable in sled at once: the next open checks it before replaying.
                    self.checkpoint(&mut wal)?;
                    log::warn!(
                        "store {} adopted by this machine: new decision ids start with {}",
                        self.dir.display(),
                        identity::issuer(&self.terminal, Some(&id))
                    );
                }
                Some(id)
            }
        };
        self.issuer = identity::issuer(&self.terminal, current.as_ref());
        Ok(())
    }

    /// Re-applies the current lap's records (sled may have lost some of them), then
    /// checkpoints: sled durable, next lap.
    fn recover(&self, records: Vec<wal::Record>) -> Result<(), StoreError> {
        for rec in &records {
            self.apply(&rec.writes)?;
        }
        let mut wal = self.lock_wal();
        self.checkpoint(&mut wal)?;
        wal.resize()?;
        drop(wal);
        if !records.is_empty() {
            log::info!(
                "store: re-applied {} record(s) from the redo log",
                records.len()
            );
        }
        Ok(())
    }

    /// Records re-applied from the redo log when this store was opened (sled may already
    /// have held some or all of them: re-applying is harmless).
    pub fn wal_replayed_at_open(&self) -> u64 {
        self.replayed
    }

    /// The redo log, locked. Every writer of `journal`, `ledger` and `meta` holds it.
    pub(crate) fn lock_wal(&self) -> MutexGuard<'_, wal::Wal> {
        match self.wal.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                // A writer panicked between logging and applying: sled's memory may
                // miss a logged record. Reopening recovers; until then, no writes.
                let mut g = poisoned.into_inner();
                if g.broken().is_none() {
                    g.set_broken("a store writer panicked mid-write".into());
                }
                g
            }
        }
    }

    /// Makes `writes` durable and applies them: appends them to the redo log as one
    /// record and waits for the disk (one `fdatasync`), then applies them to sled.
    /// When the log is full it checkpoints first. Call with [`Store::lock_wal`]'s guard,
    /// having read what the writes depend on under it.
    pub(crate) fn log_and_apply(
        &self,
        wal: &mut wal::Wal,
        writes: wal::Writes,
    ) -> Result<(), StoreError> {
        if let Some(why) = wal.broken() {
            return Err(StoreError::Stopped(why.to_string()));
        }
        let mut rec = wal.next_record(writes);
        let mut bytes = rec.encode();
        if !wal.fits(bytes.len()) {
            self.checkpoint(wal)?;
            rec = wal.next_record(rec.writes);
            bytes = rec.encode();
            if !wal.could_fit(bytes.len()) {
                // Right after a checkpoint no record is needed: the file may be redone.
                if let Err(e) = wal.grow_for(bytes.len()) {
                    wal.set_broken(format!("the redo log could not grow: {e}"));
                    return Err(e);
                }
            }
        }
        wal.append_durable(&bytes)?;
        if let Err(e) = self.apply(&rec.writes) {
            // Durable (the log holds it; reopening applies it), so the caller may act
            // on it; but sled's memory now lags the log.
            wal.set_broken(format!("a logged change could not be applied: {e}"));
        }
        Ok(())
    }

    /// Applies writes to sled (memory; sled persists them later).
    fn apply(&self, writes: &wal::Writes) -> Result<(), StoreError> {
        for w in &writes.0 {
            let tree = match w.tree {
                wal::TreeId::Journal => &self.journal,
                wal::TreeId::Ledger => &self.ledger,
                wal::TreeId::Meta => &self.meta,
            };
            tree.insert(w.key.as_slice(), w.value.as_slice())
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// Makes sled durable, then names the next lap of the redo log in `meta` (durably
    /// too), then starts that lap. In this order because sled may persist a later write
    /// without an earlier one: the next lap must not reach the disk before every write
    /// of this one has. On failure the store refuses writes (sled's memory may already
    /// name the next lap); a store that refuses writes does not checkpoint either (its
    /// sled may lack a logged record).
    fn checkpoint(&self, wal: &mut wal::Wal) -> Result<(), StoreError> {
        if let Some(why) = wal.broken() {
            return Err(StoreError::Stopped(why.to_string()));
        }
        let next = wal.lap() + 1;
        let done = self.sync_sled().and_then(|()| {
            self.meta
                .insert(META_WAL_LAP, &codec::u64_key(next)[..])
                .map_err(db_err)?;
            self.sync_sled()
        });
        match done {
            Ok(()) => {
                wal.restart(next);
                Ok(())
            }
            Err(e) => {
                wal.set_broken(format!("a checkpoint failed: {e}"));
                Err(e)
            }
        }
    }

    /// The terminal id decisions are stamped with.
    pub fn terminal_id(&self) -> &str {
        &self.terminal
    }

    /// The prefix of new decision ids: the terminal id, or `{terminal}.{tag}` once
    /// the store was adopted (`identity.rs`).
    pub fn id_prefix(&self) -> &str {
        &self.issuer
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes every write so far durable in sled itself, power cuts included, and starts
    /// the redo log over (a checkpoint: the next open has nothing to re-apply). The
    /// agent calls it when it stops and after a prefetch.
    pub fn flush(&self) -> Result<(), StoreError> {
        // First without the redo log's lock: the cache's commits, and what sled has to
        // write out, are written while decisions go on; the checkpoint under the lock
        // then only writes what came in meanwhile.
        self.tickets.sync()?;
        self.sync_sled()?;
        let mut wal = self.lock_wal();
        self.checkpoint(&mut wal)
    }

    /// Makes the cache writes so far durable (a durable commit of the cache's database,
    /// `cachedb.rs`) without taking the redo log's lock or touching sled, so it never
    /// delays a decision's commit. Prefetch calls it after every page.
    pub fn sync_cache(&self) -> Result<(), StoreError> {
        self.tickets.sync()
    }

    /// sled's flush, then an `fdatasync` of its log file. sled's own flush writes its
    /// log with `sync_file_range(2)`, which waits for the data pages but persists neither
    /// the file's size (the log grows at its end) nor the disk's volatile write cache;
    /// sled only `fsync`s from its background thread, every 500 ms.
    fn sync_sled(&self) -> Result<(), StoreError> {
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
        let mut wal = self.lock_wal();
        let state = self.offline_state()?;
        let next = OfflineState {
            window: state.window + 1,
            usage: OfflineUsage::default(),
        };
        let mut writes = wal::Writes::default();
        writes.set(
            wal::TreeId::Meta,
            META_OFFLINE,
            codec::encode("meta/offline", &next)?,
        );
        self.log_and_apply(&mut wal, writes)
    }

    pub(super) fn offline_state(&self) -> Result<OfflineState, StoreError> {
        match self.meta.get(META_OFFLINE).map_err(db_err)? {
            None => Ok(OfflineState::default()),
            Some(v) => codec::decode("meta/offline", &v),
        }
    }

    /// Size of the database files on disk (sled's and the cache's; not the redo log).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk().map_err(db_err)? + self.tickets.size_on_disk()?)
    }
}

/// What [`check_schema`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// A new database, or one upgraded from version 1: no redo log belongs to it yet.
    Fresh,
    /// A database of this version.
    Current,
}

/// Checks (and for a new database writes) the schema version; upgrades version 1,
/// which has no redo log, and version 2, whose cache was in sled.
fn check_schema(meta: &sled::Tree) -> Result<Schema, StoreError> {
    let found = match meta.get(META_SCHEMA).map_err(db_err)? {
        None => None,
        Some(v) => {
            let arr: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                what: "meta/schema_version".into(),
                detail: format!("expected 4 bytes, found {}", v.len()),
            })?;
            Some(u32::from_be_bytes(arr))
        }
    };
    match found {
        Some(SCHEMA_VERSION) => return Ok(Schema::Current),
        Some(2) => {
            // Version 2 had the redo log already; its cache was moved out of sled
            // before this check (`migrate.rs`). The write is made durable by the
            // checkpoint that ends `Store::open`.
            log::info!("store: upgrading schema 2 to {SCHEMA_VERSION} (the cache in its own file)");
            meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..])
                .map_err(db_err)?;
            return Ok(Schema::Current);
        }
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::FutureSchema {
                found,
                supported: SCHEMA_VERSION,
            })
        }
        None | Some(1) => {}
        Some(old) => return Err(StoreError::UnsupportedSchema(old)),
    }
    if found.is_some() {
        log::info!("store: upgrading schema 1 to {SCHEMA_VERSION} (adds the redo log)");
    }
    // No record can exist yet, so this write need not go through the log; it is made
    // durable by the checkpoint that ends `Store::open`.
    meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..])
        .map_err(db_err)?;
    Ok(Schema::Fresh)
}

/// Gives a new (or upgraded) store its random id, and sets aside any redo log found
/// next to it: that log belongs to another database (it may be all that is left of
/// that one), so it is kept, under a name of its own, and never replayed here.
fn new_store_id(dir: &Path, meta: &sled::Tree) -> Result<u64, StoreError> {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // RandomState is seeded from the OS's randomness: no extra crate for one number.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    let id = h.finish();
    let aside = dir.join(format!("{}.orphaned.{}", wal::WAL_FILE, now.as_millis()));
    match std::fs::rename(dir.join(wal::WAL_FILE), &aside) {
        Ok(()) => log::warn!(
            "store: a redo log that is not this database's was moved to {}",
            aside.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Made durable by the checkpoint that ends `Store::open`, before any record exists.
    meta.insert(META_STORE_ID, &codec::u64_key(id)[..])
        .map_err(db_err)?;
    Ok(id)
}

/// How long [`Store::open`] waits for the database lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens sled, retrying while the directory's lock is still held. sled releases its
/// file lock from background threads shortly after the last handle is dropped, so a
/// reopen right after a drop (a restart in the same process, tests) can briefly find
/// it taken. Another live process holding it still fails after [`LOCK_WAIT`].
fn open_waiting_for_lock(config: &sled::Config, dir: &Path) -> Result<sled::Db, StoreError> {
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
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                // Issue 14: sled's raw "could not acquire lock ... WouldBlock" said
                // nothing of who holds it or what to do.
                return Err(StoreError::File {
                    path: dir.to_path_buf(),
                    op: "open the store (another process holds it, normally the running \
                         agent: `concession-agent status` asks it without the store; stop \
                         it to use this command) in",
                    source: e,
                });
            }
            Err(sled::Error::Io(e)) => {
                return Err(StoreError::File {
                    path: dir.to_path_buf(),
                    op: "open the store database in",
                    source: e,
                })
            }
            Err(e) => return Err(StoreError::Db(format!("{}: {e}", dir.display()))),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        // Made beforehand (mkdir -p, an installer's umask): the store holds full
        // barcodes, so a directory others may read is tightened to 0700.
        let mode = std::fs::metadata(dir)
            .map_err(at(dir, "read the store directory"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            log::warn!(
                "store directory {} had mode {:o}: setting 0700",
                dir.display(),
                mode & 0o777
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                StoreError::File {
                    path: dir.to_path_buf(),
                    op: "make private (mode 0700; run `chmod 700` on it)",
                    source: e,
                }
            })?;
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(at(dir, "create the store directory"))?;
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(at(dir, "create the store directory"))?;
    Ok(())
}
