//! concession-agent: redeems Ticketmaster Archtics loaded value at concession stands.
//!
//! Data flows `scan` → `agent` loop → `decide` (pure) → `store` journal (durable) →
//! `signal` (POS). Slow work (`ats` calls) runs on worker threads. ARCHITECTURE.md in
//! the repository lists the parts, what each may import and where a change goes;
//! docs/agent.md has the money rules.

pub mod agent;
pub mod app;
pub mod ats;
pub mod board;
pub mod clock;
pub mod commands;
pub mod config;
pub mod date;
pub mod decide;
pub mod hardening;
pub mod metrics;
pub mod money;
pub mod pos;
pub mod presence;
pub mod redact;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod scan;
pub mod signal;
pub mod status;
pub mod store;
pub(crate) mod sync;
pub mod ticket;
pub mod venue;
