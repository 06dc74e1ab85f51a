//! `[presence]` as written in the agent's config, and its validation into a
//! [`PresenceConfig`]. No section: no Presence client (SafeTix scans are denied
//! `safetix_unresolved`, as before).
//!
//! `url` unset (the default) follows the ATS URL: Ticketmaster serves Presence from the
//! same host as ATS (`https://app.ticketmaster.com`), and the sandbox serves it on the
//! same port. The key comes from `apikey_file` (owner-only, as the ATS key file), else
//! `apikey` or `CONCESSION_PRESENCE_APIKEY`; only with the ATS sandbox may it be left
//! out (the sandbox's Presence key). Field errors name `presence.<field>`, never the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::money::Cents;
use crate::presence::{Device, EnteredRule, PresenceConfig};
use crate::redact::Secret;

use super::error::{invalid, ConfigError};
use super::secrets::read_key_file;

/// The sandbox's Presence key (sandbox/presence.rs keeps the same).
pub const SANDBOX_KEY: &str = "sandbox-presence-key";

/// `[presence]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPresence {
    /// Base URL (`https://host[:port]`); unset: the ATS URL.
    pub url: Option<String>,
    /// The Presence key (prefer `apikey_file` or `CONCESSION_PRESENCE_APIKEY`).
    pub apikey: Option<String>,
    /// A file holding the key, readable by its owner only.
    pub apikey_file: Option<PathBuf>,
    /// `venueId` of every request.
    pub venue_id: Option<String>,
    /// `gateName` (default `concessions`).
    pub gate_name: Option<String>,
    /// `gateId`, from Presence `device/init`.
    pub gate_id: Option<u64>,
    /// `deviceId`, from Presence `device/init`.
    pub device_id: Option<u64>,
    /// Trust only this CA file (default: the system trust store).
    pub ca_file: Option<PathBuf>,
    /// Client-side budget of the Presence key, calls a minute (default 60).
    pub rate_per_minute: Option<u32>,
    /// Client-side budget, calls a day (default 5000).
    pub rate_per_day: Option<u32>,
    /// Most a ticket may get offline from a cached token mapping (default 1000).
    pub offline_cap_cents: Option<Cents>,
    /// Presence `eventId` → Archtics event name.
    pub event_ids: BTreeMap<String, String>,
    /// `"accept"` (default: a stand behind the gates, where every ticket was scanned
    /// in) or `"deny"`: what an `ALREADY_ENTERED` answer means here.
    pub already_entered: Option<String>,
}

