use super::*;

fn plan() -> SharePlan {
    SharePlan {
        per_minute: 80,
        per_day: 5000,
        stands: 4,
        reserve_per_minute: 10,
    }
}

fn grant(scan: u32, any: u32) -> Grant {
    Grant {
        scan,
        any,
        minute_left: 50,
        day_left: 4000,
        stands_seen: 4,
        first_pass: false,
    }
}

/// A budget live with the venue, holding `scan` + `any` calls claimed at `t0`.
fn live(t0: Instant, scan: u32, any: u32) -> BudgetState {
    live_with(t0, grant(scan, any))
}

/// A budget live with the venue after its first claim got `g` at `t0`.
fn live_with(t0: Instant, g: Grant) -> BudgetState {
    let mut b = BudgetState::new(plan());
    let c = b.begin_claim(t0).unwrap();
    b.granted(&c, g, t0);
    b
}

#[test]
fn a_scan_draws_from_the_allowance_and_asks_for_a_refill_when_it_runs_low() {
    let t0 = Instant::now();
    let mut b = live(t0, 4, 0);
    assert_eq!(b.mode(t0), BudgetMode::Venue);
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Scan));
    assert!(!b.wants_refill());
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Scan));
    assert!(b.wants_refill(), "half the grant is spent");
    assert!(b.claim_due(t0));
    b.take(CallKind::Scan, t0).unwrap();
    b.take(CallKind::Scan, t0).unwrap();
    let (w, _) = b.take(CallKind::Scan, t0).unwrap_err();
    assert_eq!(w, RateWindow::Minute);
    let c = b.begin_claim(t0).unwrap();
    assert_eq!(c.used, 4, "every call made is reported");
    assert_eq!(c.keep, 0);
    assert!(c.want_scan >= 4, "a busy stand asks for more: {c:?}");
}

#[test]
fn background_calls_draw_only_from_the_any_pool() {
    let t0 = Instant::now();
    let mut b = live(t0, 2, 0);
    assert!(b.take(CallKind::Background, t0).is_err());
    let c = b.begin_claim(t0).unwrap();
    assert!(
        c.want_any > 0,
        "a background call was refused: it asks for the any pool"
    );
    b.granted(&c, grant(0, 1), t0);
    assert_eq!(b.take(CallKind::Background, t0), Ok(Drawn::Any));
    assert!(b.take(CallKind::Background, t0).is_err());
    // The scans still have theirs.
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Scan));
}

#[test]
fn an_unused_allowance_expires_with_its_lifetime_and_is_renewed_before() {
    let t0 = Instant::now();
    let mut b = live(t0, 2, 3);
    assert!(!b.claim_due(t0));
    assert!(
        b.claim_due(t0 + LEASE_LIFETIME - RENEW_AHEAD),
        "renewed ahead"
    );
    assert_eq!(b.allowance(t0 + LEASE_LIFETIME), (0, 0), "expired");
    assert!(b.take(CallKind::Scan, t0 + LEASE_LIFETIME).is_err());
}

#[test]
fn a_renewal_keeps_what_is_left_until_the_new_expiry() {
    let t0 = Instant::now();
    let mut b = live(t0, 3, 0);
    b.take(CallKind::Scan, t0).unwrap();
    let t1 = t0 + Duration::from_secs(4);
    let c = b.begin_claim(t1).unwrap();
    assert_eq!((c.used, c.keep), (1, 2));
    // Drawn while the claim is in flight: still covered by the kept calls.
    b.take(CallKind::Scan, t1).unwrap();
    b.granted(&c, grant(1, 0), t1);
    assert_eq!(b.allowance(t0 + LEASE_LIFETIME), (2, 0), "1 kept + 1 new");
    assert_eq!(b.allowance(t1 + LEASE_LIFETIME), (0, 0));
}

#[test]
fn a_claim_without_answer_reports_its_calls_again() {
    let t0 = Instant::now();
    let mut b = live(t0, 3, 0);
    b.take(CallKind::Scan, t0).unwrap();
    b.take(CallKind::Scan, t0).unwrap();
    let c = b.begin_claim(t0).unwrap();
    assert!(b.begin_claim(t0).is_none(), "one claim in flight");
    b.claim_failed(&c, t0);
    let c = b.begin_claim(t0).unwrap();
    assert_eq!(c.used, 2);
}

#[test]
fn a_stand_that_never_reached_the_venue_keeps_to_its_share_at_once() {
    let t0 = Instant::now();
    let mut b = BudgetState::new(plan());
    assert_eq!(b.mode(t0), BudgetMode::Share);
    // 80 / 4 stands = 20 a minute.
    for _ in 0..20 {
        assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Share));
    }
    let (w, wait) = b.take(CallKind::Scan, t0).unwrap_err();
    assert_eq!((w, wait), (RateWindow::Minute, Duration::from_secs(60)));
    let c = b.begin_claim(t0).unwrap();
    assert_eq!(
        c.used, 20,
        "the share's calls are reported once the venue answers"
    );
}

