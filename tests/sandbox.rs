//! ats-sandbox over real loopback sockets: gateway, commands, the 202 cycle, faults,
//! admin API, HTTPS. Every sandbox shares a `ManualClock` with the test, so time-based
//! behaviour (202 cycles, rate windows, latency) runs without sleeping.
#![cfg(feature = "sandbox")]

use std::time::Duration;

use concession_agent::clock::ManualClock;
use concession_agent::sandbox::{
    generate_self_signed, DataSet, Faults, Sandbox, SandboxConfig, SandboxHandle,
};
use serde_json::{json, Value};

mod support {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use super::*;

    /// Noon UTC, 2026-11-27: "today" for every test sandbox.
    pub const WALL_START_MS: u64 = 1_795_780_800_000;
    pub const TODAY: &str = "2026-11-27";
    pub const PATH: &str = "/sth-customer/ticketing_services.aspx?dsn=apigee";

    pub struct Sb {
        pub h: SandboxHandle,
        pub clock: ManualClock,
    }

    pub fn start() -> Sb {
        start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut SandboxConfig)) -> Sb {
        let clock = ManualClock::new(WALL_START_MS);
        let mut cfg = SandboxConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            clock: clock.shared(),
            ..SandboxConfig::default()
        };
        f(&mut cfg);
        let h = Sandbox::start(cfg).expect("sandbox starts");
        Sb { h, clock }
    }

    #[derive(Debug)]
    pub struct Resp {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
        /// Content-Length bytes all arrived.
        pub complete: bool,
    }

    impl Resp {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body))
            })
        }
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        /// `name=value` of every Set-Cookie.
        pub fn set_cookies(&self) -> Vec<String> {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                .map(|(_, v)| v.split(';').next().unwrap_or("").trim().to_string())
                .collect()
        }
        pub fn cmd1(&self) -> Value {
            self.json()["command1"].clone()
        }
    }

    /// Parses one response from `bytes` (None when no head arrived).
    pub fn parse(bytes: &[u8]) -> Option<(Resp, usize)> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let cl: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let rest = &bytes[end + 4..];
        let take = cl.min(rest.len());
        Some((
            Resp {
                status,
                headers,
                body: rest[..take].to_vec(),
                complete: rest.len() >= cl,
            },
            end + 4 + take,
        ))
    }

    pub fn request_bytes(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: sandbox\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// One request on a fresh connection; reads until the server closes.
    pub fn raw(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(Vec<u8>, TcpStream)> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(&request_bytes(method, path, headers, body))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        Ok((out, s))
    }

    pub fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let (bytes, _) = raw(addr, method, path, headers, body).expect("request");
        parse(&bytes)
            .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&bytes)))
            .0
    }

    pub fn envelope(cmd1: Value) -> Value {
        let mut c = cmd1;
        if c.get("uid").is_none() {
            c["uid"] = json!("user99");
        }
        if c.get("dsn").is_none() {
            c["dsn"] = json!("apigee");
        }
        json!({"header": {"ver": 1, "src_sys_type": 2, "src_sys_name": "testing",
            "archtics_version": "V999"}, "command1": c})
    }

    /// POSTs a command with the default key; extra headers (cookies) appended.
    pub fn ats_with(sb: &Sb, cmd1: Value, extra: &[(&str, &str)]) -> Resp {
        let body = serde_json::to_vec(&envelope(cmd1)).unwrap();
        let mut h = vec![
            ("apikey", "sandbox-key"),
            ("Content-Type", "application/json"),
        ];
        h.extend_from_slice(extra);
        send(sb.h.addr(), "POST", PATH, &h, &body)
    }

    pub fn ats(sb: &Sb, cmd1: Value) -> Resp {
        ats_with(sb, cmd1, &[])
    }

    pub fn admin(sb: &Sb, method: &str, route: &str, body: Option<Value>) -> Resp {
        let b = body
            .map(|v| serde_json::to_vec(&v).unwrap())
            .unwrap_or_default();
        send(
            sb.h.addr(),
            method,
            &format!("/__sandbox/{route}"),
            &[("Content-Type", "application/json")],
            &b,
        )
    }

    /// Follows a 202 cycle to the end, advancing the clock by `step` between polls.
    pub fn call_through_cycle(sb: &Sb, cmd1: Value, step: Duration) -> (Resp, usize) {
        let mut r = ats(sb, cmd1.clone());
        let mut polls = 0;
        let mut cookies: Vec<String> = Vec::new();
        while r.status == 202 {
            for c in r.set_cookies() {
                let name = c.split('=').next().unwrap_or("").to_string();
                cookies.retain(|x| !x.starts_with(&format!("{name}=")));
                cookies.push(c);
            }
            sb.clock.advance(step);
            let jar = cookies.join("; ");
            r = ats_with(sb, cmd1.clone(), &[("Cookie", &jar)]);
            polls += 1;
            assert!(polls < 1000, "cycle never ends");
        }
        (r, polls)
    }
}

use support::*;

fn ping() -> Value {
    json!({"cmd": "ping", "call_reason": "test"})
}

