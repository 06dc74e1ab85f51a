//! The venue ticket table (`venue_tickets`, migration "fetch leases and the venue ticket
//! table"): the venue's copy of every ticket's record, written by the lease holder's
//! listing pages and by every stand's live lookups, and copied by every stand into its
//! local cache (issue 13 item 2; `background.rs` runs it, docs/venue.md "One fetch per
//! event").
//!
//! Every write stamps the row with a fresh `change_seq`, so a stand copies only the rows
//! whose `change_seq` is above the highest it has copied. A sequence alone would not do:
//! two writers that took numbers 7 and 8 may commit 8 first, and a reader that copied 8
//! would never look at 7 again. So every writer first takes a transaction-scoped advisory
//! lock ([`WRITE_LOCK`]): numbers are then handed out in commit order, and a row a reader
//! can see always has every lower number already committed. The writes are one short
//! statement each (a page is one `INSERT ... SELECT FROM unnest(...)`), so the lock is
//! held for milliseconds.
//!
//! What a row holds: `record` (the newest record: a listing page's or a live lookup's,
//! whichever was fetched later), `verified` (the identity and seat from the last live
//! `verify_barcode`, kept while the listing rewrites the value lines, as the local cache
//! does), `listed_ms` (the newest evidence that ATS lists the ticket: the generation of the
//! last pass that listed it, or a live answer's stamp) and `removed` (a completed pass did
//! not list it). [`local_record`] turns a row into the record a stand caches: a removed
//! ticket becomes a record that `decide` never approves (`ticket_void`), stamped with the
//! removal, so it replaces the stand's older copy.

use postgres::GenericClient;

use super::error::VenueError;
use crate::ticket::{TicketInfo, TicketRecord, TicketStatus};

/// The advisory lock every writer of `venue_tickets` takes first (`'conc'` `'tick'`).
pub const WRITE_LOCK: i64 = 0x636f_6e63_7469_636b;

/// The status a stand's copy of a removed ticket carries (not redeemable).
pub const UNLISTED: &str = "UNLISTED";

/// One row as a stand copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    /// The barcode.
    pub barcode: String,
    /// The newest record.
    pub record: TicketRecord,
    /// Identity and seat from the last live `verify_barcode`, if any.
    pub verified: Option<TicketInfo>,
    /// The row's stamp (the record's, or the removal's when later).
    pub fetched_at_ms: u64,
    /// A completed pass did not list the ticket.
    pub removed: bool,
    /// The row's change sequence number.
    pub change_seq: i64,
}

/// The record a stand caches for `row` (pure): the row's record, with the verified
/// identity and seat when it is of the same event, stamped with the row's stamp; a removed
/// ticket's status is [`UNLISTED`], which `decide` never approves.
pub fn local_record(row: &TicketRow) -> TicketRecord {
    let mut r = row.record.clone();
    if let (Some(v), Some(info)) = (&row.verified, &r.info) {
        if v.event_name.eq_ignore_ascii_case(&info.event_name) {
            // The verified identity brings the seat; the status stays the newest
            // answer's (the record is the newer of the listing's and the live one).
            let mut v = v.clone();
            v.status = info.status.clone();
            r.info = Some(v);
        }
    }
    r.fetched_at_ms = r.fetched_at_ms.max(row.fetched_at_ms);
    if row.removed {
        if let Some(info) = r.info.as_mut() {
            info.status = TicketStatus::Other(UNLISTED.into());
        }
    }
    r
}

