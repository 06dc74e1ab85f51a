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

use crossbeam_channel::Sender;
use postgres::SimpleQueryMessage;

use super::error::VenueError;
use super::worker::{not_connected, Job, Worker};
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

/// The key's name in the venue database: SHA-256 of the API key, hex. The key itself
/// never leaves the terminal's configuration.
pub fn key_hash(apikey: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, apikey.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The worker's link to the shared budget.
#[derive(Clone)]
pub struct BudgetLink {
    budget: Arc<SharedBudget>,
    key_hash: String,
    plan: SharePlan,
    /// A wake-up job is queued: do not queue another (the job queue is the scans').
    woken: Arc<AtomicBool>,
    /// The database's refusal of a claim was logged (once: claims retry every 500 ms).
    refusal_logged: Arc<AtomicBool>,
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

    /// Makes a draw that wants a refill queue one claim on `jobs` (never blocking).
    /// Drops the wake-up's clone of the worker's job sender: without this the worker's
    /// queue never disconnects and a stopping agent's worker never sees the end (no
    /// last heartbeat, no orderly close).
    pub(super) fn unwire(&self) {
        self.budget.set_wake(|| {});
    }

    pub(super) fn wire(&self, jobs: &Sender<Job>) {
        let jobs = jobs.clone();
        let woken = Arc::clone(&self.woken);
        self.budget.set_wake(move || {
            if !woken.swap(true, Ordering::SeqCst) && jobs.try_send(Job::Budget).is_err() {
                woken.store(false, Ordering::SeqCst);
            }
        });
    }
}

/// Quotes a text for SQL (standard strings: quotes doubled).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Worker {
    /// Claims an allowance when one is due (after every job and on the idle tick).
    pub(super) fn budget_tick(&mut self) {
        let Some(link) = self.budget.clone() else {
            return;
        };
        link.woken.store(false, Ordering::SeqCst);
        if !link.budget.claim_due() {
            return;
        }
        let Some(claim) = link.budget.begin_claim() else {
            return;
        };
        let r = self
            .ensure_client(false)
            .and_then(|()| self.ready())
            .and_then(|()| self.claim(&link, &claim));
        match r {
            Ok(grant) => {
                link.budget.granted(&claim, grant);
                link.refusal_logged.store(false, Ordering::SeqCst);
            }
            Err(e) => {
                // The server's own refusal (rights, a schema without the function) is
                // venue IT's to fix: said once; an unreachable database is said elsewhere.
                let refused = matches!(&e, VenueError::Db(pe) if pe.as_db_error().is_some());
                if refused && !link.refusal_logged.swap(true, Ordering::SeqCst) {
                    log::warn!(
                        "venue: the ATS budget claim was refused ({e}): this stand keeps to \
                         its static share (docs/venue.md, \"One budget for the key\")"
                    );
                } else {
                    log::debug!("venue: ats budget claim failed: {e}");
                }
                link.budget.claim_failed(&claim);
                self.failed(&e);
            }
        }
    }

    /// One claim: one statement, one round trip.
    fn claim(&mut self, link: &BudgetLink, c: &Claim) -> Result<Grant, VenueError> {
        let p = &link.plan;
        // Every argument is a number or a quoted text: one simple query, no prepare.
        let sql = format!(
            "SELECT * FROM venue_ats_claim({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            quote(&link.key_hash),
            quote(&self.issuer),
            p.per_minute.min(i32::MAX as u32),
            p.per_day.min(i32::MAX as u32),
            p.reserve_per_minute.min(i32::MAX as u32),
            p.day_reserve().min(i32::MAX as u32),
            c.used.min(i32::MAX as u32),
            c.keep.min(i32::MAX as u32),
            c.want_scan.min(i32::MAX as u32),
            c.want_any.min(i32::MAX as u32),
            LEASE_LIFETIME.as_millis(),
        );
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let rows = client.simple_query(&sql)?;
        let row = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| VenueError::Away("the budget claim returned no row".into()))?;
        let n = |i: usize| -> Result<u32, VenueError> {
            row.get(i)
                .and_then(|v| v.parse::<i64>().ok())
                .map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
                .ok_or_else(|| {
                    VenueError::Away(format!("the budget claim's column {i} is unreadable"))
                })
        };
        Ok(Grant {
            scan: n(0)?,
            any: n(1)?,
            minute_left: n(2)?,
            day_left: n(3)?,
            stands_seen: n(4)?,
        })
    }
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
