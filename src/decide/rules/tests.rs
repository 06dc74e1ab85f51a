//! Unit tests of the decision rules, one sentence per rule.

use super::*;
use crate::decide::{OfflineUsage, Policy, TicketLedger};
use crate::ticket::{TicketInfo, TicketRecord, TicketStatus};

const TODAY: &str = "2026-11-27";
const BC: &str = "100000000001";

fn info(barcode: &str, event: &str, date: &str, status: TicketStatus) -> TicketInfo {
    TicketInfo {
        barcode: barcode.into(),
        event_name: event.into(),
        event_date: Some(date.into()),
        event_time: Some("19:00".into()),
        acct_id: Some(100479),
        section_name: None,
        row_name: None,
        seat_num: None,
        price_code: None,
        status,
    }
}

fn money(av: &str, loaded: u64, balance: u64) -> ValueLine {
    ValueLine {
        av_id: av.into(),
        kind: ValueKind::Money,
        description: "Food and beverage credit".into(),
        loaded,
        balance,
        valid_from: None,
        valid_until: None,
    }
}

fn item(av: &str, desc: &str, units: u64) -> ValueLine {
    ValueLine {
        av_id: av.into(),
        kind: ValueKind::Item,
        description: desc.into(),
        loaded: units,
        balance: units,
        valid_from: None,
        valid_until: None,
    }
}

fn rec(value: Vec<ValueLine>) -> TicketRecord {
    TicketRecord {
        barcode: BC.into(),
        info: Some(info(BC, "EVENT01", TODAY, TicketStatus::Active)),
        value,
        fetched_at_ms: 1_000,
    }
}

#[derive(Clone, Copy)]
enum Ev {
    Live,
    Cached(u64),
    Nothing,
}

struct Case {
    scan: ScanKind,
    requested: Option<Cents>,
    record: TicketRecord,
    ev: Ev,
    mode: Mode,
    ledger: TicketLedger,
    usage: OfflineUsage,
    policy: Policy,
    events: Vec<String>,
    today: String,
}

impl Case {
    fn new(record: TicketRecord) -> Case {
        Case {
            scan: ScanKind::Barcode(record.barcode.clone()),
            requested: None,
            record,
            ev: Ev::Live,
            mode: Mode::Online,
            ledger: TicketLedger::default(),
            usage: OfflineUsage::default(),
            policy: Policy::default(),
            events: Vec::new(),
            today: TODAY.into(),
        }
    }
    fn offline(mut self, age_ms: u64) -> Case {
        self.mode = Mode::Offline;
        self.ev = Ev::Cached(age_ms);
        self
    }
    fn ask(mut self, cents: Cents) -> Case {
        self.requested = Some(cents);
        self
    }
    fn run(&self) -> Decision {
        let evidence = match self.ev {
            Ev::Live => Evidence::Live(&self.record),
            Ev::Cached(age_ms) => Evidence::Cached {
                record: &self.record,
                age_ms,
            },
            Ev::Nothing => Evidence::None,
        };
        decide(&DecideInput {
            scan: &self.scan,
            requested: self.requested,
            evidence,
            mode: self.mode,
            ledger: &self.ledger,
            usage: self.usage,
            policy: &self.policy,
            today: &self.today,
            events: &self.events,
            clock_trusted: true,
        })
    }
}

fn assert_deny(d: &Decision, reason: Reason) {
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    assert_eq!(d.reason, reason, "{d:?}");
    assert_eq!(d.approved_cents, 0);
    assert!(d.money.is_empty() && d.items.is_empty());
}

fn twenty() -> TicketRecord {
    rec(vec![money("AV1001", 2000, 2000)])
}

#[test]
fn approves_the_whole_balance_on_a_bare_live_scan() {
    let d = Case::new(twenty()).run();
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.reason, Reason::Approved);
    assert_eq!(d.approved_cents, 2000);
    assert_eq!(d.money, vec![("AV1001".to_string(), 2000)]);
    assert_eq!(d.source, Source::Live);
    assert!(!d.offline);
}

#[test]
fn approves_the_pos_amount_when_it_fits() {
    let d = Case::new(twenty()).ask(750).run();
    assert_eq!(d.reason, Reason::Approved);
    assert_eq!(d.approved_cents, 750);
    assert_eq!(d.money, vec![("AV1001".to_string(), 750)]);
}

