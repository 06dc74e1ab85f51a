//! Venue mode over TLS against a real PostgreSQL (issue 12 item 1): the rule that a
//! database off loopback is reached only over TLS is tested by config unit tests; here
//! the TLS path itself runs. A cluster with `ssl = on` and a certificate from a private
//! CA for `localhost`: the terminal (the real binary) reaches it with `venue.ca_file`
//! and commits its decisions over TLS (the server's `pg_stat_ssl` says so), while a
//! terminal that trusts another CA, or names the server by an address its certificate
//! does not carry, is refused in the handshake, decides offline within its deadline,
//! and says why.
#![cfg(feature = "venue")]

mod support;

use std::path::Path;
use std::time::Duration;

use support::pg::{self, Cluster, ClusterOptions};
use support::venue::{self, Stand, StandConfig};

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A private CA named `ca_name` and a server certificate for `localhost` only (no IP
/// address).
fn pki(ca_name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes the server's certificate and key where the server's user may read them (the
/// key must be its own, mode 0600, or PostgreSQL refuses to start).
fn server_files(dir: &Path, p: &Pki) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, &p.cert_pem).unwrap();
    std::fs::write(&key, &p.key_pem).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let (uid, gid) = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[0] == "postgres")
                    .then(|| (f[2].parse::<u32>().unwrap(), f[3].parse::<u32>().unwrap()))
            })
            .expect("a postgres user");
        for f in [&cert, &key] {
            std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
        }
    }
    (cert.display().to_string(), key.display().to_string())
}

fn tls_cluster(test: &str, files: &Path, p: &Pki) -> Option<Cluster> {
    pg::available(test)?;
    let (cert, key) = server_files(files, p);
    Some(Cluster::new(ClusterOptions {
        durable: false,
        settings: vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), cert),
            ("ssl_key_file".into(), key),
        ],
    }))
}

#[test]
fn a_terminal_commits_over_tls_with_its_ca_and_is_refused_in_the_handshake_without_it() {
    let p = pki("venue CA");
    let files = tempfile::tempdir().unwrap();
    let Some(cluster) = tls_cluster("venue_tls", files.path(), &p) else {
        return;
    };
    let db = cluster.create_db("tls");
    let sb = venue::sandbox(4);
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("venue-ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let other_ca = tmp.path().join("other-ca.pem");
    std::fs::write(&other_ca, pki("another CA").ca_pem).unwrap();
    // The server by the name its certificate carries, TLS required.
    let by_name = format!("{}?sslmode=require", db.replace("127.0.0.1", "localhost"));

    // Trusting the venue's CA: committed, over TLS.
    let mut good = StandConfig::new("stand-tls", &sb.base_url(), &by_name);
    good.venue_extra = format!("ca_file = {:?}\n", ca.display().to_string());
    let good = good.write(&tmp.path().join("good"));
    let mut stand = Stand::spawn(&good);
    stand.wait_serving(Duration::from_secs(20));
    let d = stand.decide(&venue::ticket(0), Duration::from_secs(10));
    assert!(d.approve, "{:?}\n{}", d.raw, stand.stderr());
    assert_eq!(d.venue.as_deref(), Some("committed"), "{}", stand.stderr());
    let ssl = cluster.psql(
        "tls",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.application_name LIKE 'concession%'",
    );
    assert!(
        ssl.trim().parse::<u32>().unwrap_or(0) >= 1,
        "no TLS session of the terminal: {ssl:?}"
    );
    assert!(stand.finish(Duration::from_secs(20)), "{}", stand.stderr());

    // Trusting another CA, or naming the server by an address its certificate does
    // not carry: the handshake fails, every scan is decided offline in time, and the
    // log says it is the certificate.
    let by_address = format!("{db}?sslmode=require");
    for (name, url, ca_file, why) in [
        ("other-ca", by_name.as_str(), &other_ca, "unknownissuer"),
        ("by-address", by_address.as_str(), &ca, "notvalidforname"),
    ] {
        let mut bad = StandConfig::new(&format!("stand-{name}"), &sb.base_url(), url);
        bad.venue_extra = format!("ca_file = {:?}\n", ca_file.display().to_string());
        let bad = bad.write(&tmp.path().join(name));
        let mut stand = Stand::spawn(&bad);
        stand.wait_serving(Duration::from_secs(20));
        let d = stand.decide(&venue::ticket(1), Duration::from_secs(10));
        assert_eq!(d.venue.as_deref(), Some("pending"), "{name}: {:?}", d.raw);
        assert!(d.latency_ms < 1500, "{name}: {} ms", d.latency_ms);
        assert!(stand.finish(Duration::from_secs(20)), "{}", stand.stderr());
        let err = stand.stderr().to_lowercase();
        assert!(
            err.contains("tls handshake") && err.replace([' ', '_'], "").contains(why),
            "{name}: the log does not say why the handshake failed ({why}):\n{err}"
        );
    }
    // Nothing of theirs reached the venue: only the first stand's decision is there.
    let rows = cluster.psql("tls", "SELECT count(*) FROM venue_decisions");
    assert_eq!(rows.trim(), "1", "{rows}");
}
