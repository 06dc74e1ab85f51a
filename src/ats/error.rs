//! The ATS client's error type: one enum for every way a call can fail.
//!
//! Errors name what failed (the HTTP status, the `command1.result`, the transport
//! phase, the local rate budget) and keep the server's or the socket's text. They never
//! contain the API key: every text that comes from outside passes through the client's
//! scrubber before it is stored here.

use std::fmt;
use std::time::Duration;

/// Where in an exchange a transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving the host or opening the TCP connection.
    Connect,
    /// The TLS handshake (certificate not trusted, protocol mismatch).
    Tls,
    /// Writing the request.
    Send,
    /// Waiting for or reading the response.
    Receive,
    /// Any failure on a poll request of a 202 cycle (the detail names the inner phase).
    Poll,
    /// The body arrived but is not an ATS envelope (not JSON, no `command1`, wrong `ref`).
    Decode,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Send => "send",
            Phase::Receive => "receive",
            Phase::Poll => "poll",
            Phase::Decode => "decode",
        })
    }
}

/// Which budget refused a call locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateWindow {
    /// The rolling one-minute budget (`rate_per_minute`).
    Minute,
    /// The rolling one-day budget (`rate_per_day`).
    Day,
    /// The server said the budget is spent (`429`, `Rate-Limit-Available: 0`,
    /// `Rate-Limit-Over`), until its reset.
    Server,
}

impl fmt::Display for RateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateWindow::Minute => "per-minute",
            RateWindow::Day => "per-day",
            RateWindow::Server => "server",
        })
    }
}

