//! The decision worker's claims of the key's ATS budget (issue 13 item 1; the rules
//! are in `budget.rs` and `ats::shared_budget`): one short statement, after every job
//! and on the idle tick, never queued behind a decision. Apart from `budget.rs` so that
//! the worker imports the budget's link and the budget imports nothing of the worker.

use std::sync::atomic::Ordering;

use super::budget::{claim_sql, grant_of, BudgetLink};
use super::error::VenueError;
use super::worker::{not_connected, Worker};
use crate::ats::shared_budget::{Claim, Grant};

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
        let sql = claim_sql(&link.key_hash, &self.issuer, &link.plan, c);
        let client = self.client.as_mut().ok_or_else(not_connected)?;
        let rows = client.simple_query(&sql)?;
        grant_of(&rows).map_err(VenueError::Away)
    }
}
