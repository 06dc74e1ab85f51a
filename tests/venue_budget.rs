//! One budget for the key (issue 13, item 1; docs/venue.md, "One budget for the key"),
//! against a real PostgreSQL and real terminal processes on one ATS sandbox that
//! enforces its real per-minute limit.
//!
//! The hole this closes, measured on main: four terminals on one key (80 calls a minute)
//! spent it within seconds, six answers 429, and 152 of the next 160 scans of funded
//! tickets were denied `offline_unknown`. Each terminal kept its own budget of the whole
//! key. Here the stands draw from one budget in the venue database, and keep to a static
//! share (`venue.stands`) when the database is away.
#![cfg(feature = "venue")]

mod support;

use std::time::{Duration, Instant};

use concession_agent::sandbox::{DataSet, SandboxConfig, SandboxHandle};
use concession_agent::venue::budget::key_hash;
use concession_agent::venue::{RawVenue, VenueSettings};
use support::pg;
use support::venue::{self, Decision, Stand, StandConfig};

/// A sandbox with `tickets` generated tickets that answers 429 past `per_minute` calls.
fn limited_sandbox(tickets: usize, per_minute: u32) -> SandboxHandle {
    let mut data = DataSet::builtin();
    data.generate(tickets);
    support::sandbox_with(SandboxConfig {
        data,
        rate_per_minute: per_minute,
        rate_per_day: 100_000,
        ..SandboxConfig::default()
    })
}

/// `n` stands on `sb` and `db`, `venue.stands = n`, the key's limit `per_minute`.
fn stands(
    dir: &std::path::Path,
    sb: &SandboxHandle,
    db: &str,
    n: usize,
    per_minute: u32,
    cache: &str,
) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|i| {
            let name = format!("stand-{}", i + 1);
            let mut c = StandConfig::new(&name, &sb.base_url(), db);
            c.rate_per_minute = per_minute;
            c.deadline_ms = 2000;
            c.venue_extra = format!("stands = {n}\nstart_timeout_ms = 1000\n");
            c.cache_extra = cache.to_string();
            c.write(&dir.join(name))
        })
        .collect()
}

fn approved(ds: &[Decision]) -> usize {
    ds.iter().filter(|d| d.approve).count()
}

/// Each stand scans its own list closed-loop (distinct tickets: every scan needs ATS).
fn scan_lists(stands: Vec<Stand>, lists: Vec<Vec<String>>) -> Vec<Stand> {
    let progress = std::sync::atomic::AtomicUsize::new(0);
    venue::scan_all(stands, lists, Duration::from_secs(10), &progress)
}

fn finish(stands: &mut [Stand]) {
    for s in stands {
        assert!(
            s.finish(Duration::from_secs(20)),
            "{} did not stop cleanly:\n{}",
            s.config.display(),
            s.stderr()
        );
    }
}

/// A new database of `cluster`, migrated; its URL and the sandbox key's hash.
fn migrated_db(cluster: &pg::Cluster) -> (String, String) {
    let url = cluster.fresh_db();
    let settings = VenueSettings::from_raw(RawVenue {
        url: Some(url.clone()),
        ..RawVenue::default()
    })
    .unwrap();
    concession_agent::venue::migrate_now(&settings, "test").expect("migrates");
    (url, key_hash("sandbox-key"))
}

