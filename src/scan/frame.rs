//! Framing scanner bytes into reads.
//!
//! Pure code: feed bytes (in any chunking, one at a time is fine), get [`Frame`]s.
//!
//! - CR, LF or CRLF end a read. CRLF counts once: an LF right after a CR is swallowed,
//!   so CR/LF split across two chunks never makes an extra empty read.
//! - Blank lines (nothing, or only spaces) are ignored silently: scanners and people
//!   press Enter twice, and a blank line carries nothing to deny.
//! - A configured prefix and suffix (up to [`MAX_AFFIX`] bytes each, e.g. STX/ETX) are
//!   stripped when present, then an AIM symbology identifier (`]` + letter + one
//!   character: `]C1`, `]L0`, `]Q1`, `]E0`), then surrounding spaces.
//! - Noise becomes [`Frame::Noise`] with a reason: a control character inside the read,
//!   invalid UTF-8, a read with nothing left after stripping, or overlong input.
//!   Overlong input is reported once, as soon as the limit is passed, and the rest of
//!   that line is discarded up to the next line end; the next read is framed normally.
//!
//! The buffer is a `heapless::Vec<u8, N>`: its capacity `N` (default
//! [`DEFAULT_MAX_LEN`] = 64 bytes) bounds a read, prefix and suffix included. A
//! smaller runtime limit can be set with [`FrameConfig::max_len`]. Rotating SafeTix
//! payloads can be longer than 64 bytes; terminals expecting phone tickets should use a
//! larger `N` (e.g. `Framer<256>`) so those are denied as `safetix_unresolved` rather
//! than `unreadable`.

use std::fmt;

use heapless::Vec as HVec;

use super::barcode::{self, ScanInput};
use super::unreadable::{Unreadable, UnreadableReason};

/// Default maximum length of one read, in bytes.
pub const DEFAULT_MAX_LEN: usize = 64;

/// Maximum length of a configured prefix or suffix, in bytes.
pub const MAX_AFFIX: usize = 8;

/// Why a framing configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameConfigError {
    /// Prefix or suffix longer than [`MAX_AFFIX`].
    AffixTooLong,
    /// Prefix or suffix contains CR or LF (those end reads).
    AffixHasLineEnd,
    /// `max_len` is zero.
    ZeroMaxLen,
}

impl fmt::Display for FrameConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameConfigError::AffixTooLong => {
                write!(f, "prefix/suffix longer than {MAX_AFFIX} bytes")
            }
            FrameConfigError::AffixHasLineEnd => f.write_str("prefix/suffix contains cr or lf"),
            FrameConfigError::ZeroMaxLen => f.write_str("max length is zero"),
        }
    }
}

impl std::error::Error for FrameConfigError {}

/// How a scanner's reads are wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameConfig {
    /// Maximum bytes of one read (prefix and suffix included). Clamped to the framer's
    /// capacity `N`.
    pub max_len: usize,
    /// Bytes the scanner puts before each read (stripped when present).
    pub prefix: HVec<u8, MAX_AFFIX>,
    /// Bytes the scanner puts after each read, before the line end (stripped when present).
    pub suffix: HVec<u8, MAX_AFFIX>,
    /// Strip a leading AIM symbology identifier (default true).
    pub strip_aim: bool,
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            max_len: DEFAULT_MAX_LEN,
            prefix: HVec::new(),
            suffix: HVec::new(),
            strip_aim: true,
        }
    }
}

impl FrameConfig {
    /// Sets the prefix.
    pub fn with_prefix(mut self, prefix: &[u8]) -> Result<Self, FrameConfigError> {
        self.prefix = affix(prefix)?;
        Ok(self)
    }

    /// Sets the suffix.
    pub fn with_suffix(mut self, suffix: &[u8]) -> Result<Self, FrameConfigError> {
        self.suffix = affix(suffix)?;
        Ok(self)
    }

    /// Sets the maximum read length.
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self, FrameConfigError> {
        if max_len == 0 {
            return Err(FrameConfigError::ZeroMaxLen);
        }
        self.max_len = max_len;
        Ok(self)
    }
}

fn affix(bytes: &[u8]) -> Result<HVec<u8, MAX_AFFIX>, FrameConfigError> {
    if bytes.iter().any(|b| *b == b'\r' || *b == b'\n') {
        return Err(FrameConfigError::AffixHasLineEnd);
    }
    HVec::from_slice(bytes).map_err(|_| FrameConfigError::AffixTooLong)
}

