//! The venue schema and its versioned migrations.
//!
//! [`migrate`] runs in one transaction under a transaction-scoped advisory lock
//! ([`MIGRATION_LOCK`]), so stands starting together apply each migration once: the
//! second waits for the first and then finds nothing left to do. PostgreSQL's DDL is
//! transactional, so a migration is applied whole or not at all. A database whose newest
//! version is above [`LATEST`] was migrated by a newer agent: it is refused
//! ([`VenueError::FutureSchema`]) rather than misread, as the local store does.
//!
//! When the schema is current nothing but `SELECT`s run, so a terminal role without
//! `CREATE` (docs/venue.md) may still start; `venue migrate` is run once by an owner.

use postgres::Client;

use super::error::VenueError;

/// The advisory lock key of migrations (`'conc'` `'venu'` as two ASCII words).
pub const MIGRATION_LOCK: i64 = 0x636f_6e63_7665_6e75;

/// One migration: its version and its SQL.
pub struct Migration {
    /// Applied in this order, once.
    pub version: i32,
    /// For `venue_migrations.name`.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration this build knows.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "lines and decisions",
        sql: r#"
CREATE TABLE venue_lines (
    barcode     text        NOT NULL,
    av_id       text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('money', 'item')),
    loaded      bigint      NOT NULL CHECK (loaded >= 0),
    redeemed    bigint      NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (barcode, av_id)
);
CREATE TABLE venue_decisions (
    seq             bigserial   NOT NULL UNIQUE,
    id              text        PRIMARY KEY,
    issuer          text        NOT NULL,
    local_seq       bigint      NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('decision', 'void')),
    terminal        text        NOT NULL,
    barcode         text        NOT NULL,
    verdict         text        NOT NULL,
    reason          text        NOT NULL,
    approved_cents  bigint      NOT NULL,
    items           jsonb       NOT NULL,
    source          text        NOT NULL,
    offline         boolean     NOT NULL,
    void_of         text,
    uploaded        boolean     NOT NULL,
    overdraft_cents bigint      NOT NULL DEFAULT 0,
    overdraft_items bigint      NOT NULL DEFAULT 0,
    entry           jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, local_seq)
);
CREATE INDEX venue_decisions_barcode ON venue_decisions (barcode);
CREATE INDEX venue_decisions_void_of ON venue_decisions (void_of) WHERE void_of IS NOT NULL;
CREATE INDEX venue_decisions_overdraft ON venue_decisions (seq)
    WHERE overdraft_cents > 0 OR overdraft_items > 0;