#[test]
fn claims_of_several_stands_never_grant_more_than_the_key_and_keep_the_scans_reserve() {
    let Some(cluster) = pg::shared("venue_budget") else {
        return;
    };
    let (url, key) = migrated_db(cluster);
    // (terminal, used, keep, want_scan, want_any) on a key of 20 a minute, 8 reserved.
    let claim = |terminal: &str, used: u32, keep: u32, scan: u32, any: u32| -> Vec<u32> {
        let out = cluster.psql(
            &url,
            &format!(
                "SELECT * FROM venue_ats_claim('{key}', '{terminal}', 20, 5000, 8, 2000, \
                 {used}, 0, {keep}, 0, {scan}, {any}, 5000)"
            ),
        );
        // The five counts (the sixth column says whether a first pass is under way).
        out.split('|').take(5).map(|v| v.parse().unwrap()).collect()
    };
    // Background takes the key down to its reserve, and no further.
    assert_eq!(claim("a", 0, 0, 0, 100), vec![0, 12, 8, 4988, 1]);
    assert_eq!(
        claim("b", 0, 0, 0, 5)[..2],
        [0, 0],
        "the reserve is the scans'"
    );
    // Scans may take the reserve, never beyond the key.
    assert_eq!(claim("b", 0, 0, 5, 0)[..3], [5, 0, 3]);
    assert_eq!(claim("c", 0, 0, 10, 0)[..4], [3, 0, 0, 4980]);
    assert_eq!(
        claim("d", 0, 0, 1, 0)[..2],
        [0, 0],
        "the key's minute is spent"
    );
    // `a` used 3 of its 12 and keeps none: the 9 it did not use go back to the key.
    let back = claim("a", 3, 0, 0, 0);
    assert_eq!(back[2], 9, "20 - 3 used - 5 (b) - 3 (c) held");
    assert_eq!(back[4], 4, "four stands seen on the key");
    assert_eq!(claim("d", 0, 0, 20, 0)[..2], [9, 0]);
    // The key itself is nowhere in the database, only its hash.
    let keys = cluster.psql(&url, "SELECT key_hash FROM venue_ats_keys");
    assert_eq!(keys, key);
    let dump = cluster.psql(
        &url,
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM venue_ats_keys) t",
    );
    assert!(!dump.contains("sandbox-key"), "{dump}");
}

#[test]
fn during_a_first_pass_scans_keep_to_the_reserve_and_the_pass_gets_the_rest() {
    let Some(cluster) = pg::shared("venue_budget") else {
        return;
    };
    let (url, key) = migrated_db(cluster);
    // (terminal, used, used for scans, want_scan, want_any) on a key of 20 a minute, 8
    // reserved; answers (scan, any, minute left, first pass).
    let claim = |terminal: &str, used: u32, used_scan: u32, scan: u32, any: u32| {
        let out = cluster.psql(
            &url,
            &format!(
                "SELECT scan, any_calls, minute_left, first_pass FROM venue_ats_claim(\
                 '{key}', '{terminal}', 20, 5000, 8, 2000, {used}, {used_scan}, 0, 0, \
                 {scan}, {any}, 5000)"
            ),
        );
        let f: Vec<&str> = out.split('|').collect();
        let n = |i: usize| f[i].parse::<u32>().unwrap();
        (n(0), n(1), n(2), f[3] == "t")
    };
    // Stand `a` holds the event's lease before any pass started: no first pass yet.
    cluster.psql(
        &url,
        "INSERT INTO venue_fetch_leases (event, holder, expires_at) \
         VALUES ('event01', 'a', now() + interval '1 minute')",
    );
    assert!(!claim("x", 0, 0, 0, 0).3, "a lease alone is no pass");
    // Its first pass starts.
    cluster.psql(&url, "UPDATE venue_fetch_leases SET pass_complete = false");
    assert_eq!(
        claim("b", 0, 0, 10, 0),
        (8, 0, 12, true),
        "scans: the reserve"
    );
    assert_eq!(
        claim("c", 0, 0, 4, 0),
        (0, 0, 12, true),
        "the reserve is held"
    );
    assert_eq!(
        claim("a", 0, 0, 0, 100),
        (0, 12, 0, true),
        "the pass: the rest"
    );
    // `b` used 6 for scans and gives the rest back: 2 of the reserve are free again.
    assert_eq!(claim("b", 6, 6, 0, 0), (0, 0, 2, true));
    assert_eq!(claim("c", 0, 0, 4, 0), (2, 0, 0, true));
    // The pass completes: scans come first again, the reserve is theirs as before.
    cluster.psql(
        &url,
        "UPDATE venue_fetch_leases SET pass_complete = true, last_complete_pass_ms = 1",
    );
    assert!(!claim("d", 0, 0, 0, 0).3);
    // A lease that ended (its holder went away) is no first pass either.
    cluster.psql(
        &url,
        "UPDATE venue_fetch_leases SET last_complete_pass_ms = NULL, \
         expires_at = now() - interval '1 second'",
    );
    assert!(!claim("d", 0, 0, 0, 0).3);
}

