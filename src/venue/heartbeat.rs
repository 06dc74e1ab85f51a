//! Heartbeats: every terminal's status in the venue database, and the venue's view of
//! them (`venue status`, `venue dashboard`; issue 14 item 3).
//!
//! # Writing (on the terminal)
//!
//! The agent's status publisher offers each [`StatusSnapshot`] it builds to the
//! [`VenueLink`]; the venue worker, when it has nothing else to do (its idle tick, or
//! right after a job when no other job waits), upserts the newest one into
//! `venue_heartbeats` at most every [`HEARTBEAT_EVERY`]: one short statement keyed by the
//! terminal id, on the connection it already holds. It never connects for a heartbeat
//! (the idle tick reconnects anyway) and never runs while a scan's job is queued, so a
//! heartbeat costs a decision at most the one statement it may arrive behind. At stop
//! the worker writes the last snapshot (mode `stopping`) once more, so a stand that was
//! stopped reads as stopped, not as silent.
//!
//! `seen_at` is the database's `now()`, and "how long ago" is measured against the
//! database's clock too, so a terminal whose wall clock is wrong is still judged
//! rightly.
//!
//! # Reading (venue IT)
//!
//! [`read_report`] lists every terminal that ever sent a heartbeat, with its last
//! snapshot, and the overdrafts recorded in `venue_decisions` since the venue day
//! began (also for terminals that never sent one: an older agent). A terminal whose
//! last heartbeat is older than the threshold is `silent`.

use std::time::{Duration, Instant};

use postgres::Client;
use serde::{Deserialize, Serialize};

use super::error::VenueError;
use crate::status::{
    AtsBudget, DayTotals, LastDecision, OfflineExposure, PrefetchStatus, StatusSnapshot, VenueLink,
};
use crate::store::rfc3339_ms;

/// The least time between two heartbeats of one terminal.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// A terminal silent for longer than this is `silent` (default of `--silent-after-s`):
/// five heartbeats missed.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(15);

const UPSERT_SQL: &str = "INSERT INTO venue_heartbeats
         (terminal, seen_at, reported_at, mode, version, pending_uploads, status)
     VALUES ($1, now(), to_timestamp($2::bigint / 1000.0), $3, $4, $5, ($6::text)::jsonb)
     ON CONFLICT (terminal) DO UPDATE SET
         seen_at = now(), reported_at = EXCLUDED.reported_at, mode = EXCLUDED.mode,
         version = EXCLUDED.version, pending_uploads = EXCLUDED.pending_uploads,
         status = EXCLUDED.status";

/// The worker's heartbeat state.
#[derive(Debug, Default)]
pub(super) struct Beat {
    /// Where the snapshots come from.
    pub(super) link: VenueLink,
    /// The number of the last snapshot written.
    pub(super) sent: u64,
    /// When the last heartbeat was written (or failed).
    pub(super) at: Option<Instant>,
    /// The last one failed (logged once until one succeeds).
    pub(super) failing: bool,
}

impl Beat {
    /// For a worker sharing `link` with the publisher.
    pub(super) fn new(link: VenueLink) -> Beat {
        Beat {
            link,
            sent: 0,
            at: None,
            failing: false,
        }
    }
}

/// The one statement of a heartbeat.
pub(super) fn upsert(client: &mut Client, s: &StatusSnapshot) -> Result<(), VenueError> {
    let json = serde_json::to_string(s).map_err(|e| VenueError::Away(e.to_string()))?;
    let as_of = i64::try_from(s.as_of_ms).unwrap_or(i64::MAX);
    let pending = s
        .pending_uploads
        .map(|p| i64::try_from(p).unwrap_or(i64::MAX));
    client.execute(
        UPSERT_SQL,
        &[&s.terminal, &as_of, &s.mode, &s.version, &pending, &json],
    )?;
    Ok(())
}

/// Overdrafts of one terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overdrafts {
    /// Entries that overdrew a line.
    pub count: u64,
    /// Money taken beyond the loaded value, cents.
    pub cents: u64,
    /// Items taken beyond the loaded count.
    pub items: u64,
}

