//! Venue mode, issue 12 item 10: a property test of random interleavings of stands,
//! voids and outages, against a real PostgreSQL.
//!
//! Three stands (in-process agents, each with its own store and its own [`Link`] to the
//! venue database) share four $10.00 tickets of one sandbox. A case is a random sequence
//! of scans (bare, or with a POS amount), voids of earlier approvals, and per-stand
//! outages (the stand's link refuses, or blackholes: accepts, never answers) and heals.
//! Properties:
//! - every decision comes within the deadline;
//! - **never more than the loaded value while connected**: per ticket, the approvals
//!   told `"venue":"committed"`, net of their voids, never exceed the ticket's $10.00;
//!   and in a case with no outage at all, nothing is ever pending and nothing overdraws;
//! - **every acknowledged decision exactly once**: after the links heal and each stand
//!   replays (`VenueHandle::sync`), the venue ledger holds every decision a POS was told,
//!   once, as told, and every entry of every stand's journal, once, and nothing else;
//! - per ticket, what the ledger shows spent beyond the loaded value is recorded as
//!   overdraft.
//!
//! Cases: `PROPTEST_CASES` (default 16; each case is a fresh database).
#![cfg(feature = "venue")]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::ats::AtsClient;
use concession_agent::clock::{self, SharedClock};
use concession_agent::config::{Config, RawConfig};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};
use concession_agent::signal::DecisionEvent;
use concession_agent::signal::VoidOutcome;
use concession_agent::store::{Format, Store, StoreOptions};
use concession_agent::venue::{self, RawVenue, VenueHandle, VenueSettings};
use proptest::prelude::*;
use serde_json::Value;

use support::pg::{self, Link, LinkMode};
use support::venue::{ticket, TICKET_CENTS};

const STANDS: usize = 3;
const TICKETS: usize = 4;
const DEADLINE_MS: u64 = 1000;
const VENUE_TIMEOUT_MS: u64 = 150;
const WAIT: Duration = Duration::from_secs(15);

/// What the cases exercised, summed (printed at the end: a property test that never
/// voided or cut a link proved less than it says).
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    decisions: usize,
    committed: usize,
    pending: usize,
    voids: usize,
    cuts: usize,
    ledger_rows: usize,
    overdraft_cents: i64,
}

static TALLY: std::sync::Mutex<Tally> = std::sync::Mutex::new(Tally {
    cases: 0,
    decisions: 0,
    committed: 0,
    pending: 0,
    voids: 0,
    cuts: 0,
    ledger_rows: 0,
    overdraft_cents: 0,
});