#[test]
fn the_share_keeps_its_part_of_the_reserve_from_background_calls() {
    let t0 = Instant::now();
    let mut b = BudgetState::new(plan());
    // Share 20 a minute, reserve 10 / 4 stands = 3: background stops at 3 left.
    let mut background = 0;
    while b.take(CallKind::Background, t0).is_ok() {
        background += 1;
    }
    assert_eq!(background, 17);
    for _ in 0..3 {
        b.take(CallKind::Scan, t0).unwrap();
    }
    assert!(b.take(CallKind::Scan, t0).is_err());
}

#[test]
fn a_stand_that_loses_the_venue_makes_no_call_for_a_minute_then_keeps_to_its_share() {
    let t0 = Instant::now();
    let mut b = live(t0, 2, 0);
    let c = b.begin_claim(t0).unwrap();
    let t1 = t0 + Duration::from_secs(1);
    b.claim_failed(&c, t1);
    assert_eq!(b.mode(t1), BudgetMode::Hold);
    let (_, wait) = b.take(CallKind::Scan, t1).unwrap_err();
    assert_eq!(wait, HOLD_AFTER_LOSS);
    let t2 = t1 + HOLD_AFTER_LOSS;
    assert_eq!(b.mode(t2), BudgetMode::Share);
    assert_eq!(b.take(CallKind::Scan, t2), Ok(Drawn::Share));
    // Back: the venue's allowance again.
    let c = b.begin_claim(t2).unwrap();
    assert_eq!(c.used, 1);
    b.granted(&c, grant(2, 0), t2);
    assert_eq!(b.mode(t2), BudgetMode::Venue);
}

#[test]
fn a_venue_that_answers_no_claim_for_a_while_is_lost() {
    let t0 = Instant::now();
    let mut b = live(t0, 2, 0);
    let late = t0 + STALE_AFTER + Duration::from_millis(1);
    assert_eq!(b.mode(late), BudgetMode::Hold);
}

#[test]
fn the_share_divides_by_the_stands_the_venue_saw_when_they_are_more() {
    let t0 = Instant::now();
    let mut b = BudgetState::new(plan());
    let c = b.begin_claim(t0).unwrap();
    b.granted(
        &c,
        Grant {
            stands_seen: 8,
            ..grant(0, 0)
        },
        t0,
    );
    let c = b.begin_claim(t0).unwrap();
    b.claim_failed(&c, t0);
    let t = t0 + HOLD_AFTER_LOSS;
    let mut n = 0;
    while b.take(CallKind::Scan, t).is_ok() {
        n += 1;
    }
    assert_eq!(n, 10, "80 / 8 stands");
}

#[test]
fn a_call_the_local_budget_refuses_gives_its_token_back() {
    let t0 = Instant::now();
    let shared = std::sync::Arc::new(SharedBudget::new(plan(), crate::clock::system()));
    {
        let mut s = shared.state();
        let c = s.begin_claim(t0).unwrap();
        s.granted(&c, grant(1, 0), t0);
    }
    let local = Mutex::new(RateBudget::new(0, 0));
    assert!(acquire(Some(&shared), &local, t0).is_err());
    assert_eq!(shared.allowance(), (1, 0));
}

#[test]
fn sizes_follow_the_key_and_the_stands() {
    let p = plan();
    assert_eq!(p.scan_hold(), 2);
    assert_eq!(p.max_chunk(), 8);
    assert_eq!(p.day_reserve(), 625);
    let many = SharePlan { stands: 40, ..p };
    assert_eq!(many.scan_hold(), 0, "half a lookup answers no scan");
    assert_eq!(many.max_chunk(), 2);
    assert_eq!(many.share(40), (2, 125));
}

#[test]
fn a_paced_scope_marks_calls_as_background_only_while_it_lives() {
    assert_eq!(current_kind(), CallKind::Scan);
    {
        let _g = BackgroundScope::enter();
        assert_eq!(current_kind(), CallKind::Background);
    }
    assert_eq!(current_kind(), CallKind::Scan);
}

#[test]
fn a_claim_stuck_on_a_hung_database_is_abandoned_and_its_late_answer_ignored() {
    let t0 = Instant::now();
    let mut b = live(t0, 2, 0);
    b.take(CallKind::Scan, t0).unwrap();
    let stuck = b.begin_claim(t0).unwrap();
    let late = t0 + STALE_AFTER + Duration::from_millis(1);
    assert!(b.claim_due(late), "a new worker may claim again");
    assert_eq!(b.mode(late), BudgetMode::Hold);
    let c = b.begin_claim(late).unwrap();
    assert_eq!(c.used, 1, "the stuck claim's report is made again");
    b.granted(&stuck, grant(50, 50), late);
    assert_eq!(
        b.allowance(late),
        (0, 0),
        "the abandoned claim's grant is not used"
    );
    b.granted(&c, grant(2, 0), late);
    assert_eq!(b.allowance(late), (2, 0));
    assert_eq!(b.mode(late), BudgetMode::Venue);
}

