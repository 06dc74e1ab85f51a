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

use crate::ats::shared_budget::{SharePlan, SharedBudget};

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
