//! Command handlers: `command1` in, the fields the sandbox adds to `command1` out.
//!
//! Result codes (HTTP 200 throughout; `header.result` is always 0):
//!
//! | command | code | sql_code | message field | meaning |
//! |---|---|---|---|---|
//! | customer_query | 5020 | 0 | error_detail | account locked |
//! | customer_query | 5021 | 0 | error_detail | missing/invalid acct_id or email |
//! | customer_query | 5024 | 100 | error_detail | account not found |
//! | seats_sold | 5061 | 0 | error_desc | missing/invalid acct_id |
//! | seats_sold | 5069 | 100 | error_desc | "No blocks found" |
//! | event_search | 5211 | 0 | error_detail | bad start_date/end_date |
//! | event_search | 5212 | 100 | error_detail | no events in range |
//! | event_details | 11075 | 0 | error_detail | answer over 250000 bytes |
//! | get_attendance | 5401 | 0 | error_detail | missing event_name and acct_id |
//! | verify_barcode | 5301 | 100 | error_detail | "Barcode not found" |
//! | verify_barcode | 5302 | 0 | error_detail | missing barcode |
//! | get_av_barcodes | 5311 | 100 | error_detail | "Barcode not found" |
//! | get_av_barcodes | 5312 | 0 | error_detail | missing barcode and event_name |
//! | get_av_barcodes | 5313 | 100 | error_detail | "Event not found" |
//! | (any) | 9000 | 0 | error_detail | unknown command |
//! | (any) | 9001 | 0 | error_detail | known ATS command, not emulated |
//! | (poll) | 9002 | 100 | error_detail | "No data for token '...'" |
//! | (poll) | 9003 | 0 | error_detail | poll body differs from the queued command |
//!
//! Types are mixed on purpose, as real ATS does: `acct_id` is a number in
//! `verify_barcode`/`get_av_barcodes`/`customer_query` but a string in `seats_sold` and
//! `get_attendance`; `event_search` counts with `Count`; `event_details` and the event
//! form of `get_av_barcodes` send `count` as a string; `ping` mixes both.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::data::{format_day, parse_day, AddedValue, DataSet, Event, Ticket};
use super::json::{obj, value_text};
use crate::money::format_cents;

/// `ats_ext_test_polling` takes this long.
pub const TEST_POLLING: Duration = Duration::from_secs(10);
/// Default and largest `get_av_barcodes` chunk (rows).
pub const AV_CHUNK: usize = 500;
/// Default and largest `seats_sold` chunk (blocks).
pub const SEATS_CHUNK: usize = 100;
/// `event_details` refuses answers above this size (11075).
pub const EVENT_DETAILS_MAX_BYTES: usize = 250_000;

/// Commands named in the published API overview that the sandbox does not emulate.
pub const NOT_EMULATED: &[&str] = &[
    "service_charge_details",
    "system_options",
    "get_accounts_with_updates",
    "customer_add",
    "customer_update",
    "get_accounts_with_sales",
    "get_acct_rep",
    "get_event_price_code_updates",
    "get_seats_on_account",
    "get_seats_on_account_reserved",
    "get_sth_status",
    "update_acct_memo",
    "verify_ticket_in_item_set",
    "event_price_info",
    "get_avail_seats",
    "get_event_manifest",
    "get_events_with_sales",
    "get_ticket_sales",
    "get_attendance_incremental",
];

/// What a command may read besides its input.
pub(crate) struct Ctx<'a> {
    pub data: &'a DataSet,
    pub today: i64,
    pub active_requests: usize,
    pub wall_ms: u64,
    /// Fault: `get_av_barcodes` sends every row twice.
    pub duplicate_av_rows: bool,
    /// Fault: event chunks start at `prev_barcode`, not after it.
    pub inclusive_prev_barcode: bool,
    /// Fault: `ping` reports the server's time this far off (ms).
    pub server_clock_offset_ms: i64,
}

type Out = Map<String, Value>;

/// An error result.
pub(crate) fn error_out(code: i64, sql_code: i64, msg: &str) -> Out {
    obj(vec![
        ("result", json!(code)),
        ("sql_code", json!(sql_code)),
        ("error_detail", json!(msg)),
    ])
}

