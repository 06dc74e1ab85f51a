//! `[venue]`: where the venue database is and how long a scan may wait for it.
//!
//! ```toml
//! [venue]
//! url = "postgres://terminal@db1.venue.lan:5432,db2.venue.lan:5432/concessions?target_session_attrs=read-write"
//! password_file = "/etc/concession-agent/venue-password"   # or env CONCESSION_VENUE_PASSWORD
//! ca_file = "/etc/concession-agent/venue-ca.pem"           # default: the system trust store
//! timeout_ms = 300
//! stands = 12                                              # stands on this API key
//! ```
//!
//! `CONCESSION_VENUE_URL` overrides `url` (and turns venue mode on without a `[venue]`
//! table). The password never comes from the URL's text in logs: it is taken out of the
//! configuration into a [`Secret`], and a password file readable by group or others is
//! refused. A database host that is not loopback (or a Unix socket) requires TLS, the same
//! rule as ATS: `sslmode=disable` is then an error, and the client insists on TLS with
//! certificate and host name checks (rustls, ring).
//!
//! This part is compiled in every build, so a `[venue]` table in a build without the
//! `venue` feature gets a clear error instead of "unknown field".

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::redact::Secret;

/// `[venue]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVenue {
    /// `postgres://user@host[:port][,host2[:port2]]/db?params`.
    pub url: Option<String>,
    /// A file holding the password (mode 0600 or stricter).
    pub password_file: Option<PathBuf>,
    /// Trust only these CAs (PEM) for the database's certificate.
    pub ca_file: Option<PathBuf>,
    /// How long a scan waits for the database (each step), ms. Default 300.
    pub timeout_ms: Option<u64>,
    /// How long `run` waits at start for migrations and the replay, ms. Default 5000.
    pub start_timeout_ms: Option<u64>,
    /// Server-side `statement_timeout`, ms. Default 2000.
    pub statement_timeout_ms: Option<u64>,
    /// Server-side `lock_timeout`, ms. Default 1000.
    pub lock_timeout_ms: Option<u64>,
    /// Server-side `idle_in_transaction_session_timeout`, ms. Default 5000.
    pub idle_in_transaction_timeout_ms: Option<u64>,
    /// The stands sharing the API key: while the database is away each keeps to the
    /// key's limits divided by this (docs/venue.md, "One budget for the key"). Default 1.
    pub stands: Option<u32>,
    /// How long an event's fetch lease lasts unrenewed: another terminal takes the
    /// fetch over this long after its holder stopped, ms. Default 10000.
    pub lease_ms: Option<u64>,
    /// How often a terminal copies the venue ticket table's changes into its cache, ms.
    /// Default 2000.
    pub sync_interval_ms: Option<u64>,
    /// `synchronous_commit` of the terminal's sessions: `off` (the default: the
    /// journal holds every decision and the replay restores what a server crash loses,
    /// docs/venue.md "Durability and latency"), `on`, `local`, `remote_write` or
    /// `remote_apply`.
    pub synchronous_commit: Option<String>,
    /// The password from `CONCESSION_VENUE_PASSWORD` (never from the file).
    #[serde(skip)]
    pub password_env: Option<String>,
}

/// Validated `[venue]`.
#[derive(Debug, Clone)]
pub struct VenueSettings {
    /// The connection URL as given (it carries no password once validated).
    pub url: String,
    /// The password, if any.
    pub password: Option<Secret>,
    /// CA file for the database's certificate; `None`: the system trust store.
    pub ca_file: Option<PathBuf>,
    /// At least one host is not loopback: TLS is required.
    pub tls_required: bool,
    /// How long the loop waits for one step of a venue transaction.
    pub timeout: Duration,
    /// How long `run` waits at start for migrations and the replay.
    pub start_timeout: Duration,
    /// `statement_timeout`.
    pub statement_timeout: Duration,
    /// `lock_timeout`.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout: Duration,
    /// `venue.stands`: the static share's divisor.
    pub stands: u32,
    /// `venue.stands` was written (a default of 1 is worth a warning at start).
    pub stands_given: bool,
    /// `lease_ms`: an event's fetch lease.
    pub lease: Duration,
    /// `sync_interval_ms`: how often the venue ticket table is copied.
    pub sync_interval: Duration,
    /// `synchronous_commit` of every session (`venue.synchronous_commit`, default `off`).
    pub synchronous_commit: &'static str,
}

/// The values of `venue.synchronous_commit` (PostgreSQL's own).
pub const SYNCHRONOUS_COMMIT: [&str; 5] = ["off", "on", "local", "remote_write", "remote_apply"];

impl VenueSettings {
    /// True when the server flushes a commit's WAL before acknowledging it (every
    /// `synchronous_commit` but `off`).
    pub fn commits_flushed(&self) -> bool {
        self.synchronous_commit != "off"
    }
}

/// The most stands `venue.stands` accepts.
pub const MAX_STANDS: u32 = 10_000;

/// Why `[venue]` cannot be used: the field and a message (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueConfigError {
    /// The field, `venue.url` etc.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> VenueConfigError {
    VenueConfigError {
        field,
        message: message.into(),
    }
}

