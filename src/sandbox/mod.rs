//! ats-sandbox: an emulator of Ticketmaster's Archtics Transaction Services (ATS).
//!
//! It serves the transport of `spec/ats-wire.md` (API key, DSN, product and resource,
//! 401/404/429/503, rate limits with their headers, the 202 cookie cycle, `No data for
//! token`), the seed's sample commands and the two modeled commands (`verify_barcode`,
//! `get_av_barcodes`) over a [`DataSet`] of named "magic" barcodes. An admin API under
//! `/__sandbox/` (loopback peers only) switches [`Faults`], edits balances, resets state
//! and reports [`Stats`]. See `docs/sandbox.md`.
//!
//! The HTTP/1.1 server is our own (std `TcpListener`, a thread per connection, `httparse`,
//! optional rustls), so faults can act below HTTP: dropped connections, black holes,
//! truncated bodies. Every wait and every timestamp goes through [`SharedClock`].
//!
//! ```no_run
//! use concession_agent::sandbox::{Sandbox, SandboxConfig};
//! let sb = Sandbox::start(SandboxConfig::default()).unwrap();
//! println!("{}", sb.base_url());
//! sb.shutdown();
//! ```

mod admin;
mod commands;
mod data;
mod faults;
mod gateway;
mod polling;
mod presence;
mod ratelimit;
mod server;
mod state;
mod stats;
mod tls;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

pub use data::{Account, AddedValue, DataSet, Event, Ticket, GENERATED_ACCOUNT};
pub use faults::Faults;
pub use presence::{payload_for, token_for, PresenceStats, PRESENCE_APIKEY};
pub use stats::Stats;
pub use tls::{generate_self_signed, write_self_signed, SelfSigned, TlsPem};

use crate::clock::{self, SharedClock};
use crate::money::Cents;
use state::State;

/// The ATS version string the sandbox reports in `header.ats_version`.
pub const ATS_VERSION: &str = "4.23.3";

/// Everything the sandbox needs to start.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The one valid API key.
    pub apikey: String,
    /// The DSN that key may use.
    pub dsn: String,
    /// Products served (`sth-customer`, `sth-buy`).
    pub products: Vec<String>,
    /// The resource served (`ticketing_services.aspx`).
    pub resource: String,
    /// Events, accounts and tickets.
    pub data: DataSet,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsPem>,
    /// Calls allowed per minute (per key).
    pub rate_per_minute: u32,
    /// Calls allowed per day (per key).
    pub rate_per_day: u32,
    /// Time source for the 202 cycle, rate windows, latency faults and dates.
    pub clock: SharedClock,
    /// Commands that take longer than this answer through a 202 cycle.
    pub sync_threshold: Duration,
    /// Most simultaneous connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Offset from UTC used to decide which day is "today" (minutes).
    pub utc_offset_minutes: i32,
    /// Faults active from the start.
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            apikey: "sandbox-key".into(),
            dsn: "apigee".into(),
            products: vec!["sth-customer".into(), "sth-buy".into()],
            resource: "ticketing_services.aspx".into(),
            data: DataSet::builtin(),
            tls: None,
            rate_per_minute: 80,
            rate_per_day: 5000,
            clock: clock::system(),
            sync_threshold: Duration::from_millis(1000),
            max_connections: 64,
            max_body_bytes: 1 << 20,
            utc_offset_minutes: 0,
            faults: Faults::default(),
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("listen", &self.listen)
            .field("apikey", &"***")
            .field("dsn", &self.dsn)
            .field("products", &self.products)
            .field("resource", &self.resource)
            .field("tickets", &self.data.ticket_count())
            .field("tls", &self.tls.is_some())
            .field("rate_per_minute", &self.rate_per_minute)
            .field("rate_per_day", &self.rate_per_day)
            .field("sync_threshold", &self.sync_threshold)
            .finish_non_exhaustive()
    }
}

/// What went wrong starting or driving the sandbox.
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// Could not bind the listening socket.
    Bind(std::io::Error),
    /// Other I/O (reading files, spawning threads).
    Io(std::io::Error),
    /// The data set is invalid.
    Data(String),
    /// The certificate or key is invalid.
    Tls(String),
    /// No such barcode or value line.
    NotFound(String),
    /// A setting is out of range.
    Config(String),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Bind(e) => write!(f, "bind: {e}"),
            SandboxError::Io(e) => write!(f, "io: {e}"),
            SandboxError::Data(m) => write!(f, "data set: {m}"),
            SandboxError::Tls(m) => write!(f, "tls: {m}"),
            SandboxError::NotFound(m) => write!(f, "not found: {m}"),
            SandboxError::Config(m) => write!(f, "config: {m}"),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Bind(e) | SandboxError::Io(e) => Some(e),
            _ => None,
        }
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
        let handler: Arc<dyn server::Handler> = Arc::new(gateway::Service::new(state.clone()));
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

    /// True when serving HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
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
        let data = state::lock(&self.state.data);
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
