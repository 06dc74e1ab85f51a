//! The key's ATS budget in the venue database (issue 13, item 1; docs/venue.md, "One
//! budget for the key").
//!
//! The client draws from an allowance it holds ([`crate::ats::shared_budget`]); this
//! part claims allowances, on the decision worker's connection (one short statement:
//! `SELECT * FROM venue_ats_claim(...)`, run after a job or on the idle tick when the
//! allowance runs low, nears its expiry, or a draw found it empty).
//!
//! # The accounting (migration [`MIGRATION_SQL`])
//!
//! Everything is keyed by a SHA-256 of the API key ([`key_hash`]), never the key.
//!
//! - `venue_ats_keys`: one row per key, locked by every claim (claims of one key run one
//!   at a time, and each sees the others' committed rows: PL/pgSQL takes a fresh snapshot
//!   per statement under READ COMMITTED).
//! - `venue_ats_allowances`: each stand's allowance in hand (`calls`, `expires_at`).
//!   Counted in full while it lasts, and at its expiry once it has ended unreported (a
//!   stand that died with it).
//! - `venue_ats_calls`: the calls each stand reported (at the claim that reports them,
//!   which is after they were made).
//!
//! A claim reports the calls made since the last one and the allowance still in hand
//! (kept, now to the new expiry), and is granted new calls only while the key's
//! minute (and day) holds them: reported calls of the last 60 s, plus every allowance
//! counted as above, plus the grant, never above `ats.rate_per_minute`. Calls made from
//! an allowance happen after its grant and are reported no earlier than they happen, so
//! every rolling minute holds at most the limit. Background calls (`any` pool) are
//! granted only while `cache.budget_reserve_per_minute` calls (and the day's share of
//! it) stay free for scans.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use postgres::SimpleQueryMessage;

use crate::ats::shared_budget::{Claim, Grant, SharePlan, SharedBudget, LEASE_LIFETIME};

/// Migration "ats budget": the key's tables and the claim function.
pub const MIGRATION_SQL: &str = r#"
CREATE TABLE venue_ats_keys (
    key_hash   text        PRIMARY KEY,
    per_minute integer     NOT NULL,
    per_day    integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE venue_ats_allowances (
    key_hash   text        NOT NULL,
    terminal   text        NOT NULL,
    calls      integer     NOT NULL CHECK (calls >= 0),
    granted_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key_hash, terminal)
);
CREATE TABLE venue_ats_calls (
    key_hash    text        NOT NULL,
    terminal    text        NOT NULL,
    reported_at timestamptz NOT NULL,
    calls       integer     NOT NULL CHECK (calls > 0)
);
CREATE INDEX venue_ats_calls_window ON venue_ats_calls (key_hash, reported_at);
CREATE FUNCTION venue_ats_claim(
    p_key text, p_terminal text, p_per_minute integer, p_per_day integer,
    p_reserve integer, p_day_reserve integer, p_used integer, p_keep integer,
    p_want_scan integer, p_want_any integer, p_lifetime_ms integer)
RETURNS TABLE (scan integer, any_calls integer, minute_left integer, day_left integer,
               stands integer)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz;
    used_minute bigint;
    used_day bigint;
    held_minute bigint;
    held_day bigint;
    others integer;
    m_left bigint;
    d_left bigint;
    g_scan bigint;
    g_any bigint;
