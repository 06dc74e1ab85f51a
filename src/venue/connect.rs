//! Opening a connection to the venue database: the URL, the password, the session
//! guards and TLS.
//!
//! Called on the venue worker thread only (or by a `venue` CLI command): `connect` can
//! block past any `connect_timeout`, which bounds the TCP connect alone — DNS, TLS,
//! authentication and the `target_session_attrs` check are not covered (rust-postgres
//! #755 and #869; shared notes, postgres.md). The scan loop never waits for it.
//!
//! Every session gets server-side guards (`statement_timeout`, `lock_timeout`,
//! `idle_in_transaction_session_timeout`: a stand that vanishes mid-transaction releases
//! its row locks) and TCP keepalives with `tcp_user_timeout`, so a dead peer is noticed
//! by the kernel instead of waiting for TCP's minutes of retransmission.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::Client;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::config::VenueSettings;
use super::error::VenueError;

/// The TCP connect bound when the URL gives none.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The libpq-style settings for `settings`, with the session guards.
pub fn pg_config(settings: &VenueSettings, app: &str) -> Result<postgres::Config, VenueError> {
    let mut cfg: postgres::Config = settings
        .url
        .parse()
        .map_err(|e: postgres::Error| VenueError::Config(format!("venue.url: {e}")))?;
    if let Some(p) = &settings.password {
        cfg.password(p.expose());
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name(app);
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    cfg.keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(5));
    let guards = format!(
        "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={} \
         -c synchronous_commit={}",
        settings.statement_timeout.as_millis(),
        settings.lock_timeout.as_millis(),
        settings.idle_in_transaction_timeout.as_millis(),
        settings.synchronous_commit
    );
    let options = match cfg.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {guards}"),
        _ => guards,
    };
    cfg.options(&options);
    if settings.tls_required {
        cfg.ssl_mode(SslMode::Require);
    } else if !settings.url.contains("sslmode=") {
        // Loopback or a Unix socket, no TLS asked for: no certificates to load.
        cfg.ssl_mode(SslMode::Disable);
    }
    Ok(cfg)
}

/// Connects (blocking: call it on the worker).
pub fn connect(settings: &VenueSettings, app: &str) -> Result<Client, VenueError> {
    let cfg = pg_config(settings, app)?;
    let client = if cfg.get_ssl_mode() == SslMode::Disable {
        cfg.connect(postgres::NoTls)?
    } else {
        let tls =
            tokio_postgres_rustls::MakeRustlsConnect::new(client_tls(settings.ca_file.as_deref())?);
        cfg.connect(tls)?
    };
    Ok(client)
}

/// rustls with ring and the trusted CAs: `ca_file`'s, else the system trust store
/// (`SSL_CERT_FILE` or the distribution's bundle, as for ATS).
fn client_tls(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, VenueError> {
    let path = match ca_file {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("SSL_CERT_FILE") {
            Some(p) => p.into(),
            None => crate::ats::tls::SYSTEM_BUNDLES
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    VenueError::Config(
                        "no system CA bundle found for the venue database's TLS: install \
                         ca-certificates or set venue.ca_file"
                            .into(),
                    )
                })?,
        },
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| VenueError::Config(format!("venue CA file {}: {e}", path.display())))?;
    for c in certs {
        let c =
            c.map_err(|e| VenueError::Config(format!("venue CA file {}: {e}", path.display())))?;
        // A bundle may hold a certificate rustls cannot use; the rest still count.
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(VenueError::Config(format!(
            "venue CA file {} holds no usable certificate",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| VenueError::Config(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::config::RawVenue;

    fn settings(url: &str) -> VenueSettings {
        VenueSettings::from_raw(RawVenue {
            url: Some(url.into()),
            password_env: Some("pw".into()),
            ..RawVenue::default()
        })
        .unwrap()
    }

    #[test]
    fn every_session_carries_the_server_side_guards_and_keepalives() {
        let cfg = pg_config(&settings("postgres://t@127.0.0.1:5433/v"), "app").unwrap();
        let o = cfg.get_options().unwrap();
        assert!(o.contains("statement_timeout=2000"), "{o}");
        assert!(o.contains("lock_timeout=1000"), "{o}");
        assert!(
            o.contains("idle_in_transaction_session_timeout=5000"),
            "{o}"
        );
        assert!(o.contains("synchronous_commit=off"), "the default: {o}");
        assert!(cfg.get_keepalives());
        assert_eq!(cfg.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(cfg.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(cfg.get_ssl_mode(), SslMode::Disable);
        assert_eq!(cfg.get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn a_lan_database_is_reached_only_over_tls() {
        let cfg = pg_config(
            &settings("postgres://t@db1.lan,db2.lan/v?target_session_attrs=read-write"),
            "app",
        )
        .unwrap();
        assert_eq!(cfg.get_ssl_mode(), SslMode::Require);
        assert_eq!(cfg.get_hosts().len(), 2);
    }
}
