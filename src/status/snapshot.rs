//! The snapshot's types, its file (written by renaming, read back), and the status of
//! a store that no agent holds.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::money::Cents;
use crate::store::{rfc3339_ms, EntryKind, JournalEntry, Store, StoreError};

/// The snapshot's file name, inside the store directory.
pub const STATUS_FILE: &str = "status.json";

/// A snapshot older than this, from an agent that still holds the store, is reported
/// as stale: the agent writes one every second, so its loop is stuck or it is
/// starting.
pub const STALE_AFTER_MS: u64 = 10_000;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the snapshot of the store in `store_dir` lives.
pub fn path(store_dir: &Path) -> PathBuf {
    store_dir.join(STATUS_FILE)
}

/// Why the status could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum StatusError {
    /// Reading or writing the file failed.
    File {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a status snapshot (a foreign or torn file: the agent replaces it
    /// by renaming, so a torn one means another writer).
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// The store could not be read (no agent running).
    Store(StoreError),
    /// A process holds the store but has published no status (an agent of an older
    /// version, or one that cannot write its directory).
    HeldSilent(PathBuf),
    /// No store there yet.
    NoStore(PathBuf),
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::File { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            StatusError::Parse { path, detail } => {
                write!(f, "{} is not a status snapshot: {detail}", path.display())
            }
            StatusError::Store(e) => write!(f, "store: {e}"),
            StatusError::HeldSilent(dir) => write!(
                f,
                "the store {} is held by a process that publishes no status: a command \
                 such as `cache prefetch` (try again when it ends), or an agent older \
                 than this command or one that cannot write {STATUS_FILE} there (its log \
                 has the status)",
                dir.display()
            ),
            StatusError::NoStore(dir) => write!(
                f,
                "no store at {} yet: no agent has run with this store_dir",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for StatusError {}

impl From<StoreError> for StatusError {
    fn from(e: StoreError) -> Self {
        StatusError::Store(e)
    }
}

/// Everything `status` reports for one terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The terminal id.
    pub terminal: String,
    /// Where this came from: `agent` (published by the running agent) or `store` (read
    /// from the store, no agent running).
    pub source: String,
    /// When it was taken, wall ms and RFC 3339.
    pub as_of_ms: u64,
    /// The same, RFC 3339 UTC.
    pub as_of: String,
    /// The publishing agent's process id (`source = agent`).
    pub pid: Option<u32>,
    /// `online`, `offline`, `low_disk`, `stopping` (the agent), or `stopped` (no agent).
    pub mode: String,
    /// Since when the mode holds (wall ms; `None` when not known).
    pub mode_since_ms: Option<u64>,
    /// The same, RFC 3339 UTC.
    pub mode_since: Option<String>,
    /// The newest journal entry.
    pub last_decision: Option<LastDecision>,
    /// The venue's day so far.
    pub today: DayTotals,
    /// What was approved offline in the current offline window, against the caps.
    pub offline: OfflineExposure,
    /// Decisions approved while the venue database was away and not yet uploaded
    /// (venue mode); `None` without venue mode.
    pub pending_uploads: Option<u64>,
    /// The agent runs in venue mode (`[venue]`); its pending uploads are not counted
    /// here yet (`venue sync` reports them).
    #[serde(default)]
    pub venue_mode: bool,
    /// The ATS client's budget (`None` when no agent runs: the budget lives in it).
    pub ats_budget: Option<AtsBudget>,
    /// ATS calls by result since the agent started (`None` when no agent runs).
    pub ats_calls: Option<crate::ats::CallCounts>,
    /// The Presence client's budget (phone tickets; `None` without `[presence]` or
    /// when no agent runs).
    #[serde(default)]
    pub presence_budget: Option<AtsBudget>,
    /// Presence calls by result since the agent started (as `ats_calls`).
    #[serde(default)]
    pub presence_calls: Option<crate::ats::CallCounts>,
    /// The background prefetch (`None` when no agent runs).
    pub prefetch: Option<PrefetchStatus>,
    /// The cache (refreshed every minute by the agent: counting reads every entry).
    pub cache: Option<CacheStatus>,
    /// Journal entries in the store.
    pub journal_entries: u64,
    /// Free space under the store.
    pub disk: DiskStatus,
    /// The wall clock against ATS's.
    pub clock: ClockStatus,
}

/// The newest journal entry, without its full barcode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDecision {
    /// Decision id.
    pub id: String,
    /// Scan time (a void: when it was voided), RFC 3339 UTC.
    pub time: String,
    /// `decision` or `void`.
    pub kind: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// `approved`, `partial`, a deny reason, or `void`.
    pub reason: String,
    /// Money approved (a void: given back), cents.
    pub approved_cents: Cents,
    /// `live`, `cache` or `offline`.
    pub source: String,
    /// The barcode, masked.
    pub barcode: String,
}

impl LastDecision {
    /// From a journal entry.
    pub fn from_entry(e: &JournalEntry) -> LastDecision {
        LastDecision {
            id: e.id.clone(),
            time: e.scan_time.clone(),
            kind: e.kind.as_str().into(),
            decision: e.verdict.as_str().into(),
            reason: e.reason.clone(),
            approved_cents: e.approved_cents,
            source: e.source.as_str().into(),
            barcode: e.barcode_masked.clone(),
        }
    }
}

/// One venue day's decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTotals {
    /// The venue's date (`YYYY-MM-DD`, `utc_offset_minutes`).
    pub date: String,
    /// Scans decided (approve or deny; voids are not decisions).
    pub decisions: u64,
    /// Of which approved.
    pub approvals: u64,
    /// Of which approved under the offline rules.
    pub offline_approvals: u64,
    /// Money approved, cents.
    pub approved_cents: Cents,
    /// Voids.
    pub voids: u64,
    /// Money given back by voids, cents.
    pub refunded_cents: Cents,
}

impl DayTotals {
    /// An empty day.
    pub fn new(date: &str) -> DayTotals {
        DayTotals {
            date: date.to_string(),
            ..DayTotals::default()
        }
    }

    /// Counts one journal entry (of this day).
    pub fn count(&mut self, kind: EntryKind, approved: bool, offline: bool, cents: Cents) {
        match kind {
            EntryKind::Decision => {
                self.decisions += 1;
                if approved {
                    self.approvals += 1;
                    self.approved_cents = self.approved_cents.saturating_add(cents);
                    if offline {
                        self.offline_approvals += 1;
                    }
                }
            }
            EntryKind::Void => {
                self.voids += 1;
                self.refunded_cents = self.refunded_cents.saturating_add(cents);
            }
        }
    }

    /// Approved minus given back: the day's takings.
    pub fn net_cents(&self) -> i128 {
        i128::from(self.approved_cents) - i128::from(self.refunded_cents)
    }

    /// Reads the day `date` from the journal, newest entry first, stopping at the first
    /// entry of an earlier day (the journal is in decision order, so this reads only
    /// the day's entries). Returns the totals and the newest entry.
    pub fn from_journal(
        store: &Store,
        date: &str,
        utc_offset_minutes: i32,
    ) -> Result<(DayTotals, Option<JournalEntry>), StoreError> {
        let mut totals = DayTotals::new(date);
        let Some(last) = store.last_decision_id()? else {
            return Ok((totals, None));
        };
        let mut seq = crate::store::journal::seq_of(&last)?;
        let mut newest = None;
        while seq > 0 {
            let Some(e) = store.journal_entry_at(seq)? else {
                break;
            };
            seq -= 1;
            let day = crate::date::local_date(e.scan_time_ms, utc_offset_minutes);
            let earlier = day.as_str() < date;
            if day == date {
                totals.count(
                    e.kind,
                    e.verdict.as_str() == "approve",
                    e.offline,
                    e.approved_cents,
                );
            }
            if newest.is_none() {
                newest = Some(e);
            }
            // Entries (voids too: they get their sequence when voided) are written in
            // time order, so the first one of an earlier day ends the day.
            if earlier {
                break;
            }
        }
        Ok((totals, newest))
    }
}

/// Offline exposure against the caps (`[offline]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineExposure {
    /// Money approved offline in the current window, cents.
    pub used_cents: Cents,
    /// `offline.total_cents`.
    pub cap_cents: Cents,
    /// Approvals made offline in the current window.
    pub used_count: u64,
    /// `offline.total_count`.
    pub cap_count: u64,
    /// `offline.per_transaction_cents`.
    pub per_transaction_cents: Cents,
    /// `offline.per_ticket_cents`.
    pub per_ticket_cents: Cents,
}

