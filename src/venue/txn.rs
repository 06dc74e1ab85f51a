//! One redemption's open venue transaction, as the loop sees it: [`Begin`] (the lines
//! locked, or the venue away), [`VenueTxn`] (commit, or drop to roll back) and
//! [`CommitOutcome`] (committed, certainly not, or in doubt). The worker side of these
//! steps is in `worker.rs` (`Worker::redeem`); the rules are in the module docs of
//! `crate::venue`.

use std::time::Duration;

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use super::ledger::VenueLine;
use crate::store::JournalEntry;

/// What `begin` got.
pub enum Begin {
    /// The ticket's lines, locked until the transaction commits or is dropped.
    Locked(VenueTxn),
    /// The venue cannot decide this scan in time: decide locally, as pending.
    Away(String),
}

/// How a commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// In the venue ledger.
    Committed {
        /// Money beyond the loaded value (0 for a decision made on the locked lines).
        overdraft_cents: u64,
    },
    /// Certainly not committed (the transaction failed before `COMMIT`).
    NotCommitted(String),
    /// Unknown: the answer did not come in time, or the connection broke during
    /// `COMMIT`. The replay settles it by the entry's id.
    InDoubt(String),
}

/// An open venue transaction with the ticket's lines locked.
pub struct VenueTxn {
    pub(super) lines: Vec<VenueLine>,
    pub(super) steps: Option<Sender<Step>>,
}

impl VenueTxn {
    /// The ticket's lines as locked.
    pub fn lines(&self) -> &[VenueLine] {
        &self.lines
    }

    /// Records the journaled `entry` in the venue and commits, waiting at most `wait`.
    pub fn commit(mut self, entry: &JournalEntry, wait: Duration) -> CommitOutcome {
        let Some(steps) = self.steps.take() else {
            return CommitOutcome::NotCommitted("transaction already ended".into());
        };
        let (tx, rx) = bounded(1);
        if steps
            .send(Step::Commit(Box::new(entry.clone()), tx))
            .is_err()
        {
            return CommitOutcome::NotCommitted("the venue worker ended the transaction".into());
        }
        match rx.recv_timeout(wait) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => CommitOutcome::InDoubt(format!(
                "no answer from the venue database within {} ms",
                wait.as_millis()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                CommitOutcome::InDoubt("the venue worker stopped during the commit".into())
            }
        }
    }
}

impl Drop for VenueTxn {
    fn drop(&mut self) {
        if let Some(steps) = self.steps.take() {
            let _ = steps.send(Step::Abort);
        }
    }
}

/// What the loop sends the worker on an open transaction.
pub(super) enum Step {
    Commit(Box<JournalEntry>, Sender<CommitOutcome>),
    Abort,
}
