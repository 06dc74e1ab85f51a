//! The SQL of venue mode: lock a ticket's lines, record an entry, export.
//!
//! Everything here runs on the venue worker thread (or in a `venue` CLI command), never
//! on the scan loop. Each function is one short READ COMMITTED transaction, or a step of
//! the one the worker keeps open while the loop decides (see `worker.rs`).

use std::io::Write;

use postgres::types::PgLsn;
use postgres::{Client, Statement, Transaction};

use super::error::VenueError;
use super::ledger::{self, kind_from, kind_str, VenueLine};
use crate::decide::Verdict;
use crate::store::{EntryKind, JournalEntry, TicketRecord};

/// The statements of a redemption, prepared once per connection: each then costs one
/// round trip instead of two (parse, then execute). Each step is one statement, a
/// function of the schema (migration "one statement per redemption step"): a
/// redemption is `BEGIN`, lock, record, `COMMIT`, four round trips (it was six: seed
/// and lock, insert and update, were two statements each).
pub struct Prepared {
    lock: Statement,
    record: Statement,
}

const LOCK_SQL: &str = "SELECT av_id, kind, loaded, redeemed FROM venue_lock_lines($1, $2, $3, $4)";
const RECORD_SQL: &str = "SELECT inserted, flush_lsn, insert_lsn FROM venue_record($1, $2, $3,
     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";
const WAL_SQL: &str = "SELECT pg_current_wal_flush_lsn(), pg_current_wal_insert_lsn()";

impl Prepared {
    /// Prepares the statements on `client` (the schema must exist).
    pub fn new(client: &mut Client) -> Result<Prepared, VenueError> {
        Ok(Prepared {
            lock: client.prepare(LOCK_SQL)?,
            record: client.prepare(RECORD_SQL)?,
        })
    }
}

/// The server's WAL positions, read in one statement (see `venue/watermark.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wal {
    /// `pg_current_wal_flush_lsn()`: on disk.
    pub flush: u64,
    /// `pg_current_wal_insert_lsn()`: at or past the end of every commit acknowledged
    /// before the reading.
    pub insert: u64,
}

/// Reads the server's WAL positions now (outside a redemption: the idle tick, `venue
/// sync`, shutdown).
pub fn wal_positions(client: &mut Client) -> Result<Wal, VenueError> {
    let r = client.query_one(WAL_SQL, &[])?;
    Ok(Wal {
        flush: u64::from(r.get::<_, PgLsn>(0)),
        insert: u64::from(r.get::<_, PgLsn>(1)),
    })
}

/// Creates the ticket's missing lines from `seed`, raises `loaded` where the seed has
/// more (a reload on ATS; never lowered, `redeemed` untouched), and locks all its lines
/// (`SELECT ... FOR UPDATE`): until the transaction ends, no other stand can decide on
/// this ticket. Returns the lines as locked. One statement.
pub fn lock_lines(
    tx: &mut Transaction<'_>,
    p: &Prepared,
    barcode: &str,
    seed: &[VenueLine],
) -> Result<Vec<VenueLine>, VenueError> {
    // One row per line, in `av_id` order (the order the server locks them in).
    let mut seed: Vec<&VenueLine> = seed.iter().collect();
    seed.sort_by(|a, b| a.av_id.cmp(&b.av_id).then(b.loaded.cmp(&a.loaded)));
    seed.dedup_by(|a, b| a.av_id == b.av_id);
    let av: Vec<&str> = seed.iter().map(|l| l.av_id.as_str()).collect();
    let kind: Vec<&str> = seed.iter().map(|l| kind_str(l.kind)).collect();
    let loaded: Vec<i64> = seed.iter().map(|l| to_i64(l.loaded)).collect();
    let rows = tx.query(&p.lock, &[&barcode, &av, &kind, &loaded])?;
    Ok(rows
        .iter()
        .map(|r| VenueLine {
            av_id: r.get(0),
            kind: kind_from(r.get::<_, &str>(1)),
            loaded: r.get::<_, i64>(2).max(0) as u64,
            redeemed: r.get::<_, i64>(3).max(0) as u64,
        })
        .collect())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What recording an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The entry is new in the venue ledger; its lines were updated.
    New {
        /// Money it took beyond what was loaded.
        overdraft_cents: u64,
        /// Item units beyond what was loaded.
        overdraft_items: u64,
    },
    /// The venue ledger already had this id (a replay): nothing changed.
    Duplicate,
}