// ---------------------------------------------------------------- gateway

#[test]
fn gateway_checks_key_then_dsn_then_body_dsn_then_route() {
    let sb = start();
    let a = sb.h.addr();
    let body = serde_json::to_vec(&envelope(ping())).unwrap();
    let ct = ("Content-Type", "application/json");

    let r = send(a, "POST", PATH, &[ct], &body);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("FailedToResolveAPIKey"), "{}", r.text());

    let r = send(a, "POST", PATH, &[ct, ("apikey", "wrong")], &body);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Invalid ApiKey"));

    // Wrong key wins over a wrong product.
    let r = send(
        a,
        "POST",
        "/nope/x?dsn=apigee",
        &[ct, ("apikey", "wrong")],
        &body,
    );
    assert_eq!(r.status, 401);

    let r = send(
        a,
        "POST",
        "/sth-customer/ticketing_services.aspx?dsn=other",
        &[ct, ("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("not allowed for dsn 'other'"),
        "{}",
        r.text()
    );

    let r = send(
        a,
        "POST",
        "/sth-customer/ticketing_services.aspx",
        &[ct, ("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 401);

    // command1.dsn differs from the URL's: 401 that says so, even before the route check.
    let other = serde_json::to_vec(&envelope(json!({"cmd": "ping", "dsn": "elsewhere"}))).unwrap();
    let r = send(
        a,
        "POST",
        "/nope/x?dsn=apigee",
        &[ct, ("apikey", "sandbox-key")],
        &other,
    );
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("differs from command1.dsn ('elsewhere')"),
        "{}",
        r.text()
    );

    let r = send(
        a,
        "POST",
        "/sth-nope/ticketing_services.aspx?dsn=apigee",
        &[ct, ("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 404);
    let r = send(
        a,
        "POST",
        "/sth-customer/other.aspx?dsn=apigee",
        &[ct, ("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 404);

    let r = send(a, "GET", PATH, &[("apikey", "sandbox-key")], b"");
    assert_eq!(r.status, 405);

    let r = send(
        a,
        "POST",
        PATH,
        &[ct, ("apikey", "sandbox-key")],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("malformed json"));

    let r = send(
        a,
        "POST",
        PATH,
        &[("Content-Type", "text/plain"), ("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 415);

    // Both products, the key in the query, and the old text/json content type work.
    let r = send(
        a,
        "POST",
        "/sth-buy/ticketing_services.aspx?dsn=apigee&apikey=sandbox-key",
        &[("Content-Type", "text/json; charset=utf-8")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.cmd1()["result"], 0);

    let s = sb.h.stats();
    assert_eq!(s.status(401), 6);
    assert_eq!(s.status(404), 2);
    assert_eq!(s.total_requests, 12);
}

#[test]
fn rate_limit_answers_429_with_headers_and_recovers_next_minute() {
    let sb = start_with(|c| c.rate_per_minute = 3);
    for left in ["2", "1", "0"] {
        let r = ats(&sb, ping());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Rate-Limit"), Some("3"));
        assert_eq!(r.header("Rate-Limit-Available"), Some(left));
    }
    let r = ats(&sb, ping());
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Rate-Limit"), Some("3"));
    assert_eq!(r.header("Rate-Limit-Available"), Some("0"));
    assert_eq!(r.header("Rate-Limit-Over"), Some("1"));
    let reset: u64 = r.header("Rate-Limit-Reset").unwrap().parse().unwrap();
    assert_eq!(reset, WALL_START_MS + 60_000);
    assert!(r.text().contains("QuotaViolation"));

    // Lowering the limit at runtime through faults.
    sb.clock.advance(Duration::from_secs(60));
    sb.h.set_faults(Faults {
        rate_per_minute: Some(1),
        ..Faults::default()
    });
    assert_eq!(ats(&sb, ping()).status, 200);
    let r = ats(&sb, ping());
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Rate-Limit"), Some("1"));

    // Day limit.
    sb.h.set_faults(Faults {
        rate_per_day: Some(5),
        ..Faults::default()
    });
    sb.clock.advance(Duration::from_secs(60));
    assert_eq!(ats(&sb, ping()).status, 200);
    let r = ats(&sb, ping());
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Rate-Limit"), Some("5"));

    let s = sb.h.stats();
    assert_eq!(s.status(429), 3);
    assert_eq!(s.status(200), 5);
    assert_eq!(s.calls("ping"), 5, "refused calls never reach a command");
}

#[test]
fn injected_503_then_recovery() {
    let sb = start();
    sb.h.set_faults(Faults {
        fail_next: 2,
        ..Faults::default()
    });
    assert_eq!(ats(&sb, ping()).status, 503);
    let r = ats(&sb, ping());
    assert_eq!(r.status, 503);
    assert!(r.header("Rate-Limit-Available").is_some());
    assert_eq!(ats(&sb, ping()).status, 200);
    assert_eq!(sb.h.faults().fail_next, 0);

    sb.h.set_faults(Faults {
        status_503_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(ats(&sb, ping()).status, 503);
    assert_eq!(sb.h.stats().status(503), 3);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    use std::io::{Read, Write};
    let sb = start();
    let body = serde_json::to_vec(&envelope(ping())).unwrap();
    let mut s = std::net::TcpStream::connect(sb.h.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = format!(
        "POST {PATH} HTTP/1.1\r\napikey: sandbox-key\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut both = Vec::new();
    for _ in 0..2 {
        both.extend_from_slice(one.as_bytes());
        both.extend_from_slice(&body);
    }
    s.write_all(&both).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answers = 0;
    while answers < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
        answers = 0;
        let mut off = 0;
        while let Some((r, used)) = parse(&got[off..]) {
            if !r.complete {
                break;
            }
            assert_eq!(r.status, 200);
            answers += 1;
            off += used;
        }
    }
    assert_eq!(sb.h.stats().calls("ping"), 2);
}

#[test]
fn oversized_request_body_is_refused() {
    let sb = start_with(|c| c.max_body_bytes = 1024);
    let big = vec![b' '; 4096];
    let r = send(
        sb.h.addr(),
        "POST",
        PATH,
        &[("apikey", "sandbox-key")],
        &big,
    );
    assert_eq!(r.status, 413);
}

#[test]
fn connections_over_the_limit_get_503() {
    let sb = start_with(|c| c.max_connections = 1);
    // The first connection is accepted (and counted) before the second, in order.
    let _idle = std::net::TcpStream::connect(sb.h.addr()).unwrap();
    let body = serde_json::to_vec(&envelope(ping())).unwrap();
    let r = send(
        sb.h.addr(),
        "POST",
        PATH,
        &[("apikey", "sandbox-key")],
        &body,
    );
    assert_eq!(r.status, 503);
    assert!(r.text().contains("too many connections"));
}

// ---------------------------------------------------------------- seed commands

#[test]
fn ping_echoes_envelope_and_reports_server_status() {
    let sb = start();
    let r = ats(
        &sb,
        json!({"cmd": "PING", "ref": "r-1", "call_reason": "test"}),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["header"]["ats_version"], "4.23.3");
    assert_eq!(v["header"]["result"], 0);
    assert_eq!(v["header"]["src_sys_name"], "testing");
    assert_eq!(v["header"]["archtics_version"], "V999");
    let c = &v["command1"];
    assert_eq!(c["cmd"], "PING", "cmd echoed in the caller's case");
    assert_eq!(c["ref"], "r-1");
    assert_eq!(c["result"], 0);
    assert_eq!(c["sql_code"], 0);
    assert_eq!(c["system_available"], "Y");
    for k in [
        "db_name",
        "db_connections",
        "cpu_load",
        "active_requests",
        "unscheduled_requests",
    ] {
        assert!(c.get(k).is_some(), "{k}");
    }
    assert_eq!(c["server_date"], TODAY);
}

#[test]
fn customer_query_finds_account_and_reports_errors() {
    let sb = start();
    let c = ats(&sb, json!({"cmd": "customer_query", "ref": "optional-reference", "site_name": "vanilla", "acct_id": 100479, "call_reason": "S"})).cmd1();
    assert_eq!(c["result"], 0);
    assert_eq!(c["acct_id"], 100479);
    assert_eq!(c["name_last"], "Sample");
    assert_eq!(c["ref"], "optional-reference");

    let c = ats(
        &sb,
        json!({"cmd": "customer_query", "email": "pat.sample@example.com"}),
    )
    .cmd1();
    assert_eq!(c["acct_id"], 100479);

    let c = ats(&sb, json!({"cmd": "customer_query", "acct_id": "999"})).cmd1();
    assert_eq!(
        (c["result"].clone(), c["sql_code"].clone()),
        (json!(5024), json!(100))
    );
    let c = ats(&sb, json!({"cmd": "customer_query"})).cmd1();
    assert_eq!(c["result"], 5021);
    assert!(c["error_detail"].as_str().unwrap().contains("Missing"));
    let c = ats(&sb, json!({"cmd": "customer_query", "acct_id": 100480})).cmd1();
    assert_eq!(c["result"], 5020);
}

#[test]
fn seats_sold_lists_blocks_with_atomic_barcodes_and_chunks() {
    let sb = start();
    let c = ats(&sb, json!({"cmd": "seats_sold", "acct_id": 100479})).cmd1();
    assert_eq!(c["result"], 0);
    let rows = c["seats_array"].as_array().unwrap();
    assert_eq!(c["count"], rows.len());
    assert_eq!(
        c["acct_id"], "100479",
        "acct_id as a string here, on purpose"
    );
    let seat1 = rows
        .iter()
        .flat_map(|r| r["atomic_seats"].as_array().unwrap().iter())
        .find(|s| s["barcode"] == "100000000001")
        .expect("barcode 1 in atomic_seats");
    assert_eq!(seat1["status_add_credit_amount"], "20.00");
    let first = &rows[0];
    for k in [
        "event_name",
        "section_name",
        "row_name",
        "seat_num",
        "num_seat",
        "price_code",
        "purchase_price",
    ] {
        assert!(first.get(k).is_some(), "{k}");
    }

    // Chunks of one block, resumed with prev_* fields, cover the same rows.
    let mut seen = Vec::new();
    let mut prev: Option<Value> = None;
    loop {
        let mut req = json!({"cmd": "seats_sold", "acct_id": "100479", "max_rows": 1});
        if let Some(p) = &prev {
            for k in ["event_name", "section_name", "row_name", "seat_num"] {
                req[format!("prev_{k}")] = p[k].clone();
            }
        }
        let c = ats(&sb, req).cmd1();
        let rows = c["seats_array"].as_array().cloned().unwrap_or_default();
        seen.extend(rows.iter().cloned());
        prev = rows.last().cloned();
        if c["more_data"] == "N" {
            break;
        }
        assert!(seen.len() < 50);
    }
    assert_eq!(&seen, rows);

    let c = ats(&sb, json!({"cmd": "seats_sold", "acct_id": 100481})).cmd1();
    assert_eq!(c["result"], 5069);
    assert_eq!(c["error_desc"], "No blocks found");
    let c = ats(&sb, json!({"cmd": "seats_sold"})).cmd1();
    assert_eq!(c["result"], 5061);
}

#[test]
fn event_search_by_date_range() {
    let sb = start();
    let c = ats(&sb, json!({"cmd": "event_search", "ref": "1AB2C3", "check_availability": "N", "start_date": TODAY, "end_date": TODAY})).cmd1();
    assert_eq!(c["result"], 0);
    assert_eq!(c["Count"], 2, "`Count`, capitalised, in this command");
    let names: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EVENT02", "EVENT01"]);
    assert_eq!(c["events"][1]["event_name_long"], "Home Opener");
    assert_eq!(c["events"][1]["event_date"], TODAY);

    let c = ats(
        &sb,
        json!({"cmd": "event_search", "start_date": "2026-11-01", "end_date": "2026-12-31"}),
    )
    .cmd1();
    assert_eq!(c["Count"], 4);

    // The seed's sample range (2016) has no events.
    let c = ats(
        &sb,
        json!({"cmd": "event_search", "start_date": "2016-10-01", "end_date": "2016-12-31"}),
    )
    .cmd1();
    assert_eq!(
        (c["result"].clone(), c["sql_code"].clone()),
        (json!(5212), json!(100))
    );
    let c = ats(
        &sb,
        json!({"cmd": "event_search", "start_date": "2016-13-01"}),
    )
    .cmd1();
    assert_eq!(c["result"], 5211);
    let c = ats(
        &sb,
        json!({"cmd": "event_search", "start_date": "2016-12-01", "end_date": "2016-11-01"}),
    )
    .cmd1();
    assert_eq!(c["result"], 5211);
}

#[test]
fn event_details_and_attendance() {
    let sb = start();
    let c = ats(&sb, json!({"cmd": "event_details", "event_filter": "EVENT01,EVENT02", "event_filter_type": "L"})).cmd1();
    assert_eq!(c["result"], 0);
    assert_eq!(c["count"], "2", "count as a string here, on purpose");
    let c = ats(&sb, json!({"cmd": "event_details", "event_filter": "NOPE"})).cmd1();
    assert_eq!(
        (c["result"].clone(), c["sql_code"].clone()),
        (json!(0), json!(100))
    );

    let c = ats(
        &sb,
        json!({"cmd": "get_attendance", "ref": "testing", "page": "0", "event_name": "EVENT01"}),
    )
    .cmd1();
    assert_eq!(c["result"], 0);
    assert_eq!(c["count"], 3);
    assert_eq!(c["attendance"][0]["barcode"], "100000000001");
    let c = ats(&sb, json!({"cmd": "get_attendance", "acct_id": 100479})).cmd1();
    assert_eq!(c["count"], 4);
    let c = ats(
        &sb,
        json!({"cmd": "get_attendance", "event_name": "EVENT01", "acct_id": 100481}),
    )
    .cmd1();
    assert_eq!(
        (c["count"].clone(), c["sql_code"].clone()),
        (json!(0), json!(100))
    );
    let c = ats(&sb, json!({"cmd": "get_attendance"})).cmd1();
    assert_eq!(c["result"], 5401);
}

#[test]
fn other_commands_are_not_emulated_or_unknown() {
    let sb = start();
    let c = ats(
        &sb,
        json!({"cmd": "Get_Avail_Seats", "event_name": "EVENT01"}),
    )
    .cmd1();
    assert_eq!(c["result"], 9001);
    assert_eq!(
        c["error_detail"],
        "command 'Get_Avail_Seats' is not emulated by ats-sandbox"
    );
    let c = ats(&sb, json!({"cmd": "make_coffee"})).cmd1();
    assert_eq!(c["result"], 9000);
}

// ---------------------------------------------------------------- modeled commands

#[test]
fn verify_barcode_for_every_magic_barcode() {
    let sb = start();
    let expect = [
        ("100000000001", "EVENT01", "ACTIVE"),
        ("100000000002", "EVENT01", "ACTIVE"),
        ("100000000003", "EVENT01", "ACTIVE"),
        ("100000000004", "EVENT01", "ACTIVE"),
        ("100000000005", "EVENT01", "VOID"),
        ("100000000006", "EVENT02", "ACTIVE"),
        ("100000000007", "EVENT00", "ACTIVE"),
        ("100000000008", "EVENT01", "ACTIVE"),
        ("100000000009", "EVENT01", "REISSUED"),
    ];
    for (bc, ev, status) in expect {
        let c = ats(&sb, json!({"cmd": "verify_barcode", "barcode": bc})).cmd1();
        assert_eq!(c["result"], 0, "{bc}");
        assert_eq!(c["barcode"], bc);
        assert_eq!(c["event_name"], ev, "{bc}");
        assert_eq!(c["ticket_status"], status, "{bc}");
        assert_eq!(c["acct_id"], 100479);
        for k in [
            "event_date",
            "event_time",
            "section_name",
            "row_name",
            "seat_num",
            "price_code",
        ] {
            assert!(c.get(k).is_some(), "{bc} {k}");
        }
    }
    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000007"}),
    )
    .cmd1();
    assert_eq!(c["event_date"], "2026-11-20");

    // The slow ticket answers through a 3 s 202 cycle.
    let r = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000010"}),
    );
    assert_eq!(r.status, 202);
    let (r, polls) = call_through_cycle(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000010"}),
        Duration::from_millis(500),
    );
    assert_eq!(polls, 6);
    assert_eq!(r.cmd1()["ticket_status"], "ACTIVE");

    // event_name that differs is still result 0: the agent judges wrong_event.
    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000006", "event_name": "EVENT01"}),
    )
    .cmd1();
    assert_eq!(c["result"], 0);
    assert_eq!(c["event_name"], "EVENT02");

    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "999999999999"}),
    )
    .cmd1();
    assert_eq!(c["result"], 5301);
    assert_eq!(c["sql_code"], 100);
    assert_eq!(c["error_detail"], "Barcode not found");
    let c = ats(&sb, json!({"cmd": "verify_barcode"})).cmd1();
    assert_eq!(c["result"], 5302);
    assert_eq!(c["error_detail"], "Missing required input: barcode");
}

#[test]
fn get_av_barcodes_for_every_magic_barcode() {
    let sb = start();
    // (barcode, [(av_id, av_type, description, amount, valid_until)])
    let fb = "Food and beverage credit";
    type Line<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
    let expect: Vec<(&str, Vec<Line>)> = vec![
        ("100000000001", vec![("AV1001", "M", fb, "20.00", TODAY)]),
        (
            "100000000002",
            vec![("AV1002", "N", "Pizza and a Coke", "1.00", TODAY)],
        ),
        (
            "100000000003",
            vec![
                ("AV1003", "M", fb, "15.00", TODAY),
                ("AV1004", "N", "Hot Dog", "1.00", TODAY),
            ],
        ),
        ("100000000004", vec![]),
        ("100000000005", vec![("AV1005", "M", fb, "10.00", TODAY)]),
        ("100000000006", vec![("AV1006", "M", fb, "10.00", TODAY)]),
        (
            "100000000007",
            vec![("AV1007", "M", fb, "10.00", "2026-11-20")],
        ),
        ("100000000008", vec![("AV1008", "M", fb, "50.00", TODAY)]),
        ("100000000009", vec![("AV1009", "M", fb, "5.00", TODAY)]),
    ];
    for (bc, lines) in expect {
        let c = ats(&sb, json!({"cmd": "get_av_barcodes", "barcode": bc})).cmd1();
        assert_eq!(c["result"], 0, "{bc}");
        assert_eq!(c["count"], lines.len(), "{bc}");
        assert_eq!(
            c["sql_code"],
            if lines.is_empty() { 100 } else { 0 },
            "{bc}"
        );
        let rows = c["av_barcodes"].as_array().unwrap();
        assert_eq!(rows.len(), lines.len());
        for (row, (av, ty, desc, amount, until)) in rows.iter().zip(lines) {
            assert_eq!(row["barcode"], bc);
            assert_eq!(row["av_id"], av);
            assert_eq!(row["av_type"], ty);
            assert_eq!(row["description"], desc);
            assert_eq!(row["amount"], amount);
            assert_eq!(row["balance"], amount);
            assert_eq!(row["valid_until"], until);
            assert_eq!(row["acct_id"], 100479);
            assert!(row["valid_from"].is_string());
        }
    }
    let (r, _) = call_through_cycle(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "100000000010"}),
        Duration::from_secs(1),
    );
    assert_eq!(r.cmd1()["av_barcodes"][0]["amount"], "25.00");

    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "999999999999"}),
    )
    .cmd1();
    assert_eq!(
        (c["result"].clone(), c["sql_code"].clone()),
        (json!(5311), json!(100))
    );
    assert_eq!(c["error_detail"], "Barcode not found");
    let c = ats(&sb, json!({"cmd": "get_av_barcodes"})).cmd1();
    assert_eq!(c["result"], 5312);
    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "event_name": "EVENT99"}),
    )
    .cmd1();
    assert_eq!(c["result"], 5313);
    assert_eq!(c["error_detail"], "Event not found");
}

fn follow_event_chunks(sb: &Sb, event: &str, max_rows: Option<u64>) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut prev: Option<String> = None;
    let mut chunks = 0;
    loop {
        let mut req = json!({"cmd": "get_av_barcodes", "event_name": event});
        if let Some(m) = max_rows {
            req["max_rows"] = json!(m);
        }
        if let Some(p) = &prev {
            req["prev_barcode"] = json!(p);
        }
        let c = ats(sb, req).cmd1();
        assert_eq!(c["result"], 0);
        let rows = c["av_barcodes"].as_array().cloned().unwrap_or_default();
        let count: usize = c["count"]
            .as_str()
            .expect("count as a string in event mode")
            .parse()
            .unwrap();
        assert_eq!(count, rows.len());
        chunks += 1;
        prev = rows
            .last()
            .map(|r| r["barcode"].as_str().unwrap().to_string());
        all.extend(rows);
        if c["more_data"] == "N" {
            break;
        }
        assert!(chunks < 10_000);
    }
    (all, chunks)
}

#[test]
fn event_listing_chunks_and_omits_void_and_reissued() {
    let sb = start();
    let (rows, chunks) = follow_event_chunks(&sb, "EVENT01", Some(2));
    let ids: Vec<&str> = rows.iter().map(|r| r["av_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["AV1001", "AV1002", "AV1003", "AV1004", "AV1008", "AV1010"]
    );
    assert_eq!(chunks, 3);
    let (rows, chunks) = follow_event_chunks(&sb, "EVENT02", None);
    assert_eq!((rows.len(), chunks), (1, 1));
}

#[test]
fn generated_tickets_page_in_chunks_of_500() {
    let sb = start_with(|c| c.data = DataSet::builtin().with_generated(1_200));
    let (rows, chunks) = follow_event_chunks(&sb, "EVENT01", None);
    assert_eq!(rows.len(), 1_206);
    assert_eq!(chunks, 3);
    let mut sorted: Vec<&str> = rows
        .iter()
        .map(|r| r["barcode"].as_str().unwrap())
        .collect();
    let orig = sorted.clone();
    sorted.sort();
    assert_eq!(orig, sorted, "rows sorted by barcode");
    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "200000001199"}),
    )
    .cmd1();
    assert_eq!(c["av_barcodes"][0]["av_id"], "AV2001199");
    assert_eq!(c["av_barcodes"][0]["amount"], "10.00");
}

