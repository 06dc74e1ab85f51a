//! Every field mapping of Presence `ticket/validate`, in one file
//! (docs/ats-wire.md section 7).
//!
//! Request: `POST {base}/presence/v1/ticket/validate?apikey=...` with a JSON body of
//! `token`, `deviceOs`, `venueId`, `gateName`, `gateId`, `deviceId`, `scanTime` (Unix
//! ms). Answer: `result.status` (and `result.message`), `message.tickets[]` with `place`
//! (`Section:Row:Seat`) and `eventId`.
//!
//! Modeled (no public page says): the `token` sent is the whole rotating payload
//! (`token::eventTOTP::customerTOTP::timestamp`), so Presence can check the TOTPs, and
//! `deviceOs` is `Printed` because the concession scanner reads the PDF417 optically.

use std::fmt;

use serde_json::{json, Value};

use super::error::PresenceError;

/// The route, under the configured base URL.
pub const VALIDATE_PATH: &str = "/presence/v1/ticket/validate";

/// Presence's verdict on a token (`result.status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The ticket is valid now.
    Okay,
    /// The ticket was scanned out.
    Exit,
    /// An internal (staff) scan.
    InternalScan,
    /// Presence knows no such ticket.
    NotFound,
    /// Presence refused the request as malformed.
    BadRequest,
    /// The ticket was already scanned in.
    AlreadyEntered,
    /// The ticket is not valid (void, replaced, forged payload).
    InvalidTicket,
    /// A start-time restriction applies.
    StartRestriction,
    /// An end-time restriction applies.
    EndRestriction,
    /// Not valid in this section.
    SectionRestriction,
    /// Not valid for this event.
    EventRestriction,
    /// Before the ticket's valid time.
    TooEarly,
    /// After the ticket's valid time.
    TooLate,
    /// A status this version does not know (kept, shortened, for the log).
    Other(String),
}

impl Status {
    /// Every status the wire page lists, for tables and tests.
    pub const KNOWN: [Status; 13] = [
        Status::Okay,
        Status::Exit,
        Status::InternalScan,
        Status::NotFound,
        Status::BadRequest,
        Status::AlreadyEntered,
        Status::InvalidTicket,
        Status::StartRestriction,
        Status::EndRestriction,
        Status::SectionRestriction,
        Status::EventRestriction,
        Status::TooEarly,
        Status::TooLate,
    ];

    /// Reads `result.status` (exact, upper case as Presence sends it).
    pub fn parse(s: &str) -> Status {
        match s {
            "OKAY" => Status::Okay,
            "EXIT" => Status::Exit,
            "INTERNAL_SCAN" => Status::InternalScan,
            "NOT_FOUND" => Status::NotFound,
            "BAD_REQUEST" => Status::BadRequest,
            "ALREADY_ENTERED" => Status::AlreadyEntered,
            "INVALID_TICKET" => Status::InvalidTicket,
            "START_RESTRICTION" => Status::StartRestriction,
            "END_RESTRICTION" => Status::EndRestriction,
            "SECTION_RESTRICTION" => Status::SectionRestriction,
            "EVENT_RESTRICTION" => Status::EventRestriction,
            "TOO_EARLY" => Status::TooEarly,
            "TOO_LATE" => Status::TooLate,
            // Kept for the log: printable ASCII only, shortened (a hostile server's text).
            other => Status::Other(
                other
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(40)
                    .collect(),
            ),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Okay => "OKAY",
            Status::Exit => "EXIT",
            Status::InternalScan => "INTERNAL_SCAN",
            Status::NotFound => "NOT_FOUND",
            Status::BadRequest => "BAD_REQUEST",
            Status::AlreadyEntered => "ALREADY_ENTERED",
            Status::InvalidTicket => "INVALID_TICKET",
            Status::StartRestriction => "START_RESTRICTION",
            Status::EndRestriction => "END_RESTRICTION",
            Status::SectionRestriction => "SECTION_RESTRICTION",
            Status::EventRestriction => "EVENT_RESTRICTION",
            Status::TooEarly => "TOO_EARLY",
            Status::TooLate => "TOO_LATE",
            Status::Other(s) => s,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest section, row or seat name accepted in a `place`.
pub const MAX_PLACE_PART: usize = 32;

/// A seat: `place` split at `:` into section, row and seat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// Section name.
    pub section: String,
    /// Row name.
    pub row: String,
    /// Seat number.
    pub seat: String,
}

impl Place {
    /// Reads `Section:Row:Seat` (three non-empty parts, trimmed, each at most
    /// [`MAX_PLACE_PART`] characters and without control characters). `None` otherwise.
    pub fn parse(s: &str) -> Option<Place> {
        let mut parts = s.split(':').map(str::trim);
        let (section, row, seat) = (parts.next()?, parts.next()?, parts.next()?);
        let bad = |p: &str| {
            p.is_empty() || p.chars().count() > MAX_PLACE_PART || p.chars().any(char::is_control)
        };
        if parts.next().is_some() || bad(section) || bad(row) || bad(seat) {
            return None;
        }
        Some(Place {
            section: section.to_string(),
            row: row.to_string(),
            seat: seat.to_string(),
        })
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.section, self.row, self.seat)
    }
}

/// One ticket of an answer (`message.tickets[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The seat, when `place` was readable.
    pub place: Option<Place>,
    /// Presence's event id (`eventId`).
    pub event_id: String,
}

