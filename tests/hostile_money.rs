//! Money holes found by hostile testing (issue 11, items 1, 2 and 5), each closed by
//! the test named for it. The hostile answers come from the sandbox's fault switches
//! (`duplicate_av_rows`, `inclusive_prev_barcode`, `server_clock_offset_ms`) and its
//! balance editor; the wrong terminal clocks from `ManualClock` and stamps.

mod support;

use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::clock::{self, ClockState, ManualClock, SharedClock};
use concession_agent::decide::Mode;
use concession_agent::sandbox::{DataSet, Faults, SandboxConfig};
use serde_json::{json, Map};
use support::fixtures::ticket_info;
use support::{Harness, Recorder};

const TEN_HOURS_MS: u64 = 10 * 3_600_000;

fn faults(f: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults::default();
    f(&mut faults);
    faults
}

/// A harness whose sandbox holds `extra` generated $10 tickets on EVENT01 (600 make
/// the event listing two chunks of up to 500 rows).
fn with_generated(extra: usize, config: &str) -> Harness {
    let sb = support::sandbox_with(SandboxConfig {
        data: DataSet::builtin().with_generated(extra),
        ..SandboxConfig::default()
    });
    Harness::on(sb, config)
}

/// The last barcode of the event listing's first chunk: the ticket an inclusive
/// `prev_barcode` sends twice.
fn first_chunk_boundary(h: &Harness) -> String {
    let mut fields = Map::new();
    fields.insert("event_name".into(), json!("EVENT01"));
    let body = h
        .agent
        .ats()
        .call_raw("get_av_barcodes", fields)
        .expect("listing answers");
    let rows = body["command1"]["av_barcodes"].as_array().cloned().unwrap();
    assert_eq!(body["command1"]["more_data"], "Y", "two chunks");
    rows.last()
        .and_then(|r| r["barcode"].as_str())
        .map(String::from)
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Item 1: duplicated value rows

#[test]
fn a_duplicated_value_line_is_spent_once() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    h.sandbox.set_faults(faults(|f| f.duplicate_av_rows = true));
    // $20.00 on AV1001, sent twice.
    let d = h.scan("100000000001");
    assert_eq!(d.decision.as_str(), "approve", "{d:?}");
    assert_eq!(d.source, "live");
    assert_eq!(d.approved_cents, 2_000);
    // Nothing left: the copy of the row is not a second $20.
    let again = h.scan("100000000001");
    assert_eq!(again.reason, "already_redeemed", "{again:?}");
    // The cache holds the line once.
    let cached = h.agent.store().get_record("100000000001").unwrap().unwrap();
    assert_eq!(cached.value.len(), 1);
    // A money + item ticket: $15.00 and one hot dog, not $30 and two.
    let d = h.scan("100000000003");
    assert_eq!(d.approved_cents, 1_500);
    assert_eq!(d.items, vec!["Hot Dog".to_string()]);
}

#[test]
fn a_listing_whose_pages_overlap_caches_the_boundary_ticket_once() {
    let mut h = with_generated(600, "events = [\"EVENT01\"]");
    let boundary = first_chunk_boundary(&h);
    h.sandbox
        .set_faults(faults(|f| f.inclusive_prev_barcode = true));
    let cached = h.prefetch("EVENT01");
    assert_eq!(cached, 605, "every ticket with value, once");
    let record = h.agent.store().get_record(&boundary).unwrap().unwrap();
    assert_eq!(record.value.len(), 1, "{record:?}");
    // From the cache (offline): the $10 ticket hands over $10.
    h.agent.force_mode(Mode::Offline);
    let d = h.scan(&boundary);
    assert_eq!(d.decision.as_str(), "approve", "{d:?}");
    assert_eq!(d.source, "offline");
    assert_eq!(d.approved_cents, 1_000);
}

#[test]
fn a_listing_that_repeats_every_row_caches_each_line_once() {
    let h = with_generated(600, "events = [\"EVENT01\"]");
    h.sandbox.set_faults(faults(|f| {
        f.duplicate_av_rows = true;
        f.inclusive_prev_barcode = true;
    }));
    assert_eq!(h.prefetch("EVENT01"), 605);
    let money_and_item = h.agent.store().get_record("100000000003").unwrap().unwrap();
    assert_eq!(money_and_item.value.len(), 2, "{money_and_item:?}");
}

// ---------------------------------------------------------------------------------------
// Item 2: balances beyond the loaded amount

