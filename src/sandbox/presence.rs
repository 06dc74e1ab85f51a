//! The sandbox's Presence emulation: `POST /presence/v1/ticket/validate` on the same
//! port as ATS (docs/ats-wire.md section 7, docs/sandbox.md "SafeTix").
//!
//! Every ticket of the data set has a SafeTix token (stable, opaque, derived from its
//! barcode) and a rotating payload `token::eventTOTP::customerTOTP::timestamp`: two
//! RFC 6238 TOTPs (HMAC-SHA1, 6 digits, 15 s step) from an event secret and a ticket
//! secret, and the timestamp in seconds. [`payload_for`] makes the payload of a ticket
//! at a time; `GET /__sandbox/safetix/{barcode}` answers it (loopback peers only).
//!
//! `ticket/validate` checks, first failure answering:
//! 1. the connection-level faults and latency (the Presence fault set, apart from ATS's:
//!    `POST /__sandbox/presence/faults`),
//! 2. the Presence key in the `apikey` query parameter (401; it is not the ATS key),
//! 3. the rate limit of that key (429), an injected 503,
//! 4. the body: not JSON or no `token` → `BAD_REQUEST`,
//! 5. a token `STATUS-<NAME>` answers status `<NAME>` with no tickets (to show every
//!    status); any other unknown token → `NOT_FOUND`,
//! 6. TOTPs that do not match their timestamp, or a timestamp more than
//!    [`ACCEPTED_SKEW_S`] from the sandbox clock (an old screenshot) → `INVALID_TICKET`,
//! 7. a ticket `VOID`, `REISSUED` or `RETURNED` → `INVALID_TICKET`; an event on an
//!    earlier day → `TOO_LATE`, a later day → `TOO_EARLY`,
//! 8. a ticket a gate has scanned in (below) → `ALREADY_ENTERED`, with its `place`
//!    and `eventId` as for `OKAY` (the project's model: the public page does not say
//!    whether that answer names the ticket),
//! 9. else `OKAY` with the ticket's `place` (`section:row:seat`) and `eventId` (the
//!    Archtics event name: the sandbox's Presence ids are the names).
//!
//! `POST /presence/v1/ticket/enter` is what a gate's scanner calls: the same checks,
//! then the ticket is marked entered (until `reset`) and answered `OKAY`; a second
//! entry answers `ALREADY_ENTERED`. A concession stand behind that gate then sees
//! `ALREADY_ENTERED` from `validate`, as at a real venue.
//!
//! Answers carry the body faults (`malformed_body`, `truncate_body`,
//! `oversized_body_bytes`) of the Presence fault set. The payload is never logged.
//!
//! Layer: below `state` (which holds a [`PresenceState`]); it reads the data set and
//! the clock it is handed, never the sandbox state itself.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::data::DataSet;
use super::faults::{apply_body_faults, FaultState, Faults};
use super::ratelimit::RateLimiter;
use super::server::http::{Request, Response};
use super::server::Action;
use crate::clock::SharedClock;
use crate::sync::lock;

/// The Presence key the sandbox accepts (not the ATS key).
pub const PRESENCE_APIKEY: &str = "sandbox-presence-key";
/// The route.
pub const VALIDATE_ROUTE: &str = "/presence/v1/ticket/validate";
/// The gate's route: marks a ticket entered.
pub const ENTER_ROUTE: &str = "/presence/v1/ticket/enter";
/// TOTP step, seconds.
pub const TOTP_STEP_S: u64 = 15;
/// A payload whose timestamp is further than this from the sandbox's clock is refused
/// (`INVALID_TICKET`): it is an old screenshot, not the phone's live code.
pub const ACCEPTED_SKEW_S: u64 = 60;
/// Calls a minute and a day the Presence key may make (faults' `rate_per_*` override).
pub const PRESENCE_RATE_PER_MINUTE: u32 = 60;
/// See [`PRESENCE_RATE_PER_MINUTE`].
pub const PRESENCE_RATE_PER_DAY: u32 = 5000;

const TOKEN_PREFIX: &str = "STX";
const STATUS_PREFIX: &str = "STATUS-";

/// What the Presence emulation has answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PresenceStats {
    /// Requests to the Presence route (faulted ones included).
    pub requests: u64,
    /// Answers by HTTP status.
    pub by_http_status: BTreeMap<u16, u64>,
    /// 200 answers by `result.status`.
    pub by_status: BTreeMap<String, u64>,
}

impl PresenceStats {
    /// 200 answers with `result.status` `status`.
    pub fn status(&self, status: &str) -> u64 {
        self.by_status.get(status).copied().unwrap_or(0)
    }