/// One framed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<const N: usize = DEFAULT_MAX_LEN> {
    /// The text of a read, stripped, valid UTF-8 without control characters, not empty.
    Text(heapless::String<N>),
    /// Noise.
    Noise(Unreadable),
}

impl<const N: usize> Frame<N> {
    /// Classifies the read: a barcode, a SafeTix payload, or unreadable.
    pub fn into_input(self) -> ScanInput {
        match self {
            Frame::Text(t) => barcode::classify(&t),
            Frame::Noise(u) => ScanInput::Unreadable(u),
        }
    }
}

/// A byte-stream framer with a bounded buffer of `N` bytes.
#[derive(Debug, Clone)]
pub struct Framer<const N: usize = DEFAULT_MAX_LEN> {
    cfg: FrameConfig,
    buf: HVec<u8, N>,
    after_cr: bool,
    discarding: bool,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Framer::new(FrameConfig::default())
    }
}

impl<const N: usize> Framer<N> {
    /// A framer with this configuration.
    pub fn new(cfg: FrameConfig) -> Self {
        Framer {
            cfg,
            buf: HVec::new(),
            after_cr: false,
            discarding: false,
        }
    }

    /// The effective maximum read length (configuration clamped to capacity).
    pub fn max_len(&self) -> usize {
        self.cfg.max_len.clamp(1, N.max(1))
    }

    /// Feeds one byte; returns a frame when this byte completes one.
    pub fn push_byte(&mut self, b: u8) -> Option<Frame<N>> {
        match b {
            b'\r' => {
                self.after_cr = true;
                self.end_line()
            }
            b'\n' => {
                if self.after_cr {
                    self.after_cr = false;
                    return None;
                }
                self.end_line()
            }
            _ => {
                self.after_cr = false;
                if self.discarding {
                    return None;
                }
                if self.buf.len() >= self.max_len() || self.buf.push(b).is_err() {
                    self.buf.clear();
                    self.discarding = true;
                    return Some(Frame::Noise(Unreadable::new(
                        UnreadableReason::TooLong,
                        format!("more than {} bytes", self.max_len()),
                    )));
                }
                None
            }
        }
    }

    /// Feeds bytes, calling `out` for every completed frame.
    pub fn feed(&mut self, bytes: &[u8], mut out: impl FnMut(Frame<N>)) {
        for &b in bytes {
            if let Some(f) = self.push_byte(b) {
                out(f);
            }
        }
    }

    /// Feeds bytes, calling `out` with every completed read classified.
    pub fn feed_inputs(&mut self, bytes: &[u8], mut out: impl FnMut(ScanInput)) {
        self.feed(bytes, |f| out(f.into_input()));
    }

    /// End of input: a last read without a line end still counts.
    pub fn finish(&mut self) -> Option<Frame<N>> {
        self.after_cr = false;
        self.end_line()
    }

    fn end_line(&mut self) -> Option<Frame<N>> {
        if self.discarding {
            self.discarding = false;
            self.buf.clear();
            return None;
        }
        let line = std::mem::take(&mut self.buf);
        self.process(&line)
    }