fn ok(sql_code: i64) -> Out {
    obj(vec![("result", json!(0)), ("sql_code", json!(sql_code))])
}

fn text(c: &Map<String, Value>, key: &str) -> Option<String> {
    c.get(key).map(value_text).filter(|s| !s.is_empty())
}

fn cmd_name(c: &Map<String, Value>) -> String {
    text(c, "cmd").unwrap_or_default().to_ascii_lowercase()
}

/// How long this command takes to compute (0 for most).
pub(crate) fn duration(data: &DataSet, c: &Map<String, Value>) -> Duration {
    match cmd_name(c).as_str() {
        "ats_ext_test_polling" => TEST_POLLING,
        "verify_barcode" | "get_av_barcodes" => text(c, "barcode")
            .and_then(|b| data.ticket(&b))
            .map(|t| Duration::from_millis(t.slow_ms))
            .unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// Runs a command.
pub(crate) fn run(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let name = cmd_name(c);
    match name.as_str() {
        "ping" => ping(ctx, c),
        "ats_ext_test_polling" => {
            let mut o = ok(0);
            o.insert("message".into(), json!("polling test complete"));
            o
        }
        "customer_query" => customer_query(ctx, c),
        "seats_sold" => seats_sold(ctx, c),
        "event_search" => event_search(ctx, c),
        "event_details" => event_details(ctx, c),
        "get_attendance" => get_attendance(ctx, c),
        "verify_barcode" => verify_barcode(ctx, c),
        "get_av_barcodes" => get_av_barcodes(ctx, c),
        "" => error_out(9000, 0, "missing cmd"),
        n if NOT_EMULATED.contains(&n) => error_out(
            9001,
            0,
            &format!(
                "command '{}' is not emulated by ats-sandbox",
                text(c, "cmd").unwrap_or_default()
            ),
        ),
        _ => error_out(
            9000,
            0,
            &format!("unknown command '{}'", text(c, "cmd").unwrap_or_default()),
        ),
    }
}

fn ping(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let server_ms = (i128::from(ctx.wall_ms) + i128::from(ctx.server_clock_offset_ms)).max(0);
    let server_ms = u64::try_from(server_ms).unwrap_or(u64::MAX);
    let secs = server_ms / 1000 % 86_400;
    let mut o = ok(0);
    o.extend(obj(vec![
        ("system_available", json!("Y")),
        ("db_name", json!("SANDBOX")),
        ("db_connections", json!("12")),
        ("cpu_load", json!(3)),
        ("active_requests", json!(ctx.active_requests)),
        ("unscheduled_requests", json!("0")),
        (
            "server_date",
            json!(format_day((server_ms / 86_400_000) as i64)),
        ),
        (
            "server_time",
            json!(format!(
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )),
        ),
        ("ats_build", json!("ats-sandbox")),
    ]));
    if let Some(r) = text(c, "call_reason") {
        o.insert("call_reason".into(), json!(r));
    }
    o
}

fn customer_query(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let acct = match (
        text(c, "acct_id"),
        text(c, "email").or(text(c, "email_addr")),
    ) {
        (Some(id), _) => match id.parse::<u64>() {
            Ok(id) => ctx.data.account(id),
            Err(_) => return error_out(5021, 0, "Invalid input: acct_id"),
        },
        (None, Some(email)) => ctx.data.account_by_email(&email),
        (None, None) => return error_out(5021, 0, "Missing required input: acct_id or email"),
    };
    let Some(a) = acct else {
        return error_out(5024, 100, "Account not found");
    };
    if a.locked {
        return error_out(5020, 0, "Account is locked");
    }
    let mut o = ok(0);
    o.extend(obj(vec![
        ("acct_id", json!(a.acct_id)),
        ("name_first", json!(a.name_first)),
        ("name_last", json!(a.name_last)),
        ("email_addr", json!(a.email_addr)),
        ("acct_type", json!("I")),
        ("cust_name_id", json!(format!("{}", a.acct_id * 10 + 1))),
    ]));
    if let Some(s) = text(c, "site_name") {
        o.insert("site_name".into(), json!(s));
    }
    o
}

fn event_date(ctx: &Ctx<'_>, ev: Option<&Event>) -> String {
    ev.map(|e| format_day(ctx.today + e.day_offset))
        .unwrap_or_default()
}

/// Sort key of a seat number: numeric seats in numeric order.
fn seat_key(seat: &str) -> (u64, String) {
    (seat.parse().unwrap_or(u64::MAX), seat.to_string())
}

type BlockKey = (String, String, String, (u64, String));

fn seats_sold(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let acct_id = match text(c, "acct_id").map(|s| s.parse::<u64>()) {
        Some(Ok(id)) => id,
        Some(Err(_)) => {
            let mut o = error_out(5061, 0, "Invalid input: acct_id");
            rename_error(&mut o);
            return o;
        }
        None => {
            let mut o = error_out(5061, 0, "Missing required input: acct_id");
            rename_error(&mut o);
            return o;
        }
    };
    let event_filter = text(c, "event_name");
    let max_rows = text(c, "max_rows")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(SEATS_CHUNK)
        .clamp(1, SEATS_CHUNK);
    // Group the account's active tickets into blocks: event, section, row, price code.
    let mut blocks: BTreeMap<(String, String, String, String), Vec<&Ticket>> = BTreeMap::new();
    for t in ctx.data.tickets() {
        if t.acct_id != acct_id || t.status != "ACTIVE" {
            continue;
        }
        if let Some(f) = &event_filter {
            if !t.event_name.eq_ignore_ascii_case(f) {
                continue;
            }
        }
        blocks
            .entry((
                t.event_name.clone(),
                t.section_name.clone(),
                t.row_name.clone(),
                t.price_code.clone(),
            ))
            .or_default()
            .push(t);
    }
    let mut rows: Vec<(BlockKey, Value)> = blocks
        .into_iter()
        .map(|((ev, sec, row, pc), mut seats)| {
            seats.sort_by_key(|t| seat_key(&t.seat_num));
            let first = seats
                .first()
                .map(|t| t.seat_num.clone())
                .unwrap_or_default();
            let last = seats.last().map(|t| t.seat_num.clone()).unwrap_or_default();
            let price = seats
                .first()
                .map(|t| t.purchase_price.clone())
                .unwrap_or_default();
            let total: u64 = seats
                .iter()
                .filter_map(|t| crate::money::parse_cents(&t.purchase_price).ok())
                .sum();
            let atomic: Vec<Value> = seats
                .iter()
                .map(|t| {
                    let credit: u64 = t
                        .value
                        .iter()
                        .filter(|v| v.av_type == "M")
                        .map(|v| v.balance)
                        .sum();
                    json!({
                        "seat_num": t.seat_num,
                        "barcode": t.barcode,
                        "status_add_credit_amount": format_cents(credit),
                    })
                })
                .collect();
            let row_json = json!({
                "event_name": ev,
                "event_date": event_date(ctx, ctx.data.event(&ev)),
                "section_name": sec,
                "row_name": row,
                "seat_num": first,
                "last_seat": last,
                "num_seat": seats.len(),
                "price_code": pc,
                "purchase_price": price,
                "block_purchase_price": format_cents(total),
                "acct_id": acct_id.to_string(),
                "atomic_seats": atomic,
            });
            ((ev, sec, row, seat_key(&first)), row_json)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if rows.is_empty() {
        let mut o = error_out(5069, 100, "No blocks found");
        rename_error(&mut o);
        return o;
    }
    // Resume after the last block seen.
    let prev = (
        text(c, "prev_event_name"),
        text(c, "prev_section_name"),
        text(c, "prev_row_name"),
        text(c, "prev_seat_num"),
    );
    let start = match prev {
        (Some(ev), Some(sec), Some(row), Some(seat)) => {
            let key = (ev, sec, row, seat_key(&seat));
            rows.iter()
                .position(|(k, _)| *k > key)
                .unwrap_or(rows.len())
        }
        _ => 0,
    };
    let rest = &rows[start..];
    let chunk: Vec<Value> = rest.iter().take(max_rows).map(|(_, v)| v.clone()).collect();
    let more = rest.len() > chunk.len();
    let mut o = ok(if chunk.is_empty() { 100 } else { 0 });
    o.extend(obj(vec![
        ("acct_id", json!(acct_id.to_string())),
        ("count", json!(chunk.len())),
        ("more_data", json!(if more { "Y" } else { "N" })),
        ("seats_array", Value::Array(chunk)),
    ]));
    o
}

/// seats_sold reports its message in `error_desc`.
fn rename_error(o: &mut Out) {
    if let Some(v) = o.remove("error_detail") {
        o.insert("error_desc".into(), v);
    }
}

fn day_of_week(days: i64) -> &'static str {
    const NAMES: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    NAMES[days.rem_euclid(7) as usize]
}

fn event_row(ctx: &Ctx<'_>, e: &Event, detailed: bool) -> Value {
    let day = ctx.today + e.day_offset;
    let mut m = obj(vec![
        ("event_name", json!(e.event_name)),
        ("event_name_long", json!(e.description)),
        ("event_date", json!(format_day(day))),
        ("event_time", json!(e.event_time)),
        ("event_day", json!(day_of_week(day))),
        ("venue_name", json!(e.venue)),
        ("opponent", json!(e.opponent)),
    ]);
    if detailed {
        let sold = ctx
            .data
            .tickets()
            .filter(|t| t.event_name == e.event_name && t.status == "ACTIVE")
            .count();
        m.extend(obj(vec![
            ("event_type", json!("H")),
            ("sellable", json!(if e.day_offset >= 0 { "Y" } else { "N" })),
            ("tickets_sold", json!(sold.to_string())),
        ]));
    }
    Value::Object(m)
}

fn sorted_events<'a>(ctx: &Ctx<'a>) -> Vec<&'a Event> {
    let mut evs: Vec<&Event> = ctx.data.events().iter().collect();
    evs.sort_by(|a, b| {
        (a.day_offset, &a.event_time, &a.event_name).cmp(&(
            b.day_offset,
            &b.event_time,
            &b.event_name,
        ))
    });
    evs
}

fn event_search(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let start = match text(c, "start_date") {
        Some(s) => match parse_day(&s) {
            Some(d) => d,
            None => return error_out(5211, 0, "Invalid input: start_date"),
        },
        None => ctx.today,
    };
    let end = match text(c, "end_date") {
        Some(s) => match parse_day(&s) {
            Some(d) => d,
            None => return error_out(5211, 0, "Invalid input: end_date"),
        },
        None => start + 365,
    };
    if end < start {
        return error_out(5211, 0, "Invalid input: end_date is before start_date");
    }
    let rows: Vec<Value> = sorted_events(ctx)
        .into_iter()
        .filter(|e| (start..=end).contains(&(ctx.today + e.day_offset)))
        .map(|e| event_row(ctx, e, false))
        .collect();
    if rows.is_empty() {
        return error_out(5212, 100, "No events found");
    }
    let mut o = ok(0);
    o.insert("Count".into(), json!(rows.len()));
    o.insert("events".into(), Value::Array(rows));
    o
}

fn event_details(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let names: Option<Vec<String>> = match c.get("event_filter") {
        Some(Value::Array(a)) => Some(a.iter().map(value_text).collect()),
        Some(v) => {
            let s = value_text(v);
            (!s.is_empty()).then(|| s.split(',').map(|p| p.trim().to_string()).collect())
        }
        None => None,
    };
    let rows: Vec<Value> = sorted_events(ctx)
        .into_iter()
        .filter(|e| match &names {
            Some(n) => n.iter().any(|x| x.eq_ignore_ascii_case(&e.event_name)),
            None => true,
        })
        .map(|e| event_row(ctx, e, true))
        .collect();
    let size = serde_json::to_vec(&rows).map(|v| v.len()).unwrap_or(0);
    if size > EVENT_DETAILS_MAX_BYTES {
        return error_out(
            11075,
            0,
            "Result set exceeds 250000 bytes; narrow the filter",
        );
    }
    let mut o = ok(if rows.is_empty() { 100 } else { 0 });
    o.insert("count".into(), json!(rows.len().to_string()));
    o.insert("events".into(), Value::Array(rows));
    o
}

fn get_attendance(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let ev = text(c, "event_name");
    let acct = text(c, "acct_id");
    if ev.is_none() && acct.is_none() {
        return error_out(5401, 0, "Missing required input: event_name or acct_id");
    }
    let rows: Vec<Value> = ctx
        .data
        .tickets()
        .filter(|t| t.entered_at.is_some())
        .filter(|t| {
            ev.as_ref()
                .is_none_or(|e| t.event_name.eq_ignore_ascii_case(e))
        })
        .filter(|t| acct.as_ref().is_none_or(|a| t.acct_id.to_string() == *a))
        .map(|t| {
            json!({
                "barcode": t.barcode,
                "event_name": t.event_name,
                "acct_id": t.acct_id.to_string(),
                "section_name": t.section_name,
                "row_name": t.row_name,
                "seat_num": t.seat_num,
                "scan_date": event_date(ctx, ctx.data.event(&t.event_name)),
                "scan_time": t.entered_at.clone().unwrap_or_default(),
                "gate": t.gate.clone().unwrap_or_default(),
                "scan_result": "ENTERED",
            })
        })
        .collect();
    let mut o = ok(if rows.is_empty() { 100 } else { 0 });
    o.insert(
        "page".into(),
        json!(text(c, "page").unwrap_or_else(|| "0".into())),
    );
    o.insert("count".into(), json!(rows.len()));
    o.insert("attendance".into(), Value::Array(rows));
    o
}

fn verify_barcode(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    let Some(bc) = text(c, "barcode") else {
        return error_out(5302, 0, "Missing required input: barcode");
    };
    let Some(t) = ctx.data.ticket(&bc) else {
        return error_out(5301, 100, "Barcode not found");
    };
    let ev = ctx.data.event(&t.event_name);
    let mut o = ok(0);
    o.extend(obj(vec![
        ("barcode", json!(t.barcode)),
        ("event_name", json!(t.event_name)),
        ("event_date", json!(event_date(ctx, ev))),
        (
            "event_time",
            json!(ev.map(|e| e.event_time.clone()).unwrap_or_default()),
        ),
        ("acct_id", json!(t.acct_id)),
        ("section_name", json!(t.section_name)),
        ("row_name", json!(t.row_name)),
        ("seat_num", json!(t.seat_num)),
        ("price_code", json!(t.price_code)),
        ("ticket_status", json!(t.status)),
    ]));
    o
}

fn av_row(ctx: &Ctx<'_>, t: &Ticket, v: &AddedValue) -> Value {
    let day = |off: Option<i64>| match off {
        Some(o) => json!(format_day(ctx.today + o)),
        None => Value::Null,
    };
    json!({
        "barcode": t.barcode,
        "event_name": t.event_name,
        "acct_id": t.acct_id,
        "av_id": v.av_id,
        "av_type": v.av_type,
        "description": v.description,
        "amount": format_cents(v.amount),
        "balance": format_cents(v.balance),
        "valid_from": day(v.valid_from_offset),
        "valid_until": day(v.valid_until_offset),
    })
}

/// Fault `duplicate_av_rows`: every row twice, each copy right after its original.
fn doubled(ctx: &Ctx<'_>, rows: Vec<Value>) -> Vec<Value> {
    if !ctx.duplicate_av_rows {
        return rows;
    }
    rows.into_iter().flat_map(|r| [r.clone(), r]).collect()
}

fn get_av_barcodes(ctx: &Ctx<'_>, c: &Map<String, Value>) -> Out {
    if let Some(bc) = text(c, "barcode") {
        let Some(t) = ctx.data.ticket(&bc) else {
            return error_out(5311, 100, "Barcode not found");
        };
        let rows: Vec<Value> = t.value.iter().map(|v| av_row(ctx, t, v)).collect();
        let rows = doubled(ctx, rows);
        let mut o = ok(if rows.is_empty() { 100 } else { 0 });
        o.insert("count".into(), json!(rows.len()));
        o.insert("more_data".into(), json!("N"));
        o.insert("av_barcodes".into(), Value::Array(rows));
        return o;
    }
    let Some(ev) = text(c, "event_name") else {
        return error_out(5312, 0, "Missing required input: barcode or event_name");
    };
    let Some(event) = ctx.data.event(&ev) else {
        return error_out(5313, 100, "Event not found");
    };
    let max_rows = text(c, "max_rows")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(AV_CHUNK)
        .clamp(1, AV_CHUNK);
    let prev = text(c, "prev_barcode");
    let mut rows = Vec::new();
    let mut more = false;
    let served = |t: &&Ticket| {
        t.event_name == event.event_name && t.status == "ACTIVE" && !t.value.is_empty()
    };
    // Fault: the previous chunk's last ticket comes again first.
    let repeated = prev
        .as_deref()
        .filter(|_| ctx.inclusive_prev_barcode)
        .and_then(|p| ctx.data.ticket(p))
        .filter(served);
    let eligible = repeated
        .into_iter()
        .chain(ctx.data.tickets_after(prev.as_deref()).filter(served));
    for t in eligible {
        // Whole tickets only, so prev_barcode resumes cleanly; at least one per chunk.
        if !rows.is_empty() && rows.len() + t.value.len() > max_rows {
            more = true;
            break;
        }
        rows.extend(t.value.iter().map(|v| av_row(ctx, t, v)));
    }
    let rows = doubled(ctx, rows);
    let mut o = ok(if rows.is_empty() { 100 } else { 0 });
    o.insert("count".into(), json!(rows.len().to_string()));
    o.insert("more_data".into(), json!(if more { "Y" } else { "N" }));
    o.insert("av_barcodes".into(), Value::Array(rows));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ds: &DataSet, c: Value) -> Out {
        let ctx = Ctx {
            data: ds,
            today: 20_000,
            active_requests: 1,
            wall_ms: 20_000 * 86_400_000,
            duplicate_av_rows: false,
            inclusive_prev_barcode: false,
            server_clock_offset_ms: 0,
        };
        match c {
            Value::Object(m) => run(&ctx, &m),
            _ => Map::new(),
        }
    }

    #[test]
    fn av_event_chunks_keep_tickets_whole() {
        let ds = DataSet::builtin();
        let mut prev: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let mut req = json!({"cmd": "get_av_barcodes", "event_name": "EVENT01", "max_rows": 2});
            if let Some(p) = &prev {
                req["prev_barcode"] = json!(p);
            }
            let o = call(&ds, req);
            let rows = o["av_barcodes"].as_array().cloned().unwrap_or_default();
            for r in &rows {
                seen.push(r["av_id"].as_str().unwrap_or("").to_string());
            }
            prev = rows
                .last()
                .and_then(|r| r["barcode"].as_str())
                .map(String::from);
            if o["more_data"] == "N" {
                break;
            }
        }
        assert_eq!(
            seen,
            ["AV1001", "AV1002", "AV1003", "AV1004", "AV1008", "AV1010"]
        );
    }

    #[test]
    fn seats_sold_groups_blocks_and_resumes() {
        let ds = DataSet::builtin();
        let o = call(
            &ds,
            json!({"cmd": "seats_sold", "acct_id": 100479, "max_rows": 1}),
        );
        assert_eq!(o["count"], 1);
        assert_eq!(o["more_data"], "Y");
        let first = o["seats_array"][0].clone();
        let o2 = call(
            &ds,
            json!({"cmd": "seats_sold", "acct_id": "100479", "max_rows": 1,
                "prev_event_name": first["event_name"], "prev_section_name": first["section_name"],
                "prev_row_name": first["row_name"], "prev_seat_num": first["seat_num"]}),
        );
        assert_eq!(o2["count"], 1);
        assert_ne!(o2["seats_array"][0], first);
    }

    #[test]
    fn unknown_and_not_emulated_commands() {
        let ds = DataSet::builtin();
        assert_eq!(call(&ds, json!({"cmd": "get_avail_seats"}))["result"], 9001);
        assert_eq!(call(&ds, json!({"cmd": "frobnicate"}))["result"], 9000);
    }
}
