//! Prefetch streams an event into the cache page by page (issue 10): scans never wait
//! behind it, a page is usable as soon as it is written, a pass cut off by the rate
//! limit keeps its pages and resumes (after a restart too), and a completed pass stops
//! approving from cache the tickets it no longer lists (issue 11, item 10).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concession_agent::agent::prefetch::{
    self, PrefetchError, PrefetchRun, PrefetchState, PrefetchSummary, Progress,
};
use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::ats::wire::EventSummary;
use concession_agent::ats::AtsError;
use concession_agent::clock::{ManualClock, SharedClock};
use concession_agent::config::Config;
use concession_agent::decide::Mode;
use concession_agent::sandbox::{DataSet, SandboxConfig, SandboxHandle};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};

const START_MS: u64 = 1_795_795_200_000;

fn event01() -> EventSummary {
    EventSummary {
        event_name: "EVENT01".into(),
        event_date: None,
        event_time: None,
    }
}

/// A sandbox with `generated` extra EVENT01 tickets, on `clock`.
fn sandbox(clock: &ManualClock, generated: usize, rate_per_minute: u32) -> SandboxHandle {
    support::sandbox_with(SandboxConfig {
        data: DataSet::builtin().with_generated(generated),
        clock: clock.shared(),
        rate_per_minute,
        rate_per_day: 1_000_000,
        ..SandboxConfig::default()
    })
}

/// An agent on `sb` with its store in `dir`, on `clock`.
fn agent(sb: &SandboxHandle, dir: &std::path::Path, clock: &ManualClock) -> (Agent, Config) {
    let config = support::config(
        &sb.base_url(),
        &dir.join("store"),
        "events = [\"EVENT01\"]\n[ats]\nrate_per_minute = 10000\nrate_per_day = 1000000\n",
    );
    let shared: SharedClock = clock.shared();
    let link = app::connect_ats(&config, shared.clone()).expect("client builds");
    let store = app::open_store(&config).expect("store opens");
    let agent = Agent::new(
        config.clone(),
        link.client,
        store,
        shared,
        Outputs::default(),
    );
    (agent, config)
}

fn scan(
    agent: &mut Agent,
    clock: &ManualClock,
    barcode: &str,
) -> concession_agent::signal::DecisionEvent {
    use concession_agent::clock::Clock;
    let ev = ScanEvent {
        input: classify(barcode),
        amount_cents: Some(100),
        request_id: None,
        received_at_ms: clock.wall_ms(),
        origin: Origin::Stdin,
    };
    agent.handle_scan(&ev).expect("decision journaled")
}

/// Runs one prefetch of EVENT01 with `max_wait` for rate limits.
fn run_prefetch(
    agent: &Agent,
    progress: &Progress,
    max_wait: Duration,
) -> Result<PrefetchSummary, PrefetchError> {
    let stop = AtomicBool::new(false);
    let mut run = PrefetchRun {
        reserve_per_minute: None,
        stop: &stop,
        progress,
        max_wait,
        stamp_ms: None,
        on_progress: None,
    };
    prefetch::prefetch_event_paged(agent.ats(), agent.store(), &event01(), &mut run)
}

/// The regression of issue 10: the whole listing was written in one sled transaction,
/// whose lock every read and write of the database waits on, and then checkpointed
/// under the redo log's lock; scans queued behind it for up to 2.6 s. Now the scan loop
/// decides while the prefetch writes, and approves from cache the pages already written.
#[test]
fn a_scan_is_decided_within_its_deadline_while_a_large_prefetch_is_written() {
    let clock = ManualClock::new(START_MS);
    let sb = sandbox(&clock, 20_000, 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, config) = agent(&sb, dir.path(), &clock);
    let progress = Progress::default();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let ats = Arc::clone(agent.ats());
        let store = agent.store().clone();
        let progress = progress.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let mut run = PrefetchRun {
                reserve_per_minute: None,
                stop: &stop,
                progress: &progress,
                max_wait: Duration::ZERO,
                stamp_ms: None,
                on_progress: None,
            };
            let r = prefetch::prefetch_event_paged(&ats, &store, &event01(), &mut run);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    // The first pages hold the built-in tickets and then 200000000000 onwards.
    while progress.snapshot().pages < 2 && !done.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let mut during = 0;
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while !done.load(Ordering::SeqCst) {
        let barcode = format!("{}", 200_000_000_000u64 + (i % 400));
        i += 1;
        let started = Instant::now();
        let d = scan(&mut agent, &clock, &barcode);
        slowest = slowest.max(started.elapsed());
        assert_eq!(d.decision.as_str(), "approve", "{d:?}");
        // Written pages are used as they are: no call, no wait for the rest.
        assert_eq!(d.source, "cache", "{d:?}");
        if !done.load(Ordering::SeqCst) {
            during += 1;
        }
    }
    let summary = writer.join().unwrap().expect("prefetch completes");
    assert_eq!(summary.tickets, 20_000 + 5, "{summary:?}");
    assert!(
        during >= 3,
        "only {during} scans decided while the prefetch ran"
    );
    assert!(
        slowest < config.deadline / 4,
        "a scan took {slowest:?} while the prefetch wrote (deadline {:?})",
        config.deadline
    );
    agent.shutdown();
}