#[test]
fn four_stands_on_one_key_never_exceed_its_limit_while_each_scans() {
    let Some(cluster) = pg::shared("venue_budget") else {
        return;
    };
    const N: usize = 4;
    const LIMIT: u32 = 40;
    const PER_STAND: usize = 25;
    let db = cluster.fresh_db();
    let sb = limited_sandbox(N * PER_STAND, LIMIT);
    let tmp = tempfile::tempdir().unwrap();
    let configs = stands(
        tmp.path(),
        &sb,
        &db,
        N,
        LIMIT,
        "budget_reserve_per_minute = 8\n",
    );
    let t0 = Instant::now();
    let mut running: Vec<Stand> = configs.iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut running {
        s.wait_serving(Duration::from_secs(20));
    }
    // Each stand alone would spend the whole key (its own budget is the key's 40): 100
    // scans of uncached tickets want 200 calls.
    let lists: Vec<Vec<String>> = (0..N)
        .map(|i| {
            (0..PER_STAND)
                .map(|j| venue::ticket(i * PER_STAND + j))
                .collect()
        })
        .collect();
    let mut running = scan_lists(running, lists);
    let elapsed = t0.elapsed();
    let stats = sb.stats();
    finish(&mut running);
    assert_eq!(stats.status(429), 0, "no answer 429: {stats:?}");
    assert!(
        elapsed < Duration::from_secs(55),
        "the run must fit the sandbox's minute window to count it: {elapsed:?}"
    );
    assert!(
        stats.total_requests <= u64::from(LIMIT),
        "{} calls at the sandbox, the key allows {LIMIT} a minute",
        stats.total_requests
    );
    for s in &running {
        assert_eq!(s.decisions.len(), PER_STAND, "one decision per scan");
        assert!(
            approved(&s.decisions) > 0,
            "{}: no scan got a live answer from the shared budget",
            s.config.display()
        );
    }
    eprintln!(
        "VENUE BUDGET: {N} stands, {} scans, {} ATS requests (limit {LIMIT}/min), {} \
         approved, 0 answers 429, {elapsed:?}",
        N * PER_STAND,
        stats.total_requests,
        running
            .iter()
            .map(|s| approved(&s.decisions))
            .sum::<usize>()
    );
}

