//! Phone tickets (SafeTix) through the sandbox's Presence route (issue 17): a listed
//! payload is resolved and approved once, every Presence status has its own deny
//! reason, an outage falls back to the remembered token mapping (offline, its own cap)
//! or denies within the deadline, and the Presence key's budget holds.
//!
//! Agent and sandbox share one ManualClock, so payloads rotate when the test says.

mod support;

use std::time::{Duration, Instant};

use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::clock::ManualClock;
use concession_agent::decide::Verdict;
use concession_agent::presence::Status;
use concession_agent::sandbox::{Faults, SandboxConfig};
use concession_agent::scan::barcode::classify;
use concession_agent::signal::DecisionEvent;
use support::{config, sandbox_with, Harness, Recorder};

/// Serves EVENT01, Presence on (following the sandbox's URL), with `extra` TOML.
fn harness(extra: &str) -> (Harness, ManualClock) {
    let wall = concession_agent::clock::system().wall_ms();
    let clock = ManualClock::new(wall);
    let sandbox = sandbox_with(SandboxConfig {
        clock: clock.shared(),
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let text = format!("events = [\"EVENT01\"]\n{extra}");
    let config = config(&sandbox.base_url(), &dir.path().join("store"), &text);
    let shared = clock.shared();
    let link = app::connect_ats(&config, shared.clone()).expect("client builds");
    let store = app::open_store(&config).expect("store opens");
    let seen = Recorder::default();
    let outputs = Outputs {
        signals: vec![Box::new(seen.clone())],
    };
    let agent = Agent::new(config.clone(), link.client, store, shared.clone(), outputs);
    (
        Harness {
            sandbox,
            agent,
            seen,
            clock: shared,
            dir,
            config,
        },
        clock,
    )
}

/// `[presence]` for the sandbox's Presence route (the harness's ATS URL is a real
/// loopback URL, so the key and venue are given as for a real Presence).
const PRESENCE: &str =
    "[presence]\napikey = \"sandbox-presence-key\"\nvenue_id = \"SANDBOX-PARK\"\n";

/// What `concession-agent lookup BARCODE` does: verify the printed barcode (which
/// caches its record with the seat), recording nothing.
fn verify(h: &mut Harness, barcode: &str) {
    let now = h.clock.wall_ms();
    let eval = h.agent.evaluate(&classify(barcode), None, now);
    assert!(eval.record.is_some(), "{barcode} looked up");
}

fn payload(h: &Harness, barcode: &str) -> String {
    h.sandbox
        .safetix_payload(barcode)
        .expect("a sandbox ticket")
}

fn reason(d: &DecisionEvent) -> &str {
    d.reason.as_str()
}

#[test]
fn the_demo_resolves_a_listed_safetix_payload_and_approves_it_once_then_already_redeemed() {
    let (mut h, clock) = harness(PRESENCE);
    verify(&mut h, "100000000001");
    let phone = payload(&h, "100000000001");
    let first = h.scan(&phone);
    assert_eq!(first.decision, Verdict::Approve, "{first:?}");
    assert_eq!(first.approved_cents, 2000);
    // The POS line shows the seat's barcode, masked; never the payload.
    assert_eq!(first.barcode, "********0001");
    let line = serde_json::to_string(&first).unwrap();
    assert!(!line.contains(phone.split("::").next().unwrap()), "{line}");

    // The phone's code has rotated; it is the same ticket.
    clock.advance(Duration::from_secs(16));
    let again = payload(&h, "100000000001");
    assert_ne!(again, phone);
    let second = h.scan(&again);
    assert_eq!(
        (second.decision, reason(&second)),
        (Verdict::Deny, "already_redeemed")
    );
    let journal = h.journal();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].barcode, "100000000001");
    assert_eq!(journal[0].safetix.as_deref(), Some("live"));
    assert!(!journal[0].offline);
    assert_eq!(h.sandbox.presence_stats().status("OKAY"), 2);
}

