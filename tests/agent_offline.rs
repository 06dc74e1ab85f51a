//! The agent offline: every cap, stale and unknown tickets, the deadline held while ATS
//! black-holes requests, and the automatic return online (with its fresh offline window).

mod support;

use std::time::{Duration, Instant};

use concession_agent::decide::Mode;
use concession_agent::decide::Verdict;
use concession_agent::sandbox::Faults;
use concession_agent::signal::{AgentStatus, DecisionEvent};
use support::{wait_for, Harness};

/// A stand serving EVENT01 with these `[offline]` settings, EVENT01 prefetched, then
/// forced offline.
fn offline_stand(offline: &str) -> Harness {
    let mut h = Harness::start(&format!("events = [\"EVENT01\"]\n[offline]\n{offline}"));
    assert_eq!(h.prefetch("EVENT01"), 5);
    h.agent.force_mode(Mode::Offline);
    assert_eq!(h.agent.mode(), Mode::Offline);
    h
}

fn check(d: &DecisionEvent, verdict: Verdict, reason: &str, cents: u64) {
    assert_eq!(
        (d.decision, d.reason.as_str(), d.approved_cents),
        (verdict, reason, cents),
        "{d:?}"
    );
    assert_eq!(d.source, "offline", "{d:?}");
}

/// Offline approvals are flagged in the journal and counted in the offline usage.
fn check_flags(h: &Harness, approvals: u64, cents: u64) {
    let j = h.journal();
    assert!(
        j.iter().all(|e| e.offline),
        "every decision here is offline"
    );
    let usage = h.agent.store().offline_usage().unwrap();
    assert_eq!((usage.count, usage.cents), (approvals, cents), "{usage:?}");
}

#[test]
fn offline_approvals_never_exceed_the_per_transaction_cap() {
    let mut h = offline_stand("per_transaction_cents = 1000");
    let calls = h.calls();
    check(&h.scan("100000000001"), Verdict::Approve, "partial", 1000);
    // The second scan asks for the $10 left, which fits under the cap.
    check(&h.scan("100000000001"), Verdict::Approve, "approved", 1000);
    check(
        &h.scan("100000000001"),
        Verdict::Deny,
        "already_redeemed",
        0,
    );
    // A POS amount within the cap is approved whole.
    check(
        &h.scan_amount("100000000008", 800),
        Verdict::Approve,
        "approved",
        800,
    );
    assert_eq!(h.calls(), calls, "offline: no ATS call");
    check_flags(&h, 3, 2800);
    assert_eq!(h.statuses(), [AgentStatus::Offline]);

    // Without offline partials the same scan is refused outright.
    let mut h = offline_stand("per_transaction_cents = 1000\npartial = false");
    check(&h.scan("100000000001"), Verdict::Deny, "offline_limit", 0);
    check(
        &h.scan_amount("100000000001", 1000),
        Verdict::Approve,
        "approved",
        1000,
    );
    check_flags(&h, 1, 1000);
}

#[test]
fn offline_approvals_never_exceed_the_per_ticket_cap() {
    let mut h = offline_stand("per_transaction_cents = 2000\nper_ticket_cents = 3000");
    check(&h.scan("100000000008"), Verdict::Approve, "partial", 2000);
    check(&h.scan("100000000008"), Verdict::Approve, "partial", 1000);
    check(&h.scan("100000000008"), Verdict::Deny, "offline_limit", 0);
    check(
        &h.scan_amount("100000000008", 100),
        Verdict::Deny,
        "offline_limit",
        0,
    );
    // Other tickets have their own room.
    check(&h.scan("100000000001"), Verdict::Approve, "approved", 2000);
    check_flags(&h, 3, 5000);
}

#[test]
fn offline_approvals_never_exceed_the_terminal_total() {
    let mut h = offline_stand("total_cents = 3000");
    check(&h.scan("100000000001"), Verdict::Approve, "approved", 2000);
    check(&h.scan("100000000008"), Verdict::Approve, "partial", 1000);
    check(&h.scan("100000000010"), Verdict::Deny, "offline_limit", 0);
    // Items count toward the count, not the cents: they are still handed over.
    let pizza = h.scan("100000000002");
    check(&pizza, Verdict::Approve, "approved", 0);
    assert_eq!(pizza.items, ["Pizza and a Coke"]);
    let combo = h.scan("100000000003");
    check(&combo, Verdict::Approve, "partial", 0);
    assert_eq!(combo.items, ["Hot Dog"]);
    check_flags(&h, 4, 3000);
}

