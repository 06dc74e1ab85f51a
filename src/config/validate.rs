//! Validation: the raw file in, [`Config`] out, one function per section (the style of
//! ripgrep's low and high args). Sections are checked in file order and the first bad
//! field is reported; a section that depends on another (`cache` and `pos` on `ats`)
//! takes it as an argument.

use std::path::{Path, PathBuf};

use super::check::{addr, ms, ranged};
use super::error::{invalid, ConfigError};
use super::raw::{RawAts, RawCache, RawConfig, RawHealth, RawOffline, RawPos};
use super::scanner::ScannerSection;
use super::secrets::{check_ats_url, read_key_file, read_token_file, MIN_POS_TOKEN};
use super::settings::{
    AtsEndpoint, AtsSettings, CacheSettings, Config, HealthSettings, OfflineSettings, PosSettings,
    StdoutFormat, Unlisted,
};
use crate::redact::Secret;

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
        let terminal_id = terminal_id(raw.terminal_id)?;
        let ats = ats(raw.ats)?;
        let unlisted_set = raw.cache.unlisted.is_some();
        let mut cache = cache(raw.cache, &ats)?;
        let offline = offline(raw.offline)?;
        let health = health(raw.health)?;
        let scanner = scanner(raw.scanner)?;
        let pos = pos(raw.pos, &ats)?;
        let metrics = metrics(raw.metrics)?;
        events(&raw.events)?;
        let store = store(
            &raw.store_dir,
            &raw.state_directory,
            raw.store_min_free_mb,
            &raw.machine_id,
            &ats.endpoint,
        )?;
        let deadline = ms("deadline_ms", raw.deadline_ms, 2_000, 50, 60_000)?;
        let venue = venue(raw.venue, deadline)?;
        if !unlisted_set && venue.is_some() {
            cache.unlisted = Unlisted::Deny;
        }
        Ok(Config {
            terminal_id,
            store_dir: store.dir,
            store_temporary: store.temporary,
            store_min_free_bytes: store.min_free_bytes,
            machine_id: store.machine_id,
            deadline,
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
            metrics,
            venue,
        })
    }
}

/// `[venue]` (src/venue/config.rs); each database step must fit in the deadline.
fn venue(
    raw: Option<crate::venue::RawVenue>,
    deadline: std::time::Duration,
) -> Result<Option<crate::venue::VenueSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let v = crate::venue::VenueSettings::from_raw(raw).map_err(|e| invalid(e.field, e.message))?;
    if v.timeout >= deadline {
        return Err(invalid(
            "venue.timeout_ms",
            format!(
                "{} ms must be shorter than deadline_ms ({} ms)",
                v.timeout.as_millis(),
                deadline.as_millis()
            ),
        ));
    }
    Ok(Some(v))
}

/// `terminal_id`: 1-64 characters of letters, digits, `-`, `_`, `.`.
fn terminal_id(v: Option<String>) -> Result<String, ConfigError> {
    let terminal_id = v.unwrap_or_else(|| "terminal-1".into());
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
    Ok(terminal_id)
}

/// `[ats]`: the endpoint, the key and the client's limits.
fn ats(a: RawAts) -> Result<AtsSettings, ConfigError> {
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
    Ok(ats)
}

/// `[cache]`; its call reserve must leave room inside `[ats] rate_per_minute`.
fn cache(c: RawCache, ats: &AtsSettings) -> Result<CacheSettings, ConfigError> {
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
        unlisted: match c.unlisted.as_deref().map(str::trim) {
            // Resolved once `[venue]` is read (validate).
            None => Unlisted::Lookup,
            Some("lookup") => Unlisted::Lookup,
            Some("deny") => Unlisted::Deny,
            Some(other) => {
                return Err(invalid(
                    "cache.unlisted",
                    format!("{other:?}: expected \"lookup\" (ask ATS) or \"deny\""),
                ))
            }
        },
    };
    // One scan's lookup is two calls: a smaller reserve lets the refresher take the
    // whole minute and leave scans refused locally.
    if cache.budget_reserve_per_minute < 2 || cache.budget_reserve_per_minute >= ats.rate_per_minute
    {
        return Err(invalid(
            "cache.budget_reserve_per_minute",
            format!(
                "must be at least 2 (one lookup) and below ats.rate_per_minute ({})",
                ats.rate_per_minute
            ),
        ));
    }
    Ok(cache)
}

