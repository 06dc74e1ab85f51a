//! [`Evaluation`]: a decision before it is committed, and [`Via`], how a phone ticket's
//! barcode was found (their own file, so `safetix.rs` builds one without importing the
//! loop).

use crate::decide::Decision;
use crate::ticket::TicketRecord;

/// A decision before it is committed: what `lookup` shows and `handle` journals.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The normalised barcode ("" when there is none).
    pub barcode: String,
    /// The verdict.
    pub decision: Decision,
    /// The record it was judged on.
    pub record: Option<TicketRecord>,
    /// For a phone ticket resolved to a barcode: how (journaled as `safetix`).
    pub safetix: Option<Via>,
}

/// How a SafeTix scan got its barcode (the journal's `safetix` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Presence answered for this scan.
    Live,
    /// Presence was out; the token's mapping from an earlier online scan was used
    /// (offline rules, the SafeTix cap).
    Cached,
}

impl Via {
    /// `live` or `cached`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Live => "live",
            Via::Cached => "cached",
        }
    }
}
