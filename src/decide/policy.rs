//! The knobs of the money rules: offline caps and cache ages.
//!
//! The rules themselves live in `rules.rs` and are not configurable; only these limits
//! are. [`Policy::default`] is the shipped configuration.

use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// The default [`Policy::max_transaction_cents`]: $100.00.
pub const DEFAULT_MAX_TRANSACTION_CENTS: Cents = 10_000;

/// Limits that apply while a scan is decided offline (no fresh ATS answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfflineCaps {
    /// Most money one offline approval may hand over.
    pub per_transaction_cents: Cents,
    /// Most money one ticket may be handed offline in the current offline window,
    /// this approval included.
    pub per_ticket_cents: Cents,
    /// Most money the whole terminal may hand over offline in the current window.
    pub total_cents: Cents,
    /// Most offline approvals (money or items) the terminal may make in the window.
    pub total_count: u64,
    /// A cached record older than this is not trusted offline (`stale_cache`).
    pub max_cache_age_ms: u64,
}

impl Default for OfflineCaps {
    fn default() -> Self {
        OfflineCaps {
            per_transaction_cents: 2_500,
            per_ticket_cents: 2_500,
            total_cents: 50_000,
            total_count: 50,
            max_cache_age_ms: 6 * 60 * 60 * 1000,
        }
    }
}

/// Everything configurable about the decision rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Offline limits.
    pub offline: OfflineCaps,
    /// When an offline approval would exceed a money cap: `true` approves the money
    /// that still fits under every cap (reason `partial`), `false` denies the whole scan
    /// (`offline_limit`). Either way no cap is ever exceeded. Default `true`.
    pub offline_partial: bool,
    /// While online, a cached record at most this old may be used as if it were a live
    /// answer (source `cache`, no offline caps). Older cached evidence while online is
    /// judged under the offline rules. Default 30 s; 0 disables online cache use.
    pub online_cache_max_age_ms: u64,
    /// Most money one approval may hand over, online or offline: a broken or hostile
    /// answer (a balance of a million) cannot empty a till in one scan. More asked, or
    /// more available on a bare scan, is approved up to this (`partial`). Default
    /// $100.00.
    pub max_transaction_cents: Cents,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            offline: OfflineCaps::default(),
            offline_partial: true,
            online_cache_max_age_ms: 30_000,
            max_transaction_cents: DEFAULT_MAX_TRANSACTION_CENTS,
        }
    }
}