/// `[offline]`: the limits of approving from the cache.
fn offline(o: RawOffline) -> Result<OfflineSettings, ConfigError> {
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
    Ok(offline)
}

/// `[health]`: when ATS counts as down, and back.
fn health(h: RawHealth) -> Result<HealthSettings, ConfigError> {
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
    Ok(health)
}

/// `[scanner]`: the schema shared with the board profiles ([`ScannerSection::validate`]).
fn scanner(s: ScannerSection) -> Result<ScannerSection, ConfigError> {
    s.validate().map_err(|e| invalid(e.field, e.reason))?;
    Ok(s)
}

/// `[pos]`; a client's scan rate defaults to a quarter of `[ats] rate_per_minute`.
fn pos(p: RawPos, ats: &AtsSettings) -> Result<PosSettings, ConfigError> {
    let pos = PosSettings {
        output: match p.output.as_deref().unwrap_or("console") {
            "console" => StdoutFormat::Console,
            "jsonl" => StdoutFormat::JsonLines,
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
    Ok(pos)
}

/// `pos.token` or `pos.token_file` (not both), at least [`MIN_POS_TOKEN`] printable
/// characters.
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

/// `events`: names of the events to prefetch.
fn events(events: &[String]) -> Result<(), ConfigError> {
    for e in events {
        if e.is_empty() || e.len() > 64 || e.chars().any(char::is_control) {
            return Err(invalid("events", format!("{e:?} is not an event name")));
        }
    }
    Ok(())
}

/// Where the store lives and what it keeps free.
struct StoreSettings {
    dir: PathBuf,
    temporary: bool,
    min_free_bytes: u64,
    machine_id: Option<String>,
}

/// `store_dir`, `store_min_free_mb`, `machine_id` (with `$STATE_DIRECTORY`).
fn store(
    store_dir: &Option<PathBuf>,
    state_directory: &Option<PathBuf>,
    store_min_free_mb: Option<u64>,
    machine_id: &Option<String>,
    endpoint: &AtsEndpoint,
) -> Result<StoreSettings, ConfigError> {
    let store_temporary = store_dir.is_none() && *endpoint == AtsEndpoint::Sandbox;
    let store_dir = match (&store_dir, &state_directory) {
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
        store_min_free_mb.unwrap_or(8),
        0,
        1 << 20,
    )? * 1024
        * 1024;
    let machine_id = match machine_id {
        None => None,
        Some(m) => Some(crate::store::identity::usable(m).ok_or_else(|| {
            invalid(
                "machine_id",
                "is empty (leave it out to use /etc/machine-id)",
            )
        })?),
    };
    Ok(StoreSettings {
        dir: store_dir,
        temporary: store_temporary,
        min_free_bytes: store_min_free_bytes,
        machine_id,
    })
}

/// `[metrics]`: `textfile` names a file in an existing directory (checked at start,
/// not found missing every few seconds); `interval_s` 1..=3600, default 5.
fn metrics(m: super::RawMetrics) -> Result<super::MetricsSettings, ConfigError> {
    let interval = std::time::Duration::from_secs(ranged(
        "metrics.interval_s",
        m.interval_s
            .unwrap_or(super::MetricsSettings::DEFAULT_INTERVAL.as_secs()),
        1,
        3600,
    )?);
    let textfile = match m.textfile {
        None => None,
        Some(p) if p.as_os_str().is_empty() || p.file_name().is_none() => {
            return Err(invalid("metrics.textfile", "must name a file"))
        }
        Some(p) => {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            if !dir.is_dir() {
                return Err(invalid(
                    "metrics.textfile",
                    format!(
                        "directory {} does not exist (node_exporter's --collector.textfile.directory)",
                        dir.display()
                    ),
                ));
            }
            Some(p)
        }
    };
    Ok(super::MetricsSettings { textfile, interval })
}