#[test]
fn offline_approvals_never_exceed_the_terminal_count() {
    let mut h = offline_stand("total_count = 2");
    check(&h.scan("100000000001"), Verdict::Approve, "approved", 2000);
    // Denies do not use up the count.
    check(
        &h.scan("100000000001"),
        Verdict::Deny,
        "already_redeemed",
        0,
    );
    check(&h.scan("100000000002"), Verdict::Approve, "approved", 0);
    check(&h.scan("100000000003"), Verdict::Deny, "offline_limit", 0);
    check(&h.scan("100000000008"), Verdict::Deny, "offline_limit", 0);
    check_flags(&h, 2, 2000);
}

#[test]
fn offline_a_cache_older_than_the_maximum_age_is_not_trusted() {
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\n[offline]\nmax_cache_age_ms = 3600000\n[cache]\nfresh_ms = 60000",
    );
    let two_hours_ago = h.clock.wall_ms() - 2 * 3600 * 1000;
    assert_eq!(h.prefetch_at("EVENT01", two_hours_ago), 5);
    h.agent.force_mode(Mode::Offline);
    for b in ["100000000001", "100000000002", "100000000008"] {
        check(&h.scan(b), Verdict::Deny, "stale_cache", 0);
    }
    // Half an hour old is young enough.
    let half_an_hour_ago = h.clock.wall_ms() - 1800 * 1000;
    h.prefetch_at("EVENT01", half_an_hour_ago);
    check(&h.scan("100000000001"), Verdict::Approve, "approved", 2000);
    check_flags(&h, 1, 2000);
}

#[test]
fn offline_an_unknown_ticket_is_denied() {
    let mut h = offline_stand("");
    let calls = h.calls();
    // Never seen, and known to ATS but left out of the listing (no value).
    for b in ["999999999999", "100000000004", "100000000005"] {
        check(&h.scan(b), Verdict::Deny, "offline_unknown", 0);
    }
    assert_eq!(h.calls(), calls);
    check_flags(&h, 0, 0);
}

/// Ticks the agent (probes) until it reports `mode`, for at most `timeout`.
fn tick_until(h: &mut Harness, mode: Mode, timeout: Duration) -> bool {
    wait_for(timeout, || {
        h.agent.tick();
        (h.agent.mode() == mode).then_some(())
    })
    .is_some()
}

