//! `cache.unlisted = "deny"` (docs/agent.md, "Not listed"): once the served events'
//! listings are complete and fresh in the cache, a barcode no cached record holds is
//! denied `not_listed` without an ATS call; before that, or once the listing is older
//! than `cache.fresh_ms`, it is looked up as any cache miss. The venue's copy of a
//! listing counts the same way (tests/venue_fetch.rs).

mod support;

use support::Harness;

const DENY: &str = "events = [\"EVENT01\"]\n[cache]\nunlisted = \"deny\"\n";

#[test]
fn a_barcode_the_complete_listing_leaves_out_is_denied_not_listed_without_a_call() {
    let mut h = Harness::start(DENY);
    // No listing yet: a miss is looked up.
    let before = h.calls();
    let d = h.scan("999999999991");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "unknown_ticket")
    );
    assert!(h.calls() > before, "looked up before any listing");

    h.prefetch("EVENT01");
    let before = h.calls();
    // Not a ticket at all, and a ticket of the event that carries no value: the
    // listing names neither.
    for barcode in ["999999999992", "100000000004"] {
        let d = h.scan(barcode);
        assert_eq!(
            (d.decision.as_str(), d.reason.as_str(), d.source.as_str()),
            ("deny", "not_listed", "cache"),
            "{barcode}: {d:?}"
        );
    }
    // A listed ticket is approved from the cache as before.
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision.as_str(), d.source.as_str()),
        ("approve", "cache")
    );
    assert_eq!(h.calls(), before, "no ATS call for any of them");
    let journal = h.journal();
    assert!(
        journal.iter().any(|e| e.reason == "not_listed"),
        "journaled with its reason"
    );
}

#[test]
fn a_listing_older_than_fresh_ms_no_longer_answers_for_the_barcodes_it_left_out() {
    let mut h = Harness::start(&format!("{DENY}fresh_ms = 60000\n"));
    h.prefetch_at("EVENT01", h.clock.wall_ms() - 61_000);
    let before = h.calls();
    let d = h.scan("999999999993");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "unknown_ticket")
    );
    assert!(
        h.calls() > before,
        "a stale listing is no answer: looked up"
    );
}

#[test]
fn by_default_a_single_terminal_still_looks_unlisted_barcodes_up() {
    let mut h = Harness::start("events = [\"EVENT01\"]\n");
    h.prefetch("EVENT01");
    let before = h.calls();
    let d = h.scan("999999999994");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "unknown_ticket")
    );
    assert!(h.calls() > before);
}

#[test]
fn a_terminal_serving_every_event_has_no_listing_to_go_by() {
    // `events = []`: every event dated today is served, so no listing is complete.
    let mut h = Harness::start("[cache]\nunlisted = \"deny\"\n");
    h.prefetch("EVENT01");
    let d = h.scan("999999999995");
    assert_eq!(
        (d.source.as_str(), d.reason.as_str()),
        ("live", "unknown_ticket")
    );
}