/// What a gate's scanner does when a fan walks in: Presence `ticket/enter`.
fn gate_enters(h: &Harness, payload: &str) -> String {
    let url = format!(
        "{}/presence/v1/ticket/enter?apikey=sandbox-presence-key",
        h.sandbox.base_url()
    );
    let body = serde_json::json!({"token": payload, "deviceOs": "iOS", "venueId": "SANDBOX-PARK",
        "gateName": "gate A", "gateId": 1, "deviceId": 1, "scanTime": h.clock.wall_ms()});
    let text = ureq::post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("the gate's call")
        .body_mut()
        .read_to_string()
        .expect("a body");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("json");
    answer["result"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_phone_ticket_scanned_in_at_the_gate_is_served_at_a_stand_behind_it() {
    let (mut h, clock) = harness(PRESENCE);
    verify(&mut h, "100000000001");
    assert_eq!(gate_enters(&h, &payload(&h, "100000000001")), "OKAY");
    // The fan walks to the stand; the phone's code has rotated.
    clock.advance(Duration::from_secs(20));
    let d = h.scan(&payload(&h, "100000000001"));
    assert_eq!(
        (d.decision, d.approved_cents),
        (Verdict::Approve, 2000),
        "{d:?}"
    );
    assert_eq!(d.barcode, "********0001");
    assert_eq!(h.sandbox.presence_stats().status("ALREADY_ENTERED"), 1);
    // Entered twice at a gate is refused there, not here.
    assert_eq!(
        gate_enters(&h, &payload(&h, "100000000001")),
        "ALREADY_ENTERED"
    );
}

#[test]
fn a_stand_before_the_gates_denies_a_ticket_already_entered_when_told_to() {
    let (mut h, _clock) = harness(&format!("{PRESENCE}already_entered = \"deny\"\n"));
    verify(&mut h, "100000000001");
    assert_eq!(gate_enters(&h, &payload(&h, "100000000001")), "OKAY");
    let d = h.scan(&payload(&h, "100000000001"));
    assert_eq!(
        (d.decision, reason(&d)),
        (Verdict::Deny, "safetix_already_entered")
    );
}

#[test]
fn each_presence_status_maps_to_its_own_reason() {
    let (mut h, _clock) = harness(PRESENCE);
    let expected = [
        (Status::Exit, "safetix_exited"),
        (Status::InternalScan, "safetix_internal_scan"),
        (Status::NotFound, "safetix_not_found"),
        (Status::BadRequest, "safetix_bad_request"),
        (Status::AlreadyEntered, "safetix_already_entered"),
        (Status::InvalidTicket, "safetix_invalid"),
        (Status::StartRestriction, "safetix_start_restriction"),
        (Status::EndRestriction, "safetix_end_restriction"),
        (Status::SectionRestriction, "safetix_section_restriction"),
        (Status::EventRestriction, "safetix_event_restriction"),
        (Status::TooEarly, "safetix_too_early"),
        (Status::TooLate, "safetix_too_late"),
        // OKAY without a seat, and a status this version does not know.
        (Status::Okay, "safetix_no_seat"),
        (Status::Other("NEW_STATUS".into()), "safetix_unknown_status"),
    ];
    // Every listed status is covered.
    for s in Status::KNOWN {
        assert!(expected.iter().any(|(e, _)| *e == s), "{s} not covered");
    }
    for (status, want) in &expected {
        let d = h.scan(&format!("STATUS-{status}::000000::000000::1700000000"));
        assert_eq!((d.decision, reason(&d)), (Verdict::Deny, *want), "{status}");
        assert_eq!(d.source, "live", "{status}: Presence answered");
    }
    let mut reasons: Vec<&str> = expected.iter().map(|(_, r)| *r).collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), expected.len(), "no reason is shared");
}

#[test]
fn the_magic_payloads_show_a_void_ticket_another_event_an_old_screenshot_and_a_past_event() {
    let (mut h, clock) = harness(PRESENCE);
    // Void: Presence refuses it.
    let void = h.scan(&payload(&h, "100000000005"));
    assert_eq!(reason(&void), "safetix_invalid");
    // Another event tonight: Presence says OKAY, the seat resolves, `decide` refuses.
    verify(&mut h, "100000000006");
    let other = h.scan(&payload(&h, "100000000006"));
    assert_eq!(reason(&other), "wrong_event");
    assert_eq!(other.barcode, "********0006");
    // Last week's game.
    assert_eq!(
        reason(&h.scan(&payload(&h, "100000000007"))),
        "safetix_too_late"
    );
    // A screenshot of a valid ticket, two minutes old.
    verify(&mut h, "100000000003");
    let shot = payload(&h, "100000000003");
    clock.advance(Duration::from_secs(120));
    assert_eq!(reason(&h.scan(&shot)), "safetix_invalid");
    // A token Presence does not know.
    let fake = h.scan("STXDEADBEEF00::123456::654321::1700000000");
    assert_eq!(reason(&fake), "safetix_not_found");
    // A valid ticket whose barcode was never verified here: no seat in the index.
    let unseen = h.scan(&payload(&h, "100000000002"));
    assert_eq!(reason(&unseen), "safetix_seat_unknown");
    assert!(h.journal().iter().all(|e| e.verdict == Verdict::Deny));
}