#[test]
fn with_the_database_away_each_stand_keeps_to_its_static_share() {
    let Some(_) = pg::available("venue_budget_away") else {
        return;
    };
    const N: usize = 3;
    const LIMIT: u32 = 30;
    const PER_STAND: usize = 20;
    // Nothing listens there: the venue database is away from the start.
    let db = format!("postgres://terminal@127.0.0.1:{}/venue", pg::free_port());
    let sb = limited_sandbox(N * PER_STAND, LIMIT);
    let tmp = tempfile::tempdir().unwrap();
    let configs = stands(
        tmp.path(),
        &sb,
        &db,
        N,
        LIMIT,
        "budget_reserve_per_minute = 4\n",
    );
    let t0 = Instant::now();
    let lists: Vec<Vec<String>> = (0..N)
        .map(|i| {
            (0..PER_STAND)
                .map(|j| venue::ticket(i * PER_STAND + j))
                .collect()
        })
        .collect();
    // The first stand alone: its share is 30 / 3 = 10 calls, start-up ping included.
    let mut first = Stand::spawn(&configs[0]);
    first.wait_serving(Duration::from_secs(20));
    let mut first = scan_lists(vec![first], vec![lists[0].clone()]);
    let alone = sb.stats();
    assert!(
        alone.total_requests <= u64::from(LIMIT) / N as u64,
        "one stand made {} calls, its share is {}",
        alone.total_requests,
        LIMIT / N as u32
    );
    assert!(approved(&first[0].decisions) > 0, "it used its share");
    // Then the others join: together, never more than the key.
    let mut others: Vec<Stand> = configs[1..].iter().map(|c| Stand::spawn(c)).collect();
    for s in &mut others {
        s.wait_serving(Duration::from_secs(20));
    }
    let mut others = scan_lists(others, lists[1..].to_vec());
    let elapsed = t0.elapsed();
    let stats = sb.stats();
    finish(&mut first);
    finish(&mut others);
    assert_eq!(stats.status(429), 0, "no answer 429: {stats:?}");
    assert!(elapsed < Duration::from_secs(55), "{elapsed:?}");
    assert!(
        stats.total_requests <= u64::from(LIMIT),
        "{} calls with the database away, the key allows {LIMIT}",
        stats.total_requests
    );
    for s in first.iter().chain(&others) {
        assert!(
            s.decisions
                .iter()
                .all(|d| d.venue.as_deref() == Some("pending")),
            "the database is away: every decision is pending"
        );
        assert!(approved(&s.decisions) > 0, "{}", s.config.display());
    }
    eprintln!(
        "VENUE BUDGET AWAY: {N} stands, first alone {} calls, all {} calls (limit \
         {LIMIT}/min, share {}), 0 answers 429",
        alone.total_requests,
        stats.total_requests,
        LIMIT / N as u32
    );
}

