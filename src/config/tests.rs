//! Tests of the configuration: defaults, the shipped file, bad values by field.

use super::*;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_raw(RawConfig::parse(text, Path::new("test.toml"))?)
}

#[test]
fn shipped_demo_config_is_valid() {
    let text = include_str!("../../config/agent.toml");
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
        ("[cache]\nunlisted = \"maybe\"", "cache.unlisted"),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(field), "{text}: {e}");
    }
}