// ---------------------------------------------------------------- the 202 cycle

#[test]
fn polling_cycle_with_cookies_takes_ten_seconds() {
    let sb = start();
    let cmd = json!({"cmd": "ats_ext_test_polling"});
    let r = ats(&sb, cmd.clone());
    assert_eq!(r.status, 202);
    let cookies = r.set_cookies();
    let names: Vec<&str> = cookies
        .iter()
        .map(|c| c.split('=').next().unwrap())
        .collect();
    assert_eq!(names, ["QTKN", "SID", "BID"]);
    let jar = cookies.join("; ");

    sb.clock.advance(Duration::from_millis(9_999));
    let r = ats_with(&sb, cmd.clone(), &[("Cookie", &jar)]);
    assert_eq!(r.status, 202);
    assert_eq!(r.set_cookies(), cookies, "same cookies for the whole cycle");

    // A poll must re-send the same command.
    let r = ats_with(&sb, json!({"cmd": "ping"}), &[("Cookie", &jar)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.cmd1()["result"], 9003);

    sb.clock.advance(Duration::from_millis(1));
    let r = ats_with(&sb, cmd.clone(), &[("Cookie", &jar)]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["header"]["result"], 0);
    assert_eq!(v["command1"]["result"], 0);
    assert_eq!(v["command1"]["cmd"], "ats_ext_test_polling");
    assert_eq!(
        r.set_cookies(),
        ["QTKN=", "SID=", "BID="],
        "cookies expired"
    );
    assert!(r.header("Set-Cookie").unwrap().contains("Max-Age=0"));

    // The token is gone once collected.
    let r = ats_with(&sb, cmd.clone(), &[("Cookie", &jar)]);
    assert_eq!(r.status, 200);
    let c = r.cmd1();
    assert_eq!(c["result"], 9002);
    let qtkn = cookies[0].trim_start_matches("QTKN=");
    assert!(
        c["error_detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("No data for token '{qtkn}'")),
        "{c}"
    );

    let r = ats_with(&sb, cmd, &[("Cookie", "QTKN=bogus; SID=x; BID=y")]);
    assert!(r.cmd1()["error_detail"]
        .as_str()
        .unwrap()
        .starts_with("No data for token 'bogus'"));

    let s = sb.h.stats();
    assert_eq!(s.polls, 5);
    assert_eq!(s.calls("ats_ext_test_polling"), 1);
}

#[test]
fn polls_count_toward_the_rate_limit() {
    let sb = start_with(|c| c.rate_per_minute = 3);
    let cmd = json!({"cmd": "ats_ext_test_polling"});
    let r = ats(&sb, cmd.clone());
    let jar = r.set_cookies().join("; ");
    assert_eq!(ats_with(&sb, cmd.clone(), &[("Cookie", &jar)]).status, 202);
    assert_eq!(ats_with(&sb, cmd.clone(), &[("Cookie", &jar)]).status, 202);
    assert_eq!(ats_with(&sb, cmd, &[("Cookie", &jar)]).status, 429);
}

#[test]
fn forced_202_and_rotating_tokens() {
    let sb = start();
    sb.h.set_faults(Faults {
        force_202_ms: Some(1_000),
        ..Faults::default()
    });
    let (r, polls) = call_through_cycle(&sb, ping(), Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(r.cmd1()["system_available"], "Y");
    assert_eq!(polls, 4);

    sb.h.set_faults(Faults {
        force_202_ms: Some(1_000),
        rotate_qtkn: true,
        ..Faults::default()
    });
    let r = ats(&sb, ping());
    let first = r.set_cookies().join("; ");
    let r = ats_with(&sb, ping(), &[("Cookie", &first)]);
    assert_eq!(r.status, 202);
    assert_ne!(r.set_cookies().join("; "), first, "QTKN rotated");
    let r = ats_with(&sb, ping(), &[("Cookie", &first)]);
    assert_eq!(r.cmd1()["result"], 9002, "the old token is forgotten");
    // A client that keeps every cookie it is given still gets through.
    let (r, _) = call_through_cycle(&sb, ping(), Duration::from_millis(300));
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------- faults

#[test]
fn drop_connection_closes_without_answer() {
    let sb = start();
    sb.h.set_faults(Faults {
        drop_connection: true,
        ..Faults::default()
    });
    let body = serde_json::to_vec(&envelope(ping())).unwrap();
    let (bytes, _) = raw(
        sb.h.addr(),
        "POST",
        PATH,
        &[("apikey", "sandbox-key")],
        &body,
    )
    .unwrap();
    assert!(bytes.is_empty());
    // The admin API is never faulted.
    assert_eq!(admin(&sb, "GET", "health", None).status, 200);
    assert_eq!(sb.h.stats().dropped, 1);
}

#[test]
fn black_hole_holds_until_cleared() {
    use std::io::{Read, Write};
    let sb = start();
    sb.h.set_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let body = serde_json::to_vec(&envelope(ping())).unwrap();
    let mut s = std::net::TcpStream::connect(sb.h.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&request_bytes(
        "POST",
        PATH,
        &[("apikey", "sandbox-key")],
        &body,
    ))
    .unwrap();
    // Wait until the server holds the request (no fixed sleep: poll the counter).
    let t0 = std::time::Instant::now();
    while sb.h.stats().black_holed == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never black-holed");
        std::thread::yield_now();
    }
    assert_eq!(
        admin(&sb, "GET", "health", None).status,
        200,
        "admin still answers"
    );
    assert_eq!(admin(&sb, "POST", "faults", Some(json!({}))).status, 200);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "no answer, just a close");
    assert_eq!(ats(&sb, ping()).status, 200);
}

#[test]
fn body_faults_malformed_truncated_oversized() {
    let sb = start();
    sb.h.set_faults(Faults {
        malformed_body: true,
        ..Faults::default()
    });
    let r = ats(&sb, ping());
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    sb.h.set_faults(Faults {
        truncate_body: true,
        ..Faults::default()
    });
    let r = ats(&sb, ping());
    assert_eq!(r.status, 200);
    assert!(!r.complete, "fewer bytes than Content-Length");

    sb.h.set_faults(Faults {
        oversized_body_bytes: Some(300_000),
        ..Faults::default()
    });
    let r = ats(&sb, ping());
    assert!(r.body.len() >= 290_000, "{}", r.body.len());
    assert_eq!(r.cmd1()["result"], 0, "still valid JSON");
}

#[test]
fn latency_is_served_on_the_sandbox_clock() {
    let sb = start();
    sb.h.set_faults(Faults {
        latency_ms: 700,
        jitter_ms: 100,
        seed: Some(1),
        ..Faults::default()
    });
    let before = sb.clock.elapsed();
    assert_eq!(ats(&sb, ping()).status, 200);
    let waited = sb.clock.elapsed() - before;
    assert!(
        waited >= Duration::from_millis(700) && waited <= Duration::from_millis(800),
        "{waited:?}"
    );
}

// ---------------------------------------------------------------- admin API

#[test]
fn admin_api_faults_balance_void_stats_reset() {
    let sb = start();
    let r = admin(&sb, "GET", "health", None);
    assert_eq!(r.json()["status"], "ok");

    // Faults round trip, validation.
    let r = admin(
        &sb,
        "POST",
        "faults",
        Some(json!({"latency_ms": 5, "fail_next": 1})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(admin(&sb, "GET", "faults", None).json()["fail_next"], 1);
    assert_eq!(
        admin(&sb, "POST", "faults", Some(json!({"status_503_rate": 2.0}))).status,
        400
    );
    assert_eq!(
        admin(&sb, "POST", "faults", Some(json!({"latency": 5}))).status,
        400
    );
    assert_eq!(ats(&sb, ping()).status, 503);
    assert_eq!(admin(&sb, "POST", "faults", Some(json!({}))).status, 200);

    // Balance edits show up in get_av_barcodes.
    let r = admin(
        &sb,
        "POST",
        "balance",
        Some(json!({"barcode": "100000000008", "av_id": "AV1008", "balance": "12.50"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "100000000008"}),
    )
    .cmd1();
    assert_eq!(c["av_barcodes"][0]["balance"], "12.50");
    assert_eq!(c["av_barcodes"][0]["amount"], "50.00");
    sb.h.set_balance("100000000001", "AV1001", 0).unwrap();
    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "100000000001"}),
    )
    .cmd1();
    assert_eq!(c["av_barcodes"][0]["balance"], "0.00");
    assert_eq!(
        admin(
            &sb,
            "POST",
            "balance",
            Some(json!({"barcode": "1", "av_id": "AV1", "balance": "1.00"}))
        )
        .status,
        404
    );
    assert!(sb.h.set_balance("100000000001", "AV9999", 1).is_err());

    // Void.
    assert_eq!(
        admin(
            &sb,
            "POST",
            "void",
            Some(json!({"barcode": "100000000004"}))
        )
        .status,
        200
    );
    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000004"}),
    )
    .cmd1();
    assert_eq!(c["ticket_status"], "VOID");
    sb.h.void_ticket("100000000006").unwrap();
    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000006"}),
    )
    .cmd1();
    assert_eq!(c["ticket_status"], "VOID");

    // Stats over HTTP, with a 429; admin calls are not counted.
    sb.h.set_faults(Faults {
        rate_per_minute: Some(0),
        ..Faults::default()
    });
    assert_eq!(ats(&sb, ping()).status, 429);
    let s = admin(&sb, "GET", "stats", None).json();
    assert_eq!(s["by_status"]["429"], 1);
    assert_eq!(s["by_status"]["503"], 1);
    assert_eq!(s["by_status"]["200"], 4);
    assert_eq!(s["calls_by_command"]["get_av_barcodes"], 2);
    assert_eq!(s["calls_by_command"]["verify_barcode"], 2);
    assert_eq!(s["total_requests"], 6);
    assert_eq!(sb.h.stats().total_requests, 6);

    // Reset restores data, faults, limits and stats.
    assert_eq!(admin(&sb, "POST", "reset", None).status, 200);
    assert_eq!(sb.h.stats().total_requests, 0);
    assert!(sb.h.faults().is_clear());
    let c = ats(
        &sb,
        json!({"cmd": "verify_barcode", "barcode": "100000000004"}),
    )
    .cmd1();
    assert_eq!(c["ticket_status"], "ACTIVE");
    let c = ats(
        &sb,
        json!({"cmd": "get_av_barcodes", "barcode": "100000000008"}),
    )
    .cmd1();
    assert_eq!(c["av_barcodes"][0]["balance"], "50.00");

    sb.h.reset();
    assert_eq!(admin(&sb, "GET", "nope", None).status, 404);
    assert_eq!(admin(&sb, "GET", "reset", None).status, 405);
    assert_eq!(sb.h.stats().total_requests, 0, "admin calls count nowhere");
}

