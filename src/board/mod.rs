//! Board profiles: which scanner, which outputs, which GPIO lines a terminal has.
//!
//! A board profile is data only (`boards/*.toml`), loaded once at start-up with
//! [`BoardProfile::load`] and validated with errors that name the field. The agent
//! configuration maps [`ScannerSection`] (the same `[scanner]` schema as the agent
//! configuration's) and [`OutputsProfile`] into its own settings;
//! [`GpioProfile`] becomes a [`crate::signal::gpio::GpioSignal`].
//!
//! Opening real hardware (gpio character devices, serial ports) lives in `devices`, behind
//! the `board` feature: it is the only place in the agent that touches hardware.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::config::scanner::{
    AckSetting, EscapedBytes, ScannerKind, ScannerSection, SectionError, BAUD_RATES,
};
use crate::signal::gpio::{GpioPatterns, Pattern, Pulse};

#[cfg(feature = "board")]
pub mod devices;

/// Largest board profile file read, bytes.
pub const MAX_PROFILE_BYTES: u64 = 64 * 1024;
/// Highest GPIO line offset accepted.
pub const MAX_LINE: u32 = 1023;
/// Shortest pulse, milliseconds (shorter is invisible or inaudible).
pub const MIN_PULSE_MS: u32 = 10;
/// Longest single on or off time, milliseconds.
pub const MAX_PULSE_MS: u32 = 10_000;
/// Longest whole pattern, milliseconds.
pub const MAX_PATTERN_MS: u64 = 15_000;
/// Most pulses in one pattern.
pub const MAX_PULSES: usize = 16;
/// Most repeats of one pattern.
pub const MAX_REPEAT: u32 = 10;
/// Shortest offline blink phase, milliseconds.
pub const MIN_BLINK_MS: u32 = 50;

/// A whole board profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short name (`rpi-kiosk`).
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// Where scans come from.
    pub scanner: ScannerSection,
    /// Where decisions go (besides GPIO).
    #[serde(default)]
    pub outputs: OutputsProfile,
    /// Lights, buzzer and relay; absent on boards without GPIO.
    #[serde(default)]
    pub gpio: Option<GpioProfile>,
}

/// Where JSON lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonlTarget {
    /// No JSON lines (the default).
    #[default]
    None,
    /// Standard output.
    Stdout,
    /// POS clients connecting to `pos_listen`.
    Tcp,
    /// A serial line to the POS (`pos_path`).
    Serial,
}

/// The `[outputs]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsProfile {
    /// Human-readable lines on the console (default true).
    #[serde(default = "yes")]
    pub console: bool,
    /// JSON lines for POS software.
    #[serde(default)]
    pub jsonl: JsonlTarget,
    /// Listen address for `jsonl = "tcp"` (`127.0.0.1:7070`).
    #[serde(default)]
    pub pos_listen: Option<SocketAddr>,
    /// Serial device for `jsonl = "serial"`.
    #[serde(default)]
    pub pos_path: Option<PathBuf>,
    /// Serial rate for `jsonl = "serial"` (default 9600).
    #[serde(default)]
    pub pos_baud: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Default for OutputsProfile {
    fn default() -> Self {
        OutputsProfile {
            console: true,
            jsonl: JsonlTarget::None,
            pos_listen: None,
            pos_path: None,
            pos_baud: None,
        }
    }
}

/// The `[gpio]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioProfile {
    /// The gpio character device (`/dev/gpiochip0`).
    pub chip: PathBuf,
    /// Consumer label shown by `gpioinfo` (default `concession-agent`).
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Which line does what.
    #[serde(default)]
    pub lines: GpioLines,
    /// Timings.
    #[serde(default)]
    pub patterns: GpioPatterns,
}

fn default_consumer() -> String {
    "concession-agent".into()
}

/// The `[gpio.lines]` table; any line may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLines {
    /// Green light.
    pub approve: Option<LineProfile>,
    /// Red light.
    pub deny: Option<LineProfile>,
    /// Ready/offline light.
    pub ready: Option<LineProfile>,
    /// Buzzer.
    pub buzzer: Option<LineProfile>,
    /// Relay (drawer, dispenser).
    pub relay: Option<LineProfile>,
}

impl GpioLines {
    /// `(name, line)` for every configured line, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &LineProfile)> {
        [
            ("approve", &self.approve),
            ("deny", &self.deny),
            ("ready", &self.ready),
            ("buzzer", &self.buzzer),
            ("relay", &self.relay),
        ]
        .into_iter()
        .filter_map(|(n, l)| l.as_ref().map(|l| (n, l)))
    }
}

/// One output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineProfile {
    /// Line offset on the chip (BCM number on a Raspberry Pi's gpiochip0).
    pub line: u32,
    /// True when the output is on at low level.
    #[serde(default)]
    pub active_low: bool,
}

