//! Reading a store without writing to it: `journal export` on a full disk, or on a
//! store that another machine recorded.
//!
//! sled cannot open a database read-only: opening writes (on a full disk it fails with
//! `No space left on device`), and so does the store's own recovery (a checkpoint). So
//! a reader copies the store's files into a private scratch directory on another
//! filesystem (default: the system's temporary directory, usually a tmpfs) and opens
//! the copy. The store itself is only read: it needs no new space, its files are
//! unchanged, and the copy is removed when the [`Snapshot`] is dropped. While copying,
//! the reader holds the store's lock (the same `flock` sled takes), so a running agent
//! cannot change the files under it; with an agent running the copy is refused, as
//! opening the store would be.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::db::{Store, StoreOptions, SLED_LOG};
use super::error::at;
use super::error::StoreError;
use super::identity::Access;

/// A private, read-only-use copy of a store, opened. Removed on drop.
#[derive(Debug)]
pub struct Snapshot {
    store: Option<Store>,
    dir: PathBuf,
}

impl Snapshot {
    /// Copies the store in `dir` into a new directory under `scratch` and opens the
    /// copy (no identity check, no headroom). `dir` is only read.
    pub fn open(dir: &Path, scratch: &Path, opts: StoreOptions) -> Result<Snapshot, StoreError> {
        let db = dir.join(SLED_LOG);
        let lock = File::open(&db).map_err(at(&db, "open"))?;
        lock_shared(&lock, dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let copy = scratch.join(format!(
            "concession-agent-read.{}.{}",
            std::process::id(),
            now.as_nanos()
        ));
        // From here on the directory is ours: remove it on every way out.
        let mut snap = Snapshot {
            store: None,
            dir: copy.clone(),
        };
        make_private_dir(&copy)?;
        copy_tree(dir, &copy).map_err(|e| match e {
            StoreError::File { source, .. } => StoreError::File {
                path: scratch.to_path_buf(),
                op: "copy the store into (needs room for a copy of the store; \
                     --scratch DIR names another place)",
                source,
            },
            e => e,
        })?;
        drop(lock);
        let opts = StoreOptions {
            min_free_bytes: 0,
            ..opts
        };
        snap.store = Some(Store::open_as(&copy, opts, Access::ReadCopy)?);
        Ok(snap)
    }

    /// The opened copy.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("opened in Snapshot::open")
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            log::warn!("could not remove the copy {}: {e}", self.dir.display());
        }
    }
}

/// True when another open of the store in `dir` holds its lock (a running agent:
/// sled lets one process open a store). Looks once, without waiting; a directory
/// with no store is not held.
pub fn is_held(dir: &Path) -> Result<bool, StoreError> {
    let db = dir.join(SLED_LOG);
    let file = match File::open(&db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(at(&db, "open")(e)),
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        // Released when `file` is closed.
        Ok(()) => Ok(false),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
        Err(e) => Err(StoreError::File {
            path: dir.to_path_buf(),
            op: "test the lock of",
            source: e.into(),
        }),
    }
}

/// How long [`Snapshot::open`] waits for the store's lock (sled releases it from a
/// background thread shortly after a store is closed).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A shared `flock` on sled's log file: sled's exclusive lock (a running agent)
/// excludes it.
fn lock_shared(file: &File, dir: &Path) -> Result<(), StoreError> {
    let start = std::time::Instant::now();
    loop {
        match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                return Err(StoreError::File {
                    path: dir.to_path_buf(),
                    op: "lock (an agent is running on it: stop it first)",
                    source: e.into(),
                })
            }
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(at(dir, "create"))
    }
    #[cfg(not(unix))]
    std::fs::create_dir(dir).map_err(at(dir, "create"))
}

/// Copies the files and directories of `from` into the existing `to` (set-aside redo
/// logs excepted: they are never read).
fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(from).map_err(at(from, "read"))? {
        let entry = entry.map_err(at(from, "read"))?;
        let name = entry.file_name();
        if name.to_string_lossy().contains(".orphaned.") {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ty = entry.file_type().map_err(at(&src, "read"))?;
        if ty.is_dir() {
            make_private_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).map_err(at(&dst, "write"))?;
        }
    }
    Ok(())
}
