//! The ATS client against a scripted HTTP responder (plain and TLS) on loopback.
//!
//! The responder answers each request with the next canned reply (or a function of the
//! request) and records every request, so tests can check what the client sent: the
//! envelope, the key header, the cookies of a 202 cycle. Time runs on a ManualClock,
//! so poll waits and rate windows never sleep for real.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concession_agent::ats::{AtsClient, AtsConfig, AtsError, Phase, RateWindow};
use concession_agent::clock::{Clock, ManualClock};
use concession_agent::redact::Secret;
use concession_agent::ticket::{TicketStatus, ValueKind};
use serde_json::{json, Map, Value};

const KEY: &str = "test-key-9f8e7d";

// ---------------------------------------------------------------- scripted responder

/// One request as the responder saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn command1(&self) -> Value {
        self.json()["command1"].clone()
    }
}

/// One canned answer.
#[derive(Debug, Clone)]
enum Canned {
    /// Status, extra headers, body (sent with Content-Length).
    Reply(u16, Vec<(String, String)>, Vec<u8>),
    /// Status and a body sent chunked (no Content-Length).
    Chunked(u16, Vec<u8>),
    /// Close the connection without answering.
    Drop,
}

fn reply(status: u16, body: Value) -> Canned {
    Canned::Reply(status, vec![], body.to_string().into_bytes())
}

fn reply_h(status: u16, headers: &[(&str, &str)], body: &str) -> Canned {
    Canned::Reply(
        status,
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body.as_bytes().to_vec(),
    )
}

/// A 200 answer echoing the request's ref, with `command1` fields added.
fn ok_for(seen: &Seen, c1: Value) -> Canned {
    let req = seen.command1();
    let mut out = json!({"cmd": req["cmd"], "ref": req["ref"], "result": 0, "sql_code": 0});
    for (k, v) in c1.as_object().unwrap() {
        out[k] = v.clone();
    }
    reply(
        200,
        json!({"header": {"ver": 1, "ats_version": "4.23.3", "result": 0}, "command1": out}),
    )
}

type Handler = dyn Fn(&Seen, usize) -> Canned + Send + Sync;

struct Responder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Responder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Answers the n-th request (0-based) with `script[n]` (then 500s).
fn scripted(script: Vec<Canned>) -> Responder {
    serve(
        Arc::new(move |_, n| {
            script
                .get(n)
                .cloned()
                .unwrap_or_else(|| reply_h(500, &[], "script exhausted"))
        }),
        None,
    )
}

/// Answers with `f(request, n)`.
fn dynamic(f: impl Fn(&Seen, usize) -> Canned + Send + Sync + 'static) -> Responder {
    serve(Arc::new(f), None)
}

fn serve(handler: Arc<Handler>, tls: Option<Arc<rustls::ServerConfig>>) -> Responder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let handler = handler.clone();
            let seen = seen2.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                None => handle(stream, &*handler, &seen),
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg).unwrap();
                    let tls_stream = rustls::StreamOwned::new(conn, stream);
                    handle(tls_stream, &*handler, &seen)
                }
            });
        }
    });
    Responder { port, seen }
}

