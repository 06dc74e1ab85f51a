//! The store's errors: [`StoreError`] for machinery failures, and [`VoidError`] for
//! [`Store::void`](super::Store::void), whose refusals are answers, not failures.

use std::fmt;
use std::path::PathBuf;

/// Why a store operation failed. Denies are not errors; these are machinery failures.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Writing an export (or another stream that is not a store file) failed.
    Io(std::io::Error),
    /// A file or directory of the store could not be created, opened, read or written.
    File {
        /// The path.
        path: PathBuf,
        /// What was being done (`create the store directory`, `open`, ...).
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The store was recorded by another machine: it is a copy (an SD card image, a
    /// backup) and would issue another terminal's decision ids. See `identity.rs`.
    Cloned {
        /// The store directory.
        dir: PathBuf,
        /// The machine id recorded in the store.
        recorded: String,
        /// This machine's id.
        found: String,
    },
    /// The filesystem under the store has less free space than the headroom kept for
    /// the journal: approvals stop before a decision could not be written.
    NoHeadroom {
        /// The store directory.
        dir: PathBuf,
        /// Bytes available to the agent.
        free: u64,
        /// The headroom (`store_min_free_mb`).
        need: u64,
    },
    /// The database engine failed (message only: no engine types leak out).
    Db(String),
    /// The database was written by a newer version of the agent.
    FutureSchema {
        /// Version found on disk.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// The database carries a schema version this build cannot read.
    UnsupportedSchema(u32),
    /// A stored value could not be decoded.
    Corrupt {
        /// Which tree or key.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A decision id that is not of the form `{terminal}-{seq}`.
    BadId(String),
    /// `journal export --since` named no entry of this journal.
    BadSince {
        /// The id given (at most 64 characters).
        since: String,
        /// What is wrong and what was expected.
        why: String,
    },
    /// The store refuses writes until it is reopened: a write reached the redo log but
    /// not sled's memory, or a checkpoint failed. Reopening (restarting the agent)
    /// recovers from the log; nothing durable is lost.
    Stopped(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "store i/o failed: {e}"),
            StoreError::File { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())?;
                match source.kind() {
                    std::io::ErrorKind::PermissionDenied => write!(
                        f,
                        " (the agent's user must own the store directory; under the \
                         shipped unit it is /var/lib/concession-agent)"
                    ),
                    std::io::ErrorKind::AlreadyExists => {
                        write!(f, " (a file is in the way of the store directory)")
                    }
                    std::io::ErrorKind::StorageFull => write!(
                        f,
                        " (the disk is full: free space; `journal export` still reads it)"
                    ),
                    _ => Ok(()),
                }
            }
            StoreError::Cloned {
                dir,
                recorded,
                found,
            } => write!(
                f,
                "store {} belongs to machine {} but this is machine {}: it was copied \
                 from another terminal (or restored from one) and would issue that \
                 terminal's decision ids. Give this terminal its own store (move {} aside), \
                 or, if this store is this terminal's own (a replaced board, a restored \
                 backup), run `concession-agent store adopt`. A board whose machine id \
                 changes at every boot needs `machine_id` in its config.",
                dir.display(),
                short(recorded),
                short(found),
                dir.display()
            ),
            StoreError::NoHeadroom { dir, free, need } => write!(
                f,
                "low disk space under store {}: {} KiB free, below the {} KiB kept for the \
                 journal (store_min_free_mb); approvals stop until space is freed",
                dir.display(),
                free / 1024,
                need / 1024
            ),
            StoreError::Db(e) => write!(f, "store database failed: {e}"),
            StoreError::FutureSchema { found, supported } => write!(
                f,
                "store schema version {found} is newer than this agent supports ({supported}); \
                 upgrade the agent or move the data directory aside"
            ),
            StoreError::UnsupportedSchema(v) => {
                write!(f, "store schema version {v} is not supported")
            }
            StoreError::Corrupt { what, detail } => {
                write!(f, "corrupt store value in {what}: {detail}")
            }
            StoreError::BadId(id) => write!(
                f,
                "malformed decision id {id:?} (expected {{terminal}}-{{sequence}}, \
                 such as stand-7-000000000042)"
            ),
            StoreError::BadSince { since, why } => write!(f, "--since {since:?}: {why}"),
            StoreError::Stopped(why) => write!(
                f,
                "store refuses writes until the agent restarts ({why}); \
                 restarting recovers from its redo log"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            StoreError::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl StoreError {
    /// An [`StoreError::Io`] from inside the store directory `dir`, named by it (the
    /// engine and the redo log report bare i/o errors).
    pub(crate) fn in_store(self, dir: &std::path::Path, op: &'static str) -> StoreError {
        match self {
            StoreError::Io(source) => StoreError::File {
                path: dir.to_path_buf(),
                op,
                source,
            },
            other => other,
        }
    }
}

/// Why [`Store::void`](super::Store::void) reversed nothing: the decision cannot be
/// voided (an answer for the POS), or the store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum VoidError {
    /// A decision id that is not in the journal.
    UnknownDecision(String),
    /// A decision id that is not of the form `{terminal}-{seq}` (at most 64 characters).
    BadId(String),
    /// The decision was already voided (by the named void entry).
    AlreadyVoided {
        /// The decision.
        id: String,
        /// The void entry that voided it.
        by: String,
    },
    /// A deny or a void entry: there is nothing to give back.
    NotVoidable(String),
    /// The store failed: nothing was reversed.
    Store(StoreError),
}

impl fmt::Display for VoidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoidError::UnknownDecision(id) => write!(f, "unknown decision id {id:?}"),
            VoidError::BadId(id) => fmt::Display::fmt(&StoreError::BadId(id.clone()), f),
            VoidError::AlreadyVoided { id, by } => {
                write!(f, "decision {id} was already voided by {by}")
            }
            VoidError::NotVoidable(id) => {
                write!(f, "decision {id} is not an approval: nothing to void")
            }
            VoidError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for VoidError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VoidError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for VoidError {
    fn from(e: StoreError) -> Self {
        VoidError::Store(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// The first 8 characters of a machine id: enough to tell two apart in a message
/// (systemd asks that the whole id not be shown to others).
fn short(id: &str) -> String {
    let s: String = id.chars().take(8).collect();
    if s.len() < id.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// Maps an i/o error on `path` to [`StoreError::File`].
pub(crate) fn at(
    path: &std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::File { path, op, source }
}

/// A sled error as a [`StoreError`] (a function, not a `From` impl, so that no sled
/// type appears in the public API).
pub(crate) fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}
