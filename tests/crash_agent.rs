//! Crashes: the real agent binary, SIGKILLed at random moments under a stream of scans.
//!
//! Each trial starts `concession-agent --config F run --pos jsonl` against a sandbox in
//! this process, feeds it scans on stdin (fresh tickets, plus tickets whose approval the
//! POS already received, which must now be denied), reads its JSON lines as a POS would,
//! and SIGKILLs it either after a random number of decisions or after a random delay
//! (which lands anywhere: store open, prefetch, mid-scan). Then:
//!
//! - the store opens (sled has open reports of databases that do not reopen);
//! - every decision the POS received, approvals first of all, is in the journal exactly
//!   once, with the same verdict and amount;
//! - the journal has no duplicate and no gap; no ticket was redeemed twice across crashes.
//!
//! All trials share one store, so later trials open a database that survived every
//! earlier kill. `CRASH_TRIALS` sets the number of trials (default 20); RELIABILITY.md
//! records a 100+ run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concession_agent::decide::Verdict;
use concession_agent::sandbox::{DataSet, SandboxConfig};
use concession_agent::store::{JournalEntry, Store, StoreOptions};
use serde_json::Value;
use support::fixtures::Rng;

const FRESH_PER_TRIAL: usize = 30;
const RESCANS_PER_TRIAL: usize = 5;
/// Time between two scans on stdin.
const SCAN_PACE: Duration = Duration::from_millis(4);

fn trials() -> usize {
    std::env::var("CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Kills the child if the test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One decision line as the POS received it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    barcode: String,
    approve: bool,
    cents: u64,
    reason: String,
}

fn parse(line: &str) -> Option<Received> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["type"] != "decision" {
        return None;
    }
    Some(Received {
        id: v["id"].as_str()?.to_string(),
        barcode: v["barcode"].as_str()?.to_string(),
        approve: v["decision"] == "approve",
        cents: v["approved_cents"].as_u64()?,
        reason: v["reason"].as_str()?.to_string(),
    })
}

fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let store = dir.join("store");
    std::fs::write(
        &path,
        format!(
            "terminal_id = \"crash-stand\"\n\
             store_dir = {store:?}\n\
             deadline_ms = 2000\n\
             events = [\"EVENT01\"]\n\
             [ats]\n\
             url = {url:?}\n\
             apikey = \"sandbox-key\"\n\
             rate_per_minute = 10000\n\
             rate_per_day = 10000000\n\
             [cache]\n\
             prefetch_at_start = true\n\
             [pos]\n\
             output = \"jsonl\"\n",
            store = store.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn agent() -> Command {
    support::agent_command("warn")
}

fn opts() -> StoreOptions {
    StoreOptions {
        terminal_id: "crash-stand".into(),
        ..StoreOptions::default()
    }
}

#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    killed_after_decisions: usize,
    killed_after_delay: usize,
    killed_before_first_decision: usize,
    decisions_received: usize,
    approvals_received: usize,
    rescans_denied: usize,
    /// Decisions journaled that the POS never received (killed between commit and
    /// signal): allowed, they are in the journal for reconciliation.
    journaled_not_received: usize,
    journal_entries: usize,
    /// Deny reasons of the decisions received.
    denies: BTreeMap<String, usize>,
}

#[test]
fn every_approval_the_pos_received_survives_sigkill_exactly_once() {
    let trials = trials();
    let tickets = trials * FRESH_PER_TRIAL + 10;
    let mut data = DataSet::builtin();
    data.generate(tickets);
    let sb = support::sandbox_with(SandboxConfig {
        data,
        rate_per_minute: 10_000,
        rate_per_day: 10_000_000,
        ..SandboxConfig::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &sb.base_url());
    let store_dir = tmp.path().join("store");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_ticket = 0usize;
    // Full barcode by masked barcode is ambiguous; keep what was fed per trial instead.
    let mut approved_tickets: Vec<String> = Vec::new();
    let mut received_all: Vec<Received> = Vec::new();
    let mut tally = Tally::default();

    for trial in 0..trials {
        // The scans of this trial: fresh tickets with a few re-scans mixed in.
        let mut scans: Vec<String> = Vec::new();
        let mut rescans: BTreeSet<String> = BTreeSet::new();
        for i in 0..FRESH_PER_TRIAL {
            scans.push((200_000_000_000u64 + next_ticket as u64).to_string());
            next_ticket += 1;
            if i % (FRESH_PER_TRIAL / RESCANS_PER_TRIAL) == 0 && !approved_tickets.is_empty() {
                let pick = &approved_tickets[(rng.next() as usize) % approved_tickets.len()];
                rescans.insert(pick.clone());
                scans.push(pick.clone());
            }
        }

        let by_decisions = rng.next().is_multiple_of(2);
        let kill_after = (rng.next() % scans.len() as u64) as usize;
        let kill_delay = Duration::from_millis(rng.next() % 250);

        let mut child = Guard(
            agent()
                .arg("--config")
                .arg(&config)
                .args(["run", "--pos", "jsonl"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        let mut stdin = child.0.stdin.take().unwrap();
        // A stream at a scanner's pace (faster than any real line), so that kills land
        // during start-up, between scans and inside them.
        let lines = scans.clone();
        let (killed_tx, killed_rx) = crossbeam_channel::bounded::<()>(0);
        let writer = std::thread::spawn(move || {
            for s in lines {
                if writeln!(stdin, "{s}").and_then(|_| stdin.flush()).is_err() {
                    return; // killed
                }
                std::thread::sleep(SCAN_PACE);
            }
            // Keep stdin open until the kill: end of input would stop the agent cleanly.
            let _ = killed_rx.recv();
            drop(stdin);
        });
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut received: Vec<Received> = Vec::new();
        let deadline = started + Duration::from_secs(30);
        loop {
            if !by_decisions && started.elapsed() >= kill_delay {
                break;
            }
            if by_decisions && received.len() >= kill_after {
                break;
            }
            let wait = if by_decisions {
                deadline.saturating_duration_since(Instant::now())
            } else {
                kill_delay.saturating_sub(started.elapsed())
            };
            match rx.recv_timeout(wait) {
                Ok(line) => received.extend(parse(&line)),
                Err(_) if by_decisions => panic!(
                    "trial {trial}: only {} decisions in 30 s (wanted {kill_after})",
                    received.len()
                ),
                Err(_) => break,
            }
        }
        // SIGKILL.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        drop(killed_tx);
        writer.join().unwrap();
        // What was already in the pipe was printed before the kill: the POS got it.
        for line in rx.iter() {
            received.extend(parse(&line));
        }
        reader.join().unwrap();
        if by_decisions {
            tally.killed_after_decisions += 1;
        } else {
            tally.killed_after_delay += 1;
        }
        if received.is_empty() {
            tally.killed_before_first_decision += 1;
        }

        // The store opens after the kill.
        let store = Store::open(&store_dir, opts()).unwrap_or_else(|e| {
            panic!(
                "TRIAL {trial}: THE STORE DOES NOT REOPEN AFTER SIGKILL: {e} \
                 (sled reopen failure: the journal needs the redb fallback)"
            )
        });
        let journal: Vec<JournalEntry> = store
            .journal_since(None)
            .unwrap_or_else(|e| panic!("trial {trial}: journal unreadable: {e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("trial {trial}: journal entry unreadable: {e}")))
            .collect();
        drop(store);

        // No duplicates, no gaps.
        for (i, e) in journal.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "trial {trial}: journal gap or reorder");
        }
        let by_id: BTreeMap<&str, &JournalEntry> =
            journal.iter().map(|e| (e.id.as_str(), e)).collect();
        assert_eq!(by_id.len(), journal.len(), "trial {trial}: duplicate ids");

        // Every decision the POS received is journaled once, as received.
        for r in &received {
            let n = journal.iter().filter(|e| e.id == r.id).count();
            assert_eq!(
                n, 1,
                "TRIAL {trial}: LOST OR DUPLICATED: the POS received {r:?}, journal has it {n} times"
            );
            let e = by_id[r.id.as_str()];
            assert_eq!(
                (
                    e.verdict == Verdict::Approve,
                    e.approved_cents,
                    e.barcode_masked.as_str()
                ),
                (r.approve, r.cents, r.barcode.as_str()),
                "trial {trial}: journal differs from what the POS got"
            );
        }

        // Money: no ticket redeemed twice, across every crash so far.
        let mut per_ticket: BTreeMap<&str, u64> = BTreeMap::new();
        for e in journal.iter().filter(|e| e.verdict == Verdict::Approve) {
            *per_ticket.entry(e.barcode.as_str()).or_default() += e.approved_cents;
        }
        for (b, cents) in &per_ticket {
            if b.starts_with('2') {
                assert!(*cents <= 1000, "trial {trial}: {b} redeemed {cents} cents");
            }
        }

        // Remember the tickets whose approval reached the POS, for later re-scans; and
        // the re-scans of this trial must have been denied.
        for e in &journal {
            if let Some(r) = received.iter().find(|r| r.id == e.id) {
                if r.approve && !approved_tickets.contains(&e.barcode) {
                    approved_tickets.push(e.barcode.clone());
                }
                if rescans.contains(&e.barcode) && !r.approve {
                    tally.rescans_denied += 1;
                }
            }
        }

        tally.trials += 1;
        tally.decisions_received += received.len();
        tally.approvals_received += received.iter().filter(|r| r.approve).count();
        for r in received.iter().filter(|r| !r.approve) {
            *tally.denies.entry(r.reason.clone()).or_default() += 1;
        }
        tally.journaled_not_received += journal.len() - tally.journal_entries - received.len();
        tally.journal_entries = journal.len();
        received_all.extend(received);
    }

    // The exporter sees the same journal, each entry once.
    let out = agent()
        .arg("--config")
        .arg(&config)
        .args(["journal", "export", "--format", "jsonl"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "export failed");
    let exported: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(exported.len(), tally.journal_entries, "export length");
    let unique: BTreeSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "export duplicates");
    for r in &received_all {
        assert!(unique.contains(&r.id), "export lacks {}", r.id);
    }
    assert!(
        tally.approvals_received > 0,
        "no approval was received: the test proved nothing"
    );
    eprintln!("CRASH FIGURE: {tally:?}");
}
