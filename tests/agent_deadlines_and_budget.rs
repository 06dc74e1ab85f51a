//! The agent's deadlines and call budget, end to end: a missed lookup counts once
//! against connectivity, a scan that spent its deadline in the queue asks ATS nothing,
//! and the background refresher keeps the day's reserve of calls for scans.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concession_agent::app;
use concession_agent::ats::{AtsError, RateWindow};
use concession_agent::clock;
use concession_agent::decide::Mode;
use concession_agent::decide::Verdict;
use concession_agent::sandbox::Faults;
use support::{wait_for, Harness};

#[test]
fn one_missed_lookup_counts_once_against_connectivity() {
    // Two missed deadlines take the stand offline; one must not, even when the calls
    // it gave up on fail later (here: ATS closes the held calls when it recovers).
    let mut h = Harness::start(
        "events = [\"EVENT01\"]\ndeadline_ms = 300\n[cache]\nfresh_ms = 0\n\
         [health]\nprobe_interval_ms = 20",
    );
    h.sandbox.set_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision, d.reason.as_str()),
        (Verdict::Deny, "offline_unknown")
    );
    assert_eq!(h.agent.mode(), Mode::Online, "one miss is one failure");
    wait_for(Duration::from_secs(5), || {
        (h.stats().black_holed >= 2).then_some(())
    })
    .expect("both calls reached the black hole");

    // ATS recovers; the two held calls end in errors on the workers.
    h.sandbox.set_faults(Faults::default());
    let went_offline = wait_for(Duration::from_secs(2), || {
        h.agent.tick();
        (h.agent.mode() == Mode::Offline).then_some(())
    });
    assert!(
        went_offline.is_none(),
        "the late failures of an abandoned lookup were counted again"
    );
    let d = h.scan("100000000001");
    assert_eq!((d.decision, d.source.as_str()), (Verdict::Approve, "live"));
}

#[test]
fn a_scan_that_spent_its_deadline_in_the_queue_asks_ats_nothing_and_blames_it_for_nothing() {
    let mut h = Harness::start("events = [\"EVENT01\"]\ndeadline_ms = 300");
    for _ in 0..3 {
        let mut ev = h.event("100000000001", None);
        // Read by the scanner a second ago; the loop only gets to it now.
        ev.received_at_ms -= 1_000;
        let d = h.agent.handle_scan(&ev).expect("journaled");
        assert_eq!(
            (d.decision, d.reason.as_str(), d.source.as_str()),
            (Verdict::Deny, "offline_unknown", "offline")
        );
    }
    assert_eq!(h.calls(), 0, "no call that nobody would wait for");
    h.agent.tick();
    assert_eq!(
        h.agent.mode(),
        Mode::Online,
        "the queue's delay is not ATS's"
    );
    // A scan on time is answered live.
    let d = h.scan("100000000001");
    assert_eq!((d.decision, d.source.as_str()), (Verdict::Approve, "live"));
}

#[test]
fn background_prefetch_stops_at_the_days_reserve_instead_of_waiting_for_tomorrow() {
    // 40 calls a day, 20 a minute kept for scans: the day keeps 20 too, and the
    // listing that would go below it is refused at once.
    let sandbox = support::sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config = support::config(
        &sandbox.base_url(),
        &dir.path().join("store"),
        "[ats]\nrate_per_minute = 80\nrate_per_day = 40\n[cache]\nbudget_reserve_per_minute = 20",
    );
    let link = app::connect_ats(&config, clock::system()).unwrap();
    // A watchdog: a listing that waits for budget instead of refusing ends here.
    let stop = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut listings = 0;
    let err = loop {
        match link
            .client
            .get_av_barcodes_for_event_paced("EVENT01", 20, &stop)
        {
            Ok(_) => listings += 1,
            Err(e) => break e,
        }
        assert!(listings <= 40, "never refused");
    };
    assert!(
        !stop.load(Ordering::SeqCst),
        "waited for the day to free up"
    );
    assert!(
        matches!(
            err,
            AtsError::RateBudget {
                window: RateWindow::Day,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        link.client.budget_remaining().1,
        20,
        "after {listings} listings"
    );
    stop.store(true, Ordering::SeqCst);
    drop(watchdog);
}
