//! Journal export: JSON lines and CSV, paged with `since`, never duplicating or dropping.

mod support;

use std::collections::BTreeSet;

use concession_agent::decide::{Decision, ItemGrant, Reason, Source, Verdict};
use concession_agent::store::{
    export, Format, JournalEntry, NewDecision, Store, StoreOptions, TicketRecord,
};
use support::fixtures::Rng;

fn open(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            terminal_id: "gate,\"A\"".into(),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn commit(s: &Store, i: u64, request: Option<&str>) -> JournalEntry {
    let d = if i.is_multiple_of(3) {
        Decision::deny(Reason::UnknownTicket, Source::Live, false)
    } else {
        Decision {
            verdict: Verdict::Approve,
            reason: Reason::Approved,
            approved_cents: 100,
            money: vec![("AV1".into(), 100)],
            items: vec![ItemGrant {
                av_id: "AV2".into(),
                description: "Pizza, and a \"Coke\"\nlarge".into(),
            }],
            source: Source::Cache,
            offline: false,
        }
    };
    let barcode = format!("3000000{:05}", i);
    s.commit_decision(&NewDecision {
        scan_time_ms: 1_795_795_445_123 + i,
        barcode: &barcode,
        decision: &d,
        evidence: None::<&TicketRecord>,
        latency_ms: i % 50,
        request,
    })
    .unwrap()
}

fn export_jsonl(s: &Store, since: Option<&str>) -> Vec<JournalEntry> {
    let mut buf = Vec::new();
    let n = export(s, Format::Jsonl, since, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let out: Vec<JournalEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len() as u64, n);
    out
}

#[test]
fn paging_a_thousand_entries_with_since_equals_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    for i in 0..1000 {
        commit(&s, i, None);
    }
    let whole: Vec<JournalEntry> = s.journal_since(None).unwrap().map(Result::unwrap).collect();
    assert_eq!(whole.len(), 1000);
    assert_eq!(export_jsonl(&s, None), whole);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _trial in 0..5 {
        let mut pages = Vec::new();
        let mut since: Option<String> = None;
        loop {
            let k = 1 + rng.below(120) as usize;
            let page: Vec<JournalEntry> = s
                .journal_since(since.as_deref())
                .unwrap()
                .take(k)
                .map(Result::unwrap)
                .collect();
            if page.is_empty() {
                break;
            }
            since = Some(page[page.len() - 1].id.clone());
            pages.extend(page);
        }
        assert_eq!(pages, whole);
    }
    // After the last id: nothing.
    assert!(export_jsonl(&s, Some(&whole[999].id)).is_empty());
}

#[test]
fn exporting_while_decisions_keep_coming_never_duplicates_or_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let mut rng = Rng(42);
    let mut exported = Vec::new();
    let mut since: Option<String> = None;
    let mut i = 0;
    while i < 1000 {
        let burst = rng.below(90);
        for _ in 0..burst {
            if i < 1000 {
                commit(&s, i, Some("r"));
                i += 1;
            }
        }
        let page = export_jsonl(&s, since.as_deref());
        if let Some(last) = page.last() {
            since = Some(last.id.clone());
        }
        exported.extend(page);
    }
    exported.extend(export_jsonl(&s, since.as_deref()));
    let ids: Vec<&str> = exported.iter().map(|e| e.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(unique.len(), 1000);
    let whole: Vec<JournalEntry> = s.journal_since(None).unwrap().map(Result::unwrap).collect();
    assert_eq!(exported, whole);
}

/// A small RFC 4180 reader for the test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                _ => field.push(c),
            }
        }
    }
    rows
}

#[test]
fn csv_quotes_commas_quotes_and_newlines() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let tricky = "req,\"1\"\r\nnext";
    let entries: Vec<JournalEntry> = (0..10).map(|i| commit(&s, i, Some(tricky))).collect();
    let mut buf = Vec::new();
    assert_eq!(export(&s, Format::Csv, None, &mut buf).unwrap(), 10);
    let rows = parse_csv(&String::from_utf8(buf).unwrap());
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[0][0], "id");
    // 20 columns, then refunded_cents and net_cents (issue 16.3), then venue.
    assert_eq!(rows[0].len(), 23);
    assert_eq!(rows[0][20..], ["refunded_cents", "net_cents", "venue"]);
    for (row, e) in rows[1..].iter().zip(&entries) {
        assert_eq!(row.len(), 23, "{row:?}");
        assert_eq!(row[20], "0");
        assert_eq!(row[21], e.approved_cents.to_string());
        assert_eq!(row[22], "", "no venue mark outside venue mode");
        assert_eq!(row[0], e.id);
        assert_eq!(row[5], "gate,\"A\"");
        assert_eq!(row[7], e.barcode);
        assert_eq!(row[8], e.verdict.as_str());
        assert_eq!(row[9], e.reason);
        assert_eq!(row[10], e.approved_cents.to_string());
        assert_eq!(row[17], tricky);
        if e.verdict == Verdict::Approve {
            assert_eq!(row[11], "AV1:100");
            assert_eq!(row[12], "AV2:Pizza, and a \"Coke\"\nlarge");
        }
    }
    // Paged CSV: a header per page, every entry once.
    let mut buf = Vec::new();
    assert_eq!(
        export(&s, Format::Csv, Some(&entries[6].id), &mut buf).unwrap(),
        3
    );
    let rows = parse_csv(&String::from_utf8(buf).unwrap());
    let ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, [&entries[7].id, &entries[8].id, &entries[9].id]);
}

