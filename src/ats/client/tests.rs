//! Unit tests of the ATS client: pacing of listing calls, merging listing pages,
//! scrubbing the key from errors, and what `Debug` shows.

#[test]
fn paced_calls_keep_a_share_of_the_day_for_scans() {
    // 80 a minute, 20 kept: a quarter of 5000 a day is kept too.
    assert_eq!(pace(60, 1251, 20, 80, 5000), Pace::Go);
    assert_eq!(pace(60, 1250, 20, 80, 5000), Pace::Refuse(RateWindow::Day));
    assert_eq!(pace(20, 4000, 20, 80, 5000), Pace::Wait);
}

#[test]
fn paced_calls_give_up_instead_of_waiting_hours_for_the_day() {
    // The minute figure is capped by the day's: at 20 left today, waiting for the
    // minute to roll would never help.
    assert_eq!(pace(20, 20, 20, 80, 40), Pace::Refuse(RateWindow::Day));
    assert_eq!(pace(21, 21, 20, 80, 40), Pace::Go);
    assert_eq!(pace(0, 0, 20, 80, 5000), Pace::Refuse(RateWindow::Day));
}

use super::*;

fn row(barcode: &str, av_id: &str, cents: u64) -> (String, ValueLine) {
    (
        barcode.into(),
        ValueLine {
            av_id: av_id.into(),
            kind: crate::ticket::ValueKind::Money,
            description: "credit".into(),
            loaded: cents,
            balance: cents,
            valid_from: None,
            valid_until: None,
        },
    )
}

#[test]
fn overlapping_listing_rows_are_kept_once_in_their_first_place() {
    let rows = vec![
        row("2", "A", 1000),
        row("1", "A", 500),
        row("2", "B", 700),
        row("2", "A", 1000), // the next page repeats ticket 2
        row("2", "B", 700),
        row("2", "A", 1000),
        row("3", "A", 100),
    ];
    let merged = merge_listing(rows).unwrap();
    assert_eq!(
        merged,
        vec![
            row("2", "A", 1000),
            row("1", "A", 500),
            row("2", "B", 700),
            row("3", "A", 100)
        ]
    );
    let conflict = merge_listing(vec![row("2", "A", 1000), row("2", "A", 2000)]);
    assert!(
        matches!(conflict, Err(AtsError::Decode { .. })),
        "{conflict:?}"
    );
}

#[test]
fn scrubs_the_key_from_every_text() {
    let e = scrub_error(
        AtsError::Unauthorized {
            message: "key s3cret not valid for s3cret".into(),
        },
        "s3cret",
    );
    assert_eq!(
        e.to_string(),
        "unauthorized (401): key *** not valid for ***"
    );
    let e = scrub_error(
        AtsError::Transport {
            phase: Phase::Tls,
            detail: "s3cret".into(),
        },
        "s3cret",
    );
    assert!(!format!("{e:?}").contains("s3cret"));
}

#[test]
fn client_is_send_sync_and_debug_hides_the_key() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<AtsClient>();
    let c = AtsClient::new(AtsConfig {
        base_url: "http://127.0.0.1:9".into(),
        apikey: crate::redact::Secret::new("topsecretkey"),
        ..AtsConfig::default()
    })
    .unwrap();
    let shown = format!("{c:?} {:?}", c.config());
    assert!(!shown.contains("topsecretkey"), "{shown}");
    assert_eq!(c.budget_remaining(), (80, 5000));
}