/// Calls left in the ATS client's budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtsBudget {
    /// This minute.
    pub minute: u32,
    /// Today.
    pub day: u32,
}

/// Where the background prefetch stands (see `agent::prefetch::PrefetchProgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchStatus {
    /// The event being (or last) fetched.
    pub event: String,
    /// `idle`, `fetching`, `waiting`, `done` or `stopped`.
    pub state: String,
    /// Pages written in the pass.
    pub pages: u64,
    /// Tickets written in the pass.
    pub tickets: u64,
    /// While waiting for the rate budget: how long, ms.
    pub wait_ms: u64,
    /// When the last pass completed, RFC 3339 UTC.
    pub completed: Option<String>,
    /// Why the last pass stopped short.
    pub last_error: Option<String>,
}

/// The ticket cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Cached tickets.
    pub entries: u64,
    /// Size of the whole store database on disk.
    pub bytes_on_disk: u64,
    /// Fetch time of the oldest cached record, RFC 3339 UTC.
    pub oldest_fetched: Option<String>,
    /// Fetch time of the newest cached record, RFC 3339 UTC.
    pub newest_fetched: Option<String>,
    /// When these were counted, RFC 3339 UTC.
    pub counted_at: String,
}

impl CacheStatus {
    /// Counts the cache of `store` now (reads every entry).
    pub fn count(store: &Store, now_ms: u64) -> Result<CacheStatus, StoreError> {
        let s = store.cache_stats()?;
        Ok(CacheStatus {
            entries: s.entries,
            bytes_on_disk: s.bytes_on_disk,
            oldest_fetched: s.oldest_fetched_ms.map(rfc3339_ms),
            newest_fetched: s.newest_fetched_ms.map(rfc3339_ms),
            counted_at: rfc3339_ms(now_ms),
        })
    }
}

