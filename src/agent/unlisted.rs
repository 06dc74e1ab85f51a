//! `not_listed` (`cache.unlisted = "deny"`, docs/agent.md "Not listed"): a cache miss
//! that the served events' listings already answer, decided without an ATS call.
//!
//! The event listing (`get_av_barcodes` by event) names every ticket of the event that
//! carries value, and a completed pass rewrites every ticket it names. So once every
//! served event's last complete pass is in the cache (this terminal's own pass, or the
//! venue's copy caught up with it) and started within `cache.fresh_ms`, a barcode that
//! no cached record holds has no value to spend, or had it loaded since that pass
//! started (the next refresh brings it). Looking it up would cost two of the key's calls
//! for every such scan: 3% of scans at a stadium's stands spend the key's day within
//! hours (BENCHMARKS.md section 10).

use super::Agent;
use crate::config::Unlisted;

impl Agent {
    /// True when a barcode with no cached record is to be denied `not_listed`: the
    /// policy says so, the terminal serves named events, and each one's listing is held
    /// complete, from a pass that started within `cache.fresh_ms` of `now_ms`. Any
    /// doubt (a store read failing, no pass yet, a stale one) means a lookup, as before.
    pub(super) fn listed_out(&self, now_ms: u64) -> bool {
        // A wrong clock makes every pass's age meaningless (as for cached records).
        if self.config.cache.unlisted != Unlisted::Deny
            || self.config.events.is_empty()
            || !self.clock_state().is_trusted()
        {
            return false;
        }
        let fresh_ms = self.config.cache.fresh.as_millis() as u64;
        self.config.events.iter().all(|event| {
            matches!(
                self.store.listing_complete_since(event),
                Ok(Some(started)) if now_ms.saturating_sub(started) <= fresh_ms
            )
        })
    }
}