fn ms(
    field: &'static str,
    v: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, VenueConfigError> {
    let v = v.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(err(field, format!("must be {min}..={max} ms, not {v}")));
    }
    Ok(Duration::from_millis(v))
}

/// True for a host that never leaves the machine: loopback names and addresses, and
/// Unix-socket directories.
pub fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.starts_with('/') || h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// The hosts of a `postgres://` URL (`user@a:1,b:2/db`), or of a `host=` parameter.
fn url_hosts(url: &str) -> Vec<String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .unwrap_or("");
    let (authority, query) = match rest.split_once('/') {
        Some((a, rest)) => (a, rest.split_once('?').map(|(_, q)| q).unwrap_or("")),
        None => match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        },
    };
    let hostlist = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut hosts: Vec<String> = Vec::new();
    for h in hostlist.split(',').filter(|h| !h.is_empty()) {
        // `[::1]:5432`, `db1:5432`, `db1`
        let host = if let Some(end) = h.find(']') {
            &h[..=end]
        } else {
            h.split(':').next().unwrap_or(h)
        };
        hosts.push(host.to_string());
    }
    for kv in query.split('&') {
        if let Some(v) = kv.strip_prefix("host=") {
            hosts.extend(v.split(',').map(percent_decode));
        }
    }
    if hosts.is_empty() {
        // No host: libpq's default is the local Unix socket.
        hosts.push("/run/postgresql".into());
    }
    hosts
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL's `sslmode`, if given.
fn url_sslmode(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("sslmode="))
        .map(str::to_string)
}

/// True when the URL's user part carries a password (`user:secret@host`).
fn url_has_password(url: &str) -> bool {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .unwrap_or("");
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(user, _)| user.contains(':'))
        || url.contains("password=")
}

impl VenueSettings {
    /// Validates `[venue]` (reads the password file).
    pub fn from_raw(raw: RawVenue) -> Result<VenueSettings, VenueConfigError> {
        if !cfg!(feature = "venue") {
            return Err(err(
                "venue",
                "this build has no venue mode (built without the `venue` feature): \
                 remove [venue] and CONCESSION_VENUE_URL, or use a build with it",
            ));
        }
        let url = raw
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| err("venue.url", "is required in [venue]"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(err(
                "venue.url",
                "must start with postgres:// (postgres://user@host:port/db)",
            ));
        }
        if url_has_password(&url) {
            // A password in the URL would be logged with it, and shown by `ps`.
            return Err(err(
                "venue.url",
                "must not carry a password: use CONCESSION_VENUE_PASSWORD or venue.password_file",
            ));
        }
        let hosts = url_hosts(&url);
        let tls_required = !hosts.iter().all(|h| is_local_host(h));
        if tls_required && url_sslmode(&url).as_deref() == Some("disable") {
            return Err(err(
                "venue.url",
                "sslmode=disable with a database host that is not loopback: the venue \
                 database must be reached over TLS",
            ));
        }
        let password = match (raw.password_env, &raw.password_file) {
            (Some(p), _) => Some(Secret::new(p)),
            (None, Some(path)) => Some(read_password_file(path)?),
            (None, None) => None,
        };
        let stands = raw.stands.unwrap_or(1);
        if !(1..=MAX_STANDS).contains(&stands) {
            return Err(err(
                "venue.stands",
                format!("must be 1..={MAX_STANDS} (the stands sharing the API key), not {stands}"),
            ));
        }
        let synchronous_commit = match raw.synchronous_commit.as_deref() {
            None => "off",
            Some(v) => SYNCHRONOUS_COMMIT
                .iter()
                .copied()
                .find(|k| *k == v)
                .ok_or_else(|| {
                    err(
                        "venue.synchronous_commit",
                        format!(
                            "must be one of {}, not {v:?}",
                            SYNCHRONOUS_COMMIT.join(", ")
                        ),
                    )
                })?,
        };
        Ok(VenueSettings {
            stands,
            stands_given: raw.stands.is_some(),
            synchronous_commit,
            url,
            password,
            ca_file: raw.ca_file,
            tls_required,
            timeout: ms("venue.timeout_ms", raw.timeout_ms, 300, 10, 10_000)?,
            start_timeout: ms(
                "venue.start_timeout_ms",
                raw.start_timeout_ms,
                5_000,
                100,
                600_000,
            )?,
            statement_timeout: ms(
                "venue.statement_timeout_ms",
                raw.statement_timeout_ms,
                2_000,
                10,
                600_000,
            )?,
            lock_timeout: ms(
                "venue.lock_timeout_ms",
                raw.lock_timeout_ms,
                1_000,
                10,
                600_000,
            )?,
            idle_in_transaction_timeout: ms(
                "venue.idle_in_transaction_timeout_ms",
                raw.idle_in_transaction_timeout_ms,
                5_000,
                100,
                600_000,
            )?,
            lease: ms("venue.lease_ms", raw.lease_ms, 10_000, 500, 600_000)?,
            sync_interval: ms(
                "venue.sync_interval_ms",
                raw.sync_interval_ms,
                2_000,
                50,
                600_000,
            )?,
        })
    }
}

