//! Good-read / bad-read feedback sent back to the scanner.
//!
//! Many serial scanners accept a host acknowledgement: after the host judges a scan it
//! sends a short command and the scanner beeps and flashes green (good) or red (bad).
//! Honeywell calls this "host acknowledgement": `ESC 7 ,` for good, `ESC 8 ,` for bad.
//! [`ScannerAck`] writes those bytes to any [`std::io::Write`], normally a clone of the
//! serial port the scans arrive on.

use std::io::Write;

use crate::signal::{AgentStatus, DecisionEvent, Signal, SignalError};

use crate::decide::Verdict;

/// The bytes for a good and a bad read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckCodes {
    /// Sent after an approve.
    pub good: Vec<u8>,
    /// Sent after a deny.
    pub bad: Vec<u8>,
}

impl AckCodes {
    /// Honeywell host acknowledgement: `ESC 7 ,` (good) and `ESC 8 ,` (bad).
    pub fn honeywell() -> Self {
        AckCodes {
            good: b"\x1b7,".to_vec(),
            bad: b"\x1b8,".to_vec(),
        }
    }

    /// The bytes for a verdict.
    pub fn for_verdict(&self, verdict: Verdict) -> &[u8] {
        match verdict {
            Verdict::Approve => &self.good,
            Verdict::Deny => &self.bad,
        }
    }
}

/// Writes the good or bad acknowledgement after each decision.
#[derive(Debug)]
pub struct ScannerAck<W> {
    writer: W,
    codes: AckCodes,
}

impl<W: Write + Send> ScannerAck<W> {
    /// Acknowledgements with `codes` written to `writer`.
    pub fn new(writer: W, codes: AckCodes) -> Self {
        ScannerAck { writer, codes }
    }

    /// Honeywell acknowledgements written to `writer`.
    pub fn honeywell(writer: W) -> Self {
        ScannerAck::new(writer, AckCodes::honeywell())
    }

    /// The codes in use.
    pub fn codes(&self) -> &AckCodes {
        &self.codes
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write + Send> Signal for ScannerAck<W> {
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        let bytes = self.codes.for_verdict(event.decision);
        if bytes.is_empty() {
            return Ok(());
        }
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    /// The scanner has no status display: nothing is sent.
    fn status(&mut self, _status: AgentStatus) -> Result<(), SignalError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(decision: Verdict) -> DecisionEvent {
        DecisionEvent {
            id: "d1".into(),
            time: "2026-01-01T00:00:00.000Z".into(),
            terminal: "t1".into(),
            barcode: "********0001".into(),
            decision,
            reason: crate::decide::Reason::Approved,
            approved_cents: 0,
            items: Vec::new(),
            source: crate::decide::Source::Live,
            latency_ms: 1,
            request: None,
            venue: None,
        }
    }

    #[test]
    fn writes_honeywell_good_then_bad() {
        let mut ack = ScannerAck::honeywell(Vec::new());
        ack.decision(&event(Verdict::Approve)).unwrap();
        ack.status(AgentStatus::Offline).unwrap();
        ack.decision(&event(Verdict::Deny)).unwrap();
        assert_eq!(ack.into_inner(), b"\x1b7,\x1b8,".to_vec());
    }

    #[test]
    fn empty_code_writes_nothing() {
        let codes = AckCodes {
            good: b"G".to_vec(),
            bad: Vec::new(),
        };
        let mut ack = ScannerAck::new(Vec::new(), codes);
        ack.decision(&event(Verdict::Deny)).unwrap();
        ack.decision(&event(Verdict::Approve)).unwrap();
        assert_eq!(ack.into_inner(), b"G".to_vec());
    }
}
