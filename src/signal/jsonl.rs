//! JSON lines for POS software and logs, over any `io::Write` (stdout, a TCP stream, a
//! serial port).
//!
//! One line per message, each an object with a `type`:
//! - `{"type":"decision", ...}`: a [`DecisionEvent`] with its serde field names;
//! - `{"type":"status","status":"offline"}`: an [`AgentStatus`] change;
//! - `{"type":"void_result", ...}`: a [`VoidEvent`].
//!
//! The line builders ([`decision_line`], [`status_line`], [`void_line`]) are shared with
//! the POS link, so every output speaks the same protocol (docs/pos-protocol.md).

use std::io::{self, Write};

use serde::Serialize;

use super::{AgentStatus, DecisionEvent, Signal, SignalError, VoidEvent};
use crate::scan::Origin;

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct StatusBody {
    status: AgentStatus,
}

fn tagged<T: Serialize>(kind: &'static str, body: &T) -> String {
    match serde_json::to_string(&Tagged { kind, body }) {
        Ok(s) => s,
        // Cannot happen for these types (string keys only); never emit a broken line.
        Err(e) => format!(
            "{{\"type\":\"error\",\"request_id\":null,\"error\":{}}}",
            serde_json::Value::String(format!("encode {kind}: {e}"))
        ),
    }
}

/// `{"type":"decision", ...DecisionEvent fields}` (no trailing newline).
pub fn decision_line(event: &DecisionEvent) -> String {
    tagged("decision", event)
}

/// `{"type":"status","status":"ready"|"offline"|"stopping"}` (no trailing newline).
pub fn status_line(status: AgentStatus) -> String {
    tagged("status", &StatusBody { status })
}

/// `{"type":"void_result", ...VoidEvent fields}` (no trailing newline).
pub fn void_line(event: &VoidEvent) -> String {
    tagged("void_result", event)
}

/// Writes JSON lines to any writer, flushing after each line.
#[derive(Debug)]
pub struct JsonlSignal<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonlSignal<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        JsonlSignal { out }
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.out.write_all(&buf)?;
        self.out.flush()
    }
}

impl JsonlSignal<io::Stdout> {
    /// JSON lines on standard output.
    pub fn stdout() -> Self {
        JsonlSignal::new(io::stdout())
    }
}

impl<W: Write + Send> Signal for JsonlSignal<W> {
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        Ok(self.line(&decision_line(event))?)
    }

    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        Ok(self.line(&status_line(status))?)
    }

    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        Ok(self.line(&void_line(event))?)
    }

    /// Answers every scan that did not come over the POS link.
    fn answers(&self, origin: &Origin) -> bool {
        !origin.is_pos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Verdict;
    use crate::signal::VoidOutcome;
    use serde_json::Value;

    fn event() -> DecisionEvent {
        DecisionEvent {
            id: "d-1".into(),
            time: "2026-11-27T18:00:00.000Z".into(),
            terminal: "stand-12".into(),
            barcode: "********0001".into(),
            decision: Verdict::Approve,
            reason: crate::decide::Reason::Approved,
            approved_cents: 2000,
            items: vec!["Pizza and a Coke".into()],
            source: crate::decide::Source::Live,
            latency_ms: 42,
            request: Some("r1".into()),
            venue: None,
        }
    }

    fn lines(buf: &[u8]) -> Vec<Value> {
        std::str::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn decision_lines_carry_type_and_every_field() {
        let mut s = JsonlSignal::new(Vec::new());
        s.decision(&event()).unwrap();
        let v = &lines(s.get_ref())[0];
        assert_eq!(v["type"], "decision");
        assert_eq!(v["id"], "d-1");
        assert_eq!(v["decision"], "approve");
        assert_eq!(v["approved_cents"], 2000);
        assert_eq!(v["items"][0], "Pizza and a Coke");
        assert_eq!(v["request"], "r1");
        assert_eq!(v["latency_ms"], 42);
        let text = String::from_utf8(s.into_inner()).unwrap();
        assert!(text.starts_with("{\"type\":\"decision\""));
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn local_decisions_have_no_request_field() {
        let mut e = event();
        e.request = None;
        let v: Value = serde_json::from_str(&decision_line(&e)).unwrap();
        assert!(v.get("request").is_none());
    }

    #[test]
    fn status_lines() {
        let mut s = JsonlSignal::new(Vec::new());
        s.status(AgentStatus::Offline).unwrap();
        s.status(AgentStatus::Ready).unwrap();
        let text = String::from_utf8(s.into_inner()).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"status\",\"status\":\"offline\"}\n{\"type\":\"status\",\"status\":\"ready\"}\n"
        );
    }

    #[test]
    fn void_result_lines() {
        let mut s = JsonlSignal::new(Vec::new());
        s.void_result(&VoidEvent {
            decision_id: "d-1".into(),
            request_id: Some("r2".into()),
            outcome: VoidOutcome::Voided,
            reversed_cents: 2000,
            items: vec![],
            error: None,
            time: "2026-11-27T18:00:01.000Z".into(),
            terminal: "stand-12".into(),
        })
        .unwrap();
        let v = &lines(s.get_ref())[0];
        assert_eq!(v["type"], "void_result");
        assert_eq!(v["outcome"], "voided");
        assert_eq!(v["request_id"], "r2");
        assert!(v.get("error").is_none());
    }

    #[test]
    fn write_errors_surface_as_signal_errors() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut s = JsonlSignal::new(Broken);
        assert!(matches!(s.decision(&event()), Err(SignalError::Io(_))));
    }
}