fn handle<S: Read + Write>(stream: S, handler: &Handler, seen: &Mutex<Vec<Seen>>) {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return; // e.g. a TLS handshake the client refused
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let req = Seen {
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(req.clone());
        s.len() - 1
    };
    let mut out = Vec::new();
    match handler(&req, n) {
        Canned::Drop => return,
        Canned::Reply(status, hs, body) => {
            write!(out, "HTTP/1.1 {status} X\r\nConnection: close\r\n").unwrap();
            for (k, v) in hs {
                write!(out, "{k}: {v}\r\n").unwrap();
            }
            write!(out, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
            out.extend_from_slice(&body);
        }
        Canned::Chunked(status, body) => {
            write!(
                out,
                "HTTP/1.1 {status} X\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .unwrap();
            for c in body.chunks(1000) {
                write!(out, "{:x}\r\n", c.len()).unwrap();
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let mut stream = r.into_inner();
    let _ = stream.write_all(&out);
    let _ = stream.flush();
}

// ---------------------------------------------------------------- client helpers

fn config(base: &str) -> AtsConfig {
    AtsConfig {
        base_url: base.to_string(),
        apikey: Secret::new(KEY),
        uid: "user99".into(),
        src_sys_name: "testing".into(),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        ..AtsConfig::default()
    }
}

fn client_for(r: &Responder) -> (AtsClient, ManualClock) {
    client_with(config(&r.http_url()))
}

fn client_with(cfg: AtsConfig) -> (AtsClient, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    (AtsClient::with_clock(cfg, clock.shared()).unwrap(), clock)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- envelope and 202 cycle

#[test]
fn sends_the_envelope_to_the_product_url_with_the_key_header() {
    let r = dynamic(|s, _| ok_for(s, json!({"system_available": "Y"})));
    let (c, _) = client_for(&r);
    let c1 = c.ping().unwrap();
    assert_eq!(c1["system_available"], "Y");
    let s = &r.seen()[0];
    assert_eq!(s.target, "/sth-customer/ticketing_services.aspx?dsn=apigee");
    assert_eq!(s.header("apikey"), Some(KEY));
    assert_eq!(s.header("content-type"), Some("application/json"));
    let content_types = s
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .count();
    assert_eq!(content_types, 1);
    assert_eq!(s.header("cookie"), None);
    let body = s.json();
    assert_eq!(
        body["header"],
        json!({"ver": 1, "src_sys_type": 2, "src_sys_name": "testing", "archtics_version": "V999"})
    );
    assert_eq!(body["command1"]["cmd"], "ping");
    assert_eq!(body["command1"]["uid"], "user99");
    assert_eq!(body["command1"]["dsn"], "apigee");
    assert!(!body["command1"]["ref"].as_str().unwrap().is_empty());
}

#[test]
fn polls_through_202_sending_every_cookie_and_the_identical_body() {
    let r = dynamic(|s, n| match n {
        0 => reply_h(
            202,
            &[("Set-Cookie", "SID=s1; Path=/"), ("Set-Cookie", "QTKN=q1")],
            "",
        ),
        1 => reply_h(
            202,
            &[
                ("Set-Cookie", "QTKN=q2; HttpOnly"),
                ("Set-Cookie", "CTKN=c1"),
            ],
            "",
        ),
        _ => ok_for(s, json!({"done": true})),
    });
    let (c, clock) = client_for(&r);
    let c1 = c.ats_ext_test_polling().unwrap();
    assert_eq!(c1["done"], true);
    let seen = r.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("cookie"), None);
    assert_eq!(seen[1].header("cookie"), Some("SID=s1; QTKN=q1"));
    assert_eq!(seen[2].header("cookie"), Some("SID=s1; QTKN=q2; CTKN=c1"));
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen[1].body, seen[2].body);
    assert_eq!(clock.sleeps(), vec![ms(300), ms(450)]);
    // polls count against the budget
    assert_eq!(c.budget_remaining(), (77, 4997));
}

#[test]
fn cookies_never_leak_into_the_next_call() {
    let r = dynamic(|s, n| match n {
        0 => reply_h(202, &[("Set-Cookie", "QTKN=first-call")], ""),
        _ => ok_for(s, json!({})),
    });
    let (c, _) = client_for(&r);
    c.ping().unwrap();
    c.ping().unwrap();
    let seen = r.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].header("cookie"), Some("QTKN=first-call"));
    assert_eq!(seen[2].header("cookie"), None);
    assert_ne!(seen[0].command1()["ref"], seen[2].command1()["ref"]);
}

#[test]
fn poll_waits_back_off_to_poll_max_and_stop_at_the_deadline() {
    let r = dynamic(|_, _| reply_h(202, &[("Set-Cookie", "QTKN=t")], ""));
    let mut cfg = config(&r.http_url());
    cfg.poll_max = ms(1000);
    let (c, clock) = client_with(cfg);
    let deadline = clock.now() + ms(3000);
    let e = c.ping_with_deadline(deadline).unwrap_err();
    match e {
        AtsError::Timeout { elapsed, polls } => {
            assert_eq!(elapsed, ms(3000));
            assert_eq!(polls, 5);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());
    // 300, 450, 675, 1000, then what is left of the 3 s
    assert_eq!(
        clock.sleeps(),
        vec![ms(300), ms(450), ms(675), ms(1000), ms(575)]
    );
    assert_eq!(r.count(), 5);
}

#[test]
fn call_timeout_bounds_a_call_without_an_explicit_deadline() {
    let r = dynamic(|_, _| reply_h(202, &[], ""));
    let mut cfg = config(&r.http_url());
    cfg.call_timeout = ms(1000);
    let (c, clock) = client_with(cfg);
    assert!(matches!(c.ping(), Err(AtsError::Timeout { .. })));
    assert_eq!(clock.elapsed(), ms(1000));
}

#[test]
fn expired_poll_token_is_a_distinct_error() {
    let r = scripted(vec![
        reply_h(202, &[("Set-Cookie", "QTKN=gone")], ""),
        reply_h(500, &[], "No data for token 'gone'"),
    ]);
    let (c, _) = client_for(&r);
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::NoDataForToken { .. }), "{e:?}");
    assert!(e.is_retryable());

    let r = dynamic(|s, _| {
        ok_for(
            s,
            json!({"result": 9, "error_detail": "No data for token 'abc' found"}),
        )
    });
    let (c, _) = client_for(&r);
    assert!(matches!(
        c.ping().unwrap_err(),
        AtsError::NoDataForToken { .. }
    ));
}

// ---------------------------------------------------------------- status mapping

#[test]
fn maps_each_http_status_to_its_own_error() {
    let dsn_msg = "API key is not authorized for DSN 'other'";
    let r = scripted(vec![
        reply_h(401, &[], dsn_msg),
        reply_h(404, &[], "no such resource"),
        reply_h(503, &[], "backend down"),
        reply_h(500, &[], "boom"),
        reply_h(418, &[], "teapot"),
        reply_h(302, &[("Location", "http://127.0.0.1:1/")], ""),
        reply_h(204, &[], ""),
    ]);
    let (c, _) = client_for(&r);
    let e = c.ping().unwrap_err();
    assert_eq!(
        e,
        AtsError::Unauthorized {
            message: dsn_msg.into()
        }
    );
    assert!(!e.is_retryable());
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::NotFound { .. }) && !e.is_retryable());
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::Unavailable { .. }) && e.is_retryable());
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::Status { status: 500, .. }) && e.is_retryable());
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::Status { status: 418, .. }) && !e.is_retryable());
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::Status { status: 302, .. }), "{e:?}");
    let e = c.ping().unwrap_err();
    assert!(matches!(e, AtsError::Status { status: 204, .. }), "{e:?}");
    assert_eq!(r.count(), 7);
}

