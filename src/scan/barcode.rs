//! Validated ticket barcodes and SafeTix payloads.
//!
//! Printed and static tickets carry 12 to 18 digits, optionally followed by one channel
//! letter (`j`, `k`, `d`, ...). The normalised barcode is the digits alone: ATS lookups,
//! the cache and the ledger all key on them; the channel letter is kept beside them,
//! lowercased. Archtics stores barcodes as char(20), so the whole read (digits and
//! letter) is held in a `heapless::String<20>`.
//!
//! Phone tickets (SafeTix) show a rotating payload
//! `token::eventTOTP::customerTOTP::timestamp`; it carries no Archtics barcode and is
//! recognised only so the agent can deny it with a clear reason (`safetix_unresolved`).
//!
//! `Debug` on both types masks the value: barcodes are customer data.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::unreadable::{Unreadable, UnreadableReason};
use crate::redact::mask_barcode;

/// Archtics' barcode column width (char(20)).
pub const MAX_BARCODE_LEN: usize = 20;
/// Fewest digits in a ticket barcode.
pub const MIN_DIGITS: usize = 12;
/// Most digits in a ticket barcode.
pub const MAX_DIGITS: usize = 18;

/// Why text is not a ticket barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarcodeError {
    /// Fewer than 12 or more than 18 digits.
    Length(usize),
    /// A character that is neither a digit nor a trailing channel letter.
    BadChar(usize),
    /// Nothing at all.
    Empty,
}

impl fmt::Display for BarcodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarcodeError::Length(n) => {
                write!(f, "{n} digits, expected {MIN_DIGITS} to {MAX_DIGITS}")
            }
            BarcodeError::BadChar(i) => write!(f, "unexpected character at {i}"),
            BarcodeError::Empty => f.write_str("empty barcode"),
        }
    }
}

impl std::error::Error for BarcodeError {}

/// A validated, normalised ticket barcode.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Barcode {
    digits: heapless::String<MAX_BARCODE_LEN>,
    channel: Option<char>,
}

impl Barcode {
    /// Validates `text` (12 to 18 ASCII digits, optionally one ASCII letter after them).
    /// No trimming: framing already did that.
    pub fn parse(text: &str) -> Result<Barcode, BarcodeError> {
        if text.is_empty() {
            return Err(BarcodeError::Empty);
        }
        let bytes = text.as_bytes();
        let (digits, channel) = match bytes.split_last() {
            Some((last, rest)) if last.is_ascii_alphabetic() => {
                (rest, Some(char::from(last.to_ascii_lowercase())))
            }
            _ => (bytes, None),
        };
        if let Some(i) = digits.iter().position(|b| !b.is_ascii_digit()) {
            return Err(BarcodeError::BadChar(i));
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(BarcodeError::Length(digits.len()));
        }
        let mut s = heapless::String::new();
        for &d in digits {
            s.push(char::from(d))
                .map_err(|_| BarcodeError::Length(digits.len()))?;
        }
        Ok(Barcode { digits: s, channel })
    }

    /// The normalised barcode: the digits, which ATS lookups, cache and ledger use.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The channel letter, lowercased, if the ticket carried one.
    pub fn channel(&self) -> Option<char> {
        self.channel
    }

    /// Digits plus channel letter, as printed (`123456789012j`).
    pub fn full(&self) -> String {
        let mut s = self.digits.to_string();
        if let Some(c) = self.channel {
            s.push(c);
        }
        s
    }

    /// Masked for logs and POS lines (`********9012`).
    pub fn masked(&self) -> String {
        mask_barcode(&self.digits)
    }
}

impl fmt::Debug for Barcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Barcode({}", self.masked())?;
        if let Some(c) = self.channel {
            write!(f, ", channel {c}")?;
        }
        f.write_str(")")
    }
}

/// Shows the normalised digits (not masked): use [`Barcode::masked`] for logs.
impl fmt::Display for Barcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl TryFrom<String> for Barcode {
    type Error = BarcodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Barcode::parse(&s)
    }
}

