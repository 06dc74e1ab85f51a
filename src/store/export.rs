//! Journal export as JSON lines or CSV.
//!
//! Entries come out in id order, strictly after `since` (the last id of the previous
//! export), so exporting page after page with the previous page's last id never
//! duplicates or drops an entry. `since` must be an id of this journal: another
//! terminal's id, an id past the end or a malformed one is an error that says what it
//! expected (it used to export from the bare sequence number, or nothing, with rc 0).
//!
//! JSON lines carry each [`JournalEntry`] as it is stored, plus two fields, and with
//! one change for voids, so that summing a column gives the takings:
//!
//! - `net_cents` (every row): the money the row adds to the takings: `approved_cents`
//!   for an approval, minus the money given back for a void, 0 for a deny. The net
//!   takings are the sum of `net_cents` over every row.
//! - a void row says `"verdict":"void"`, `"approved_cents":0` and `refunded_cents` (the
//!   money it gives back; its `money` lines are the lines given back). It used to say
//!   `"verdict":"approve","approved_cents":5000`, which a script adding approvals would
//!   count as takings.
//!
//! CSV has a header row (on every export), RFC 4180 quoting, money lines as
//! `av_id:cents` joined by `;`, items as `av_id:description` joined by `|`, and the same
//! columns (`refunded_cents`, `net_cents`, then `venue` at the end: the entry's venue
//! mark as in the JSON lines, empty outside venue mode).
//!
//! Exports hold **full barcodes** (the `barcode` column, needed to reconcile with ATS):
//! treat them as customer data, or export with `mask_barcodes` (`--mask-barcodes`),
//! which leaves `barcode` empty.

use std::io::Write;
use std::str::FromStr;

use super::db::Store;
use super::error::StoreError;
use super::journal::seq_of;
use super::journal::{EntryKind, JournalEntry};
use crate::decide::Verdict;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown export format {s:?} (jsonl or csv)")),
        }
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 23] = [
    "id",
    "seq",
    "kind",
    "scan_time_ms",
    "scan_time",
    "terminal",
    "barcode_masked",
    "barcode",
    "verdict",
    "reason",
    "approved_cents",
    "money",
    "items",
    "source",
    "offline",
    "offline_window",
    "latency_ms",
    "request",
    "void_of",
    "voided_by",
    "refunded_cents",
    "net_cents",
    // Last, so the columns before it keep their places.
    "venue",
];

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Entries strictly after this id of the journal (all when `None`).
    pub since: Option<String>,
    /// Leave the full `barcode` empty (the masked one stays).
    pub mask_barcodes: bool,
}

/// Writes every journal entry after `since` to `out`; returns how many.
pub fn export(
    store: &Store,
    format: Format,
    since: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let opts = ExportOptions {
        since: since.map(str::to_string),
        mask_barcodes: false,
    };
    export_with(store, format, &opts, out)
}

/// [`export`] with options.
pub fn export_with(
    store: &Store,
    format: Format,
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    if let Some(since) = &opts.since {
        check_since(store, since)?;
    }
    if format == Format::Csv {
        write_csv_row(out, CSV_HEADER.iter().map(|s| s.to_string()))?;
    }
    let mut n = 0;
    for entry in store.journal_since(opts.since.as_deref())? {
        let mut entry = entry?;
        if opts.mask_barcodes {
            entry.barcode.clear();
        }
        match format {
            Format::Jsonl => {
                serde_json::to_writer(&mut *out, &jsonl_row(&entry))
                    .map_err(|e| StoreError::Io(std::io::Error::other(format!("export: {e}"))))?;
                out.write_all(b"\n")?;
            }
            Format::Csv => write_csv_row(out, csv_fields(&entry).into_iter())?,
        }
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// `since` must name an entry of this journal (the last id of an earlier export).
fn check_since(store: &Store, since: &str) -> Result<(), StoreError> {
    let expected = || {
        format!(
            "expected the last id of an earlier export of this journal, such as {}",
            match store.last_decision_id() {
                Ok(Some(id)) => id,
                _ => format!("{}-000000000001", store.id_prefix()),
            }
        )
    };
    if since.rsplit_once('-').is_none() || seq_of(since).is_err() {
        return Err(StoreError::BadSince {
            since: since.chars().take(64).collect(),
            why: format!(
                "not a decision id ({{terminal}}-{{sequence}}): {}",
                expected()
            ),
        });
    }
    if store.journal_entry(since)?.is_none() {
        let seq = seq_of(since)?;
        let why = match store.journal_entry_at(seq)? {
            Some(e) => format!(
                "entry {seq} of this journal is {}: the id is another terminal's \
                 (or another store's); {}",
                e.id,
                expected()
            ),
            None => format!("this journal has no entry {seq}; {}", expected()),
        };
        return Err(StoreError::BadSince {
            since: since.chars().take(64).collect(),
            why,
        });
    }
    Ok(())
}

/// What a row adds to the takings, and for a void what it gives back.
fn amounts(e: &JournalEntry) -> (i64, u64) {
    let c = i64::try_from(e.approved_cents).unwrap_or(i64::MAX);
    match (e.kind, e.verdict) {
        (EntryKind::Void, _) => (-c, e.approved_cents),
        (EntryKind::Decision, Verdict::Approve) => (c, 0),
        (EntryKind::Decision, _) => (0, 0),
    }
}

/// An entry as one JSON line (see the module docs).
pub(crate) fn jsonl_row(e: &JournalEntry) -> serde_json::Value {
    let (net, refunded) = amounts(e);
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        if e.kind == EntryKind::Void {
            obj.insert("verdict".into(), "void".into());
            obj.insert("approved_cents".into(), 0.into());
        }
        obj.insert("refunded_cents".into(), refunded.into());
        obj.insert("net_cents".into(), serde_json::Value::from(net));
    }
    v
}

pub(crate) fn csv_fields(e: &JournalEntry) -> Vec<String> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let (net, refunded) = amounts(e);
    let void = e.kind == EntryKind::Void;
    vec![
        e.id.clone(),
        e.seq.to_string(),
        e.kind.as_str().to_string(),
        e.scan_time_ms.to_string(),
        e.scan_time.clone(),
        e.terminal.clone(),
        e.barcode_masked.clone(),
        e.barcode.clone(),
        if void { "void" } else { e.verdict.as_str() }.to_string(),
        e.reason.clone(),
        if void { 0 } else { e.approved_cents }.to_string(),
        e.money
            .iter()
            .map(|m| format!("{}:{}", m.av_id, m.cents))
            .collect::<Vec<_>>()
            .join(";"),
        e.items
            .iter()
            .map(|i| format!("{}:{}", i.av_id, i.description))
            .collect::<Vec<_>>()
            .join("|"),
        e.source.as_str().to_string(),
        e.offline.to_string(),
        e.offline_window.to_string(),
        e.latency_ms.to_string(),
        opt(&e.request),
        opt(&e.void_of),
        opt(&e.voided_by),
        refunded.to_string(),
        net.to_string(),
        opt(&e.venue),
    ]
}

/// Quotes a CSV field when it holds a comma, quote, CR or LF (quotes doubled).
pub fn csv_quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

pub(crate) fn write_csv_row(
    out: &mut dyn Write,
    fields: impl Iterator<Item = String>,
) -> Result<(), StoreError> {
    let line: Vec<String> = fields.map(|f| csv_quote(&f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")?;
    Ok(())
}
