//! Lenient field reading: keys matched ignoring ASCII case, numbers as strings and the
//! reverse, unread fields kept; and the plausibility limits every decoder applies.

use serde_json::{Map, Value};

use crate::ats::error::AtsError;
use crate::money::{parse_cents, Cents, MoneyError};

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

/// Server text shortened and made safe for logs: kept in `redact`, where every
/// log-safety rule lives (ticket records use it too).
pub use crate::redact::shorten;

/// Looks a key up exactly, then ignoring ASCII case.
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(super) fn int_field(
    map: &Map<String, Value>,
    key: &str,
    ctx: &str,
) -> Result<Option<i64>, AtsError> {
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
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    ctx: String,
    used: Vec<String>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(map: &'a Map<String, Value>, ctx: impl Into<String>) -> Self {
        Fields {
            map,
            ctx: ctx.into(),
            used: Vec::new(),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.ctx)
    }

    pub(super) fn raw(&mut self, key: &str) -> Option<&'a Value> {
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
    pub(super) fn text(&mut self, key: &str, max: usize) -> Result<Option<String>, AtsError> {
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

    pub(super) fn required_text(&mut self, key: &str, max: usize) -> Result<String, AtsError> {
        self.text(key, max)?
            .ok_or_else(|| AtsError::decode(self.field(key), "missing"))
    }

    /// A non-negative integer: a number, or a string of digits.
    pub(super) fn unsigned(&mut self, key: &str) -> Result<Option<u64>, AtsError> {
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
    pub(super) fn cents(&mut self, key: &str) -> Result<Cents, AtsError> {
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
    pub(super) fn flag(&mut self, key: &str) -> Result<Option<bool>, AtsError> {
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
    pub(super) fn rest(&self) -> Map<String, Value> {
        self.map
            .iter()
            .filter(|(k, _)| !self.used.iter().any(|u| u == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
