//! Configuration: raw TOML in, validated and typed settings out.
//!
//! [`RawConfig`] mirrors the file (every field optional, unknown fields refused so a typo
//! is an error rather than a silent default). [`Config::from_raw`] validates it once at
//! start and produces durations, socket addresses and the API key as a
//! [`Secret`]; the rest of the agent only ever sees [`Config`]. Environment overrides
//! (`CONCESSION_ATS_URL`, `CONCESSION_ATS_APIKEY`, `CONCESSION_ATS_DSN`,
//! `CONCESSION_STORE_DIR`, `CONCESSION_TERMINAL_ID`) are applied to the raw form, so
//! they are validated like the file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ats::AtsConfig;
use crate::money::Cents;
use crate::redact::Secret;

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

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

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
    pub scanner: RawScanner,
    pub pos: RawPos,
    /// `[presence]`: phone tickets through Presence (absent: none).
    pub presence: Option<crate::presence::RawPresence>,
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

/// `[scanner]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawScanner {
    pub kind: Option<String>,
    pub path: Option<PathBuf>,
    pub baud: Option<u32>,
    pub listen: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub max_len: Option<usize>,
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

/// Where ATS is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtsEndpoint {
    /// The built-in emulator, started in-process on a loopback port.
    Sandbox,
    /// A real (or separately run) ATS at this base URL.
    Url(String),
}

/// Validated `[ats]`.
#[derive(Debug, Clone)]
pub struct AtsSettings {
    pub endpoint: AtsEndpoint,
    pub product: String,
    pub resource: String,
    pub dsn: String,
    pub apikey: Secret,
    pub ca_file: Option<PathBuf>,
    pub uid: String,
    pub rate_per_minute: u32,
    pub rate_per_day: u32,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub call_timeout: Duration,
    /// Responses larger than this are refused (hostile or broken servers).
    pub max_response_bytes: usize,
}

/// Validated `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub capacity_bytes: u64,
    pub fresh: Duration,
    pub prefetch_at_start: bool,
    pub refresh_interval: Duration,
    pub budget_reserve_per_minute: u32,
}

/// Validated `[offline]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineSettings {
    pub per_transaction_cents: Cents,
    pub per_ticket_cents: Cents,
    pub total_cents: Cents,
    pub total_count: u32,
    pub max_cache_age: Duration,
    pub partial: bool,
}

/// Validated `[health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub window: usize,
    pub failures_to_offline: usize,
    pub slow: Duration,
    pub probe_interval: Duration,
    pub probes_to_online: u32,
    /// The largest disagreement with ATS's clock still trusted (see
    /// `clock::ClockState`); beyond it cached evidence is refused (`clock_unsure`).
    pub max_clock_skew: Duration,
}

/// Where scans come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerKind {
    /// Keyboard-wedge scanners and people typing.
    Stdin,
    /// A serial device at this path and baud rate.
    Serial { path: PathBuf, baud: u32 },
    /// Network scanners sending lines to this address.
    Tcp { listen: SocketAddr },
    /// No scanner (POS link only).
    None,
}

/// Validated `[scanner]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerSettings {
    pub kind: ScannerKind,
    pub prefix: String,
    pub suffix: String,
    pub max_len: usize,
}

/// How decisions are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosOutput {
    /// Text for people (colour on a TTY).
    Console,
    /// JSON lines for POS software.
    JsonLines,
}

/// Validated `[pos]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosSettings {
    pub output: PosOutput,
    pub listen: Option<SocketAddr>,
    /// The link's credential; required for a non-loopback `listen`.
    pub token: Option<Secret>,
    /// Longest time a request line may take from its first byte to its end, and an
    /// unauthenticated client to send `auth` when a token is set (default 10 s).
    pub line_timeout: Duration,
    /// Scans per minute one POS connection may send (default: a quarter of
    /// `ats.rate_per_minute`), after a burst of `client_scan_burst` (default 10).
    pub client_scans_per_minute: u32,
    pub client_scan_burst: u32,
}

/// Shortest accepted `[pos] token`.
pub const MIN_POS_TOKEN: usize = 16;