/// One terminal in the venue's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalRow {
    /// The terminal id.
    pub terminal: String,
    /// `ok`, `offline`, `low_disk`, `stopped`, `silent` (no heartbeat within the
    /// threshold) or `no_heartbeat` (known only from its overdrafts).
    pub state: String,
    /// True when the row needs a look: any state but `ok`, or an overdraft.
    pub attention: bool,
    /// When the database last heard from it, RFC 3339 UTC.
    pub last_seen: Option<String>,
    /// How long ago that was, by the database's clock, ms.
    pub seen_ago_ms: Option<u64>,
    /// The agent's mode in its last heartbeat (`online`, `offline`, ...).
    pub mode: Option<String>,
    /// Since when, RFC 3339 UTC.
    pub mode_since: Option<String>,
    /// The agent's version.
    pub version: Option<String>,
    /// Journal entries not yet in the venue database.
    pub pending_uploads: Option<u64>,
    /// Offline exposure against its caps.
    pub offline: Option<OfflineExposure>,
    /// Its venue day so far.
    pub today: Option<DayTotals>,
    /// The ATS budget it has left.
    pub ats_budget: Option<AtsBudget>,
    /// Its background prefetch.
    pub prefetch: Option<PrefetchStatus>,
    /// Its newest journal entry (barcode masked).
    pub last_decision: Option<LastDecision>,
    /// Overdrafts recorded for it since the venue day began.
    pub overdrafts: Overdrafts,
}

/// The venue-wide ATS budget (the shared budget's tables, issue 13 item 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueBudget {
    /// Calls left this minute, venue-wide.
    pub minute: u64,
    /// Calls left today, venue-wide.
    pub day: u64,
    /// An event's first pass is being fetched: the venue's scan lookups keep to the
    /// reserve until it completes (docs/venue.md, "The first pass comes first").
    #[serde(default)]
    pub first_pass: bool,
}

/// Sums over the terminals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueTotals {
    /// Terminals listed.
    pub terminals: u64,
    /// Of which in state `ok`.
    pub ok: u64,
    /// Of which silent.
    pub silent: u64,
    /// Decisions today (as each terminal reported).
    pub decisions: u64,
    /// Money approved today, cents.
    pub approved_cents: u64,
    /// Journal entries not yet uploaded, all terminals.
    pub pending_uploads: u64,
    /// Overdrafts since the venue day began, all terminals.
    pub overdrafts: Overdrafts,
}

/// One event's fetch for the venue (`venue_fetch_leases`, docs/venue.md "One fetch per
/// event"): who holds the lease and where the pass stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRow {
    /// The event (lower case, as the lease is keyed).
    pub event: String,
    /// The stand that holds, or last held, the lease.
    pub holder: String,
    /// The lease has not expired.
    pub live: bool,
    /// Pages written in the current (or last) pass.
    pub pages: u64,
    /// Tickets written in it.
    pub tickets: u64,
    /// No pass is running.
    pub pass_complete: bool,
    /// A pass of this event has completed at some point.
    pub ever_completed: bool,
    /// When the last pass completed, RFC 3339 UTC.
    pub completed_at: Option<String>,
    /// How often another stand took the lease over.
    pub taken_over: u64,
}

/// What `venue status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VenueReport {
    /// The database's time of the report, RFC 3339 UTC.
    pub as_of: String,
    /// The threshold for `silent`, s.
    pub silent_after_s: u64,
    /// Overdrafts are counted from here (the venue day's start), RFC 3339 UTC.
    pub overdrafts_since: String,
    /// Every terminal, by id.
    pub terminals: Vec<TerminalRow>,
    /// Sums.
    pub totals: VenueTotals,
    /// The venue-wide ATS budget; `None` until the shared budget (issue 13 item 1) is
    /// in this database: each terminal's own budget is in its row meanwhile.
    pub venue_budget: Option<VenueBudget>,
    /// Each event's venue fetch (empty before any stand took a lease).
    #[serde(default)]
    pub fetches: Vec<FetchRow>,
}

