//! The sandbox's error type.

use std::fmt;

/// What went wrong starting or driving the sandbox.
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// Could not bind the listening socket.
    Bind(std::io::Error),
    /// Other I/O (reading files, spawning threads).
    Io(std::io::Error),
    /// The data set is invalid.
    Data(String),
    /// The certificate or key is invalid.
    Tls(String),
    /// No such barcode or value line.
    NotFound(String),
    /// A setting is out of range.
    Config(String),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Bind(e) => write!(f, "bind: {e}"),
            SandboxError::Io(e) => write!(f, "io: {e}"),
            SandboxError::Data(m) => write!(f, "data set: {m}"),
            SandboxError::Tls(m) => write!(f, "tls: {m}"),
            SandboxError::NotFound(m) => write!(f, "not found: {m}"),
            SandboxError::Config(m) => write!(f, "config: {m}"),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Bind(e) | SandboxError::Io(e) => Some(e),
            _ => None,
        }
    }
}