#[test]
fn approves_what_is_left_as_partial_when_the_pos_asks_too_much() {
    let d = Case::new(twenty()).ask(5000).run();
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.reason, Reason::Partial);
    assert_eq!(d.approved_cents, 2000);
}

#[test]
fn denies_unreadable_input() {
    let mut c = Case::new(twenty());
    c.scan = ScanKind::Unreadable;
    assert_deny(&c.run(), Reason::Unreadable);
}

#[test]
fn denies_an_unresolved_safetix_payload() {
    let mut c = Case::new(twenty());
    c.scan = ScanKind::SafeTix;
    let d = c.run();
    assert_deny(&d, Reason::SafetixUnresolved);
    assert_eq!(d.source, Source::Live);
}

#[test]
fn denies_unknown_ticket_when_online() {
    let mut r = twenty();
    r.info = None;
    r.value.clear();
    assert_deny(&Case::new(r).run(), Reason::UnknownTicket);
}

#[test]
fn denies_unknown_ticket_when_offline() {
    let mut r = twenty();
    r.info = None;
    let d = Case::new(r).offline(1000).run();
    assert_deny(&d, Reason::UnknownTicket);
    assert!(d.offline);
}

#[test]
fn denies_offline_unknown_when_offline_without_cache() {
    let mut c = Case::new(twenty());
    c.mode = Mode::Offline;
    c.ev = Ev::Nothing;
    let d = c.run();
    assert_deny(&d, Reason::OfflineUnknown);
    assert_eq!(d.source, Source::Offline);
    assert!(d.offline);
}

#[test]
fn denies_offline_unknown_when_online_without_any_evidence() {
    let mut c = Case::new(twenty());
    c.ev = Ev::Nothing;
    assert_deny(&c.run(), Reason::OfflineUnknown);
}

#[test]
fn denies_a_record_about_another_barcode() {
    let mut c = Case::new(twenty());
    c.scan = ScanKind::Barcode("100000000002".into());
    assert_deny(&c.run(), Reason::UnknownTicket);
}

#[test]
fn denies_void_reissued_returned_and_unknown_statuses() {
    for status in [
        TicketStatus::Void,
        TicketStatus::Reissued,
        TicketStatus::Returned,
        TicketStatus::Other("HELD".into()),
    ] {
        let mut r = twenty();
        r.info = Some(info(BC, "EVENT01", TODAY, status));
        assert_deny(&Case::new(r).run(), Reason::TicketVoid);
    }
}

#[test]
fn denies_wrong_event_when_the_terminal_serves_other_events() {
    let mut c = Case::new(twenty());
    c.events = vec!["EVENT02".into()];
    assert_deny(&c.run(), Reason::WrongEvent);
    c.events = vec!["EVENT02".into(), "EVENT01".into()];
    assert_eq!(c.run().verdict, Verdict::Approve);
}

#[test]
fn denies_wrong_event_for_a_past_event_when_serving_any_event_today() {
    let mut r = twenty();
    r.info = Some(info(BC, "EVENT00", "2026-11-20", TicketStatus::Active));
    assert_deny(&Case::new(r).run(), Reason::WrongEvent);
}

#[test]
fn accepts_an_event_date_with_a_time_part() {
    let mut r = twenty();
    r.info = Some(info(
        BC,
        "EVENT01",
        "2026-11-27T19:00:00",
        TicketStatus::Active,
    ));
    assert_eq!(Case::new(r).run().verdict, Verdict::Approve);
}

#[test]
fn denies_wrong_event_when_the_ticket_has_no_event_date() {
    let mut r = twenty();
    if let Some(i) = r.info.as_mut() {
        i.event_date = None;
    }
    assert_deny(&Case::new(r).run(), Reason::WrongEvent);
}

#[test]
fn denies_no_value_when_nothing_is_loaded() {
    assert_deny(&Case::new(rec(vec![])).run(), Reason::NoValue);
    assert_deny(
        &Case::new(rec(vec![money("AV1", 0, 0)])).run(),
        Reason::NoValue,
    );
}

#[test]
fn denies_no_value_when_the_pos_asks_money_from_an_items_only_ticket() {
    let r = rec(vec![item("AV1002", "Pizza and a Coke", 1)]);
    assert_deny(&Case::new(r).ask(500).run(), Reason::NoValue);
}