/// The CSV lacked the `venue` column the JSON lines have.
#[test]
fn csv_carries_the_venue_mark_as_the_json_lines_do() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let d = Decision::deny(Reason::UnknownTicket, Source::Live, false);
    for mark in [Some("venue"), Some("pending"), None] {
        s.commit_decision_marked(
            &NewDecision {
                scan_time_ms: 1_795_795_445_123,
                barcode: "300000000001",
                decision: &d,
                evidence: None::<&TicketRecord>,
                latency_ms: 0,
                request: None,
            },
            mark,
        )
        .unwrap();
    }
    let mut buf = Vec::new();
    export(&s, Format::Csv, None, &mut buf).unwrap();
    let rows = parse_csv(&String::from_utf8(buf).unwrap());
    let col = rows[0]
        .iter()
        .position(|h| h == "venue")
        .expect("a venue column");
    let csv: Vec<&str> = rows[1..].iter().map(|r| r[col].as_str()).collect();
    assert_eq!(csv, ["venue", "pending", ""]);
    let json: Vec<Option<String>> = export_jsonl(&s, None)
        .into_iter()
        .map(|e| e.venue)
        .collect();
    assert_eq!(json, [Some("venue".into()), Some("pending".into()), None]);
}

#[test]
fn export_formats_parse_by_name() {
    assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
    assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn a_malformed_since_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let mut buf = Vec::new();
    assert!(export(&s, Format::Jsonl, Some("nonsense"), &mut buf).is_err());
}

/// Issue 16.3: `--since` with another terminal's id exported from its sequence number,
/// an id past the end printed nothing with rc 0, and `bogus` did not say the expected
/// form. Each is now an error that says what it expected.
#[test]
fn a_since_that_is_not_an_id_of_this_journal_is_an_error_saying_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let entries: Vec<JournalEntry> = (0..3).map(|i| commit(&s, i, None)).collect();
    let last = &entries[2].id;
    let mut buf = Vec::new();
    for (since, says) in [
        ("bogus", "not a decision id"),
        ("stand-9-000000000001", "another terminal"),
        (&*format!("{}-000000000099", s.id_prefix()), "no entry 99"),
    ] {
        let err = export(&s, Format::Jsonl, Some(since), &mut buf).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(says), "{since}: {msg}");
        assert!(msg.contains(last.as_str()), "names the newest id: {msg}");
        assert!(buf.is_empty(), "nothing written for {since}");
    }
    // The last id of this journal is fine: nothing after it.
    assert_eq!(export(&s, Format::Jsonl, Some(last), &mut buf).unwrap(), 0);
}

/// Issue 16.3: void rows exported as `"kind":"void","verdict":"approve",
/// "approved_cents":5000`, which a script adding approvals counts as takings. A void
/// row now says `verdict: void`, 0 approved, what it refunds, and every row carries
/// `net_cents`, whose sum is the takings.
#[test]
fn void_rows_do_not_add_to_the_takings_in_either_format() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let a = commit(&s, 1, None); // approve 100
    commit(&s, 2, None); // approve 100
    commit(&s, 3, None); // deny
    s.void(&a.id, 1_795_795_500_000, None).unwrap();
    let mut buf = Vec::new();
    export(&s, Format::Jsonl, None, &mut buf).unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let void = rows.iter().find(|r| r["kind"] == "void").unwrap();
    assert_eq!(void["verdict"], "void");
    assert_eq!(void["approved_cents"], 0);
    assert_eq!(void["refunded_cents"], 100);
    assert_eq!(void["net_cents"], -100);
    let approved: u64 = rows
        .iter()
        .filter(|r| r["verdict"] == "approve")
        .map(|r| r["approved_cents"].as_u64().unwrap())
        .sum();
    let net: i64 = rows.iter().map(|r| r["net_cents"].as_i64().unwrap()).sum();
    assert_eq!((approved, net), (200, 100));

    let mut buf = Vec::new();
    export(&s, Format::Csv, None, &mut buf).unwrap();
    let csv = parse_csv(&String::from_utf8(buf).unwrap());
    let void = csv.iter().find(|r| r[2] == "void").unwrap();
    assert_eq!(
        (&*void[8], &*void[10], &*void[20], &*void[21]),
        ("void", "0", "100", "-100")
    );
}

/// Issue 16.3: full barcodes are in the export (documented), and `--mask-barcodes`
/// leaves them out.
#[test]
fn an_export_with_masked_barcodes_holds_no_full_barcode() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let e = commit(&s, 1, None);
    let opts = concession_agent::store::ExportOptions {
        since: None,
        mask_barcodes: true,
    };
    let mut buf = Vec::new();
    concession_agent::store::export_with(&s, Format::Jsonl, &opts, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(!text.contains(&e.barcode), "{text}");
    assert!(text.contains(&e.barcode_masked), "{text}");
}