// ---------------------------------------------------------------- HTTPS, binary

#[test]
fn https_round_trip_with_a_private_ca() {
    let ss = generate_self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let sb = start_with(|c| c.tls = Some(ss.tls_pem()));
    assert!(sb.h.base_url().starts_with("https://127.0.0.1:"));

    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(ss.ca_pem.as_bytes()).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[ca]))
                // The crate builds ureq without a default crypto provider.
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build(),
        )
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{PATH}", sb.h.base_url());
    let body = serde_json::to_string(&envelope(
        json!({"cmd": "verify_barcode", "barcode": "100000000001"}),
    ))
    .unwrap();
    for _ in 0..2 {
        let mut r = agent
            .post(&url)
            .header("apikey", "sandbox-key")
            .header("Content-Type", "application/json")
            .send(body.as_str())
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(v["command1"]["ticket_status"], "ACTIVE");
    }
    let mut r = agent
        .get(format!("{}/__sandbox/health", sb.h.base_url()))
        .call()
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["tls"], true);
    sb.h.shutdown();
}

#[test]
fn binary_prints_its_address_first_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ats-sandbox"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--generate",
            "10",
            "--rate-per-minute",
            "7",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let addr: std::net::SocketAddr = url.parse().unwrap();
    let body = serde_json::to_vec(&envelope(
        json!({"cmd": "verify_barcode", "barcode": "200000000009"}),
    ))
    .unwrap();
    let r = send(
        addr,
        "POST",
        PATH,
        &[
            ("apikey", "sandbox-key"),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Rate-Limit"), Some("7"));
    assert_eq!(r.cmd1()["ticket_status"], "ACTIVE");
}