fn event_of(r: &TicketRecord) -> Option<&str> {
    r.info.as_ref().map(|i| i.event_name.as_str())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, VenueError> {
    serde_json::to_string(v).map_err(|e| VenueError::Config(format!("ticket row encoding: {e}")))
}

/// Writes one listing page of `event` (records built by `records_from_listing`), listed
/// by the pass of generation `pass_ms`. Call inside the page's transaction, after the
/// lease check. A ticket the page shares with the previous one (`straddle`: a ticket
/// whose lines span two pages) keeps the lines this pass already wrote, replaced by
/// `av_id`. Returns the rows written.
pub fn write_page(
    tx: &mut impl GenericClient,
    event: &str,
    mut records: Vec<TicketRecord>,
    pass_ms: u64,
    straddle: Option<&str>,
) -> Result<u64, VenueError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    if let Some(b) = straddle {
        if let Some(fresh) = records.iter_mut().find(|r| r.barcode == b) {
            let row = tx.query_opt(
                "SELECT record::text, listed_ms FROM venue_tickets WHERE barcode = $1",
                &[&b],
            )?;
            if let Some(row) = row {
                let listed: i64 = row.get(1);
                let text: String = row.get(0);
                if listed >= pass_ms as i64 {
                    if let Ok(old) = serde_json::from_str::<TicketRecord>(&text) {
                        let mut lines = old.value;
                        crate::agent::prefetch::replace_lines_by_av_id(
                            &mut lines,
                            std::mem::take(&mut fresh.value),
                        );
                        fresh.value = lines;
                    }
                }
            }
        }
    }
    let mut barcodes = Vec::with_capacity(records.len());
    let mut texts = Vec::with_capacity(records.len());
    let mut stamps = Vec::with_capacity(records.len());
    for r in &records {
        barcodes.push(r.barcode.clone());
        texts.push(json(r)?);
        stamps.push(r.fetched_at_ms as i64);
    }
    let n = tx.execute(
        "INSERT INTO venue_tickets (barcode, event, record, fetched_at_ms, listed_ms)
         SELECT b, $2, r::jsonb, f, $5 FROM unnest($1::text[], $3::text[], $4::int8[]) AS t(b, r, f)
         ON CONFLICT (barcode) DO UPDATE SET
             verified = CASE WHEN lower(venue_tickets.event) = lower(EXCLUDED.event)
                             THEN venue_tickets.verified END,
             event = EXCLUDED.event,
             record = CASE WHEN EXCLUDED.fetched_at_ms >= venue_tickets.fetched_at_ms
                           THEN EXCLUDED.record ELSE venue_tickets.record END,
             fetched_at_ms = greatest(venue_tickets.fetched_at_ms, EXCLUDED.fetched_at_ms),
             listed_ms = greatest(venue_tickets.listed_ms, EXCLUDED.listed_ms),
             removed = false,
             change_seq = nextval('venue_tickets_change'),
             updated_at = now()",
        &[&barcodes, &event, &texts, &stamps, &(pass_ms as i64)],
    )?;
    Ok(n)
}

/// Writes records a stand fetched live (`verify_barcode` and `get_av_barcodes` on a
/// cache miss), so the next stand does not call ATS for them. Records without an
/// identity (ATS does not know the barcode) are not shared. A live answer is evidence
/// that ATS lists the ticket as of its stamp. Returns the rows written.
pub fn write_live(
    client: &mut impl GenericClient,
    records: &[TicketRecord],
) -> Result<u64, VenueError> {
    let mut barcodes = Vec::new();
    let mut events = Vec::new();
    let mut texts = Vec::new();
    let mut verified = Vec::new();
    let mut stamps = Vec::new();
    for r in records {
        let (Some(event), Some(info)) = (event_of(r), &r.info) else {
            continue;
        };
        barcodes.push(r.barcode.clone());
        events.push(event.to_string());
        texts.push(json(r)?);
        verified.push(json(info)?);
        stamps.push(r.fetched_at_ms as i64);
    }
    if barcodes.is_empty() {
        return Ok(0);
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    let n = tx.execute(
        "INSERT INTO venue_tickets (barcode, event, record, verified, fetched_at_ms, listed_ms)
         SELECT b, e, r::jsonb, v::jsonb, f, f
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS t(b, e, r, v, f)
         ON CONFLICT (barcode) DO UPDATE SET
             event = EXCLUDED.event,
             verified = EXCLUDED.verified,
             record = CASE WHEN EXCLUDED.fetched_at_ms >= venue_tickets.fetched_at_ms
                           THEN EXCLUDED.record ELSE venue_tickets.record END,
             removed = venue_tickets.removed
                       AND EXCLUDED.fetched_at_ms < venue_tickets.fetched_at_ms,
             fetched_at_ms = greatest(venue_tickets.fetched_at_ms, EXCLUDED.fetched_at_ms),
             listed_ms = greatest(venue_tickets.listed_ms, EXCLUDED.listed_ms),
             change_seq = nextval('venue_tickets_change'),
             updated_at = now()",
        &[&barcodes, &events, &texts, &verified, &stamps],
    )?;
    tx.commit()?;
    Ok(n)
}

/// After a completed pass of generation `pass_ms`: every ticket of `event` with no
/// evidence of being listed since (`listed_ms < pass_ms`) is marked removed, stamped
/// `stamp_ms`, so that every stand's copy stops approving it at its next copy. Call in the
/// pass's closing transaction. Returns the tickets removed.
pub fn retire_unlisted(
    tx: &mut impl GenericClient,
    event: &str,
    pass_ms: u64,
    stamp_ms: u64,
) -> Result<u64, VenueError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    Ok(tx.execute(
        "UPDATE venue_tickets SET removed = true,
             fetched_at_ms = greatest(fetched_at_ms, $3),
             change_seq = nextval('venue_tickets_change'), updated_at = now()
          WHERE lower(event) = lower($1) AND listed_ms < $2 AND NOT removed",
        &[&event, &(pass_ms as i64), &(stamp_ms as i64)],
    )?)
}