#[test]
fn a_balance_above_the_loaded_amount_is_approved_only_up_to_the_amount() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    // AV1001 loaded $20.00; ATS now claims $30.00 left.
    h.sandbox
        .set_balance("100000000001", "AV1001", 3_000)
        .unwrap();
    let d = h.scan("100000000001");
    assert_eq!((d.decision.as_str(), d.approved_cents), ("approve", 2_000));
    // The same from the cache, offline (within the offline caps).
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\n[offline]\nper_transaction_cents = 100000\nper_ticket_cents = 100000",
    );
    h.sandbox
        .set_balance("100000000001", "AV1001", 3_000)
        .unwrap();
    h.prefetch("EVENT01");
    h.agent.force_mode(Mode::Offline);
    let d = h.scan("100000000001");
    assert_eq!((d.source.as_str(), d.approved_cents), ("offline", 2_000));
}

#[test]
fn a_huge_balance_is_approved_only_up_to_the_transaction_maximum() {
    // $20.00 loaded and left; the maximum per approval is $15.00.
    let mut h = Harness::start("events = [\"EVENT01\"]\nmax_transaction_cents = 1500");
    let d = h.scan("100000000001");
    assert_eq!(d.decision.as_str(), "approve");
    assert_eq!((d.reason.as_str(), d.approved_cents), ("partial", 1_500));
    // What is left stays for the next transaction.
    let d = h.scan("100000000001");
    assert_eq!((d.reason.as_str(), d.approved_cents), ("approved", 500));
    // A POS amount above the maximum: partial up to it.
    let d = h.scan_amount("100000000008", 5_000);
    assert_eq!((d.reason.as_str(), d.approved_cents), ("partial", 1_500));
}

#[test]
fn the_transaction_maximum_defaults_to_one_hundred_dollars() {
    let h = Harness::start("");
    assert_eq!(h.config.max_transaction_cents, 10_000);
}

// ---------------------------------------------------------------------------------------
// Item 5: clock steps

#[test]
fn a_cache_stamped_by_a_fast_clock_is_stale_once_the_clock_is_corrected() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    // Prefetched while the wall clock ran 10 h fast; the clock is now right.
    let future = h.clock.wall_ms() + TEN_HOURS_MS;
    assert_eq!(h.prefetch_at("EVENT01", future), 5);
    // The box office voids a ticket; offline, the 10-hour-"young" record is not trusted.
    h.sandbox.void_ticket("100000000001").unwrap();
    h.agent.force_mode(Mode::Offline);
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision.as_str(), d.reason.as_str()),
        ("deny", "stale_cache")
    );
    // Back online: a refresh stamped now replaces the misdated records.
    h.agent.force_mode(Mode::Online);
    assert_eq!(
        h.prefetch("EVENT01"),
        4,
        "refresh writes (the void ticket is not listed)"
    );
    let fresh = h.agent.store().get_record("100000000008").unwrap().unwrap();
    assert!(fresh.fetched_at_ms <= h.clock.wall_ms());
    // And the voided ticket is asked live, never approved from the bad stamp.
    let d = h.scan("100000000001");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "ticket_void")
    );
}

#[test]
fn a_live_answer_replaces_a_cached_record_stamped_in_the_future() {
    // fresh_ms = 10 min: a cached record that looked 0 ms old would be used unasked.
    let mut h = Harness::start("events = [\"EVENT01\"]\n[cache]\nfresh_ms = 600000");
    let future = h.clock.wall_ms() + TEN_HOURS_MS;
    h.prefetch_at("EVENT01", future);
    h.sandbox.void_ticket("100000000001").unwrap();
    let before = h.calls();
    let d = h.scan("100000000001");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "ticket_void")
    );
    assert!(
        h.calls() > before,
        "the misdated record was not taken as fresh"
    );
    let cached = h.agent.store().get_record("100000000001").unwrap().unwrap();
    assert!(cached.fetched_at_ms <= h.clock.wall_ms(), "{cached:?}");
}