/// Free space under the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// The store directory.
    pub store_dir: String,
    /// Bytes free to the agent (`statvfs`); `None` when it could not be read.
    pub free_bytes: Option<u64>,
    /// `store_min_free_mb` in bytes: below it approvals stop.
    pub min_free_bytes: u64,
}

impl DiskStatus {
    /// Reads the free space under `dir` now.
    pub fn read(dir: &Path, min_free_bytes: u64) -> DiskStatus {
        DiskStatus {
            store_dir: dir.display().to_string(),
            free_bytes: crate::store::headroom::free_bytes(dir).ok(),
            min_free_bytes,
        }
    }

    /// True when approvals are refused for lack of space.
    pub fn is_low(&self) -> bool {
        self.free_bytes.is_some_and(|f| f < self.min_free_bytes)
    }
}

/// The wall clock against ATS's (`clock::ClockState`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// `ok`, `unchecked`, `wrong (+36000 s)`, or `unknown` (no agent running).
    pub state: String,
    /// False while nothing is approved from the cache (`clock_unsure`).
    pub trusted: bool,
    /// Local minus ATS, ms, at the last comparison.
    pub skew_ms: Option<i64>,
}

impl ClockStatus {
    /// From the agent's judgement.
    pub fn from_state(s: crate::clock::ClockState) -> ClockStatus {
        use crate::clock::ClockState;
        let skew_ms = match s {
            ClockState::Unchecked => None,
            ClockState::Agrees { skew_ms } => Some(skew_ms),
            ClockState::Wrong { skew_ms } => skew_ms,
        };
        ClockStatus {
            state: s.describe(),
            trusted: s.is_trusted(),
            skew_ms,
        }
    }
}

/// Replaces `path` with `data` atomically: written to a temporary file in the same
/// directory, then renamed over it, so a reader (`status`, node_exporter) sees the old
/// file or the new one, never half of one. Not synced: a status lost in a power cut is
/// rewritten a second later.
pub fn write_replacing(path: &Path, data: &[u8]) -> Result<(), StatusError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A leading dot keeps node_exporter's `*.prom` glob off the half-written file.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let err = |op| {
        move |source| StatusError::File {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err("write"))
}