#[test]
fn denies_value_expired_outside_the_validity_dates() {
    let mut line = money("AV1007", 1000, 1000);
    line.valid_until = Some("2026-11-20".into());
    assert_deny(
        &Case::new(rec(vec![line.clone()])).run(),
        Reason::ValueExpired,
    );
    line.valid_until = None;
    line.valid_from = Some("2026-11-28".into());
    assert_deny(&Case::new(rec(vec![line])).run(), Reason::ValueExpired);
}

#[test]
fn accepts_value_on_its_first_and_last_valid_day() {
    let mut line = money("AV1", 1000, 1000);
    line.valid_from = Some(TODAY.into());
    line.valid_until = Some(format!("{TODAY} 23:59:59"));
    assert_eq!(Case::new(rec(vec![line])).run().approved_cents, 1000);
}

#[test]
fn treats_blank_validity_dates_as_unlimited() {
    let mut line = money("AV1", 1000, 1000);
    line.valid_from = Some(String::new());
    line.valid_until = Some(" ".into());
    assert_eq!(Case::new(rec(vec![line])).run().approved_cents, 1000);
}

#[test]
fn refuses_value_with_a_malformed_date() {
    let mut line = money("AV1", 1000, 1000);
    line.valid_until = Some("27/11/2026".into());
    assert_deny(&Case::new(rec(vec![line])).run(), Reason::ValueExpired);
}

#[test]
fn skips_expired_lines_and_spends_the_valid_ones() {
    let mut old = money("AV_OLD", 1000, 1000);
    old.valid_until = Some("2026-01-01".into());
    let d = Case::new(rec(vec![old, money("AV_NEW", 500, 500)])).run();
    assert_eq!(d.money, vec![("AV_NEW".to_string(), 500)]);
}

#[test]
fn denies_already_redeemed_when_the_ledger_spent_it() {
    let r = twenty();
    let first = Case::new(r.clone()).run();
    let mut c = Case::new(r.clone());
    c.ledger.record_decision(&first, Some(&r));
    assert_deny(&c.run(), Reason::AlreadyRedeemed);
}

#[test]
fn denies_already_redeemed_when_upstream_balance_reached_zero() {
    assert_deny(
        &Case::new(rec(vec![money("AV1", 2000, 0)])).run(),
        Reason::AlreadyRedeemed,
    );
}

#[test]
fn approves_only_the_unreflected_remainder() {
    let r = rec(vec![money("AV1008", 5000, 5000)]);
    let first = Case::new(r.clone()).ask(1200).run();
    let mut c = Case::new(r.clone());
    c.ledger.record_decision(&first, Some(&r));
    let d = c.run();
    assert_eq!(d.approved_cents, 3800);
}

#[test]
fn counts_a_reflected_redemption_only_once() {
    let r = rec(vec![money("AV1008", 5000, 5000)]);
    let first = Case::new(r.clone()).ask(1200).run();
    let mut ledger = TicketLedger::default();
    ledger.record_decision(&first, Some(&r));
    // ATS now shows the 12.00 as spent.
    let mut newer = rec(vec![money("AV1008", 5000, 3800)]);
    newer.fetched_at_ms = 2_000;
    let mut c = Case::new(newer);
    c.ledger = ledger;
    assert_eq!(c.run().approved_cents, 3800);
}

#[test]
fn an_older_cached_record_cannot_resurrect_spent_value() {
    let r = rec(vec![money("AV1008", 5000, 5000)]);
    let mut newer = r.clone();
    newer.value[0].balance = 1000;
    newer.fetched_at_ms = 5_000;
    let mut ledger = TicketLedger::default();
    ledger.reconcile(&newer);
    ledger.lines.entry("AV1008".into()).or_default();
    ledger.reconcile(&newer);
    let mut c = Case::new(r);
    c.ledger = ledger;
    assert_eq!(c.run().approved_cents, 1000);
}

#[test]
fn grants_one_unit_of_each_item_on_a_bare_scan() {
    let r = rec(vec![
        money("AV1003", 1500, 1500),
        item("AV1004", "Hot Dog", 2),
        item("AV1002", "Pizza and a Coke", 1),
    ]);
    let d = Case::new(r).run();
    assert_eq!(d.reason, Reason::Approved);
    assert_eq!(d.approved_cents, 1500);
    assert_eq!(
        d.item_names(),
        vec!["Hot Dog".to_string(), "Pizza and a Coke".to_string()]
    );
}

