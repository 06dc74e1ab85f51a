//! Tests of the wire mappings, through the items `wire` re-exports.

use super::*;
use serde_json::{json, Map, Value};

use crate::ats::error::{AtsError, Phase};
use crate::money::parse_cents;
use crate::ticket::{TicketStatus, ValueKind};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn shortened_server_text_carries_no_control_characters() {
    assert_eq!(
        shorten("bad\r\nINFO forged\u{1b}[2J", 64),
        "bad??INFO forged?[2J"
    );
    assert_eq!(shorten("abcdef", 3), "abc...");
}

#[test]
fn request_envelope_has_header_and_command1() {
    let mut f = Map::new();
    f.insert("barcode".into(), json!("100000000001"));
    let body: Value = serde_json::from_str(&request_body(
        "pos",
        "verify_barcode",
        "r1",
        "u",
        "apigee",
        &f,
    ))
    .unwrap();
    assert_eq!(
        body["header"],
        json!({"ver":1,"src_sys_type":2,"src_sys_name":"pos","archtics_version":"V999"})
    );
    assert_eq!(body["command1"]["cmd"], "verify_barcode");
    assert_eq!(body["command1"]["ref"], "r1");
    assert_eq!(body["command1"]["uid"], "u");
    assert_eq!(body["command1"]["dsn"], "apigee");
    assert_eq!(body["command1"]["barcode"], "100000000001");
}

#[test]
fn envelope_checks_ref_and_results() {
    let ok = br#"{"header":{"result":"0"},"command1":{"ref":"r1","result":0}}"#;
    let env = parse_envelope(ok, "r1").unwrap();
    check_result(&env).unwrap();
    let other = br#"{"command1":{"ref":"r2"}}"#;
    assert_eq!(
        parse_envelope(other, "r1").unwrap_err().phase(),
        Some(Phase::Decode)
    );
    assert!(parse_envelope(b"<html>", "r1").is_err());
    assert!(parse_envelope(b"[1]", "r1").is_err());
    assert!(parse_envelope(b"{\"header\":{}}", "r1").is_err());

    let api = br#"{"header":{"result":0},"command1":{"result":"5301","sql_code":100,"error_detail":"Barcode not found"}}"#;
    let e = check_result(&parse_envelope(api, "r").unwrap()).unwrap_err();
    assert_eq!(
        e,
        AtsError::Api {
            code: 5301,
            sql_code: 100,
            message: "Barcode not found".into()
        }
    );
    let hdr = br#"{"header":{"result":7,"error_desc":"gateway"},"command1":{}}"#;
    let e = check_result(&parse_envelope(hdr, "r").unwrap()).unwrap_err();
    assert!(matches!(e, AtsError::Api { code: 7, .. }), "{e:?}");
    let tok = br#"{"command1":{"result":1,"error_detail":"No data for token 'abc'"}}"#;
    let e = check_result(&parse_envelope(tok, "r").unwrap()).unwrap_err();
    assert!(matches!(e, AtsError::NoDataForToken { .. }), "{e:?}");
}

#[test]
fn decodes_verify_leniently_and_keeps_unknown_fields() {
    let c1 = obj(json!({
        "cmd": "verify_barcode", "result": 0, "barcode": "100000000001",
        "event_name": "EVENT01", "acct_id": "100479", "seat_num": 12,
        "ticket_status": "active", "Section_Name": "101", "shiny": true
    }));
    let a = decode_verify(&c1, "100000000001").unwrap();
    assert_eq!(a.info.acct_id, Some(100479));
    assert_eq!(a.info.seat_num.as_deref(), Some("12"));
    assert_eq!(a.info.section_name.as_deref(), Some("101"));
    assert_eq!(a.info.status, TicketStatus::Active);
    assert_eq!(a.extra.get("shiny"), Some(&json!(true)));
    assert!(a.extra.contains_key("cmd"));
    assert!(!a.extra.contains_key("Section_Name"));
}

#[test]
fn verify_refuses_hostile_values() {
    let base = json!({"event_name": "E", "ticket_status": "ACTIVE"});
    for (k, v) in [
        ("acct_id", json!(-5)),
        ("acct_id", json!("12x")),
        ("acct_id", json!([1])),
        ("event_name", json!({"a": 1})),
        ("section_name", json!("x".repeat(300))),
        ("barcode", json!("1".repeat(65))),
        ("row_name", json!("a\u{0}b")),
    ] {
        let mut m = obj(base.clone());
        m.insert(k.into(), v);
        assert!(
            matches!(decode_verify(&m, "1"), Err(AtsError::Decode { .. })),
            "{k}"
        );
    }
    let m = obj(json!({"event_name": "E"}));
    assert!(decode_verify(&m, "1").is_err());
    let m = obj(json!({"event_name": "E", "ticket_status": "LOST"}));
    assert_eq!(
        decode_verify(&m, "1").unwrap().info.status,
        TicketStatus::Other("LOST".into())
    );
}