/// Records `entry` in the open transaction, its ticket's lines already locked as
/// `lines`: inserts it keyed by its id (`ON CONFLICT (id) DO NOTHING`: an id the venue
/// already holds changes nothing, so a replay never counts twice) and, when new,
/// updates the lines. One statement; it also returns the server's WAL positions.
pub fn record_entry(
    tx: &mut Transaction<'_>,
    p: &Prepared,
    issuer: &str,
    entry: &JournalEntry,
    lines: &[VenueLine],
    uploaded: bool,
) -> Result<(Recorded, Wal), VenueError> {
    record_entry_as(tx, p, issuer, entry, lines, uploaded, None)
}

/// [`record_entry`], with this transaction's `synchronous_commit` (`None`: the
/// session's, `venue.synchronous_commit`).
pub fn record_entry_as(
    tx: &mut Transaction<'_>,
    p: &Prepared,
    issuer: &str,
    entry: &JournalEntry,
    lines: &[VenueLine],
    uploaded: bool,
    synchronous_commit: Option<&str>,
) -> Result<(Recorded, Wal), VenueError> {
    let applied = ledger::apply(lines, entry);
    let json = serde_json::to_string(entry).map_err(|e| VenueError::Data(e.to_string()))?;
    let items = serde_json::to_string(&entry.items).map_err(|e| VenueError::Data(e.to_string()))?;
    let av: Vec<&str> = applied.redeemed.keys().map(String::as_str).collect();
    let r: Vec<i64> = applied.redeemed.values().map(|v| to_i64(*v)).collect();
    let row = tx.query_one(
        &p.record,
        &[
            &entry.id,
            &issuer,
            &to_i64(entry.seq),
            &entry.kind.as_str(),
            &entry.terminal,
            &entry.barcode,
            &entry.verdict.as_str(),
            &entry.reason,
            &to_i64(entry.approved_cents),
            &items,
            &entry.source.as_str(),
            &entry.offline,
            &entry.void_of,
            &uploaded,
            &to_i64(applied.overdraft_cents),
            &to_i64(applied.overdraft_items),
            &json,
            &av,
            &r,
            &synchronous_commit,
        ],
    )?;
    let wal = Wal {
        flush: u64::from(row.get::<_, PgLsn>(1)),
        insert: u64::from(row.get::<_, PgLsn>(2)),
    };
    let recorded = if row.get::<_, bool>(0) {
        Recorded::New {
            overdraft_cents: applied.overdraft_cents,
            overdraft_items: applied.overdraft_items,
        }
    } else {
        Recorded::Duplicate
    };
    Ok((recorded, wal))
}

/// Uploads one journal entry in its own transaction (replay): creates and locks its
/// ticket's lines (from `record`, the terminal's cached record, when the venue has
/// never seen the ticket), then [`record_entry`]. `flush`: the commit waits for the
/// server's local WAL flush (`synchronous_commit = local`) whatever the session says.
pub fn upload(
    client: &mut Client,
    p: &Prepared,
    issuer: &str,
    entry: &JournalEntry,
    record: Option<&TicketRecord>,
    flush: bool,
) -> Result<Recorded, VenueError> {
    let mut tx = client.transaction()?;
    let moves_value = entry.verdict == Verdict::Approve && !entry.barcode.is_empty();
    let lines = if moves_value {
        let seed = ledger::seed_for_entry(entry, record);
        lock_lines(&mut tx, p, &entry.barcode, &seed)?
    } else {
        Vec::new()
    };
    let sync = flush.then_some("local");
    let (r, _) = record_entry_as(&mut tx, p, issuer, entry, &lines, true, sync)?;
    tx.commit()?;
    Ok(r)
}

