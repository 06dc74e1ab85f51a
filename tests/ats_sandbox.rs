//! The ATS client against the real in-process sandbox (feature "sandbox").
//!
//! Client and sandbox share ONE ManualClock, so 202 cycles (10 s for
//! `ats_ext_test_polling`, 3 s for the slow ticket) finish at once: the client's poll
//! waits advance the very clock the sandbox judges "done" by.
#![cfg(feature = "sandbox")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use concession_agent::ats::{wire, AtsClient, AtsConfig, AtsError, Phase, RateWindow};
use concession_agent::clock::{Clock, ManualClock};
use concession_agent::redact::Secret;
use concession_agent::sandbox::{
    generate_self_signed, DataSet, Faults, Sandbox, SandboxConfig, SandboxHandle,
};
use concession_agent::ticket::{TicketStatus, ValueKind};

const KEY: &str = "sandbox-key-for-ats-tests";
/// A realistic wall clock start, so `Rate-Limit-Reset` (epoch ms) reads right.
const WALL_START_MS: u64 = 1_790_000_000_000;

struct Rig {
    sb: SandboxHandle,
    clock: ManualClock,
}

impl Rig {
    fn client(&self) -> AtsClient {
        self.client_with(|_| {})
    }
    fn client_with(&self, f: impl FnOnce(&mut AtsConfig)) -> AtsClient {
        let mut cfg = AtsConfig {
            base_url: self.sb.base_url(),
            apikey: Secret::new(KEY),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(2),
            ..AtsConfig::default()
        };
        f(&mut cfg);
        AtsClient::with_clock(cfg, self.clock.shared()).unwrap()
    }
}

fn rig_with(f: impl FnOnce(&mut SandboxConfig)) -> Rig {
    let clock = ManualClock::new(WALL_START_MS);
    let mut cfg = SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        apikey: KEY.into(),
        clock: clock.shared(),
        ..SandboxConfig::default()
    };
    f(&mut cfg);
    Rig {
        sb: Sandbox::start(cfg).unwrap(),
        clock,
    }
}

fn rig() -> Rig {
    rig_with(|_| {})
}

#[test]
fn pings_the_sandbox() {
    let r = rig();
    let c1 = r.client().ping().unwrap();
    assert!(c1.get("system_available").is_some(), "{c1}");
    assert_eq!(r.sb.stats().calls("ping"), 1);
}

#[test]
fn verifies_the_magic_barcodes() {
    let r = rig();
    let c = r.client();
    let t = c
        .verify_barcode("100000000001", Some("EVENT01"))
        .unwrap()
        .unwrap();
    assert_eq!(t.event_name, "EVENT01");
    assert_eq!(t.acct_id, Some(100479));
    assert_eq!(t.status, TicketStatus::Active);
    let t = c.verify_barcode("100000000005", None).unwrap().unwrap();
    assert_eq!(t.status, TicketStatus::Void);
    let t = c.verify_barcode("100000000009", None).unwrap().unwrap();
    assert_eq!(t.status, TicketStatus::Reissued);
    // another event is still an answer: the agent judges wrong_event
    let t = c
        .verify_barcode("100000000006", Some("EVENT01"))
        .unwrap()
        .unwrap();
    assert_eq!(t.event_name, "EVENT02");
    assert_eq!(c.verify_barcode("999999999999", None).unwrap(), None);
    let e = c.verify_barcode("", None).unwrap_err();
    assert!(matches!(e, AtsError::Api { code: 5302, .. }), "{e:?}");
}

