//! Phone tickets (SafeTix) through Ticketmaster's Presence API (docs/ats-wire.md
//! section 7, issue 17).
//!
//! A SafeTix rotating payload carries no Archtics barcode. Presence `ticket/validate`
//! says whether the ticket is valid and which seat it is (`place` + `eventId`); the
//! store's seat index ([`crate::store::seats`]) turns that seat into the barcode whose
//! record `verify_barcode` cached, and the usual `decide` judges it. The payload's token
//! part is stable per ticket, so a resolved token is remembered: a later scan while
//! Presence is out may be decided offline from that mapping, under its own, lower cap
//! ([`PresenceConfig::offline_cap_cents`]).
//!
//! - [`client`]: the deadline-bounded, budgeted HTTP call;
//! - [`wire`]: every field of the request and the answer, in one file;
//! - [`resolve`]: the pure rules from an answer to a seat or a deny reason;
//! - [`error`], [`budget`], [`config`].
//!
//! The payload and the token are never logged: logs carry the token's masked form at
//! most.

pub mod budget;
pub mod client;
pub mod config;
pub mod error;
pub mod resolve;
pub mod wire;

pub use budget::PresenceBudget;
pub use client::PresenceClient;
pub use config::{EnteredRule, PresenceConfig, PresenceEndpoint};
pub use error::PresenceError;
pub use resolve::{judge, SafetixDeny, SeatKey};
pub use wire::{Device, Place, Status, TicketRef, Validation};
