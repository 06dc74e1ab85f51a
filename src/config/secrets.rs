//! Secrets from files: the ATS API key and the POS link token, refused when group or
//! others may read them; and the ATS URL check that runs before any key is used.

use std::path::Path;

use super::error::{invalid, ConfigError};
use crate::ats::AtsConfig;
use crate::redact::{read_secret_file, Secret, SecretFileError};

/// Checks an ATS base URL: https anywhere, http only to loopback.
pub fn check_ats_url(url: &str) -> Result<(), ConfigError> {
    // The client's own endpoint check, run early so a bad URL is a config error at
    // start (the key is checked separately, so a placeholder stands in for it here).
    AtsConfig {
        base_url: url.to_string(),
        apikey: Secret::new("placeholder"),
        ..AtsConfig::default()
    }
    .validate()
    .map(|_| ())
    .map_err(|e| invalid("ats.url", e.to_string()))
}

/// Reads the API key from a file that only its owner may read.
pub fn read_key_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = read_secret_file(path).map_err(|e| match e {
        SecretFileError::Read(source) => ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
        SecretFileError::TooOpen { mode } => ConfigError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        },
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(invalid(
            "ats.apikey_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret::new(key))
}

/// Shortest accepted `[pos] token`.
pub const MIN_POS_TOKEN: usize = 16;

/// Reads the POS link token from a file only its owner may read.
pub fn read_token_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = read_secret_file(path).map_err(|e| match e {
        SecretFileError::Read(source) => ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
        SecretFileError::TooOpen { mode } => invalid(
            "pos.token_file",
            format!(
                "{} has mode {mode:o}: it must not be readable by group or others (run `chmod 600 {}`)",
                path.display(),
                path.display()
            ),
        ),
    })?;
    Ok(Secret::new(text.trim()))
}
