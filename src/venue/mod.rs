//! Venue mode: one redemption ledger for every stand, on PostgreSQL (issue 12,
//! DESIGN.md section 7, docs/venue.md).
//!
//! Without `[venue]` nothing here runs and the agent is the single-terminal agent. With
//! it, a ticket's ledger comes from the venue database instead of this terminal's store;
//! the money rules stay in `decide`, unchanged ([`ledger::ticket_ledger`] only changes
//! where the ledger comes from).
//!
//! # One scan, in order
//!
//! 1. The loop gathers its evidence (ATS live answer or cache) as always. No venue
//!    transaction is open during an ATS call.
//! 2. [`VenueHandle::begin`]: the worker thread (`worker.rs`, which owns the connection)
//!    first uploads what is pending, then opens one short READ COMMITTED transaction,
//!    creates the ticket's lines from the record if the venue lacks them, and locks them
//!    (`SELECT ... FOR UPDATE`). The loop waits with `recv_timeout` (`venue.timeout_ms`).
//! 3. The loop calls `decide` on the venue ledger and journals the decision in its own
//!    store (redo log, `fdatasync`): the decision now has its id and is durable locally.
//! 4. [`VenueTxn::commit`]: the worker inserts the decision keyed by that id, updates the
//!    lines and commits; the loop waits with `recv_timeout` again.
//! 5. Only then is the POS told, with `"venue":"committed"`.
//!
//! When step 2 does not answer in time (database away, slow, hung, failing over), the
//! scan is decided on the local ledger under the offline caps, journaled, and the POS is
//! told `"venue":"pending"`. When step 4 does not answer in time, or fails, the
//! commit's outcome may be unknown (in doubt): an approval is then voided locally
//! (reason `venue_in_doubt`) and the scan decided again on the local ledger under the
//! offline caps; the POS hears that second decision, `"venue":"pending"`. A deny is told
//! as it is (it hands over nothing).
//!
//! # Why the local journal is written before the venue commit
//!
//! Every venue row is a copy of a local journal entry, under the entry's id; the replay
//! uploads every local entry, in order, with `INSERT ... ON CONFLICT (id) DO NOTHING`.
//! So the venue ledger converges to exactly the union of the stands' journals: an
//! entry reaches it once whatever happened to the commit that first carried it, and
//! nothing reaches it that is not in some journal.
//!
//! The other order (commit in the venue, then journal) would break that: a SIGKILL or
//! power cut between the two leaves a venue row no journal knows, and the restarted
//! terminal, whose decision sequence never advanced, hands the same id to its next
//! decision, which the venue then drops as a duplicate. The debit would be counted for
//! a decision the POS never heard of, and a real one lost.
//!
//! With the journal first, the cases of a crash (SIGKILL, power cut) are:
//!
//! - before the journal write: nothing was recorded anywhere; the open transaction dies
//!   with the connection (the server rolls back, releasing the row locks; a hung
//!   terminal is cut off by `idle_in_transaction_session_timeout`). The POS heard
//!   nothing; the scan is simply not done.
//! - after the journal write, before the venue commit: the journal holds the decision,
//!   the venue does not. The restarted agent's replay uploads it (at start, before
//!   serving). The POS was never told, so the customer was not served on it: the ticket
//!   is debited for value it did not get, which is the same as a single terminal that
//!   crashes between its journal write and its POS signal, errs against the customer and
//!   never against the venue, and shows in the export for a refund (`journal export`,
//!   the decision id).
//! - after the venue commit, before the POS signal: both hold it; the replay's insert is
//!   a no-op. Same as above for the customer.
//!
//! An in-doubt commit (the answer did not come in time) is never counted twice: the
//! original entry, its local void and the second decision are all journal entries, so
//! the replay uploads each once, by id. If the original had committed, its void is the
//! recorded reversal (the POS was told the second decision); if it had not, the venue
//! gets the original and its void, which cancel. Gift-card processors reverse a
//! redemption whose outcome is unknown for the same reason; Stripe Terminal's offline
//! payments forwarded 2-4 times on reconnect (stripe-terminal-android #747) because the
//! upload was not keyed by a durable id.
//!
//! # Asynchronous commits
//!
//! By default (`venue.synchronous_commit = "off"`) the server acknowledges step 4's
//! `COMMIT` before flushing it, and a server crash loses its last commits. That is the
//! failover case on one server, and is settled the same way: the journal holds every
//! one of them, and the replay watermark only moves past a commit once the server's
//! flushed WAL position covers it (`watermark.rs`), so a new connection replays them
//! by id. Meanwhile another stand may spend that value again: an overdraft, recorded.
//!
//! # Overdrafts
//!
//! A decision uploaded late (made while the venue was away) may take more than a line
//! has left: two stands approved the same ticket offline. It is recorded anyway, with
//! what it took beyond the loaded value in `overdraft_cents` / `overdraft_items`
//! (`venue export` shows them): never dropped, since the POS already handed it over.
//! The offline caps bound it: at most `offline.per_ticket_cents` per stand a fan can
//! reach while the venue is away.

#[cfg(feature = "venue")]
pub mod background;
#[cfg(feature = "venue")]
mod beats;
#[cfg(feature = "venue")]
pub mod budget;
#[cfg(feature = "venue")]
mod claims;
#[cfg(feature = "venue")]
pub mod cli;
pub mod config;
#[cfg(feature = "venue")]
pub mod connect;
#[cfg(feature = "venue")]
pub mod dashboard;
#[cfg(feature = "venue")]
pub mod db;
pub mod error;
#[cfg(feature = "venue")]
pub mod heartbeat;
#[cfg(feature = "venue")]
pub mod lease;
pub mod ledger;
#[cfg(feature = "venue")]
pub mod prefetch;
#[cfg(feature = "venue")]
mod replay;
#[cfg(feature = "venue")]
pub mod schema;
#[cfg(feature = "venue")]
pub mod tickets;
#[cfg(feature = "venue")]
mod txn;
#[cfg(feature = "venue")]
mod watermark;
#[cfg(feature = "venue")]
pub mod worker;

#[cfg(feature = "venue")]
pub use cli::{export_now, migrate_now};
pub use config::{RawVenue, VenueConfigError, VenueSettings};
pub use error::VenueError;
#[cfg(feature = "venue")]
pub use txn::{Begin, CommitOutcome, VenueTxn};
#[cfg(feature = "venue")]
pub use watermark::pending_in_store;
#[cfg(feature = "venue")]
pub use worker::{Report, VenueHandle, VenueStatus};

/// The reason of the local void that reverses an approval whose venue commit is in
/// doubt.
pub const IN_DOUBT_VOID_REASON: &str = "venue_in_doubt";

/// What the POS line says about the venue (`"venue":"committed"` / `"pending"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueMark {
    /// Decided on the venue ledger and committed there.
    Committed,
    /// Decided without the venue (or its commit is in doubt): journaled, to upload.
    Pending,
}

impl VenueMark {
    /// `committed` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            VenueMark::Committed => "committed",
            VenueMark::Pending => "pending",
        }
    }
}
