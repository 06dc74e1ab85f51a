//! Console output for people at the stand: one line per decision.
//!
//! ```text
//! -- times are venue time, UTC+01:00 --
//! 18:00:00.123 APPROVE $15.00 + 1x Hot Dog  ********0003  live 42 ms  req r1  id stand-7-000000000003
//! 18:00:02.456 DENY unknown_ticket  ********9999  live 120 ms  id stand-7-000000000004
//! 18:00:03.001 DENY unreadable  1 ms  id stand-7-000000000005
//! -- status: offline --
//! ```
//!
//! Times are the venue's (`utc_offset_minutes`), and the first line says which offset
//! that is (they used to be UTC with no marker). Each decision line ends with the
//! decision id a supervisor needs to void it. Unreadable input consulted nothing, so it
//! shows no source (it used to say `live`).
//!
//! Colour (green approve, red deny, yellow offline evidence and status) only when asked:
//! pass `color = true` when the output is a terminal ([`ConsoleSignal::stdout`] checks).
//! Text that came from outside (item names from ATS, request ids from the POS) has
//! control characters replaced, so nobody can inject terminal escapes.

use std::io::{self, IsTerminal, Write};

use super::{AgentStatus, DecisionEvent, Signal, SignalError, VoidEvent, VoidOutcome};
use crate::scan::Origin;

use crate::decide::Verdict;
use crate::money::format_cents;

const GREEN: &str = "\x1b[1;32m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// `HH:MM:SS.mmm` from an RFC 3339 UTC time, shifted by `offset_minutes` (the venue's
/// offset), or the cleaned text when it is not one.
fn clock_part(time: &str, offset_minutes: i32) -> String {
    let Some(t) = time
        .get(11..23)
        .filter(|_| time.as_bytes().get(10) == Some(&b'T'))
    else {
        return clean(time);
    };
    let field = |r: std::ops::Range<usize>| t.get(r).and_then(|f| f.parse::<i32>().ok());
    match (field(0..2), field(3..5)) {
        (Some(h), Some(m)) if t.as_bytes().get(2) == Some(&b':') => {
            let minutes = (h * 60 + m + offset_minutes).rem_euclid(24 * 60);
            format!("{:02}:{:02}{}", minutes / 60, minutes % 60, clean(&t[5..]))
        }
        _ => clean(t),
    }
}

/// The line that says which time the console shows.
pub fn format_time_note(offset_minutes: i32) -> String {
    if offset_minutes == 0 {
        return "-- times are UTC --".into();
    }
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let m = offset_minutes.unsigned_abs();
    format!(
        "-- times are venue time, UTC{sign}{:02}:{:02} --",
        m / 60,
        m % 60
    )
}

