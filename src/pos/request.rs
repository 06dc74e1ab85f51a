//! Parsing POS request lines and writing the link's own reply lines (pure: no I/O).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::money::Cents;
use crate::redact::Secret;
use crate::scan::frame::strip_aim;
use crate::scan::UnreadableReason;

/// Longest request line, in bytes (the line reader's heapless capacity).
pub const MAX_LINE: usize = 4096;
/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest `decision_id`, in characters.
pub const MAX_DECISION_ID: usize = 128;
/// Longest `barcode` string accepted in a JSON scan request, in bytes.
pub const MAX_BARCODE_FIELD: usize = 256;
/// Largest `amount_cents` accepted ($100,000.00).
pub const MAX_AMOUNT_CENTS: Cents = 10_000_000;
/// Longest `token` accepted in an `auth` request, in bytes.
pub const MAX_TOKEN: usize = 256;

/// One request from the POS, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PosRequest {
    /// Decide on a barcode (the text as sent, trimmed, AIM identifier removed;
    /// classified when forwarded).
    Scan {
        /// The barcode text.
        barcode: String,
        /// Amount to redeem, cents; `None`: whatever the ticket holds.
        amount_cents: Option<Cents>,
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Reverse an earlier approval.
    Void {
        /// The decision's `id`.
        decision_id: String,
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Liveness check, answered by the link itself with `{"type":"pong"}`.
    Ping {
        /// The client's request id.
        request_id: Option<String>,
    },
    /// Presents the link's credential (`[pos] token`), answered by the link itself.
    Auth {
        /// The credential (never logged or echoed).
        token: Secret,
        /// The client's request id.
        request_id: Option<String>,
    },
}

/// Why a request line was refused. Messages are the `error` field of error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Not parseable JSON.
    InvalidJson,
    /// JSON, but not an object.
    NotObject,
    /// No `type` field.
    MissingType,
    /// `type` is not `scan`, `void` or `ping`.
    UnknownType,
    /// `request_id` is not a short printable string.
    BadRequestId,
    /// A required field is missing.
    Missing(&'static str),
    /// A field has the wrong JSON type or an unusable value.
    Invalid(&'static str),
    /// `amount_cents` is not a positive integer.
    BadAmount,
    /// `amount_cents` is above [`MAX_AMOUNT_CENTS`].
    AmountTooLarge,
    /// The line is longer than [`MAX_LINE`].
    TooLong,
    /// Control characters or invalid UTF-8 in the line.
    Unreadable(UnreadableReason),
    /// Too many requests waiting for answers.
    TooManyPending,
    /// The agent's queue is full.
    Busy,
    /// The agent is not taking requests any more.
    Stopped,
    /// The server already has its maximum number of clients.
    TooManyClients,
    /// The link has a token and this connection has not sent `auth` yet.
    AuthRequired,
    /// `auth` with the wrong token (the connection is closed).
    BadToken,
    /// `auth` on a link without a token.
    AuthNotConfigured,
    /// No `auth` within the line timeout (the connection is closed).
    AuthTimeout(Duration),
    /// A request line was not finished within the line timeout (the connection is
    /// closed).
    LineTimeout(Duration),
    /// This connection sent scans faster than its share.
    ScanRate(u32),
    /// Closed to make room for a new client.
    Evicted,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidJson => f.write_str("invalid json"),
            RequestError::NotObject => f.write_str("request must be a json object"),
            RequestError::MissingType => f.write_str("missing type"),
            RequestError::UnknownType => f.write_str("unknown type"),
            RequestError::BadRequestId => write!(
                f,
                "request_id must be a string of 1 to {MAX_REQUEST_ID} printable characters"
            ),
            RequestError::Missing(field) => write!(f, "missing {field}"),
            RequestError::Invalid(field) => write!(f, "invalid {field}"),
            RequestError::BadAmount => f.write_str("amount_cents must be a positive integer"),
            RequestError::AmountTooLarge => f.write_str("amount_cents too large"),
            RequestError::TooLong => write!(f, "request longer than {MAX_LINE} bytes"),
            RequestError::Unreadable(r) => write!(f, "unreadable request: {}", r.as_str()),
            RequestError::TooManyPending => f.write_str("too many pending requests"),
            RequestError::Busy => f.write_str("agent busy"),
            RequestError::Stopped => f.write_str("agent stopped"),
            RequestError::TooManyClients => f.write_str("too many clients"),
            RequestError::AuthRequired => f.write_str("authentication required: send auth first"),
            RequestError::BadToken => f.write_str("wrong token"),
            RequestError::AuthNotConfigured => f.write_str("this link has no token"),
            RequestError::AuthTimeout(t) => {
                write!(f, "no auth within {} ms: closing", t.as_millis())
            }
            RequestError::LineTimeout(t) => {
                write!(
                    f,
                    "request line not finished within {} ms: closing",
                    t.as_millis()
                )
            }
            RequestError::ScanRate(per_minute) => write!(
                f,
                "scan rate limit: this connection may send {per_minute} scans per minute"
            ),
            RequestError::Evicted => {
                f.write_str("closed to make room for a new client (this one was idle longest)")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// A refused request: the error, and the request id when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The request's id, when it had a valid one.
    pub request_id: Option<String>,
    /// What was wrong.
    pub error: RequestError,
}

impl Rejected {
    pub(super) fn new(request_id: Option<String>, error: RequestError) -> Self {
        Rejected { request_id, error }
    }
}

pub(super) fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Parses one request line (already framed: no line end, no control characters).
/// A line that does not start with `{`, `[` or `"` is a bare barcode scan.
pub fn parse_line(line: &str) -> Result<PosRequest, Rejected> {
    let t = line.trim();
    if !(t.starts_with('{') || t.starts_with('[') || t.starts_with('"')) {
        return Ok(PosRequest::Scan {
            barcode: t.to_string(),
            amount_cents: None,
            request_id: None,
        });
    }
    let value: Value =
        serde_json::from_str(t).map_err(|_| Rejected::new(None, RequestError::InvalidJson))?;
    let obj = match value {
        Value::Object(o) => o,
        _ => return Err(Rejected::new(None, RequestError::NotObject)),
    };
    parse_object(&obj)
}

pub(super) fn parse_object(obj: &Map<String, Value>) -> Result<PosRequest, Rejected> {
    let request_id = match obj.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if printable(s, MAX_REQUEST_ID) => Some(s.clone()),
        Some(_) => return Err(Rejected::new(None, RequestError::BadRequestId)),
    };
    let fail = |e: RequestError| Err(Rejected::new(request_id.clone(), e));
    let kind = match obj.get("type") {
        None | Some(Value::Null) => return fail(RequestError::MissingType),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return fail(RequestError::UnknownType),
    };
    match kind {
        "scan" => {
            let barcode = match obj.get("barcode") {
                None | Some(Value::Null) => return fail(RequestError::Missing("barcode")),
                Some(Value::String(s)) if s.len() <= MAX_BARCODE_FIELD => {
                    aim_stripped(s.trim()).trim().to_string()
                }
                Some(_) => return fail(RequestError::Invalid("barcode")),
            };
            let amount_cents = match obj.get("amount_cents") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(0) | None => return fail(RequestError::BadAmount),
                    Some(c) if c > MAX_AMOUNT_CENTS => return fail(RequestError::AmountTooLarge),
                    Some(c) => Some(c),
                },
                Some(_) => return fail(RequestError::BadAmount),
            };
            Ok(PosRequest::Scan {
                barcode,
                amount_cents,
                request_id,
            })
        }
        "void" => {
            let decision_id = match obj.get("decision_id") {
                None | Some(Value::Null) => return fail(RequestError::Missing("decision_id")),
                Some(Value::String(s)) if printable(s, MAX_DECISION_ID) => s.clone(),
                Some(_) => return fail(RequestError::Invalid("decision_id")),
            };
            Ok(PosRequest::Void {
                decision_id,
                request_id,
            })
        }
        "ping" => Ok(PosRequest::Ping { request_id }),
        "auth" => match obj.get("token") {
            None | Some(Value::Null) => fail(RequestError::Missing("token")),
            Some(Value::String(t)) if t.len() <= MAX_TOKEN => Ok(PosRequest::Auth {
                token: Secret::new(t.as_str()),
                request_id,
            }),
            Some(_) => fail(RequestError::Invalid("token")),
        },
        _ => fail(RequestError::UnknownType),
    }
}