/// A prefetch cut off by a 429 kept nothing (40,000 tickets fetched, `entries: 0`).
/// Now every written page stays, the cursor survives a restart, and the next run
/// resumes after the last written page instead of starting over.
#[test]
fn a_prefetch_stopped_by_a_429_keeps_its_pages_and_resumes_after_a_restart() {
    let clock = ManualClock::new(START_MS);
    // 2,000 generated tickets: 5 pages of 500 rows (the first also has the built-in
    // ones); the server allows 3 calls a minute.
    let sb = sandbox(&clock, 2_000, 3);
    let dir = tempfile::tempdir().unwrap();
    let (agent1, _) = agent(&sb, dir.path(), &clock);
    let progress = Progress::default();
    let err = run_prefetch(&agent1, &progress, Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            err,
            PrefetchError::Ats(AtsError::RateLimited { .. } | AtsError::RateBudget { .. })
        ),
        "{err}"
    );
    let p = progress.snapshot();
    assert_eq!(p.state, PrefetchState::Stopped);
    assert_eq!(p.pages, 3, "{p:?}");
    let first = agent1.store().get_record("200000000000").unwrap();
    assert!(first.is_some(), "the first page is kept");
    assert!(agent1.store().get_record("200000001999").unwrap().is_none());
    let cursor = agent1.store().prefetch_cursor("EVENT01").unwrap().unwrap();
    assert_eq!((cursor.pages, cursor.complete), (3, false), "{cursor:?}");
    agent1.shutdown();

    // A restart: the same store, a new process's agent.
    let (agent2, _) = agent(&sb, dir.path(), &clock);
    let calls_before = sb.stats().calls_by_command.get("get_av_barcodes").copied();
    let progress = Progress::default();
    // The minute is waited out now (on the injected clock): no error, no restart; and
    // the wait is reported as it goes (what `cache prefetch` prints on a terminal).
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let mut show = |p: &concession_agent::agent::prefetch::PrefetchProgress| seen.push(p.clone());
    let mut run = PrefetchRun {
        reserve_per_minute: None,
        stop: &stop,
        progress: &progress,
        max_wait: Duration::from_secs(120),
        stamp_ms: None,
        on_progress: Some(&mut show),
    };
    let summary =
        prefetch::prefetch_event_paged(agent2.ats(), agent2.store(), &event01(), &mut run).unwrap();
    assert!(
        seen.iter()
            .any(|p| p.state == PrefetchState::Waiting && p.wait_ms > 0 && p.pages == 3),
        "{seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (last.state, last.pages, last.resumed),
        (PrefetchState::Done, 5, true)
    );
    assert!(progress.snapshot().completed_ms.is_some());
    assert!(summary.resumed, "{summary:?}");
    assert_eq!(summary.pages, 5, "{summary:?}");
    assert_eq!(summary.tickets, 2_000 + 5, "{summary:?}");
    let calls_after = sb.stats().calls_by_command.get("get_av_barcodes").copied();
    // Two more pages, and at most one refused call per minute waited: the three
    // pages written before the 429 were not fetched again.
    let fetched = calls_after.unwrap_or(0) - calls_before.unwrap_or(0);
    assert!(fetched <= 4, "{fetched} listing calls after the restart");
    assert!(
        clock.elapsed() >= Duration::from_secs(50),
        "the minute was waited out"
    );
    // The summary says how long (`cache prefetch`'s last line).
    assert!(
        summary.waited >= Duration::from_secs(50) && summary.waited <= clock.elapsed(),
        "{summary:?}"
    );
    assert!(agent2.store().get_record("200000001999").unwrap().is_some());
    let cursor = agent2.store().prefetch_cursor("EVENT01").unwrap().unwrap();
    assert!(cursor.complete, "{cursor:?}");
    agent2.shutdown();
}

