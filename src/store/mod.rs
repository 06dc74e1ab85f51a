//! The durable store: the only code that touches sled.
//!
//! One sled database per terminal, in a directory created with mode 0700 (it holds
//! full barcodes). Seven trees:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `cache` | barcode | the newest [`TicketRecord`] fetched from ATS |
//! | `ledger` | barcode | this terminal's [`TicketLedger`] for the ticket (see [`ledger`]) |
//! | `journal` | sequence number (u64, big endian) | one [`JournalEntry`] per decision or void |
//! | `meta` | name | schema version, the decision sequence, the offline window and usage |
//! | `prefetch` | event name (lower case) | where that event's listing pass stands ([`PrefetchCursor`]) |
//! | `seats`, `safetix` | seat; hash of a SafeTix token | the seat index and token mappings of phone tickets ([`seats`]) |
//!
//! Every value carries a format byte before its JSON (`codec.rs`; cached records use a
//! compact positional JSON, `record.rs`). The schema version
//! is checked on open: a database from a newer agent is refused with
//! [`StoreError::FutureSchema`] rather than misread.
//!
//! Durability: every write to `journal`, `ledger` and `meta` is one record of the
//! store's redo log (`wal.rs`): appended and `fdatasync`ed (one device wait), then
//! applied to sled, which writes it out with its next buffer; [`Store::open`] re-applies the
//! records sled lost. A decision (journal entry, the ticket's ledger, the offline usage)
//! is one record, so when [`Store::commit_decision`] returns `Ok` it survives a crash or
//! power cut and the POS may be told. [`Store::flush`] makes sled itself durable (sled's
//! flush alone uses `sync_file_range`, which does not survive a power cut). Cache and
//! `prefetch` writes are not logged (a lost cache entry only costs a lookup): they are
//! durable after the next [`Store::sync_cache`] (prefetch calls it after every page,
//! without the redo log's lock) or checkpoint.
//!
//! No sled type appears in this module's public API.
//!
//! Each file imports only its siblings; this file declares them and re-exports their
//! items (the [`Store`] handle itself is in `db.rs`), so `crate::store::Store` and
//! friends keep their paths.

pub mod cache;
mod cachedb;
mod codec;
mod db;
pub mod error;
pub mod export;
pub mod headroom;
pub mod identity;
pub mod journal;
pub mod ledger;
mod migrate;
mod record;
pub mod seats;
pub mod snapshot;
#[cfg(test)]
mod tests;
mod wal;

pub use crate::date::rfc3339_ms;
pub use crate::decide::{OfflineUsage, TicketLedger};
pub use crate::ticket::TicketRecord;
pub use cache::{CacheStats, PrefetchCursor};
pub use db::{Store, StoreOptions, SCHEMA_VERSION};
pub use error::{StoreError, VoidError};
pub use export::{export, export_with, ExportOptions, Format};
pub use journal::{EntryKind, JournalEntry, JournalIter, MoneyLine, NewDecision, Voided};
pub use snapshot::Snapshot;
