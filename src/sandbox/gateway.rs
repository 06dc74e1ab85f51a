//! The gateway in front of ATS: API key, DSN, product and resource, rate limits and the
//! faults that act on ATS calls.
//!
//! Checks run in this order (first failure answers):
//! 1. key missing or wrong: 401 (`apikey` header, or `apikey=` in the query)
//! 2. key not allowed for the URL's `dsn`: 401
//! 3. method other than POST: 405
//! 4. `Content-Type` not JSON (`application/json`, `text/json`): 415
//! 5. body not a JSON object with a `command1` object: 400
//! 6. URL `dsn` differs from `command1.dsn`: 401, body says so
//! 7. unknown product or resource: 404
//! 8. rate limit: 429 (`Rate-Limit*` headers on this and every later answer)
//! 9. injected 503 (`fail_next`, `status_503_rate`)
//!
//! then the 202 cycle and the command ([`super::polling`]). Before all of it, the
//! connection-level faults (drop, black hole) and latency apply.

use std::time::Duration;

use serde_json::{json, Value};

use super::faults::apply_body_faults;
use super::json::value_text;
use super::polling;
use super::server::http::{Request, Response};
use super::server::Action;
use super::state::State;
use crate::sync::lock;

/// An Apigee-style gateway error body.
pub(crate) fn fault(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"fault": {"faultstring": message, "detail": {"errorcode": code}}}),
    )
}

/// Answers one ATS call: connection faults and latency, then the checks above.
pub(crate) fn handle(st: &State, req: &Request) -> Action {
    let (drop, black_hole, latency) = {
        let mut f = lock(&st.faults);
        let latency = f.latency_ms();
        (f.faults.drop_connection, f.faults.black_hole, latency)
    };
    lock(&st.stats).total_requests += 1;
    if drop {
        lock(&st.stats).dropped += 1;
        log::debug!("fault: dropping {} {}", req.method, req.path);
        return Action::Drop;
    }
    if black_hole {
        lock(&st.stats).black_holed += 1;
        log::debug!("fault: black-holing {} {}", req.method, req.path);
        return Action::BlackHole;
    }
    if latency > 0 {
        st.clock.sleep(Duration::from_millis(latency));
    }
    let resp = pipeline(st, req);
    lock(&st.stats).count_status(resp.status);
    Action::Respond(resp)
}

fn pipeline(st: &State, req: &Request) -> Response {
    // 1. key
    let key = req
        .header("apikey")
        .map(str::to_string)
        .or_else(|| req.query_param("apikey"));
    match key {
        None => {
            return fault(
                401,
                "steps.oauth.v2.FailedToResolveAPIKey",
                "Failed to resolve API Key variable request.header.apikey",
            )
        }
        Some(k) if k != st.apikey => return fault(401, "oauth.v2.InvalidApiKey", "Invalid ApiKey"),
        Some(_) => {}
    }
    // 2. key may use the DSN
    let url_dsn = req.query_param("dsn").unwrap_or_default();
    if url_dsn != st.dsn {
        let msg = if url_dsn.is_empty() {
            "dsn is missing from the URL".to_string()
        } else {
            format!("api key is not allowed for dsn '{url_dsn}'")
        };
        return fault(401, "dsn.NotAllowed", &msg);
    }
    // 3. method
    if !req.method.eq_ignore_ascii_case("POST") {
        return fault(405, "method.NotAllowed", "only POST is supported")
            .with_header("Allow", "POST");
    }
    // 4. content type
    if let Some(ct) = req.header("content-type") {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && mime != "text/json" {
            return fault(
                415,
                "content.UnsupportedType",
                &format!("content-type '{ct}' is not application/json or text/json"),
            );
        }
    }
    // 5. body
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("malformed json: {e}")),
    };
    let cmd1 = match body.get("command1") {
        Some(Value::Object(m)) => m.clone(),
        _ => return bad_request("body must be a JSON object with a command1 object"),
    };
    // 6. DSN in URL equals command1.dsn
    let body_dsn = cmd1.get("dsn").map(value_text).unwrap_or_default();
    if body_dsn != url_dsn {
        return fault(
            401,
            "dsn.Mismatch",
            &format!("dsn in the URL ('{url_dsn}') differs from command1.dsn ('{body_dsn}')"),
        );
    }
    // 7. product and resource
    let mut segs = req.path.trim_matches('/').split('/');
    let product = segs.next().unwrap_or("");
    let resource = segs.next().unwrap_or("");
    let known_product = st.products.iter().any(|p| p.eq_ignore_ascii_case(product));
    if !known_product || !resource.eq_ignore_ascii_case(&st.resource) || segs.next().is_some() {
        return fault(
            404,
            "classification.RouteNotFound",
            &format!("no product/resource at {}", req.path),
        );
    }
    // 8. rate limit
    let (per_min, per_day) = {
        let f = lock(&st.faults);
        (
            f.faults.rate_per_minute.unwrap_or(st.rate_per_minute),
            f.faults.rate_per_day.unwrap_or(st.rate_per_day),
        )
    };
    let verdict = lock(&st.limiter).check(st.clock.now(), st.clock.wall_ms(), per_min, per_day);
    let with_rate = |mut r: Response| {
        r.headers.extend(verdict.headers.iter().cloned());
        r
    };
    if !verdict.allowed {
        return with_rate(fault(
            429,
            "policies.ratelimit.QuotaViolation",
            "Rate limit quota violation. Quota limit exceeded.",
        ));
    }
    // 9. injected 503
    if lock(&st.faults).take_503() {
        return with_rate(fault(
            503,
            "messaging.adaptors.http.flow.ServiceUnavailable",
            "The Service is temporarily unavailable",
        ));
    }
    let header = body.get("header").cloned();
    let resp = polling::handle(st, req, &body, header.as_ref(), &cmd1);
    with_rate(body_faults(st, resp))
}

fn bad_request(msg: &str) -> Response {
    Response::json(400, &json!({"error": msg, "code": "bad_request"}))
}

/// Applies `malformed_body`, `oversized_body_bytes` and `truncate_body` to 200 answers.
fn body_faults(st: &State, resp: Response) -> Response {
    if resp.status != 200 {
        return resp;
    }
    let f = lock(&st.faults).faults.clone();
    apply_body_faults(&f, resp)
}
