//! Keeping secrets and customer data out of logs.
//!
//! The API key lives in [`Secret`], whose `Debug` and `Display` never show it. Barcodes
//! are customer data that can be replayed at a gate, so logs and POS lines carry
//! [`mask_barcode`]'s form: enough to tell tickets apart, not enough to forge one.

use std::fmt;

/// A string that must never be printed (the ATS API key).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that must send it (the `apikey` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret file could not be used.
#[derive(Debug)]
pub enum SecretFileError {
    /// It could not be read (missing, no permission).
    Read(std::io::Error),
    /// Group or others may read it: the secret would be any local user's. `mode` is
    /// its permission bits.
    TooOpen {
        /// The file's permission bits (`mode & 0o777`).
        mode: u32,
    },
}

/// Reads a secret (API key, POS token, database password) from a file that only its
/// owner may read; the text is returned as it is, for the caller to trim. Every secret
/// file goes through here, so one rule decides what "private" means.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, SecretFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(SecretFileError::Read)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SecretFileError::TooOpen { mode: mode & 0o777 });
        }
    }
    std::fs::read_to_string(path).map_err(SecretFileError::Read)
}

/// Masks a barcode for logs and POS lines: the last four characters stay, the rest
/// become `*` (short values are masked whole).
pub fn mask_barcode(barcode: &str) -> String {
    let chars: Vec<char> = barcode.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep = 4;
    let mut out = "*".repeat(chars.len() - keep);
    out.extend(&chars[chars.len() - keep..]);
    out
}

/// `e`'s text with `barcode` masked, for a log line: a broken or hostile ATS may quote
/// the request in its error text, and that must not put a full barcode in the log.
pub(crate) fn masked_error(e: &dyn std::fmt::Display, barcode: &str) -> String {
    let text = e.to_string();
    if barcode.is_empty() {
        return text;
    }
    text.replace(barcode, &mask_barcode(barcode))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sandbox-key");
        assert!(!format!("{s:?} {s}").contains("sandbox-key"));
        assert_eq!(s.expose(), "sandbox-key");
    }

    #[test]
    fn mask_keeps_last_four() {
        assert_eq!(mask_barcode("123456789012"), "********9012");
        assert_eq!(mask_barcode("12345"), "*****");
    }
}