/// Writes `snapshot` into the store directory `store_dir`.
pub fn publish(store_dir: &Path, snapshot: &StatusSnapshot) -> Result<(), StatusError> {
    let mut text = serde_json::to_vec_pretty(snapshot).unwrap_or_default();
    text.push(b'\n');
    write_replacing(&path(store_dir), &text)
}

/// The last snapshot published for the store in `store_dir` (`None` when there is
/// none).
pub fn read(store_dir: &Path) -> Result<Option<StatusSnapshot>, StatusError> {
    let p = path(store_dir);
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StatusError::File {
                path: p,
                op: "read",
                source,
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| StatusError::Parse {
            path: p,
            detail: e.to_string(),
        })
}

/// What the store itself says, with no agent running: mode `stopped`, and what only a
/// running agent knows (ATS budget, clock) left out. The caller adds what its
/// configuration tells apart: the prefetch cursors of its events
/// ([`stored_prefetch`]) and, in venue mode, the uploads owed.
pub struct FromStore<'a> {
    /// The open store (or a copy of it).
    pub store: &'a Store,
    /// The store's directory (for the free space).
    pub store_dir: &'a Path,
    /// The terminal id.
    pub terminal: &'a str,
    /// The offline caps, as `[offline]` sets them.
    pub caps: OfflineExposure,
    /// `store_min_free_mb` in bytes.
    pub min_free_bytes: u64,
    /// The venue's offset from UTC.
    pub utc_offset_minutes: i32,
    /// Now, wall ms.
    pub now_ms: u64,
}

/// The status of a store no agent holds (see [`FromStore`]). `mode_since` is when the
/// last agent last published (it stopped after that).
pub fn from_store(args: &FromStore<'_>) -> Result<StatusSnapshot, StatusError> {
    let today = crate::date::local_date(args.now_ms, args.utc_offset_minutes);
    let (totals, newest) = DayTotals::from_journal(args.store, &today, args.utc_offset_minutes)?;
    let usage = args.store.offline_usage()?;
    let last_seen = read(args.store_dir).ok().flatten().map(|s| s.as_of_ms);
    Ok(StatusSnapshot {
        version: VERSION.into(),
        terminal: args.terminal.into(),
        source: "store".into(),
        as_of_ms: args.now_ms,
        as_of: rfc3339_ms(args.now_ms),
        pid: None,
        mode: "stopped".into(),
        mode_since_ms: last_seen,
        mode_since: last_seen.map(rfc3339_ms),
        last_decision: newest.as_ref().map(LastDecision::from_entry),
        today: totals,
        offline: OfflineExposure {
            used_cents: usage.cents,
            used_count: usage.count,
            ..args.caps.clone()
        },
        pending_uploads: None,
        venue_mode: false,
        ats_budget: None,
        ats_calls: None,
        presence_budget: None,
        presence_calls: None,
        prefetch: None,
        cache: Some(CacheStatus::count(args.store, args.now_ms)?),
        journal_entries: args.store.journal_len() as u64,
        disk: DiskStatus::read(args.store_dir, args.min_free_bytes),
        clock: ClockStatus {
            state: "unknown".into(),
            trusted: true,
            skew_ms: None,
        },
    })
}

/// Where the listing passes of `events` stood when the last agent stopped, from the
/// store's cursors (`status` of a stopped stand): the first event whose pass did not
/// complete (`stopped`, with the pages it kept: the next prefetch resumes there), else
/// the last one (`done`). `None` when no pass of them was ever started here.
pub fn stored_prefetch(store: &Store, events: &[String]) -> Option<PrefetchStatus> {
    let cursors: Vec<_> = events
        .iter()
        .filter_map(|e| Some((e, store.prefetch_cursor(e).ok()??)))
        .collect();
    let (event, c) = cursors
        .iter()
        .find(|(_, c)| !c.complete)
        .or_else(|| cursors.last())?;
    Some(PrefetchStatus {
        event: (*event).clone(),
        state: if c.complete { "done" } else { "stopped" }.into(),
        pages: c.pages,
        tickets: c.tickets,
        wait_ms: 0,
        completed: c.completed_ms.or(c.last_complete_pass_ms).map(rfc3339_ms),
        last_error: None,
    })
}

