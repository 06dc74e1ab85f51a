//! Issue 11's store holes: a cloned store (item 6) and a full disk (item 9).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use concession_agent::decide::{Decision, Reason, Source, Verdict};
use concession_agent::store::{
    export, headroom, Format, NewDecision, Snapshot, Store, StoreError, StoreOptions,
};

fn opts(machine: &str) -> StoreOptions {
    StoreOptions {
        terminal_id: "stand-7".into(),
        machine_id: Some(machine.into()),
        wal_capacity_bytes: 64 * 1024,
        ..StoreOptions::default()
    }
}

fn approve(cents: u64) -> Decision {
    Decision {
        verdict: Verdict::Approve,
        reason: Reason::Approved,
        approved_cents: cents,
        money: vec![("AV1".into(), cents)],
        items: vec![],
        source: Source::Live,
        offline: false,
    }
}

fn commit(s: &Store, barcode: &str, d: &Decision) -> Result<String, StoreError> {
    s.commit_decision(&NewDecision {
        scan_time_ms: 1_795_795_445_123,
        barcode,
        decision: d,
        evidence: None,
        latency_ms: 1,
        request: None,
    })
    .map(|e| e.id)
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a");
}

fn export_ids(s: &Store) -> Vec<String> {
    let mut out = Vec::new();
    export(s, Format::Jsonl, None, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Issue 11.6: a store directory copied to a second terminal (an SD card image) issued
/// `stand-7-000000000003` for two different sales. The copy is now refused on the
/// other machine, adopting it gives its new ids an issuer tag, and the ids of the two
/// terminals never meet.
#[test]
fn a_cloned_store_never_issues_the_ids_of_the_terminal_it_was_copied_from() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("a");
    let s = Store::open(&original, opts("machine-a")).unwrap();
    for i in 0..2 {
        commit(&s, &format!("10000000000{i}"), &approve(100)).unwrap();
    }
    drop(s);
    let clone = tmp.path().join("b");
    copy_dir(&original, &clone);

    // On the other machine: refused, naming the directory and the way out.
    let err = Store::open(&clone, opts("machine-b")).unwrap_err();
    assert!(matches!(err, StoreError::Cloned { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&clone.display().to_string()), "{msg}");
    assert!(
        msg.contains("store adopt") && msg.contains("machine_id"),
        "{msg}"
    );
    // Refused every time, not only the first.
    assert!(matches!(
        Store::open(&clone, opts("machine-b")),
        Err(StoreError::Cloned { .. })
    ));

    // Adopted deliberately: new ids carry the issuer tag, old ones stay.
    let (adopted, prefix) = Store::adopt(&clone, opts("machine-b")).unwrap();
    assert!(prefix.starts_with("stand-7.") && prefix.len() == "stand-7.".len() + 6);
    let b3 = commit(&adopted, "100000000009", &approve(500)).unwrap();
    assert_eq!(b3, format!("{prefix}-000000000003"));
    drop(adopted);
    // The adoption holds across reopen on the new machine.
    let again = Store::open(&clone, opts("machine-b")).unwrap();
    assert_eq!(again.id_prefix(), prefix);
    let b4 = commit(&again, "100000000008", &approve(500)).unwrap();
    drop(again);

    // The original terminal goes on with its own ids.
    let a = Store::open(&original, opts("machine-a")).unwrap();
    let a3 = commit(&a, "100000000007", &approve(700)).unwrap();
    assert_eq!(a3, "stand-7-000000000003");
    let ids_a = export_ids(&a);
    let b = Store::open(&clone, opts("machine-b")).unwrap();
    let ids_b = export_ids(&b);
    // The shared history (the copy's first two ids) is the same sales: one key each.
    assert_eq!(ids_a[..2], ids_b[..2]);
    assert!(!ids_a.contains(&b3) && !ids_a.contains(&b4));
    assert!(!ids_b.contains(&a3));
}

/// A restored backup on the same machine cannot be told from the original: adopting it
/// (the documented step) re-identifies it too. A store opened where no machine id is
/// known records none and is not refused.
#[test]
fn adopting_a_restored_backup_on_the_same_machine_gives_new_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let s = Store::open(&dir, opts("m")).unwrap();
    commit(&s, "100000000001", &approve(100)).unwrap();
    drop(s);
    let (s, prefix) = Store::adopt(&dir, opts("m")).unwrap();
    assert_ne!(prefix, "stand-7");
    assert_eq!(
        commit(&s, "100000000002", &approve(100)).unwrap(),
        format!("{prefix}-000000000002")
    );
    drop(s);

    let unknown = StoreOptions {
        machine_id: None,
        ..opts("x")
    };
    let other = tmp.path().join("u");
    drop(Store::open(&other, unknown.clone()).unwrap());
    drop(Store::open(&other, unknown).unwrap());
    // Adopting a directory with no store is an error naming it, not a new store.
    let err = Store::adopt(&tmp.path().join("nothing"), opts("m")).unwrap_err();
    assert!(err.to_string().contains("nothing"), "{err}");
}

/// A cloned store is refused to the agent but not to `journal export`, which reads a
/// copy and never writes the original.
#[test]
fn a_cloned_store_can_still_be_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let s = Store::open(&dir, opts("machine-a")).unwrap();
    let id = commit(&s, "100000000001", &approve(100)).unwrap();
    drop(s);
    let scratch = tempfile::tempdir().unwrap();
    let snap = Snapshot::open(&dir, scratch.path(), opts("machine-b")).unwrap();
    assert_eq!(export_ids(snap.store()), vec![id]);
    drop(snap);
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "copy removed"
    );
    assert!(matches!(
        Store::open(&dir, opts("machine-b")),
        Err(StoreError::Cloned { .. })
    ));
}