/// The state of a terminal from its last heartbeat.
fn state_of(mode: &str, ago: Duration, silent_after: Duration) -> &'static str {
    if mode == "stopping" || mode == "stopped" {
        // It said goodbye: not silent, stopped.
        return "stopped";
    }
    if ago > silent_after {
        return "silent";
    }
    match mode {
        "online" => "ok",
        "offline" => "offline",
        "low_disk" => "low_disk",
        _ => "unknown",
    }
}

/// Midnight of the venue day holding `now_ms`, wall ms.
pub fn day_start_ms(now_ms: u64, utc_offset_minutes: i32) -> u64 {
    let off = i64::from(utc_offset_minutes) * 60_000;
    let local = now_ms as i64 + off;
    let start = local.div_euclid(86_400_000) * 86_400_000 - off;
    start.max(0) as u64
}

/// Reads the venue's view of its terminals (see the module docs).
pub fn read_report(
    client: &mut Client,
    silent_after: Duration,
    utc_offset_minutes: i32,
) -> Result<VenueReport, VenueError> {
    let row = client.query_one(
        "SELECT (extract(epoch FROM now()) * 1000)::bigint,
                to_regclass('venue_heartbeats') IS NOT NULL",
        &[],
    )?;
    let now_ms: i64 = row.get(0);
    if !row.get::<_, bool>(1) {
        return Err(VenueError::OldSchema {
            found: super::schema::current_version(client)?,
            known: super::schema::LATEST,
        });
    }
    let now_ms = now_ms.max(0) as u64;
    let since_ms = day_start_ms(now_ms, utc_offset_minutes);
    let mut rows: Vec<TerminalRow> = Vec::new();
    for r in client.query(
        "SELECT terminal, (extract(epoch FROM seen_at) * 1000)::bigint,
                greatest((extract(epoch FROM now() - seen_at) * 1000)::bigint, 0),
                mode, version, pending_uploads, status::text
         FROM venue_heartbeats ORDER BY terminal",
        &[],
    )? {
        let terminal: String = r.get(0);
        let seen_ms: i64 = r.get(1);
        let ago_ms: i64 = r.get(2);
        let mode: String = r.get(3);
        let version: String = r.get(4);
        let pending: Option<i64> = r.get(5);
        let status: String = r.get(6);
        // A newer agent's snapshot may carry more; an unreadable one still shows its
        // columns.
        let snap: Option<StatusSnapshot> = serde_json::from_str(&status).ok();
        let ago = Duration::from_millis(ago_ms.max(0) as u64);
        let state = state_of(&mode, ago, silent_after);
        rows.push(TerminalRow {
            terminal,
            state: state.into(),
            attention: false,
            last_seen: Some(rfc3339_ms(seen_ms.max(0) as u64)),
            seen_ago_ms: Some(ago_ms.max(0) as u64),
            mode_since: snap.as_ref().and_then(|s| s.mode_since.clone()),
            mode: Some(mode),
            version: Some(version),
            pending_uploads: pending.map(|p| p.max(0) as u64),
            offline: snap.as_ref().map(|s| s.offline.clone()),
            today: snap.as_ref().map(|s| s.today.clone()),
            ats_budget: snap.as_ref().and_then(|s| s.ats_budget),
            prefetch: snap.as_ref().and_then(|s| s.prefetch.clone()),
            last_decision: snap.and_then(|s| s.last_decision),
            overdrafts: Overdrafts::default(),
        });
    }
    let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
    // The partial index on overdrafts serves this.
    for r in client.query(
        "SELECT terminal, count(*)::bigint, coalesce(sum(overdraft_cents), 0)::bigint,
                coalesce(sum(overdraft_items), 0)::bigint
         FROM venue_decisions
         WHERE (overdraft_cents > 0 OR overdraft_items > 0)
           AND recorded_at >= to_timestamp($1::bigint / 1000.0)
         GROUP BY terminal",
        &[&since],
    )? {
        let terminal: String = r.get(0);
        let o = Overdrafts {
            count: r.get::<_, i64>(1).max(0) as u64,
            cents: r.get::<_, i64>(2).max(0) as u64,
            items: r.get::<_, i64>(3).max(0) as u64,
        };
        match rows.iter_mut().find(|t| t.terminal == terminal) {
            Some(t) => t.overdrafts = o,
            None => rows.push(TerminalRow {
                terminal,
                state: "no_heartbeat".into(),
                attention: true,
                last_seen: None,
                seen_ago_ms: None,
                mode: None,
                mode_since: None,
                version: None,
                pending_uploads: None,
                offline: None,
                today: None,
                ats_budget: None,
                prefetch: None,
                last_decision: None,
                overdrafts: o,
            }),
        }
    }
    rows.sort_by(|a, b| a.terminal.cmp(&b.terminal));
    let venue_budget = read_venue_budget(client)?;
    let mut report = summarize(rows, now_ms, since_ms, silent_after, venue_budget);
    report.fetches = read_fetches(client)?;
    Ok(report)
}

