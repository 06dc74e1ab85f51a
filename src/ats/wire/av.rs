//! `get_av_barcodes` (modeled): the value lines of one barcode, or of an event in chunks.

use serde_json::{json, Map, Value};

use super::fields::{
    Fields, MAX_BARCODE, MAX_ITEM_UNITS, MAX_MONEY_CENTS, MAX_ROWS_PER_ANSWER, MAX_TEXT,
};
use crate::ats::error::AtsError;
use crate::money::Cents;
use crate::ticket::{ValueKind, ValueLine};

/// `get_av_barcodes` (modeled).
pub const CMD_GET_AV_BARCODES: &str = "get_av_barcodes";
/// `get_av_barcodes`: barcode not found.
pub const AV_NOT_FOUND: i64 = 5311;
/// `get_av_barcodes`: event not found. Unlike a barcode that is not found, this is not
/// an empty answer ([`super::is_not_found`] leaves it out): an event listing that names
/// an unknown event fails with `AtsError::Api` carrying this code.
pub const AV_EVENT_NOT_FOUND: i64 = 5313;

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
