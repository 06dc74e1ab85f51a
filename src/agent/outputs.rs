//! [`Outputs`]: every output of the agent in one list.

use crate::signal::{Signal, SignalError};

/// Where decisions, voids and status go: every output, in one list (console, JSON
/// lines, the POS link, GPIO, scanner beeps). Each says which scans it answers
/// ([`Signal::answers`]) and whether it reports voids ([`Signal::void_result`]).
#[derive(Default)]
pub struct Outputs {
    /// The outputs, in the order they are told.
    pub signals: Vec<Box<dyn Signal>>,
}

impl Outputs {
    /// Adds an output.
    pub fn push(&mut self, signal: Box<dyn Signal>) {
        self.signals.push(signal);
    }

    pub(super) fn each(&mut self, mut f: impl FnMut(&mut dyn Signal) -> Result<(), SignalError>) {
        for s in self.signals.iter_mut() {
            if let Err(e) = f(s.as_mut()) {
                log::warn!("output: {e}");
            }
        }
    }
}