/// What Presence answered about one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// `result.status`.
    pub status: Status,
    /// `message.tickets[]` (may be empty, e.g. for `NOT_FOUND`).
    pub tickets: Vec<TicketRef>,
}

/// The request's device fields (from `[presence]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `venueId`.
    pub venue_id: String,
    /// `gateName`.
    pub gate_name: String,
    /// `gateId`.
    pub gate_id: u64,
    /// `deviceId`.
    pub device_id: u64,
}

/// The JSON body of one `ticket/validate`. `token` is the whole scanned payload.
pub fn validate_body(token: &str, device: &Device, scan_time_ms: u64) -> String {
    json!({
        "token": token,
        "deviceOs": "Printed",
        "venueId": device.venue_id,
        "gateName": device.gate_name,
        "gateId": device.gate_id,
        "deviceId": device.device_id,
        "scanTime": scan_time_ms,
    })
    .to_string()
}

/// Reads a 200 answer. A missing `result.status` is a decode error; tickets whose
/// `place` cannot be read are kept with `place: None` (the resolution denies them).
pub fn parse_answer(body: &[u8]) -> Result<Validation, PresenceError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PresenceError::Decode(format!("not JSON: {e}")))?;
    let status = v
        .pointer("/result/status")
        .and_then(Value::as_str)
        .ok_or_else(|| PresenceError::Decode("no result.status".into()))?;
    let tickets = match v.pointer("/message/tickets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(rows)) => rows.iter().map(ticket_ref).collect(),
        Some(_) => {
            return Err(PresenceError::Decode(
                "message.tickets is not a list".into(),
            ))
        }
    };
    Ok(Validation {
        status: Status::parse(status),
        tickets,
    })
}

fn ticket_ref(row: &Value) -> TicketRef {
    let text = |k: &str| match row.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    TicketRef {
        place: Place::parse(&text("place")),
        event_id: text("eventId"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_answer() {
        let body = br#"{"result":{"status":"OKAY","message":"Okay"},"message":{"tickets":[{"place":"PIT1:3:4","eventId":"3F005062B2B4E313"}]}}"#;
        let v = parse_answer(body).unwrap();
        assert_eq!(v.status, Status::Okay);
        assert_eq!(v.tickets.len(), 1);
        assert_eq!(v.tickets[0].event_id, "3F005062B2B4E313");
        assert_eq!(v.tickets[0].place, Place::parse("PIT1:3:4"));
        assert_eq!(v.tickets[0].place.as_ref().unwrap().to_string(), "PIT1:3:4");
    }

    #[test]
    fn every_listed_status_round_trips_and_others_are_kept() {
        for s in Status::KNOWN {
            assert_eq!(Status::parse(s.as_str()), s);
        }
        assert_eq!(Status::parse("FUTURE"), Status::Other("FUTURE".into()));
        assert_eq!(
            Status::parse("BAD\n[ERROR] forged"),
            Status::Other("BAD[ERROR]forged".into())
        );
    }

    #[test]
    fn malformed_answers_are_decode_errors_and_bad_places_are_none() {
        assert!(matches!(
            parse_answer(b"<html>"),
            Err(PresenceError::Decode(_))
        ));
        assert!(matches!(parse_answer(b"{}"), Err(PresenceError::Decode(_))));
        let v = parse_answer(br#"{"result":{"status":"OKAY"},"message":{"tickets":[{"place":"101:A","eventId":"E"}]}}"#).unwrap();
        assert_eq!(v.tickets[0].place, None);
        let long = format!("{}:A:1", "9".repeat(33));
        for bad in [
            "",
            "a:b",
            "a:b:c:d",
            "a::c",
            " : : ",
            "10\n1:A:1",
            long.as_str(),
        ] {
            assert_eq!(Place::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_body_carries_the_device_fields() {
        let d = Device {
            venue_id: "KovZ".into(),
            gate_name: "Stand 12".into(),
            gate_id: 7,
            device_id: 42,
        };
        let b: Value = serde_json::from_str(&validate_body("tok::1::2::3", &d, 99)).unwrap();
        assert_eq!(b["token"], "tok::1::2::3");
        assert_eq!(b["deviceOs"], "Printed");
        assert_eq!(b["gateId"], 7);
        assert_eq!(b["deviceId"], 42);
        assert_eq!(b["scanTime"], 99);
        assert_eq!(b["venueId"], "KovZ");
    }
}