#[test]
fn a_429_closes_the_budget_until_its_reset() {
    let r = dynamic(|s, n| match n {
        0 => reply_h(429, &[("Rate-Limit-Reset", "10")], "slow down"),
        _ => ok_for(s, json!({})),
    });
    let (c, clock) = client_for(&r);
    let e = c.ping().unwrap_err();
    assert_eq!(
        e,
        AtsError::RateLimited {
            retry_after: Some(Duration::from_secs(10)),
            message: "slow down".into()
        }
    );
    assert!(e.is_retryable());
    assert_eq!(c.budget_remaining(), (0, 0));
    clock.advance(Duration::from_secs(4));
    let e = c.ping().unwrap_err();
    assert_eq!(
        e,
        AtsError::RateBudget {
            window: RateWindow::Server,
            retry_after: Duration::from_secs(6)
        }
    );
    assert!(!e.is_retryable());
    assert_eq!(r.count(), 1, "refused locally, nothing sent");
    clock.advance(Duration::from_secs(6));
    c.ping().unwrap();
    assert_eq!(r.count(), 2);
}

#[test]
fn api_errors_come_from_header_or_command1_result() {
    let r = dynamic(|s, n| match n {
        0 => reply(
            200,
            json!({"header": {"result": "12", "error_desc": "gateway says no"},
                   "command1": {"ref": s.command1()["ref"]}}),
        ),
        _ => ok_for(
            s,
            json!({"result": "5312", "sql_code": "0", "error_detail": "Missing required input: barcode"}),
        ),
    });
    let (c, _) = client_for(&r);
    assert_eq!(
        c.ping().unwrap_err(),
        AtsError::Api {
            code: 12,
            sql_code: 0,
            message: "gateway says no".into()
        }
    );
    let e = c.verify_barcode("", None).unwrap_err();
    assert_eq!(
        e,
        AtsError::Api {
            code: 5312,
            sql_code: 0,
            message: "Missing required input: barcode".into()
        }
    );
    assert!(!e.is_retryable());
}