/// Groups one-entry-per-unit items: `2x Hot Dog, 1x Pizza and a Coke`.
fn group_items(items: &[String]) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for it in items {
        match groups.iter_mut().find(|(name, _)| *name == it.as_str()) {
            Some((_, n)) => *n += 1,
            None => groups.push((it, 1)),
        }
    }
    groups
        .iter()
        .map(|(name, n)| format!("{n}x {}", clean(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One console line for a decision, times in UTC (no trailing newline).
pub fn format_decision(e: &DecisionEvent, color: bool) -> String {
    format_decision_at(e, color, 0)
}

/// One console line for a decision, times at the venue's offset (no trailing newline).
pub fn format_decision_at(e: &DecisionEvent, color: bool, offset_minutes: i32) -> String {
    let mut line = clock_part(&e.time, offset_minutes);
    line.push(' ');
    match e.decision {
        Verdict::Approve => {
            line.push_str(&paint("APPROVE", GREEN, color));
            let mut what = Vec::new();
            if e.approved_cents > 0 || e.items.is_empty() {
                what.push(format!("${}", format_cents(e.approved_cents)));
            }
            if !e.items.is_empty() {
                what.push(group_items(&e.items));
            }
            line.push(' ');
            line.push_str(&what.join(" + "));
            if e.reason != "approved" {
                line.push_str(&format!(" ({})", clean(e.reason.as_str())));
            }
        }
        Verdict::Deny => {
            line.push_str(&paint("DENY", RED, color));
            line.push(' ');
            line.push_str(&clean(e.reason.as_str()));
        }
    }
    if !e.barcode.is_empty() {
        line.push_str("  ");
        line.push_str(&clean(&e.barcode));
    }
    line.push_str("  ");
    let source = clean(e.source.as_str());
    if e.reason == "unreadable" {
        // Nothing was looked up: no source to name.
    } else if e.source == "offline" {
        line.push_str(&paint(&source, YELLOW, color));
        line.push(' ');
    } else {
        line.push_str(&source);
        line.push(' ');
    }
    line.push_str(&format!("{} ms", e.latency_ms));
    if let Some(r) = &e.request {
        line.push_str("  req ");
        line.push_str(&clean(r));
    }
    if !e.id.is_empty() {
        line.push_str("  id ");
        line.push_str(&clean(&e.id));
    }
    line
}

/// One console line for a status change (no trailing newline).
pub fn format_status(status: AgentStatus, color: bool) -> String {
    let name = match status {
        AgentStatus::Ready => "ready",
        AgentStatus::Offline => "offline",
        AgentStatus::LowDisk => "low_disk (approvals stop until disk space is freed)",
        AgentStatus::Stopping => "stopping",
    };
    let text = format!("-- status: {name} --");
    match status {
        AgentStatus::Offline => paint(&text, YELLOW, color),
        AgentStatus::LowDisk => paint(&text, RED, color),
        _ => text,
    }
}

/// One console line for a void answer, times in UTC (no trailing newline).
pub fn format_void(e: &VoidEvent, color: bool) -> String {
    format_void_at(e, color, 0)
}

/// One console line for a void answer at the venue's offset (no trailing newline).
pub fn format_void_at(e: &VoidEvent, color: bool, offset_minutes: i32) -> String {
    let mut line = clock_part(&e.time, offset_minutes);
    line.push(' ');
    match e.outcome {
        VoidOutcome::Voided | VoidOutcome::AlreadyVoided => {
            line.push_str(&paint("VOID", YELLOW, color));
            line.push_str(&format!(" ${}", format_cents(e.reversed_cents)));
            if !e.items.is_empty() {
                line.push_str(" + ");
                line.push_str(&group_items(&e.items));
            }
            if e.outcome == VoidOutcome::AlreadyVoided {
                line.push_str(" (already voided)");
            }
        }
        _ => {
            line.push_str(&paint("VOID REFUSED", RED, color));
            let why = serde_json::to_value(e.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            line.push(' ');
            line.push_str(&why);
            if let Some(err) = &e.error {
                line.push_str(&format!(" ({})", clean(err)));
            }
        }
    }
    line.push_str("  decision ");
    line.push_str(&clean(&e.decision_id));
    if let Some(r) = &e.request_id {
        line.push_str("  req ");
        line.push_str(&clean(r));
    }
    line
}

/// Decision lines for people, over any writer.
#[derive(Debug)]
pub struct ConsoleSignal<W: Write + Send> {
    out: W,
    color: bool,
    offset_minutes: i32,
    /// The line saying which time is shown comes before the first line.
    noted: bool,
}

impl<W: Write + Send> ConsoleSignal<W> {
    /// Writes to `out`, with ANSI colour when `color` is true, times in UTC.
    pub fn new(out: W, color: bool) -> Self {
        ConsoleSignal {
            out,
            color,
            offset_minutes: 0,
            noted: false,
        }
    }

    /// Shows times at the venue's offset from UTC (`utc_offset_minutes`).
    pub fn with_utc_offset(mut self, minutes: i32) -> Self {
        self.offset_minutes = minutes;
        self
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, mut line: String) -> io::Result<()> {
        if !self.noted {
            self.noted = true;
            line = format!("{}\n{line}", format_time_note(self.offset_minutes));
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }
}

impl ConsoleSignal<io::Stdout> {
    /// Standard output, coloured when it is a terminal.
    pub fn stdout() -> Self {
        let out = io::stdout();
        let color = out.is_terminal();
        ConsoleSignal::new(out, color)
    }
}

impl<W: Write + Send> Signal for ConsoleSignal<W> {
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        let line = format_decision_at(event, self.color, self.offset_minutes);
        Ok(self.line(line)?)
    }

    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        let line = format_status(status, self.color);
        Ok(self.line(line)?)
    }

    fn void_result(&mut self, event: &VoidEvent) -> Result<(), SignalError> {
        let line = format_void_at(event, self.color, self.offset_minutes);
        Ok(self.line(line)?)
    }

    /// Answers every scan that did not come over the POS link.
    fn answers(&self, origin: &Origin) -> bool {
        !origin.is_pos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approve() -> DecisionEvent {
        DecisionEvent {
            id: "d-1".into(),
            time: "2026-11-27T18:00:00.123Z".into(),
            terminal: "stand-12".into(),
            barcode: "********0003".into(),
            decision: Verdict::Approve,
            reason: crate::decide::Reason::Approved,
            approved_cents: 1500,
            items: vec![
                "Hot Dog".into(),
                "Hot Dog".into(),
                "Pizza and a Coke".into(),
            ],
            source: crate::decide::Source::Live,
            latency_ms: 42,
            request: Some("r1".into()),
            venue: None,
        }
    }

    #[test]
    fn approve_line_shows_money_items_mask_source_latency() {
        assert_eq!(
            format_decision(&approve(), false),
            "18:00:00.123 APPROVE $15.00 + 2x Hot Dog, 1x Pizza and a Coke  ********0003  live 42 ms  req r1  id d-1"
        );
    }

    #[test]
    fn item_only_approvals_show_no_money() {
        let mut e = approve();
        e.approved_cents = 0;
        e.items = vec!["Pizza and a Coke".into()];
        e.request = None;
        assert_eq!(
            format_decision(&e, false),
            "18:00:00.123 APPROVE 1x Pizza and a Coke  ********0003  live 42 ms  id d-1"
        );
    }

    #[test]
    fn partial_approvals_say_so() {
        let mut e = approve();
        e.items.clear();
        e.reason = crate::decide::Reason::Partial;
        assert!(format_decision(&e, false).contains("APPROVE $15.00 (partial)"));
    }

    #[test]
    fn deny_line_shows_reason() {
        let mut e = approve();
        e.decision = Verdict::Deny;
        e.reason = crate::decide::Reason::UnknownTicket;
        e.approved_cents = 0;
        e.items.clear();
        e.barcode = String::new();
        e.request = None;
        e.source = crate::decide::Source::Offline;
        assert_eq!(
            format_decision(&e, false),
            "18:00:00.123 DENY unknown_ticket  offline 42 ms  id d-1"
        );
        let coloured = format_decision(&e, true);
        assert!(coloured.contains("\x1b[1;31mDENY\x1b[0m"));
        assert!(coloured.contains("\x1b[33moffline\x1b[0m"));
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!format_decision(&approve(), false).contains('\x1b'));
        assert!(format_decision(&approve(), true).contains("\x1b[1;32mAPPROVE\x1b[0m"));
        assert!(!format_status(AgentStatus::Offline, false).contains('\x1b'));
        assert!(format_status(AgentStatus::Offline, true).contains('\x1b'));
    }

    #[test]
    fn outside_text_cannot_inject_escapes() {
        let mut e = approve();
        e.items = vec!["Hot\x1b[2JDog".into()];
        e.request = Some("r\x1b1".into());
        let line = format_decision(&e, false);
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(line.contains("Hot?[2JDog"));
    }

    #[test]
    fn writes_one_line_per_decision_and_status() {
        let mut c = ConsoleSignal::new(Vec::new(), false);
        c.decision(&approve()).unwrap();
        c.status(AgentStatus::Offline).unwrap();
        c.void_result(&VoidEvent {
            decision_id: "d-1".into(),
            request_id: None,
            outcome: VoidOutcome::NotFound,
            reversed_cents: 0,
            items: vec![],
            error: None,
            time: "2026-11-27T18:00:05.000Z".into(),
            terminal: "stand-12".into(),
        })
        .unwrap();
        let text = String::from_utf8(c.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "-- times are UTC --");
        assert_eq!(lines[2], "-- status: offline --");
        assert_eq!(
            lines[3],
            "18:00:05.000 VOID REFUSED not_found  decision d-1"
        );
    }

    #[test]
    fn low_disk_status_says_what_stops_and_why() {
        assert_eq!(
            format_status(AgentStatus::LowDisk, false),
            "-- status: low_disk (approvals stop until disk space is freed) --"
        );
    }

    /// Issue 16.6: times were UTC with no marker. They are the venue's, and the first
    /// line says which offset.
    #[test]
    fn times_are_the_venues_and_the_first_line_says_which() {
        let mut c = ConsoleSignal::new(Vec::new(), false).with_utc_offset(-300);
        c.decision(&approve()).unwrap();
        let text = String::from_utf8(c.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-- times are venue time, UTC-05:00 --");
        assert!(lines[1].starts_with("13:00:00.123 APPROVE"), "{}", lines[1]);
        // Past midnight either way.
        assert_eq!(clock_part("2026-11-27T23:30:00.000Z", 90), "01:00:00.000");
        assert_eq!(clock_part("2026-11-27T00:15:00.000Z", -30), "23:45:00.000");
        assert_eq!(
            format_time_note(330),
            "-- times are venue time, UTC+05:30 --"
        );
        assert_eq!(clock_part("garbage", 60), "garbage");
    }

    /// Issue 16.6: unreadable input was labelled `live` (nothing was looked up), and
    /// the line had no decision id for a supervisor to void.
    #[test]
    fn unreadable_input_names_no_source_and_every_line_has_its_decision_id() {
        let mut e = approve();
        e.decision = Verdict::Deny;
        e.reason = crate::decide::Reason::Unreadable;
        e.barcode = String::new();
        e.items.clear();
        e.request = None;
        e.latency_ms = 1;
        e.id = "stand-7-000000000005".into();
        assert_eq!(
            format_decision(&e, false),
            "18:00:00.123 DENY unreadable  1 ms  id stand-7-000000000005"
        );
    }
}
