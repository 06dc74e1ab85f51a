//! `event_search` (public command; the agent uses it to find today's events to prefetch).

use serde_json::{Map, Value};

use super::fields::{get_ci, Fields, MAX_ROWS_PER_ANSWER, MAX_TEXT};
use crate::ats::error::AtsError;

/// `event_search`.
pub const CMD_EVENT_SEARCH: &str = "event_search";
/// `event_search`: no events in the range.
pub const EVENT_SEARCH_NONE: i64 = 5212;

/// One event of an `event_search` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// Archtics event name (`EVENT01`).
    pub event_name: String,
    /// `YYYY-MM-DD`.
    pub event_date: Option<String>,
    /// As ATS sends it.
    pub event_time: Option<String>,
}

/// `event_search` fields for a date range (`YYYY-MM-DD`).
pub fn event_search_fields(start_date: &str, end_date: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("check_availability".into(), Value::from("N"));
    m.insert("start_date".into(), Value::from(start_date));
    m.insert("end_date".into(), Value::from(end_date));
    m
}

/// Decodes `command1.events` of an `event_search` answer.
pub fn decode_events(c1: &Map<String, Value>) -> Result<Vec<EventSummary>, AtsError> {
    let rows = match get_ci(c1, "events") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(AtsError::decode("command1.events", "expected an array")),
    };
    if rows.len() > MAX_ROWS_PER_ANSWER {
        return Err(AtsError::decode("command1.events", "too many rows"));
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let ctx = format!("command1.events[{i}]");
            let map = row
                .as_object()
                .ok_or_else(|| AtsError::decode(ctx.clone(), "expected an object"))?;
            let mut f = Fields::new(map, ctx);
            let event_name = f
                .text("event_name", MAX_TEXT)?
                .ok_or_else(|| AtsError::decode(f.field("event_name"), "missing"))?;
            Ok(EventSummary {
                event_name,
                event_date: f.text("event_date", MAX_TEXT)?,
                event_time: f.text("event_time", MAX_TEXT)?,
            })
        })
        .collect()
}