BEGIN
    -- The key's row is the lock: one claim of this key at a time.
    INSERT INTO venue_ats_keys AS k (key_hash, per_minute, per_day)
        VALUES (p_key, p_per_minute, p_per_day)
        ON CONFLICT (key_hash) DO UPDATE
        SET per_minute = EXCLUDED.per_minute, per_day = EXCLUDED.per_day, updated_at = now();
    t := clock_timestamp();
    IF p_used > 0 THEN
        INSERT INTO venue_ats_calls (key_hash, terminal, reported_at, calls)
            VALUES (p_key, p_terminal, t, p_used);
    END IF;
    SELECT coalesce(sum(c.calls) FILTER (WHERE c.reported_at > t - interval '60 seconds'), 0),
           coalesce(sum(c.calls), 0)
      INTO used_minute, used_day
      FROM venue_ats_calls c
     WHERE c.key_hash = p_key AND c.reported_at > t - interval '1 day';
    SELECT coalesce(sum(a.calls) FILTER (WHERE least(a.expires_at, t) > t - interval '60 seconds'), 0),
           coalesce(sum(a.calls) FILTER (WHERE least(a.expires_at, t) > t - interval '1 day'), 0),
           count(*) FILTER (WHERE a.granted_at > t - interval '1 day')
      INTO held_minute, held_day, others
      FROM venue_ats_allowances a
     WHERE a.key_hash = p_key AND a.terminal <> p_terminal;
    m_left := p_per_minute - used_minute - held_minute - p_keep;
    d_left := p_per_day - used_day - held_day - p_keep;
    g_scan := greatest(0, least(p_want_scan, m_left, d_left));
    g_any := greatest(0, least(p_want_any, m_left - g_scan - p_reserve,
                                d_left - g_scan - p_day_reserve));
    INSERT INTO venue_ats_allowances AS a (key_hash, terminal, calls, granted_at, expires_at)
        VALUES (p_key, p_terminal, p_keep + g_scan + g_any, t,
                t + p_lifetime_ms * interval '1 millisecond')
        ON CONFLICT (key_hash, terminal) DO UPDATE
        SET calls = EXCLUDED.calls, granted_at = EXCLUDED.granted_at,
            expires_at = EXCLUDED.expires_at;
    DELETE FROM venue_ats_calls c
     WHERE c.key_hash = p_key AND c.reported_at < t - interval '25 hours';
    DELETE FROM venue_ats_allowances a
     WHERE a.key_hash = p_key AND a.expires_at < t - interval '25 hours';
    RETURN QUERY SELECT g_scan::integer, g_any::integer,
        greatest(0, m_left - g_scan - g_any)::integer,
        greatest(0, d_left - g_scan - g_any)::integer,
        others + 1;
END
$$;
"#;

/// Migration "first pass before scan lookups" (issue 13, cold start): the claim learns
/// which of the calls it reports and keeps are for scans, and while an event's first
/// pass is being fetched (a live lease, a pass running, none complete yet) scans of the whole venue
/// get only the reserve of the key's minute and the pass gets the rest. A page of the
/// pass brings 500 tickets into every stand's cache; a lookup, one: without this, the
/// scans of 16 stands (all cache misses at the doors' opening) took the key's every
/// call and the pass never finished (BENCHMARKS.md section 10).
pub const COLD_START_SQL: &str = r#"
ALTER TABLE venue_ats_calls ADD COLUMN scan_calls integer NOT NULL DEFAULT 0
    CHECK (scan_calls >= 0);
ALTER TABLE venue_ats_allowances ADD COLUMN scan_calls integer NOT NULL DEFAULT 0
    CHECK (scan_calls >= 0);
DROP FUNCTION venue_ats_claim(text, text, integer, integer, integer, integer, integer,
                              integer, integer, integer, integer);
CREATE FUNCTION venue_ats_claim(
    p_key text, p_terminal text, p_per_minute integer, p_per_day integer,
    p_reserve integer, p_day_reserve integer, p_used integer, p_used_scan integer,
    p_keep integer, p_keep_scan integer, p_want_scan integer, p_want_any integer,
    p_lifetime_ms integer)
RETURNS TABLE (scan integer, any_calls integer, minute_left integer, day_left integer,
               stands integer, first_pass boolean)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz;
    used_minute bigint;
    used_day bigint;
    scan_minute bigint;
    held_minute bigint;
    held_day bigint;
    held_scan bigint;
    others integer;
    m_left bigint;
    d_left bigint;
    g_scan bigint;
    g_any bigint;
    cold boolean;
    scan_room bigint;
