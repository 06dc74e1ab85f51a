//! `cache prefetch` in venue mode (docs/venue.md, "One fetch per event"): the
//! terminal's cache gets the venue's copy of its events through the fetch lease, as a
//! running agent's fetch thread (`background.rs`) would get it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::background::{FetchPlan, FetchStatus, VenueFetch};
use super::config::VenueSettings;
use super::error::VenueError;
use super::{connect, lease, tickets};
use crate::ats::AtsClient;
use crate::clock::SharedClock;
use crate::store::Store;

/// `cache prefetch` in venue mode: this terminal's cache gets the venue's copy of
/// `plan.events`, through the lease like a running agent (it pages ATS only if it takes
/// the lease; otherwise it waits for the holder's pass and copies). Returns once a pass of
/// every event has completed and the copy has caught up with the table, or fails after
/// `timeout` or when `stop` is set. Uses two connections, as a running agent would (the
/// agent is not running: the command refuses to run beside it).
pub fn prefetch_via_venue(
    settings: &VenueSettings,
    plan: FetchPlan,
    ats: Arc<AtsClient>,
    store: Store,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) -> Result<FetchStatus, VenueError> {
    let events = plan.events.clone();
    let fetch = VenueFetch::start(settings.clone(), plan, ats, store, clock, Arc::clone(&stop))?;
    let outcome = (|| {
        let mut client = connect::connect(settings, "concession-agent cache prefetch")?;
        let until = Instant::now() + timeout;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(VenueError::Away("stopped (what was copied is kept)".into()));
            }
            let mut done = true;
            for e in &events {
                done &= lease::pass_done(&mut client, e)?;
            }
            if done && fetch.status().copied_seq >= tickets::newest_change(&mut client)? {
                return Ok(fetch.status());
            }
            if Instant::now() >= until {
                return Err(VenueError::Away(format!(
                    "the venue's listing was not complete and copied within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    fetch.shutdown(Duration::from_secs(2));
    outcome
}