#[test]
fn the_scan_reserve_holds_venue_wide_while_a_prefetch_runs() {
    let Some(cluster) = pg::shared("venue_budget") else {
        return;
    };
    const LIMIT: u32 = 40;
    const RESERVE: u32 = 12;
    let db = cluster.fresh_db();
    // 30,000 tickets: far more pages than the minute allows.
    let sb = limited_sandbox(30_000, LIMIT);
    let tmp = tempfile::tempdir().unwrap();
    let reserve = format!("budget_reserve_per_minute = {RESERVE}\n");
    let mut configs = stands(tmp.path(), &sb, &db, 2, LIMIT, &reserve);
    // Stand 1 prefetches the event at start (background); stand 2 only scans.
    configs[0] = {
        let mut c = StandConfig::new("stand-1", &sb.base_url(), &db);
        c.rate_per_minute = LIMIT;
        c.deadline_ms = 2000;
        c.venue_extra = "stands = 2\nstart_timeout_ms = 1000\n".into();
        c.cache_extra = format!("prefetch_at_start = true\n{reserve}");
        c.write(&tmp.path().join("stand-1-prefetch"))
    };
    let mut prefetcher = Stand::spawn(&configs[0]);
    prefetcher.wait_serving(Duration::from_secs(20));
    // The prefetch takes what the key leaves above the reserve, then waits.
    // (Its own scan calls in hand and its start-up ping come out of the same share.)
    let busy = support::wait_for(Duration::from_secs(20), || {
        (sb.stats().total_requests >= u64::from(LIMIT - RESERVE - 6)).then_some(())
    });
    assert!(busy.is_some(), "the prefetch ran: {:?}", sb.stats());
    let mut scanner = Stand::spawn(&configs[1]);
    scanner.wait_serving(Duration::from_secs(20));
    // Five scans of tickets the scanner has not cached: two calls each, within the
    // reserve the prefetch left.
    let mut decisions = Vec::new();
    for i in 0..5 {
        decisions.push(scanner.decide(&venue::ticket(29_000 + i), Duration::from_secs(10)));
    }
    let stats = sb.stats();
    drop(prefetcher);
    assert!(
        scanner.finish(Duration::from_secs(20)),
        "{}",
        scanner.stderr()
    );
    assert_eq!(stats.status(429), 0, "{stats:?}");
    assert!(stats.total_requests <= u64::from(LIMIT), "{stats:?}");
    eprintln!(
        "VENUE BUDGET RESERVE: {} ATS requests (limit {LIMIT}/min, reserve {RESERVE}), \
         5 scans during the prefetch, {} approved",
        stats.total_requests,
        decisions.iter().filter(|d| d.approve).count()
    );
    let denied: Vec<_> = decisions.iter().filter(|d| !d.approve).collect();
    assert!(
        denied.is_empty(),
        "every scan got its live answer from the reserve while the prefetch ran: {:?}",
        denied.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
}

#[test]
fn a_terminal_role_with_only_the_documented_grants_claims_the_keys_budget() {
    use concession_agent::ats::shared_budget::{BudgetMode, SharePlan, SharedBudget};
    use concession_agent::store::{Store, StoreOptions};
    use concession_agent::venue::budget::BudgetLink;
    use concession_agent::venue::VenueHandle;
    use std::sync::Arc;

    let Some(cluster) = pg::shared("venue_budget") else {
        return;
    };
    let url = cluster.fresh_db();
    let db = url.rsplit('/').next().unwrap().to_string();
    let role = format!("terminal_{db}");
    let settings = |url: &str| {
        VenueSettings::from_raw(RawVenue {
            url: Some(url.into()),
            ..RawVenue::default()
        })
        .unwrap()
    };
    concession_agent::venue::migrate_now(&settings(&url), "owner").unwrap();
    // The grants of docs/venue.md, "What venue IT sets up".
    cluster.psql(
        &url,
        &format!(
            "CREATE ROLE {role} LOGIN;
             REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON venue_migrations TO {role};
             GRANT SELECT, INSERT, UPDATE ON venue_lines TO {role};
             GRANT SELECT, INSERT ON venue_decisions TO {role};
             GRANT USAGE ON SEQUENCE venue_decisions_seq_seq TO {role};
             GRANT SELECT, INSERT, UPDATE ON venue_ats_keys TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON venue_ats_allowances, venue_ats_calls TO {role};
             GRANT SELECT, INSERT, UPDATE ON venue_heartbeats TO {role};
             GRANT SELECT, INSERT, UPDATE ON venue_fetch_leases, venue_tickets, venue_fetch_copies TO {role};
             GRANT USAGE ON SEQUENCE venue_tickets_change TO {role};"
        ),
    );
    let as_terminal = url.replacen(&format!("{}@", pg::USER), &format!("{role}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            terminal_id: "t".into(),
            machine_id: None,
            min_free_bytes: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let plan = SharePlan {
        per_minute: 80,
        per_day: 5000,
        stands: 4,
        reserve_per_minute: 10,
    };
    let issuer = store.id_prefix().to_string();
    let budget = Arc::new(SharedBudget::new(plan, concession_agent::clock::system()));
    assert_eq!(
        budget.mode(),
        BudgetMode::Share,
        "not reached yet: its share"
    );
    let link = BudgetLink::new(Arc::clone(&budget), "sandbox-key", plan);
    let v = VenueHandle::start_with_budget(settings(&as_terminal), store, Some(link)).unwrap();
    v.start_up(true, Duration::from_secs(10)).unwrap();
    assert_eq!(
        budget.mode(),
        BudgetMode::Venue,
        "the first claim came before serving"
    );
    assert_eq!(budget.allowance(), (2, 0), "an idle stand holds one lookup");
    assert_eq!(v.budget_left(), Some((78, 4998)));
    assert_eq!(
        cluster.psql(
            &url,
            "SELECT terminal || ':' || calls FROM venue_ats_allowances"
        ),
        format!("{issuer}:2")
    );
    v.shutdown(Duration::from_secs(2));
}
