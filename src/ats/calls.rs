//! ATS calls counted by result, for the agent's status and metrics (issue 14).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::error::AtsError;

/// Commands called by result (polls of one command are one call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Answered (an API error such as an unknown barcode included: it is an answer).
    pub ok: u64,
    /// Refused by the rate budget, locally or by the server (429).
    pub rate_limited: u64,
    /// Transport errors, timeouts, 5xx and other failures.
    pub failed: u64,
}

/// The client's counters.
#[derive(Debug, Default)]
pub(super) struct CallCounters {
    ok: AtomicU64,
    rate_limited: AtomicU64,
    failed: AtomicU64,
}

impl CallCounters {
    /// Counts one call's result.
    pub(super) fn count(&self, result: Result<(), &AtsError>) {
        let which = match result {
            Ok(()) | Err(AtsError::Api { .. }) => &self.ok,
            Err(AtsError::RateBudget { .. } | AtsError::RateLimited { .. }) => &self.rate_limited,
            Err(_) => &self.failed,
        };
        which.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(super) fn get(&self) -> CallCounts {
        CallCounts {
            ok: self.ok.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_an_answer_and_a_budget_refusal_is_rate_limited() {
        let c = CallCounters::default();
        c.count(Ok(()));
        c.count(Err(&AtsError::Api {
            code: 5301,
            sql_code: 100,
            message: "not found".into(),
        }));
        c.count(Err(&AtsError::RateLimited {
            retry_after: None,
            message: String::new(),
        }));
        c.count(Err(&AtsError::Unavailable {
            message: String::new(),
        }));
        assert_eq!(
            c.get(),
            CallCounts {
                ok: 2,
                rate_limited: 1,
                failed: 1
            }
        );
    }
}