#[test]
fn failing_calls_take_the_stand_offline_and_good_probes_bring_it_back() {
    // fresh_ms = 0: every online scan asks ATS, so failures are seen on scans.
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\n[cache]\nfresh_ms = 0\n\
         [health]\nprobe_interval_ms = 20\nprobes_to_online = 2",
    );
    assert_eq!(h.prefetch("EVENT01"), 5);
    let window = h.agent.store().offline_window().unwrap();

    // Both halves of the next lookup get a 503: this scan falls back to the cache alone,
    // and two failures in the window take the stand offline.
    h.sandbox.set_faults(Faults {
        fail_next: 2,
        ..Faults::default()
    });
    let d = h.scan("100000000001");
    check(&d, Verdict::Approve, "approved", 2000);
    assert_eq!(h.stats().status(503), 2);
    assert_eq!(h.sandbox.faults().fail_next, 0);
    let calls = h.calls();
    let d = h.scan("100000000008");
    check(&d, Verdict::Approve, "partial", 2500);
    assert_eq!(h.agent.mode(), Mode::Offline);
    assert_eq!(h.calls(), calls, "offline scans make no call");
    assert_eq!(h.statuses(), [AgentStatus::Offline]);
    let usage = h.agent.store().offline_usage().unwrap();
    assert_eq!((usage.count, usage.cents), (2, 4500));

    // While ATS keeps failing, probes do not bring the stand back.
    h.sandbox.set_faults(Faults {
        status_503_rate: 1.0,
        ..Faults::default()
    });
    let failed = wait_for(Duration::from_secs(5), || {
        h.agent.tick();
        (h.stats().status(503) >= 5).then_some(())
    });
    assert!(failed.is_some(), "probes keep trying: {:?}", h.stats());
    h.agent.tick();
    assert_eq!(h.agent.mode(), Mode::Offline);

    // ATS answers again: consecutive good probes, Ready signalled, fresh offline window.
    h.sandbox.set_faults(Faults::default());
    assert!(tick_until(&mut h, Mode::Online, Duration::from_secs(5)));
    assert_eq!(h.statuses(), [AgentStatus::Offline, AgentStatus::Ready]);
    assert!(h.stats().calls("ping") >= 2);
    assert_eq!(h.agent.store().offline_window().unwrap(), window + 1);
    let usage = h.agent.store().offline_usage().unwrap();
    assert_eq!((usage.count, usage.cents), (0, 0));

    // Online again: a live answer, and the ledger still knows what was handed out.
    let d = h.scan("100000000008");
    assert_eq!(
        (
            d.decision,
            d.reason.as_str(),
            d.approved_cents,
            d.source.as_str()
        ),
        (Verdict::Approve, "approved", 2500, "live")
    );
    assert_eq!(h.scan("100000000001").reason, "already_redeemed");
    let j = h.journal();
    assert!(j[0].offline && j[1].offline && !j[2].offline && !j[3].offline);
    assert_eq!(
        (j[0].offline_window, j[2].offline_window),
        (window, window + 1)
    );
}

#[test]
fn the_deadline_holds_while_ats_black_holes_requests() {
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\ndeadline_ms = 300\n[cache]\nfresh_ms = 0\n\
         [health]\nprobe_interval_ms = 20",
    );
    assert_eq!(h.prefetch("EVENT01"), 5);
    h.sandbox.set_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let limit = Duration::from_millis(400);
    let timed = |h: &mut Harness, b: &str| {
        let started = Instant::now();
        let d = h.scan(b);
        let took = started.elapsed();
        assert!(took <= limit, "{b}: {took:?}");
        assert!(d.latency_ms <= 400, "{b}: {} ms", d.latency_ms);
        (d, took)
    };
    // The first two scans wait for ATS up to the deadline, then fall back to the cache.
    let (d, took1) = timed(&mut h, "100000000001");
    check(&d, Verdict::Approve, "approved", 2000);
    let (d, took2) = timed(&mut h, "999999999999");
    check(&d, Verdict::Deny, "offline_unknown", 0);
    assert!(took1 >= Duration::from_millis(200) && took2 >= Duration::from_millis(200));
    // Two missed deadlines: offline, and the next scans do not wait at all.
    let mut fast = Vec::new();
    for (b, reason, cents) in [
        ("100000000008", "partial", 2500),
        ("100000000002", "approved", 0),
        ("100000000003", "approved", 1500),
        ("100000000001", "already_redeemed", 0),
    ] {
        let verdict = if cents > 0 || reason == "approved" {
            Verdict::Approve
        } else {
            Verdict::Deny
        };
        let (d, took) = timed(&mut h, b);
        check(&d, verdict, reason, cents);
        fast.push(took);
    }
    assert_eq!(h.agent.mode(), Mode::Offline);
    assert!(
        fast.iter().all(|t| *t < Duration::from_millis(150)),
        "{fast:?}"
    );
    assert!(h.stats().black_holed >= 2);
    eprintln!("black hole: first scans {took1:?} {took2:?}, offline scans {fast:?}");

    // Cleared: the held calls are closed, probes succeed, the stand is back online.
    h.sandbox.set_faults(Faults::default());
    assert!(tick_until(&mut h, Mode::Online, Duration::from_secs(10)));
    assert_eq!(h.statuses(), [AgentStatus::Offline, AgentStatus::Ready]);
    // Online: a live answer within the deadline again; the ledger kept the offline $25.
    let (d, _) = timed(&mut h, "100000000008");
    assert_eq!(
        (
            d.decision,
            d.reason.as_str(),
            d.approved_cents,
            d.source.as_str()
        ),
        (Verdict::Approve, "approved", 2500, "live")
    );
}
