//! [`StdoutError`]: a write of a command's answer to stdout that failed; its reader
//! gone (`... | head -1`) is [`StdoutError::is_broken_pipe`], which `main` ends quietly
//! on (status 141).

use std::error::Error;
use std::fmt;
use std::io;

/// Writing the answer to stdout failed.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl StdoutError {
    /// True when stdout's reader went away: nothing more to say to anyone.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write stdout: {}", self.0)
    }
}

impl Error for StdoutError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

impl From<io::Error> for StdoutError {
    fn from(e: io::Error) -> Self {
        StdoutError(e)
    }
}
