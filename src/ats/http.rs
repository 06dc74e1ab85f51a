//! One HTTP exchange: POST the envelope, read status, headers and a capped body.
//!
//! This is the only file that talks to ureq. It turns ureq's errors into
//! [`AtsError`]s that name the phase that failed (connect, tls, send, receive), turns
//! an over-size body into [`AtsError::TooLarge`] without reading it all, and never
//! follows redirects (a POST must not wander). 4xx/5xx come back as replies, not
//! errors (`http_status_as_error(false)`); the caller maps them.

use std::io;
use std::time::Duration;

use ureq::Agent;

use super::config::{AtsConfig, Endpoint};
use super::error::{AtsError, Phase};
use super::tls;

/// Response headers the client reads besides `Set-Cookie`.
const KEPT_HEADERS: [&str; 5] = [
    "rate-limit",
    "rate-limit-available",
    "rate-limit-over",
    "rate-limit-reset",
    "retry-after",
];

/// What came back from one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Every `Set-Cookie` value, in order.
    pub set_cookies: Vec<String>,
    /// Rate-limit headers that were present (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body (at most `max_response_bytes`).
    pub body: Vec<u8>,
}

impl Reply {
    /// A kept header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP side of the client: a ureq agent bound to one endpoint.
#[derive(Debug, Clone)]
pub struct Http {
    agent: Agent,
    url: String,
    max_response_bytes: usize,
}

impl Http {
    /// Builds the agent: TLS roots, timeouts, no redirects, no status errors.
    pub fn new(cfg: &AtsConfig, endpoint: &Endpoint) -> Result<Self, AtsError> {
        let tls = tls::tls_config(cfg.ca_file.as_deref(), endpoint.tls)?;
        // Loopback (the sandbox) never goes through a proxy; remote hosts honour the
        // usual proxy environment variables.
        let proxy = if endpoint.loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .https_only(false)
            .tls_config(tls)
            .proxy(proxy)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_recv_response(Some(cfg.read_timeout))
            .timeout_recv_body(Some(cfg.read_timeout))
            .timeout_send_request(Some(cfg.read_timeout))
            .timeout_send_body(Some(cfg.read_timeout))
            .user_agent(concat!("concession-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Http {
            agent: config.into(),
            url: endpoint.url.clone(),
            max_response_bytes: cfg.max_response_bytes,
        })
    }

    /// POSTs `body` with the key and the call's cookies. `within` bounds the whole
    /// exchange (the call's deadline); hitting it is [`AtsError::Timeout`] with zero
    /// counters, which the caller fills in.
    pub fn post(
        &self,
        body: &str,
        apikey: &str,
        cookie: Option<&str>,
        within: Duration,
    ) -> Result<Reply, AtsError> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("apikey", apikey)
            .header("Content-Type", "application/json");
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let req = req.config().timeout_global(Some(within)).build();
        let mut resp = req
            .send(body)
            .map_err(|e| with_fix(classify(e), &self.url))?;
        let status = resp.status().as_u16();
        let set_cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let v = resp.headers().get(*name)?.to_str().ok()?;
                Some((name.to_string(), v.to_string()))
            })
            .collect();
        let limit = self.max_response_bytes;
        let body = read_capped(&mut resp, limit).map_err(|e| match e {
            CappedRead::TooLarge => AtsError::TooLarge { limit },
            CappedRead::Failed(other) => match classify(other) {
                AtsError::Transport { detail, .. } => AtsError::Transport {
                    phase: Phase::Receive,
                    detail,
                },
                mapped => mapped,
            },
        })?;
        Ok(Reply {
            status,
            set_cookies,
            headers,
            body,
        })
    }
}

/// Why [`read_capped`] returned no body.
pub(crate) enum CappedRead {
    /// The body is larger than the limit (announced, or found while reading).
    TooLarge,
    /// Reading failed otherwise.
    Failed(ureq::Error),
}