"#,
    },
    Migration {
        version: 2,
        name: "ats budget",
        sql: super::budget::MIGRATION_SQL,
    },
    Migration {
        version: 3,
        name: "terminal heartbeats",
        // One row per terminal, replaced every few seconds (venue/heartbeat.rs).
        sql: r#"
CREATE TABLE venue_heartbeats (
    terminal        text        PRIMARY KEY,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    reported_at     timestamptz NOT NULL,
    mode            text        NOT NULL,
    version         text        NOT NULL,
    pending_uploads bigint,
    status          jsonb       NOT NULL
);
"#,
    },
    Migration {
        version: 4,
        name: "fetch leases and the venue ticket table",
        sql: FETCH_SQL,
    },
    Migration {
        version: 5,
        name: "one statement per redemption step",
        // Functions only, no table changes.
        // Each step of a redemption becomes one statement, one round trip: seeding and
        // locking a ticket's lines, then recording a decision and updating its lines (the
        // two steps of `venue/db.rs`). `SECURITY INVOKER` (the default): they run with the
        // terminal role's own rights on the tables.
        sql: r#"
CREATE FUNCTION venue_lock_lines(p_barcode text, p_av text[], p_kind text[], p_loaded bigint[])
RETURNS TABLE (av_id text, kind text, loaded bigint, redeemed bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    IF cardinality(p_av) > 0 THEN
        -- A line first seen is created; a reload on ATS raises `loaded`, never lowers it
        -- (an older record at another stand) and never touches `redeemed`. Rows are
        -- taken in `av_id` order, as the lock below takes them: no deadlock between stands.
        INSERT INTO venue_lines AS l (barcode, av_id, kind, loaded)
        SELECT p_barcode, s.a, s.k, s.n
        FROM unnest(p_av, p_kind, p_loaded) AS s(a, k, n) ORDER BY s.a
        ON CONFLICT ON CONSTRAINT venue_lines_pkey DO UPDATE
            SET loaded = EXCLUDED.loaded, updated_at = now()
            WHERE l.loaded < EXCLUDED.loaded;
    END IF;
    RETURN QUERY
        SELECT v.av_id, v.kind, v.loaded, v.redeemed FROM venue_lines v
        WHERE v.barcode = p_barcode ORDER BY v.av_id FOR UPDATE;
END
$fn$;

CREATE FUNCTION venue_record(
    p_id text, p_issuer text, p_local_seq bigint, p_kind text, p_terminal text,
    p_barcode text, p_verdict text, p_reason text, p_approved_cents bigint, p_items text,
    p_source text, p_offline boolean, p_void_of text, p_uploaded boolean,
    p_overdraft_cents bigint, p_overdraft_items bigint, p_entry text,
    p_av text[], p_redeemed bigint[], p_synchronous_commit text)
RETURNS TABLE (inserted boolean, flush_lsn pg_lsn, insert_lsn pg_lsn)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    -- A replay's upload waits for the local flush even when the stand's decisions do
    -- not (venue/replay.rs); NULL keeps the session's setting.
    IF p_synchronous_commit IS NOT NULL THEN
        PERFORM set_config('synchronous_commit', p_synchronous_commit, true);
    END IF;
    INSERT INTO venue_decisions (id, issuer, local_seq, kind, terminal, barcode, verdict,
        reason, approved_cents, items, source, offline, void_of, uploaded,
        overdraft_cents, overdraft_items, entry)
    VALUES (p_id, p_issuer, p_local_seq, p_kind, p_terminal, p_barcode, p_verdict,
        p_reason, p_approved_cents, p_items::jsonb, p_source, p_offline, p_void_of,
        p_uploaded, p_overdraft_cents, p_overdraft_items, p_entry::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING seq INTO n;
    -- An id the venue already holds changes nothing (a replay never counts twice).
    IF n IS NOT NULL AND cardinality(p_av) > 0 THEN
        UPDATE venue_lines AS l SET redeemed = u.r, updated_at = now()
        FROM unnest(p_av, p_redeemed) AS u(a, r)
        WHERE l.barcode = p_barcode AND l.av_id = u.a;
    END IF;
    -- The WAL positions, for the replay watermark with asynchronous commits
    -- (venue/watermark.rs): read after every earlier commit of this session.
    RETURN QUERY SELECT n IS NOT NULL, pg_current_wal_flush_lsn(), pg_current_wal_insert_lsn();
END
$fn$;
"#,
    },
    Migration {
        version: 6,
        name: "first pass before scan lookups",
        sql: super::budget::COLD_START_SQL,
    },
];

/// One fetch per event (issue 13, `tickets.rs`, `lease.rs`): a lease per event, held by
/// one terminal at a time, carrying the pass's cursor; and the venue's copy of every
/// ticket's record, each row stamped with a change sequence so that every stand copies
/// only what changed since its last copy. Self-contained: it alters nothing else.
const FETCH_SQL: &str = r#"
CREATE TABLE venue_fetch_leases (
    event                 text        PRIMARY KEY,
    holder                text        NOT NULL,
    expires_at            timestamptz NOT NULL,
    pass_started_ms       bigint      NOT NULL DEFAULT 0,
    last_barcode          text,
    pages                 bigint      NOT NULL DEFAULT 0,
    tickets               bigint      NOT NULL DEFAULT 0,
    pass_complete         boolean     NOT NULL DEFAULT true,
    last_complete_pass_ms bigint,
    completed_at          timestamptz,
    completed_ms          bigint,
    taken_over            bigint      NOT NULL DEFAULT 0
);
CREATE SEQUENCE venue_tickets_change;
CREATE TABLE venue_tickets (
    barcode       text        PRIMARY KEY,
    event         text        NOT NULL,
    record        jsonb       NOT NULL,
    verified      jsonb,
    fetched_at_ms bigint      NOT NULL,
    listed_ms     bigint      NOT NULL,
    removed       boolean     NOT NULL DEFAULT false,
    change_seq    bigint      NOT NULL DEFAULT nextval('venue_tickets_change'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX venue_tickets_change_seq ON venue_tickets (change_seq);
CREATE INDEX venue_tickets_event_listed ON venue_tickets (event, listed_ms) WHERE NOT removed;
CREATE TABLE venue_fetch_copies (
    terminal    text        PRIMARY KEY,
    copied_seq  bigint      NOT NULL,
    copied_rows bigint      NOT NULL,
    copied_at   timestamptz NOT NULL DEFAULT now()
);
"#;

/// The newest schema version this build knows.
pub const LATEST: i32 = MIGRATIONS.len() as i32;

/// The schema version of the database (0: none yet).
pub fn current_version(client: &mut Client) -> Result<i32, VenueError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('venue_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM venue_migrations", &[])?
        .get(0);
    Ok(v.unwrap_or(0))
}

/// Applies the migrations the database lacks, under the advisory lock. Returns the
/// versions applied (empty when the schema was current).
pub fn migrate(client: &mut Client) -> Result<Vec<i32>, VenueError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('venue_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE venue_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )?;
    }
    let have: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM venue_migrations",
            &[],
        )?
        .get(0);
    if have > LATEST {
        return Err(VenueError::FutureSchema {
            found: have,
            known: LATEST,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > have) {
        tx.batch_execute(m.sql)?;
        tx.execute(
            "INSERT INTO venue_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )?;
        applied.push(m.version);
    }
    tx.commit()?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps_up_to_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, LATEST);
    }
}