/// What kind of device failed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A gpio character device (`/dev/gpiochipN`).
    Gpio,
    /// A serial port.
    Serial,
}

/// Why a device failed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProblem {
    /// No such file.
    NotFound,
    /// Not allowed to open it.
    PermissionDenied,
    /// Someone else holds it.
    Busy,
    /// Anything else.
    Other,
}

/// Why a board profile could not be loaded, or its hardware not opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum BoardError {
    /// The file could not be read.
    Read {
        /// The profile path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a valid profile (TOML syntax, unknown field, wrong type).
    Parse {
        /// The profile path, when loaded from a file.
        path: Option<PathBuf>,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field has a bad value.
    Invalid {
        /// The profile path, when loaded from a file.
        path: Option<PathBuf>,
        /// Dotted field name (`gpio.lines.deny.line`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A device could not be opened or set up.
    Device {
        /// Gpio chip or serial port.
        kind: DeviceKind,
        /// Its path.
        path: PathBuf,
        /// The gpio line, when the error is about one line.
        line: Option<u32>,
        /// What went wrong.
        problem: DeviceProblem,
        /// The underlying error text.
        detail: String,
    },
}

impl From<SectionError> for BoardError {
    fn from(e: SectionError) -> Self {
        BoardError::invalid(e.field, e.reason)
    }
}

impl BoardError {
    /// A device error from an I/O error opening `path`.
    pub fn device(kind: DeviceKind, path: &Path, line: Option<u32>, err: &io::Error) -> Self {
        let problem = match err.kind() {
            io::ErrorKind::NotFound => DeviceProblem::NotFound,
            io::ErrorKind::PermissionDenied => DeviceProblem::PermissionDenied,
            io::ErrorKind::ResourceBusy => DeviceProblem::Busy,
            _ if err.raw_os_error() == Some(16) => DeviceProblem::Busy, // EBUSY
            _ => DeviceProblem::Other,
        };
        BoardError::Device {
            kind,
            path: path.to_path_buf(),
            line,
            problem,
            detail: err.to_string(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BoardError::Invalid {
            path: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn with_path(self, p: &Path) -> Self {
        match self {
            BoardError::Parse { message, .. } => BoardError::Parse {
                path: Some(p.to_path_buf()),
                message,
            },
            BoardError::Invalid { field, reason, .. } => BoardError::Invalid {
                path: Some(p.to_path_buf()),
                field,
                reason,
            },
            other => other,
        }
    }
}

impl fmt::Display for BoardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardError::Read { path, source } => {
                write!(f, "cannot read board profile {}: {source}", path.display())
            }
            BoardError::Parse { path, message } => {
                write!(f, "board profile")?;
                if let Some(p) = path {
                    write!(f, " {}", p.display())?;
                }
                write!(f, " is not valid: {}", message.trim_end())
            }
            BoardError::Invalid {
                path,
                field,
                reason,
            } => {
                write!(f, "board profile")?;
                if let Some(p) = path {
                    write!(f, " {}", p.display())?;
                }
                write!(f, ": {field}: {reason}")
            }
            BoardError::Device {
                kind,
                path,
                line,
                problem,
                detail,
            } => {
                let p = path.display();
                let what = match line {
                    Some(n) => format!("{p} line {n}"),
                    None => p.to_string(),
                };
                match (problem, kind) {
                    (DeviceProblem::NotFound, DeviceKind::Gpio) => write!(
                        f,
                        "{what} not found: check gpio.chip in the board profile \
                         (list chips with `ls /dev/gpiochip*` or gpiodetect); see docs/deploy.md"
                    ),
                    (DeviceProblem::NotFound, DeviceKind::Serial) => write!(
                        f,
                        "{what} not found: is the device plugged in? check scanner.path or \
                         outputs.pos_path in the board profile \
                         (ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id/); see docs/deploy.md"
                    ),
                    (DeviceProblem::PermissionDenied, DeviceKind::Gpio) => write!(
                        f,
                        "permission denied opening {what}: add the service user to group \
                         'gpio' (SupplementaryGroups=gpio) or install a udev rule; \
                         see docs/deploy.md"
                    ),
                    (DeviceProblem::PermissionDenied, DeviceKind::Serial) => write!(
                        f,
                        "permission denied opening {what}: add the service user to group \
                         'dialout' (SupplementaryGroups=dialout) or install a udev rule; \
                         see docs/deploy.md"
                    ),
                    (DeviceProblem::Busy, DeviceKind::Gpio) => write!(
                        f,
                        "{what} is busy: another process holds it (see gpioinfo); {detail}"
                    ),
                    (DeviceProblem::Busy, DeviceKind::Serial) => write!(
                        f,
                        "{what} is busy: another process holds it (see fuser {p}); {detail}"
                    ),
                    (DeviceProblem::Other, DeviceKind::Gpio) => write!(
                        f,
                        "cannot open {what}: {detail} (is gpio.chip a gpio character device? \
                         see gpiodetect)"
                    ),
                    (DeviceProblem::Other, DeviceKind::Serial) => {
                        write!(f, "cannot open {what}: {detail}")
                    }
                }
            }
        }
    }
}

impl std::error::Error for BoardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BoardError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl BoardProfile {
    /// Reads, parses and validates a board profile file.
    pub fn load(path: &Path) -> Result<BoardProfile, BoardError> {
        use std::io::Read;
        let read_err = |source| BoardError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_PROFILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_PROFILE_BYTES {
            return Err(BoardError::Parse {
                path: Some(path.to_path_buf()),
                message: format!("larger than {MAX_PROFILE_BYTES} bytes"),
            });
        }
        BoardProfile::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// Parses and validates a board profile from TOML text.
    pub fn from_toml_str(text: &str) -> Result<BoardProfile, BoardError> {
        let profile: BoardProfile = toml::from_str(text).map_err(|e| BoardError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), BoardError> {
        if self.name.trim().is_empty() || self.name.len() > 64 {
            return Err(BoardError::invalid("name", "must be 1 to 64 characters"));
        }
        self.scanner.validate().map_err(BoardError::from)?;
        self.outputs.validate(&self.scanner)?;
        if let Some(g) = &self.gpio {
            g.validate()?;
        }
        if !self.outputs.console && self.outputs.jsonl == JsonlTarget::None && self.gpio.is_none() {
            return Err(BoardError::invalid(
                "outputs",
                "no output would report decisions (console = false, jsonl = \"none\", no [gpio])",
            ));
        }
        Ok(())
    }
}

fn check_baud(field: &'static str, baud: u32) -> Result<(), BoardError> {
    crate::config::scanner::check_baud(field, baud).map_err(BoardError::from)
}

fn check_device_path(field: &'static str, p: &Path) -> Result<(), BoardError> {
    crate::config::scanner::check_device_path(field, p).map_err(BoardError::from)
}

impl OutputsProfile {
    /// Checks the `[outputs]` table (`scanner` to catch a shared serial port).
    pub fn validate(&self, scanner: &ScannerSection) -> Result<(), BoardError> {
        let tcp = self.jsonl == JsonlTarget::Tcp;
        let serial = self.jsonl == JsonlTarget::Serial;
        match (tcp, self.pos_listen) {
            (true, None) => {
                return Err(BoardError::invalid(
                    "outputs.pos_listen",
                    "required when outputs.jsonl is \"tcp\"",
                ))
            }
            (false, Some(_)) => {
                return Err(BoardError::invalid(
                    "outputs.pos_listen",
                    "only for jsonl = \"tcp\"",
                ))
            }
            _ => {}
        }
        match (serial, &self.pos_path) {
            (true, None) => {
                return Err(BoardError::invalid(
                    "outputs.pos_path",
                    "required when outputs.jsonl is \"serial\"",
                ))
            }
            (true, Some(p)) => {
                check_device_path("outputs.pos_path", p)?;
                if scanner.path.as_deref() == Some(p.as_path()) {
                    return Err(BoardError::invalid(
                        "outputs.pos_path",
                        "is the scanner's port; the POS needs its own",
                    ));
                }
            }
            (false, Some(_)) => {
                return Err(BoardError::invalid(
                    "outputs.pos_path",
                    "only for jsonl = \"serial\"",
                ))
            }
            (false, None) => {}
        }
        if let Some(b) = self.pos_baud {
            if !serial {
                return Err(BoardError::invalid(
                    "outputs.pos_baud",
                    "only for jsonl = \"serial\"",
                ));
            }
            check_baud("outputs.pos_baud", b)?;
        }
        if let (Some(a), Some(b)) = (self.pos_listen, scanner.listen) {
            if a == b {
                return Err(BoardError::invalid(
                    "outputs.pos_listen",
                    "is the same address as scanner.listen",
                ));
            }
        }
        Ok(())
    }
}

impl GpioProfile {
    /// Checks the `[gpio]` table.
    pub fn validate(&self) -> Result<(), BoardError> {
        check_device_path("gpio.chip", &self.chip)?;
        if self.consumer.is_empty() || self.consumer.len() > 31 {
            return Err(BoardError::invalid(
                "gpio.consumer",
                "must be 1 to 31 characters",
            ));
        }
        let mut seen: Vec<(&str, u32)> = Vec::new();
        for (name, l) in self.lines.iter() {
            let field = format!("gpio.lines.{name}.line");
            if l.line > MAX_LINE {
                return Err(BoardError::invalid(
                    field,
                    format!("{} is out of range (0 to {MAX_LINE})", l.line),
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, n)| *n == l.line) {
                return Err(BoardError::invalid(
                    field,
                    format!("line {} is already used by gpio.lines.{other}", l.line),
                ));
            }
            seen.push((name, l.line));
        }
        if seen.is_empty() {
            return Err(BoardError::invalid(
                "gpio.lines",
                "no lines configured; remove [gpio] or add approve/deny/ready/buzzer/relay",
            ));
        }
        let p = &self.patterns;
        for (name, pat) in [
            ("approve", &p.approve),
            ("deny", &p.deny),
            ("buzzer_approve", &p.buzzer_approve),
            ("buzzer_deny", &p.buzzer_deny),
        ] {
            check_pattern(&format!("gpio.patterns.{name}"), pat)?;
        }
        for (field, v) in [
            ("gpio.patterns.offline_blink.on_ms", p.offline_blink.on_ms),
            ("gpio.patterns.offline_blink.off_ms", p.offline_blink.off_ms),
        ] {
            if !(MIN_BLINK_MS..=MAX_PULSE_MS).contains(&v) {
                return Err(BoardError::invalid(
                    field,
                    format!("{v} is out of range ({MIN_BLINK_MS} to {MAX_PULSE_MS} ms)"),
                ));
            }
        }
        if p.relay_pulse_ms != 0 && !(MIN_PULSE_MS..=MAX_PULSE_MS).contains(&p.relay_pulse_ms) {
            return Err(BoardError::invalid(
                "gpio.patterns.relay_pulse_ms",
                format!(
                    "{} is out of range (0 to turn off, or {MIN_PULSE_MS} to {MAX_PULSE_MS} ms)",
                    p.relay_pulse_ms
                ),
            ));
        }
        Ok(())
    }
}

fn check_pattern(field: &str, pat: &Pattern) -> Result<(), BoardError> {
    if pat.pulses.len() > MAX_PULSES {
        return Err(BoardError::invalid(
            format!("{field}.pulses"),
            format!("{} pulses; at most {MAX_PULSES}", pat.pulses.len()),
        ));
    }
    if !(1..=MAX_REPEAT).contains(&pat.repeat) {
        return Err(BoardError::invalid(
            format!("{field}.repeat"),
            format!("{} is out of range (1 to {MAX_REPEAT})", pat.repeat),
        ));
    }
    for (i, Pulse { on_ms, off_ms }) in pat.pulses.iter().enumerate() {
        if !(MIN_PULSE_MS..=MAX_PULSE_MS).contains(on_ms) {
            return Err(BoardError::invalid(
                format!("{field}.pulses[{i}].on_ms"),
                format!("{on_ms} is out of range ({MIN_PULSE_MS} to {MAX_PULSE_MS} ms)"),
            ));
        }
        if *off_ms > MAX_PULSE_MS {
            return Err(BoardError::invalid(
                format!("{field}.pulses[{i}].off_ms"),
                format!("{off_ms} is out of range (0 to {MAX_PULSE_MS} ms)"),
            ));
        }
    }
    if pat.total_ms() > MAX_PATTERN_MS {
        return Err(BoardError::invalid(
            field,
            format!(
                "plays for {} ms in total; at most {MAX_PATTERN_MS}",
                pat.total_ms()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_bytes_decode_hex_and_named_escapes() {
        assert_eq!(
            EscapedBytes::parse(r"\x1b7,").unwrap().0,
            b"\x1b7,".to_vec()
        );
        assert_eq!(
            EscapedBytes::parse(r"\e8,\r\n\t\0\\").unwrap().0,
            b"\x1b8,\r\n\t\0\\".to_vec()
        );
        assert_eq!(EscapedBytes::parse("\r").unwrap().0, b"\r".to_vec());
        assert!(EscapedBytes::parse(r"\xZZ").is_err());
        assert!(EscapedBytes::parse(r"\x1").is_err());
        assert!(EscapedBytes::parse(r"\q").is_err());
        assert!(EscapedBytes::parse("abc\\").is_err());
    }

    #[test]
    fn device_error_names_path_and_fix() {
        let e = BoardError::device(
            DeviceKind::Gpio,
            Path::new("/dev/gpiochip0"),
            None,
            &io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("permission denied opening /dev/gpiochip0"),
            "{s}"
        );
        assert!(
            s.contains("group 'gpio'") && s.contains("docs/deploy.md"),
            "{s}"
        );

        let e = BoardError::device(
            DeviceKind::Serial,
            Path::new("/dev/ttyACM0"),
            None,
            &io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(e.to_string().contains("group 'dialout'"), "{e}");

        let e = BoardError::device(
            DeviceKind::Gpio,
            Path::new("/dev/gpiochip0"),
            Some(17),
            &io::Error::from_raw_os_error(16),
        );
        assert!(
            e.to_string().starts_with("/dev/gpiochip0 line 17 is busy"),
            "{e}"
        );
    }
}