#[test]
fn a_key_that_is_short_is_claimed_again_after_a_pause_not_after_every_job() {
    let t0 = Instant::now();
    let mut b = BudgetState::new(plan());
    let c = b.begin_claim(t0).unwrap();
    b.granted(&c, grant(0, 0), t0);
    assert!(b.take(CallKind::Scan, t0).is_err());
    assert!(!b.claim_due(t0 + Duration::from_millis(100)), "short: wait");
    assert!(b.claim_due(t0 + RETRY_EVERY), "then claim again");
}

/// The hole: a scan that found the allowance empty was refused at once, so a cache miss
/// right after another was denied `offline_unknown` while the key had calls to spare
/// (seen at a loaded stand). Now it waits for the refill it asked for.
#[test]
fn a_scan_that_finds_the_allowance_empty_waits_for_the_refill_it_asked_for() {
    let shared = std::sync::Arc::new(SharedBudget::new(plan(), crate::clock::system()));
    {
        let now = shared.clock.now();
        let mut s = shared.state();
        let c = s.begin_claim(now).unwrap();
        s.granted(&c, grant(2, 0), now);
    }
    assert_eq!(shared.take().map_err(|e| e.0), Ok(Drawn::Scan));
    assert_eq!(shared.take().map_err(|e| e.0), Ok(Drawn::Scan));
    assert_eq!(shared.allowance(), (0, 0));
    // The venue worker: woken by the empty draw (a channel, as its job queue), it
    // answers the claim; no fixed sleep decides the outcome.
    let (tx, rx) = crossbeam_channel::bounded::<()>(8);
    shared.set_wake(move || {
        let _ = tx.try_send(());
    });
    let worker = {
        let shared = std::sync::Arc::clone(&shared);
        std::thread::spawn(move || {
            rx.recv().unwrap();
            let claim = shared.begin_claim().expect("a claim to send");
            shared.granted(&claim, grant(4, 0));
        })
    };
    assert_eq!(shared.take().map_err(|e| e.0), Ok(Drawn::Scan));
    worker.join().unwrap();

    // No answer at all (a hung database): refused, after at most SCAN_WAIT.
    let quiet = SharedBudget::new(plan(), crate::clock::system());
    {
        let now = quiet.clock.now();
        let mut s = quiet.state();
        let c = s.begin_claim(now).unwrap();
        s.granted(&c, grant(0, 0), now);
    }
    let t = std::time::Instant::now();
    assert!(quiet.take().is_err());
    assert!(t.elapsed() < SCAN_WAIT * 4, "{:?}", t.elapsed());
}

#[test]
fn a_refused_scan_at_a_stand_that_keeps_nothing_asks_for_a_lookup() {
    // 16 stands on 80 a minute with 20 reserved: an idle stand keeps no scan calls.
    let plan = SharePlan {
        stands: 16,
        reserve_per_minute: 20,
        ..plan()
    };
    assert_eq!(plan.scan_hold(), 0);
    let t0 = Instant::now();
    let mut b = BudgetState::new(plan);
    let c = b.begin_claim(t0).unwrap();
    assert_eq!(c.want_scan, 0, "idle: nothing asked");
    b.granted(&c, grant(0, 0), t0);
    assert!(b.take(CallKind::Scan, t0).is_err());
    assert!(b.wants_refill());
    let c = b.begin_claim(t0).unwrap();
    assert_eq!(c.want_scan, 2, "the refused scan's lookup: {c:?}");
    b.granted(&c, grant(2, 0), t0);
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Scan));
}

#[test]
fn during_a_first_pass_scans_leave_the_any_pool_to_it_and_report_their_calls() {
    let t0 = Instant::now();
    let mut b = live_with(
        t0,
        Grant {
            first_pass: true,
            ..grant(1, 5)
        },
    );
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Scan));
    assert!(
        b.take(CallKind::Scan, t0).is_err(),
        "the any pool is the pass's"
    );
    assert_eq!(b.take(CallKind::Background, t0), Ok(Drawn::Any));
    let c = b.begin_claim(t0).unwrap();
    assert_eq!((c.used, c.used_scan), (2, 1), "{c:?}");
    assert_eq!((c.keep, c.keep_scan), (4, 0));
    // The pass completed: a scan may draw from the any pool again.
    b.granted(&c, grant(0, 0), t0);
    assert_eq!(b.take(CallKind::Scan, t0), Ok(Drawn::Any));
    // A call given back is not reported.
    b.give_back(Drawn::Any, CallKind::Scan);
    let c = b.begin_claim(t0).unwrap();
    assert_eq!((c.used, c.used_scan), (0, 0));
}
