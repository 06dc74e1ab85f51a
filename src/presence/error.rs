//! The Presence client's error type: one enum for every way a `ticket/validate` call
//! can fail.
//!
//! A Presence *answer* that is not `OKAY` (`NOT_FOUND`, `ALREADY_ENTERED`, ...) is not
//! an error: it is a [`super::Validation`] and maps to a deny reason of its own. Errors
//! are what leaves the agent without an answer (transport, timeout, budget, a status
//! the gateway refused, a body that is not a Presence answer). They name the phase,
//! and never contain the API key: every text from outside passes through
//! [`scrub`] before it is stored here.

use std::fmt;
use std::time::Duration;

pub use crate::ats::{Phase, RateWindow};

/// Why a Presence call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceError {
    /// The configuration cannot work (bad URL, plain http to a remote host, unreadable
    /// CA file). Found before any I/O.
    Config(String),
    /// HTTP 401 or 403: the Presence key is wrong (it is not the ATS key).
    Unauthorized {
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// The local budget refused the call before it was sent (or the server closed it
    /// with a 429 until its reset).
    RateBudget {
        /// Which window refused.
        window: RateWindow,
        /// When the budget opens again.
        retry_in: Duration,
    },
    /// Any other HTTP status than 200 (404 route, 429, 5xx).
    Http {
        /// The status.
        status: u16,
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// The exchange failed at `phase`.
    Transport {
        /// Where it failed.
        phase: Phase,
        /// The socket's or TLS library's text (scrubbed).
        detail: String,
    },
    /// The deadline passed before an answer arrived.
    Timeout {
        /// How long the call was given.
        after: Duration,
    },
    /// The answer is too large to be a Presence answer.
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The body is not a Presence answer (not JSON, no `result.status`).
    Decode(String),
}

impl PresenceError {
    /// The phase of a transport failure (`decode` for a body that is not an answer).
    pub fn phase(&self) -> Option<Phase> {
        match self {
            PresenceError::Transport { phase, .. } => Some(*phase),
            PresenceError::Decode(_) | PresenceError::TooLarge { .. } => Some(Phase::Decode),
            _ => None,
        }
    }

    /// True when the failure says Presence is unreachable or unwell (transport,
    /// timeout, 5xx, 429), as opposed to a setup problem or our own budget.
    pub fn is_outage(&self) -> bool {
        match self {
            PresenceError::Transport { .. } | PresenceError::Timeout { .. } => true,
            PresenceError::Http { status, .. } => *status >= 500 || *status == 429,
            PresenceError::Decode(_) | PresenceError::TooLarge { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresenceError::Config(m) => write!(f, "presence config: {m}"),
            PresenceError::Unauthorized { message } => write!(
                f,
                "presence unauthorized: check presence.apikey / CONCESSION_PRESENCE_APIKEY ({message})"
            ),
            PresenceError::RateBudget { window, retry_in } => write!(
                f,
                "presence {window} budget spent (opens in {} ms)",
                retry_in.as_millis()
            ),
            PresenceError::Http { status, message } => {
                write!(f, "presence http {status}: {message}")
            }
            PresenceError::Transport { phase, detail } => {
                write!(f, "presence {phase} failed: {detail}")
            }
            PresenceError::Timeout { after } => {
                write!(f, "presence timed out after {} ms", after.as_millis())
            }
            PresenceError::TooLarge { limit } => {
                write!(f, "presence answer larger than {limit} bytes")
            }
            PresenceError::Decode(m) => write!(f, "presence decode: {m}"),
        }
    }
}

impl std::error::Error for PresenceError {}

/// Error bodies are kept up to this many characters.
const MAX_MESSAGE: usize = 300;

/// `text` with every occurrence of `secret` replaced by `***`, shortened to a log
/// line's worth. An empty secret replaces nothing.
pub fn scrub(text: &str, secret: &str) -> String {
    let clean = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    };
    let mut out: String = clean.chars().take(MAX_MESSAGE).collect();
    if clean.chars().count() > MAX_MESSAGE {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_key_and_shortens() {
        let s = scrub("GET /v1?apikey=pk-secret failed pk-secret", "pk-secret");
        assert!(!s.contains("pk-secret"), "{s}");
        assert!(s.contains("apikey=***"));
        assert!(scrub(&"x".repeat(1000), "k").len() < 320);
    }

    #[test]
    fn outages_are_told_from_setup_problems() {
        let t = PresenceError::Timeout {
            after: Duration::from_millis(5),
        };
        assert!(t.is_outage());
        assert!(PresenceError::Http {
            status: 503,
            message: String::new()
        }
        .is_outage());
        assert!(!PresenceError::Unauthorized {
            message: String::new()
        }
        .is_outage());
        assert!(!PresenceError::RateBudget {
            window: RateWindow::Minute,
            retry_in: Duration::ZERO
        }
        .is_outage());
    }
}
