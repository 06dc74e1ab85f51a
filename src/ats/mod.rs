//! The ATS (Archtics Transaction Services) client.
//!
//! [`AtsClient`] speaks the envelope of `docs/ats-wire.md`: `POST
//! {base}/{product}/{resource}?dsn={dsn}` with the key in the `apikey` header, the
//! 202 polling cycle with a per-call cookie jar, HTTP status and `command1.result`
//! mapping to [`AtsError`], a client-side rate budget per key, TLS with the system trust store
//! or one configured CA, and typed commands (`ping`, `verify_barcode`,
//! `get_av_barcodes`, event listings) plus [`AtsClient::call_raw`].
//!
//! Files: `config` (settings, validation), `client` (the call and the commands),
//! `http` (one exchange over ureq), `wire` (every field mapping), `cookies` (the
//! per-call jar), `rate` (the budget), `shared_budget` (the
//! venue-wide budget of the key), `poll` (the back-off), `tls` (trusted roots),
//! `error` (the error type).

mod calls;
mod client;
mod config;
mod cookies;
mod error;
pub(crate) mod http;
mod poll;
mod rate;
pub mod shared_budget;
pub(crate) mod tls;
pub mod wire;

pub use calls::CallCounts;
pub use client::{AtsClient, EventPage, MAX_EVENT_CHUNKS, MAX_EVENT_ROWS};
pub use config::{is_loopback_host, AtsConfig, Endpoint};
pub use cookies::CallJar;
pub use error::{AtsError, Phase, RateWindow};
pub use poll::Backoff;
pub use rate::{RateBudget, ServerRate};
pub use shared_budget::{mark_thread_background, SharedBudget};
/// The TLS roots of an endpoint (the Presence client shares them).
pub use tls::tls_config;
