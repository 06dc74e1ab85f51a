//! The configuration's error type.

use std::fmt;
use std::path::PathBuf;

/// Why the configuration could not be used. Messages name the field and never the key.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped fields.
    Parse { path: PathBuf, message: String },
    /// A value is out of range or inconsistent.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The API key file is readable by group or others.
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// A value from an environment override is out of range or inconsistent (the
    /// variable is named, not the config field it overrides: the file may not even
    /// set that field).
    InvalidEnv {
        var: &'static str,
        field: &'static str,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config {}: {source}", path.display())
            }
            ConfigError::Parse { path, message } => {
                write!(f, "invalid config {}: {message}", path.display())
            }
            ConfigError::Invalid { field, message } => {
                write!(f, "config field `{field}`: {message}")
            }
            ConfigError::InvalidEnv {
                var,
                field,
                message,
            } => write!(
                f,
                "environment variable {var} (overrides config field `{field}`): {message}"
            ),
            ConfigError::KeyFilePermissions { path, mode } => write!(
                f,
                "api key file {} has mode {:o}: it must not be readable by group or others \
                 (run `chmod 600 {}`)",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// An invalid-field error.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}
