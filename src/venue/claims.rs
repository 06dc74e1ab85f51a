//! The decision worker's claims of the key's ATS budget (issue 13 item 1; the rules
//! are in `budget.rs` and `ats::shared_budget`): one short statement, after every job
//! and on the idle tick, never queued behind a decision. Apart from `budget.rs` so that
//! the worker imports the budget's link and the budget imports nothing of the worker.

use std::sync::atomic::Ordering;

use postgres::SimpleQueryMessage;

use super::budget::{quote, BudgetLink};
use super::error::VenueError;
use super::worker::{not_connected, Worker};
use crate::ats::shared_budget::{Claim, Grant, LEASE_LIFETIME};

impl Worker {
    /// Claims an allowance when one is due (after every job and on the idle tick).
    pub(super) fn budget_tick(&mut self) {
        let Some(link) = self.budget.clone() else {
            return;
        };
        link.woken.store(false, Ordering::SeqCst);
        if !link.budget.claim_due() {
            return;
        }
        let Some(claim) = link.budget.begin_claim() else {
            return;
        };
        let r = self
            .ensure_client(false)
            .and_then(|()| self.ready())
            .and_then(|()| self.claim(&link, &claim));
        match r {
            Ok(grant) => {
                link.budget.granted(&claim, grant);
                link.refusal_logged.store(false, Ordering::SeqCst);
            }
            Err(e) => {
                // The server's own refusal (rights, a schema without the function) is
                // venue IT's to fix: said once; an unreachable database is said elsewhere.
                let refused = matches!(&e, VenueError::Db(pe) if pe.as_db_error().is_some());
                if refused && !link.refusal_logged.swap(true, Ordering::SeqCst) {
                    log::warn!(
                        "venue: the ATS budget claim was refused ({e}): this stand keeps to \
                         its static share (docs/venue.md, \"One budget for the key\")"
                    );
                } else {
                    log::debug!("venue: ats budget claim failed: {e}");
                }
                link.budget.claim_failed(&claim);
                self.failed(&e);
            }
        }
    }

    /// One claim: one statement, one round trip.
    fn claim(&mut self, link: &BudgetLink, c: &Claim) -> Result<Grant, VenueError> {
        let p = &link.plan;
        // Every argument is a number or a quoted text: one simple query, no prepare.
        let sql = format!(
            "SELECT * FROM venue_ats_claim({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            quote(&link.key_hash),
            quote(&self.issuer),
            p.per_minute.min(i32::MAX as u32),
            p.per_day.min(i32::MAX as u32),
            p.reserve_per_minute.min(i32::MAX as u32),
            p.day_reserve().min(i32::MAX as u32),
            c.used.min(i32::MAX as u32),
            c.keep.min(i32::MAX as u32),
            c.want_scan.min(i32::MAX as u32),
            c.want_any.min(i32::MAX as u32),
            LEASE_LIFETIME.as_millis(),
        );
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let rows = client.simple_query(&sql)?;
        let row = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| VenueError::Away("the budget claim returned no row".into()))?;
        let n = |i: usize| -> Result<u32, VenueError> {
            row.get(i)
                .and_then(|v| v.parse::<i64>().ok())
                .map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
                .ok_or_else(|| {
                    VenueError::Away(format!("the budget claim's column {i} is unreadable"))
                })
        };
        Ok(Grant {
            scan: n(0)?,
            any: n(1)?,
            minute_left: n(2)?,
            day_left: n(3)?,
            stands_seen: n(4)?,
        })
    }
}
