//! The durable store: the only code that touches sled and redb.
//!
//! One directory per terminal, created with mode 0700 (it holds full barcodes), with
//! two databases. sled (the file `db`) holds what must never be lost, three trees:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `ledger` | barcode | this terminal's [`TicketLedger`] for the ticket (see [`ledger`]) |
//! | `journal` | sequence number (u64, big endian) | one [`JournalEntry`] per decision or void |
//! | `meta` | name | schema version, the decision sequence, the offline window and usage |
//!
//! The cache, disposable and large (100,000 tickets at a big event, rewritten by every
//! listing pass), is a redb database of its own (`cache.redb`, `cachedb.rs`; schema 3:
//! a store of schema 2 or 1 has it in sled and is moved at open, `migrate.rs`):
//!
//! | table | key | value |
//! |---|---|---|
//! | `cache` | barcode | the newest [`TicketRecord`] fetched from ATS |
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
//! flush alone uses `sync_file_range`, which does not survive a power cut), and the
//! cache. Cache writes (records, cursors, seats, tokens) are not logged (a lost cache
//! entry only costs a lookup): each is a redb commit, visible at once and durable after
//! the next [`Store::sync_cache`] (prefetch calls it after every page; it takes neither
//! the redo log's lock nor anything of sled's) or [`Store::flush`]; redb keeps its
//! commits in order, so a listing cursor never survives a crash without the pages
//! before it.
//!
//! No sled or redb type appears in this module's public API.
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
