//! [`VenueError`]: why venue work failed (a scan never fails for it: it is decided
//! locally).

use std::fmt;

/// Why venue work failed (a scan never fails for it: it is decided locally).
#[derive(Debug)]
#[non_exhaustive]
pub enum VenueError {
    /// The database said no, or the connection failed.
    #[cfg(feature = "venue")]
    Db(postgres::Error),
    /// No answer in time, or no connection.
    Away(String),
    /// The database was migrated by a newer agent.
    FutureSchema {
        /// Its version.
        found: i32,
        /// The newest this build knows.
        known: i32,
    },
    /// The database lacks migrations (`venue migrate` was not run).
    OldSchema {
        /// Its version.
        found: i32,
        /// The version this build needs.
        known: i32,
    },
    /// The configuration cannot be used.
    Config(String),
    /// Data that cannot be read or written.
    Data(String),
    /// The local store.
    Store(crate::store::StoreError),
    /// Local I/O.
    Io(std::io::Error),
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "venue")]
            VenueError::Db(e) => match e.as_db_error() {
                Some(db) => write!(f, "venue database: {} ({})", db.message(), db.code().code()),
                None => {
                    // The crate's own text is the phase ("error performing TLS
                    // handshake"); the cause (an unknown issuer, a name the certificate
                    // does not carry, a refused connection) is in its sources, and that is
                    // what venue IT needs to read.
                    write!(f, "venue database: {e}")?;
                    let mut cause = std::error::Error::source(e);
                    while let Some(c) = cause {
                        write!(f, ": {c}")?;
                        cause = c.source();
                    }
                    Ok(())
                }
            },
            VenueError::Away(why) => write!(f, "venue database away: {why}"),
            VenueError::FutureSchema { found, known } => write!(
                f,
                "venue database schema version {found} is newer than this agent knows \
                 ({known}): upgrade the agent; it will not write to a schema it cannot read"
            ),
            VenueError::OldSchema { found, known } => write!(
                f,
                "venue database schema version {found}, this agent needs {known}: run \
                 `concession-agent venue migrate`"
            ),
            VenueError::Config(m) => write!(f, "venue config: {m}"),
            VenueError::Data(m) => write!(f, "venue data: {m}"),
            VenueError::Store(e) => write!(f, "store: {e}"),
            VenueError::Io(e) => write!(f, "venue: {e}"),
        }
    }
}

impl std::error::Error for VenueError {}

#[cfg(feature = "venue")]
impl From<postgres::Error> for VenueError {
    fn from(e: postgres::Error) -> Self {
        VenueError::Db(e)
    }
}

impl From<crate::store::StoreError> for VenueError {
    fn from(e: crate::store::StoreError) -> Self {
        VenueError::Store(e)
    }
}

impl From<std::io::Error> for VenueError {
    fn from(e: std::io::Error) -> Self {
        VenueError::Io(e)
    }
}