/// Every event's lease and pass, by event.
fn read_fetches(client: &mut Client) -> Result<Vec<FetchRow>, VenueError> {
    let rows = client.query(
        "SELECT event, holder, expires_at > now(), pages, tickets, pass_complete,
                last_complete_pass_ms IS NOT NULL,
                to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                taken_over
           FROM venue_fetch_leases ORDER BY event",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| FetchRow {
            event: r.get(0),
            holder: r.get(1),
            live: r.get(2),
            pages: r.get::<_, i64>(3).max(0) as u64,
            tickets: r.get::<_, i64>(4).max(0) as u64,
            pass_complete: r.get(5),
            ever_completed: r.get(6),
            completed_at: r.get(7),
            taken_over: r.get::<_, i64>(8).max(0) as u64,
        })
        .collect())
}

/// One line of the text view for `f`.
fn fetch_line(f: &FetchRow) -> String {
    let lease = if f.live {
        format!("held by {}", f.holder)
    } else {
        format!("lease free (last held by {})", f.holder)
    };
    let pass = match (f.pass_complete, f.ever_completed) {
        (true, false) => "no pass yet".to_string(),
        (false, _) => format!(
            "{} running: {} pages, {} tickets so far",
            if f.ever_completed {
                "refresh"
            } else {
                "first pass"
            },
            f.pages,
            f.tickets
        ),
        (true, true) => format!(
            "last pass complete: {} pages, {} tickets{}",
            f.pages,
            f.tickets,
            f.completed_at
                .as_deref()
                .map(|c| format!(" at {c}"))
                .unwrap_or_default()
        ),
    };
    format!(
        "fetch of {}: {lease}; {pass}; taken over {} times",
        f.event, f.taken_over
    )
}

/// `venue status` from a CLI command: connects (blocking is fine there) and reads.
pub fn status_now(
    settings: &super::config::VenueSettings,
    app: &str,
    silent_after: Duration,
    utc_offset_minutes: i32,
) -> Result<VenueReport, VenueError> {
    let mut client = super::connect::connect(settings, app)?;
    read_report(&mut client, silent_after, utc_offset_minutes)
}

