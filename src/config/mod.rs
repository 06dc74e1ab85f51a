//! Configuration: raw TOML in, validated and typed settings out.
//!
//! [`RawConfig`] mirrors the file (every field optional, unknown fields refused so a typo
//! is an error rather than a silent default). [`Config::from_raw`] validates it once at
//! start and produces durations, socket addresses and the API key as a
//! [`Secret`](crate::redact::Secret); the rest of the agent only ever sees [`Config`]. Environment overrides
//! (`CONCESSION_ATS_URL`, `CONCESSION_ATS_APIKEY`, `CONCESSION_ATS_DSN`,
//! `CONCESSION_STORE_DIR`, `CONCESSION_TERMINAL_ID`) are applied to the raw form, so
//! they are validated like the file.
//!
//! Files: `raw` (the file as written), `settings` (the validated types),
//! `validate` (one function per section), [`scanner`] (the `[scanner]` schema shared with
//! board profiles), `secrets` (key and token files), `check` (ranges, durations,
//! addresses), `error`. Their public items are re-exported here.

mod check;
mod error;
mod presence;
mod raw;
pub mod scanner;
mod secrets;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use presence::RawPresence;
pub use raw::{RawAts, RawCache, RawConfig, RawHealth, RawMetrics, RawOffline, RawPos};
pub use scanner::{ScannerKind, ScannerSection};
pub use secrets::{check_ats_url, read_key_file, read_token_file, MIN_POS_TOKEN};
pub use settings::{
    AtsEndpoint, AtsSettings, CacheSettings, Config, HealthSettings, MetricsSettings,
    OfflineSettings, PosSettings, StdoutFormat, Unlisted,
};
