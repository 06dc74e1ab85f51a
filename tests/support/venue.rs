//! Venue-mode test support: terminal processes (the real `concession-agent` binary) on
//! one sandbox and one venue database, and readers for `venue export` and
//! `journal export`.
//!
//! A [`Stand`] runs `concession-agent --config F run --pos jsonl`, takes barcodes on its
//! stdin and hands back the decision lines it prints, as a POS would read them. Scans
//! are closed-loop ([`Stand::decide`]: write one, wait for its line), so the wall time of
//! each decision is the agent's, not a queue's.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

use concession_agent::sandbox::{DataSet, SandboxConfig, SandboxHandle};

/// First barcode of the sandbox's generated tickets (`--generate N`: $10.00 each).
pub const FIRST_TICKET: u64 = 200_000_000_000;
/// Value of each generated ticket, cents.
pub const TICKET_CENTS: u64 = 1000;

/// The `n`th generated ticket's barcode.
pub fn ticket(n: usize) -> String {
    (FIRST_TICKET + n as u64).to_string()
}

/// A sandbox with `tickets` generated tickets and rate limits no test reaches.
pub fn sandbox(tickets: usize) -> SandboxHandle {
    let mut data = DataSet::builtin();
    data.generate(tickets);
    super::sandbox_with(SandboxConfig {
        data,
        rate_per_minute: 1_000_000,
        rate_per_day: 100_000_000,
        ..SandboxConfig::default()
    })
}

/// What a stand's configuration says beyond the defaults.
#[derive(Debug, Clone)]
pub struct StandConfig {
    /// `terminal_id`.
    pub terminal: String,
    /// ATS base URL.
    pub ats_url: String,
    /// `[venue] url`.
    pub venue_url: String,
    /// `deadline_ms`.
    pub deadline_ms: u64,
    /// `[venue] timeout_ms`.
    pub venue_timeout_ms: u64,
    /// More TOML for the `[venue]` table.
    pub venue_extra: String,
    /// More top-level TOML (keys, then whole tables).
    pub extra: String,
    /// `[ats] rate_per_minute` (default: more than any test reaches).
    pub rate_per_minute: u32,
    /// More TOML for the `[cache]` table (`prefetch_at_start = false` is set unless
    /// this sets it).
    pub cache_extra: String,
}

impl StandConfig {
    /// Defaults: 1.5 s deadline, 300 ms venue timeout.
    pub fn new(terminal: &str, ats_url: &str, venue_url: &str) -> StandConfig {
        StandConfig {
            terminal: terminal.into(),
            ats_url: ats_url.into(),
            venue_url: venue_url.into(),
            deadline_ms: 1500,
            venue_timeout_ms: 300,
            venue_extra: String::new(),
            extra: String::new(),
            rate_per_minute: 10_000,
            cache_extra: String::new(),
        }
    }

    /// Writes `DIR/agent.toml` (store in `DIR/store`) and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("agent.toml");
        let store = dir.join("store");
        let text = format!(
            "terminal_id = {terminal:?}\n\
             store_dir = {store:?}\n\
             deadline_ms = {deadline}\n\
             events = [\"EVENT01\"]\n\
             {extra}\n\
             [ats]\n\
             url = {ats:?}\n\
             apikey = \"sandbox-key\"\n\
             rate_per_minute = {rate}\n\
             rate_per_day = 10000000\n\
             [cache]\n\
             {cache}\n\
             [pos]\n\
             output = \"jsonl\"\n\
             [venue]\n\
             url = {venue:?}\n\
             timeout_ms = {vt}\n\
             {venue_extra}\n",
            terminal = self.terminal,
            store = store.display().to_string(),
            deadline = self.deadline_ms,
            extra = self.extra,
            ats = self.ats_url,
            venue = self.venue_url,
            vt = self.venue_timeout_ms,
            venue_extra = self.venue_extra,
            rate = self.rate_per_minute,
            cache = if self.cache_extra.contains("prefetch_at_start") {
                self.cache_extra.clone()
            } else {
                format!("prefetch_at_start = false\n{}", self.cache_extra)
            },
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// One decision line as the POS read it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Decision id.
    pub id: String,
    /// Terminal id.
    pub terminal: String,
    /// Masked barcode.
    pub barcode: String,
    /// Approved?
    pub approve: bool,
    /// Money approved.
    pub cents: u64,
    /// Reason.
    pub reason: String,
    /// `committed`, `pending`, or `None` when the line has no `venue` field.
    pub venue: Option<String>,
    /// The agent's own scan-to-decision time.
    pub latency_ms: u64,
    /// Wall time from writing the scan to reading this line (closed-loop scans only).
    pub wall: Option<Duration>,
    /// When the line was read.
    pub at: Instant,
    /// The line.
    pub raw: Value,
}

impl Decision {
    /// Parses a `decision` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Decision> {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["type"] != "decision" {
            return None;
        }
        Some(Decision {
            id: v["id"].as_str()?.to_string(),
            terminal: v["terminal"].as_str().unwrap_or_default().to_string(),
            barcode: v["barcode"].as_str().unwrap_or_default().to_string(),
            approve: v["decision"] == "approve",
            cents: v["approved_cents"].as_u64().unwrap_or(0),
            reason: v["reason"].as_str().unwrap_or_default().to_string(),
            venue: v["venue"].as_str().map(str::to_string),
            latency_ms: v["latency_ms"].as_u64().unwrap_or(0),
            wall: None,
            at: Instant::now(),
            raw: v,
        })
    }
}

