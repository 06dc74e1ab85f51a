//! Which certificate authorities the client trusts.
//!
//! By default the Mozilla roots bundled by `webpki-roots`; when `ca_file` is set, only
//! the certificates in that PEM file (a private CA for the sandbox or a lab gateway).

use std::path::Path;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

use super::error::AtsError;

/// A CA file larger than this is refused (it is certificates, not data).
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The TLS configuration for `ca_file` (`None`: webpki roots).
pub fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, AtsError> {
    let roots = match ca_file {
        None => RootCerts::WebPki,
        Some(path) => RootCerts::new_with_certs(&load_pem_certs(path)?),
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
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
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(matches!(err, AtsError::Config(_)));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.pem");
        std::fs::write(&f, "not a pem").unwrap();
        let err = tls_config(Some(&f)).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    #[test]
    fn default_uses_webpki_roots() {
        let c = tls_config(None).unwrap();
        assert!(matches!(c.root_certs(), RootCerts::WebPki));
    }
}
