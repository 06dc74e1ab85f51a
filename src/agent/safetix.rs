//! The SafeTix branch of a scan: a phone ticket's rotating payload to a barcode.
//!
//! Online: Presence `ticket/validate` (bounded by what is left of the scan's deadline,
//! on the Presence key's own budget) → the status's deny, or the seat → the seat index
//! → the record `verify_barcode` cached → that barcode is decided as usual. The token
//! is then remembered (by hash) with the barcode.
//!
//! Presence out (transport, timeout, 5xx, 429, its budget spent): the remembered
//! mapping, if any, names the barcode, and the scan is decided under the offline rules
//! with the lower SafeTix cap; it is flagged `safetix: cached` in the journal. A
//! replayed screenshot of the same phone carries the same token: offline, nothing tells
//! it from the phone, which is why the cap is its own. No mapping: `safetix_unresolved`.
//! After an outage, Presence is not asked again for [`RETRY_AFTER`], so a line of phone
//! tickets does not each wait out the deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::decide::{Decision, Reason, Source};
use crate::presence::resolve::{judge, SafetixDeny};
use crate::presence::{PresenceClient, PresenceError};
use crate::redact::mask_barcode;
use crate::scan::SafeTix;
use crate::store::Store;

use super::Evaluation;

/// How long an outage keeps Presence from being asked.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

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

/// What the SafeTix branch decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Decide this barcode.
    Barcode {
        /// The ticket's normalised barcode.
        barcode: String,
        /// How it was found.
        via: Via,
    },
    /// Deny now, with this reason; `offline` when no Presence answer was had.
    Deny {
        /// Why.
        reason: Reason,
        /// Decided without Presence.
        offline: bool,
    },
}

/// A SafeTix deny as the loop's evaluation (no barcode, no record); `offline` when no
/// Presence answer was had.
pub fn denied(reason: Reason, offline: bool) -> Evaluation {
    let source = if offline {
        Source::Offline
    } else {
        Source::Live
    };
    Evaluation {
        barcode: String::new(),
        decision: Decision::deny(reason, source, offline),
        record: None,
        safetix: None,
    }
}

/// Resolves SafeTix scans for the agent loop.
pub struct Resolver {
    client: Arc<PresenceClient>,
    store: Store,
    clock: SharedClock,
    down_until: Option<Instant>,
}

impl Resolver {
    /// A resolver over `client`, the agent's store and clock.
    pub fn new(client: Arc<PresenceClient>, store: Store, clock: SharedClock) -> Resolver {
        Resolver {
            client,
            store,
            clock,
            down_until: None,
        }
    }

    /// The resolver `[presence]` asks for, if any: `url = "sandbox"` follows the ATS
    /// URL. A client that cannot be built (an unreadable CA file) is logged and leaves
    /// SafeTix unresolved, as without the section.
    pub fn from_config(
        config: &crate::config::Config,
        ats: &crate::ats::AtsClient,
        store: &Store,
        clock: &SharedClock,
    ) -> Option<Resolver> {
        let mut cfg = config.presence.clone()?;
        if cfg.follows_ats() {
            cfg.base_url = ats.config().base_url.clone();
        }
        match PresenceClient::new(cfg, clock.clone()) {
            Ok(c) => Some(Resolver::new(Arc::new(c), store.clone(), clock.clone())),
            Err(e) => {
                log::error!("presence client not built, phone tickets stay unresolved: {e}");
                None
            }
        }
    }

    /// The Presence client.
    pub fn client(&self) -> &Arc<PresenceClient> {
        &self.client
    }

    /// [`Resolver::resolve`] within `budget` from now, which is reduced by the time it
    /// took (what is left is the ATS lookup's).
    pub fn resolve_within(
        &mut self,
        scan: &SafeTix,
        scan_time_ms: u64,
        budget: &mut Duration,
    ) -> Resolved {
        let started = self.clock.now();
        let resolved = self.resolve(scan, scan_time_ms, started + *budget);
        *budget = budget.saturating_sub(self.clock.now().saturating_duration_since(started));
        resolved
    }

    /// Resolves `scan` (read at `scan_time_ms`), answering by `deadline`.
    pub fn resolve(&mut self, scan: &SafeTix, scan_time_ms: u64, deadline: Instant) -> Resolved {
        let now = self.clock.now();
        let skip = self.down_until.is_some_and(|t| now < t);
        if skip || deadline <= now {
            return self.by_mapping(scan, "presence skipped (recent outage or no time left)");
        }
        match self
            .client
            .validate(&scan.payload(), scan_time_ms, deadline)
        {
            Ok(answer) => {
                self.down_until = None;
                let key = match judge(&answer, self.client.config()) {
                    Ok(key) => key,
                    Err(deny) => {
                        if deny != SafetixDeny::SeatUnknown {
                            // Presence says the ticket is not good now: the mapping
                            // must not approve it offline later.
                            if let Err(e) = self.store.forget_token(scan.token()) {
                                log::warn!("safetix mapping not removed: {e}");
                            }
                        }
                        log::info!(
                            "safetix {}: presence {} → {}",
                            scan.masked_token(),
                            answer.status,
                            deny
                        );
                        return Resolved::Deny {
                            reason: deny.into(),
                            offline: false,
                        };
                    }
                };
                match self.store.record_by_seat(&key) {
                    Ok(Some(record)) => {
                        if let Err(e) = self.store.put_token_mapping(
                            scan.token(),
                            &record.barcode,
                            self.clock.wall_ms(),
                        ) {
                            log::warn!("safetix mapping not kept: {e}");
                        }
                        log::debug!(
                            "safetix {} is {} ({})",
                            scan.masked_token(),
                            mask_barcode(&record.barcode),
                            key.event
                        );
                        Resolved::Barcode {
                            barcode: record.barcode,
                            via: Via::Live,
                        }
                    }
                    Ok(None) => {
                        log::info!(
                            "safetix {}: seat {} of {} is not in the seat index",
                            scan.masked_token(),
                            key.place,
                            key.event
                        );
                        Resolved::Deny {
                            reason: SafetixDeny::SeatUnknown.into(),
                            offline: false,
                        }
                    }
                    Err(e) => {
                        log::error!("seat index read failed, denying: {e}");
                        Resolved::Deny {
                            reason: Reason::StoreError,
                            offline: false,
                        }
                    }
                }
            }
            Err(e) => {
                if e.is_outage() || matches!(e, PresenceError::RateBudget { .. }) {
                    if e.is_outage() {
                        self.down_until = Some(self.clock.now() + RETRY_AFTER);
                    }
                    log::warn!("safetix {}: {e}", scan.masked_token());
                } else {
                    log::error!("safetix {}: {e}", scan.masked_token());
                }
                self.by_mapping(scan, "presence gave no answer")
            }
        }
    }

    fn by_mapping(&self, scan: &SafeTix, why: &str) -> Resolved {
        match self.store.token_mapping(scan.token()) {
            Ok(Some(m)) => {
                log::info!(
                    "safetix {}: {why}; deciding {} offline from the cached mapping",
                    scan.masked_token(),
                    mask_barcode(&m.barcode)
                );
                Resolved::Barcode {
                    barcode: m.barcode,
                    via: Via::Cached,
                }
            }
            Ok(None) => Resolved::Deny {
                reason: Reason::SafetixUnresolved,
                offline: true,
            },
            Err(e) => {
                log::error!("safetix mapping read failed, denying: {e}");
                Resolved::Deny {
                    reason: Reason::StoreError,
                    offline: true,
                }
            }
        }
    }
}
