//! The cache's compact record encoding (format byte 2).
//!
//! A cached [`TicketRecord`] was JSON with every field name (format 1, about 400 bytes a
//! ticket, 124 MB of sled store at 100,000 tickets). Format 2 is positional JSON without
//! the barcode, which is the key: `[info, lines, fetched_at_ms]`, `info` being
//! `[barcode_if_other, event_name, event_date, event_time, acct_id, section_name,
//! row_name, seat_num, price_code, status]` and each line `[av_id, kind, description,
//! loaded, balance, valid_from, valid_until]`. Format-1 entries written by an earlier
//! version are still read; an earlier version reads a format-2 entry as a miss (it
//! logs it and asks ATS: the cache is disposable), so no schema version is needed.

use serde::{Deserialize, Serialize};

use super::codec;
use super::error::StoreError;
use crate::money::Cents;
use crate::ticket::{TicketInfo, TicketRecord, TicketStatus, ValueKind, ValueLine};

/// The format byte of compact cache records.
const FORMAT_COMPACT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Compact(Option<Info>, Vec<Line>, u64);

#[derive(Serialize, Deserialize)]
struct Info(
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    TicketStatus,
);

#[derive(Serialize, Deserialize)]
struct Line(
    String,
    ValueKind,
    String,
    Cents,
    Cents,
    Option<String>,
    Option<String>,
);

/// Encodes `record` (its barcode is the key and is not repeated).
pub(crate) fn encode(record: &TicketRecord) -> Result<Vec<u8>, StoreError> {
    let info = record.info.as_ref().map(|i| {
        Info(
            (i.barcode != record.barcode).then(|| i.barcode.clone()),
            i.event_name.clone(),
            i.event_date.clone(),
            i.event_time.clone(),
            i.acct_id,
            i.section_name.clone(),
            i.row_name.clone(),
            i.seat_num.clone(),
            i.price_code.clone(),
            i.status.clone(),
        )
    });
    let lines = record
        .value
        .iter()
        .map(|l| {
            Line(
                l.av_id.clone(),
                l.kind,
                l.description.clone(),
                l.loaded,
                l.balance,
                l.valid_from.clone(),
                l.valid_until.clone(),
            )
        })
        .collect();
    let mut out = vec![FORMAT_COMPACT];
    serde_json::to_writer(&mut out, &Compact(info, lines, record.fetched_at_ms)).map_err(|e| {
        StoreError::Corrupt {
            what: "cache".into(),
            detail: format!("encode: {e}"),
        }
    })?;
    Ok(out)
}

/// Decodes the record cached under `barcode` (either format).
pub(crate) fn decode(barcode: &str, bytes: &[u8]) -> Result<TicketRecord, StoreError> {
    let Some((&FORMAT_COMPACT, json)) = bytes.split_first() else {
        return codec::decode("cache", bytes);
    };
    let Compact(info, lines, fetched_at_ms) =
        serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
            what: "cache".into(),
            detail: e.to_string(),
        })?;
    Ok(TicketRecord {
        barcode: barcode.to_string(),
        info: info.map(|i| TicketInfo {
            barcode: i.0.unwrap_or_else(|| barcode.to_string()),
            event_name: i.1,
            event_date: i.2,
            event_time: i.3,
            acct_id: i.4,
            section_name: i.5,
            row_name: i.6,
            seat_num: i.7,
            price_code: i.8,
            status: i.9,
        }),
        value: lines
            .into_iter()
            .map(|l| ValueLine {
                av_id: l.0,
                kind: l.1,
                description: l.2,
                loaded: l.3,
                balance: l.4,
                valid_from: l.5,
                valid_until: l.6,
            })
            .collect(),
        fetched_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TicketRecord {
        TicketRecord {
            barcode: "200000000001".into(),
            info: Some(TicketInfo {
                barcode: "200000000001".into(),
                event_name: "EVENT01".into(),
                event_date: Some("2026-12-01".into()),
                event_time: None,
                acct_id: Some(100999),
                section_name: Some("101".into()),
                row_name: None,
                seat_num: Some("4".into()),
                price_code: None,
                status: TicketStatus::Other("HELD".into()),
            }),
            value: vec![ValueLine {
                av_id: "AV2000001".into(),
                kind: ValueKind::Money,
                description: "Food credit".into(),
                loaded: 1000,
                balance: 250,
                valid_from: None,
                valid_until: Some("2026-12-01".into()),
            }],
            fetched_at_ms: 1_795_795_445_123,
        }
    }

    #[test]
    fn a_compact_record_reads_back_as_written_and_is_far_smaller() {
        let r = record();
        let compact = encode(&r).unwrap();
        assert_eq!(decode(&r.barcode, &compact).unwrap(), r);
        let v1 = codec::encode("cache", &r).unwrap();
        assert_eq!(
            decode(&r.barcode, &v1).unwrap(),
            r,
            "format 1 is still read"
        );
        assert!(
            compact.len() * 2 < v1.len(),
            "{} vs {}",
            compact.len(),
            v1.len()
        );
    }

    #[test]
    fn a_negative_answer_and_an_identity_under_another_barcode_survive() {
        let mut r = record();
        r.info.as_mut().unwrap().barcode = "200000000001J".into();
        assert_eq!(decode(&r.barcode, &encode(&r).unwrap()).unwrap(), r);
        r.info = None;
        r.value.clear();
        assert_eq!(decode(&r.barcode, &encode(&r).unwrap()).unwrap(), r);
        assert!(decode(&r.barcode, b"\x02[1,2]").is_err());
    }
}
