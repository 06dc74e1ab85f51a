//! The ATS envelope: the request body, and the response's `header` and `command1`
//! with their result codes.

use serde_json::{json, Map, Value};

use super::fields::{get_ci, int_field, shorten};
use crate::ats::error::{AtsError, Phase};

/// Envelope `header.ver`.
pub const HEADER_VER: u32 = 1;
/// Envelope `header.src_sys_type`.
pub const HEADER_SRC_SYS_TYPE: u32 = 2;
/// Envelope `header.archtics_version`.
pub const HEADER_ARCHTICS_VERSION: &str = "V999";

/// `sql_code` meaning "no rows matched".
pub const SQL_NO_ROWS: i64 = 100;
/// Text that starts the answer to a poll whose token the server forgot.
pub const NO_DATA_FOR_TOKEN: &str = "no data for token";

/// The request envelope as JSON text.
pub fn request_body(
    src_sys_name: &str,
    cmd: &str,
    reference: &str,
    uid: &str,
    dsn: &str,
    fields: &Map<String, Value>,
) -> String {
    let mut c1 = Map::new();
    c1.insert("cmd".into(), json!(cmd));
    c1.insert("ref".into(), json!(reference));
    c1.insert("uid".into(), json!(uid));
    c1.insert("dsn".into(), json!(dsn));
    for (k, v) in fields {
        c1.insert(k.clone(), v.clone());
    }
    let body = json!({
        "header": {
            "ver": HEADER_VER,
            "src_sys_type": HEADER_SRC_SYS_TYPE,
            "src_sys_name": src_sys_name,
            "archtics_version": HEADER_ARCHTICS_VERSION,
        },
        "command1": Value::Object(c1),
    });
    body.to_string()
}

/// A decoded response envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The whole body.
    pub body: Value,
}

impl Envelope {
    /// `header` (empty when absent).
    pub fn header(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.body
            .as_object()
            .and_then(|o| get_ci(o, "header"))
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// `command1` (checked present by [`parse_envelope`]).
    pub fn command1(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.body
            .as_object()
            .and_then(|o| get_ci(o, "command1"))
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }
}

fn envelope_error(detail: impl Into<String>) -> AtsError {
    AtsError::Transport {
        phase: Phase::Decode,
        detail: detail.into(),
    }
}

/// Parses a response body: JSON object with a `command1` object whose `ref`, when
/// echoed, is ours.
pub fn parse_envelope(bytes: &[u8], expected_ref: &str) -> Result<Envelope, AtsError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| envelope_error(format!("body is not json: {e}")))?;
    let Some(obj) = body.as_object() else {
        return Err(envelope_error("body is not a json object"));
    };
    let Some(c1) = get_ci(obj, "command1").and_then(Value::as_object) else {
        return Err(envelope_error("body has no command1 object"));
    };
    if let Some(r) = get_ci(c1, "ref") {
        let echoed = match r {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if !echoed.is_empty() && echoed != expected_ref {
            return Err(envelope_error("answer is for another call (ref mismatch)"));
        }
    }
    Ok(Envelope { body })
}

/// Maps `header.result` then `command1.result` to [`AtsError::Api`] (or
/// [`AtsError::NoDataForToken`]).
pub fn check_result(env: &Envelope) -> Result<(), AtsError> {
    for (part, map) in [("header", env.header()), ("command1", env.command1())] {
        let code = int_field(map, "result", part)?.unwrap_or(0);
        if code != 0 {
            let sql_code = int_field(map, "sql_code", part)?.unwrap_or(0);
            let message = error_message(map)
                .or_else(|| error_message(env.command1()))
                .unwrap_or_default();
            if is_no_data_for_token(&message) {
                return Err(AtsError::NoDataForToken { message });
            }
            return Err(AtsError::Api {
                code,
                sql_code,
                message,
            });
        }
    }
    Ok(())
}

/// `error_detail`, else `error_desc`, shortened.
fn error_message(map: &Map<String, Value>) -> Option<String> {
    ["error_detail", "error_desc", "error_message", "error"]
        .iter()
        .find_map(|k| match get_ci(map, k) {
            Some(Value::String(s)) if !s.is_empty() => Some(shorten(s, 512)),
            Some(Value::Null) | None => None,
            Some(other) => Some(shorten(&other.to_string(), 512)),
        })
}

/// True when a text is the server's "No data for token ..." answer.
pub fn is_no_data_for_token(text: &str) -> bool {
    text.trim_start()
        .get(..NO_DATA_FOR_TOKEN.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(NO_DATA_FOR_TOKEN))
}
