//! The store's one error enum.

use std::fmt;

/// Why a store operation failed. Denies are not errors; these are machinery failures.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Creating the directory or writing an export failed.
    Io(std::io::Error),
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
    /// A decision id that is not in the journal.
    UnknownDecision(String),
    /// A decision id that is not of the form `{terminal}-{seq}`.
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
    /// The store refuses writes until it is reopened: a write reached the redo log but
    /// not sled's memory, or a checkpoint failed. Reopening (restarting the agent)
    /// recovers from the log; nothing durable is lost.
    Stopped(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "store i/o failed: {e}"),
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
            StoreError::UnknownDecision(id) => write!(f, "unknown decision id {id:?}"),
            StoreError::BadId(id) => write!(f, "malformed decision id {id:?}"),
            StoreError::AlreadyVoided { id, by } => {
                write!(f, "decision {id} was already voided by {by}")
            }
            StoreError::NotVoidable(id) => {
                write!(f, "decision {id} is not an approval: nothing to void")
            }
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
            _ => None,
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// A sled error as a [`StoreError`] (a function, not a `From` impl, so that no sled
/// type appears in the public API).
pub(crate) fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}
