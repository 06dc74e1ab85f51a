//! The `[scanner]` section: one schema for the agent configuration and the board
//! profiles (`boards/*.toml`), so both accept the same kinds, limits and byte syntax.
//!
//! Limits: `max_len` 4 to 512 bytes, default 256; `prefix` and `suffix` up to
//! [`MAX_AFFIX`] bytes each, written as [`EscapedBytes`]; `baud` one of [`BAUD_RATES`],
//! default 9600; `path` absolute, serial only; `listen` tcp only; `ack` serial only.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::scan::frame::MAX_AFFIX;
use crate::signal::scanner_ack::AckCodes;

/// Serial rates accepted for scanners and the POS.
pub const BAUD_RATES: [u32; 11] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600,
];
/// Accepted `scanner.max_len`, bytes: short enough to bound a read, long enough for
/// phone (SafeTix) payloads.
pub const MAX_LEN_RANGE: RangeInclusive<usize> = 4..=512;
/// `scanner.max_len` when the section leaves it out, bytes.
pub const DEFAULT_MAX_LEN: usize = 256;

/// A bad `[scanner]` field: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionError {
    /// The field, as written (`scanner.max_len`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SectionError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        SectionError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for SectionError {}

/// How scans arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScannerKind {
    /// Standard input (a keyboard-wedge scanner, or typing): the default.
    #[default]
    Stdin,
    /// A serial scanner (USB CDC-ACM or RS-232 adapter).
    Serial,
    /// A network scanner or POS sending scans over TCP.
    Tcp,
    /// No scanner (scans come over the POS link only).
    None,
}

impl<'de> Deserialize<'de> for ScannerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand, so the message names the field in the config file and the board
        // profile alike.
        match String::deserialize(d)?.as_str() {
            "stdin" => Ok(ScannerKind::Stdin),
            "serial" => Ok(ScannerKind::Serial),
            "tcp" => Ok(ScannerKind::Tcp),
            "none" => Ok(ScannerKind::None),
            other => Err(de::Error::custom(format!(
                "scanner.kind: {other:?} is not one of stdin, serial, tcp, none"
            ))),
        }
    }
}

/// The `[scanner]` table, of the agent configuration and of a board profile alike.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSection {
    /// `stdin` (the default), `serial`, `tcp` or `none`.
    #[serde(default)]
    pub kind: ScannerKind,
    /// Serial device (`/dev/ttyACM0`); serial only.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Address the agent listens on for scans; tcp only.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Serial rate; serial only.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Bytes the scanner sends before each barcode (escaped string, `\x02`).
    #[serde(default)]
    pub prefix: EscapedBytes,
    /// Bytes that end each barcode (`\r`); empty: any CR or LF ends a scan.
    #[serde(default)]
    pub suffix: EscapedBytes,
    /// Longest accepted scan, bytes (longer input is noise).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Good/bad read acknowledgement written back to the scanner.
    #[serde(default)]
    pub ack: AckSetting,
}

fn default_baud() -> u32 {
    9600
}

fn default_max_len() -> usize {
    DEFAULT_MAX_LEN
}

impl Default for ScannerSection {
    fn default() -> Self {
        ScannerSection {
            kind: ScannerKind::Stdin,
            path: None,
            listen: None,
            baud: default_baud(),
            prefix: EscapedBytes::default(),
            suffix: EscapedBytes::default(),
            max_len: default_max_len(),
            ack: AckSetting::None,
        }
    }
}