BEGIN
    -- The key's row is the lock: one claim of this key at a time.
    INSERT INTO venue_ats_keys AS k (key_hash, per_minute, per_day)
        VALUES (p_key, p_per_minute, p_per_day)
        ON CONFLICT (key_hash) DO UPDATE
        SET per_minute = EXCLUDED.per_minute, per_day = EXCLUDED.per_day, updated_at = now();
    t := clock_timestamp();
    IF p_used > 0 THEN
        INSERT INTO venue_ats_calls (key_hash, terminal, reported_at, calls, scan_calls)
            VALUES (p_key, p_terminal, t, p_used, least(greatest(p_used_scan, 0), p_used));
    END IF;
    SELECT coalesce(sum(c.calls) FILTER (WHERE c.reported_at > t - interval '60 seconds'), 0),
           coalesce(sum(c.calls), 0),
           coalesce(sum(c.scan_calls) FILTER (WHERE c.reported_at > t - interval '60 seconds'), 0)
      INTO used_minute, used_day, scan_minute
      FROM venue_ats_calls c
     WHERE c.key_hash = p_key AND c.reported_at > t - interval '1 day';
    SELECT coalesce(sum(a.calls) FILTER (WHERE least(a.expires_at, t) > t - interval '60 seconds'), 0),
           coalesce(sum(a.calls) FILTER (WHERE least(a.expires_at, t) > t - interval '1 day'), 0),
           coalesce(sum(a.scan_calls) FILTER (WHERE least(a.expires_at, t) > t - interval '60 seconds'), 0),
           count(*) FILTER (WHERE a.granted_at > t - interval '1 day')
      INTO held_minute, held_day, held_scan, others
      FROM venue_ats_allowances a
     WHERE a.key_hash = p_key AND a.terminal <> p_terminal;
    m_left := p_per_minute - used_minute - held_minute - p_keep;
    d_left := p_per_day - used_day - held_day - p_keep;
    -- An event's first pass is under way: a live lease, a pass running, and none
    -- completed yet. (Lease times are the database's own, as in lease.rs; a lease held
    -- before any pass started has pass_complete still true.)
    cold := EXISTS (SELECT 1 FROM venue_fetch_leases f
                     WHERE f.expires_at > now() AND NOT f.pass_complete
                       AND f.last_complete_pass_ms IS NULL);
    IF cold THEN
        -- Scans keep to the reserve of the minute, the pass takes the rest.
        scan_room := greatest(0, p_reserve - scan_minute - held_scan - p_keep_scan);
        g_scan := greatest(0, least(p_want_scan, m_left, d_left, scan_room));
        g_any := greatest(0, least(p_want_any, m_left - scan_room,
                                    d_left - g_scan - p_day_reserve));
    ELSE
        g_scan := greatest(0, least(p_want_scan, m_left, d_left));
        g_any := greatest(0, least(p_want_any, m_left - g_scan - p_reserve,
                                    d_left - g_scan - p_day_reserve));
    END IF;
    INSERT INTO venue_ats_allowances AS a
        (key_hash, terminal, calls, scan_calls, granted_at, expires_at)
        VALUES (p_key, p_terminal, p_keep + g_scan + g_any,
                least(greatest(p_keep_scan, 0), p_keep) + g_scan, t,
                t + p_lifetime_ms * interval '1 millisecond')
        ON CONFLICT (key_hash, terminal) DO UPDATE
        SET calls = EXCLUDED.calls, scan_calls = EXCLUDED.scan_calls,
            granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at;
    DELETE FROM venue_ats_calls c
     WHERE c.key_hash = p_key AND c.reported_at < t - interval '25 hours';
    DELETE FROM venue_ats_allowances a
     WHERE a.key_hash = p_key AND a.expires_at < t - interval '25 hours';
    RETURN QUERY SELECT g_scan::integer, g_any::integer,
        greatest(0, m_left - g_scan - g_any)::integer,
        greatest(0, d_left - g_scan - g_any)::integer,
        others + 1, cold;
