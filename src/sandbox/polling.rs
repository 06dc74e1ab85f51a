//! The asynchronous 202 cycle.
//!
//! A command slower than the sync threshold (or any command under `force_202_ms`)
//! answers `202 Accepted` with `Set-Cookie` `QTKN`, `SID` and `BID` (random tokens).
//! The caller re-sends the identical body with those cookies; it gets 202 until the
//! command's "done at" time (on the sandbox clock) has passed, then 200 with the result
//! (whose `Set-Cookie` headers expire the three cookies), and the token is forgotten. A poll whose `QTKN` is unknown (never issued, already
//! collected, or replaced under `rotate_qtkn`) gets HTTP 200 with `command1.result`
//! 9002 and `error_detail` beginning `No data for token '...'`. A poll whose body differs
//! from the queued command gets 9003. Every poll counts toward the rate limit and
//! `Stats::polls`.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::commands;
use super::json::{envelope, value_text};
use super::server::http::{Request, Response};
use super::state::State;
use crate::sync::lock;

/// `command1.result` for an unknown poll token.
pub const NO_DATA_FOR_TOKEN: i64 = 9002;
/// `command1.result` for a poll whose body differs from the queued command.
pub const POLL_BODY_DIFFERS: i64 = 9003;

fn cookies_202(q: &str, sid: &str, bid: &str, remaining: Duration) -> Response {
    let mut r = Response::json(
        202,
        &json!({"status": "queued", "retry_after_ms": remaining.as_millis() as u64}),
    );
    for (k, v) in [("QTKN", q), ("SID", sid), ("BID", bid)] {
        r = r.with_header("Set-Cookie", format!("{k}={v}; Path=/; HttpOnly"));
    }
    r
}

/// Answers one ATS call that passed the gateway.
pub(crate) fn handle(
    st: &State,
    req: &Request,
    body: &Value,
    header: Option<&Value>,
    cmd1: &Map<String, Value>,
) -> Response {
    let now = st.clock.now();
    if let Some(q) = req.cookie("QTKN") {
        lock(&st.stats).polls += 1;
        let rotate = lock(&st.faults).faults.rotate_qtkn;
        let mut table = lock(&st.polls);
        let Some(p) = table.get(&q) else {
            drop(table);
            let out = commands::error_out(
                NO_DATA_FOR_TOKEN,
                100,
                &format!("No data for token '{q}': unknown or already collected"),
            );
            return Response::json(200, &envelope(header, cmd1, out));
        };
        if p.body != *body {
            drop(table);
            let out = commands::error_out(
                POLL_BODY_DIFFERS,
                0,
                "poll body differs from the queued command; re-send it unchanged",
            );
            return Response::json(200, &envelope(header, cmd1, out));
        }
        if now < p.done_at {
            let remaining = p.done_at - now;
            let (sid, bid) = (p.sid.clone(), p.bid.clone());
            let q = if rotate { table.rekey(&q) } else { q };
            return cookies_202(&q, &sid, &bid, remaining);
        }
        table.remove(&q);
        drop(table);
        // The cycle is over: expire its cookies so cookie jars do not replay them.
        let mut done = run(st, header, cmd1);
        for k in ["QTKN", "SID", "BID"] {
            done = done.with_header("Set-Cookie", format!("{k}=; Path=/; Max-Age=0"));
        }
        return done;
    }

    let cmd = cmd1.get("cmd").map(value_text).unwrap_or_default();
    lock(&st.stats).count_call(&cmd);
    let forced = lock(&st.faults).faults.force_202_ms;
    let work = {
        let data = lock(&st.data);
        commands::duration(&data, cmd1)
    };
    let cycle = match forced {
        Some(ms) => Some(Duration::from_millis(ms).max(work)),
        None if work > st.sync_threshold => Some(work),
        None => None,
    };
    if let Some(d) = cycle {
        let (q, sid, bid) = lock(&st.polls).insert(body.clone(), now + d);
        log::debug!("202 cycle for {cmd}: {} ms", d.as_millis());
        return cookies_202(&q, &sid, &bid, d);
    }
    if !work.is_zero() {
        st.clock.sleep(work);
    }
    run(st, header, cmd1)
}

fn run(st: &State, header: Option<&Value>, cmd1: &Map<String, Value>) -> Response {
    let out = {
        let data = lock(&st.data);
        let faults = lock(&st.faults).faults.clone();
        let ctx = commands::Ctx {
            data: &data,
            today: st.today,
            active_requests: st.active_requests(),
            wall_ms: st.clock.wall_ms(),
            duplicate_av_rows: faults.duplicate_av_rows,
            inclusive_prev_barcode: faults.inclusive_prev_barcode,
            server_clock_offset_ms: faults.server_clock_offset_ms,
        };
        commands::run(&ctx, cmd1)
    };
    Response::json(200, &envelope(header, cmd1, out))
}