/// True while process `pid` exists (Linux: `/proc/PID`).
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The refusal of a command that needs the store while the running agent holds it:
/// says who holds it, why that blocks `command`, and what to do instead (`instead`).
pub fn held_message(store_dir: &Path, command: &str, instead: &str) -> String {
    let who = match read(store_dir).ok().flatten().and_then(|s| s.pid) {
        Some(pid) if pid_alive(pid) => format!("the running agent (pid {pid})"),
        _ => "another process (a running agent, or a command such as `cache prefetch`)".into(),
    };
    format!(
        "{command}: the store {} is held by {who}: sled lets one process open a store. {instead}",
        store_dir.display()
    )
}

/// What `journal export` says while an agent runs that has no export socket (an
/// older agent, or one that could not create it).
pub const EXPORT_WHILE_RUNNING: &str = "It does not answer exports on its socket \
    (an agent older than this command, or one that could not create STORE_DIR/control.sock: \
    see its log), and a copy taken under a running agent is not consistent (sled \
    rewrites its files in place while the copy is read, so entries could be missing): \
    stop it (systemctl stop concession-agent; every scan already read is journaled \
    first, nothing is lost), export, start it again.";

/// What `lookup` says while the agent runs.
pub const LOOKUP_WHILE_RUNNING: &str = "lookup judges with this terminal's ledger, \
    which only the agent can read now: scan the ticket at the stand, or ask ATS \
    what it holds with \
    `concession-agent call get_av_barcodes barcode=...` (that leaves out what this \
    terminal redeemed and ATS has not yet reflected), or stop the agent.";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with every part set (the text view's tests use it too).
    pub(crate) fn sample() -> StatusSnapshot {
        StatusSnapshot {
            version: VERSION.into(),
            terminal: "stand-7".into(),
            source: "agent".into(),
            as_of_ms: 1_764_600_000_000,
            as_of: rfc3339_ms(1_764_600_000_000),
            pid: Some(42),
            mode: "offline".into(),
            mode_since_ms: Some(1_764_599_700_000),
            mode_since: Some(rfc3339_ms(1_764_599_700_000)),
            last_decision: Some(LastDecision {
                id: "stand-7-000000000003".into(),
                time: rfc3339_ms(1_764_599_990_000),
                kind: "decision".into(),
                decision: "approve".into(),
                reason: "approved".into(),
                approved_cents: 2000,
                source: "offline".into(),
                barcode: "********0001".into(),
            }),
            today: DayTotals {
                date: "2025-12-01".into(),
                decisions: 3,
                approvals: 2,
                offline_approvals: 1,
                approved_cents: 3500,
                voids: 1,
                refunded_cents: 500,
            },
            offline: OfflineExposure {
                used_cents: 2000,
                cap_cents: 50_000,
                used_count: 1,
                cap_count: 50,
                per_transaction_cents: 5000,
                per_ticket_cents: 5000,
            },
            pending_uploads: None,
            venue_mode: false,
            ats_budget: Some(AtsBudget {
                minute: 70,
                day: 4900,
            }),
            ats_calls: None,
            presence_budget: None,
            presence_calls: None,
            prefetch: Some(PrefetchStatus {
                event: "EV1".into(),
                state: "done".into(),
                pages: 2,
                tickets: 900,
                ..PrefetchStatus::default()
            }),
            cache: None,
            journal_entries: 4,
            disk: DiskStatus {
                store_dir: "/var/lib/concession-agent".into(),
                free_bytes: Some(4 * 1024 * 1024),
                min_free_bytes: 8 * 1024 * 1024,
            },
            clock: ClockStatus {
                state: "ok".into(),
                trusted: true,
                skew_ms: Some(12),
            },
        }
    }

    #[test]
    fn a_published_snapshot_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let s = sample();
        publish(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(s.clone()));
        // Replaced, not appended; no temporary file left behind.
        let mut t = s;
        t.mode = "online".into();
        publish(dir.path(), &t).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().mode, "online");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![STATUS_FILE.to_string()]);
    }

    #[test]
    fn a_foreign_status_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"not\": 1}").unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.to_string().contains("status.json"), "{e}");
    }
}
