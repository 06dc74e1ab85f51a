//! The Presence client against the sandbox's Presence route: typed errors that name
//! the phase and never the key, deadline-bounded calls, TLS off loopback.

mod support;

use std::time::{Duration, Instant};

use concession_agent::clock;
use concession_agent::presence::error::Phase;
use concession_agent::presence::{PresenceClient, PresenceConfig, PresenceError, Status};
use concession_agent::redact::Secret;
use concession_agent::sandbox::{Faults, PRESENCE_APIKEY};

fn client(url: &str, key: &str) -> PresenceClient {
    PresenceClient::new(
        PresenceConfig {
            base_url: url.into(),
            apikey: Secret::new(key),
            ..PresenceConfig::default()
        },
        clock::system(),
    )
    .expect("client builds")
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[test]
fn a_valid_payload_is_answered_okay_with_its_seat_and_event() {
    let sb = support::sandbox();
    let c = client(&sb.base_url(), PRESENCE_APIKEY);
    let p = sb.safetix_payload("100000000001").unwrap();
    let v = c
        .validate(&p, clock::system().wall_ms(), soon(2000))
        .unwrap();
    assert_eq!(v.status, Status::Okay);
    assert_eq!(v.tickets[0].event_id, "EVENT01");
    assert_eq!(v.tickets[0].place.as_ref().unwrap().to_string(), "101:A:1");
}

#[test]
fn the_ats_key_is_refused_and_no_error_shows_the_presence_key() {
    let sb = support::sandbox();
    let e = client(&sb.base_url(), "sandbox-key")
        .validate("STATUS-OKAY::000000::000000::1", 0, soon(2000))
        .unwrap_err();
    assert!(matches!(e, PresenceError::Unauthorized { .. }), "{e}");
    assert!(!e.to_string().contains("sandbox-key"), "{e}");

    // Nothing listens there: a connect error, without the key in its text.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("http://127.0.0.1:{port}"), "pk-very-secret")
        .validate("STATUS-OKAY::000000::000000::1", 0, soon(2000))
        .unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Connect), "{e}");
    assert!(e.is_outage());
    assert!(!format!("{e} {e:?}").contains("pk-very-secret"), "{e:?}");
}

#[test]
fn a_black_holed_call_ends_at_its_deadline() {
    let sb = support::sandbox();
    sb.set_presence_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let c = client(&sb.base_url(), PRESENCE_APIKEY);
    let started = Instant::now();
    let e = c
        .validate("STATUS-OKAY::000000::000000::1", 0, soon(200))
        .unwrap_err();
    let took = started.elapsed();
    sb.set_presence_faults(Faults::default());
    assert!(matches!(e, PresenceError::Timeout { .. }), "{e}");
    assert!(took < Duration::from_millis(600), "{took:?}");
}

#[test]
fn a_garbled_answer_is_a_decode_error_and_a_503_an_http_outage() {
    let sb = support::sandbox();
    let c = client(&sb.base_url(), PRESENCE_APIKEY);
    sb.set_presence_faults(Faults {
        malformed_body: true,
        ..Faults::default()
    });
    let e = c
        .validate("STATUS-OKAY::000000::000000::1", 0, soon(2000))
        .unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Decode), "{e}");
    sb.set_presence_faults(Faults {
        fail_next: 1,
        ..Faults::default()
    });
    let e = c
        .validate("STATUS-OKAY::000000::000000::1", 0, soon(2000))
        .unwrap_err();
    assert!(matches!(e, PresenceError::Http { status: 503, .. }), "{e}");
    assert!(e.is_outage());
    // The ATS side never saw any of it.
    assert_eq!(sb.stats().total_requests, 0);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_io() {
    let e = PresenceClient::new(
        PresenceConfig {
            base_url: "http://presence.example.com".into(),
            apikey: Secret::new("pk"),
            ..PresenceConfig::default()
        },
        clock::system(),
    )
    .unwrap_err();
    assert!(matches!(e, PresenceError::Config(_)), "{e}");
    assert!(e.to_string().contains("https"), "{e}");
}

#[test]
fn a_payload_printed_by_the_sandbox_binary_is_valid_in_any_sandbox() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ats-sandbox"))
        .args(["--safetix", "100000000001"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let payload = String::from_utf8(out.stdout).unwrap();
    let sb = support::sandbox();
    let c = client(&sb.base_url(), PRESENCE_APIKEY);
    let v = c
        .validate(payload.trim(), clock::system().wall_ms(), soon(2000))
        .unwrap();
    assert_eq!(v.status, Status::Okay, "{payload}");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_ats-sandbox"))
        .args(["--safetix", "1"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}