impl ScannerSection {
    /// Checks the `[scanner]` table; the error names the first bad field.
    pub fn validate(&self) -> Result<(), SectionError> {
        let kind = match self.kind {
            ScannerKind::Stdin => "stdin",
            ScannerKind::Serial => "serial",
            ScannerKind::Tcp => "tcp",
            ScannerKind::None => "none",
        };
        match (self.kind, &self.path) {
            (ScannerKind::Serial, None) => {
                return Err(SectionError::new(
                    "scanner.path",
                    "required when scanner.kind is \"serial\"",
                ))
            }
            (ScannerKind::Serial, Some(p)) => check_device_path("scanner.path", p)?,
            (_, Some(_)) => {
                return Err(SectionError::new(
                    "scanner.path",
                    format!("only for kind \"serial\", not \"{kind}\""),
                ))
            }
            (_, None) => {}
        }
        match (self.kind, &self.listen) {
            (ScannerKind::Tcp, None) => {
                return Err(SectionError::new(
                    "scanner.listen",
                    "required when scanner.kind is \"tcp\"",
                ))
            }
            (ScannerKind::Tcp, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(SectionError::new(
                    "scanner.listen",
                    format!("only for kind \"tcp\", not \"{kind}\""),
                ))
            }
        }
        check_baud("scanner.baud", self.baud)?;
        if !MAX_LEN_RANGE.contains(&self.max_len) {
            return Err(SectionError::new(
                "scanner.max_len",
                format!(
                    "{} is out of range ({} to {})",
                    self.max_len,
                    MAX_LEN_RANGE.start(),
                    MAX_LEN_RANGE.end()
                ),
            ));
        }
        for (field, v) in [
            ("scanner.prefix", &self.prefix),
            ("scanner.suffix", &self.suffix),
        ] {
            if v.0.len() > MAX_AFFIX {
                return Err(SectionError::new(
                    field,
                    format!("longer than {MAX_AFFIX} bytes"),
                ));
            }
        }
        if self.ack != AckSetting::None && self.kind != ScannerKind::Serial {
            return Err(SectionError::new(
                "scanner.ack",
                "acknowledgement is written to a serial scanner: needs kind \"serial\"",
            ));
        }
        if let AckSetting::Custom { good, bad } = &self.ack {
            for (field, v) in [("scanner.ack.good", good), ("scanner.ack.bad", bad)] {
                if v.0.len() > 32 {
                    return Err(SectionError::new(field, "longer than 32 bytes"));
                }
            }
            if good.is_empty() && bad.is_empty() {
                return Err(SectionError::new(
                    "scanner.ack",
                    "good and bad are both empty; use ack = \"none\"",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a serial rate against [`BAUD_RATES`].
pub fn check_baud(field: &'static str, baud: u32) -> Result<(), SectionError> {
    if BAUD_RATES.contains(&baud) {
        Ok(())
    } else {
        Err(SectionError::new(
            field,
            format!("{baud} is not a standard rate ({BAUD_RATES:?})"),
        ))
    }
}

/// Checks that a device path is absolute.
pub fn check_device_path(field: &'static str, p: &Path) -> Result<(), SectionError> {
    if p.is_absolute() {
        Ok(())
    } else {
        Err(SectionError::new(
            field,
            format!("{} must be an absolute path (/dev/...)", p.display()),
        ))
    }
}

/// Host acknowledgement sent back to a serial scanner.
///
/// In TOML: `ack = "none"`, `ack = "honeywell"`, or a table
/// `ack = { good = '\x1b7,', bad = '\x1b8,' }` (optionally with `kind = "custom"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AckSetting {
    /// Nothing is sent (the default).
    #[default]
    None,
    /// Honeywell `ESC 7 ,` / `ESC 8 ,`.
    Honeywell,
    /// Custom byte strings.
    Custom {
        /// Sent after an approve.
        good: EscapedBytes,
        /// Sent after a deny.
        bad: EscapedBytes,
    },
}

impl AckSetting {
    /// The bytes to send, or `None` when acknowledgement is off.
    pub fn codes(&self) -> Option<AckCodes> {
        match self {
            AckSetting::None => None,
            AckSetting::Honeywell => Some(AckCodes::honeywell()),
            AckSetting::Custom { good, bad } => Some(AckCodes {
                good: good.0.clone(),
                bad: bad.0.clone(),
            }),
        }
    }
}

impl<'de> Deserialize<'de> for AckSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AckVisitor;
        impl<'de> Visitor<'de> for AckVisitor {
            type Value = AckSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"none\", \"honeywell\" or a table { good = \"..\", bad = \"..\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AckSetting, E> {
                match v {
                    "none" => Ok(AckSetting::None),
                    "honeywell" => Ok(AckSetting::Honeywell),
                    "custom" => Err(E::custom(
                        "custom ack needs a table: ack = { good = \"..\", bad = \"..\" }",
                    )),
                    other => Err(E::unknown_variant(other, &["none", "honeywell", "custom"])),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AckSetting, A::Error> {
                let mut good = None;
                let mut bad = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "kind" => {
                            let kind: String = map.next_value()?;
                            if kind != "custom" {
                                return Err(de::Error::custom(format!(
                                    "ack table must be kind = \"custom\", not {kind:?}"
                                )));
                            }
                        }
                        "good" => good = Some(map.next_value::<EscapedBytes>()?),
                        "bad" => bad = Some(map.next_value::<EscapedBytes>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["kind", "good", "bad"]))
                        }
                    }
                }
                Ok(AckSetting::Custom {
                    good: good.ok_or_else(|| de::Error::missing_field("good"))?,
                    bad: bad.ok_or_else(|| de::Error::missing_field("bad"))?,
                })
            }
        }
        d.deserialize_any(AckVisitor)
    }
}

/// Bytes written in a profile as an escaped string.
///
/// TOML's own escapes apply in basic strings (`"\r"`, `"\u001b"`); on top of that the
/// value is unescaped once more, so literal strings work too: `'\x1b7,'`, `'\r\n'`.
/// Escapes: `\xHH`, `\e` (ESC), `\r`, `\n`, `\t`, `\0`, `\\`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EscapedBytes(pub Vec<u8>);

impl EscapedBytes {
    /// Decodes an escaped string.
    pub fn parse(s: &str) -> Result<EscapedBytes, String> {
        let mut out = Vec::with_capacity(s.len());
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    let b = u8::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 2)
                        .ok_or_else(|| format!("bad escape \\x{hex}: want two hex digits"))?;
                    out.push(b);
                }
                Some('e') => out.push(0x1b),
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                Some(other) => return Err(format!("unknown escape \\{other}")),
                None => return Err("trailing backslash".into()),
            }
        }
        Ok(EscapedBytes(out))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for EscapedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EscapedBytes::parse(&s).map_err(de::Error::custom)
    }
}
