//! ats-sandbox: an emulator of Ticketmaster's Archtics Transaction Services (ATS).
//!
//! It serves the transport of `docs/ats-wire.md` (API key, DSN, product and resource,
//! 401/404/429/503, rate limits with their headers, the 202 cookie cycle, `No data for
//! token`), the seed's sample commands and the two modeled commands (`verify_barcode`,
//! `get_av_barcodes`) over a [`DataSet`] of named "magic" barcodes. An admin API under
//! `/__sandbox/` (loopback peers only) switches [`Faults`], edits balances, resets state
//! and reports [`Stats`]. See `docs/sandbox.md`.
//!
//! The HTTP/1.1 server is our own (std `TcpListener`, a thread per connection, `httparse`,
//! optional rustls), so faults can act below HTTP: dropped connections, black holes,
//! truncated bodies. Every wait and every timestamp goes through [`SharedClock`](crate::clock::SharedClock).
//!
//! ```no_run
//! use concession_agent::sandbox::{Sandbox, SandboxConfig};
//! let sb = Sandbox::start(SandboxConfig::default()).unwrap();
//! println!("{}", sb.base_url());
//! sb.shutdown();
//! ```

// Layers, lowest first; each file imports only files of earlier layers (and crate
// helpers): error, json, faults, ratelimit, stats, server; data, tls, poll_table; config;
// presence; state; commands; polling; gateway, admin; and this file, which routes between
// the last two and presence (`scripts/import-graph.py --under src/sandbox` checks there
// is no loop).
mod admin;
mod commands;
mod config;
mod data;
mod error;
mod faults;
mod gateway;
mod json;
mod poll_table;
mod polling;
mod presence;
mod ratelimit;
mod server;
mod state;
mod stats;
mod tls;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use config::SandboxConfig;
pub use data::{Account, AddedValue, DataSet, Event, Ticket, GENERATED_ACCOUNT};
pub use error::SandboxError;
pub use faults::Faults;
pub use json::ATS_VERSION;
pub use presence::{payload_for, token_for, PresenceStats, PRESENCE_APIKEY};
pub use stats::Stats;
pub use tls::{generate_self_signed, write_self_signed, SelfSigned, TlsPem};

use crate::money::Cents;
use crate::sync::lock;
use server::http::Request;
use server::{Action, Handler};
use state::State;

/// The request handler: the admin API under `/__sandbox/`, ATS everywhere else.
struct Service {
    state: Arc<State>,
}

impl Handler for Service {
    fn handle(&self, req: &Request, peer: SocketAddr) -> Action {
        if presence::wants(req) {
            let st = &self.state;
            return presence::handle(&st.presence, &st.data, &st.clock, req, peer);
        }
        if req.path == "/__sandbox" || req.path.starts_with("/__sandbox/") {
            return Action::Respond(admin::handle(&self.state, req, peer));
        }
        let st = &self.state;
        st.active.fetch_add(1, Ordering::SeqCst);
        let action = gateway::handle(st, req);
        st.active.fetch_sub(1, Ordering::SeqCst);
        action
    }

    fn black_hole_active(&self) -> bool {
        lock(&self.state.faults).faults.black_hole || self.state.presence.black_hole_active()
    }
}

/// The emulator.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Binds, starts the server threads and returns a handle to drive it.
    pub fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        if config.apikey.is_empty() || config.dsn.is_empty() {
            return Err(SandboxError::Config(
                "apikey and dsn must not be empty".into(),
            ));
        }
        if config.max_connections == 0 {
            return Err(SandboxError::Config("max_connections must be > 0".into()));
        }
        let tls = match &config.tls {
            Some(pem) => Some(tls::server_config(pem)?),
            None => None,
        };
        // The address in the error: `Address already in use` alone names no port.
        let listener = TcpListener::bind(config.listen).map_err(|e| {
            SandboxError::Bind(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", config.listen),
            ))
        })?;
        let addr = listener.local_addr().map_err(SandboxError::Bind)?;
        let state = Arc::new(State::new(&config));
        let handler: Arc<dyn server::Handler> = Arc::new(Service {
            state: state.clone(),
        });
        let server = server::Server::spawn(
            listener,
            tls.clone(),
            handler,
            config.max_connections,
            config.max_body_bytes,
        )
        .map_err(SandboxError::Io)?;
        log::info!(
            "ats-sandbox listening on {addr} ({} tickets, tls {})",
            config.data.ticket_count(),
            tls.is_some()
        );
        Ok(SandboxHandle {
            addr,
            tls: tls.is_some(),
            state,
            server: Some(server),
        })
    }
}

/// A running sandbox. Dropping it shuts the server down.
pub struct SandboxHandle {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    server: Option<server::Server>,
}

impl fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` (or `https://` with TLS), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if self.addr.is_ipv6() {
            format!("[{}]", self.addr.ip())
        } else {
            self.addr.ip().to_string()
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// A snapshot of the call statistics.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Replaces the active faults (`status_503_rate` is clamped to 0..=1).
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults.clamped());
    }

    /// The active faults (`fail_next` shows what is left).
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Restores the data set and the start-up faults; forgets poll tokens, rate windows
    /// and statistics.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Sets what is left on one value line (items: units x 100).
    pub fn set_balance(
        &self,
        barcode: &str,
        av_id: &str,
        balance: Cents,
    ) -> Result<(), SandboxError> {
        self.state
            .with_data(|d| d.set_balance(barcode, av_id, balance))
    }

    /// The SafeTix payload ticket `barcode` shows now (sandbox clock), if it exists.
    pub fn safetix_payload(&self, barcode: &str) -> Option<String> {
        let data = lock(&self.state.data);
        presence::payload_for(&data, barcode, self.state.clock.wall_ms())
    }

    /// Replaces the faults of the Presence route (apart from ATS's).
    pub fn set_presence_faults(&self, faults: Faults) {
        self.state.presence.set_faults(faults);
    }

    /// What the Presence route has answered.
    pub fn presence_stats(&self) -> PresenceStats {
        self.state.presence.stats()
    }

    /// Marks a ticket `VOID`.
    pub fn void_ticket(&self, barcode: &str) -> Result<(), SandboxError> {
        self.state.with_data(|d| d.void_ticket(barcode))
    }

    /// Stops accepting, closes open connections and joins the server threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.shutdown();
            log::info!("ats-sandbox on {} stopped", self.addr);
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