    fn process(&self, line: &[u8]) -> Option<Frame<N>> {
        if line.iter().all(|b| *b == b' ') {
            return None;
        }
        let mut data = line;
        if !self.cfg.prefix.is_empty() {
            data = data.strip_prefix(&self.cfg.prefix[..]).unwrap_or(data);
        }
        if !self.cfg.suffix.is_empty() {
            data = data.strip_suffix(&self.cfg.suffix[..]).unwrap_or(data);
        }
        data = trim_spaces(data);
        if self.cfg.strip_aim {
            data = strip_aim(data);
        }
        data = trim_spaces(data);
        if data.is_empty() {
            return Some(Frame::Noise(Unreadable::new(
                UnreadableReason::Empty,
                "no data after prefix/suffix/identifier",
            )));
        }
        if let Some((i, b)) = data.iter().enumerate().find(|(_, b)| b.is_ascii_control()) {
            return Some(Frame::Noise(Unreadable::new(
                UnreadableReason::ControlChar,
                format!("byte 0x{b:02x} at {i}"),
            )));
        }
        let text = match std::str::from_utf8(data) {
            Ok(t) => t,
            Err(e) => {
                return Some(Frame::Noise(Unreadable::new(
                    UnreadableReason::InvalidUtf8,
                    format!("at byte {}", e.valid_up_to()),
                )))
            }
        };
        // C1 controls (U+0080..=U+009F, e.g. NEL, CSI) are control characters too.
        if let Some((i, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
            return Some(Frame::Noise(Unreadable::new(
                UnreadableReason::ControlChar,
                format!("U+{:04X} at {i}", u32::from(c)),
            )));
        }
        let mut s = heapless::String::<N>::new();
        if s.push_str(text).is_err() {
            // Cannot happen: the buffer held these bytes. Report rather than panic.
            return Some(Frame::Noise(Unreadable::new(
                UnreadableReason::TooLong,
                format!("more than {N} bytes"),
            )));
        }
        Some(Frame::Text(s))
    }
}

/// Strips a leading AIM symbology identifier (`]` + letter + one character) if present.
pub fn strip_aim(data: &[u8]) -> &[u8] {
    match data {
        [b']', letter, modifier, rest @ ..]
            if letter.is_ascii_alphabetic() && modifier.is_ascii_graphic() =>
        {
            rest
        }
        _ => data,
    }
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames<const N: usize>(f: &mut Framer<N>, bytes: &[u8]) -> Vec<Frame<N>> {
        let mut out = Vec::new();
        f.feed(bytes, |fr| out.push(fr));
        out
    }

    fn texts(bytes: &[u8]) -> Vec<String> {
        let mut f = Framer::<64>::default();
        frames(&mut f, bytes)
            .into_iter()
            .map(|fr| match fr {
                Frame::Text(t) => t.to_string(),
                Frame::Noise(u) => format!("!{}", u.reason.as_str()),
            })
            .collect()
    }

    fn one_at_a_time(bytes: &[u8]) -> Vec<String> {
        let mut f = Framer::<64>::default();
        let mut out = Vec::new();
        for b in bytes {
            for fr in frames(&mut f, std::slice::from_ref(b)) {
                out.push(match fr {
                    Frame::Text(t) => t.to_string(),
                    Frame::Noise(u) => format!("!{}", u.reason.as_str()),
                });
            }
        }
        out
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_read() {
        assert_eq!(texts(b"111\r"), ["111"]);
        assert_eq!(texts(b"111\n"), ["111"]);
        assert_eq!(texts(b"111\r\n"), ["111"]);
        assert_eq!(
            texts(b"111\r\n222\n333\r444\r\n"),
            ["111", "222", "333", "444"]
        );
    }

    #[test]
    fn crlf_split_across_chunks_counts_once() {
        let mut f = Framer::<64>::default();
        let a = frames(&mut f, b"111\r");
        let b = frames(&mut f, b"\n222\r");
        let c = frames(&mut f, b"\n");
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_reads() {
        let input = b"]C1100000000001\r\n\r\n\x07bad\r\n123456789012j\r999\n";
        assert_eq!(one_at_a_time(input), texts(input));
        assert_eq!(
            one_at_a_time(input),
            ["100000000001", "!control_char", "123456789012j", "999"]
        );
    }

    #[test]
    fn blank_lines_are_ignored_silently() {
        assert!(texts(b"\n\n\r\n\r\r   \n").is_empty());
        assert_eq!(texts(b"\n\n111\n\n"), ["111"]);
    }

    #[test]
    fn lf_cr_is_two_line_ends_but_no_extra_read() {
        assert_eq!(texts(b"111\n\r222\n"), ["111", "222"]);
    }

    #[test]
    fn strips_aim_identifiers() {
        for aim in ["]C1", "]L0", "]Q1", "]E0", "]d2", "]Q3"] {
            let line = format!("{aim}100000000001\r\n");
            assert_eq!(texts(line.as_bytes()), ["100000000001"], "{aim}");
        }
    }

    #[test]
    fn aim_stripping_can_be_turned_off() {
        let cfg = FrameConfig {
            strip_aim: false,
            ..FrameConfig::default()
        };
        let mut f = Framer::<64>::new(cfg);
        let out = frames(&mut f, b"]C1123\n");
        assert_eq!(
            out,
            [Frame::Text(heapless::String::try_from("]C1123").unwrap())]
        );
    }

    #[test]
    fn bracket_without_letter_is_not_an_aim_identifier() {
        assert_eq!(texts(b"]123\n"), ["]123"]);
    }

    #[test]
    fn only_an_aim_identifier_is_empty_noise() {
        assert_eq!(texts(b"]C1\n"), ["!empty"]);
    }

    #[test]
    fn strips_configured_prefix_and_suffix() {
        let cfg = FrameConfig::default()
            .with_prefix(b"\x02")
            .unwrap()
            .with_suffix(b"\x03")
            .unwrap();
        let mut f = Framer::<64>::new(cfg);
        let out: Vec<_> = frames(
            &mut f,
            b"\x02]C1100000000001\x03\r\n\x02\x03\n100000000002\n",
        )
        .into_iter()
        .map(|fr| match fr {
            Frame::Text(t) => t.to_string(),
            Frame::Noise(u) => format!("!{}", u.reason.as_str()),
        })
        .collect();
        assert_eq!(out, ["100000000001", "!empty", "100000000002"]);
    }

    #[test]
    fn refuses_bad_affixes() {
        assert_eq!(
            FrameConfig::default().with_prefix(b"123456789"),
            Err(FrameConfigError::AffixTooLong)
        );
        assert_eq!(
            FrameConfig::default().with_suffix(b"\r"),
            Err(FrameConfigError::AffixHasLineEnd)
        );
        assert_eq!(
            FrameConfig::default().with_max_len(0),
            Err(FrameConfigError::ZeroMaxLen)
        );
    }

    #[test]
    fn control_characters_are_noise() {
        assert_eq!(texts(b"1234\x1b[31m5678\n"), ["!control_char"]);
        assert_eq!(texts(b"12\t34\n"), ["!control_char"]);
        assert_eq!(texts(b"\x00\n"), ["!control_char"]);
        assert_eq!(texts(b"1234\x7f\n"), ["!control_char"]);
        let mut f = Framer::<64>::default();
        match &frames(&mut f, b"ab\x07\n")[0] {
            Frame::Noise(u) => assert_eq!(u.detail, "byte 0x07 at 2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_is_noise() {
        assert_eq!(texts(b"12\xff34\n"), ["!invalid_utf8"]);
        assert_eq!(texts(b"\xc3\n"), ["!invalid_utf8"]);
        assert_eq!(texts("caf\u{e9}\n".as_bytes()), ["caf\u{e9}"]);
    }

    #[test]
    fn overlong_is_reported_once_then_recovers() {
        let mut input = vec![b'9'; 500];
        input.extend_from_slice(b"\r\n100000000001\r\n");
        assert_eq!(texts(&input), ["!too_long", "100000000001"]);
        assert_eq!(one_at_a_time(&input), ["!too_long", "100000000001"]);
    }

    #[test]
    fn exactly_max_len_is_fine_one_more_is_not() {
        let cfg = FrameConfig::default().with_max_len(12).unwrap();
        let mut f = Framer::<64>::new(cfg);
        let ok = frames(&mut f, b"100000000001\n");
        assert!(matches!(&ok[0], Frame::Text(t) if t.as_str() == "100000000001"));
        let long = frames(&mut f, b"1000000000012\n");
        assert!(matches!(&long[0], Frame::Noise(u) if u.reason == UnreadableReason::TooLong));
        assert_eq!(long.len(), 1);
    }

    #[test]
    fn capacity_bounds_the_read_even_if_config_says_more() {
        let cfg = FrameConfig::default().with_max_len(1000).unwrap();
        let mut f = Framer::<16>::new(cfg);
        assert_eq!(f.max_len(), 16);
        let out = frames(&mut f, b"12345678901234567\n1\n");
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Frame::Noise(u) if u.reason == UnreadableReason::TooLong));
    }

    #[test]
    fn overlong_without_line_end_never_reports_twice() {
        let mut f = Framer::<64>::default();
        let out = frames(&mut f, &[b'1'; 10_000]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn finish_flushes_a_last_read_without_line_end() {
        let mut f = Framer::<64>::default();
        assert!(frames(&mut f, b"100000000001").is_empty());
        assert!(matches!(f.finish(), Some(Frame::Text(t)) if t.as_str() == "100000000001"));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn surrounding_spaces_are_trimmed() {
        assert_eq!(texts(b"  100000000001  \n"), ["100000000001"]);
    }

    #[test]
    fn frames_classify_into_inputs() {
        let mut f = Framer::<64>::default();
        let mut inputs = Vec::new();
        f.feed_inputs(b"]C1100000000001\nhello\n\xff\n", |i| inputs.push(i));
        assert!(matches!(&inputs[0], ScanInput::Barcode(b) if b.as_str() == "100000000001"));
        assert!(
            matches!(&inputs[1], ScanInput::Unreadable(u) if u.reason == UnreadableReason::NotABarcode)
        );
        assert!(
            matches!(&inputs[2], ScanInput::Unreadable(u) if u.reason == UnreadableReason::InvalidUtf8)
        );
    }
}