/// Why an ATS call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtsError {
    /// The configuration cannot work (bad URL, plain http to a remote host, unreadable
    /// CA file, reserved raw field). Found before any I/O.
    Config(String),
    /// HTTP 401: the key is wrong or may not use this DSN. Keeps the server's text.
    Unauthorized {
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// HTTP 404: unknown product or resource (a setup problem).
    NotFound {
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// HTTP 429: the server's rate limit. The local budget stays closed until
    /// `retry_after` (or a minute when the server gave no hint).
    RateLimited {
        /// When the server says calls may resume, if it said.
        retry_after: Option<Duration>,
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// HTTP 503: the backend is down.
    Unavailable {
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// Any other unexpected HTTP status (3xx, other 4xx and 5xx).
    Status {
        /// The HTTP status code.
        status: u16,
        /// The response body (scrubbed, shortened).
        message: String,
    },
    /// ATS handled the call and answered with an error (`header.result` or
    /// `command1.result` not 0).
    Api {
        /// The non-zero result code.
        code: i64,
        /// `sql_code` (100 = no rows matched), 0 when absent.
        sql_code: i64,
        /// `error_detail` or `error_desc`.
        message: String,
    },
    /// The server no longer knows this call's poll token (`No data for token ...`):
    /// the call must start over.
    NoDataForToken {
        /// The server's text.
        message: String,
    },
    /// Refused locally before sending: the rate budget is spent.
    RateBudget {
        /// The budget that is spent.
        window: RateWindow,
        /// How long until one more call fits.
        retry_after: Duration,
    },
    /// The network failed; `phase` names where.
    Transport {
        /// Where it failed.
        phase: Phase,
        /// The underlying error's text.
        detail: String,
    },
    /// The call's deadline passed (while waiting, polling or receiving).
    Timeout {
        /// Time spent on the call.
        elapsed: Duration,
        /// Poll requests made after the first 202.
        polls: u32,
    },
    /// The response body is larger than `max_response_bytes`.
    TooLarge {
        /// The configured cap, in bytes.
        limit: usize,
    },
    /// A field of an answer has a value the client refuses (negative or malformed
    /// amount, wrong type, absurd length, chunks that do not advance).
    Decode {
        /// The wire field (e.g. `av_barcodes[2].balance`).
        field: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl AtsError {
    /// True when trying the same call again later may succeed: transport failures,
    /// timeouts, 429, 503 and other 5xx, an expired poll token. False for 401, 404,
    /// API errors, local refusals, configuration and decoding problems.
    pub fn is_retryable(&self) -> bool {
        match self {
            AtsError::Transport { .. }
            | AtsError::Timeout { .. }
            | AtsError::RateLimited { .. }
            | AtsError::Unavailable { .. }
            | AtsError::NoDataForToken { .. } => true,
            AtsError::Status { status, .. } => (500..600).contains(status),
            AtsError::Config(_)
            | AtsError::Unauthorized { .. }
            | AtsError::NotFound { .. }
            | AtsError::Api { .. }
            | AtsError::RateBudget { .. }
            | AtsError::TooLarge { .. }
            | AtsError::Decode { .. } => false,
        }
    }

    /// The transport phase, for [`AtsError::Transport`].
    pub fn phase(&self) -> Option<Phase> {
        match self {
            AtsError::Transport { phase, .. } => Some(*phase),
            _ => None,
        }
    }

    pub(crate) fn decode(field: impl Into<String>, detail: impl Into<String>) -> Self {
        AtsError::Decode {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for AtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtsError::Config(m) => write!(f, "invalid ats config: {m}"),
            AtsError::Unauthorized { message } => write!(f, "unauthorized (401): {message}"),
            AtsError::NotFound { message } => write!(f, "not found (404): {message}"),
            AtsError::RateLimited {
                retry_after,
                message,
            } => match retry_after {
                Some(d) => write!(f, "rate limited (429), retry in {d:?}: {message}"),
                None => write!(f, "rate limited (429): {message}"),
            },
            AtsError::Unavailable { message } => write!(f, "service unavailable (503): {message}"),
            AtsError::Status { status, message } => {
                write!(f, "unexpected http status {status}: {message}")
            }
            AtsError::Api {
                code,
                sql_code,
                message,
            } => write!(f, "ats error {code} (sql {sql_code}): {message}"),
            AtsError::NoDataForToken { message } => write!(f, "poll token expired: {message}"),
            AtsError::RateBudget {
                window,
                retry_after,
            } => write!(f, "{window} rate budget spent, retry in {retry_after:?}"),
            AtsError::Transport { phase, detail } => write!(f, "{phase} failed: {detail}"),
            AtsError::Timeout { elapsed, polls } => {
                write!(f, "deadline passed after {elapsed:?} and {polls} polls")
            }
            AtsError::TooLarge { limit } => write!(f, "response larger than {limit} bytes"),
            AtsError::Decode { field, detail } => write!(f, "bad field {field}: {detail}"),
        }
    }
}

impl std::error::Error for AtsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_retryable_errors() {
        let t = AtsError::Transport {
            phase: Phase::Connect,
            detail: "refused".into(),
        };
        assert!(t.is_retryable());
        assert_eq!(t.phase(), Some(Phase::Connect));
        assert!(AtsError::Unavailable {
            message: String::new()
        }
        .is_retryable());
        assert!(AtsError::RateLimited {
            retry_after: None,
            message: String::new()
        }
        .is_retryable());
        assert!(AtsError::Timeout {
            elapsed: Duration::ZERO,
            polls: 0
        }
        .is_retryable());
        assert!(AtsError::Status {
            status: 502,
            message: String::new()
        }
        .is_retryable());
        assert!(!AtsError::Status {
            status: 400,
            message: String::new()
        }
        .is_retryable());
        assert!(!AtsError::Unauthorized {
            message: String::new()
        }
        .is_retryable());
        assert!(!AtsError::NotFound {
            message: String::new()
        }
        .is_retryable());
        assert!(!AtsError::Api {
            code: 5301,
            sql_code: 100,
            message: String::new()
        }
        .is_retryable());
        assert!(!AtsError::RateBudget {
            window: RateWindow::Minute,
            retry_after: Duration::ZERO
        }
        .is_retryable());
    }

    #[test]
    fn messages_are_short_and_lowercase() {
        let e = AtsError::Transport {
            phase: Phase::Tls,
            detail: "bad cert".into(),
        };
        assert_eq!(e.to_string(), "tls failed: bad cert");
    }
}