END
$$;
"#;

/// The claim statement for `claim` of the stand `terminal` on the key `key_hash`
/// under `plan`: one simple query (every argument a number or a quoted text, no
/// prepare), answered by one row that [`grant_of`] reads.
pub fn claim_sql(key_hash: &str, terminal: &str, plan: &SharePlan, claim: &Claim) -> String {
    let n = |v: u32| v.min(i32::MAX as u32);
    format!(
        "SELECT * FROM venue_ats_claim({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        quote(key_hash),
        quote(terminal),
        n(plan.per_minute),
        n(plan.per_day),
        n(plan.reserve_per_minute),
        n(plan.day_reserve()),
        n(claim.used),
        n(claim.used_scan),
        n(claim.keep),
        n(claim.keep_scan),
        n(claim.want_scan),
        n(claim.want_any),
        LEASE_LIFETIME.as_millis(),
    )
}

/// The grant in the answer of [`claim_sql`]; `Err` names the column that is missing or
/// unreadable.
pub fn grant_of(rows: &[SimpleQueryMessage]) -> Result<Grant, String> {
    let row = rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| "the budget claim returned no row".to_string())?;
    let n = |i: usize| -> Result<u32, String> {
        row.get(i)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
            .ok_or_else(|| format!("the budget claim's column {i} is unreadable"))
    };
    Ok(Grant {
        scan: n(0)?,
        any: n(1)?,
        minute_left: n(2)?,
        day_left: n(3)?,
        stands_seen: n(4)?,
        first_pass: row.get(5) == Some("t"),
    })
}

/// The key's name in the venue database: SHA-256 of the API key, hex. The key itself
/// never leaves the terminal's configuration.
pub fn key_hash(apikey: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, apikey.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The worker's link to the shared budget.
#[derive(Clone)]
pub struct BudgetLink {
    pub(super) budget: Arc<SharedBudget>,
    pub(super) key_hash: String,
    pub(super) plan: SharePlan,
    /// A wake-up job is queued: do not queue another (the job queue is the scans').
    pub(super) woken: Arc<AtomicBool>,
    /// The database's refusal of a claim was logged (once: claims retry every 500 ms).
    pub(super) refusal_logged: Arc<AtomicBool>,
}

impl BudgetLink {
    /// The link for `budget`, on the key `apikey` with `plan`.
    pub fn new(budget: Arc<SharedBudget>, apikey: &str, plan: SharePlan) -> BudgetLink {
        BudgetLink {
            budget,
            key_hash: key_hash(apikey),
            plan,
            woken: Arc::new(AtomicBool::new(false)),
            refusal_logged: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The budget.
    pub fn budget(&self) -> &Arc<SharedBudget> {
        &self.budget
    }

    /// Drops the wake-up's clone of the worker's job sender: without this the worker's
    /// queue never disconnects and a stopping agent's worker never sees the end (no
    /// last heartbeat, no orderly close).
    pub(super) fn unwire(&self) {
        self.budget.set_wake(|| {});
    }

    /// Makes a draw that wants a refill queue one claim through `queue` (never
    /// blocking; `queue` says whether the claim job was queued).
    pub(super) fn wire(&self, queue: impl Fn() -> bool + Send + Sync + 'static) {
        let woken = Arc::clone(&self.woken);
        self.budget.set_wake(move || {
            if !woken.swap(true, Ordering::SeqCst) && !queue() {
                woken.store(false, Ordering::SeqCst);
            }
        });
    }
}

/// Quotes a text for SQL (standard strings: quotes doubled).
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stored_as_its_sha256_never_as_itself() {
        let h = key_hash("sandbox-key");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("sandbox"));
        assert_eq!(h, key_hash("sandbox-key"));
        assert_ne!(h, key_hash("sandbox-kez"));
    }

    #[test]
    fn texts_are_quoted_for_sql() {
        assert_eq!(quote("a'b"), "'a''b'");
    }
}