    /// Answers with HTTP status `code`.
    pub fn http(&self, code: u16) -> u64 {
        self.by_http_status.get(&code).copied().unwrap_or(0)
    }
}

/// The emulation's own state: its fault set, its key's rate windows, its counters.
#[derive(Debug)]
pub(crate) struct PresenceState {
    faults: Mutex<FaultState>,
    limiter: Mutex<RateLimiter>,
    stats: Mutex<PresenceStats>,
    /// Barcodes a gate has scanned in (`ticket/enter`).
    entered: Mutex<BTreeSet<String>>,
}

impl Default for PresenceState {
    fn default() -> Self {
        PresenceState {
            faults: Mutex::new(FaultState::new(Faults::default())),
            limiter: Mutex::new(RateLimiter::default()),
            stats: Mutex::new(PresenceStats::default()),
            entered: Mutex::new(BTreeSet::new()),
        }
    }
}

impl PresenceState {
    /// Replaces the Presence faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults.clamped());
    }

    /// The Presence faults.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    /// True while a Presence black hole holds connections.
    pub fn black_hole_active(&self) -> bool {
        lock(&self.faults).faults.black_hole
    }

    /// The counters.
    pub fn stats(&self) -> PresenceStats {
        lock(&self.stats).clone()
    }

    /// Forgets faults, rate windows, counters and entries.
    pub fn reset(&self) {
        self.set_faults(Faults::default());
        *lock(&self.limiter) = RateLimiter::default();
        *lock(&self.stats) = PresenceStats::default();
        lock(&self.entered).clear();
    }
}

/// What the emulation reads from the rest of the sandbox: the data set and the clock.
struct Env<'a> {
    data: &'a Mutex<DataSet>,
    clock: &'a SharedClock,
}

/// The route this module answers, if `req` is for it (the router's one line).
pub(crate) fn wants(req: &Request) -> bool {
    req.path == VALIDATE_ROUTE
        || req.path.starts_with("/presence/")
        || req.path.starts_with("/__sandbox/safetix/")
        || req.path == "/__sandbox/presence/faults"
        || req.path == "/__sandbox/presence/stats"
}

/// Answers one request for the Presence routes or their admin routes.
/// `ps` is the sandbox state's Presence part; `data` and `clock` are the sandbox's.
pub(crate) fn handle(
    ps: &PresenceState,
    data: &Mutex<DataSet>,
    clock: &SharedClock,
    req: &Request,
    peer: SocketAddr,
) -> Action {
    let env = &Env { data, clock };
    if req.path.starts_with("/__sandbox/") {
        return Action::Respond(admin(ps, env, req, peer));
    }
    let (drop, black_hole, latency) = {
        let mut f = lock(&ps.faults);
        let latency = f.latency_ms();
        (f.faults.drop_connection, f.faults.black_hole, latency)
    };
    lock(&ps.stats).requests += 1;
    if drop {
        return Action::Drop;
    }
    if black_hole {
        return Action::BlackHole;
    }
    if latency > 0 {
        env.clock.sleep(Duration::from_millis(latency));
    }
    let resp = validate(ps, env, req);
    *lock(&ps.stats)
        .by_http_status
        .entry(resp.status)
        .or_default() += 1;
    Action::Respond(resp)
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"fault": {"faultstring": message, "detail": {"errorcode": code}}}),
    )
}

