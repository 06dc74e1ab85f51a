//! Crash test: a child process commits decisions and prints each id after the commit
//! returned (durable: its redo-log record synced); the parent SIGKILLs it at a random
//! point, reopens the store and checks that every printed id is in the journal exactly
//! once, and that ledger and offline usage agree with the journal (a decision is one
//! record). sled buffers the applied writes in its own memory, so a kill loses some of
//! them and the reopen has to re-apply them from the log.
//!
//! The child is this test binary re-executed with `CHILD_ENV` set, running only
//! `crash_child`. `CAPACITY_ENV` gives it a redo log of a few records, so that the
//! second test kills it around checkpoints too (a commit that finds the log full makes
//! sled durable and starts the log over).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use concession_agent::decide::{Decision, Reason, Source, Verdict};
use concession_agent::store::{NewDecision, Store, StoreOptions};

const CHILD_ENV: &str = "CONCESSION_AGENT_CRASH_CHILD_DIR";
const CAPACITY_ENV: &str = "CONCESSION_AGENT_CRASH_CHILD_WAL";
const TRIALS: usize = 20;
const BARCODES: [&str; 3] = ["100000000001", "100000000003", "100000000008"];

fn opts() -> StoreOptions {
    StoreOptions {
        terminal_id: "crash".into(),
        ..StoreOptions::default()
    }
}

fn approval() -> Decision {
    Decision {
        verdict: Verdict::Approve,
        reason: Reason::Approved,
        approved_cents: 1,
        money: vec![("AV1".into(), 1)],
        items: Vec::new(),
        source: Source::Offline,
        offline: true,
    }
}

/// The child: commits until killed. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut o = opts();
    if let Some(cap) = std::env::var(CAPACITY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        o.wal_capacity_bytes = cap;
    }
    let store = Store::open(std::path::Path::new(&dir), o).expect("child open");
    let d = approval();
    for i in 0..1_000_000u64 {
        let barcode = BARCODES[(i % 3) as usize];
        let e = store
            .commit_decision(&NewDecision {
                scan_time_ms: 1_795_795_445_123 + i,
                barcode,
                decision: &d,
                evidence: None,
                latency_ms: 1,
                request: None,
            })
            .expect("child commit");
        println!("COMMITTED {}", e.id);
    }
}

#[test]
fn every_flushed_decision_survives_sigkill_and_reopen() {
    let replayed = run_trials(None, 0x2545_f491_4f6c_dd1d, 80);
    eprintln!("records re-applied from the redo log over all trials: {replayed}");
}

/// A 16 KiB log holds four records (one per 4 KiB page): the kills land before, during and after
/// checkpoints (sled flush + rewind) and on the first records of a new lap, whose tail
/// still holds the previous lap's records.
#[test]
fn every_decision_survives_sigkill_around_log_wraps() {
    let replayed = run_trials(Some(4 * 4096), 0x9e37_79b9_7f4a_7c15, 200);
    eprintln!("records re-applied from the redo log over all trials: {replayed}");
    assert!(
        replayed > 0,
        "no trial exercised the write-ahead log replay"
    );
}