#[test]
fn rate_limit_available_zero_refuses_until_reset() {
    let r = dynamic(|s, n| match n {
        0 => {
            let Canned::Reply(st, _, b) = ok_for(s, json!({})) else {
                unreachable!()
            };
            Canned::Reply(
                st,
                vec![
                    ("Rate-Limit".into(), "5000".into()),
                    ("Rate-Limit-Available".into(), "0".into()),
                    ("Rate-Limit-Over".into(), "0".into()),
                    ("Rate-Limit-Reset".into(), "1700000005000".into()),
                ],
                b,
            )
        }
        _ => ok_for(s, json!({})),
    });
    let (c, clock) = client_for(&r);
    c.ping().unwrap();
    assert_eq!(c.budget_remaining(), (0, 0));
    let e = c.ping().unwrap_err();
    assert!(
        matches!(
            e,
            AtsError::RateBudget {
                window: RateWindow::Server,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(r.count(), 1);
    clock.advance(Duration::from_secs(5));
    c.ping().unwrap();
    assert_eq!(c.budget_remaining(), (78, 4998));
}

#[test]
fn refuses_locally_when_the_minute_budget_is_spent() {
    let r = dynamic(|s, _| ok_for(s, json!({})));
    let mut cfg = config(&r.http_url());
    cfg.rate_per_minute = 3;
    cfg.rate_per_day = 4;
    let (c, clock) = client_with(cfg);
    for _ in 0..3 {
        c.ping().unwrap();
    }
    assert_eq!(c.budget_remaining(), (0, 1));
    clock.advance(Duration::from_secs(20));
    let e = c.ping().unwrap_err();
    assert_eq!(
        e,
        AtsError::RateBudget {
            window: RateWindow::Minute,
            retry_after: Duration::from_secs(40)
        }
    );
    assert_eq!(r.count(), 3);
    clock.advance(Duration::from_secs(40));
    c.ping().unwrap();
    clock.advance(Duration::from_secs(60));
    let e = c.ping().unwrap_err();
    assert!(
        matches!(
            e,
            AtsError::RateBudget {
                window: RateWindow::Day,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(r.count(), 4);
}

#[test]
fn a_202_cycle_stops_when_the_budget_runs_out() {
    let r = dynamic(|_, _| reply_h(202, &[], ""));
    let mut cfg = config(&r.http_url());
    cfg.rate_per_minute = 4;
    let (c, _) = client_with(cfg);
    let e = c.ping().unwrap_err();
    assert!(
        matches!(
            e,
            AtsError::RateBudget {
                window: RateWindow::Minute,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(r.count(), 4);
}

// ---------------------------------------------------------------- typed commands

#[test]
fn verify_barcode_decodes_leniently_and_maps_unknown_to_none() {
    let r = dynamic(|s, _| {
        let bc = s.command1()["barcode"].as_str().unwrap().to_string();
        if bc == "999999999999" {
            return ok_for(
                s,
                json!({"result": 5301, "sql_code": 100, "error_detail": "Barcode not found"}),
            );
        }
        ok_for(
            s,
            json!({"barcode": bc, "event_name": "EVENT01", "event_date": "2026-11-27",
                   "acct_id": "100479", "section_name": 101, "row_name": "A",
                   "seat_num": "7", "price_code": "A1", "ticket_status": "ACTIVE",
                   "future_field": {"x": 1}}),
        )
    });
    let (c, _) = client_for(&r);
    let info = c
        .verify_barcode("100000000001", Some("EVENT01"))
        .unwrap()
        .unwrap();
    assert_eq!(info.barcode, "100000000001");
    assert_eq!(info.event_name, "EVENT01");
    assert_eq!(info.acct_id, Some(100479));
    assert_eq!(info.section_name.as_deref(), Some("101"));
    assert_eq!(info.status, TicketStatus::Active);
    assert_eq!(r.seen()[0].command1()["event_name"], "EVENT01");
    assert_eq!(c.verify_barcode("999999999999", None).unwrap(), None);
}

#[test]
fn verify_barcode_refuses_an_answer_about_another_ticket() {
    let r = dynamic(|s, _| {
        ok_for(
            s,
            json!({"barcode": "100000000002", "event_name": "EVENT01", "ticket_status": "ACTIVE"}),
        )
    });
    let (c, _) = client_for(&r);
    let e = c.verify_barcode("100000000001", None).unwrap_err();
    assert!(matches!(e, AtsError::Decode { .. }), "{e:?}");
}

#[test]
fn get_av_barcodes_reads_money_and_items_and_unknowns() {
    let r = dynamic(|s, _| {
        let bc = s.command1()["barcode"].as_str().unwrap().to_string();
        match bc.as_str() {
            "100000000003" => ok_for(
                s,
                json!({"Count": 2, "av_barcodes": [
                    {"barcode": bc, "event_name": "EVENT01", "acct_id": 100479, "av_id": "AV1003",
                     "av_type": "M", "description": "Credit", "amount": "15.00", "balance": 15},
                    {"barcode": bc, "av_id": 1004, "av_type": "N", "description": "Hot Dog",
                     "amount": "1.00", "balance": "1"}]}),
            ),
            "100000000004" => ok_for(s, json!({"sql_code": 100, "count": "0", "av_barcodes": []})),
            "100000000666" => ok_for(
                s,
                json!({"av_barcodes": [{"barcode": bc, "av_id": "X", "av_type": "M",
                        "amount": "5.00", "balance": "-5.00"}]}),
            ),
            _ => ok_for(
                s,
                json!({"result": 5311, "sql_code": 100, "error_detail": "Barcode not found"}),
            ),
        }
    });
    let (c, _) = client_for(&r);
    let lines = c.get_av_barcodes("100000000003").unwrap().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].kind, ValueKind::Money);
    assert_eq!((lines[0].loaded, lines[0].balance), (1500, 1500));
    assert_eq!(lines[1].kind, ValueKind::Item);
    assert_eq!(lines[1].av_id, "1004");
    assert_eq!((lines[1].loaded, lines[1].balance), (1, 1));
    assert_eq!(c.get_av_barcodes("100000000004").unwrap(), Some(vec![]));
    assert_eq!(c.get_av_barcodes("999999999999").unwrap(), None);
    let e = c.get_av_barcodes("100000000666").unwrap_err();
    assert!(
        matches!(&e, AtsError::Decode { field, .. } if field.contains("balance")),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}

/// Serves `total` rows for EVENT01 in chunks of `size`, honouring `prev_barcode`.
fn event_server(total: u64, size: usize, send_more_data: bool) -> Responder {
    dynamic(move |s, _| {
        let c1 = s.command1();
        let prev = c1["prev_barcode"].as_str().map(str::to_string);
        let all: Vec<String> = (0..total)
            .map(|i| format!("{}", 200000000000 + i))
            .collect();
        let rest: Vec<&String> = all
            .iter()
            .filter(|b| prev.as_ref().is_none_or(|p| *b > p))
            .collect();
        let chunk: Vec<Value> = rest
            .iter()
            .take(size)
            .map(|b| {
                json!({"barcode": b, "event_name": "EVENT01", "acct_id": "100479",
                       "av_id": format!("AV2{}", &b[6..]), "av_type": "M",
                       "amount": "10.00", "balance": "10.00"})
            })
            .collect();
        let mut out = json!({"count": chunk.len(), "av_barcodes": chunk});
        if send_more_data {
            out["more_data"] = json!(if rest.len() > size { "Y" } else { "N" });
        }
        ok_for(s, out)
    })
}

#[test]
fn event_listing_follows_chunks_until_more_data_is_n() {
    let r = event_server(12, 5, true);
    let (c, _) = client_for(&r);
    let rows = c.get_av_barcodes_for_event("EVENT01").unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0].0, "200000000000");
    assert_eq!(rows[11].0, "200000000011");
    assert_eq!(rows[3].1.balance, 1000);
    let prevs: Vec<Value> = r
        .seen()
        .iter()
        .map(|s| s.command1()["prev_barcode"].clone())
        .collect();
    assert_eq!(
        prevs,
        vec![Value::Null, json!("200000000004"), json!("200000000009")]
    );
}

#[test]
fn event_listing_without_more_data_stops_at_an_empty_chunk() {
    let r = event_server(10, 5, false);
    let (c, _) = client_for(&r);
    let rows = c.get_av_barcodes_for_event("EVENT01").unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(r.count(), 3);
}

#[test]
fn event_listing_detects_a_server_that_never_advances() {
    let r = dynamic(|s, _| {
        ok_for(
            s,
            json!({"more_data": "Y", "av_barcodes": [
                {"barcode": "200000000000", "av_id": "A", "av_type": "M",
                 "amount": "1.00", "balance": "1.00"}]}),
        )
    });
    let (c, _) = client_for(&r);
    let e = c.get_av_barcodes_for_event("EVENT01").unwrap_err();
    assert!(
        matches!(&e, AtsError::Decode { detail, .. } if detail.contains("advance")),
        "{e:?}"
    );
    assert_eq!(r.count(), 2);
}

#[test]
fn event_listing_shares_one_explicit_deadline() {
    let r = dynamic(|_, _| reply_h(202, &[], ""));
    let (c, clock) = client_for(&r);
    let e = c
        .get_av_barcodes_for_event_with_deadline("EVENT01", clock.now() + ms(700))
        .unwrap_err();
    assert!(matches!(e, AtsError::Timeout { .. }), "{e:?}");
    assert_eq!(clock.elapsed(), ms(700));
}

#[test]
fn call_raw_returns_the_whole_body_and_guards_reserved_fields() {
    let r = dynamic(|s, _| ok_for(s, json!({"events": [1, 2], "Count": "2"})));
    let (c, _) = client_for(&r);
    let mut f = Map::new();
    f.insert("event_name".into(), json!("EVENT01"));
    f.insert("page".into(), json!("0"));
    let body = c.call_raw("get_attendance", f).unwrap();
    assert_eq!(body["header"]["ats_version"], "4.23.3");
    assert_eq!(body["command1"]["events"], json!([1, 2]));
    let sent = r.seen()[0].command1();
    assert_eq!(sent["cmd"], "get_attendance");
    assert_eq!(sent["page"], "0");
    let mut bad = Map::new();
    bad.insert("ref".into(), json!("mine"));
    assert!(matches!(
        c.call_raw("ping", bad).unwrap_err(),
        AtsError::Config(_)
    ));
    assert_eq!(r.count(), 1);
}

// ---------------------------------------------------------------- decoding and limits

#[test]
fn a_body_that_is_not_an_envelope_is_a_decode_phase_error() {
    let r = scripted(vec![
        reply_h(200, &[], "<html>oops</html>"),
        reply(200, json!({"header": {}})),
        reply(
            200,
            json!({"command1": {"ref": "someone-else", "result": 0}}),
        ),
    ]);
    let (c, _) = client_for(&r);
    for _ in 0..3 {
        let e = c.ping().unwrap_err();
        assert_eq!(e.phase(), Some(Phase::Decode), "{e:?}");
    }
}

#[test]
fn an_oversize_body_is_refused_with_or_without_content_length() {
    let big = vec![b' '; 5000];
    let r = scripted(vec![
        Canned::Reply(200, vec![], big.clone()),
        Canned::Chunked(200, big),
    ]);
    let mut cfg = config(&r.http_url());
    cfg.max_response_bytes = 1024;
    let (c, _) = client_with(cfg);
    assert_eq!(c.ping().unwrap_err(), AtsError::TooLarge { limit: 1024 });
    assert_eq!(c.ping().unwrap_err(), AtsError::TooLarge { limit: 1024 });
}

// ---------------------------------------------------------------- transport

#[test]
fn plain_http_to_a_remote_host_is_a_config_error() {
    for base in [
        "http://example.com",
        "http://10.1.2.3:8080",
        "http://[2001:db8::1]",
    ] {
        let e = AtsClient::new(config(base)).unwrap_err();
        assert!(matches!(e, AtsError::Config(_)), "{base}: {e:?}");
        assert!(!e.is_retryable());
    }
    assert!(AtsClient::new(config("http://localhost:1")).is_ok());
    // https to a remote host is fine (a CA file of the test's own: the default, the
    // system trust store, is machine-dependent and has its own test below).
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki().ca_pem).unwrap();
    let mut remote = config("https://example.com");
    remote.ca_file = Some(ca);
    assert!(AtsClient::new(remote).is_ok());
}

#[test]
fn transport_failures_name_their_phase() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, _) = client_with(config(&format!("http://127.0.0.1:{port}")));
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Connect), "{e:?}");
    assert!(e.is_retryable());

    let r = scripted(vec![
        Canned::Drop,
        reply_h(202, &[("Set-Cookie", "QTKN=x")], ""),
        Canned::Drop,
    ]);
    let (c, _) = client_for(&r);
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Receive), "{e:?}");
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Poll), "{e:?}");
    assert!(e.to_string().starts_with("poll failed: receive"), "{e}");
}