impl From<Barcode> for String {
    fn from(b: Barcode) -> String {
        b.full()
    }
}

/// A recognised SafeTix rotating payload. It cannot be resolved to an Archtics barcode.
#[derive(Clone, PartialEq, Eq)]
pub struct SafeTix {
    token: String,
    event_totp: [u8; 6],
    customer_totp: [u8; 6],
    timestamp: u64,
}

impl SafeTix {
    /// Recognises `token::eventTOTP::customerTOTP::timestamp` (TOTPs: 6 digits;
    /// timestamp: 1 to 13 digits; token: printable ASCII without `:`).
    pub fn parse(text: &str) -> Option<SafeTix> {
        let mut parts = text.split("::");
        let token = parts.next()?;
        let event = parts.next()?;
        let customer = parts.next()?;
        let ts = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let token_ok =
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !token_ok {
            return None;
        }
        let totp = |s: &str| -> Option<[u8; 6]> {
            let b = s.as_bytes();
            if b.len() == 6 && b.iter().all(u8::is_ascii_digit) {
                let mut a = [0u8; 6];
                a.copy_from_slice(b);
                Some(a)
            } else {
                None
            }
        };
        let event_totp = totp(event)?;
        let customer_totp = totp(customer)?;
        if ts.is_empty() || ts.len() > 13 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let timestamp = ts.parse().ok()?;
        Some(SafeTix {
            token: token.to_string(),
            event_totp,
            customer_totp,
            timestamp,
        })
    }

    /// The payload's timestamp as sent (seconds or milliseconds since the epoch).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The token part, stable per ticket (the Presence resolution remembers it). A
    /// credential: never log it ([`SafeTix::masked_token`] is for logs).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The whole payload as read (what Presence `ticket/validate` is sent). Never log it.
    pub fn payload(&self) -> String {
        format!(
            "{}::{}::{}::{}",
            self.token,
            self.event_totp(),
            self.customer_totp(),
            self.timestamp
        )
    }

    /// The token, masked for logs.
    pub fn masked_token(&self) -> String {
        mask_barcode(&self.token)
    }

    /// Length of the token in bytes.
    pub fn token_len(&self) -> usize {
        self.token.len()
    }

    /// The event TOTP digits.
    pub fn event_totp(&self) -> &str {
        std::str::from_utf8(&self.event_totp).unwrap_or("")
    }

    /// The customer TOTP digits.
    pub fn customer_totp(&self) -> &str {
        std::str::from_utf8(&self.customer_totp).unwrap_or("")
    }
}

impl fmt::Debug for SafeTix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SafeTix(token {}, timestamp {})",
            self.masked_token(),
            self.timestamp
        )
    }
}

/// What one read turned out to be.
#[derive(Clone, PartialEq, Eq)]
pub enum ScanInput {
    /// A printed/static ticket barcode, validated and normalised.
    Barcode(Barcode),
    /// A rotating SafeTix payload: recognised, but cannot be resolved to a barcode
    /// (the agent denies it with reason `safetix_unresolved`).
    SafeTix(SafeTix),
    /// Noise: a read that is not a ticket (the agent denies it with reason `unreadable`).
    Unreadable(Unreadable),
}

impl fmt::Debug for ScanInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanInput::Barcode(b) => write!(f, "Barcode({b:?})"),
            ScanInput::SafeTix(s) => write!(f, "SafeTix({s:?})"),
            ScanInput::Unreadable(u) => write!(f, "Unreadable({u})"),
        }
    }
}

impl ScanInput {
    /// The barcode, when the read is one.
    pub fn barcode(&self) -> Option<&Barcode> {
        match self {
            ScanInput::Barcode(b) => Some(b),
            _ => None,
        }
    }