/// A small tmpfs mounted for one test; unmounted on drop. `None` (with a message) where
/// mounting is not permitted.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a {size} tmpfs here (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes a file of zeros until only about `leave` bytes are free (0: full).
    fn fill_leaving(&self, name: &str, leave: u64) {
        use std::io::Write;
        let free = headroom::free_bytes(&self.path()).unwrap();
        let mut f = std::fs::File::create(self.path().join(name)).unwrap();
        let mut left = free.saturating_sub(leave);
        let chunk = vec![0u8; 64 * 1024];
        while left > 0 || leave == 0 {
            let n = (left as usize).clamp(1, chunk.len());
            let n = if leave == 0 { chunk.len() } else { n };
            match f.write(&chunk[..n]) {
                Ok(0) | Err(_) => break,
                Ok(w) => left = left.saturating_sub(w as u64),
            }
        }
        let _ = f.sync_all();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Issue 11.9: on a full disk the agent stopped cleanly, but `journal export` failed
/// until space was freed. Now approvals stop while less than the headroom is free
/// (denies are still journaled), and the journal is read from a copy elsewhere while
/// the disk is full: every entry, the last ones only in the redo log included.
#[test]
fn a_full_disk_stops_approvals_first_and_the_journal_can_still_be_exported() {
    let Some(fs) = SmallFs::mount("6m") else {
        return;
    };
    let dir = fs.path().join("store");
    let o = StoreOptions {
        min_free_bytes: 1024 * 1024,
        ..opts("m")
    };
    let s = Store::open(&dir, o.clone()).unwrap();
    let mut ids = vec![commit(&s, "100000000001", &approve(2000)).unwrap()];

    fs.fill_leaving("filler", 512 * 1024);
    let err = commit(&s, "100000000002", &approve(2000)).unwrap_err();
    assert!(matches!(err, StoreError::NoHeadroom { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("store_min_free_mb") && msg.contains("approvals stop"),
        "{msg}"
    );
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    // A deny needs no money accounted for: still journaled (the redo log is
    // preallocated, so its record needs no new space).
    let deny = Decision::deny(Reason::UnknownTicket, Source::Live, false);
    ids.push(commit(&s, "999999999999", &deny).unwrap());
    drop(s);

    // Now completely full: the store cannot be opened for writing, and says where.
    fs.fill_leaving("filler2", 0);
    assert_eq!(headroom::free_bytes(&fs.path()).unwrap(), 0);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let err = Store::open(&dir, o.clone()).unwrap_err().to_string();
    eprintln!("open on a full disk: {err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");

    // Export reads a copy on another filesystem: both entries.
    let scratch = tempfile::tempdir().unwrap();
    let snap = Snapshot::open(&dir, scratch.path(), o.clone()).unwrap();
    assert_eq!(export_ids(snap.store()), ids);
    drop(snap);

    // Space freed: approvals resume by themselves, from the next id.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    std::fs::remove_file(fs.path().join("filler2")).unwrap();
    let s = Store::open(&dir, o).unwrap();
    assert_eq!(
        commit(&s, "100000000002", &approve(2000)).unwrap(),
        "stand-7-000000000003"
    );
}

/// Issue 11.9 through the binary: `journal export` on a store whose filesystem is full
/// prints every entry (rc 0), and `run` there says where and why it cannot open.
#[test]
fn journal_export_works_on_a_full_disk_through_the_binary() {
    let Some(fs) = SmallFs::mount("6m") else {
        return;
    };
    let dir = fs.path().join("store");
    let config = fs.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "terminal_id = \"stand-7\"\nstore_dir = {:?}\n[ats]\nurl = \"http://127.0.0.1:9\"\n\
             apikey = \"k\"\n[cache]\nprefetch_at_start = false\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    let o = StoreOptions {
        // The default headroom (8 MiB) is more than this whole filesystem.
        min_free_bytes: 0,
        ..opts(&machine())
    };
    let s = Store::open(&dir, o).unwrap();
    let ids = vec![
        commit(&s, "100000000001", &approve(2000)).unwrap(),
        commit(&s, "100000000002", &approve(500)).unwrap(),
    ];
    drop(s);
    fs.fill_leaving("filler", 0);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let scratch = tempfile::tempdir().unwrap();
    let out = support::agent_command("warn")
        .arg("--config")
        .arg(&config)
        .args(["journal", "export", "--scratch"])
        .arg(scratch.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ids);
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    let out = support::agent_command("warn")
        .arg("--config")
        .arg(&config)
        .args(["cache", "stats"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("journal export"), "{stderr}");
}

/// The machine id the binary sees (what `StoreOptions::default` reads).
fn machine() -> String {
    StoreOptions::default().machine_id.unwrap_or_default()
}

/// Issue 11.9 at the agent: with less free space than the headroom, an approval is
/// denied `store_error` and that deny is journaled (with an id the POS gets); denies
/// stay as they were, and the agent goes on.
#[test]
fn below_the_headroom_the_agent_journals_store_error_denies_and_goes_on() {
    const TIB_IN_MB: u64 = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    if headroom::free_bytes(tmp.path()).unwrap() >= TIB_IN_MB * 1024 * 1024 {
        eprintln!("SKIPPED: more than 1 TiB free here, the largest headroom allowed");
        return;
    }
    let mut h = support::Harness::start(&format!("store_min_free_mb = {TIB_IN_MB}"));
    let d = h.scan("100000000001");
    assert_eq!(
        (d.decision.as_str(), d.reason.as_str()),
        ("deny", "store_error")
    );
    assert!(!d.id.is_empty(), "journaled, so it has an id");
    let unknown = h.scan("999999999999");
    assert_eq!(unknown.reason, "unknown_ticket");
    // The outputs were told why, once.
    let lows = h
        .seen
        .0
        .lock()
        .unwrap()
        .statuses
        .iter()
        .filter(|s| **s == concession_agent::signal::AgentStatus::LowDisk)
        .count();
    assert_eq!(lows, 1);
    let store = h.agent.store();
    assert_eq!(store.journal_len(), 2);
    let e = store.journal_entry(&d.id).unwrap().unwrap();
    assert_eq!((e.reason.as_str(), e.approved_cents), ("store_error", 0));
    // Nothing was taken from the ticket: the ledger has no redemption.
    assert!(store.ledger("100000000001").unwrap().lines.is_empty());
}