/// Up to `limit` rows changed after `since`, in change order.
pub fn changes_since(
    client: &mut impl GenericClient,
    since: i64,
    limit: i64,
) -> Result<Vec<TicketRow>, VenueError> {
    let rows = client.query(
        "SELECT barcode, record::text, verified::text, fetched_at_ms, removed, change_seq
           FROM venue_tickets WHERE change_seq > $1 ORDER BY change_seq LIMIT $2",
        &[&since, &limit],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let barcode: String = row.get(0);
        let text: String = row.get(1);
        let verified: Option<String> = row.get(2);
        let change_seq: i64 = row.get(5);
        let Ok(record) = serde_json::from_str::<TicketRecord>(&text) else {
            // A row this build cannot read costs that ticket its copy, not the rest.
            log::warn!(
                "venue ticket row {} unreadable: skipped",
                crate::redact::mask_barcode(&barcode)
            );
            out.push(TicketRow {
                barcode,
                record: TicketRecord {
                    barcode: String::new(),
                    info: None,
                    value: Vec::new(),
                    fetched_at_ms: 0,
                },
                verified: None,
                fetched_at_ms: 0,
                removed: true,
                change_seq,
            });
            continue;
        };
        let fetched: i64 = row.get(3);
        out.push(TicketRow {
            verified: verified.and_then(|v| serde_json::from_str(&v).ok()),
            barcode,
            record,
            fetched_at_ms: fetched.max(0) as u64,
            removed: row.get(4),
            change_seq,
        });
    }
    Ok(out)
}

/// Records how far `terminal`'s copy has come (`venue_fetch_copies`: what venue IT
/// reads to see each stand's copy lag).
pub fn note_copy(
    client: &mut impl GenericClient,
    terminal: &str,
    copied_seq: i64,
    copied_rows: u64,
) -> Result<(), VenueError> {
    client.execute(
        "INSERT INTO venue_fetch_copies (terminal, copied_seq, copied_rows) VALUES ($1, $2, $3)
         ON CONFLICT (terminal) DO UPDATE SET copied_seq = EXCLUDED.copied_seq,
             copied_rows = EXCLUDED.copied_rows, copied_at = now()",
        &[&terminal, &copied_seq, &(copied_rows as i64)],
    )?;
    Ok(())
}

/// The highest change sequence number in the table (0 when empty).
pub fn newest_change(client: &mut impl GenericClient) -> Result<i64, VenueError> {
    Ok(client
        .query_one(
            "SELECT coalesce(max(change_seq), 0) FROM venue_tickets",
            &[],
        )?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{ValueKind, ValueLine};

    fn info(event: &str, section: Option<&str>) -> TicketInfo {
        TicketInfo {
            barcode: "1".into(),
            event_name: event.into(),
            event_date: None,
            event_time: None,
            acct_id: None,
            section_name: section.map(str::to_string),
            row_name: section.map(|_| "A".to_string()),
            seat_num: section.map(|_| "7".to_string()),
            price_code: None,
            status: TicketStatus::Active,
        }
    }

    fn row(removed: bool, verified: Option<TicketInfo>) -> TicketRow {
        TicketRow {
            barcode: "1".into(),
            record: TicketRecord {
                barcode: "1".into(),
                info: Some(info("EVENT01", None)),
                value: vec![ValueLine {
                    av_id: "A".into(),
                    kind: ValueKind::Money,
                    description: "credit".into(),
                    loaded: 1000,
                    balance: 1000,
                    valid_from: None,
                    valid_until: None,
                }],
                fetched_at_ms: 100,
            },
            verified,
            fetched_at_ms: 200,
            removed,
            change_seq: 1,
        }
    }

    #[test]
    fn a_copied_row_carries_the_seat_a_live_lookup_verified() {
        let r = local_record(&row(false, Some(info("event01", Some("101")))));
        let i = r.info.unwrap();
        assert_eq!(i.section_name.as_deref(), Some("101"));
        assert!(i.status.is_redeemable());
        assert_eq!(r.fetched_at_ms, 200);
    }

    #[test]
    fn a_seat_verified_for_another_event_is_not_carried_over() {
        let r = local_record(&row(false, Some(info("EVENT02", Some("101")))));
        assert_eq!(r.info.unwrap().section_name, None);
    }

    #[test]
    fn a_removed_ticket_is_copied_as_a_record_never_approved() {
        let r = local_record(&row(true, None));
        assert!(!r.info.unwrap().status.is_redeemable());
        assert_eq!(
            r.fetched_at_ms, 200,
            "stamped with the removal: it replaces older copies"
        );
    }
}
