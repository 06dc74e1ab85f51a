//! The ATS client's configuration and its validation.
//!
//! [`AtsConfig`] is plain data (built by the agent's config layer or by tests);
//! [`AtsConfig::validate`] turns it into the [`Endpoint`] the client posts to, refusing
//! anything that cannot work before any I/O: a URL that is not http(s), plain `http`
//! to a host that is not loopback, path parts that would break the URL, an API key
//! that cannot travel in a header, zero budgets or poll intervals.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::redact::Secret;

use super::error::AtsError;

/// Everything the ATS client needs to know.
#[derive(Debug, Clone)]
pub struct AtsConfig {
    /// Scheme, host and port, e.g. `https://app.ticketmaster.com` (no trailing path).
    pub base_url: String,
    /// Product, e.g. `sth-customer` (test keys) or `sth-buy`.
    pub product: String,
    /// Resource, `ticketing_services.aspx`.
    pub resource: String,
    /// Data source name (URL `dsn=` and `command1.dsn`).
    pub dsn: String,
    /// The API key, sent in the `apikey` header only.
    pub apikey: Secret,
    /// `command1.uid`.
    pub uid: String,
    /// `header.src_sys_name`.
    pub src_sys_name: String,
    /// Trust only the certificates in this PEM file (default: the system trust store).
    pub ca_file: Option<PathBuf>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for receiving a response (headers, then body).
    pub read_timeout: Duration,
    /// Default deadline of one call, 202 polling included.
    pub call_timeout: Duration,
    /// First wait between 202 polls.
    pub poll_initial: Duration,
    /// Longest wait between 202 polls (the wait grows x1.5 per poll).
    pub poll_max: Duration,
    /// Responses larger than this are refused with [`AtsError::TooLarge`].
    pub max_response_bytes: usize,
    /// Client-side budget: calls (polls included) in any 60 s.
    pub rate_per_minute: u32,
    /// Client-side budget: calls (polls included) in any 24 h.
    pub rate_per_day: u32,
}

impl Default for AtsConfig {
    fn default() -> Self {
        AtsConfig {
            base_url: "https://app.ticketmaster.com".to_string(),
            product: "sth-customer".to_string(),
            resource: "ticketing_services.aspx".to_string(),
            dsn: "apigee".to_string(),
            apikey: Secret::default(),
            uid: "concession-agent".to_string(),
            src_sys_name: "concession-agent".to_string(),
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            poll_initial: Duration::from_millis(300),
            poll_max: Duration::from_secs(2),
            max_response_bytes: 4 * 1024 * 1024,
            rate_per_minute: 80,
            rate_per_day: 5000,
        }
    }
}

/// Where calls go, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `{base}/{product}/{resource}?dsn={dsn}`.
    pub url: String,
    /// True for `https`.
    pub tls: bool,
    /// True when the host is loopback.
    pub loopback: bool,
}

/// Characters allowed in product, resource and dsn (they go into the URL unescaped).
fn url_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// True for `localhost`, 127.0.0.0/8 and `::1` (with or without IPv6 brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl AtsConfig {
    /// Checks the configuration and builds the endpoint URL.
    pub fn validate(&self) -> Result<Endpoint, AtsError> {
        let bad = |m: &str| Err(AtsError::Config(m.to_string()));
        let base = self.base_url.trim().trim_end_matches('/');
        let uri: ureq::http::Uri = base
            .parse()
            .map_err(|_| AtsError::Config(format!("base_url {base:?} is not a url")))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return bad("base_url must start with http:// or https://"),
        };
        let Some(host) = uri.host() else {
            return bad("base_url has no host");
        };
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return bad("base_url must be scheme://host[:port] only");
        }
        let loopback = is_loopback_host(host);
        if !tls && !loopback {
            return Err(AtsError::Config(format!(
                "plain http is only allowed to loopback hosts, not {host}: use https://"
            )));
        }
        for (name, v) in [
            ("product", &self.product),
            ("resource", &self.resource),
            ("dsn", &self.dsn),
        ] {
            if !url_safe(v) {
                return Err(AtsError::Config(format!(
                    "{name} must be letters, digits, '-', '.', '_' or '~'"
                )));
            }
        }
        let key = self.apikey.expose();
        if key.is_empty() {
            return bad("api key is empty");
        }
        if key.len() > 512 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("api key has characters that cannot be sent in a header");
        }
        if self.poll_initial.is_zero() || self.poll_max < self.poll_initial {
            return bad("poll_initial must be > 0 and poll_max >= poll_initial");
        }
        if self.call_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.read_timeout.is_zero()
        {
            return bad("timeouts must be > 0");
        }
        if self.max_response_bytes == 0 {
            return bad("max_response_bytes must be > 0");
        }
        if self.rate_per_minute == 0 || self.rate_per_day == 0 {
            return bad("rate budgets must be at least 1");
        }
        Ok(Endpoint {
            url: format!("{base}/{}/{}?dsn={}", self.product, self.resource, self.dsn),
            tls,
            loopback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base: &str) -> AtsConfig {
        AtsConfig {
            base_url: base.to_string(),
            apikey: Secret::new("k"),
            ..AtsConfig::default()
        }
    }

    #[test]
    fn builds_the_post_url() {
        let e = cfg("https://app.ticketmaster.com/").validate().unwrap();
        assert_eq!(
            e.url,
            "https://app.ticketmaster.com/sth-customer/ticketing_services.aspx?dsn=apigee"
        );
        assert!(e.tls && !e.loopback);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            let e = cfg(ok).validate().unwrap();
            assert!(!e.tls && e.loopback, "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]",
            "ftp://127.0.0.1",
            "127.0.0.1:80",
            "https://host/path",
        ] {
            assert!(
                matches!(cfg(bad).validate(), Err(AtsError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_unsafe_parts_and_keys() {
        let mut c = cfg("https://h");
        c.dsn = "a&b".into();
        assert!(c.validate().is_err());
        let mut c = cfg("https://h");
        c.apikey = Secret::new("bad key\n");
        let e = c.validate().unwrap_err();
        assert!(!e.to_string().contains("bad key"));
        let mut c = cfg("https://h");
        c.apikey = Secret::default();
        assert!(c.validate().is_err());
        let mut c = cfg("https://h");
        c.poll_initial = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
