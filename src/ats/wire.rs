//! Every wire mapping of the ATS envelope and of the modeled commands, in one place.
//!
//! `verify_barcode` and `get_av_barcodes` are not publicly documented (see
//! `spec/ats-wire.md` section 5): an integrator holding the partner documentation
//! adjusts field names, codes and quirks here and nowhere else.
//!
//! Decoding is lenient about form and strict about meaning: numbers may arrive as
//! strings and the reverse, keys are matched case-insensitively (`count`/`Count`),
//! unknown fields are kept (`extra`), but negative or malformed amounts, wrong types
//! and absurd lengths are a typed [`AtsError::Decode`], never a panic and never value.

use serde_json::{json, Map, Value};

use crate::money::{parse_cents, Cents, MoneyError};
use crate::ticket::{TicketInfo, TicketStatus, ValueKind, ValueLine};

use super::error::{AtsError, Phase};

/// Envelope `header.ver`.
pub const HEADER_VER: u32 = 1;
/// Envelope `header.src_sys_type`.
pub const HEADER_SRC_SYS_TYPE: u32 = 2;
/// Envelope `header.archtics_version`.
pub const HEADER_ARCHTICS_VERSION: &str = "V999";

/// `ping`.
pub const CMD_PING: &str = "ping";
/// `verify_barcode` (modeled).
pub const CMD_VERIFY_BARCODE: &str = "verify_barcode";
/// `get_av_barcodes` (modeled).
pub const CMD_GET_AV_BARCODES: &str = "get_av_barcodes";
/// `ats_ext_test_polling`: answers through a 202 cycle.
pub const CMD_TEST_POLLING: &str = "ats_ext_test_polling";

/// `sql_code` meaning "no rows matched".
pub const SQL_NO_ROWS: i64 = 100;
/// `verify_barcode`: barcode not found.
pub const VERIFY_NOT_FOUND: i64 = 5301;
/// `get_av_barcodes`: barcode not found.
pub const AV_NOT_FOUND: i64 = 5311;
/// `get_av_barcodes`: event not found.
pub const AV_EVENT_NOT_FOUND: i64 = 5313;
/// Text that starts the answer to a poll whose token the server forgot.
pub const NO_DATA_FOR_TOKEN: &str = "no data for token";

/// Longest text field accepted (descriptions, names).
pub const MAX_TEXT: usize = 256;
/// Longest barcode accepted (Archtics stores char(20)).
pub const MAX_BARCODE: usize = 64;
/// Largest money amount accepted on one value line (1,000,000.00).
pub const MAX_MONEY_CENTS: Cents = 100_000_000;
/// Largest item count accepted on one value line.
pub const MAX_ITEM_UNITS: u64 = 10_000;
/// Most rows accepted in one `get_av_barcodes` answer.
pub const MAX_ROWS_PER_ANSWER: usize = 100_000;

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

/// `verify_barcode` input fields.
pub fn verify_fields(barcode: &str, event_name: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("barcode".into(), json!(barcode));
    if let Some(e) = event_name {
        m.insert("event_name".into(), json!(e));
    }
    m
}

/// `get_av_barcodes` input fields for one barcode.
pub fn av_barcode_fields(barcode: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("barcode".into(), json!(barcode));
    m
}

/// `get_av_barcodes` input fields for one chunk of an event.
pub fn av_event_fields(event_name: &str, prev_barcode: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event_name".into(), json!(event_name));
    if let Some(p) = prev_barcode {
        m.insert("prev_barcode".into(), json!(p));
    }
    m
}

/// True when a non-zero `result` means "no such barcode" (the lookup commands answer
/// an unknown barcode with their not-found code or with `sql_code` 100).
pub fn is_not_found(code: i64, sql_code: i64) -> bool {
    code == VERIFY_NOT_FOUND || code == AV_NOT_FOUND || sql_code == SQL_NO_ROWS
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

/// At most `max` characters of `s`.
///
/// Control characters (CR, LF, ESC, C1) become `?`: server text reaches logs and
/// terminals, where they could forge log lines or drive the terminal.
pub fn shorten(s: &str, max: usize) -> String {
    let clean = |t: &str| -> String {
        t.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", clean(&s[..i])),
        None => clean(s),
    }
}

/// Looks a key up exactly, then ignoring ASCII case.
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn int_field(map: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<i64>, AtsError> {
    let field = || format!("{ctx}.{key}");
    match get_ci(map, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
            _ => Err(AtsError::decode(field(), "not an integer")),
        },
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            AtsError::decode(field(), format!("not an integer: {:?}", shorten(s, 32)))
        }),
        Some(_) => Err(AtsError::decode(field(), "expected an integer")),
    }
}

