//! The Presence client's configuration (plain data) and its validation.
//!
//! Built by the agent's config layer from `[presence]`, or by tests. [`PresenceConfig::validate`]
//! refuses what cannot work before any I/O: a URL that is not http(s), plain http to a
//! host that is not loopback, an empty key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::ats::is_loopback_host;
use crate::money::Cents;
use crate::redact::Secret;

use super::error::PresenceError;
use super::wire::{Device, VALIDATE_PATH};

/// Everything the Presence client and the SafeTix resolution need.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// Scheme, host and port (`https://app.ticketmaster.com`); the route is appended.
    pub base_url: String,
    /// The Presence key (not the ATS key), sent as the `apikey` query parameter.
    pub apikey: Secret,
    /// Device fields of every request.
    pub device: Device,
    /// Trust only the certificates in this PEM file (default: the system trust store).
    pub ca_file: Option<PathBuf>,
    /// TCP + TLS connect timeout (a call is also bounded by the scan's deadline).
    pub connect_timeout: Duration,
    /// Answers larger than this are refused.
    pub max_response_bytes: usize,
    /// Client-side budget: calls in any 60 s.
    pub rate_per_minute: u32,
    /// Client-side budget: calls in any 24 h.
    pub rate_per_day: u32,
    /// Presence `eventId` → Archtics event name; an id not listed is taken as the
    /// Archtics name itself (compared without case).
    pub event_ids: BTreeMap<String, String>,
    /// The most one ticket may be approved for offline from a cached token mapping, per
    /// outage (a replayed screenshot cannot be told apart offline). 0 turns offline
    /// SafeTix approvals off.
    pub offline_cap_cents: Cents,
    /// What `ALREADY_ENTERED` means here. A concession stand stands behind the gates,
    /// where every fan's ticket has been scanned in: [`EnteredRule::Accept`] (the default)
    /// resolves its seat as `OKAY` does. A stand outside the gates (a kiosk on the
    /// concourse before entry) may choose [`EnteredRule::Deny`].
    pub already_entered: EnteredRule,
}

/// What an `ALREADY_ENTERED` answer means at this stand (`presence.already_entered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnteredRule {
    /// Inside the gates: the ticket was scanned in, as every fan's is; its seat is
    /// resolved as for `OKAY`.
    #[default]
    Accept,
    /// Denied `safetix_already_entered`.
    Deny,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            base_url: "https://app.ticketmaster.com".into(),
            apikey: Secret::default(),
            device: Device {
                venue_id: String::new(),
                gate_name: "concessions".into(),
                gate_id: 0,
                device_id: 0,
            },
            ca_file: None,
            connect_timeout: Duration::from_secs(2),
            max_response_bytes: 64 * 1024,
            rate_per_minute: 60,
            rate_per_day: 5000,
            event_ids: BTreeMap::new(),
            offline_cap_cents: 1000,
            already_entered: EnteredRule::Accept,
        }
    }
}

/// Where calls go, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEndpoint {
    /// `{base}/presence/v1/ticket/validate` (the key is added per call, never stored
    /// in a printable URL).
    pub url: String,
    /// True for https.
    pub tls: bool,
    /// True when the host is loopback.
    pub loopback: bool,
}

impl PresenceConfig {
    /// Checks the configuration and builds the endpoint.
    pub fn validate(&self) -> Result<PresenceEndpoint, PresenceError> {
        let bad = |m: String| Err(PresenceError::Config(m));
        let base = self.base_url.trim().trim_end_matches('/');
        let uri: ureq::http::Uri = match base.parse() {
            Ok(u) => u,
            Err(_) => return bad(format!("presence.url {base:?} is not a url")),
        };
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return bad("presence.url must start with http:// or https://".into()),
        };
        let Some(host) = uri.host() else {
            return bad("presence.url has no host".into());
        };
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return bad("presence.url must be scheme://host[:port] only".into());
        }
        let loopback = is_loopback_host(host);
        if !tls && !loopback {
            return bad(format!(
                "plain http is only allowed to loopback hosts, not {host}: use https://"
            ));
        }
        let key = self.apikey.expose();
        if key.is_empty() {
            return bad(
                "no Presence key: set presence.apikey_file or CONCESSION_PRESENCE_APIKEY".into(),
            );
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return bad("the Presence key has characters that cannot travel in a URL".into());
        }
        if self.rate_per_minute == 0 || self.rate_per_day == 0 {
            return bad("presence rate budgets must be > 0".into());
        }
        Ok(PresenceEndpoint {
            url: format!("{base}{VALIDATE_PATH}"),
            tls,
            loopback,
        })
    }

    /// True while `base_url` is unset (`[presence]` without `url`): the agent uses the
    /// ATS URL.
    pub fn follows_ats(&self) -> bool {
        self.base_url.is_empty()
    }

    /// The Archtics event name for Presence's `eventId`.
    pub fn archtics_event(&self, event_id: &str) -> String {
        self.event_ids
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(event_id))
            .map_or_else(|| event_id.to_string(), |(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> PresenceConfig {
        PresenceConfig {
            base_url: url.into(),
            apikey: Secret::new("pk-1"),
            ..PresenceConfig::default()
        }
    }

    #[test]
    fn https_anywhere_plain_http_only_to_loopback() {
        let e = cfg("https://app.ticketmaster.com/").validate().unwrap();
        assert_eq!(
            e.url,
            "https://app.ticketmaster.com/presence/v1/ticket/validate"
        );
        assert!(cfg("http://127.0.0.1:8080").validate().unwrap().loopback);
        let err = cfg("http://example.com").validate().unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        assert!(cfg("ftp://x").validate().is_err());
        assert!(cfg("https://h/path").validate().is_err());
    }

    #[test]
    fn a_missing_or_unsendable_key_is_refused_without_showing_it() {
        let mut c = cfg("https://h");
        c.apikey = Secret::default();
        assert!(c.validate().is_err());
        c.apikey = Secret::new("bad key&x=1");
        let e = c.validate().unwrap_err().to_string();
        assert!(!e.contains("bad key"), "{e}");
    }

    #[test]
    fn event_ids_map_or_pass_through() {
        let mut c = cfg("https://h");
        c.event_ids.insert("3F00ABC".into(), "EVENT01".into());
        assert_eq!(c.archtics_event("3f00abc"), "EVENT01");
        assert_eq!(c.archtics_event("EVENT02"), "EVENT02");
    }
}
