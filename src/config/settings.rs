//! The validated configuration: typed settings, one struct per section.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::scanner::ScannerSection;
use crate::money::Cents;
use crate::redact::Secret;

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
    /// `cache.unlisted`: what a barcode the listings leave out gets.
    pub unlisted: Unlisted,
}

/// `cache.unlisted`: a barcode that no cached record holds while every served event's
/// listing is complete and fresh (docs/agent.md, "Not listed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// Ask ATS (two calls), as for any cache miss. The default without `[venue]`.
    Lookup,
    /// Deny `not_listed` without a call: the listings name every ticket of the served
    /// events that carries value. The default with `[venue]`, where one key serves
    /// every stand's scans.
    Deny,
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

/// How decisions are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutFormat {
    /// Text for people (colour on a TTY).
    Console,
    /// JSON lines for POS software.
    JsonLines,
}

/// Validated `[pos]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosSettings {
    pub output: StdoutFormat,
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
    pub scanner: ScannerSection,
    pub pos: PosSettings,
    /// The Presence client's settings (`[presence]`); `None`: SafeTix is not resolved.
    pub presence: Option<crate::presence::PresenceConfig>,
    /// `[metrics]`: the Prometheus textfile.
    pub metrics: MetricsSettings,
    /// Venue mode (docs/venue.md); `None`: single-terminal mode.
    pub venue: Option<crate::venue::VenueSettings>,
}

/// Validated `[metrics]`: where and how often the Prometheus textfile is written
/// (`crate::metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The file node_exporter's textfile collector reads (`*.prom` in its
    /// `--collector.textfile.directory`); `None`: no metrics file.
    pub textfile: Option<PathBuf>,
    /// How often it is rewritten (default 5 s).
    pub interval: Duration,
}

impl MetricsSettings {
    /// The default `[metrics] interval_s`.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            textfile: None,
            interval: Self::DEFAULT_INTERVAL,
        }
    }
}