pub(super) fn aim_stripped(s: &str) -> &str {
    let rest = strip_aim(s.as_bytes());
    // The identifier is three ASCII bytes, so the rest starts on a char boundary.
    s.get(s.len() - rest.len()..).unwrap_or(s)
}

/// `{"type":"error","request_id":...,"error":"..."}` (no trailing newline).
pub fn error_line(request_id: Option<&str>, error: &RequestError) -> String {
    serde_json::json!({
        "type": "error",
        "request_id": request_id,
        "error": error.to_string(),
    })
    .to_string()
}

/// `{"type":"auth_result","request_id":...,"ok":true}` (no trailing newline).
pub fn auth_line(request_id: Option<&str>) -> String {
    serde_json::json!({ "type": "auth_result", "request_id": request_id, "ok": true }).to_string()
}

/// Compares two secrets in time that depends on their lengths only.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `{"type":"pong","request_id":...}` (no trailing newline), before any status.
pub fn pong_line(request_id: Option<&str>) -> String {
    pong_line_with(request_id, None)
}

/// `{"type":"pong","request_id":...,"status":"ready"}` (no trailing newline): the
/// agent's current status, left out before the agent has signalled one.
pub fn pong_line_with(
    request_id: Option<&str>,
    status: Option<crate::signal::AgentStatus>,
) -> String {
    let mut v = serde_json::json!({ "type": "pong", "request_id": request_id });
    if let Some(s) = status {
        v["status"] = serde_json::to_value(s).unwrap_or_default();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {

    use super::*;

    fn rejected(line: &str) -> Rejected {
        match parse_line(line) {
            Err(r) => r,
            Ok(req) => panic!("{line} accepted as {req:?}"),
        }
    }

    #[test]
    fn parses_scan_requests() {
        assert_eq!(
            parse_line(
                r#"{"type":"scan","barcode":"100000000001","amount_cents":500,"request_id":"r1"}"#
            ),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: Some(500),
                request_id: Some("r1".into()),
            })
        );
        assert_eq!(
            parse_line(r#"{"type":"scan","barcode":"100000000001","amount_cents":null}"#),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: None,
                request_id: None,
            })
        );
    }

    #[test]
    fn json_barcodes_lose_their_aim_identifier() {
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":" ]C1100000000001 "}"#),
            Ok(PosRequest::Scan { barcode, .. }) if barcode == "100000000001"
        ));
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":"]Cé1"}"#),
            Ok(PosRequest::Scan { barcode, .. }) if barcode == "]Cé1"
        ));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(matches!(
            parse_line(r#"{"type":"scan","barcode":"100000000001","lane":3,"extra":{"a":[1]}}"#),
            Ok(PosRequest::Scan { .. })
        ));
    }

    #[test]
    fn parses_void_and_ping() {
        assert_eq!(
            parse_line(r#"{"type":"void","decision_id":"d-1","request_id":"r2"}"#),
            Ok(PosRequest::Void {
                decision_id: "d-1".into(),
                request_id: Some("r2".into()),
            })
        );
        assert_eq!(
            parse_line(r#"{"type":"ping"}"#),
            Ok(PosRequest::Ping { request_id: None })
        );
    }

    #[test]
    fn a_plain_line_is_a_bare_scan() {
        assert_eq!(
            parse_line("100000000001"),
            Ok(PosRequest::Scan {
                barcode: "100000000001".into(),
                amount_cents: None,
                request_id: None,
            })
        );
        assert!(matches!(parse_line("hello"), Ok(PosRequest::Scan { .. })));
    }

    #[test]
    fn refuses_broken_json_and_non_objects() {
        assert_eq!(rejected("{").error, RequestError::InvalidJson);
        assert_eq!(
            rejected(r#"{"type":"scan",}"#).error,
            RequestError::InvalidJson
        );
        assert_eq!(rejected("[1,2]").error, RequestError::NotObject);
        assert_eq!(rejected(r#""100000000001""#).error, RequestError::NotObject);
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(rejected(&deep).error, RequestError::InvalidJson);
    }

    #[test]
    fn refuses_hostile_amounts() {
        let cases = [
            ("-500", RequestError::BadAmount),
            ("0", RequestError::BadAmount),
            ("5.5", RequestError::BadAmount),
            ("5.0", RequestError::BadAmount),
            ("1e3", RequestError::BadAmount),
            ("\"500\"", RequestError::BadAmount),
            ("true", RequestError::BadAmount),
            ("[500]", RequestError::BadAmount),
            ("{}", RequestError::BadAmount),
            ("18446744073709551615", RequestError::AmountTooLarge),
            ("18446744073709551616", RequestError::BadAmount),
            ("99999999999999999999999999999999", RequestError::BadAmount),
            ("10000001", RequestError::AmountTooLarge),
        ];
        for (amount, want) in cases {
            let line = format!(
                r#"{{"type":"scan","barcode":"100000000001","amount_cents":{amount},"request_id":"r9"}}"#
            );
            let r = rejected(&line);
            assert_eq!(r.error, want, "{amount}");
            assert_eq!(r.request_id.as_deref(), Some("r9"), "{amount}");
        }
        assert_eq!(
            rejected(r#"{"type":"scan","barcode":"1","amount_cents":1e400}"#).error,
            RequestError::InvalidJson
        );
    }

    #[test]
    fn refuses_wrong_types_and_missing_fields() {
        assert_eq!(
            rejected(r#"{"barcode":"1"}"#).error,
            RequestError::MissingType
        );
        assert_eq!(rejected(r#"{"type":7}"#).error, RequestError::UnknownType);
        assert_eq!(
            rejected(r#"{"type":"refund"}"#).error,
            RequestError::UnknownType
        );
        assert_eq!(
            rejected(r#"{"type":"scan"}"#).error,
            RequestError::Missing("barcode")
        );
        assert_eq!(
            rejected(r#"{"type":"scan","barcode":100000000001}"#).error,
            RequestError::Invalid("barcode")
        );
        let long = "1".repeat(MAX_BARCODE_FIELD + 1);
        assert_eq!(
            rejected(&format!(r#"{{"type":"scan","barcode":"{long}"}}"#)).error,
            RequestError::Invalid("barcode")
        );
        assert_eq!(
            rejected(r#"{"type":"void"}"#).error,
            RequestError::Missing("decision_id")
        );
        assert_eq!(
            rejected(r#"{"type":"void","decision_id":""}"#).error,
            RequestError::Invalid("decision_id")
        );
        assert_eq!(
            rejected(r#"{"type":"void","decision_id":["d"]}"#).error,
            RequestError::Invalid("decision_id")
        );
    }

    #[test]
    fn bad_request_ids_are_refused_and_not_echoed() {
        for id in ["7", "\"\"", "{}", "\"a\\u0007b\""] {
            let r = rejected(&format!(r#"{{"type":"ping","request_id":{id}}}"#));
            assert_eq!(r.error, RequestError::BadRequestId, "{id}");
            assert_eq!(r.request_id, None);
        }
        let long = "r".repeat(MAX_REQUEST_ID + 1);
        let r = rejected(&format!(r#"{{"type":"ping","request_id":"{long}"}}"#));
        assert_eq!(r.error, RequestError::BadRequestId);
    }

    #[test]
    fn error_lines_echo_the_request_id() {
        let v: Value =
            serde_json::from_str(&error_line(Some("r1"), &RequestError::BadAmount)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["error"], "amount_cents must be a positive integer");
        let v: Value = serde_json::from_str(&error_line(None, &RequestError::InvalidJson)).unwrap();
        assert_eq!(v["request_id"], Value::Null);
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn auth_requests_parse_and_their_token_is_not_printed() {
        let r = parse_line(r#"{"type":"auth","token":"s3cret-s3cret-s3cret","request_id":"a"}"#)
            .unwrap();
        assert!(format!("{r:?}").contains("Secret(***)"), "{r:?}");
        assert!(!format!("{r:?}").contains("s3cret"));
        assert_eq!(
            rejected(r#"{"type":"auth"}"#).error,
            RequestError::Missing("token")
        );
        assert_eq!(
            rejected(r#"{"type":"auth","token":5}"#).error,
            RequestError::Invalid("token")
        );
    }
}
