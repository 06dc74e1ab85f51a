//! The ledger of redemptions, per ticket.
//!
//! # Model
//!
//! For each barcode the store keeps one [`TicketLedger`] (defined, with its rules, in
//! `crate::decide::ledger`, so that `decide` and its property tests use exactly the
//! bookkeeping persisted here):
//!
//! - per `av_id`: `unreflected` — money (cents) or item units this terminal handed over
//!   that ATS has not yet been seen to subtract; `baseline` — the ATS balance seen when
//!   those amounts were recorded; `redeemed_total` — everything redeemed here, net of
//!   voids;
//! - `offline_cents`: money approved offline on this ticket in the current offline
//!   window (stored with the window number; a ledger from an earlier window reads as
//!   zero, which is how [`Store::reset_offline_window`] resets every ticket at once);
//! - `seen_at_ms`: the newest ATS answer applied.
//!
//! Available on a line = `min(balance, baseline) - unreflected`, never negative.
//!
//! [`Store::reconcile`] applies a newer ATS answer: where a balance is lower than the
//! baseline, the drop counts as reflected — `unreflected -= min(unreflected, drop)` —
//! and the baseline moves to the new balance (also upwards, for a reload). Committing a
//! decision reconciles with the decision's evidence first, in the same redo-log record.
//!
//! A void gives back only what is still unreflected; what ATS already subtracted is
//! reported in [`super::Voided`] as needing an upstream refund (the void entry in
//! the journal is what reconciliation uploads).

use serde::{Deserialize, Serialize};

use super::codec;
use super::db::Store;
use super::error::db_err;
use super::error::StoreError;
use super::wal::{TreeId, Writes};
use crate::decide::TicketLedger;
use crate::ticket::TicketRecord;

/// A ticket ledger as stored: the ledger and the offline window it was written in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StoredLedger {
    pub(crate) window: u64,
    pub(crate) ledger: TicketLedger,
}

impl StoredLedger {
    /// The ledger as seen from offline window `window`.
    pub(crate) fn current(mut self, window: u64) -> TicketLedger {
        if self.window != window {
            self.ledger.offline_cents = 0;
        }
        self.ledger
    }
}

pub(crate) fn decode_ledger(
    barcode: &str,
    bytes: Option<&[u8]>,
    window: u64,
) -> Result<TicketLedger, StoreError> {
    match bytes {
        None => Ok(TicketLedger::default()),
        Some(b) => Ok(codec::decode::<StoredLedger>(&ledger_what(barcode), b)?.current(window)),
    }
}

pub(crate) fn encode_ledger(
    barcode: &str,
    ledger: &TicketLedger,
    window: u64,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(
        &ledger_what(barcode),
        &StoredLedger {
            window,
            ledger: ledger.clone(),
        },
    )
}

fn ledger_what(barcode: &str) -> String {
    format!("ledger/{}", crate::redact::mask_barcode(barcode))
}

impl Store {
    /// This terminal's ledger for `barcode` (empty when it never redeemed anything).
    pub fn ledger(&self, barcode: &str) -> Result<TicketLedger, StoreError> {
        let window = self.offline_window()?;
        let bytes = self.ledger.get(barcode.as_bytes()).map_err(db_err)?;
        decode_ledger(barcode, bytes.as_deref(), window)
    }

    /// Applies a newer ATS answer to the ticket's ledger (see the module docs), as a
    /// record of the redo log. Returns whether a stored ledger changed; tickets without
    /// a ledger are left alone.
    pub fn reconcile(&self, record: &TicketRecord) -> Result<bool, StoreError> {
        let key = record.barcode.as_bytes();
        let mut wal = self.lock_wal();
        let Some(old) = self.ledger.get(key).map_err(db_err)? else {
            return Ok(false);
        };
        let stored: StoredLedger = codec::decode(&ledger_what(&record.barcode), &old)?;
        let mut ledger = stored.ledger.clone();
        ledger.reconcile(record);
        if ledger == stored.ledger {
            return Ok(false);
        }
        // Keep the window the ledger was written in: reconciling must not revive or
        // reset its offline amount.
        let mut writes = Writes::default();
        writes.set(
            TreeId::Ledger,
            key,
            encode_ledger(&record.barcode, &ledger, stored.window)?,
        );
        self.log_and_apply(&mut wal, writes)?;
        Ok(true)
    }
}