/// A terminal process reading scans on stdin and printing JSON lines.
pub struct Stand {
    /// The configuration file.
    pub config: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Every decision read so far.
    pub decisions: Vec<Decision>,
}

impl Stand {
    /// Starts `run --pos jsonl` on `config`.
    pub fn spawn(config: &Path) -> Stand {
        let mut child = super::agent_command("warn")
            .arg("--config")
            .arg(config)
            .args(["run", "--pos", "jsonl"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("concession-agent starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Stand {
            config: config.to_path_buf(),
            stdin: child.stdin.take(),
            child: Some(child),
            lines: rx,
            stderr,
            decisions: Vec::new(),
        }
    }

    /// What the agent wrote on stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Writes one barcode line (does not wait).
    pub fn send(&mut self, barcode: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = writeln!(stdin, "{barcode}").and_then(|_| stdin.flush()) {
            // The agent is gone: say why.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "scan to {}: {e}; the agent's stderr:\n{}",
                self.config.display(),
                self.stderr()
            );
        }
    }

    /// The next decision line within `timeout` (other lines skipped), recorded.
    pub fn next_decision(&mut self, timeout: Duration) -> Option<Decision> {
        let until = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    if let Some(d) = Decision::parse(&line) {
                        self.decisions.push(d.clone());
                        return Some(d);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Scans `barcode` and waits (at most `timeout`) for its decision; its wall time
    /// from the write is recorded in [`Decision::wall`].
    pub fn decide(&mut self, barcode: &str, timeout: Duration) -> Decision {
        let t0 = Instant::now();
        self.send(barcode);
        let mut d = self.next_decision(timeout).unwrap_or_else(|| {
            panic!(
                "{}: no decision for a scan within {timeout:?}; stderr:\n{}",
                self.config.display(),
                self.stderr()
            )
        });
        d.wall = Some(t0.elapsed());
        if let Some(last) = self.decisions.last_mut() {
            last.wall = d.wall;
        }
        d
    }

    /// Waits for a line for which `f` holds (status lines included), for at most
    /// `timeout`. Decision lines read meanwhile are recorded.
    pub fn wait_line(&mut self, timeout: Duration, mut f: impl FnMut(&Value) -> bool) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let Ok(line) = self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            else {
                return false;
            };
            if let Some(d) = Decision::parse(&line) {
                self.decisions.push(d);
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if f(&v) {
                    return true;
                }
            }
        }
    }

    /// Waits for the first `status` line (`ready` or `offline`: the agent serves), at most
    /// `timeout`; panics with the agent's stderr if none comes.
    pub fn wait_serving(&mut self, timeout: Duration) {
        if !self.wait_line(timeout, |v| v["type"] == "status") {
            panic!(
                "{}: no status line within {timeout:?}; stderr:\n{}",
                self.config.display(),
                self.stderr()
            );
        }
    }

    /// SIGKILL; the lines already in the pipe were printed before the kill (the POS got
    /// them) and are read into [`Stand::decisions`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdin = None;
        self.drain();
    }

    /// Ends stdin (the agent stops cleanly after deciding what it read) and waits for the
    /// exit, at most `timeout`; returns whether it exited successfully.
    pub fn finish(&mut self, timeout: Duration) -> bool {
        self.stdin = None;
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let until = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(s)) = c.try_wait() {
                break Some(s);
            }
            if Instant::now() >= until {
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.drain();
        status.is_some_and(|s| s.success())
    }

