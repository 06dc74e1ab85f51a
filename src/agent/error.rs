//! [`AgentError`]: why the agent could not do its job (a deny is not an error).

use std::fmt;

use crate::store::StoreError;

/// Why the agent could not do its job (a deny is not an error).
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentError {
    /// The store refused a write: nothing was approved.
    Store(StoreError),
    /// The output that tells the POS of local scans failed for good (stdout closed):
    /// what it could not report was voided, and no more scans are taken.
    OutputLost(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Store(e) => write!(f, "store: {e}"),
            AgentError::OutputLost(e) => write!(
                f,
                "pos output lost ({e}): approvals it could not report were voided; no more scans are taken"
            ),
        }
    }
}

impl std::error::Error for AgentError {}

impl AgentError {
    /// True when the agent cannot go on deciding: the store refuses every write until
    /// it is reopened, so the process should end and let the service manager restart
    /// it (the restart recovers the store from its redo log).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            AgentError::Store(StoreError::Stopped(_)) | AgentError::OutputLost(_)
        )
    }
}

impl From<StoreError> for AgentError {
    fn from(e: StoreError) -> Self {
        AgentError::Store(e)
    }
}
