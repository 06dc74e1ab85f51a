//! HTTPS: a rustls 0.23 (ring) server config from a PEM certificate chain and key, and
//! a self-signed CA plus server certificate made with rcgen for demos and tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::SandboxError;

/// A certificate chain and private key in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPem {
    /// Server certificate first, then intermediates.
    pub cert_pem: Vec<u8>,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert_pem_bytes", &self.cert_pem.len())
            .field("key_pem", &"***")
            .finish()
    }
}

impl TlsPem {
    /// Reads both PEM files.
    pub fn from_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsPem, SandboxError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| SandboxError::Tls(format!("read {}: {e}", p.display())))
        };
        Ok(TlsPem {
            cert_pem: read(cert.as_ref())?,
            key_pem: read(key.as_ref())?,
        })
    }
}

/// Builds the rustls server config.
pub(crate) fn server_config(pem: &TlsPem) -> Result<Arc<ServerConfig>, SandboxError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| SandboxError::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(SandboxError::Tls("no certificate in PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key_pem)
        .map_err(|e| SandboxError::Tls(format!("private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SandboxError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SandboxError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// A demo CA and a server certificate it signed, all PEM.
#[derive(Clone)]
pub struct SelfSigned {
    /// The CA certificate (what clients trust).
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned").finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// The server side as [`TlsPem`].
    pub fn tls_pem(&self) -> TlsPem {
        TlsPem {
            cert_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
        }
    }
}

/// Makes a CA and a server certificate for `hosts` (DNS names or IP addresses).
pub fn generate_self_signed(hosts: &[&str]) -> Result<SelfSigned, SandboxError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| SandboxError::Tls(e.to_string());
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ats-sandbox demo CA");
    ca.distinguished_name = dn;
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ats-sandbox");
    leaf.distinguished_name = dn;
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;
    Ok(SelfSigned {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir` (created if needed) for
/// `localhost`, `127.0.0.1` and `::1`; returns the CA path and the server PEM.
pub fn write_self_signed(dir: impl AsRef<Path>) -> Result<(PathBuf, TlsPem), SandboxError> {
    let dir = dir.as_ref();
    let io = |e: std::io::Error| SandboxError::Tls(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let ss = generate_self_signed(&["localhost", "127.0.0.1", "::1"])?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &ss.ca_pem).map_err(io)?;
    std::fs::write(dir.join("server.pem"), &ss.cert_pem).map_err(io)?;
    write_private(&dir.join("server.key"), ss.key_pem.as_bytes()).map_err(io)?;
    Ok((ca, ss.tls_pem()))
}

/// Writes a private key readable by its owner only (0600, also when the file existed
/// with a wider mode): it used to be written world-readable.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()
    }
    #[cfg(not(unix))]
    {
        opts.open(path)?.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16.5: `--tls-self-signed` wrote `server.key` world-readable.
    #[cfg(unix)]
    #[test]
    fn the_self_signed_server_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("server.key");
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_self_signed(tmp.path()).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY"));
    }

    #[test]
    fn self_signed_pem_loads_into_rustls() {
        let ss = generate_self_signed(&["localhost", "127.0.0.1"]);
        let ss = ss.unwrap_or_else(|e| panic!("{e}"));
        assert!(ss.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(server_config(&ss.tls_pem()).is_ok());
        let bad = TlsPem {
            cert_pem: b"nope".to_vec(),
            key_pem: Vec::new(),
        };
        assert!(server_config(&bad).is_err());
    }
}