#[test]
fn grants_money_only_when_the_pos_sends_an_amount() {
    let r = rec(vec![
        money("AV1003", 1500, 1500),
        item("AV1004", "Hot Dog", 1),
    ]);
    let d = Case::new(r).ask(1000).run();
    assert_eq!(d.approved_cents, 1000);
    assert!(d.items.is_empty());
}

#[test]
fn approves_an_items_only_ticket_once_then_denies() {
    let r = rec(vec![item("AV1002", "Pizza and a Coke", 1)]);
    let first = Case::new(r.clone()).run();
    assert_eq!(first.reason, Reason::Approved);
    assert_eq!(first.approved_cents, 0);
    assert_eq!(first.items.len(), 1);
    let mut c = Case::new(r.clone());
    c.ledger.record_decision(&first, Some(&r));
    assert_deny(&c.run(), Reason::AlreadyRedeemed);
}

#[test]
fn spreads_money_over_lines_in_order() {
    let r = rec(vec![money("A", 300, 300), money("B", 1000, 1000)]);
    let d = Case::new(r).ask(800).run();
    assert_eq!(
        d.money,
        vec![("A".to_string(), 300), ("B".to_string(), 500)]
    );
}

#[test]
fn denies_invalid_request_for_a_zero_amount() {
    assert_deny(&Case::new(twenty()).ask(0).run(), Reason::InvalidRequest);
}

#[test]
fn uses_a_fresh_cache_online_without_offline_caps() {
    let mut c = Case::new(rec(vec![money("AV1008", 5000, 5000)]));
    c.ev = Ev::Cached(10_000);
    let d = c.run();
    assert_eq!(d.source, Source::Cache);
    assert!(!d.offline);
    assert_eq!(d.approved_cents, 5000);
}

#[test]
fn judges_an_old_cache_online_under_offline_rules() {
    let mut c = Case::new(rec(vec![money("AV1008", 5000, 5000)]));
    c.ev = Ev::Cached(60_000);
    let d = c.run();
    assert_eq!(d.source, Source::Offline);
    assert!(d.offline);
    assert_eq!(d.approved_cents, 2500);
}

#[test]
fn never_uses_the_cache_online_when_disabled() {
    let mut c = Case::new(twenty());
    c.policy.online_cache_max_age_ms = 0;
    c.ev = Ev::Cached(0);
    assert!(c.run().offline);
}

#[test]
fn a_live_answer_beats_the_offline_mode_flag() {
    let mut c = Case::new(rec(vec![money("AV1008", 5000, 5000)]));
    c.mode = Mode::Offline;
    let d = c.run();
    assert_eq!(d.source, Source::Live);
    assert!(!d.offline);
    assert_eq!(d.approved_cents, 5000);
}

#[test]
fn approves_offline_from_a_young_cache_and_flags_it() {
    let d = Case::new(twenty()).offline(60_000).run();
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.approved_cents, 2000);
    assert_eq!(d.source, Source::Offline);
    assert!(d.offline);
}

#[test]
fn denies_stale_cache_when_offline() {
    let age = Policy::default().offline.max_cache_age_ms + 1;
    let d = Case::new(twenty()).offline(age).run();
    assert_deny(&d, Reason::StaleCache);
    assert!(d.offline);
}

#[test]
fn caps_an_offline_approval_at_the_per_transaction_cap_as_partial() {
    let d = Case::new(rec(vec![money("AV1008", 5000, 5000)]))
        .offline(0)
        .run();
    assert_eq!(d.reason, Reason::Partial);
    assert_eq!(d.approved_cents, 2500);
}

#[test]
fn denies_offline_limit_instead_of_partial_when_the_policy_says_so() {
    let mut c = Case::new(rec(vec![money("AV1008", 5000, 5000)])).offline(0);
    c.policy.offline_partial = false;
    assert_deny(&c.run(), Reason::OfflineLimit);
    // What fits is still approved in full.
    let c = c.ask(2500);
    assert_eq!(c.run().approved_cents, 2500);
}

#[test]
fn caps_offline_money_at_what_the_ticket_has_left_under_its_cap() {
    let mut c = Case::new(rec(vec![money("AV1008", 5000, 5000)])).offline(0);
    c.ledger.offline_cents = 2000;
    assert_eq!(c.run().approved_cents, 500);
    c.ledger.offline_cents = 2500;
    assert_deny(&c.run(), Reason::OfflineLimit);
}

