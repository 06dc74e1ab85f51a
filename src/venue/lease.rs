//! The fetch lease of an event (`venue_fetch_leases`): which terminal pages the event's
//! listing into the venue ticket table, and where its pass stands (issue 13 item 2,
//! docs/venue.md "One fetch per event").
//!
//! One row per event. A terminal holds the lease while its `expires_at` lies ahead; the
//! holder renews it (every quarter of `venue.lease_ms`), and any terminal takes it over
//! once it has expired (its holder stopped renewing: killed, hung, cut off). Times are
//! the database's own (`now()`), so the stands' clocks do not matter.
//!
//! The row also carries the pass's cursor (generation, last barcode, pages, tickets), so a
//! new holder resumes the pass after the last page the old one wrote. Every page is
//! written fenced ([`save_cursor`] inside the page's transaction: the row is updated only
//! while this terminal still holds an unexpired lease, and that update locks the row), so
//! a holder that was paused past its lease and wakes up cannot write over its successor's
//! pass: its transaction finds no lease and rolls back.

use std::time::Duration;

use postgres::GenericClient;

use super::error::VenueError;

/// Where an event's listing pass stands, as the lease row keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassCursor {
    /// The pass's generation (the holder's wall ms when it started).
    pub pass_started_ms: u64,
    /// The last barcode of the last page written.
    pub last_barcode: Option<String>,
    /// Pages written in the pass.
    pub pages: u64,
    /// Tickets written in the pass.
    pub tickets: u64,
    /// The pass is over (the next one starts afresh).
    pub complete: bool,
    /// The generation of the last completed pass.
    pub last_complete_pass_ms: Option<u64>,
}

/// What a terminal that holds the lease learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The pass's cursor.
    pub cursor: PassCursor,
    /// When the last pass completed (the holder's wall ms), if one did.
    pub completed_ms: Option<u64>,
    /// No pass of this event ever completed.
    pub never_completed: bool,
    /// This call took the lease over from another terminal (or took it first).
    pub taken: bool,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Takes or renews the lease of `event` for `me` for `lease`. `Some` when `me` holds it
/// now; `None` while another terminal's lease is unexpired.
pub fn hold(
    client: &mut impl GenericClient,
    event: &str,
    me: &str,
    lease: Duration,
) -> Result<Option<Held>, VenueError> {
    let row = client.query_opt(
        "WITH before AS (SELECT holder FROM venue_fetch_leases WHERE event = lower($1))
         INSERT INTO venue_fetch_leases AS l (event, holder, expires_at)
         VALUES (lower($1), $2, now() + $3::float8 * interval '1 millisecond')
         ON CONFLICT (event) DO UPDATE SET
             holder = EXCLUDED.holder,
             expires_at = EXCLUDED.expires_at,
             taken_over = l.taken_over + (l.holder <> EXCLUDED.holder)::int
         WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
         RETURNING pass_started_ms, last_barcode, pages, tickets, pass_complete,
                   last_complete_pass_ms, completed_ms, completed_ms IS NULL,
                   coalesce((SELECT holder FROM before), '') <> $2",
        &[&event, &me, &(ms(lease) as f64)],
    )?;
    Ok(row.map(|r| {
        let pass: i64 = r.get(0);
        let pages: i64 = r.get(2);
        let tickets: i64 = r.get(3);
        let last: Option<i64> = r.get(5);
        Held {
            cursor: PassCursor {
                pass_started_ms: pass.max(0) as u64,
                last_barcode: r.get(1),
                pages: pages.max(0) as u64,
                tickets: tickets.max(0) as u64,
                complete: r.get(4),
                last_complete_pass_ms: last.map(|v| v.max(0) as u64),
            },
            completed_ms: r.get::<_, Option<i64>>(6).map(|v| v.max(0) as u64),
            never_completed: r.get(7),
            taken: r.get(8),
        }
    }))
}

/// Saves the pass's cursor, fenced: only while `me` holds an unexpired lease (and
/// renews it). Call first in the page's transaction: it locks the lease row, so a
/// takeover waits for the page to commit. `Ok(false)`: the lease is lost; roll back.
/// `completed`: the pass ends now, at `now_ms` (the holder's wall ms; `completed_at`
/// keeps the database's time of it, for venue IT).
pub fn save_cursor(
    tx: &mut impl GenericClient,
    event: &str,
    me: &str,
    lease: Duration,
    cursor: &PassCursor,
    completed: Option<u64>,
) -> Result<bool, VenueError> {
    let n = tx.execute(
        "UPDATE venue_fetch_leases SET
             pass_started_ms = $3, last_barcode = $4, pages = $5, tickets = $6,
             pass_complete = $7, last_complete_pass_ms = $8,
             completed_at = CASE WHEN $9::int8 IS NULL THEN completed_at ELSE now() END,
             completed_ms = coalesce($9::int8, completed_ms),
             expires_at = now() + $10::float8 * interval '1 millisecond'
          WHERE event = lower($1) AND holder = $2 AND expires_at > now()",
        &[
            &event,
            &me,
            &(cursor.pass_started_ms as i64),
            &cursor.last_barcode,
            &(cursor.pages as i64),
            &(cursor.tickets as i64),
            &cursor.complete,
            &cursor.last_complete_pass_ms.map(|v| v as i64),
            &completed.map(|v| v as i64),
            &(ms(lease) as f64),
        ],
    )?;
    Ok(n == 1)
}

/// Gives the lease up (a terminal stopping): another terminal may take it at once.
pub fn release(client: &mut impl GenericClient, event: &str, me: &str) -> Result<(), VenueError> {
    client.execute(
        "UPDATE venue_fetch_leases SET expires_at = now() - interval '1 millisecond'
          WHERE event = lower($1) AND holder = $2",
        &[&event, &me],
    )?;
    Ok(())
}

/// The holder of `event`'s lease and whether it is unexpired, if anyone ever held it.
pub fn holder(
    client: &mut impl GenericClient,
    event: &str,
) -> Result<Option<(String, bool)>, VenueError> {
    Ok(client
        .query_opt(
            "SELECT holder, expires_at > now() FROM venue_fetch_leases WHERE event = lower($1)",
            &[&event],
        )?
        .map(|r| (r.get(0), r.get(1))))
}

/// True when a pass of `event` has completed and no other is under way.
pub fn pass_done(client: &mut impl GenericClient, event: &str) -> Result<bool, VenueError> {
    Ok(client
        .query_opt(
            "SELECT pass_complete AND last_complete_pass_ms IS NOT NULL
               FROM venue_fetch_leases WHERE event = lower($1)",
            &[&event],
        )?
        .is_some_and(|r| r.get(0)))
}

/// Every event's last completed pass: (event, the pass's start, wall ms on its
/// holder's clock). Read before a copy: once the copy has caught up, every row of these
/// passes is in the local cache (a pass's last page and its completion commit together).
pub fn completed_passes(client: &mut impl GenericClient) -> Result<Vec<(String, u64)>, VenueError> {
    Ok(client
        .query(
            "SELECT event, last_complete_pass_ms FROM venue_fetch_leases
              WHERE last_complete_pass_ms IS NOT NULL",
            &[],
        )?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
        .collect())
}
