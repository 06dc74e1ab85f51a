//! Which certificate authorities the client trusts.
//!
//! By default the operating system's trust store: the PEM bundle named by
//! `SSL_CERT_FILE`, else the first of the distributions' usual bundle paths
//! ([`SYSTEM_BUNDLES`]). Venue IT keeps it current with the OS (`ca-certificates`) and
//! can add a TLS-inspecting proxy's CA there; a list compiled into the agent would only
//! change with agent releases (and cost ~70 KB of the terminal build). When `ca_file`
//! is set, only the certificates in that file are trusted (a private CA for the sandbox
//! or a lab gateway). Plain-http endpoints (loopback only) load nothing.
//!
//! The crypto provider is rustls' `ring`, given to each client explicitly.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

use super::error::AtsError;

/// A CA file larger than this is refused (it is certificates, not data; a full system
/// bundle is ~220 KB).
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Where distributions keep the system CA bundle, in the order tried: Debian, Ubuntu,
/// Raspberry Pi OS, Alpine, Arch; Fedora, RHEL; openSUSE; Alpine, BSDs.
pub const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS configuration for an endpoint: `ca_file`'s certificates when set, else the
/// system trust store when `tls` (https), else none (plain http needs no roots).
pub fn tls_config(ca_file: Option<&Path>, tls: bool) -> Result<TlsConfig, AtsError> {
    let env = std::env::var_os("SSL_CERT_FILE");
    let certs = match (ca_file, tls) {
        (Some(path), _) => load_pem_certs(path)?,
        (None, true) => system_roots(env.as_deref().map(Path::new), &SYSTEM_BUNDLES)?,
        (None, false) => Vec::new(),
    };
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}

/// The system trust store: `env_file` (from `SSL_CERT_FILE`) if given, else the first
/// of `bundles` that exists.
fn system_roots(
    env_file: Option<&Path>,
    bundles: &[&str],
) -> Result<Vec<ureq::tls::Certificate<'static>>, AtsError> {
    if let Some(path) = env_file {
        return load_pem_certs(path);
    }
    match bundles.iter().map(Path::new).find(|p| p.is_file()) {
        Some(path) => load_pem_certs(path),
        None => Err(AtsError::Config(format!(
            "no system CA bundle found (looked for {}): install the ca-certificates \
             package, or set ats.ca_file or SSL_CERT_FILE",
            bundles.join(", ")
        ))),
    }
}

fn load_pem_certs(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, AtsError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| AtsError::Config(format!("ca file {shown}: {e}")))?;
    if meta.len() > MAX_CA_FILE_BYTES {
        return Err(AtsError::Config(format!("ca file {shown}: too large")));
    }
    let pem = std::fs::read(path).map_err(|e| AtsError::Config(format!("ca file {shown}: {e}")))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(AtsError::Config(format!("ca file {shown}: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(AtsError::Config(format!(
            "ca file {shown}: no certificate found"
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_or_empty_ca_files() {
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem")), true).unwrap_err();
        assert!(matches!(err, AtsError::Config(_)));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.pem");
        std::fs::write(&f, "not a pem").unwrap();
        let err = tls_config(Some(&f), true).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn system_roots_come_from_ssl_cert_file_or_the_first_bundle_found() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.pem");
        let two = dir.path().join("two.pem");
        std::fs::write(&one, ca_pem()).unwrap();
        std::fs::write(&two, format!("{}{}", ca_pem(), ca_pem())).unwrap();
        let missing = dir.path().join("missing.pem");
        let (one_s, two_s, missing_s) = (
            one.to_str().unwrap(),
            two.to_str().unwrap(),
            missing.to_str().unwrap(),
        );
        // The first bundle that exists.
        let got = system_roots(None, &[missing_s, two_s, one_s]).unwrap();
        assert_eq!(got.len(), 2);
        // SSL_CERT_FILE wins over the bundles.
        let got = system_roots(Some(&one), &[two_s]).unwrap();
        assert_eq!(got.len(), 1);
        // None found: a specific error naming what to do.
        let err = system_roots(None, &[missing_s]).unwrap_err().to_string();
        assert!(err.contains("ca-certificates"), "{err}");
        assert!(err.contains(missing_s), "{err}");
    }

    #[test]
    fn plain_http_loads_no_roots() {
        let c = tls_config(None, false).unwrap();
        match c.root_certs() {
            RootCerts::Specific(certs) => assert!(certs.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