#[test]
fn decodes_av_rows_money_and_items() {
    let c1 = obj(json!({
        "Count": "2", "more_data": "N",
        "av_barcodes": [
            {"barcode": "100000000003", "acct_id": 100479, "av_id": 1004, "av_type": "N",
             "description": "Hot Dog", "amount": "1.00", "balance": 1, "x": 1},
            {"barcode": "100000000003", "av_id": "AV1003", "av_type": "m",
             "amount": 15, "balance": "7.5", "valid_until": "2026-01-01"}
        ]
    }));
    let ch = decode_av_chunk(&c1).unwrap();
    assert_eq!(ch.count, Some(2));
    assert_eq!(ch.more_data, Some(false));
    assert_eq!(ch.rows[0].line.kind, ValueKind::Item);
    assert_eq!(ch.rows[0].line.av_id, "1004");
    assert_eq!((ch.rows[0].line.loaded, ch.rows[0].line.balance), (1, 1));
    assert_eq!(ch.rows[0].extra.get("x"), Some(&json!(1)));
    assert_eq!(ch.rows[1].line.kind, ValueKind::Money);
    assert_eq!(
        (ch.rows[1].line.loaded, ch.rows[1].line.balance),
        (1500, 750)
    );
    assert_eq!(ch.rows[1].line.valid_until.as_deref(), Some("2026-01-01"));
}

#[test]
fn av_rows_refuse_hostile_amounts() {
    let row = json!({"av_id": "A", "av_type": "M", "amount": "1.00", "balance": "1.00"});
    for (k, v) in [
        ("balance", json!("-1.00")),
        ("balance", json!(-1)),
        ("balance", json!("1.001")),
        ("balance", json!("1e3")),
        ("balance", json!("NaN")),
        ("balance", json!(true)),
        ("balance", json!("99999999999999999999999")),
        ("amount", json!("10000000.00")),
        ("amount", Value::Null),
        ("av_type", json!("X")),
        ("av_id", json!({})),
    ] {
        let mut r = obj(row.clone());
        r.insert(k.into(), v);
        let c1 = obj(json!({ "av_barcodes": [Value::Object(r)] }));
        assert!(
            matches!(decode_av_chunk(&c1), Err(AtsError::Decode { .. })),
            "{k}"
        );
    }
    let item = obj(json!({"av_barcodes": [
        {"av_id": "A", "av_type": "N", "amount": "1.50", "balance": "1"}]}));
    assert!(decode_av_chunk(&item).is_err());
    assert!(decode_av_chunk(&obj(json!({"av_barcodes": "x"}))).is_err());
    assert!(decode_av_chunk(&obj(json!({"av_barcodes": [1]}))).is_err());
    assert!(decode_av_chunk(&obj(json!({"more_data": "maybe"}))).is_err());
    assert!(decode_av_chunk(&obj(json!({"count": -1}))).is_err());
}

#[test]
fn server_clock_reads_ping_date_and_time() {
    let c1 = obj(json!({"server_date": "2026-12-01", "server_time": "09:30:05"}));
    assert_eq!(server_clock_ms(&c1), Some(1_796_117_405_000));
    for bad in [
        json!({"server_date": "2026-12-01"}),
        json!({"server_date": "2026-13-01", "server_time": "09:30:05"}),
        json!({"server_date": "yesterday", "server_time": "09:30:05"}),
        json!({"server_date": "2026-12-01", "server_time": "25:00:00"}),
        json!({"server_date": 20261201, "server_time": "09:30:05"}),
    ] {
        assert_eq!(server_clock_ms(&obj(bad.clone())), None, "{bad}");
    }
}

#[test]
fn no_data_for_token_and_not_found_rules() {
    assert!(is_no_data_for_token("No data for token 'x'"));
    assert!(is_no_data_for_token("  no DATA for token"));
    assert!(!is_no_data_for_token("token"));
    assert!(is_not_found(5301, 100));
    assert!(is_not_found(5311, 0));
    assert!(!is_not_found(5312, 0));
    assert_eq!(shorten("abcdef", 3), "abc...");
    assert_eq!(shorten("é", 3), "é");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::from),
            "-?[0-9]{0,25}(\\.[0-9]{0,4})?".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            Just(json!([1, "x"])),
            Just(json!({"a": 1})),
        ]
    }

    proptest! {
        #[test]
        fn av_rows_never_panic_and_never_invent_value(
            amount in scalar(), balance in scalar(), acct in scalar(),
            kind in prop_oneof![Just("M"), Just("N"), Just("m"), Just("Q")],
        ) {
            let row = json!({"barcode": "100000000001", "av_id": "A", "av_type": kind,
                             "amount": amount, "balance": balance.clone(), "acct_id": acct});
            let c1 = obj(json!({"av_barcodes": [row]}));
            match decode_av_chunk(&c1) {
                Ok(ch) => {
                    let line = &ch.rows[0].line;
                    let text = match &balance {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let cents = parse_cents(&text).unwrap();
                    match line.kind {
                        ValueKind::Money => prop_assert_eq!(line.balance, cents),
                        ValueKind::Item => prop_assert_eq!(line.balance * 100, cents),
                    }
                }
                Err(e) => prop_assert!(matches!(e, AtsError::Decode { .. }), "{:?}", e),
            }
        }

        #[test]
        fn verify_never_panics(fields in proptest::collection::btree_map(
            prop_oneof![Just("barcode".to_string()), Just("event_name".to_string()),
                        Just("acct_id".to_string()), Just("ticket_status".to_string()),
                        Just("seat_num".to_string()), any::<String>()],
            scalar(), 0..8)) {
            let m: Map<String, Value> = fields.into_iter().collect();
            let _ = decode_verify(&m, "1");
            let _ = check_result(&Envelope { body: json!({"header": m.clone(), "command1": m}) });
        }
    }
}