#[test]
fn a_presence_outage_falls_back_to_the_cached_mapping_under_the_lower_safetix_cap() {
    let (mut h, clock) = harness(&format!(
        "deadline_ms = 500\n{PRESENCE}offline_cap_cents = 1000\n"
    ));
    verify(&mut h, "100000000008");
    let first = h.scan_amount(&payload(&h, "100000000008"), 500);
    assert_eq!(
        (first.decision, first.approved_cents),
        (Verdict::Approve, 500)
    );

    h.sandbox.set_presence_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    clock.advance(Duration::from_secs(20));
    let started = Instant::now();
    let offline = h.scan_amount(&payload(&h, "100000000008"), 2000);
    let took = started.elapsed();
    h.sandbox.set_presence_faults(Faults::default());
    // The deadline, plus the 10% the reliability table allows a loaded machine.
    assert!(took < Duration::from_millis(550), "decided in {took:?}");
    // $20 asked; offline from a remembered mapping the cap is $10 (not the $25 of
    // the other offline rules).
    assert_eq!(
        (offline.decision, reason(&offline), offline.approved_cents),
        (Verdict::Approve, "partial", 1000),
        "{offline:?}"
    );
    assert_eq!(offline.source, "offline");
    assert_eq!(offline.barcode, "********0008");
    let last = h.journal().pop().unwrap();
    assert!(last.offline);
    assert_eq!(last.safetix.as_deref(), Some("cached"));
    // The per-ticket cap holds for the rest of the outage (Presence still skipped).
    let more = h.scan_amount(&payload(&h, "100000000008"), 100);
    assert_eq!(
        (more.decision, reason(&more)),
        (Verdict::Deny, "offline_limit")
    );
}

#[test]
fn a_presence_outage_without_a_cached_mapping_denies_within_the_deadline() {
    let (mut h, _clock) = harness(&format!("deadline_ms = 500\n{PRESENCE}"));
    verify(&mut h, "100000000001");
    h.sandbox.set_presence_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let started = Instant::now();
    let d = h.scan(&payload(&h, "100000000001"));
    let took = started.elapsed();
    h.sandbox.set_presence_faults(Faults::default());
    // The deadline, plus the 10% the reliability table allows a loaded machine;
    // Presence was given most of it first.
    assert!(took < Duration::from_millis(550), "denied in {took:?}");
    assert!(took >= Duration::from_millis(300), "denied in {took:?}");
    assert_eq!(
        (d.decision, reason(&d)),
        (Verdict::Deny, "safetix_unresolved")
    );
    assert_eq!(d.source, "offline");
    // 503s are an outage too.
    let (mut h, clock) = harness(PRESENCE);
    h.sandbox.set_presence_faults(Faults {
        fail_next: 1,
        ..Faults::default()
    });
    let d = h.scan(&payload(&h, "100000000001"));
    assert_eq!(reason(&d), "safetix_unresolved");
    assert_eq!(h.sandbox.presence_stats().http(503), 1);
    // After the retry pause, Presence is asked again.
    clock.advance(concession_agent::agent::safetix::RETRY_AFTER);
    verify(&mut h, "100000000001");
    let d = h.scan(&payload(&h, "100000000001"));
    assert_eq!(d.decision, Verdict::Approve, "{d:?}");
}

#[test]
fn the_presence_key_budget_is_respected() {
    let (mut h, clock) = harness(&format!("{PRESENCE}rate_per_minute = 3\n"));
    let ats_before = h.calls();
    for _ in 0..5 {
        let d = h.scan("STATUS-NOT_FOUND::000000::000000::1700000000");
        assert_eq!(d.decision, Verdict::Deny);
    }
    let stats = h.sandbox.presence_stats();
    assert_eq!(stats.requests, 3, "{stats:?}");
    let reasons: Vec<String> = h.journal().iter().map(|e| e.reason.clone()).collect();
    assert_eq!(
        reasons,
        [
            "safetix_not_found",
            "safetix_not_found",
            "safetix_not_found",
            "safetix_unresolved",
            "safetix_unresolved"
        ]
    );
    // SafeTix spends the Presence key, not ATS's.
    assert_eq!(h.calls(), ats_before);
    clock.advance(Duration::from_secs(61));
    h.scan("STATUS-NOT_FOUND::000000::000000::1700000000");
    assert_eq!(h.sandbox.presence_stats().requests, 4);

    // A 429 from Presence closes the client's budget: the next scans do not knock.
    let (mut h, _clock) = harness(PRESENCE);
    h.sandbox.set_presence_faults(Faults {
        rate_per_minute: Some(1),
        ..Faults::default()
    });
    for _ in 0..4 {
        h.scan("STATUS-NOT_FOUND::000000::000000::1700000000");
    }
    let stats = h.sandbox.presence_stats();
    assert_eq!((stats.requests, stats.http(429)), (2, 1), "{stats:?}");
}

#[test]
fn without_a_presence_section_safetix_is_denied_unresolved_as_before() {
    let (mut h, _clock) = harness("");
    let d = h.scan(&payload(&h, "100000000001"));
    assert_eq!(reason(&d), "safetix_unresolved");
    assert_eq!(h.sandbox.presence_stats().requests, 0);
}