/// Reads the POS link token from a file only its owner may read.
pub fn read_token_file(path: &Path) -> Result<Secret, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(invalid(
                "pos.token_file",
                format!(
                    "{} has mode {:o}: it must not be readable by group or others (run `chmod 600 {}`)",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret::new(text.trim()))
}

fn pos_token(p: &RawPos) -> Result<Option<Secret>, ConfigError> {
    let token = match (&p.token, &p.token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "pos.token",
                "set pos.token or pos.token_file, not both",
            ))
        }
        (Some(t), None) => Secret::new(t.trim()),
        (None, Some(path)) => read_token_file(path)?,
        (None, None) => return Ok(None),
    };
    let n = token.expose().chars().count();
    if n < MIN_POS_TOKEN || token.expose().chars().any(char::is_control) {
        // The value itself never appears in the message.
        return Err(invalid(
            "pos.token",
            format!("the token must be at least {MIN_POS_TOKEN} printable characters (it has {n})"),
        ));
    }
    Ok(Some(token))
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub terminal_id: String,
    /// Where the store lives: absolute, or relative to `$STATE_DIRECTORY` (the unit's
    /// StateDirectory) when set, else to the working directory. Unset with the
    /// sandbox: a fresh directory under the system's temporary directory
    /// (`store_temporary`).
    pub store_dir: PathBuf,
    /// The store is the demo's throw-away store: fresh at start, removed at exit.
    pub store_temporary: bool,
    /// Free space kept on the store's filesystem, bytes (0: no check).
    pub store_min_free_bytes: u64,
    /// This machine's id for the store's clone check, when configured (else the store
    /// reads /etc/machine-id).
    pub machine_id: Option<String>,
    pub deadline: Duration,
    /// Most money one approval may hand over, online or offline
    /// (`Policy::max_transaction_cents`).
    pub max_transaction_cents: Cents,
    /// The venue's offset from UTC, for "today" (event dates, value validity).
    pub utc_offset_minutes: i32,
    pub events: Vec<String>,
    pub ats: AtsSettings,
    pub cache: CacheSettings,
    pub offline: OfflineSettings,
    pub health: HealthSettings,
    pub scanner: ScannerSettings,
    pub pos: PosSettings,
    /// The Presence client's settings (`[presence]`); `None`: SafeTix is not resolved.
    pub presence: Option<crate::presence::PresenceConfig>,
}

fn ranged(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} is outside {lo}..={hi}")))
    }
}

fn ms(
    field: &'static str,
    v: Option<u64>,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(ranged(
        field,
        v.unwrap_or(default),
        lo,
        hi,
    )?))
}

fn addr(field: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        invalid(
            field,
            format!("{v:?} is not an address like 127.0.0.1:7070"),
        )
    })
}

/// Checks an ATS base URL: https anywhere, http only to loopback.
pub fn check_ats_url(url: &str) -> Result<(), ConfigError> {
    // The client's own endpoint check, run early so a bad URL is a config error at
    // start (the key is checked separately, so a placeholder stands in for it here).
    AtsConfig {
        base_url: url.to_string(),
        apikey: Secret::new("placeholder"),
        ..AtsConfig::default()
    }
    .validate()
    .map(|_| ())
    .map_err(|e| invalid("ats.url", e.to_string()))
}

