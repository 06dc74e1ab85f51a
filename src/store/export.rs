//! Journal export as JSON lines or CSV.
//!
//! Entries come out in id order, strictly after `since` (the last id of the previous
//! export), so exporting page after page with the previous page's last id never
//! duplicates or drops an entry. JSON lines carry each [`JournalEntry`] as it is stored.
//! CSV has a header row (on every export), RFC 4180 quoting, money lines as
//! `av_id:cents` joined by `;` and items as `av_id:description` joined by `|`.
//! Exports hold full barcodes: treat them as customer data.

use std::io::Write;
use std::str::FromStr;

use super::{JournalEntry, Store, StoreError};

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
pub const CSV_HEADER: [&str; 20] = [
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
];

/// Writes every journal entry after `since` to `out`; returns how many.
pub fn export(
    store: &Store,
    format: Format,
    since: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    if format == Format::Csv {
        write_csv_row(out, CSV_HEADER.iter().map(|s| s.to_string()))?;
    }
    let mut n = 0;
    for entry in store.journal_since(since)? {
        let entry = entry?;
        match format {
            Format::Jsonl => {
                serde_json::to_writer(&mut *out, &entry)
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

fn csv_fields(e: &JournalEntry) -> Vec<String> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    vec![
        e.id.clone(),
        e.seq.to_string(),
        e.kind.as_str().to_string(),
        e.scan_time_ms.to_string(),
        e.scan_time.clone(),
        e.terminal.clone(),
        e.barcode_masked.clone(),
        e.barcode.clone(),
        e.verdict.as_str().to_string(),
        e.reason.clone(),
        e.approved_cents.to_string(),
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

fn write_csv_row(
    out: &mut dyn Write,
    fields: impl Iterator<Item = String>,
) -> Result<(), StoreError> {
    let line: Vec<String> = fields.map(|f| csv_quote(&f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")?;
    Ok(())
}
