//! The output half of the POS link: answers go to the client that asked.

use std::fmt;
use std::sync::Arc;

use super::link::Shared;
use crate::scan::{ConnId, Origin};
use crate::signal::jsonl::status_line;
use crate::signal::{AgentStatus, DecisionEvent, Signal, SignalError, VoidEvent};
use crate::sync::lock;

/// The output half of the POS link: answers go to the client that asked.
#[derive(Clone)]
pub struct PosSignal {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for PosSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosSignal").finish_non_exhaustive()
    }
}

pub(super) fn pos_conn(origin: &Origin) -> Option<ConnId> {
    match origin {
        Origin::Pos { conn, .. } => Some(*conn),
        _ => None,
    }
}

impl PosSignal {
    /// Sends a decision to the client behind `origin` (a POS request), or to every
    /// client (a local scan). Use this when the loop still has the request's origin;
    /// [`Signal::decision`] routes by `event.request` alone. Returns false when the
    /// client that asked is gone.
    pub fn decision_to(&mut self, origin: &Origin, event: &DecisionEvent) -> bool {
        self.shared.decision(pos_conn(origin), event)
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        lock(&self.shared.clients).len()
    }
}

impl Signal for PosSignal {
    /// Routes by `event.request`: to the client waiting on that id; without one (a local
    /// scan), to every client. Never blocks. When the client that asked is gone the
    /// answer is [`SignalError::Undelivered`]: the agent reverses such an approval.
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        if self.shared.decision(None, event) || event.request.is_none() {
            Ok(())
        } else {
            Err(SignalError::Undelivered(
                "the pos client that asked has disconnected".into(),
            ))
        }
    }

    /// Sends a status line to every client.
    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        // Remembered for clients that connect later and for `pong`.
        let mut current = lock(&self.shared.status);
        *current = Some(status);
        self.shared.broadcast(&Arc::from(status_line(status)));
        drop(current);
        Ok(())
    }

    /// Routes by `event.request_id` like [`Signal::decision`]; a reversal also reaches
    /// the clients that were told of the decision.
    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        self.shared.void_result(None, event);
        Ok(())
    }

    /// The link answers the scans it forwarded.
    fn answers(&self, origin: &Origin) -> bool {
        origin.is_pos()
    }
}