/// Reads named fields of one JSON object leniently and keeps what it did not read.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    ctx: String,
    used: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>, ctx: impl Into<String>) -> Self {
        Fields {
            map,
            ctx: ctx.into(),
            used: Vec::new(),
        }
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.ctx)
    }

    fn raw(&mut self, key: &str) -> Option<&'a Value> {
        let found = self
            .map
            .get_key_value(key)
            .or_else(|| self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)));
        match found {
            Some((k, v)) => {
                self.used.push(k.clone());
                if v.is_null() {
                    None
                } else {
                    Some(v)
                }
            }
            None => None,
        }
    }

    /// Text: a string, or a number written out. Empty text counts as absent.
    fn text(&mut self, key: &str, max: usize) -> Result<Option<String>, AtsError> {
        let s = match self.raw(key) {
            None => return Ok(None),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(AtsError::decode(self.field(key), "expected text")),
        };
        if s.chars().count() > max {
            return Err(AtsError::decode(
                self.field(key),
                format!("longer than {max} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(AtsError::decode(self.field(key), "control characters"));
        }
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    fn required_text(&mut self, key: &str, max: usize) -> Result<String, AtsError> {
        self.text(key, max)?
            .ok_or_else(|| AtsError::decode(self.field(key), "missing"))
    }

    /// A non-negative integer: a number, or a string of digits.
    fn unsigned(&mut self, key: &str) -> Result<Option<u64>, AtsError> {
        let err = |f: String, d: &str| AtsError::decode(f, d.to_string());
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => Ok(Some(u)),
                (None, Some(f)) if f < 0.0 => Err(err(self.field(key), "negative")),
                (None, Some(f)) if f.fract() == 0.0 && f < 1e15 => Ok(Some(f as u64)),
                _ => Err(err(self.field(key), "not a whole number")),
            },
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    Ok(None)
                } else if t.starts_with('-') {
                    Err(err(self.field(key), "negative"))
                } else if t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    Err(err(self.field(key), "not a whole number"))
                } else {
                    t.parse::<u64>()
                        .map(Some)
                        .map_err(|_| err(self.field(key), "too large"))
                }
            }
            Some(_) => Err(err(self.field(key), "expected a number")),
        }
    }

    /// An amount in cents: a decimal string ("20.00") or a number (20, 20.5).
    fn cents(&mut self, key: &str) -> Result<Cents, AtsError> {
        let text = match self.raw(key) {
            None => return Err(AtsError::decode(self.field(key), "missing")),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(AtsError::decode(self.field(key), "expected an amount")),
        };
        if text.len() > 32 {
            return Err(AtsError::decode(self.field(key), "amount too long"));
        }
        parse_cents(&text).map_err(|e| {
            let why = match e {
                MoneyError::Negative => "negative amount".to_string(),
                other => other.to_string(),
            };
            AtsError::decode(self.field(key), why)
        })
    }

    /// `Y`/`N`, `yes`/`no`, `true`/`false`.
    fn flag(&mut self, key: &str) -> Result<Option<bool>, AtsError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_uppercase().as_str() {
                "Y" | "YES" | "TRUE" | "1" => Ok(Some(true)),
                "N" | "NO" | "FALSE" | "0" | "" => Ok(Some(false)),
                _ => Err(AtsError::decode(self.field(key), "expected Y or N")),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_u64() != Some(0))),
            Some(_) => Err(AtsError::decode(self.field(key), "expected Y or N")),
        }
    }

    /// The fields not read, kept for whoever needs them.
    fn rest(&self) -> Map<String, Value> {
        self.map
            .iter()
            .filter(|(k, _)| !self.used.iter().any(|u| u == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The answer to `verify_barcode`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyAnswer {
    /// The ticket, in the domain model.
    pub info: TicketInfo,
    /// Every `command1` field this mapping does not read (and the envelope fields).
    pub extra: Map<String, Value>,
}

/// Decodes a successful `verify_barcode` `command1`. `requested` fills a missing
/// `barcode`.
pub fn decode_verify(c1: &Map<String, Value>, requested: &str) -> Result<VerifyAnswer, AtsError> {
    let mut f = Fields::new(c1, "command1");
    let barcode = f
        .text("barcode", MAX_BARCODE)?
        .unwrap_or_else(|| requested.to_string());
    let event_name = f.required_text("event_name", MAX_TEXT)?;
    let event_date = f.text("event_date", MAX_TEXT)?;
    let event_time = f.text("event_time", MAX_TEXT)?;
    let acct_id = f.unsigned("acct_id")?;
    let section_name = f.text("section_name", MAX_TEXT)?;
    let row_name = f.text("row_name", MAX_TEXT)?;
    let seat_num = f.text("seat_num", MAX_TEXT)?;
    let price_code = f.text("price_code", MAX_TEXT)?;
    let status = ticket_status(&f.required_text("ticket_status", MAX_TEXT)?);
    Ok(VerifyAnswer {
        info: TicketInfo {
            barcode,
            event_name,
            event_date,
            event_time,
            acct_id,
            section_name,
            row_name,
            seat_num,
            price_code,
            status,
        },
        extra: f.rest(),
    })
}

/// `ticket_status` text to the domain status.
pub fn ticket_status(s: &str) -> TicketStatus {
    match s.to_ascii_uppercase().as_str() {
        "ACTIVE" => TicketStatus::Active,
        "VOID" | "VOIDED" => TicketStatus::Void,
        "REISSUED" => TicketStatus::Reissued,
        "RETURNED" => TicketStatus::Returned,
        _ => TicketStatus::Other(s.to_string()),
    }
}

/// One `get_av_barcodes` row.
#[derive(Debug, Clone, PartialEq)]
pub struct AvRow {
    /// `barcode` (absent: the barcode asked about).
    pub barcode: Option<String>,
    /// `event_name`.
    pub event_name: Option<String>,
    /// `acct_id`.
    pub acct_id: Option<u64>,
    /// The value line in the domain model.
    pub line: ValueLine,
    /// Fields this mapping does not read.
    pub extra: Map<String, Value>,
}

/// One `get_av_barcodes` answer (a chunk, for event listings).
#[derive(Debug, Clone, PartialEq)]
pub struct AvChunk {
    /// The rows.
    pub rows: Vec<AvRow>,
    /// `count` / `Count`, if sent.
    pub count: Option<u64>,
    /// `more_data`, if sent.
    pub more_data: Option<bool>,
    /// Other `command1` fields.
    pub extra: Map<String, Value>,
}

/// Decodes a successful `get_av_barcodes` `command1`.
pub fn decode_av_chunk(c1: &Map<String, Value>) -> Result<AvChunk, AtsError> {
    let mut f = Fields::new(c1, "command1");
    let count = f.unsigned("count")?;
    let more_data = f.flag("more_data")?;
    let rows = match f.raw("av_barcodes") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            if a.len() > MAX_ROWS_PER_ANSWER {
                return Err(AtsError::decode("command1.av_barcodes", "too many rows"));
            }
            a.iter()
                .enumerate()
                .map(|(i, row)| decode_av_row(row, i))
                .collect::<Result<Vec<_>, _>>()?
        }
        // A single row sent as an object rather than a list.
        Some(obj @ Value::Object(_)) => vec![decode_av_row(obj, 0)?],
        Some(_) => return Err(AtsError::decode("command1.av_barcodes", "expected a list")),
    };
    Ok(AvChunk {
        rows,
        count,
        more_data,
        extra: f.rest(),
    })
}

fn decode_av_row(row: &Value, i: usize) -> Result<AvRow, AtsError> {
    let ctx = format!("av_barcodes[{i}]");
    let Some(map) = row.as_object() else {
        return Err(AtsError::decode(ctx, "expected an object"));
    };
    let mut f = Fields::new(map, ctx.clone());
    let barcode = f.text("barcode", MAX_BARCODE)?;
    let event_name = f.text("event_name", MAX_TEXT)?;
    let acct_id = f.unsigned("acct_id")?;
    let av_id = f.required_text("av_id", MAX_TEXT)?;
    let kind = match f
        .required_text("av_type", 16)?
        .to_ascii_uppercase()
        .as_str()
    {
        "M" => ValueKind::Money,
        "N" => ValueKind::Item,
        other => {
            return Err(AtsError::decode(
                format!("{ctx}.av_type"),
                format!("unknown value type {other:?}"),
            ))
        }
    };
    let description = f.text("description", MAX_TEXT)?.unwrap_or_default();
    let loaded = amount(&mut f, "amount", kind, &ctx)?;
    let balance = amount(&mut f, "balance", kind, &ctx)?;
    let valid_from = f.text("valid_from", MAX_TEXT)?;
    let valid_until = f.text("valid_until", MAX_TEXT)?;
    Ok(AvRow {
        barcode,
        event_name,
        acct_id,
        line: ValueLine {
            av_id,
            kind,
            description,
            loaded,
            balance,
            valid_from,
            valid_until,
        },
        extra: f.rest(),
    })
}

/// Money rows: cents. Item rows: whole units ("1.00" = one unit).
fn amount(f: &mut Fields<'_>, key: &str, kind: ValueKind, ctx: &str) -> Result<Cents, AtsError> {
    let cents = f.cents(key)?;
    let field = || format!("{ctx}.{key}");
    match kind {
        ValueKind::Money if cents > MAX_MONEY_CENTS => {
            Err(AtsError::decode(field(), "implausibly large amount"))
        }
        ValueKind::Money => Ok(cents),
        ValueKind::Item if cents % 100 != 0 => {
            Err(AtsError::decode(field(), "item count is not whole"))
        }
        ValueKind::Item if cents / 100 > MAX_ITEM_UNITS => {
            Err(AtsError::decode(field(), "implausibly many items"))
        }
        ValueKind::Item => Ok(cents / 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn shortened_server_text_carries_no_control_characters() {
        assert_eq!(
            shorten("bad\r\nINFO forged\u{1b}[2J", 64),
            "bad??INFO forged?[2J"
        );
        assert_eq!(shorten("abcdef", 3), "abc...");
    }

    #[test]
    fn request_envelope_has_header_and_command1() {
        let mut f = Map::new();
        f.insert("barcode".into(), json!("100000000001"));
        let body: Value = serde_json::from_str(&request_body(
            "pos",
            "verify_barcode",
            "r1",
            "u",
            "apigee",
            &f,
        ))
        .unwrap();
        assert_eq!(
            body["header"],
            json!({"ver":1,"src_sys_type":2,"src_sys_name":"pos","archtics_version":"V999"})
        );
        assert_eq!(body["command1"]["cmd"], "verify_barcode");
        assert_eq!(body["command1"]["ref"], "r1");
        assert_eq!(body["command1"]["uid"], "u");
        assert_eq!(body["command1"]["dsn"], "apigee");
        assert_eq!(body["command1"]["barcode"], "100000000001");
    }

    #[test]
    fn envelope_checks_ref_and_results() {
        let ok = br#"{"header":{"result":"0"},"command1":{"ref":"r1","result":0}}"#;
        let env = parse_envelope(ok, "r1").unwrap();
        check_result(&env).unwrap();
        let other = br#"{"command1":{"ref":"r2"}}"#;
        assert_eq!(
            parse_envelope(other, "r1").unwrap_err().phase(),
            Some(Phase::Decode)
        );
        assert!(parse_envelope(b"<html>", "r1").is_err());
        assert!(parse_envelope(b"[1]", "r1").is_err());
        assert!(parse_envelope(b"{\"header\":{}}", "r1").is_err());

        let api = br#"{"header":{"result":0},"command1":{"result":"5301","sql_code":100,"error_detail":"Barcode not found"}}"#;
        let e = check_result(&parse_envelope(api, "r").unwrap()).unwrap_err();
        assert_eq!(
            e,
            AtsError::Api {
                code: 5301,
                sql_code: 100,
                message: "Barcode not found".into()
            }
        );
        let hdr = br#"{"header":{"result":7,"error_desc":"gateway"},"command1":{}}"#;
        let e = check_result(&parse_envelope(hdr, "r").unwrap()).unwrap_err();
        assert!(matches!(e, AtsError::Api { code: 7, .. }), "{e:?}");
        let tok = br#"{"command1":{"result":1,"error_detail":"No data for token 'abc'"}}"#;
        let e = check_result(&parse_envelope(tok, "r").unwrap()).unwrap_err();
        assert!(matches!(e, AtsError::NoDataForToken { .. }), "{e:?}");
    }

    #[test]
    fn decodes_verify_leniently_and_keeps_unknown_fields() {
        let c1 = obj(json!({
            "cmd": "verify_barcode", "result": 0, "barcode": "100000000001",
            "event_name": "EVENT01", "acct_id": "100479", "seat_num": 12,
            "ticket_status": "active", "Section_Name": "101", "shiny": true
        }));
        let a = decode_verify(&c1, "100000000001").unwrap();
        assert_eq!(a.info.acct_id, Some(100479));
        assert_eq!(a.info.seat_num.as_deref(), Some("12"));
        assert_eq!(a.info.section_name.as_deref(), Some("101"));
        assert_eq!(a.info.status, TicketStatus::Active);
        assert_eq!(a.extra.get("shiny"), Some(&json!(true)));
        assert!(a.extra.contains_key("cmd"));
        assert!(!a.extra.contains_key("Section_Name"));
    }

    #[test]
    fn verify_refuses_hostile_values() {
        let base = json!({"event_name": "E", "ticket_status": "ACTIVE"});
        for (k, v) in [
            ("acct_id", json!(-5)),
            ("acct_id", json!("12x")),
            ("acct_id", json!([1])),
            ("event_name", json!({"a": 1})),
            ("section_name", json!("x".repeat(300))),
            ("barcode", json!("1".repeat(65))),
            ("row_name", json!("a\u{0}b")),
        ] {
            let mut m = obj(base.clone());
            m.insert(k.into(), v);
            assert!(
                matches!(decode_verify(&m, "1"), Err(AtsError::Decode { .. })),
                "{k}"
            );
        }
        let m = obj(json!({"event_name": "E"}));
        assert!(decode_verify(&m, "1").is_err());
        let m = obj(json!({"event_name": "E", "ticket_status": "LOST"}));
        assert_eq!(
            decode_verify(&m, "1").unwrap().info.status,
            TicketStatus::Other("LOST".into())
        );
    }

    #[test]
    fn decodes_av_rows_money_and_items() {
        let c1 = obj(json!({
            "Count": "2", "more_data": "N",
            "av_barcodes": [
                {"barcode": "100000000003", "acct_id": 100479, "av_id": 1004, "av_type": "N",
                 "description": "Hot Dog", "amount": "1.00", "balance": 1, "x": 1},
                {"barcode": "100000000003", "av_id": "AV1003", "av_type": "m",
                 "amount": 15, "balance": "7.5", "valid_until": "2026-01-01"}
            ]
        }));
        let ch = decode_av_chunk(&c1).unwrap();
        assert_eq!(ch.count, Some(2));
        assert_eq!(ch.more_data, Some(false));
        assert_eq!(ch.rows[0].line.kind, ValueKind::Item);
        assert_eq!(ch.rows[0].line.av_id, "1004");
        assert_eq!((ch.rows[0].line.loaded, ch.rows[0].line.balance), (1, 1));
        assert_eq!(ch.rows[0].extra.get("x"), Some(&json!(1)));
        assert_eq!(ch.rows[1].line.kind, ValueKind::Money);
        assert_eq!(
            (ch.rows[1].line.loaded, ch.rows[1].line.balance),
            (1500, 750)
        );
        assert_eq!(ch.rows[1].line.valid_until.as_deref(), Some("2026-01-01"));
    }

    #[test]
    fn av_rows_refuse_hostile_amounts() {
        let row = json!({"av_id": "A", "av_type": "M", "amount": "1.00", "balance": "1.00"});
        for (k, v) in [
            ("balance", json!("-1.00")),
            ("balance", json!(-1)),
            ("balance", json!("1.001")),
            ("balance", json!("1e3")),
            ("balance", json!("NaN")),
            ("balance", json!(true)),
            ("balance", json!("99999999999999999999999")),
            ("amount", json!("10000000.00")),
            ("amount", Value::Null),
            ("av_type", json!("X")),
            ("av_id", json!({})),
        ] {
            let mut r = obj(row.clone());
            r.insert(k.into(), v);
            let c1 = obj(json!({ "av_barcodes": [Value::Object(r)] }));
            assert!(
                matches!(decode_av_chunk(&c1), Err(AtsError::Decode { .. })),
                "{k}"
            );
        }
        let item = obj(json!({"av_barcodes": [
            {"av_id": "A", "av_type": "N", "amount": "1.50", "balance": "1"}]}));
        assert!(decode_av_chunk(&item).is_err());
        assert!(decode_av_chunk(&obj(json!({"av_barcodes": "x"}))).is_err());
        assert!(decode_av_chunk(&obj(json!({"av_barcodes": [1]}))).is_err());
        assert!(decode_av_chunk(&obj(json!({"more_data": "maybe"}))).is_err());
        assert!(decode_av_chunk(&obj(json!({"count": -1}))).is_err());
    }

    #[test]
    fn server_clock_reads_ping_date_and_time() {
        let c1 = obj(json!({"server_date": "2026-12-01", "server_time": "09:30:05"}));
        assert_eq!(server_clock_ms(&c1), Some(1_796_117_405_000));
        for bad in [
            json!({"server_date": "2026-12-01"}),
            json!({"server_date": "2026-13-01", "server_time": "09:30:05"}),
            json!({"server_date": "yesterday", "server_time": "09:30:05"}),
            json!({"server_date": "2026-12-01", "server_time": "25:00:00"}),
            json!({"server_date": 20261201, "server_time": "09:30:05"}),
        ] {
            assert_eq!(server_clock_ms(&obj(bad.clone())), None, "{bad}");
        }
    }

    #[test]
    fn no_data_for_token_and_not_found_rules() {
        assert!(is_no_data_for_token("No data for token 'x'"));
        assert!(is_no_data_for_token("  no DATA for token"));
        assert!(!is_no_data_for_token("token"));
        assert!(is_not_found(5301, 100));
        assert!(is_not_found(5311, 0));
        assert!(!is_not_found(5312, 0));
        assert_eq!(shorten("abcdef", 3), "abc...");
        assert_eq!(shorten("é", 3), "é");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<String>().prop_map(Value::from),
                "-?[0-9]{0,25}(\\.[0-9]{0,4})?".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
                Just(json!([1, "x"])),
                Just(json!({"a": 1})),
            ]
        }

        proptest! {
            #[test]
            fn av_rows_never_panic_and_never_invent_value(
                amount in scalar(), balance in scalar(), acct in scalar(),
                kind in prop_oneof![Just("M"), Just("N"), Just("m"), Just("Q")],
            ) {
                let row = json!({"barcode": "100000000001", "av_id": "A", "av_type": kind,
                                 "amount": amount, "balance": balance.clone(), "acct_id": acct});
                let c1 = obj(json!({"av_barcodes": [row]}));
                match decode_av_chunk(&c1) {
                    Ok(ch) => {
                        let line = &ch.rows[0].line;
                        let text = match &balance {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let cents = parse_cents(&text).unwrap();
                        match line.kind {
                            ValueKind::Money => prop_assert_eq!(line.balance, cents),
                            ValueKind::Item => prop_assert_eq!(line.balance * 100, cents),
                        }
                    }
                    Err(e) => prop_assert!(matches!(e, AtsError::Decode { .. }), "{:?}", e),
                }
            }

            #[test]
            fn verify_never_panics(fields in proptest::collection::btree_map(
                prop_oneof![Just("barcode".to_string()), Just("event_name".to_string()),
                            Just("acct_id".to_string()), Just("ticket_status".to_string()),
                            Just("seat_num".to_string()), any::<String>()],
                scalar(), 0..8)) {
                let m: Map<String, Value> = fields.into_iter().collect();
                let _ = decode_verify(&m, "1");
                let _ = check_result(&Envelope { body: json!({"header": m.clone(), "command1": m}) });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server's clock (`ping` answers `server_date` and `server_time`)

/// The server's wall time in Unix ms from `server_date` (`YYYY-MM-DD`) and
/// `server_time` (`HH:MM:SS`) of an answer, read as UTC (the sandbox's form; an
/// integrator whose ATS answers in venue time adjusts it here). `None` when the answer
/// does not carry both or they are malformed: no guess is ever a clock reading.
pub fn server_clock_ms(c1: &Map<String, Value>) -> Option<u64> {
    let date = get_ci(c1, "server_date")?.as_str()?.trim();
    let time = get_ci(c1, "server_time")?.as_str()?.trim();
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.get(..10)?.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut t = time.split(':');
    let (hh, mm) = (num(t.next()?)?, num(t.next()?)?);
    let ss = t
        .next()
        .and_then(|s| num(s.get(..2).unwrap_or(s)))
        .unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::date::days_from_civil(i64::from(y), m, day);
    let secs = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    u64::try_from(secs).ok().map(|s| s * 1000)
}

// ---------------------------------------------------------------------------------------
// event_search (public command; the agent uses it to find today's events to prefetch)

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