/// Reads a response body of at most `limit` bytes: refused at once when the server
/// announces more, and cut off while reading when it sends more (a hostile or broken
/// server cannot make a terminal buffer an unbounded answer). The ATS and Presence
/// clients both read through it.
pub(crate) fn read_capped(
    resp: &mut ureq::http::Response<ureq::Body>,
    limit: usize,
) -> Result<Vec<u8>, CappedRead> {
    if resp
        .body()
        .content_length()
        .is_some_and(|n| n > limit as u64)
    {
        return Err(CappedRead::TooLarge);
    }
    resp.body_mut()
        .with_config()
        .limit(limit as u64)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => CappedRead::TooLarge,
            other => CappedRead::Failed(other),
        })
}

/// A connect or TLS failure, with what to check: the URL it was going to (the
/// detail of a refused connection names no address) and, for a certificate no
/// trusted CA signed, `ats.ca_file`.
fn with_fix(e: AtsError, url: &str) -> AtsError {
    match e {
        AtsError::Transport {
            phase: phase @ (Phase::Connect | Phase::Tls),
            detail,
        } => {
            // BadSignature: signed by another CA of the same name (a test CA).
            let hint = if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
                "; the server's certificate is not signed by a CA this agent trusts: set \
                 ats.ca_file to that CA's PEM, or add it to the system trust store"
            } else if phase == Phase::Connect {
                "; check ats.url / CONCESSION_ATS_URL and that ATS is reachable"
            } else {
                ""
            };
            AtsError::Transport {
                phase,
                detail: format!("{detail} (url {url}{hint})"),
            }
        }
        e => e,
    }
}

fn transport(phase: Phase, e: &dyn std::fmt::Display) -> AtsError {
    AtsError::Transport {
        phase,
        detail: e.to_string(),
    }
}

/// Names the phase of a ureq error.
pub fn classify(e: ureq::Error) -> AtsError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    match &e {
        E::Timeout(T::Global | T::PerCall) => AtsError::Timeout {
            elapsed: Duration::ZERO,
            polls: 0,
        },
        E::Timeout(T::Resolve | T::Connect) => transport(Phase::Connect, &e),
        E::Timeout(T::SendRequest | T::SendBody | T::PerWrite) => transport(Phase::Send, &e),
        E::Timeout(_) => transport(Phase::Receive, &e),
        E::HostNotFound | E::ConnectionFailed => transport(Phase::Connect, &e),
        E::Tls(_) | E::Pem(_) | E::Rustls(_) => transport(Phase::Tls, &e),
        E::Io(io) => transport(io_phase(io), &e),
        E::Protocol(_) => transport(Phase::Receive, &e),
        E::BodyExceedsLimit(_) | E::BadUri(_) | E::Http(_) => transport(Phase::Send, &e),
        _ => transport(Phase::Receive, &e),
    }
}

fn io_phase(io: &io::Error) -> Phase {
    use io::ErrorKind as K;
    let inner_is_tls = io
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if inner_is_tls {
        return Phase::Tls;
    }
    match io.kind() {
        K::ConnectionRefused
        | K::AddrNotAvailable
        | K::AddrInUse
        | K::NetworkUnreachable
        | K::HostUnreachable
        | K::NetworkDown => Phase::Connect,
        K::BrokenPipe | K::WriteZero => Phase::Send,
        _ => Phase::Receive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_io_errors_by_phase() {
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(refused).phase(), Some(Phase::Connect));
        let reset = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(classify(reset).phase(), Some(Phase::Receive));
        let pipe = ureq::Error::Io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(classify(pipe).phase(), Some(Phase::Send));
        let tls = ureq::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::DecryptError,
        ));
        assert_eq!(classify(tls).phase(), Some(Phase::Tls));
        assert!(matches!(
            classify(ureq::Error::Timeout(ureq::Timeout::Global)),
            AtsError::Timeout { .. }
        ));
        assert_eq!(
            classify(ureq::Error::Timeout(ureq::Timeout::Connect)).phase(),
            Some(Phase::Connect)
        );
        assert_eq!(
            classify(ureq::Error::HostNotFound).phase(),
            Some(Phase::Connect)
        );
    }
}