/// How many of this issuer's entries up to `seq` the venue holds (the replay's
/// watermark check: after a failover to a standby that missed the last commits, fewer
/// than `seq`, and the terminal uploads its journal again).
pub fn count_through(client: &mut Client, issuer: &str, seq: u64) -> Result<u64, VenueError> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM venue_decisions WHERE issuer = $1 AND local_seq <= $2",
            &[&issuer, &to_i64(seq)],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Export format of `venue export`.
pub use crate::store::Format;

/// Writes every entry of every terminal in the venue ledger after `since` (a decision
/// id from an earlier export), in recorded order, as the journal export does, plus
/// `venue_seq`, `overdraft_cents`, `overdraft_items` and `uploaded`. Returns how many.
pub fn export(
    client: &mut Client,
    format: Format,
    since: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, VenueError> {
    let after: i64 = match since {
        None => 0,
        Some(id) => {
            let row = client.query_opt("SELECT seq FROM venue_decisions WHERE id = $1", &[&id])?;
            match row {
                Some(r) => r.get(0),
                None => {
                    return Err(VenueError::Data(format!(
                        "--since {:?}: the venue ledger has no decision with that id \
                         (give the last id of an earlier venue export)",
                        id.chars().take(64).collect::<String>()
                    )))
                }
            }
        }
    };
    if format == Format::Csv {
        let mut header: Vec<String> = crate::store::export::CSV_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(
            [
                "venue_seq",
                "overdraft_cents",
                "overdraft_items",
                "uploaded",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        crate::store::export::write_csv_row(out, header.into_iter())?;
    }
    // Streamed in pages so a day's ledger never sits in memory at once.
    let mut n = 0u64;
    let mut last = after;
    loop {
        let rows = client.query(
            "SELECT d.seq, d.entry::text, d.overdraft_cents, d.overdraft_items, d.uploaded,
                    (SELECT v.id FROM venue_decisions v WHERE v.void_of = d.id LIMIT 1)
             FROM venue_decisions d WHERE d.seq > $1 ORDER BY d.seq LIMIT 1000",
            &[&last],
        )?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            last = r.get(0);
            let text: &str = r.get(1);
            let mut entry: JournalEntry =
                serde_json::from_str(text).map_err(|e| VenueError::Data(e.to_string()))?;
            let voided_by: Option<String> = r.get(5);
            if entry.kind == EntryKind::Decision && voided_by.is_some() {
                entry.voided_by = voided_by;
            }
            let overdraft_cents: i64 = r.get(2);
            let overdraft_items: i64 = r.get(3);
            let uploaded: bool = r.get(4);
            match format {
                Format::Jsonl => {
                    let mut v = crate::store::export::jsonl_row(&entry);
                    if let Some(o) = v.as_object_mut() {
                        o.insert("venue_seq".into(), last.into());
                        o.insert("overdraft_cents".into(), overdraft_cents.into());
                        o.insert("overdraft_items".into(), overdraft_items.into());
                        o.insert("uploaded".into(), uploaded.into());
                    }
                    serde_json::to_writer(&mut *out, &v)
                        .map_err(|e| VenueError::Data(e.to_string()))?;
                    out.write_all(b"\n")?;
                }
                Format::Csv => {
                    let mut f = crate::store::export::csv_fields(&entry);
                    f.push(last.to_string());
                    f.push(overdraft_cents.to_string());
                    f.push(overdraft_items.to_string());
                    f.push(uploaded.to_string());
                    crate::store::export::write_csv_row(out, f.into_iter())?;
                }
            }
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}
