//! The admin API under `/__sandbox/`, answered only to loopback peers (403 otherwise).
//!
//! | route | what |
//! |---|---|
//! | `GET /__sandbox/health` | `{"status":"ok", ...}` |
//! | `POST /__sandbox/reset` | restore data, start-up faults, clear tokens, rate windows, stats |
//! | `GET /__sandbox/faults` | the active [`Faults`] |
//! | `POST /__sandbox/faults` | replace them (`{}` clears); 400 on unknown fields or bad ranges |
//! | `POST /__sandbox/balance` | `{"barcode","av_id","balance":"12.50"}` (or `balance_cents`) |
//! | `POST /__sandbox/void` | `{"barcode"}` marks the ticket VOID |
//! | `GET /__sandbox/stats` | [`super::Stats`] |
//!
//! Admin calls count toward neither rate limits nor statistics, and faults never apply.

use std::net::SocketAddr;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::SandboxError;
use super::faults::Faults;
use super::json::value_text;
use super::server::http::{Request, Response};
use super::state::State;
use crate::money::{parse_cents, Cents};
use crate::redact::mask_barcode;
use crate::sync::lock;

/// True when `peer` may use the admin API (loopback, including IPv4-mapped IPv6).
pub(crate) fn is_admin_peer(peer: &SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

fn err(status: u16, msg: &str) -> Response {
    Response::json(status, &json!({ "error": msg }))
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Response> {
    serde_json::from_slice(&req.body).map_err(|e| err(400, &format!("bad json: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceReq {
    barcode: String,
    av_id: String,
    #[serde(default)]
    balance: Option<Value>,
    #[serde(default)]
    balance_cents: Option<Cents>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidReq {
    barcode: String,
}

fn data_err(e: SandboxError) -> Response {
    match e {
        SandboxError::NotFound(what) => err(404, &format!("{what} not found")),
        other => err(400, &other.to_string()),
    }
}

/// Answers one admin request.
pub(crate) fn handle(st: &State, req: &Request, peer: SocketAddr) -> Response {
    if !is_admin_peer(&peer) {
        log::warn!("admin request from non-loopback peer {peer} refused");
        return err(403, "the admin API answers loopback peers only");
    }
    let route = req.path.trim_start_matches("/__sandbox").trim_matches('/');
    let method = req.method.to_ascii_uppercase();
    match (method.as_str(), route) {
        ("GET", "health") | ("GET", "") => {
            let uptime = st.clock.now().saturating_duration_since(st.started);
            // One lock at a time.
            let tickets = lock(&st.data).ticket_count();
            let tokens = lock(&st.polls).len();
            let faults_active = !lock(&st.faults).faults.is_clear();
            Response::json(
                200,
                &json!({
                    "status": "ok",
                    "uptime_ms": uptime.as_millis() as u64,
                    "tickets": tickets,
                    "tls": st.tls,
                    "open_poll_tokens": tokens,
                    "faults_active": faults_active,
                }),
            )
        }
        ("POST", "reset") => {
            st.reset();
            Response::json(200, &json!({"status": "reset"}))
        }
        ("GET", "faults") => Response::json(200, &json!(st.faults())),
        ("POST", "faults") | ("PUT", "faults") => {
            let f: Faults = match parse(req) {
                Ok(f) => f,
                Err(r) => return r,
            };
            if let Err(m) = f.validate() {
                return err(400, &m);
            }
            log::info!(
                "faults set: {}",
                serde_json::to_string(&f).unwrap_or_default()
            );
            st.set_faults(f);
            Response::json(200, &json!(st.faults()))
        }
        ("DELETE", "faults") => {
            st.set_faults(Faults::default());
            Response::json(200, &json!(st.faults()))
        }
        ("POST", "balance") => {
            let b: BalanceReq = match parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let cents = match (b.balance_cents, &b.balance) {
                (Some(c), _) => c,
                (None, Some(v)) => {
                    let t = value_text(v);
                    match parse_cents(&t) {
                        Ok(c) => c,
                        Err(e) => return err(400, &format!("balance: {e}")),
                    }
                }
                (None, None) => return err(400, "balance or balance_cents is required"),
            };
            match st.with_data(|d| d.set_balance(&b.barcode, &b.av_id, cents)) {
                Ok(()) => {
                    log::info!(
                        "balance of {} {} set to {cents} cents",
                        mask_barcode(&b.barcode),
                        b.av_id
                    );
                    Response::json(
                        200,
                        &json!({"barcode": b.barcode, "av_id": b.av_id,
                            "balance": crate::money::format_cents(cents)}),
                    )
                }
                Err(e) => data_err(e),
            }
        }
        ("POST", "void") => {
            let v: VoidReq = match parse(req) {
                Ok(v) => v,
                Err(r) => return r,
            };
            match st.with_data(|d| d.void_ticket(&v.barcode)) {
                Ok(()) => {
                    Response::json(200, &json!({"barcode": v.barcode, "ticket_status": "VOID"}))
                }
                Err(e) => data_err(e),
            }
        }
        ("GET", "stats") => Response::json(200, &json!(st.stats())),
        (_, "health" | "reset" | "faults" | "balance" | "void" | "stats") => {
            err(405, "method not allowed")
        }
        _ => err(404, "unknown admin route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_peer_is_loopback_only() {
        assert!(is_admin_peer(
            &"127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(is_admin_peer(
            &"[::1]:5000".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(is_admin_peer(
            &"[::ffff:127.0.0.1]:5000"
                .parse()
                .unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_admin_peer(
            &"10.0.0.7:5000".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_admin_peer(
            &"192.168.1.20:80".parse().unwrap_or_else(|_| unreachable!())
        ));
        assert!(!is_admin_peer(
            &"[2001:db8::1]:80"
                .parse()
                .unwrap_or_else(|_| unreachable!())
        ));
    }

    #[test]
    fn non_loopback_peer_gets_403() {
        let cfg = crate::sandbox::config::SandboxConfig::default();
        let st = State::new(&cfg);
        let req = Request {
            method: "GET".into(),
            path: "/__sandbox/stats".into(),
            query: String::new(),
            version: 1,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let peer: SocketAddr = "10.1.2.3:4444".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(handle(&st, &req, peer).status, 403);
        let local: SocketAddr = "127.0.0.1:4444".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(handle(&st, &req, local).status, 200);
    }
}