#[test]
fn a_clock_far_from_ats_refuses_cached_approvals_and_recovers_when_it_agrees() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    assert_eq!(h.agent.clock_state(), ClockState::Unchecked);
    h.prefetch("EVENT01");
    // ATS's clock reads 10 h off ours. The agent then takes "today" from ATS's clock
    // (the value's dates are judged by it), so the 10 h go the way that keeps ATS on
    // our date: later before noon UTC, earlier after (the value lines end today).
    const DAY_MS: u64 = 86_400_000;
    let offset = if h.clock.wall_ms() % DAY_MS < DAY_MS / 2 {
        TEN_HOURS_MS as i64
    } else {
        -(TEN_HOURS_MS as i64)
    };
    h.sandbox
        .set_faults(faults(|f| f.server_clock_offset_ms = offset));
    h.agent.ats().ping().expect("ping answers");
    let state = h.agent.clock_state();
    let skew = match state {
        ClockState::Wrong { skew_ms: Some(s) } => s,
        other => panic!("{other:?}"),
    };
    // The server sends whole seconds: within a second (and a slow machine's call).
    assert!(
        (skew + offset).abs() < 5_000,
        "{skew}: {}",
        state.describe()
    );
    h.agent.force_mode(Mode::Offline);
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision.as_str(), d.reason.as_str()),
        ("deny", "clock_unsure")
    );
    // Online, a live answer is still judged (it carries no age).
    h.agent.force_mode(Mode::Online);
    let d = h.scan("100000000008");
    assert_eq!(
        (d.source.as_str(), d.decision.as_str()),
        ("live", "approve"),
        "{d:?}"
    );
    // ATS and this terminal agree again: the cache is trusted again.
    h.sandbox.set_faults(Faults::default());
    h.agent.ats().ping().expect("ping answers");
    assert!(matches!(h.agent.clock_state(), ClockState::Agrees { .. }));
    h.agent.force_mode(Mode::Offline);
    let d = h.scan("100000000003");
    assert_eq!(d.decision.as_str(), "approve", "{d:?}");
}

#[test]
fn a_board_whose_clock_reset_to_1970_trusts_no_cached_record() {
    let sb = support::sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config = support::config(
        &sb.base_url(),
        &dir.path().join("store"),
        "events = [\"EVENT01\"]",
    );
    let manual = ManualClock::new(5_000);
    let clock: SharedClock = manual.shared();
    let link = app::connect_ats(&config, clock.clone()).expect("client builds");
    let store = app::open_store(&config).expect("store opens");
    let outputs = Outputs {
        signals: vec![Box::new(Recorder::default())],
    };
    let mut agent = Agent::new(config, link.client, store, clock.clone(), outputs);
    // Before any call: a 1970 clock is implausible on its own.
    assert!(!agent.clock_state().is_trusted());
    // After a ping, the skew says how far off it is.
    agent.ats().ping().expect("ping answers");
    let skew = match agent.clock_state() {
        ClockState::Wrong { skew_ms: Some(s) } => s,
        other => panic!("{other:?}"),
    };
    let real = clock::system().wall_ms() as i64;
    assert!((skew + real).abs() < 60_000, "skew {skew} vs real {real}");
    // A cached record (stamped by this clock) is not approved offline.
    let cached = concession_agent::ticket::TicketRecord {
        fetched_at_ms: 5_000,
        ..agent
            .store()
            .get_record("100000000001")
            .unwrap()
            .unwrap_or_else(|| support_record("100000000001"))
    };
    agent.store().put_record(&cached).unwrap();
    agent.force_mode(Mode::Offline);
    let eval = agent.evaluate(
        &concession_agent::scan::barcode::classify("100000000001"),
        None,
        clock.wall_ms(),
    );
    assert_eq!(eval.decision.reason.as_str(), "clock_unsure");
}

/// A $20.00 EVENT01 record, as prefetch would cache it.
fn support_record(barcode: &str) -> concession_agent::ticket::TicketRecord {
    use concession_agent::ticket::*;
    let mut r = TicketRecord {
        barcode: barcode.into(),
        info: Some(ticket_info(barcode, None)),
        value: Vec::new(),
        fetched_at_ms: 0,
    };
    r.add_line(ValueLine {
        av_id: "AV1001".into(),
        kind: ValueKind::Money,
        description: "credit".into(),
        loaded: 2_000,
        balance: 2_000,
        valid_from: None,
        valid_until: None,
    })
    .unwrap();
    r
}

#[test]
fn a_terminal_whose_clock_disagrees_with_ats_does_not_start_as_if_all_were_well() {
    let sb = support::sandbox();
    sb.set_faults(faults(|f| f.server_clock_offset_ms = TEN_HOURS_MS as i64));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let text = format!(
        "terminal_id = \"clock-stand\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
         [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\n\
         [cache]\nprefetch_at_start = false\n",
        store = dir.path().join("store").display().to_string(),
        url = sb.base_url(),
    );
    std::fs::write(&config, text).unwrap();
    let out = support::agent_command("info")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("agent runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ready, but the clock is wrong (-3"),
        "no clock warning at start:\n{stderr}"
    );
    assert!(!stderr.contains("ready (clock ok)"), "{stderr}");
}
