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
use crate::decide::{Decision, Policy, Reason, ScanKind, Source};
use crate::presence::resolve::{judge, offline_policy, SafetixDeny};
use crate::presence::{PresenceClient, PresenceError};
use crate::redact::mask_barcode;
use crate::scan::{SafeTix, ScanInput};
use crate::store::seats::Seat;
use crate::store::Store;

use super::evaluation::Evaluation;
pub use super::evaluation::Via;

/// How long an outage keeps Presence from being asked.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

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

/// What the loop decides `input` as: a barcode (for a phone ticket, the one Presence and
/// the seat index found, and how), noise, an unresolved phone ticket (no `resolver`), or
/// a deny already (`Err`). `budget` loses the time the resolution took.
pub fn scan_kind(
    resolver: Option<&mut Resolver>,
    input: &ScanInput,
    scan_time_ms: u64,
    budget: &mut Duration,
) -> Result<(ScanKind, Option<Via>), Decision> {
    let scan = match (input, resolver) {
        (ScanInput::Barcode(b), _) => return Ok((ScanKind::Barcode(b.as_str().into()), None)),
        (ScanInput::Unreadable(_), _) => return Ok((ScanKind::Unreadable, None)),
        (ScanInput::SafeTix(_), None) => return Ok((ScanKind::SafeTix, None)),
        (ScanInput::SafeTix(s), Some(r)) => r.resolve_within(s, scan_time_ms, budget),
    };
    match scan {
        Resolved::Barcode { barcode, via } => Ok((ScanKind::Barcode(barcode), Some(via))),
        Resolved::Deny { reason, offline } => {
            let source = if offline {
                Source::Offline
            } else {
                Source::Live
            };
            Err(Decision::deny(reason, source, offline))
        }
    }
}

/// The evaluation of a scan denied before it named a barcode.
pub fn unresolved(decision: Decision) -> Evaluation {
    Evaluation {
        barcode: String::new(),
        decision,
        record: None,
        safetix: None,
    }
}

/// The policy for a scan whose barcode came `via` a remembered mapping: `policy` with
/// the SafeTix offline cap ([`offline_policy`]); `policy` itself for any other scan.
pub fn policy(resolver: Option<&Resolver>, via: Option<Via>, policy: &Policy) -> Policy {
    match (resolver, via) {
        (Some(r), Some(Via::Cached)) => offline_policy(policy, r.client.config().offline_cap_cents),
        _ => *policy,
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
                let seat = Seat {
                    event: &key.event,
                    section: &key.place.section,
                    row: &key.place.row,
                    seat: &key.place.seat,
                };
                match self.store.record_by_seat(&seat) {
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