fn validate(ps: &PresenceState, env: &Env<'_>, req: &Request) -> Response {
    let enter = req.path == ENTER_ROUTE;
    if req.path != VALIDATE_ROUTE && !enter {
        return error(
            404,
            "classification.RouteNotFound",
            "no such Presence route",
        );
    }
    if !req.method.eq_ignore_ascii_case("POST") {
        return error(405, "method.NotAllowed", "only POST is supported")
            .with_header("Allow", "POST");
    }
    match req.query_param("apikey") {
        None => {
            return error(
                401,
                "steps.oauth.v2.FailedToResolveAPIKey",
                "Failed to resolve API Key variable request.queryparam.apikey",
            )
        }
        Some(k) if k != PRESENCE_APIKEY => {
            return error(401, "oauth.v2.InvalidApiKey", "Invalid ApiKey")
        }
        Some(_) => {}
    }
    let (per_min, per_day) = {
        let f = lock(&ps.faults);
        (
            f.faults.rate_per_minute.unwrap_or(PRESENCE_RATE_PER_MINUTE),
            f.faults.rate_per_day.unwrap_or(PRESENCE_RATE_PER_DAY),
        )
    };
    let verdict = lock(&ps.limiter).check(env.clock.now(), env.clock.wall_ms(), per_min, per_day);
    let with_rate = |mut r: Response| {
        r.headers.extend(verdict.headers.iter().cloned());
        r
    };
    if !verdict.allowed {
        return with_rate(error(
            429,
            "policies.ratelimit.QuotaViolation",
            "Rate limit quota violation. Quota limit exceeded.",
        ));
    }
    if lock(&ps.faults).take_503() {
        return with_rate(error(
            503,
            "messaging.adaptors.http.flow.ServiceUnavailable",
            "The Service is temporarily unavailable",
        ));
    }
    let (mut answer, barcode) = answer(env, &req.body);
    if let Some(barcode) = barcode {
        let mut entered = lock(&ps.entered);
        if entered.contains(&barcode) {
            answer["result"] = json!({"status": "ALREADY_ENTERED", "message": "Already entered"});
        } else if enter {
            entered.insert(barcode);
        }
    }
    let status = answer
        .pointer("/result/status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    *lock(&ps.stats).by_status.entry(status).or_default() += 1;
    with_rate(body_faults(ps, Response::json(200, &answer)))
}

fn status_only(status: &str, message: &str) -> Value {
    json!({"result": {"status": status, "message": message}, "message": {"tickets": []}})
}

/// The answer to one request body (always a 200 answer), and the barcode of the
/// ticket when it is `OKAY` (for the entry state, which the caller holds).
fn answer(env: &Env<'_>, body: &[u8]) -> (Value, Option<String>) {
    match judge_body(env, body) {
        Ok((answer, barcode)) => (answer, Some(barcode)),
        Err(answer) => (answer, None),
    }
}

fn judge_body(env: &Env<'_>, body: &[u8]) -> Result<(Value, String), Value> {
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Err(status_only("BAD_REQUEST", "body is not JSON")),
    };
    let Some(payload) = body.get("token").and_then(Value::as_str) else {
        return Err(status_only("BAD_REQUEST", "token is required"));
    };
    let mut parts = payload.split("::");
    let token = parts.next().unwrap_or("");
    if let Some(name) = token.strip_prefix(STATUS_PREFIX) {
        return Err(status_only(name, "sandbox: status token"));
    }
    let Some(barcode) = barcode_of(token) else {
        return Err(status_only("NOT_FOUND", "Ticket not found"));
    };
    let data = lock(env.data);
    let Some(ticket) = data.ticket(&barcode) else {
        return Err(status_only("NOT_FOUND", "Ticket not found"));
    };
    let event_name = ticket.event_name.clone();
    let (e, c, ts) = (parts.next(), parts.next(), parts.next());
    let now_s = env.clock.wall_ms() / 1000;
    let live = match (e, c, ts.and_then(|t| t.parse::<u64>().ok()), parts.next()) {
        (Some(e), Some(c), Some(ts), None) => {
            // Seconds or milliseconds, as the payload may carry either.
            let ts_s = if ts > 100_000_000_000 { ts / 1000 } else { ts };
            let step = ts_s / TOTP_STEP_S;
            ts_s.abs_diff(now_s) <= ACCEPTED_SKEW_S
                && e == totp(&event_secret(&event_name), step)
                && c == totp(&ticket_secret(&barcode), step)
        }
        _ => false,
    };
    if !live || ticket.status != "ACTIVE" {
        return Err(status_only("INVALID_TICKET", "Invalid ticket"));
    }
    let day = data.event(&event_name).map(|ev| ev.day_offset);
    match day {
        Some(d) if d < 0 => return Err(status_only("TOO_LATE", "Too late")),
        Some(d) if d > 0 => return Err(status_only("TOO_EARLY", "Too early")),
        _ => {}
    }
    let answer = json!({
        "result": {"status": "OKAY", "message": "Okay"},
        "message": {"tickets": [{
            "place": format!("{}:{}:{}", ticket.section_name, ticket.row_name, ticket.seat_num),
            "eventId": event_name,
        }]},
    });
    Ok((answer, barcode))
}

fn body_faults(ps: &PresenceState, resp: Response) -> Response {
    let f = lock(&ps.faults).faults.clone();
    apply_body_faults(&f, resp)
}