#[test]
fn a_silent_server_hits_the_read_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(ms(600));
        drop(s);
    });
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.read_timeout = ms(200);
    let (c, _) = client_with(cfg);
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Receive), "{e:?}");
    assert!(e.is_retryable());
    hold.join().unwrap();
}

#[test]
fn the_api_key_never_appears_in_errors_or_debug_output() {
    let r = scripted(vec![
        reply_h(401, &[], &format!("Invalid ApiKey {KEY} for dsn apigee")),
        reply(
            200,
            json!({"command1": {"result": 1, "error_detail": format!("bad key {KEY}")}}),
        ),
    ]);
    let (c, _) = client_for(&r);
    let e1 = c.ping().unwrap_err();
    let e2 = c.ping().unwrap_err();
    for text in [
        format!("{e1} {e1:?}"),
        format!("{e2} {e2:?}"),
        format!("{c:?}"),
        format!("{:?}", c.config()),
    ] {
        assert!(!text.contains(KEY), "{text}");
    }
    assert!(e1.to_string().contains("Invalid ApiKey *** for dsn apigee"));
    assert_eq!(r.seen()[0].header("apikey"), Some(KEY));
}

#[test]
fn one_client_serves_many_threads() {
    let r = dynamic(|s, _| ok_for(s, json!({})));
    let (c, _) = client_for(&r);
    let c = Arc::new(c);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.ping().map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let refs: std::collections::HashSet<String> = r
        .seen()
        .iter()
        .map(|s| s.command1()["ref"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refs.len(), 4, "every call has its own ref");
}

// ---------------------------------------------------------------- TLS

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], key_der)
    .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