impl RawPresence {
    /// Validates the section; `ats_sandbox` when ATS is the built-in sandbox. An unset
    /// `url` is left empty: the agent fills in the ATS URL when it builds the client.
    pub fn validate(self, ats_sandbox: bool) -> Result<PresenceConfig, ConfigError> {
        let d = PresenceConfig::default();
        let url = self
            .url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let sandbox = ats_sandbox && url.is_empty();
        let apikey = match (&self.apikey, &self.apikey_file) {
            (_, Some(file)) => read_key_file(file).map_err(|e| match e {
                ConfigError::Invalid { message, .. } => invalid("presence.apikey_file", message),
                e => e,
            })?,
            (Some(k), None) if !k.trim().is_empty() => Secret::new(k.trim()),
            _ if sandbox => Secret::new(SANDBOX_KEY),
            _ => {
                return Err(invalid(
                    "presence.apikey",
                    "no Presence key: set presence.apikey_file or CONCESSION_PRESENCE_APIKEY \
                     (it is not the ATS key)",
                ))
            }
        };
        let venue_id = self.venue_id.unwrap_or_default();
        if !sandbox && venue_id.trim().is_empty() {
            return Err(invalid(
                "presence.venue_id",
                "required with a real Presence url",
            ));
        }
        let gate_name = self.gate_name.unwrap_or(d.device.gate_name);
        for (field, v) in [
            ("presence.venue_id", &venue_id),
            ("presence.gate_name", &gate_name),
        ] {
            if v.len() > 128 || v.chars().any(char::is_control) {
                return Err(invalid(field, format!("{v:?} is not a valid value")));
            }
        }
        let rate_per_minute = self.rate_per_minute.unwrap_or(d.rate_per_minute);
        let rate_per_day = self.rate_per_day.unwrap_or(d.rate_per_day);
        if rate_per_minute == 0 || rate_per_day == 0 {
            return Err(invalid("presence.rate_per_minute", "budgets must be > 0"));
        }
        let already_entered = match self.already_entered.as_deref().map(str::trim) {
            None | Some("accept") => EnteredRule::Accept,
            Some("deny") => EnteredRule::Deny,
            Some(other) => {
                return Err(invalid(
                    "presence.already_entered",
                    format!(
                        "{other:?}: expected \"accept\" (a stand behind the gates) or \"deny\""
                    ),
                ))
            }
        };
        let cfg = PresenceConfig {
            base_url: url.clone(),
            already_entered,
            apikey,
            device: Device {
                venue_id,
                gate_name,
                gate_id: self.gate_id.unwrap_or(0),
                device_id: self.device_id.unwrap_or(0),
            },
            ca_file: self.ca_file,
            rate_per_minute,
            rate_per_day,
            event_ids: self.event_ids,
            offline_cap_cents: self.offline_cap_cents.unwrap_or(d.offline_cap_cents),
            ..d
        };
        if !url.is_empty() {
            cfg.validate()
                .map_err(|e| invalid("presence.url", e.to_string()))?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PresenceConfig, ConfigError> {
        let raw: RawPresence = toml::from_str(text).unwrap();
        raw.validate(false)
    }

    #[test]
    fn an_empty_section_follows_the_ats_sandbox() {
        let raw: RawPresence = toml::from_str("").unwrap();
        let c = raw.validate(true).unwrap();
        assert!(c.follows_ats());
        assert_eq!(c.apikey.expose(), SANDBOX_KEY);
        assert_eq!(c.offline_cap_cents, 1000);
    }

    #[test]
    fn a_real_url_needs_a_key_and_a_venue_and_errors_never_show_the_key() {
        let e = parse("url = \"https://app.ticketmaster.com\"\nvenue_id = \"KovZ1\"").unwrap_err();
        assert!(e.to_string().contains("presence.apikey"), "{e}");
        // Following a real ATS needs a key of its own too.
        assert!(parse("venue_id = \"KovZ1\"").is_err());
        assert!(parse("venue_id = \"KovZ1\"\napikey = \"pk-9\"")
            .unwrap()
            .follows_ats());
        let e = parse("url = \"https://app.ticketmaster.com\"\napikey = \"pk-9\"").unwrap_err();
        assert!(e.to_string().contains("presence.venue_id"), "{e}");
        let e =
            parse("url = \"http://example.com\"\napikey = \"pk-9\"\nvenue_id = \"v\"").unwrap_err();
        assert!(e.to_string().contains("presence.url"), "{e}");
        assert!(!e.to_string().contains("pk-9"), "{e}");
        let ok = parse(
            "url = \"https://app.ticketmaster.com\"\napikey = \"pk-9\"\nvenue_id = \"v\"\n\
             device_id = 4\ngate_id = 2\n[event_ids]\n\"3F00\" = \"EVENT01\"",
        )
        .unwrap();
        assert_eq!(ok.device.device_id, 4);
        assert_eq!(ok.archtics_event("3F00"), "EVENT01");
    }

    #[test]
    fn already_entered_is_accept_by_default_and_a_misspelling_is_named() {
        let base = "venue_id = \"KovZ1\"\napikey = \"pk-9\"\n";
        assert_eq!(parse(base).unwrap().already_entered, EnteredRule::Accept);
        let deny = parse(&format!("{base}already_entered = \"deny\"")).unwrap();
        assert_eq!(deny.already_entered, EnteredRule::Deny);
        let e = parse(&format!("{base}already_entered = \"refuse\"")).unwrap_err();
        assert!(e.to_string().contains("presence.already_entered"), "{e}");
        assert!(e.to_string().contains("\"refuse\""), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<RawPresence>("venue = 1").is_err());
    }
}