#[derive(Debug, Clone)]
enum Op {
    Scan {
        stand: usize,
        ticket: usize,
        amount: Option<u64>,
    },
    Void {
        stand: usize,
        pick: usize,
    },
    Cut {
        stand: usize,
        blackhole: bool,
    },
    Heal {
        stand: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let stand = 0..STANDS;
    prop_oneof![
        8 => (stand.clone(), 0..TICKETS, prop_oneof![Just(None), (1u64..=8).prop_map(|d| Some(d * 150))])
            .prop_map(|(stand, ticket, amount)| Op::Scan { stand, ticket, amount }),
        2 => (stand.clone(), any::<usize>()).prop_map(|(stand, pick)| Op::Void { stand, pick }),
        2 => (stand.clone(), any::<bool>()).prop_map(|(stand, blackhole)| Op::Cut { stand, blackhole }),
        2 => stand.prop_map(|stand| Op::Heal { stand }),
    ]
}

/// A case: the ops, and whether outages are allowed at all (a third of the cases
/// have none, for the "no overdraft while connected" check).
fn case() -> impl Strategy<Value = (Vec<Op>, bool)> {
    (
        prop::collection::vec(op(), 12..40),
        prop::bool::weighted(0.67),
    )
}

struct Rig {
    agent: Option<Agent>,
    link: Link,
    config: Config,
    dir: PathBuf,
    /// Approvals told, not voided: (id, ticket index, committed?).
    approvals: Vec<(String, usize, bool)>,
}

fn stand_config(ats: &str, dir: &std::path::Path, terminal: &str, venue_url: &str) -> Config {
    let text = format!(
        "store_dir = {store:?}\nterminal_id = {terminal:?}\ndeadline_ms = {DEADLINE_MS}\n\
         [cache]\nprefetch_at_start = false\n\
         [venue]\nurl = {venue_url:?}\ntimeout_ms = {VENUE_TIMEOUT_MS}\n",
        store = dir.join("store").display().to_string(),
    );
    let mut raw = RawConfig::parse(&text, std::path::Path::new("venue_props")).unwrap();
    raw.ats.url = Some(ats.to_string());
    raw.ats.apikey = Some("sandbox-key".into());
    raw.ats.rate_per_minute = Some(10_000);
    raw.ats.rate_per_day = Some(10_000_000);
    Config::from_raw(raw).expect("stand config validates")
}

fn start_agent(config: &Config, clock: &SharedClock, ats: &Arc<AtsClient>) -> Agent {
    let store = app::open_store(config).expect("store opens");
    let outputs = Outputs {
        signals: Vec::new(),
    };
    let venue = app::start_venue(config, &store).expect("venue worker starts");
    let mut agent = Agent::new(
        config.clone(),
        Arc::clone(ats),
        store,
        clock.clone(),
        outputs,
    );
    agent.set_venue(venue);
    agent
}

fn settings(url: &str) -> VenueSettings {
    VenueSettings::from_raw(RawVenue {
        url: Some(url.into()),
        timeout_ms: Some(5000),
        ..RawVenue::default()
    })
    .unwrap()
}

fn scan_event(clock: &SharedClock, barcode: &str, amount: Option<u64>) -> ScanEvent {
    ScanEvent {
        input: classify(barcode),
        amount_cents: amount,
        request_id: None,
        received_at_ms: clock.wall_ms(),
        origin: Origin::Stdin,
    }
}

fn run_case(cluster: &pg::Cluster, ops: &[Op], outages: bool) -> Result<(), TestCaseError> {
    let db = cluster.fresh_db();
    let sb = support::venue::sandbox(TICKETS);
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock::system();
    let mut rigs: Vec<Rig> = (0..STANDS)
        .map(|i| {
            let link = Link::start(cluster.port());
            let dir = tmp.path().join(format!("stand-{i}"));
            let config = stand_config(&sb.base_url(), &dir, &format!("stand-{i}"), &link.url(&db));
            Rig {
                agent: None,
                link,
                config,
                dir,
                approvals: Vec::new(),
            }
        })
        .collect();
    let ats_link = app::connect_ats(&rigs[0].config, clock.clone()).expect("ATS client");
    for r in &mut rigs {
        r.agent = Some(start_agent(&r.config, &clock, &ats_link.client));
    }

    let mut told: Vec<(usize, DecisionEvent)> = Vec::new();
    let mut cut_ever = false;
    let mut voids = 0usize;
    let mut cuts = 0usize;
    for op in ops {
        match *op {
            Op::Scan {
                stand,
                ticket: t,
                amount,
            } => {
                let r = &mut rigs[stand];
                let ev = scan_event(&clock, &ticket(t), amount);
                let d = r
                    .agent
                    .as_mut()
                    .unwrap()
                    .handle_scan(&ev)
                    .map_err(|e| TestCaseError::fail(format!("scan failed: {e}")))?;
                prop_assert!(
                    d.latency_ms <= DEADLINE_MS,
                    "decision {} took {} ms",
                    d.id,
                    d.latency_ms
                );
                let committed = d.venue.as_deref() == Some("committed");
                prop_assert!(
                    committed || d.venue.as_deref() == Some("pending"),
                    "venue mark {:?}",
                    d.venue
                );
                if !cut_ever {
                    prop_assert!(committed, "pending with every link up: {d:?}");
                }
                if d.approved_cents > 0 {
                    r.approvals.push((d.id.clone(), t, committed));
                }
                told.push((t, d));
            }
            Op::Void { stand, pick } => {
                let r = &mut rigs[stand];
                if r.approvals.is_empty() {
                    continue;
                }
                let (id, _, _) = r.approvals.remove(pick % r.approvals.len());
                let v = r.agent.as_mut().unwrap().handle_void(&id, None);
                prop_assert_eq!(v.outcome, VoidOutcome::Voided, "void of {}: {:?}", id, v);
                voids += 1;
            }
            Op::Cut { stand, blackhole } if outages => {
                cut_ever = true;
                cuts += 1;
                rigs[stand].link.set(if blackhole {
                    LinkMode::Blackhole
                } else {
                    LinkMode::Refuse
                });
            }
            Op::Heal { stand } => rigs[stand].link.set(LinkMode::Pass),
            Op::Cut { .. } => {}
        }
    }

    // Heal, stop, replay each stand's journal, read the ledger.
    for r in &rigs {
        r.link.set(LinkMode::Pass);
    }
    for r in &mut rigs {
        r.agent.take().unwrap().shutdown();
    }
    let mut journals: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rigs {
        let store = Store::open(
            &r.dir.join("store"),
            StoreOptions {
                terminal_id: r.config.terminal_id.clone(),
                ..StoreOptions::default()
            },
        )
        .expect("store reopens");
        for e in store.journal_since(None).unwrap() {
            *journals.entry(e.unwrap().id).or_default() += 1;
        }
        let h = VenueHandle::start(settings(&db), store).expect("venue worker");
        let report = h
            .sync(WAIT)
            .map_err(|e| TestCaseError::fail(format!("sync: {e}")))?;
        prop_assert_eq!(report.pending, 0, "left after sync: {:?}", report);
        h.shutdown(WAIT);
    }
    let mut out = Vec::new();
    venue::export_now(&settings(&db), "venue_props", Format::Jsonl, None, &mut out)
        .map_err(|e| TestCaseError::fail(format!("export: {e}")))?;
    let rows: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // Exactly once: the ledger is the union of the journals.
    let mut in_ledger: BTreeMap<String, &Value> = BTreeMap::new();
    for row in &rows {
        let id = row["id"].as_str().unwrap().to_string();
        prop_assert!(
            in_ledger.insert(id.clone(), row).is_none(),
            "{} twice in the ledger",
            id
        );
    }
    for id in journals.keys() {
        prop_assert!(
            in_ledger.contains_key(id),
            "journal entry {} not in the ledger",
            id
        );
    }
    prop_assert_eq!(
        in_ledger.len(),
        journals.len(),
        "ledger rows not in any journal"
    );
    for (_, d) in &told {
        let row = in_ledger.get(&d.id);
        prop_assert!(
            row.is_some(),
            "acknowledged {} missing from the ledger",
            d.id
        );
        let row = row.unwrap();
        prop_assert_eq!(
            row["approved_cents"].as_u64().unwrap_or(0),
            d.approved_cents
        );
    }

    // Never more than loaded while connected: committed approvals net of their voids.
    let voided: BTreeMap<&str, i64> = rows
        .iter()
        .filter(|r| support::venue::is_void(r))
        .filter_map(|r| Some((r["void_of"].as_str()?, -support::venue::net_cents(r))))
        .collect();
    let mut committed_net = [0i64; TICKETS];
    let mut total_net: BTreeMap<String, i64> = BTreeMap::new();
    let mut overdraft: BTreeMap<String, i64> = BTreeMap::new();
    for (t, d) in &told {
        if d.venue.as_deref() == Some("committed") && d.approved_cents > 0 {
            committed_net[*t] +=
                d.approved_cents as i64 - voided.get(d.id.as_str()).copied().unwrap_or(0);
        }
    }
    for row in &rows {
        let b = row["barcode"].as_str().unwrap_or_default().to_string();
        *total_net.entry(b.clone()).or_default() += support::venue::net_cents(row);
        *overdraft.entry(b).or_default() += row["overdraft_cents"].as_i64().unwrap_or(0);
    }
    for (t, net) in committed_net.iter().enumerate() {
        prop_assert!(
            *net <= TICKET_CENTS as i64,
            "ticket {}: {} cents approved as committed (net of voids) of {} loaded",
            t,
            net,
            TICKET_CENTS
        );
    }
    for (b, net) in &total_net {
        let o = overdraft.get(b).copied().unwrap_or(0);
        prop_assert!(
            *net <= TICKET_CENTS as i64 + o,
            "{}: {} spent, {} overdraft",
            b,
            net,
            o
        );
        if !cut_ever {
            prop_assert_eq!(o, 0, "overdraft with every stand connected");
        }
    }
    let mut t = TALLY.lock().unwrap();
    t.cases += 1;
    t.decisions += told.len();
    t.committed += told
        .iter()
        .filter(|(_, d)| d.venue.as_deref() == Some("committed"))
        .count();
    t.pending += told
        .iter()
        .filter(|(_, d)| d.venue.as_deref() == Some("pending"))
        .count();
    t.voids += voids;
    t.cuts += cuts;
    t.ledger_rows += rows.len();
    t.overdraft_cents += overdraft.values().sum::<i64>();
    drop(t);
    drop(sb);
    Ok(())
}

#[test]
fn random_interleavings_of_stands_voids_and_outages_keep_the_venue_ledger_exact() {
    let Some(cluster) = pg::shared("venue_props") else {
        return;
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |(ops, outages)| run_case(cluster, &ops, outages))
        .unwrap();
    let t = TALLY.lock().unwrap();
    eprintln!("VENUE PROPS: {:?}", *t);
    assert!(
        t.voids > 0 && t.cuts > 0 && t.pending > 0,
        "the cases exercised too little: {t:?}"
    );
}