/// The venue-wide ATS budget of the key the stands last claimed for (`budget.rs`): its
/// limits less the calls reported in the window and the allowances the stands hold,
/// as `venue_ats_claim` counts them. `None` before any stand has claimed.
fn read_venue_budget(client: &mut Client) -> Result<Option<VenueBudget>, VenueError> {
    let row = client.query_opt(
        "SELECT greatest(0, k.per_minute - coalesce((SELECT sum(c.calls) FROM venue_ats_calls c \
                 WHERE c.key_hash = k.key_hash AND c.reported_at > now() - interval '60 seconds'), 0) \
                 - coalesce((SELECT sum(a.calls) FROM venue_ats_allowances a \
                 WHERE a.key_hash = k.key_hash AND a.expires_at > now()), 0))::bigint, \
                greatest(0, k.per_day - coalesce((SELECT sum(c.calls) FROM venue_ats_calls c \
                 WHERE c.key_hash = k.key_hash AND c.reported_at > now() - interval '1 day'), 0) \
                 - coalesce((SELECT sum(a.calls) FROM venue_ats_allowances a \
                 WHERE a.key_hash = k.key_hash AND a.expires_at > now()), 0))::bigint \
                , EXISTS (SELECT 1 FROM venue_fetch_leases f WHERE f.expires_at > now() \
                 AND NOT f.pass_complete AND f.last_complete_pass_ms IS NULL) \
           FROM venue_ats_keys k ORDER BY k.updated_at DESC LIMIT 1",
        &[],
    )?;
    Ok(row.map(|r| VenueBudget {
        minute: r.get::<_, i64>(0).max(0) as u64,
        day: r.get::<_, i64>(1).max(0) as u64,
        first_pass: r.get(2),
    }))
}

/// Flags and sums (pure).
pub fn summarize(
    mut rows: Vec<TerminalRow>,
    now_ms: u64,
    since_ms: u64,
    silent_after: Duration,
    venue_budget: Option<VenueBudget>,
) -> VenueReport {
    let mut t = VenueTotals::default();
    for r in &mut rows {
        r.attention = r.state != "ok" || r.overdrafts.count > 0;
        t.terminals += 1;
        t.ok += u64::from(r.state == "ok");
        t.silent += u64::from(r.state == "silent");
        if let Some(d) = &r.today {
            t.decisions += d.decisions;
            t.approved_cents = t.approved_cents.saturating_add(d.approved_cents);
        }
        t.pending_uploads += r.pending_uploads.unwrap_or(0);
        t.overdrafts.count += r.overdrafts.count;
        t.overdrafts.cents = t.overdrafts.cents.saturating_add(r.overdrafts.cents);
        t.overdrafts.items += r.overdrafts.items;
    }
    VenueReport {
        as_of: rfc3339_ms(now_ms),
        silent_after_s: silent_after.as_secs(),
        overdrafts_since: rfc3339_ms(since_ms),
        terminals: rows,
        totals: t,
        venue_budget,
        fetches: Vec::new(),
    }
}