#[test]
fn https_works_with_the_configured_ca_and_fails_in_the_tls_phase_without_it() {
    let p = pki();
    let r = serve(
        Arc::new(|s, _| ok_for(s, json!({"tls": "yes"}))),
        Some(p.server),
    );
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, &p.ca_pem).unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, pki().ca_pem).unwrap();

    let base = format!("https://127.0.0.1:{}", r.port);
    let mut cfg = config(&base);
    cfg.ca_file = Some(good);
    let (c, _) = client_with(cfg);
    assert_eq!(c.ping().unwrap()["tls"], "yes");
    assert_eq!(r.seen()[0].header("apikey"), Some(KEY));

    let mut cfg = config(&base);
    cfg.ca_file = Some(other);
    let (c, _) = client_with(cfg);
    let e = c.ping().unwrap_err();
    assert_eq!(e.phase(), Some(Phase::Tls), "{e:?}");
    assert!(!format!("{e:?}").contains(KEY));

    // The default, the system trust store, does not know a private CA either; on a
    // machine without a system CA bundle the client is refused at construction, with
    // the fix in the message.
    match AtsClient::new(config(&base)) {
        Ok(c) => assert_eq!(c.ping().unwrap_err().phase(), Some(Phase::Tls)),
        Err(e) => assert!(e.to_string().contains("ca-certificates"), "{e}"),
    }
    assert_eq!(r.count(), 1);
}