    fn drain(&mut self) {
        // The reader thread ends at EOF: everything printed is in the channel.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            if let Some(d) = Decision::parse(&line) {
                self.decisions.push(d);
            }
        }
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `concession-agent --config CONFIG ARGS...`; returns (success, stdout, stderr).
pub fn agent(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = super::agent_command("warn");
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null());
    let what = format!("concession-agent {}", args.join(" "));
    let out = super::output_within(cmd, super::COMMAND_WAIT, &what).expect("concession-agent runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jsonl(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: bad JSON line {l:?}: {e}"))
        })
        .collect()
}

/// `venue export --format jsonl`: every row of the venue ledger, in recorded order.
pub fn venue_export(config: &Path) -> Vec<Value> {
    let (ok, out, err) = agent(config, &["venue", "export", "--format", "jsonl"]);
    assert!(ok, "venue export failed: {err}");
    jsonl(&out, "venue export")
}

/// `venue sync`: (success, stderr).
pub fn venue_sync(config: &Path) -> (bool, String) {
    let (ok, _, err) = agent(config, &["venue", "sync"]);
    (ok, err)
}

/// `journal export --format jsonl` of one terminal's local journal.
pub fn journal_export(config: &Path) -> Vec<Value> {
    let (ok, out, err) = agent(config, &["journal", "export", "--format", "jsonl"]);
    assert!(ok, "journal export failed: {err}");
    jsonl(&out, "journal export")
}

/// A row's `id`.
pub fn id_of(row: &Value) -> &str {
    row["id"]
        .as_str()
        .unwrap_or_else(|| panic!("row without id: {row}"))
}

/// Is this export row a void?
pub fn is_void(row: &Value) -> bool {
    row["verdict"] == "void" || row["kind"] == "void"
}

/// Net money a row moves for its ticket: approved cents, minus what a void gives back.
pub fn net_cents(row: &Value) -> i64 {
    if let Some(n) = row["net_cents"].as_i64() {
        return n;
    }
    if is_void(row) {
        -(row["refunded_cents"].as_i64().unwrap_or(0))
    } else if row["verdict"] == "approve" {
        row["approved_cents"].as_i64().unwrap_or(0)
    } else {
        0
    }
}

/// Checks of a venue export against what the POSes were told.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    /// Rows in the export.
    pub rows: usize,
    /// Net cents per full barcode.
    pub spent: BTreeMap<String, i64>,
    /// Overdraft cents recorded (approvals offline that overdrew a line).
    pub overdraft_cents: i64,
}

/// Asserts that `export` holds every id at most once, and each of `told` (decisions a POS
/// received) exactly once with the verdict and amount the POS got; returns the money per
/// ticket.
pub fn check_ledger(export: &[Value], told: &[Decision]) -> LedgerCheck {
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for row in export {
        let id = id_of(row);
        assert!(
            by_id.insert(id, row).is_none(),
            "DOUBLED: the venue ledger holds {id} twice"
        );
    }
    for d in told {
        let row = by_id.get(d.id.as_str()).unwrap_or_else(|| {
            panic!(
                "LOST: the POS of {} was told {} {} cents ({}, venue {:?}) under id {}, \
                 and the venue ledger does not hold it",
                d.terminal,
                if d.approve { "approve" } else { "deny" },
                d.cents,
                d.reason,
                d.venue,
                d.id
            )
        });
        let verdict = row["verdict"].as_str().unwrap_or_default();
        assert_eq!(
            (
                verdict == "approve",
                row["approved_cents"].as_u64().unwrap_or(0)
            ),
            (d.approve, d.cents),
            "the venue ledger's {} differs from what the POS was told: {row}",
            d.id
        );
    }
    let mut check = LedgerCheck {
        rows: export.len(),
        ..LedgerCheck::default()
    };
    for row in export {
        let barcode = row["barcode"].as_str().unwrap_or_default().to_string();
        *check.spent.entry(barcode).or_default() += net_cents(row);
        check.overdraft_cents += row["overdraft_cents"].as_i64().unwrap_or(0);
    }
    check
}