#[test]
fn reads_loaded_value_of_the_magic_barcodes() {
    let r = rig();
    let c = r.client();
    let v = c.get_av_barcodes("100000000001").unwrap().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].av_id.as_str(), v[0].kind, v[0].loaded, v[0].balance),
        ("AV1001", ValueKind::Money, 2000, 2000)
    );
    let v = c.get_av_barcodes("100000000002").unwrap().unwrap();
    assert_eq!(v[0].kind, ValueKind::Item);
    assert_eq!(v[0].description, "Pizza and a Coke");
    assert_eq!((v[0].loaded, v[0].balance), (1, 1));
    let v = c.get_av_barcodes("100000000003").unwrap().unwrap();
    let mut kinds: Vec<(String, ValueKind, u64)> = v
        .iter()
        .map(|l| (l.av_id.clone(), l.kind, l.balance))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        vec![
            ("AV1003".into(), ValueKind::Money, 1500),
            ("AV1004".into(), ValueKind::Item, 1)
        ]
    );
    assert_eq!(c.get_av_barcodes("100000000004").unwrap(), Some(vec![]));
    assert_eq!(c.get_av_barcodes("999999999999").unwrap(), None);
    r.sb.set_balance("100000000001", "AV1001", 750).unwrap();
    let v = c.get_av_barcodes("100000000001").unwrap().unwrap();
    assert_eq!(v[0].balance, 750);
}

#[test]
fn lists_a_generated_event_in_chunks() {
    let r = rig_with(|cfg| {
        let mut data = DataSet::builtin();
        data.generate(1200);
        cfg.data = data;
    });
    let c = r.client();
    let rows = c.get_av_barcodes_for_event("EVENT01").unwrap();
    let barcodes: HashSet<&str> = rows.iter().map(|(b, _)| b.as_str()).collect();
    for i in 0..1200u64 {
        let b = format!("{}", 200_000_000_000 + i);
        assert!(barcodes.contains(b.as_str()), "missing {b}");
    }
    assert!(barcodes.contains("100000000001"));
    assert!(!barcodes.contains("100000000005"), "VOID is not listed");
    assert!(!barcodes.contains("100000000006"), "other event");
    let calls = r.sb.stats().calls("get_av_barcodes");
    assert!(calls >= 3, "chunked: {calls} calls");
    assert_eq!(
        c.get_av_barcodes_for_event("NOPE").unwrap_err(),
        AtsError::Api {
            code: wire::AV_EVENT_NOT_FOUND,
            sql_code: 100,
            message: "Event not found".into()
        }
    );
}

#[test]
fn test_polling_completes_through_the_202_cycle_on_a_shared_manual_clock() {
    let r = rig();
    let c = r.client();
    let real = Instant::now();
    let c1 = c.ats_ext_test_polling().unwrap();
    assert_eq!(c1["result"], 0, "{c1}");
    assert!(r.clock.elapsed() >= Duration::from_secs(10));
    assert!(real.elapsed() < Duration::from_secs(5));
    assert!(r.sb.stats().polls > 0);
    let (per_min, _) = c.budget_remaining();
    assert!(per_min < 79, "polls count against the budget");
}

#[test]
fn the_slow_ticket_misses_a_short_deadline_and_answers_a_long_one() {
    let r = rig();
    let c = r.client();
    let deadline = r.clock.now() + Duration::from_secs(2);
    let e = c
        .get_av_barcodes_with_deadline("100000000010", deadline)
        .unwrap_err();
    assert!(matches!(e, AtsError::Timeout { .. }), "{e:?}");
    assert!(e.is_retryable());
    let v = c.get_av_barcodes("100000000010").unwrap().unwrap();
    assert_eq!(v[0].balance, 2500);
}