    /// The barcode masked for logs and POS lines; empty for anything else.
    pub fn masked(&self) -> String {
        match self {
            ScanInput::Barcode(b) => b.masked(),
            _ => String::new(),
        }
    }
}

/// Classifies one framed read: a ticket barcode, a SafeTix payload, or unreadable.
pub fn classify(text: &str) -> ScanInput {
    let text = text.trim_matches(' ');
    if text.contains("::") {
        if let Some(s) = SafeTix::parse(text) {
            return ScanInput::SafeTix(s);
        }
        return ScanInput::Unreadable(Unreadable::new(
            UnreadableReason::NotABarcode,
            "malformed safetix payload",
        ));
    }
    match Barcode::parse(text) {
        Ok(b) => ScanInput::Barcode(b),
        Err(e) => ScanInput::Unreadable(Unreadable::new(
            UnreadableReason::NotABarcode,
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barcode(s: &str) -> Barcode {
        match classify(s) {
            ScanInput::Barcode(b) => b,
            other => panic!("{s:?} -> {other:?}"),
        }
    }

    fn not_a_barcode(s: &str) {
        match classify(s) {
            ScanInput::Unreadable(u) => assert_eq!(u.reason, UnreadableReason::NotABarcode, "{s}"),
            other => panic!("{s:?} -> {other:?}"),
        }
    }

    #[test]
    fn twelve_to_eighteen_digits_are_barcodes() {
        assert_eq!(barcode("100000000001").as_str(), "100000000001");
        assert_eq!(barcode("123456789012345678").as_str(), "123456789012345678");
        assert_eq!(barcode("100000000001").channel(), None);
    }

    #[test]
    fn channel_letter_is_kept_apart_and_lowercased() {
        let b = barcode("100000000001J");
        assert_eq!(b.as_str(), "100000000001");
        assert_eq!(b.channel(), Some('j'));
        assert_eq!(b.full(), "100000000001j");
        assert_eq!(barcode("123456789012345678k").channel(), Some('k'));
    }

    #[test]
    fn wrong_lengths_and_characters_are_not_barcodes() {
        for s in [
            "",
            "12345678901",
            "1234567890123456789",
            "12345678901234567890",
            "100000000001jk",
            "j100000000001",
            "10000000000x1",
            "1000 00000001",
            "-100000000001",
            "+100000000001",
            "１００００００００００１",
            "100000000001é",
            "hello",
        ] {
            not_a_barcode(s);
        }
    }

    #[test]
    fn debug_masks_the_barcode() {
        let b = barcode("100000000001d");
        let d = format!("{b:?} {:?}", ScanInput::Barcode(b.clone()));
        assert!(!d.contains("100000000001"), "{d}");
        assert!(d.contains("0001"));
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let b = barcode("100000000001d");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"100000000001d\"");
        let back: Barcode = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        assert!(serde_json::from_str::<Barcode>("\"12\"").is_err());
    }

    #[test]
    fn recognises_safetix_payloads() {
        let text = "SGVsbG8gV29ybGQhMTIzNDU2Nzg5MA==::123456::654321::1700000000";
        match classify(text) {
            ScanInput::SafeTix(s) => {
                assert_eq!(s.timestamp(), 1_700_000_000);
                assert_eq!(s.event_totp(), "123456");
                assert_eq!(s.customer_totp(), "654321");
                assert!(!format!("{s:?}").contains("SGVsbG8"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("abc::000000::999999::1700000000123"),
            ScanInput::SafeTix(_)
        ));
    }

    #[test]
    fn malformed_safetix_is_unreadable() {
        for s in [
            "tok::12345::654321::1700000000",
            "tok::123456::65432a::1700000000",
            "tok::123456::654321",
            "tok::123456::654321::1700000000::x",
            "::123456::654321::1700000000",
            "tok::123456::654321::",
            "tok::123456::654321::17000000000000",
            "t:k::123456::654321::1",
            "t k::123456::654321::1",
        ] {
            not_a_barcode(s);
        }
    }
}