/// Starts one [`Stand`] per config and has each scan its list closed-loop on its own
/// thread (at most `per_scan` for each decision), counting decisions in `progress` so the
/// test can inject faults mid-run. Returns each stand (still running) when its list is
/// done, in config order.
pub fn scan_all(
    stands: Vec<Stand>,
    lists: Vec<Vec<String>>,
    per_scan: Duration,
    progress: &std::sync::atomic::AtomicUsize,
) -> Vec<Stand> {
    assert_eq!(stands.len(), lists.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = stands
            .into_iter()
            .zip(lists)
            .map(|(mut stand, list)| {
                s.spawn(move || {
                    for b in &list {
                        stand.decide(b, per_scan);
                        progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    stand
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a stand's scan thread panicked"))
            .collect()
    })
}

/// Waits until `progress` reaches `n` (at most `timeout`); false on timeout.
pub fn wait_progress(
    progress: &std::sync::atomic::AtomicUsize,
    n: usize,
    timeout: Duration,
) -> bool {
    super::wait_for(timeout, || {
        (progress.load(std::sync::atomic::Ordering::SeqCst) >= n).then_some(())
    })
    .is_some()
}

/// xorshift64: reproducible shuffles and choices.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Asserts that each stand's local journal (`journal export`) is in the venue ledger,
/// each id exactly once (replay neither lost nor doubled anything); returns how many
/// journal entries there were in all.
pub fn check_journals_in_ledger(export: &[Value], configs: &[PathBuf]) -> usize {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for row in export {
        *count.entry(id_of(row)).or_default() += 1;
    }
    let mut total = 0;
    for config in configs {
        for row in journal_export(config) {
            let id = id_of(&row);
            let n = count.get(id).copied().unwrap_or(0);
            assert_eq!(
                n,
                1,
                "{}: journal entry {id} is in the venue ledger {n} times after replay: {row}",
                config.display()
            );
            total += 1;
        }
    }
    total
}

/// Counters a fault script watches while stands scan.
#[derive(Debug, Default)]
pub struct Progress {
    /// Decisions read.
    pub decided: std::sync::atomic::AtomicUsize,
    /// Of those, `"venue":"committed"`.
    pub committed: std::sync::atomic::AtomicUsize,
    /// Set to end [`scan_until`].
    pub stop: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn get(&self, c: &std::sync::atomic::AtomicUsize) -> usize {
        c.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for `n` more decisions than now (at most `timeout`).
    pub fn more_decided(&self, n: usize, timeout: Duration) -> bool {
        let want = self.get(&self.decided) + n;
        super::wait_for(timeout, || (self.get(&self.decided) >= want).then_some(())).is_some()
    }

    /// Waits for `n` more committed decisions than now (at most `timeout`).
    pub fn more_committed(&self, n: usize, timeout: Duration) -> bool {
        let want = self.get(&self.committed) + n;
        super::wait_for(timeout, || {
            (self.get(&self.committed) >= want).then_some(())
        })
        .is_some()
    }

    /// Ends the scanning.
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A guard that ends the scanning when dropped, also when the fault script that
    /// holds it panics (a panicking script must fail the test, not leave the stands
    /// scanning forever).
    pub fn stop_on_drop(&self) -> StopOnDrop<'_> {
        StopOnDrop(self)
    }
}

/// See [`Progress::stop_on_drop`].
pub struct StopOnDrop<'a>(&'a Progress);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Like [`scan_all`], but each stand goes round its list (re-scans are decisions too:
/// denies once a ticket is spent) until `progress.stop`, one scan every `pace` (a
/// scanner's pace, not a wait for a condition).
pub fn scan_until(
    stands: Vec<Stand>,
    lists: Vec<Vec<String>>,
    per_scan: Duration,
    pace: Duration,
    progress: &Progress,
) -> Vec<Stand> {
    use std::sync::atomic::Ordering::SeqCst;
    std::thread::scope(|s| {
        let handles: Vec<_> = stands
            .into_iter()
            .zip(lists)
            .map(|(mut stand, list)| {
                s.spawn(move || {
                    for b in list.iter().cycle() {
                        if progress.stop.load(SeqCst) {
                            break;
                        }
                        let d = stand.decide(b, per_scan);
                        if d.venue.as_deref() == Some("committed") {
                            progress.committed.fetch_add(1, SeqCst);
                        }
                        progress.decided.fetch_add(1, SeqCst);
                        std::thread::sleep(pace);
                    }
                    stand
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a stand's scan thread panicked"))
            .collect()
    })
}