/// Runs `TRIALS` kill trials; returns the number of records re-applied at reopen.
fn run_trials(wal_capacity: Option<u64>, mut seed: u64, max_kill_after: u64) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut replayed = 0;
    let mut dirs: Vec<tempfile::TempDir> = Vec::new();
    for trial in 0..TRIALS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 1 + (seed % max_kill_after) as usize;
        // Every other trial reuses the store of the previous one, which already
        // survived a kill and a reopen.
        if trial.is_multiple_of(2) {
            dirs.push(tempfile::tempdir().unwrap());
        }
        let tmp = dirs.last().unwrap();
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(cap) = wal_capacity {
            cmd.env(CAPACITY_ENV, cap.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("COMMITTED ") {
                printed.push(id.to_string());
                if printed.len() >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        // Anything printed before the kill was flushed too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("COMMITTED ") {
                printed.push(id.to_string());
            }
        }
        assert!(
            printed.len() >= kill_after,
            "trial {trial}: child died early"
        );

        let mut o = opts();
        if let Some(cap) = wal_capacity {
            o.wal_capacity_bytes = cap;
        }
        let store = Store::open(tmp.path(), o)
            .unwrap_or_else(|e| panic!("trial {trial}: reopen after kill failed: {e}"));
        replayed += store.wal_replayed_at_open();
        let journal: Vec<_> = store
            .journal_since(None)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        let ids: Vec<&str> = journal.iter().map(|e| e.id.as_str()).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "trial {trial}: duplicate ids");
        for id in &printed {
            assert_eq!(
                ids.iter().filter(|j| *j == id).count(),
                1,
                "trial {trial}: {id} printed but not journaled exactly once"
            );
        }
        // Gapless, in order.
        for (i, e) in journal.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "trial {trial}");
        }
        // Ledger and usage agree with the journal: commits are atomic.
        let mut per_barcode: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &journal {
            *per_barcode.entry(e.barcode.as_str()).or_default() += e.approved_cents;
        }
        for b in BARCODES {
            let l = store.ledger(b).unwrap();
            let unreflected = l.lines.get("AV1").map_or(0, |x| x.unreflected);
            assert_eq!(
                unreflected,
                per_barcode.get(b).copied().unwrap_or(0),
                "trial {trial}: ledger of {b}"
            );
        }
        let usage = store.offline_usage().unwrap();
        assert_eq!(usage.count, journal.len() as u64, "trial {trial}");
        assert_eq!(usage.cents, journal.len() as u64, "trial {trial}");
        // The sequence continues after the crash.
        let e = store
            .commit_decision(&NewDecision {
                scan_time_ms: 0,
                barcode: BARCODES[0],
                decision: &approval(),
                evidence: None,
                latency_ms: 0,
                request: None,
            })
            .unwrap();
        assert_eq!(e.seq, journal.len() as u64 + 1, "trial {trial}");
    }
    replayed
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn commit_n(store: &Store, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            store
                .commit_decision(&NewDecision {
                    scan_time_ms: 1_795_795_445_123 + i,
                    barcode: BARCODES[(i % 3) as usize],
                    decision: &approval(),
                    evidence: None,
                    latency_ms: 1,
                    request: None,
                })
                .unwrap()
                .id
        })
        .collect()
}

/// A power cut in miniature: sled's files as of an older checkpoint (what a power cut
/// leaves when sled had not persisted the newer commits) next to the newer write-ahead
/// log. Every decision in the log comes back; a torn last record loses exactly that
/// (never acknowledged) decision; ledger and usage match the journal.
#[test]
fn sled_behind_the_log_is_caught_up_and_a_torn_record_is_ignored() {
    let live = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let store = Store::open(live.path(), opts()).unwrap();
    commit_n(&store, 5);
    // A checkpoint: sled durable at seq 5, the log starts a new lap. sled's files as
    // of now are what a power cut leaves when sled persisted nothing after this.
    store.flush().unwrap();
    copy_dir(live.path(), old.path());
    // Commits 6..=12 are the new lap's records; sled holds them only in memory.
    let ids_6_to_12 = commit_n(&store, 7);
    assert_eq!(ids_6_to_12.last().unwrap(), "crash-000000000012");
    let wal = std::fs::read(live.path().join("wal")).unwrap();
    drop(store);

    for torn in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(old.path(), dir.path());
        let mut image = wal.clone();
        if torn {
            // Cut the last record (the 7th) in half.
            let end = image.iter().rposition(|b| *b != 0).unwrap() + 1;
            let mid = end - 100;
            image[mid..end].fill(0);
        }
        std::fs::write(dir.path().join("wal"), &image).unwrap();
        let store = Store::open(dir.path(), opts()).unwrap();
        let expect = if torn { 11 } else { 12 };
        assert_eq!(store.wal_replayed_at_open(), expect - 5, "torn {torn}");
        let journal: Vec<_> = store
            .journal_since(None)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(journal.len() as u64, expect, "torn {torn}");
        for (i, e) in journal.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
        }
        let mut per_barcode: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &journal {
            *per_barcode.entry(e.barcode.as_str()).or_default() += e.approved_cents;
        }
        for b in BARCODES {
            let l = store.ledger(b).unwrap();
            assert_eq!(
                l.lines.get("AV1").map_or(0, |x| x.unreflected),
                per_barcode.get(b).copied().unwrap_or(0),
                "torn {torn}: ledger of {b}"
            );
        }
        assert_eq!(store.offline_usage().unwrap().count, expect);
        // The sequence continues; the next open re-applies only what came after the
        // recovery's checkpoint, and nothing after a clean close.
        assert_eq!(commit_n(&store, 1)[0], format!("crash-{:012}", expect + 1));
        drop(store);
        let store = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(store.journal_len() as u64, expect + 1);
        assert_eq!(store.wal_replayed_at_open(), 1);
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(store.journal_len() as u64, expect + 1);
        assert_eq!(store.wal_replayed_at_open(), 0);
    }
}