fn admin(ps: &PresenceState, env: &Env<'_>, req: &Request, peer: SocketAddr) -> Response {
    // Loopback peers only, as the rest of the admin API (IPv4-mapped IPv6 included).
    if !peer.ip().to_canonical().is_loopback() {
        return Response::json(
            403,
            &json!({"error": "the admin API answers loopback peers only"}),
        );
    }
    let method = req.method.to_ascii_uppercase();
    if let Some(barcode) = req.path.strip_prefix("/__sandbox/safetix/") {
        if method != "GET" {
            return Response::json(405, &json!({"error": "GET only"}));
        }
        let data = lock(env.data);
        return match payload_for(&data, barcode, env.clock.wall_ms()) {
            Some(p) => Response::json(
                200,
                &json!({
                    "barcode": barcode,
                    "token": token_for(barcode),
                    "payload": p,
                    "valid_for_s": ACCEPTED_SKEW_S,
                }),
            ),
            None => Response::json(404, &json!({"error": "no such ticket"})),
        };
    }
    match (method.as_str(), req.path.as_str()) {
        ("GET", "/__sandbox/presence/faults") => Response::json(200, &json!(ps.faults())),
        ("POST" | "PUT", "/__sandbox/presence/faults") => {
            let f: Faults = match serde_json::from_slice(&req.body) {
                Ok(f) => f,
                Err(e) => return Response::json(400, &json!({"error": format!("bad json: {e}")})),
            };
            if let Err(m) = f.validate() {
                return Response::json(400, &json!({"error": m}));
            }
            ps.set_faults(f);
            Response::json(200, &json!(ps.faults()))
        }
        ("GET", "/__sandbox/presence/stats") => Response::json(200, &json!(ps.stats())),
        _ => Response::json(404, &json!({"error": "no such admin route"})),
    }
}

/// The SafeTix token of `barcode`: stable, opaque, and only the sandbox can read the
/// barcode back from it.
pub fn token_for(barcode: &str) -> String {
    let ks = keystream();
    let mut out = String::from(TOKEN_PREFIX);
    for (i, b) in barcode.bytes().enumerate() {
        out.push_str(&format!("{:02X}", b ^ ks[i % ks.len()]));
    }
    out.push_str(&check(barcode));
    out
}

fn barcode_of(token: &str) -> Option<String> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?;
    if hex.len() < 10 || hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let (body, sum) = hex.split_at(hex.len() - 8);
    let ks = keystream();
    let mut bytes = Vec::new();
    for (i, pair) in body.as_bytes().chunks(2).enumerate() {
        let b = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        bytes.push(b ^ ks[i % ks.len()]);
    }
    let barcode = String::from_utf8(bytes).ok()?;
    (check(&barcode) == sum).then_some(barcode)
}

fn keystream() -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b"concession-sandbox-safetix-token")
        .as_ref()
        .to_vec()
}

fn check(barcode: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("check:{barcode}").as_bytes());
    d.as_ref()[..4].iter().map(|b| format!("{b:02X}")).collect()
}

fn event_secret(event: &str) -> Vec<u8> {
    format!("sandbox-event-secret:{}", event.to_ascii_uppercase()).into_bytes()
}

fn ticket_secret(barcode: &str) -> Vec<u8> {
    format!("sandbox-ticket-secret:{barcode}").into_bytes()
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits) of `secret` at time step `step`.
fn totp(secret: &[u8], step: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let code = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", code % 1_000_000)
}

/// The rotating payload ticket `barcode` shows at wall time `wall_ms`, if the data set
/// has that ticket.
pub fn payload_for(data: &DataSet, barcode: &str, wall_ms: u64) -> Option<String> {
    let ticket = data.ticket(barcode)?;
    let ts = wall_ms / 1000;
    let step = ts / TOTP_STEP_S;
    Some(format!(
        "{}::{}::{}::{}",
        token_for(barcode),
        totp(&event_secret(&ticket.event_name), step),
        totp(&ticket_secret(barcode), step),
        ts
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_and_reject_tampering() {
        let t = token_for("100000000001");
        assert!(t.starts_with("STX"));
        assert!(!t.contains("100000000001"));
        assert_eq!(barcode_of(&t).as_deref(), Some("100000000001"));
        let mut bad = t.clone();
        bad.replace_range(4..5, if &t[4..5] == "0" { "1" } else { "0" });
        assert_eq!(barcode_of(&bad), None);
        assert_eq!(barcode_of("STX"), None);
        assert_eq!(barcode_of("nonsense"), None);
    }

    #[test]
    fn totp_matches_the_rfc_6238_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 s (step 1): 94287082 (8 digits) → 287082.
        assert_eq!(totp(b"12345678901234567890", 1), "287082");
    }

    #[test]
    fn payloads_parse_as_safetix() {
        let data = DataSet::builtin();
        let p = payload_for(&data, "100000000001", 1_700_000_000_000).unwrap();
        assert!(crate::scan::SafeTix::parse(&p).is_some(), "{p}");
        assert!(payload_for(&data, "999999999999", 0).is_none());
    }
}