#[test]
fn gateway_refusals_map_to_their_errors() {
    let r = rig();
    let e = r
        .client_with(|c| c.apikey = Secret::new("wrong-key"))
        .ping()
        .unwrap_err();
    assert!(matches!(e, AtsError::Unauthorized { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong-key"));
    let e = r
        .client_with(|c| c.dsn = "other".into())
        .ping()
        .unwrap_err();
    match &e {
        AtsError::Unauthorized { message } => assert!(message.contains("other"), "{message}"),
        other => panic!("{other:?}"),
    }
    let e = r
        .client_with(|c| c.product = "sth-nothing".into())
        .ping()
        .unwrap_err();
    assert!(matches!(e, AtsError::NotFound { .. }), "{e:?}");
}

#[test]
fn honours_the_sandbox_rate_headers_before_a_429() {
    let r = rig_with(|cfg| cfg.rate_per_minute = 3);
    let c = r.client();
    for _ in 0..3 {
        c.ping().unwrap();
    }
    // the third answer said Rate-Limit-Available: 0: refused locally, nothing sent
    let e = c.ping().unwrap_err();
    assert!(
        matches!(
            e,
            AtsError::RateBudget {
                window: RateWindow::Server,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(r.sb.stats().total_requests, 3);
    r.clock.advance(Duration::from_secs(61));
    c.ping().unwrap();

    // a second client on the same key learns it from the 429 itself
    let other = r.client();
    other.ping().unwrap();
    other.ping().unwrap();
    let fresh = r.client();
    let e = fresh.ping().unwrap_err();
    assert!(matches!(e, AtsError::RateLimited { .. }), "{e:?}");
    assert!(matches!(
        fresh.ping().unwrap_err(),
        AtsError::RateBudget {
            window: RateWindow::Server,
            ..
        }
    ));
}

#[test]
fn sandbox_faults_map_to_typed_errors() {
    let r = rig();
    let c = r.client_with(|c| {
        c.max_response_bytes = 64 * 1024;
        c.read_timeout = Duration::from_millis(300);
    });
    let set = |f: Faults| r.sb.set_faults(f);

    set(Faults {
        fail_next: 1,
        ..Faults::default()
    });
    assert!(matches!(c.ping(), Err(AtsError::Unavailable { .. })));
    c.ping().unwrap();

    set(Faults {
        malformed_body: true,
        ..Faults::default()
    });
    assert_eq!(c.ping().unwrap_err().phase(), Some(Phase::Decode));

    set(Faults {
        oversized_body_bytes: Some(200 * 1024),
        ..Faults::default()
    });
    assert_eq!(
        c.ping().unwrap_err(),
        AtsError::TooLarge { limit: 64 * 1024 }
    );

    set(Faults {
        truncate_body: true,
        ..Faults::default()
    });
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Receive), "{e:?}");

    set(Faults {
        drop_connection: true,
        ..Faults::default()
    });
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Receive), "{e:?}");
    assert!(e.is_retryable());

    set(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let e = c.ping().unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    set(Faults::default());

    set(Faults {
        force_202_ms: Some(1500),
        ..Faults::default()
    });
    c.ping().unwrap();
    set(Faults::default());
    c.ping().unwrap();
}

#[test]
fn rotating_poll_tokens_still_complete_when_every_cookie_is_sent_back() {
    let r = rig();
    r.sb.set_faults(Faults {
        force_202_ms: Some(2000),
        rotate_qtkn: true,
        ..Faults::default()
    });
    let c = r.client();
    let res = c.ping();
    // Each 202 replaces QTKN; the client always sends the latest value.
    assert!(res.is_ok(), "{res:?}");
}

#[test]
fn speaks_https_to_a_sandbox_with_a_private_ca() {
    let pki = generate_self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let r = rig_with(|cfg| cfg.tls = Some(pki.tls_pem()));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    assert!(r.sb.base_url().starts_with("https://"));
    let c = r.client_with(|c| c.ca_file = Some(ca.clone()));
    c.ping().unwrap();
    // The default roots (the system trust store) do not know the private CA; on a
    // machine without a system CA bundle the client is refused at construction.
    let cfg = AtsConfig {
        base_url: r.sb.base_url(),
        apikey: Secret::new(KEY),
        ..AtsConfig::default()
    };
    match AtsClient::with_clock(cfg, r.clock.shared()) {
        Ok(c) => {
            let e = c.ping().unwrap_err();
            assert_eq!(e.phase(), Some(Phase::Tls), "{e:?}");
        }
        Err(e) => assert!(e.to_string().contains("ca-certificates"), "{e}"),
    }
}