fn read_password_file(path: &std::path::Path) -> Result<Secret, VenueConfigError> {
    let text = crate::redact::read_secret_file(path).map_err(|e| match e {
        crate::redact::SecretFileError::Read(e) => err(
            "venue.password_file",
            format!("cannot read {}: {e}", path.display()),
        ),
        crate::redact::SecretFileError::TooOpen { mode } => err(
            "venue.password_file",
            format!(
                "{} has mode {mode:o}: it must not be readable by group or others (chmod 600)",
                path.display()
            ),
        ),
    })?;
    let p = text.trim_end_matches(['\n', '\r']);
    if p.is_empty() {
        return Err(err(
            "venue.password_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret::new(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "venue")]
    fn raw(url: &str) -> RawVenue {
        RawVenue {
            url: Some(url.into()),
            ..RawVenue::default()
        }
    }

    #[test]
    fn hosts_are_read_from_a_multi_host_url() {
        assert_eq!(
            url_hosts("postgres://t@db1:5432,db2:5433/v?target_session_attrs=read-write"),
            vec!["db1", "db2"]
        );
        assert_eq!(url_hosts("postgres://t@[::1]:5432/v"), vec!["[::1]"]);
        assert_eq!(
            url_hosts("postgres:///v?host=%2Ftmp%2Fpg"),
            vec!["/tmp/pg".to_string()]
        );
    }

    #[test]
    fn loopback_and_sockets_are_local_and_lan_hosts_are_not() {
        assert!(is_local_host("127.0.0.1"));
        assert!(is_local_host("[::1]"));
        assert!(is_local_host("localhost"));
        assert!(is_local_host("/run/postgresql"));
        assert!(!is_local_host("10.0.0.5"));
        assert!(!is_local_host("db1.venue.lan"));
    }

    #[cfg(feature = "venue")]
    #[test]
    fn a_lan_host_requires_tls_and_refuses_sslmode_disable() {
        let s = VenueSettings::from_raw(raw("postgres://t@db1.lan/v")).unwrap();
        assert!(s.tls_required);
        let e = VenueSettings::from_raw(raw("postgres://t@127.0.0.1,db1.lan/v?sslmode=disable"))
            .unwrap_err();
        assert_eq!(e.field, "venue.url");
        assert!(e.message.contains("TLS"), "{}", e.message);
        let s = VenueSettings::from_raw(raw("postgres://t@127.0.0.1:5/v?sslmode=disable")).unwrap();
        assert!(!s.tls_required);
    }

    #[cfg(feature = "venue")]
    #[test]
    fn synchronous_commit_defaults_to_off_and_refuses_what_postgres_does_not_know() {
        let s = VenueSettings::from_raw(raw("postgres://t@127.0.0.1/v")).unwrap();
        assert_eq!(s.synchronous_commit, "off");
        assert!(!s.commits_flushed());
        let mut r = raw("postgres://t@127.0.0.1/v");
        r.synchronous_commit = Some("remote_apply".into());
        assert!(VenueSettings::from_raw(r.clone())
            .unwrap()
            .commits_flushed());
        r.synchronous_commit = Some("on; DROP TABLE x".into());
        let e = VenueSettings::from_raw(r).unwrap_err();
        assert_eq!(e.field, "venue.synchronous_commit");
        assert!(e.message.contains("remote_write"), "{}", e.message);
    }

    #[cfg(feature = "venue")]
    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let e = VenueSettings::from_raw(raw("postgres://t:hunter2@127.0.0.1/v")).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(e.message.contains("CONCESSION_VENUE_PASSWORD"));
    }

    #[cfg(feature = "venue")]
    #[test]
    fn a_group_readable_password_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut r = raw("postgres://t@127.0.0.1/v");
        r.password_file = Some(f.clone());
        let e = VenueSettings::from_raw(r.clone()).unwrap_err();
        assert!(e.message.contains("640"), "{}", e.message);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = VenueSettings::from_raw(r).unwrap();
        assert_eq!(s.password.unwrap().expose(), "s3cret");
    }

    #[cfg(feature = "venue")]
    #[test]
    fn stands_default_to_one_and_zero_is_refused_by_name() {
        let s = VenueSettings::from_raw(raw("postgres://t@127.0.0.1/v")).unwrap();
        assert_eq!((s.stands, s.stands_given), (1, false));
        let mut r = raw("postgres://t@127.0.0.1/v");
        r.stands = Some(0);
        let e = VenueSettings::from_raw(r).unwrap_err();
        assert_eq!(e.field, "venue.stands");
        assert!(e.message.contains("not 0"), "{}", e.message);
    }

    #[cfg(feature = "venue")]
    #[test]
    fn the_environment_password_wins_over_the_file() {
        let mut r = raw("postgres://t@127.0.0.1/v");
        r.password_file = Some("/nonexistent".into());
        r.password_env = Some("envpw".into());
        let s = VenueSettings::from_raw(r).unwrap();
        assert_eq!(s.password.unwrap().expose(), "envpw");
    }
}