/// Issue 11, item 10: the event listing leaves out void tickets, so a ticket voided
/// after prefetch stayed approvable from cache for up to `cache.fresh_ms`. A completed
/// listing that no longer lists it retires it: online it is asked about (and denied),
/// offline it is unknown. A pass cut off before the end retires nothing.
#[test]
fn a_ticket_missing_from_a_fresh_listing_is_not_approved_from_cache() {
    let clock = ManualClock::new(START_MS);
    let sb = sandbox(&clock, 1_000, 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, _) = agent(&sb, dir.path(), &clock);
    let progress = Progress::default();
    run_prefetch(&agent, &progress, Duration::ZERO).unwrap();
    let voided = "200000000500";
    sb.void_ticket(voided).unwrap();
    clock.advance(Duration::from_secs(1));

    // A pass cut off (a 429 after one page) has not seen the whole event: nothing is
    // retired, the record is still the one from the completed pass.
    sb.set_faults(concession_agent::sandbox::Faults {
        rate_per_minute: Some(1),
        ..Default::default()
    });
    assert!(run_prefetch(&agent, &progress, Duration::ZERO).is_err());
    assert!(agent.store().get_record(voided).unwrap().is_some());
    sb.set_faults(Default::default());
    clock.advance(Duration::from_secs(61));

    // The pass completes: the voided ticket was not in it.
    run_prefetch(&agent, &progress, Duration::ZERO).unwrap();
    assert!(agent.store().get_record(voided).unwrap().is_none());
    assert!(agent.store().get_record("200000000499").unwrap().is_some());

    let calls = sb.stats().calls_by_command.get("verify_barcode").copied();
    let d = scan(&mut agent, &clock, voided);
    assert_eq!(d.decision.as_str(), "deny", "{d:?}");
    assert_eq!(
        d.source, "live",
        "asked ATS instead of trusting the cache: {d:?}"
    );
    assert!(sb.stats().calls_by_command.get("verify_barcode").copied() > calls);

    agent.force_mode(Mode::Offline);
    let d = scan(&mut agent, &clock, voided);
    assert_eq!(d.decision.as_str(), "deny", "{d:?}");
    // A listed neighbour is still approved from cache offline.
    let d = scan(&mut agent, &clock, "200000000499");
    assert_eq!(d.decision.as_str(), "approve", "{d:?}");
    agent.shutdown();
}

/// An interrupted `cache prefetch` ended with status 1 and the words of a failure, though
/// nothing had failed: it now ends with its own status (75, `EX_TEMPFAIL`) and a last
/// line saying how far it got, and what it says it kept is in the store.
#[test]
fn an_interrupted_cache_prefetch_exits_75_and_keeps_the_pages_it_names() {
    use std::io::Read;
    // The sandbox's clock stands still: after 3 calls its minute never reopens, so the
    // agent waits on the 429 until it is told to stop.
    let clock = ManualClock::new(START_MS);
    let sb = sandbox(&clock, 2_000, 3);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let config_file = dir.path().join("agent.toml");
    std::fs::write(
        &config_file,
        format!(
            "terminal_id = \"test-stand\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
             [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\nrate_per_minute = 10000\n\
             rate_per_day = 1000000\n[scanner]\nkind = \"none\"\n",
            store = store_dir.display().to_string(),
            url = sb.base_url(),
        ),
    )
    .unwrap();
    let mut child = support::agent_command("warn")
        .arg("--config")
        .arg(&config_file)
        .args(["cache", "prefetch"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_for(Duration::from_secs(20), || {
        (sb.stats().status(429) > 0).then_some(())
    })
    .expect("the sandbox refused a call");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = support::wait_for(Duration::from_secs(20), || child.try_wait().unwrap())
        .expect("the prefetch ended after SIGTERM");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let words: Vec<&str> = last.split([' ', '(']).collect();
    assert!(
        last.starts_with("EVENT01: interrupted after page ")
            && last.ends_with(" tickets kept); the next prefetch resumes"),
        "{stderr}"
    );
    let pages: u64 = words[4].parse().unwrap();
    let tickets: u64 = words[6].parse().unwrap();
    assert!(pages >= 1 && tickets >= 500, "{last}");
    // `status` of the stopped stand says the same, from the store's cursor.
    let out = support::agent_command("warn")
        .arg("--config")
        .arg(&config_file)
        .args(["status", "--format", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(snap["mode"], "stopped", "{snap:#}");
    assert_eq!(
        (
            snap["prefetch"]["event"].as_str(),
            snap["prefetch"]["state"].as_str(),
            snap["prefetch"]["pages"].as_u64(),
            snap["prefetch"]["tickets"].as_u64()
        ),
        (Some("EVENT01"), Some("stopped"), Some(pages), Some(tickets)),
        "{snap:#}"
    );
    let config = support::config(&sb.base_url(), &store_dir, "");
    let store = app::open_store(&config).unwrap();
    let cursor = store.prefetch_cursor("EVENT01").unwrap().unwrap();
    assert_eq!(
        (cursor.pages, cursor.tickets, cursor.complete),
        (pages, tickets, false),
        "the cursor says what the line said: the next prefetch resumes after it"
    );
    assert!(store.cache_stats().unwrap().entries >= tickets);
}
