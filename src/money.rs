//! Money as integer cents.
//!
//! ATS sends amounts as decimal strings ("20.00") or numbers; the agent never does
//! arithmetic on floats. Parsing is strict about precision (at most two decimals) so a
//! hostile "0.001" cannot round into value.

use std::fmt;

/// An amount of money in cents. Never negative.
pub type Cents = u64;

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneyError {
    /// Empty text.
    Empty,
    /// A negative amount.
    Negative,
    /// Not a decimal number with at most two places.
    Malformed(String),
    /// More than fits.
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoneyError::Empty => f.write_str("empty amount"),
            MoneyError::Negative => f.write_str("negative amount"),
            MoneyError::Malformed(s) => write!(f, "malformed amount {s:?}"),
            MoneyError::Overflow => f.write_str("amount too large"),
        }
    }
}

impl std::error::Error for MoneyError {}

/// Parses "20", "20.5", "20.50" or "0.05" into cents.
pub fn parse_cents(text: &str) -> Result<Cents, MoneyError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(MoneyError::Empty);
    }
    if t.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 2 {
        return Err(MoneyError::Malformed(text.chars().take(32).collect()));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| MoneyError::Overflow)?
    };
    let frac_cents: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().unwrap_or(0) * 10,
        _ => frac.parse::<u64>().unwrap_or(0),
    };
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac_cents))
        .ok_or(MoneyError::Overflow)
}

/// Formats cents as a decimal string with two places ("20.00").
pub fn format_cents(c: Cents) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings() {
        assert_eq!(parse_cents("20.00"), Ok(2000));
        assert_eq!(parse_cents("20.5"), Ok(2050));
        assert_eq!(parse_cents("7"), Ok(700));
        assert_eq!(parse_cents(".05"), Ok(5));
        assert_eq!(parse_cents(" 1.10 "), Ok(110));
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert_eq!(parse_cents("-1.00"), Err(MoneyError::Negative));
        assert!(parse_cents("0.001").is_err());
        assert!(parse_cents("1e3").is_err());
        assert!(parse_cents(".").is_err());
        assert_eq!(parse_cents(""), Err(MoneyError::Empty));
        assert_eq!(
            parse_cents("99999999999999999999"),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn formats_two_places() {
        assert_eq!(format_cents(2005), "20.05");
        assert_eq!(format_cents(0), "0.00");
    }
}