/// `venue status --format text`.
pub fn render_report(r: &VenueReport) -> String {
    use crate::status::dollars;
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "venue status at {} ({} terminals, {} ok, {} silent; silent after {} s)",
        r.as_of, r.totals.terminals, r.totals.ok, r.totals.silent, r.silent_after_s
    );
    let _ = writeln!(
        out,
        "{:<16} {:<12} {:<10} {:<8} {:>7}  {:<22} {:<22} {:<18} ATS LEFT (MIN/DAY)",
        "TERMINAL", "STATE", "LAST SEEN", "MODE", "PENDING", "OFFLINE USED", "TODAY", "OVERDRAFTS"
    );
    for t in &r.terminals {
        let state = if t.attention {
            t.state.to_uppercase()
        } else {
            t.state.clone()
        };
        let seen = t
            .seen_ago_ms
            .map(|ms| format!("{} ago", crate::status::ago(ms, 0)))
            .unwrap_or_else(|| "never".into());
        let offline = t
            .offline
            .as_ref()
            .map(|o| format!("{} of {}", dollars(o.used_cents), dollars(o.cap_cents)))
            .unwrap_or_else(|| "-".into());
        let today = t
            .today
            .as_ref()
            .map(|d| format!("{} dec {}", d.decisions, dollars(d.approved_cents)))
            .unwrap_or_else(|| "-".into());
        let over = if t.overdrafts.count == 0 {
            "none".to_string()
        } else {
            format!(
                "{} ({}{})",
                t.overdrafts.count,
                dollars(t.overdrafts.cents),
                if t.overdrafts.items > 0 {
                    format!(", {} items", t.overdrafts.items)
                } else {
                    String::new()
                }
            )
        };
        let budget = t
            .ats_budget
            .map(|b| format!("{}/{}", b.minute, b.day))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<16} {:<12} {:<10} {:<8} {:>7}  {:<22} {:<22} {:<18} {}",
            t.terminal,
            state,
            seen,
            t.mode.as_deref().unwrap_or("-"),
            t.pending_uploads
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            offline,
            today,
            over,
            budget
        );
    }
    let _ = writeln!(
        out,
        "today: {} decisions, {} approved; {} entries pending upload; {} overdrafts ({}) since {}",
        r.totals.decisions,
        dollars(r.totals.approved_cents),
        r.totals.pending_uploads,
        r.totals.overdrafts.count,
        dollars(r.totals.overdrafts.cents),
        r.overdrafts_since
    );
    let _ = match r.venue_budget {
        Some(b) => writeln!(
            out,
            "venue-wide ATS budget: {} calls left this minute, {} today{}",
            b.minute,
            b.day,
            if b.first_pass {
                " (first pass under way: scan lookups keep to the reserve until it completes)"
            } else {
                ""
            }
        ),
        None => writeln!(
            out,
            "venue-wide ATS budget: no stand has claimed from it yet (each terminal's own \
             budget is under ATS LEFT)"
        ),
    };
    for f in &r.fetches {
        let _ = writeln!(out, "{}", fetch_line(f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(terminal: &str, state: &str) -> TerminalRow {
        TerminalRow {
            terminal: terminal.into(),
            state: state.into(),
            attention: false,
            last_seen: None,
            seen_ago_ms: Some(1000),
            mode: Some("online".into()),
            mode_since: None,
            version: Some("0.1.0".into()),
            pending_uploads: Some(2),
            offline: None,
            today: Some(DayTotals {
                decisions: 3,
                approved_cents: 1500,
                ..DayTotals::default()
            }),
            ats_budget: None,
            prefetch: None,
            last_decision: None,
            overdrafts: Overdrafts::default(),
        }
    }

    #[test]
    fn a_terminal_past_the_threshold_is_silent_and_a_stopped_one_is_stopped() {
        let t = Duration::from_secs(15);
        assert_eq!(state_of("online", Duration::from_secs(2), t), "ok");
        assert_eq!(state_of("online", Duration::from_secs(16), t), "silent");
        assert_eq!(state_of("offline", Duration::from_secs(2), t), "offline");
        assert_eq!(state_of("stopping", Duration::from_secs(99), t), "stopped");
    }

    #[test]
    fn an_overdraft_or_a_state_but_ok_needs_attention_and_totals_add_up() {
        let mut b = row("stand-2", "silent");
        b.overdrafts = Overdrafts {
            count: 1,
            cents: 500,
            items: 0,
        };
        let mut c = row("stand-3", "ok");
        c.overdrafts.count = 1;
        let r = summarize(
            vec![row("stand-1", "ok"), b, c],
            0,
            0,
            DEFAULT_SILENT_AFTER,
            None,
        );
        let att: Vec<bool> = r.terminals.iter().map(|t| t.attention).collect();
        assert_eq!(att, vec![false, true, true]);
        assert_eq!(r.totals.decisions, 9);
        assert_eq!(r.totals.approved_cents, 4500);
        assert_eq!(r.totals.pending_uploads, 6);
        assert_eq!(r.totals.overdrafts.count, 2);
        assert_eq!((r.totals.ok, r.totals.silent), (2, 1));
        let text = render_report(&r);
        assert!(text.contains("SILENT"), "{text}");
        assert!(
            text.contains("venue-wide ATS budget: no stand has claimed"),
            "{text}"
        );
    }

    #[test]
    fn the_venue_day_starts_at_local_midnight() {
        // 2025-12-01T05:30:00Z at UTC-6 is 2025-11-30 23:30 local.
        let now = 1_764_567_000_000;
        let start = day_start_ms(now, -360);
        assert_eq!(rfc3339_ms(start), "2025-11-30T06:00:00.000Z");
        assert_eq!(rfc3339_ms(day_start_ms(now, 0)), "2025-12-01T00:00:00.000Z");
    }
}