#[test]
fn caps_offline_money_at_the_terminal_total() {
    let mut c = Case::new(twenty()).offline(0);
    c.usage = OfflineUsage {
        cents: 49_000,
        count: 3,
    };
    assert_eq!(c.run().approved_cents, 1000);
    c.usage.cents = 50_000;
    assert_deny(&c.run(), Reason::OfflineLimit);
}

#[test]
fn denies_offline_limit_when_the_offline_count_is_used_up() {
    let mut c = Case::new(rec(vec![item("AV1002", "Pizza and a Coke", 1)])).offline(0);
    c.usage.count = 50;
    assert_deny(&c.run(), Reason::OfflineLimit);
    c.usage.count = 49;
    assert_eq!(c.run().items.len(), 1);
}

#[test]
fn still_grants_items_offline_when_the_money_caps_are_used_up() {
    let mut c = Case::new(rec(vec![
        money("AV1003", 1500, 1500),
        item("AV1004", "Hot Dog", 1),
    ]))
    .offline(0);
    c.usage.cents = 50_000;
    let d = c.run();
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!(d.reason, Reason::Partial);
    assert_eq!(d.approved_cents, 0);
    assert_eq!(d.items.len(), 1);
}

#[test]
fn reasons_have_stable_snake_case_names() {
    for r in Reason::ALL {
        assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", r.as_str()));
    }
    assert_eq!(Reason::SafetixUnresolved.as_str(), "safetix_unresolved");
    assert!(Reason::Partial.is_approval());
    assert!(!Reason::OfflineLimit.is_approval());
}

#[test]
fn a_decision_round_trips_through_json() {
    let d = Case::new(rec(vec![money("A", 100, 100), item("B", "Hot Dog", 1)])).run();
    let text = serde_json::to_string(&d).unwrap_or_default();
    assert!(text.contains("\"verdict\":\"approve\""), "{text}");
    let back: Decision = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, d);
}

#[test]
fn void_restores_unreflected_value_and_offline_exposure() {
    let r = twenty();
    let d = Case::new(r.clone()).offline(0).run();
    let mut ledger = TicketLedger::default();
    ledger.record_decision(&d, Some(&r));
    let mut usage = OfflineUsage::default();
    usage.record(&d);
    assert_eq!(ledger.offline_cents, 2000);
    assert_eq!(
        usage,
        OfflineUsage {
            cents: 2000,
            count: 1
        }
    );
    let back = ledger.restore(&d, true);
    usage.unrecord(&d);
    assert_eq!(back.cents, 2000);
    assert_eq!(back.reflected_cents, 0);
    assert_eq!(ledger.offline_cents, 0);
    assert_eq!(usage, OfflineUsage::default());
    assert_eq!(Case::new(r).run().approved_cents, 2000);
}

#[test]
fn void_cannot_restore_what_upstream_already_reflected() {
    let r = twenty();
    let d = Case::new(r.clone()).ask(500).run();
    let mut ledger = TicketLedger::default();
    ledger.record_decision(&d, Some(&r));
    let mut newer = r.clone();
    newer.value[0].balance = 1500;
    newer.fetched_at_ms = 9_000;
    assert!(ledger.reconcile(&newer));
    let back = ledger.restore(&d, true);
    assert_eq!(back.cents, 0);
    assert_eq!(back.reflected_cents, 500);
}

#[test]
fn reconcile_ignores_older_answers_and_is_idempotent() {
    let r = rec(vec![money("A", 5000, 5000)]);
    let d = Case::new(r.clone()).ask(1000).run();
    let mut ledger = TicketLedger::default();
    ledger.record_decision(&d, Some(&r));
    let mut newer = r.clone();
    newer.value[0].balance = 4500;
    newer.fetched_at_ms = 2_000;
    assert!(ledger.reconcile(&newer));
    assert!(ledger.reconcile(&newer));
    assert_eq!(ledger.lines["A"].unreflected, 500);
    assert!(!ledger.reconcile(&r));
    assert_eq!(ledger.lines["A"].unreflected, 500);
    assert_eq!(ledger.lines["A"].baseline, Some(4500));
}

