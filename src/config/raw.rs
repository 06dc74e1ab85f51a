//! The configuration file as written: every field optional, unknown fields refused,
//! environment overrides applied here so they are validated like the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;
use super::scanner::ScannerSection;
use crate::money::Cents;

/// The configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub terminal_id: Option<String>,
    pub store_dir: Option<PathBuf>,
    /// Free space kept on the store's filesystem, MiB (store/headroom.rs).
    pub store_min_free_mb: Option<u64>,
    /// This machine's name for the store's clone check (store/identity.rs); default
    /// /etc/machine-id.
    pub machine_id: Option<String>,
    /// `$STATE_DIRECTORY` (systemd's StateDirectory=): relative store paths resolve
    /// against it. From the environment only.
    #[serde(skip)]
    pub state_directory: Option<PathBuf>,
    /// Fields set by environment overrides: (field, variable), to name the variable in
    /// errors.
    #[serde(skip)]
    pub from_env: Vec<(&'static str, &'static str)>,
    pub deadline_ms: Option<u64>,
    pub max_transaction_cents: Option<Cents>,
    pub utc_offset_minutes: Option<i32>,
    pub events: Vec<String>,
    pub ats: RawAts,
    pub cache: RawCache,
    pub offline: RawOffline,
    pub health: RawHealth,
    pub scanner: ScannerSection,
    pub pos: RawPos,
    /// `[presence]`: phone tickets through Presence (absent: none).
    pub presence: Option<super::presence::RawPresence>,
    pub metrics: RawMetrics,
    /// `[venue]` (venue mode, docs/venue.md); absent: single-terminal mode.
    pub venue: Option<crate::venue::RawVenue>,
}

/// `[ats]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAts {
    pub url: Option<String>,
    pub product: Option<String>,
    pub resource: Option<String>,
    pub dsn: Option<String>,
    pub apikey: Option<String>,
    pub apikey_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub uid: Option<String>,
    pub rate_per_minute: Option<u32>,
    pub rate_per_day: Option<u32>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub call_timeout_ms: Option<u64>,
    pub max_response_kb: Option<u64>,
}

/// `[cache]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub capacity_mb: Option<u64>,
    pub fresh_ms: Option<u64>,
    pub prefetch_at_start: Option<bool>,
    pub refresh_interval_ms: Option<u64>,
    pub budget_reserve_per_minute: Option<u32>,
    pub unlisted: Option<String>,
}

/// `[offline]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOffline {
    pub per_transaction_cents: Option<Cents>,
    pub per_ticket_cents: Option<Cents>,
    pub total_cents: Option<Cents>,
    pub total_count: Option<u32>,
    pub max_cache_age_ms: Option<u64>,
    pub partial: Option<bool>,
}

/// `[health]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealth {
    pub window: Option<usize>,
    pub failures_to_offline: Option<usize>,
    pub slow_ms: Option<u64>,
    pub probe_interval_ms: Option<u64>,
    pub probes_to_online: Option<u32>,
    pub max_clock_skew_ms: Option<u64>,
}

/// `[pos]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPos {
    pub output: Option<String>,
    pub listen: Option<String>,
    /// The POS link's credential (docs/pos-protocol.md, `auth`). Secret.
    pub token: Option<String>,
    /// A file holding the credential (mode 0600 or stricter).
    pub token_file: Option<PathBuf>,
    pub line_timeout_ms: Option<u64>,
    pub client_scans_per_minute: Option<u32>,
    pub client_scan_burst: Option<u32>,
}

impl RawConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        RawConfig::parse(&text, path)
    }

    /// Applies `CONCESSION_*` overrides from `lookup` (the process environment in
    /// production, a map in tests).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let mut seen = |field: &'static str, var: &'static str| {
            let v = lookup(var);
            if v.is_some() {
                self.from_env.push((field, var));
            }
            v
        };
        let url = seen("ats.url", "CONCESSION_ATS_URL");
        let apikey = seen("ats.apikey", "CONCESSION_ATS_APIKEY");
        let dsn = seen("ats.dsn", "CONCESSION_ATS_DSN");
        let store = seen("store_dir", "CONCESSION_STORE_DIR");
        let terminal = seen("terminal_id", "CONCESSION_TERMINAL_ID");
        let machine = seen("machine_id", "CONCESSION_MACHINE_ID");
        let venue_url = seen("venue.url", "CONCESSION_VENUE_URL");
        if let Some(v) = venue_url {
            self.venue.get_or_insert_with(Default::default).url = Some(v);
        }
        if let Some(venue) = self.venue.as_mut() {
            // Never recorded in `from_env` by value; only read here.
            venue.password_env = lookup("CONCESSION_VENUE_PASSWORD");
        }
        if let Some(v) = url {
            self.ats.url = Some(v);
        }
        if let Some(v) = apikey {
            self.ats.apikey = Some(v);
            // An explicit key in the environment wins over a key file in the config.
            self.ats.apikey_file = None;
        }
        if let Some(v) = dsn {
            self.ats.dsn = Some(v);
        }
        if let Some(v) = store {
            self.store_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = terminal {
            self.terminal_id = Some(v);
        }
        if let Some(v) = machine {
            self.machine_id = Some(v);
        }
        // Only with a `[presence]` section: the variable alone does not turn Presence on.
        if let Some(p) = self.presence.as_mut() {
            if let Some(v) = lookup("CONCESSION_PRESENCE_APIKEY") {
                p.apikey = Some(v);
                p.apikey_file = None;
            }
        }
        // systemd may list several directories, colon-separated: the store uses the first.
        if let Some(v) = lookup("STATE_DIRECTORY") {
            if let Some(first) = v.split(':').next().filter(|d| !d.is_empty()) {
                self.state_directory = Some(PathBuf::from(first));
            }
        }
    }
}

/// `[metrics]` as written: the Prometheus textfile (see `crate::metrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub textfile: Option<PathBuf>,
    pub interval_s: Option<u64>,
}
