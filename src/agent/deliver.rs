//! Delivering a decision, and what happens when it cannot be (issue 11, item 4).
//!
//! A decision is journaled before it is signalled, so an approval whose report fails
//! would be money handed over on paper that no POS ever saw. When every POS output that
//! answers the scan's origin (stdout for local scans, the link for POS requests;
//! [`Signal::answers`](crate::signal::Signal::answers)) fails to take the decision,
//! the approval is reversed at once: a journal void with reason `undelivered`. The
//! output answering local scans that fails with an I/O error (stdout's reader gone) is
//! dropped, and the agent stops taking scans ([`AgentError::OutputLost`]).

use super::{Agent, AgentError};
use crate::decide::Verdict;
use crate::scan::{Origin, ScanEvent};
use crate::signal::{DecisionEvent, SignalError};

/// The journal reason of a void the agent makes for an approval it could not report.
pub const UNDELIVERED: &str = "undelivered";

impl Agent {
    /// Signals `event` to every output; reverses an approval no answering output took.
    pub(super) fn signal_decision(&mut self, scan: &ScanEvent, event: &DecisionEvent) {
        let mut answering = 0usize;
        let mut delivered = 0usize;
        let mut broken = Vec::new();
        for (i, s) in self.outputs.signals.iter_mut().enumerate() {
            let answers = s.answers(&scan.origin);
            answering += usize::from(answers);
            match s.decision(event) {
                Ok(()) => delivered += usize::from(answers),
                Err(e) => {
                    log::warn!("output: {e}");
                    // Only the output that answers local scans (stdout, a serial line)
                    // is dropped when its writer is gone; lights and beeps stay.
                    if matches!(e, SignalError::Io(_)) && s.answers(&Origin::Stdin) {
                        broken.push((i, e.to_string()));
                    }
                }
            }
        }
        for (i, why) in broken.into_iter().rev() {
            self.outputs.signals.remove(i);
            log::error!("pos output failed for good: {why}; taking no more scans");
            self.output_lost = Some(why);
        }
        // With no output answering this origin (a test harness, a POS request without
        // a link) there is nobody to judge delivery by.
        if answering > 0 && delivered == 0 {
            self.reverse_undelivered(event);
        }
    }

    /// Voids an approval that no POS was told of.
    fn reverse_undelivered(&mut self, event: &DecisionEvent) {
        if event.decision != Verdict::Approve || event.id.is_empty() {
            return;
        }
        let now = self.clock.wall_ms();
        match self
            .store
            .void_for(&event.id, now, event.request.as_deref(), UNDELIVERED)
        {
            Ok(v) => {
                self.publisher.voided(&v.entry);
                log::warn!(
                    "decision {} ({} {} cents) reached no POS: reversed by {} ({UNDELIVERED})",
                    event.id,
                    event.barcode,
                    event.approved_cents,
                    v.entry.id
                )
            }
            // The approval stands in the journal; say so loudly for reconciliation.
            Err(e) => log::error!(
                "decision {} ({}) reached no POS and could not be reversed: {e}",
                event.id,
                event.barcode
            ),
        }
    }

    /// `Err` once the output answering local scans is gone.
    pub(super) fn outputs_ok(&self) -> Result<(), AgentError> {
        match &self.output_lost {
            Some(why) => Err(AgentError::OutputLost(why.clone())),
            None => Ok(()),
        }
    }
}