#[test]
fn a_reload_upstream_moves_the_baseline_up_without_forgetting_redemptions() {
    let r = rec(vec![money("A", 1000, 1000)]);
    let d = Case::new(r.clone()).run();
    let mut ledger = TicketLedger::default();
    ledger.record_decision(&d, Some(&r));
    // A reload adds to what was loaded as well as to the balance (a balance above the
    // loaded amount is refused as a broken answer: see
    // `a_balance_above_the_loaded_amount_is_approved_only_up_to_the_amount`).
    let mut reloaded = r.clone();
    reloaded.value[0].loaded = 3000;
    reloaded.value[0].balance = 3000;
    reloaded.fetched_at_ms = 2_000;
    ledger.reconcile(&reloaded);
    let mut c = Case::new(reloaded);
    c.ledger = ledger;
    assert_eq!(c.run().approved_cents, 2000);
}

// ---------------------------------------------------------------------------------------
// Hostile input (issue 11)

#[test]
fn a_duplicated_value_line_is_spent_once() {
    // A record cached before builders merged repeated rows still holds both.
    let d = Case::new(rec(vec![money("A", 1000, 1000), money("A", 1000, 1000)])).run();
    assert_eq!(d.reason, Reason::Approved);
    assert_eq!(d.approved_cents, 1000);
    assert_eq!(d.money, vec![("A".to_string(), 1000)]);
    let d = Case::new(rec(vec![money("A", 1000, 1000), money("A", 1000, 1000)]))
        .offline(0)
        .run();
    assert_eq!(d.approved_cents, 1000);
}

#[test]
fn two_different_rows_for_one_value_line_are_not_approved() {
    let r = rec(vec![money("A", 1000, 1000), money("A", 2000, 2000)]);
    assert_deny(&Case::new(r.clone()).run(), Reason::BadRecord);
    assert_deny(&Case::new(r).offline(0).run(), Reason::BadRecord);
}

#[test]
fn a_balance_above_the_loaded_amount_is_approved_only_up_to_the_amount() {
    let d = Case::new(rec(vec![money("A", 1000, 3000)])).run();
    assert_eq!(d.approved_cents, 1000);
    assert_eq!(d.reason, Reason::Approved);
    let d = Case::new(rec(vec![money("A", 1000, 3000)])).ask(3000).run();
    assert_eq!((d.approved_cents, d.reason), (1000, Reason::Partial));
    // Nothing loaded: no value, whatever the balance says.
    assert_deny(
        &Case::new(rec(vec![money("A", 0, 3000)])).run(),
        Reason::NoValue,
    );
    // Items too: one unit loaded, a balance of 50 still hands over one.
    let mut hot_dog = item("I", "Hot Dog", 1);
    hot_dog.balance = 50;
    let d = Case::new(rec(vec![hot_dog])).run();
    assert_eq!(d.items.len(), 1);
}

#[test]
fn a_million_dollar_balance_is_approved_only_up_to_the_transaction_maximum() {
    let million = rec(vec![money("A", 100_000_000, 100_000_000)]);
    let d = Case::new(million.clone()).run();
    assert_eq!(d.verdict, Verdict::Approve);
    assert_eq!((d.approved_cents, d.reason), (10_000, Reason::Partial));
    assert_eq!(d.money, vec![("A".to_string(), 10_000)]);
    let d = Case::new(million.clone()).ask(50_000).run();
    assert_eq!((d.approved_cents, d.reason), (10_000, Reason::Partial));
    let d = Case::new(million.clone()).ask(2_500).run();
    assert_eq!((d.approved_cents, d.reason), (2_500, Reason::Approved));
    let mut c = Case::new(million);
    c.policy.max_transaction_cents = 500;
    assert_eq!(c.run().approved_cents, 500);
}

#[test]
fn cached_evidence_is_refused_while_the_clock_is_unsure_and_live_is_not() {
    let run = |mut c: Case| {
        let evidence = match c.ev {
            Ev::Live => Evidence::Live(&c.record),
            Ev::Cached(age_ms) => Evidence::Cached {
                record: &c.record,
                age_ms,
            },
            Ev::Nothing => Evidence::None,
        };
        c.today = TODAY.into();
        decide(&DecideInput {
            scan: &c.scan,
            requested: c.requested,
            evidence,
            mode: c.mode,
            ledger: &c.ledger,
            usage: c.usage,
            policy: &c.policy,
            today: &c.today,
            events: &c.events,
            clock_trusted: false,
        })
    };
    assert_deny(&run(Case::new(twenty()).offline(0)), Reason::ClockUnsure);
    let mut online_cache = Case::new(twenty());
    online_cache.ev = Ev::Cached(0);
    assert_deny(&run(online_cache), Reason::ClockUnsure);
    assert_eq!(run(Case::new(twenty())).approved_cents, 2000);
}
