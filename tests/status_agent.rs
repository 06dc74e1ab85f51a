//! The status the agent publishes (issue 14, item 1), in process: offline mode and its
//! exposure against the caps, voids in today's totals, and the day read back from the
//! journal.

mod support;

use concession_agent::decide::Mode;
use concession_agent::status::DayTotals;
use support::Harness;

#[test]
fn status_offline_shows_the_mode_since_when_and_the_exposure_used_against_the_caps() {
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\n[offline]\ntotal_cents = 3000\ntotal_count = 4\n\
         per_transaction_cents = 1000",
    );
    assert_eq!(h.prefetch("EVENT01"), 5);
    let before = h.agent.status();
    assert_eq!(before.mode, "online");
    assert_eq!(before.offline.used_cents, 0);

    let went_offline = h.clock.wall_ms();
    h.agent.force_mode(Mode::Offline);
    let d = h.scan("100000000001");
    assert_eq!((d.source.as_str(), d.approved_cents), ("offline", 1000));
    let s = h.agent.status();
    assert_eq!(s.mode, "offline");
    assert!(s.mode_since_ms.unwrap() >= went_offline, "{s:?}");
    assert_eq!(s.offline.used_cents, 1000);
    assert_eq!(s.offline.used_count, 1);
    assert_eq!(s.offline.cap_cents, 3000);
    assert_eq!(s.offline.cap_count, 4);
    assert_eq!(s.offline.per_transaction_cents, 1000);
    assert_eq!(s.today.offline_approvals, 1);
    assert_eq!(s.last_decision.as_ref().unwrap().source, "offline");
    let text = concession_agent::status::render_text(&s, h.clock.wall_ms());
    assert!(
        text.contains("$10.00 of $30.00, 1 of 4 approvals"),
        "{text}"
    );

    // Back online: the offline window closes, the exposure starts again from zero.
    h.agent.force_mode(Mode::Online);
    let s = h.agent.status();
    assert_eq!(s.mode, "online");
    assert_eq!(s.offline.used_cents, 0);
    // Today's figures keep the offline approval.
    assert_eq!(s.today.approved_cents, 1000);
}

#[test]
fn a_void_counts_in_todays_totals_and_is_the_last_decision() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    let d = h.scan("100000000001");
    assert_eq!(d.approved_cents, 2000);
    let v = h.void(&d.id);
    assert_eq!(v.reversed_cents, 2000);
    let s = h.agent.status();
    assert_eq!((s.today.decisions, s.today.approvals), (1, 1));
    assert_eq!((s.today.voids, s.today.refunded_cents), (1, 2000));
    assert_eq!(s.today.net_cents(), 0);
    let last = s.last_decision.unwrap();
    assert_eq!((last.kind.as_str(), last.approved_cents), ("void", 2000));
    assert_eq!(s.journal_entries, 2);

    // A restarted agent reads the same day back from the journal.
    let h = h.restart();
    let s = h.agent.status();
    assert_eq!(
        (s.today.decisions, s.today.voids, s.today.net_cents()),
        (1, 1, 0)
    );
    assert_eq!(s.journal_entries, 2);
    assert_eq!(s.last_decision.unwrap().kind, "void");
}

#[test]
fn todays_totals_from_the_journal_leave_out_yesterday() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    h.scan("100000000001");
    h.scan("999999999999");
    let now = h.clock.wall_ms();
    let offset = h.config.utc_offset_minutes;
    let today = concession_agent::agent::local_date(now, offset);
    let (t, newest) = DayTotals::from_journal(h.agent.store(), &today, offset).unwrap();
    assert_eq!((t.decisions, t.approvals, t.approved_cents), (2, 1, 2000));
    assert_eq!(newest.unwrap().seq, 2);
    // Seen from tomorrow, both were yesterday's.
    let tomorrow = concession_agent::agent::local_date(now + 86_400_000, offset);
    let (t, newest) = DayTotals::from_journal(h.agent.store(), &tomorrow, offset).unwrap();
    assert_eq!((t.decisions, t.approved_cents), (0, 0));
    assert_eq!(
        newest.unwrap().seq,
        2,
        "the last decision is still the last"
    );
}
