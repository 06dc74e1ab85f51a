//! What the sandbox needs to start: [`SandboxConfig`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::data::DataSet;
use super::faults::Faults;
use super::tls::TlsPem;
use crate::clock::{self, SharedClock};

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