/// Reads the API key from a file that only its owner may read.
pub fn read_key_file(path: &Path) -> Result<Secret, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(invalid(
            "ats.apikey_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret::new(key))
}

impl Config {
    /// Loads a file, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::load(path)?;
        raw.apply_env(|k| std::env::var(k).ok());
        Config::from_raw(raw)
    }

    /// Validates a raw configuration. An invalid value that came from an environment
    /// override is reported as that variable ([`ConfigError::InvalidEnv`]).
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let from_env = raw.from_env.clone();
        Config::validate(raw).map_err(|e| match e {
            ConfigError::Invalid { field, message } => {
                match from_env.iter().find(|(f, _)| *f == field) {
                    Some((field, var)) => ConfigError::InvalidEnv {
                        var,
                        field,
                        message,
                    },
                    None => ConfigError::Invalid { field, message },
                }
            }
            e => e,
        })
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let terminal_id = raw.terminal_id.unwrap_or_else(|| "terminal-1".into());
        if terminal_id.is_empty()
            || terminal_id.len() > 64
            || !terminal_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(invalid(
                "terminal_id",
                "must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        let a = raw.ats;
        let endpoint = match a.url.as_deref().unwrap_or("sandbox") {
            "sandbox" => AtsEndpoint::Sandbox,
            url => {
                check_ats_url(url)?;
                AtsEndpoint::Url(url.trim_end_matches('/').to_string())
            }
        };
        let apikey = match (&a.apikey, &a.apikey_file) {
            (_, Some(file)) => read_key_file(file)?,
            (Some(k), None) if !k.trim().is_empty() => Secret::new(k.trim()),
            _ if endpoint == AtsEndpoint::Sandbox => Secret::new("sandbox-key"),
            _ => {
                return Err(invalid(
                    "ats.apikey",
                    "no API key: set ats.apikey_file or CONCESSION_ATS_APIKEY",
                ))
            }
        };
        let non_empty =
            |field: &'static str, v: Option<String>, d: &str| -> Result<String, ConfigError> {
                let v = v.unwrap_or_else(|| d.to_string());
                if v.is_empty()
                    || v.len() > 128
                    || v.chars()
                        .any(|c| c.is_control() || c == '/' && field == "ats.dsn")
                {
                    Err(invalid(field, format!("{v:?} is not a valid value")))
                } else {
                    Ok(v)
                }
            };
        let ats = AtsSettings {
            endpoint,
            product: non_empty("ats.product", a.product, "sth-customer")?,
            resource: non_empty("ats.resource", a.resource, "ticketing_services.aspx")?,
            dsn: non_empty("ats.dsn", a.dsn, "apigee")?,
            apikey,
            ca_file: a.ca_file,
            uid: non_empty("ats.uid", a.uid, "concession-agent")?,
            rate_per_minute: ranged(
                "ats.rate_per_minute",
                a.rate_per_minute.unwrap_or(80).into(),
                1,
                10_000,
            )? as u32,
            rate_per_day: ranged(
                "ats.rate_per_day",
                a.rate_per_day.unwrap_or(5000).into(),
                1,
                10_000_000,
            )? as u32,
            connect_timeout: ms(
                "ats.connect_timeout_ms",
                a.connect_timeout_ms,
                3_000,
                10,
                120_000,
            )?,
            read_timeout: ms(
                "ats.read_timeout_ms",
                a.read_timeout_ms,
                10_000,
                10,
                600_000,
            )?,
            call_timeout: ms(
                "ats.call_timeout_ms",
                a.call_timeout_ms,
                30_000,
                100,
                600_000,
            )?,
            max_response_bytes: ranged(
                "ats.max_response_kb",
                a.max_response_kb.unwrap_or(4096),
                16,
                262_144,
            )? as usize
                * 1024,
        };
        if let Some(ca) = &ats.ca_file {
            if !ca.is_file() {
                return Err(invalid(
                    "ats.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let c = raw.cache;
        let cache = CacheSettings {
            capacity_bytes: ranged("cache.capacity_mb", c.capacity_mb.unwrap_or(2), 1, 4096)?
                * 1024
                * 1024,
            fresh: ms("cache.fresh_ms", c.fresh_ms, 600_000, 0, 86_400_000)?,
            prefetch_at_start: c.prefetch_at_start.unwrap_or(true),
            refresh_interval: ms(
                "cache.refresh_interval_ms",
                c.refresh_interval_ms,
                300_000,
                10_000,
                86_400_000,
            )?,
            budget_reserve_per_minute: c.budget_reserve_per_minute.unwrap_or(20),
        };
        // One scan's lookup is two calls: a smaller reserve lets the refresher take the
        // whole minute and leave scans refused locally.
        if cache.budget_reserve_per_minute < 2
            || cache.budget_reserve_per_minute >= ats.rate_per_minute
        {
            return Err(invalid(
                "cache.budget_reserve_per_minute",
                format!(
                    "must be at least 2 (one lookup) and below ats.rate_per_minute ({})",
                    ats.rate_per_minute
                ),
            ));
        }
        let o = raw.offline;
        let offline = OfflineSettings {
            per_transaction_cents: o.per_transaction_cents.unwrap_or(2500),
            per_ticket_cents: o.per_ticket_cents.unwrap_or(2500),
            total_cents: o.total_cents.unwrap_or(50_000),
            total_count: o.total_count.unwrap_or(50),
            max_cache_age: ms(
                "offline.max_cache_age_ms",
                o.max_cache_age_ms,
                21_600_000,
                0,
                7 * 86_400_000,
            )?,
            partial: o.partial.unwrap_or(true),
        };
        let h = raw.health;
        let health = HealthSettings {
            window: ranged("health.window", h.window.unwrap_or(5) as u64, 1, 100)? as usize,
            failures_to_offline: h.failures_to_offline.unwrap_or(2),
            slow: ms("health.slow_ms", h.slow_ms, 1_500, 1, 600_000)?,
            probe_interval: ms(
                "health.probe_interval_ms",
                h.probe_interval_ms,
                5_000,
                10,
                3_600_000,
            )?,
            probes_to_online: ranged(
                "health.probes_to_online",
                h.probes_to_online.unwrap_or(2).into(),
                1,
                100,
            )? as u32,
            max_clock_skew: ms(
                "health.max_clock_skew_ms",
                h.max_clock_skew_ms,
                crate::clock::DEFAULT_MAX_CLOCK_SKEW_MS,
                1_000,
                86_400_000,
            )?,
        };
        if health.failures_to_offline == 0 || health.failures_to_offline > health.window {
            return Err(invalid(
                "health.failures_to_offline",
                format!("must be between 1 and health.window ({})", health.window),
            ));
        }
        let s = raw.scanner;
        let kind = match s.kind.as_deref().unwrap_or("stdin") {
            "stdin" => ScannerKind::Stdin,
            "none" => ScannerKind::None,
            "serial" => ScannerKind::Serial {
                path: s.path.clone().ok_or_else(|| {
                    invalid("scanner.path", "a serial scanner needs a device path")
                })?,
                baud: ranged("scanner.baud", s.baud.unwrap_or(9600).into(), 50, 4_000_000)? as u32,
            },
            "tcp" => ScannerKind::Tcp {
                listen: addr(
                    "scanner.listen",
                    s.listen.as_deref().ok_or_else(|| {
                        invalid("scanner.listen", "a tcp scanner needs a listen address")
                    })?,
                )?,
            },
            other => {
                return Err(invalid(
                    "scanner.kind",
                    format!("{other:?} is not one of stdin, serial, tcp, none"),
                ))
            }
        };
        let scanner = ScannerSettings {
            kind,
            prefix: s.prefix.unwrap_or_default(),
            suffix: s.suffix.unwrap_or_default(),
            max_len: ranged("scanner.max_len", s.max_len.unwrap_or(256) as u64, 8, 256)? as usize,
        };
        let p = raw.pos;
        let pos = PosSettings {
            output: match p.output.as_deref().unwrap_or("console") {
                "console" => PosOutput::Console,
                "jsonl" => PosOutput::JsonLines,
                other => {
                    return Err(invalid(
                        "pos.output",
                        format!("{other:?} is not one of console, jsonl"),
                    ))
                }
            },
            listen: p
                .listen
                .as_deref()
                .map(|l| addr("pos.listen", l))
                .transpose()?,
            token: pos_token(&p)?,
            line_timeout: ms(
                "pos.line_timeout_ms",
                p.line_timeout_ms,
                10_000,
                100,
                600_000,
            )?,
            client_scans_per_minute: ranged(
                "pos.client_scans_per_minute",
                p.client_scans_per_minute
                    .map(u64::from)
                    .unwrap_or((u64::from(ats.rate_per_minute) / 4).max(1)),
                1,
                100_000,
            )? as u32,
            client_scan_burst: ranged(
                "pos.client_scan_burst",
                p.client_scan_burst.unwrap_or(10).into(),
                1,
                10_000,
            )? as u32,
        };
        if let Some(l) = pos.listen {
            if !l.ip().is_loopback() && pos.token.is_none() {
                return Err(invalid(
                    "pos.listen",
                    format!(
                        "{l} is not a loopback address: anyone on the network could scan and void; \
                         set pos.token_file (or pos.token) and have the POS send it (docs/pos-protocol.md)"
                    ),
                ));
            }
        }
        for e in &raw.events {
            if e.is_empty() || e.len() > 64 || e.chars().any(char::is_control) {
                return Err(invalid("events", format!("{e:?} is not an event name")));
            }
        }
        let store_temporary = raw.store_dir.is_none() && ats.endpoint == AtsEndpoint::Sandbox;
        let store_dir = match (&raw.store_dir, &raw.state_directory) {
            (Some(d), _) if d.as_os_str().is_empty() => {
                return Err(invalid("store_dir", "is empty"));
            }
            (Some(d), Some(state)) if d.is_relative() => state.join(d),
            (Some(d), _) => d.clone(),
            // The demo: a store of its own per run, never in the checkout.
            (None, _) if store_temporary => std::env::temp_dir().join(format!(
                "concession-agent-demo.{}.{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros()
            )),
            (None, Some(state)) => state.clone(),
            (None, None) => PathBuf::from("/var/lib/concession-agent"),
        };
        let store_min_free_bytes = ranged(
            "store_min_free_mb",
            raw.store_min_free_mb.unwrap_or(8),
            0,
            1 << 20,
        )? * 1024
            * 1024;
        let machine_id = match &raw.machine_id {
            None => None,
            Some(m) => Some(crate::store::identity::usable(m).ok_or_else(|| {
                invalid(
                    "machine_id",
                    "is empty (leave it out to use /etc/machine-id)",
                )
            })?),
        };
        Ok(Config {
            terminal_id,
            store_dir,
            store_temporary,
            store_min_free_bytes,
            machine_id,
            deadline: ms("deadline_ms", raw.deadline_ms, 2_000, 50, 60_000)?,
            max_transaction_cents: ranged(
                "max_transaction_cents",
                raw.max_transaction_cents
                    .unwrap_or(crate::decide::policy::DEFAULT_MAX_TRANSACTION_CENTS),
                1,
                crate::ats::wire::MAX_MONEY_CENTS,
            )?,
            utc_offset_minutes: match raw.utc_offset_minutes.unwrap_or(0) {
                m @ -900..=900 => m,
                m => {
                    return Err(invalid(
                        "utc_offset_minutes",
                        format!("{m} is outside -900..=900"),
                    ))
                }
            },
            events: raw.events,
            presence: raw
                .presence
                .map(|p| p.validate(ats.endpoint == AtsEndpoint::Sandbox))
                .transpose()?,
            ats,
            cache,
            offline,
            health,
            scanner,
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::parse(text, Path::new("test.toml"))?)
    }

    #[test]
    fn shipped_demo_config_is_valid() {
        let text = include_str!("../config/agent.toml");
        let c = parse(text).expect("config/agent.toml validates");
        assert_eq!(c.ats.endpoint, AtsEndpoint::Sandbox);
        assert_eq!(c.deadline, Duration::from_secs(2));
        assert_eq!(c.ats.rate_per_minute, 80);
    }

    #[test]
    fn empty_config_takes_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.offline.per_transaction_cents, 2500);
        assert_eq!(c.scanner.kind, ScannerKind::Stdin);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let e = parse("deadline_msec = 5").unwrap_err().to_string();
        assert!(e.contains("deadline_msec"), "{e}");
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let e = parse("[ats]\nurl = \"http://app.example.com\"\napikey = \"k\"").unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(parse("[ats]\nurl = \"http://127.0.0.1:8080\"\napikey = \"k\"").is_ok());
        assert!(parse("[ats]\nurl = \"http://[::1]:8080\"\napikey = \"k\"").is_ok());
        assert!(parse("[ats]\nurl = \"http://localhost:8080\"\napikey = \"k\"").is_ok());
        assert!(parse("[ats]\nurl = \"https://app.example.com\"\napikey = \"k\"").is_ok());
        assert!(parse("[ats]\nurl = \"http://127.0.0.1.example.com\"\napikey = \"k\"").is_err());
    }

    #[test]
    fn real_endpoint_needs_a_key_and_errors_never_show_it() {
        let e = parse("[ats]\nurl = \"https://a.example\"").unwrap_err();
        assert!(e.to_string().contains("CONCESSION_ATS_APIKEY"));
        let c = parse("[ats]\nurl = \"https://a.example\"\napikey = \"s3cret-key\"").unwrap();
        assert!(!format!("{c:?}").contains("s3cret-key"));
    }

    /// Issue 16.4: an invalid value from an environment override was reported as the
    /// config field, which the file may not even set.
    #[test]
    fn an_invalid_environment_override_names_the_variable() {
        let mut raw = RawConfig::parse("[ats]\nurl = \"sandbox\"", Path::new("t")).unwrap();
        raw.apply_env(|k| match k {
            "CONCESSION_ATS_URL" => Some("http://192.0.2.10:8080".into()),
            "CONCESSION_ATS_APIKEY" => Some("k".into()),
            _ => None,
        });
        let e = Config::from_raw(raw).unwrap_err().to_string();
        assert!(
            e.contains("CONCESSION_ATS_URL") && e.contains("ats.url"),
            "{e}"
        );
        let mut raw = RawConfig::parse("", Path::new("t")).unwrap();
        raw.apply_env(|k| (k == "CONCESSION_TERMINAL_ID").then(|| "a b".into()));
        let e = Config::from_raw(raw).unwrap_err().to_string();
        assert!(e.contains("CONCESSION_TERMINAL_ID"), "{e}");
        // From the file, the field is named as before.
        let e = parse("terminal_id = \"a b\"").unwrap_err().to_string();
        assert!(
            e.contains("`terminal_id`") && !e.contains("CONCESSION"),
            "{e}"
        );
    }

    /// Issue 16.1 and 16.5: the demo (sandbox, no store_dir) gets a fresh store outside
    /// the working directory; a relative store_dir resolves against systemd's
    /// $STATE_DIRECTORY when it is set; a real deployment defaults there.
    #[test]
    fn store_dir_is_temporary_for_the_demo_and_relative_to_the_state_directory() {
        let c = parse("").unwrap();
        assert!(c.store_temporary);
        assert!(
            c.store_dir.starts_with(std::env::temp_dir()),
            "{:?}",
            c.store_dir
        );
        assert_ne!(parse("").unwrap().store_dir, c.store_dir, "fresh per run");
        let c = parse("store_dir = \"/s\"").unwrap();
        assert!(!c.store_temporary);
        let mut raw = RawConfig::parse(
            "store_dir = \"store\"\n[ats]\nurl = \"https://a.example\"\napikey = \"k\"",
            Path::new("t"),
        )
        .unwrap();
        raw.apply_env(|k| (k == "STATE_DIRECTORY").then(|| "/var/lib/concession-agent".into()));
        let c = Config::from_raw(raw).unwrap();
        assert_eq!(c.store_dir, Path::new("/var/lib/concession-agent/store"));
        let c = parse("[ats]\nurl = \"https://a.example\"\napikey = \"k\"").unwrap();
        assert_eq!(c.store_dir, Path::new("/var/lib/concession-agent"));
        assert!(!c.store_temporary);
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut raw = RawConfig::parse("[ats]\nurl = \"sandbox\"", Path::new("t")).unwrap();
        raw.apply_env(|k| match k {
            "CONCESSION_ATS_URL" => Some("http://127.0.0.1:9".into()),
            "CONCESSION_ATS_APIKEY" => Some("env-key".into()),
            "CONCESSION_ATS_DSN" => Some("other".into()),
            _ => None,
        });
        let c = Config::from_raw(raw).unwrap();
        assert_eq!(
            c.ats.endpoint,
            AtsEndpoint::Url("http://127.0.0.1:9".into())
        );
        assert_eq!(c.ats.apikey.expose(), "env-key");
        assert_eq!(c.ats.dsn, "other");
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("apikey");
        std::fs::write(&key, "file-key\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&key).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("file-key"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&key).unwrap().expose(), "file-key");
    }

    #[test]
    fn bad_values_name_their_field() {
        for (text, field) in [
            ("deadline_ms = 0", "deadline_ms"),
            ("[scanner]\nkind = \"usb\"", "scanner.kind"),
            ("[scanner]\nkind = \"serial\"", "scanner.path"),
            ("[pos]\nlisten = \"nowhere\"", "pos.listen"),
            (
                "[health]\nwindow = 3\nfailures_to_offline = 4",
                "health.failures_to_offline",
            ),
            ("terminal_id = \"a b\"", "terminal_id"),
            (
                "[cache]\nbudget_reserve_per_minute = 0",
                "cache.budget_reserve_per_minute",
            ),
            (
                "[ats]\nrate_per_minute = 10\n[cache]\nbudget_reserve_per_minute = 10",
                "cache.budget_reserve_per_minute",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
