//! The venue part of the agent's state ([`VenueState`]): the venue worker's handle and
//! the transaction of the scan being decided. Apart from the hooks in `venue.rs` so that
//! the loop's module names this type without importing a file that imports it back.

/// The venue part of the agent's state.
#[derive(Default)]
pub struct VenueState {
    #[cfg(feature = "venue")]
    pub(super) handle: Option<crate::venue::VenueHandle>,
    /// The transaction of the scan being decided.
    #[cfg(feature = "venue")]
    pub(super) txn: Option<crate::venue::VenueTxn>,
    /// This scan was decided without the venue.
    #[cfg(feature = "venue")]
    pub(super) away: bool,
    /// The venue was away since the offline window last closed.
    #[cfg(feature = "venue")]
    pub(super) was_away: bool,
    /// Hands live answers to the venue ticket table (`venue_sync.rs`).
    #[cfg(feature = "venue")]
    pub(super) share: Option<crate::venue::background::TicketShare>,
}

impl VenueState {
    /// Venue mode through `handle`.
    #[cfg(feature = "venue")]
    pub fn with(handle: crate::venue::VenueHandle) -> VenueState {
        VenueState {
            handle: Some(handle),
            ..VenueState::default()
        }
    }

    /// True in venue mode.
    pub fn enabled(&self) -> bool {
        #[cfg(feature = "venue")]
        {
            self.handle.is_some()
        }
        #[cfg(not(feature = "venue"))]
        {
            false
        }
    }

    /// What the venue worker shares with the status publisher (`None`: no venue mode).
    pub fn status_link(&self) -> Option<crate::status::VenueLink> {
        #[cfg(feature = "venue")]
        if let Some(h) = &self.handle {
            return Some(h.status_link());
        }
        None
    }

    /// The time kept out of the ATS lookup's budget (of `deadline`) for the two venue
    /// steps: twice `venue.timeout_ms`, at most half the deadline.
    pub fn reserve(&self, deadline: std::time::Duration) -> std::time::Duration {
        #[cfg(feature = "venue")]
        if let Some(h) = &self.handle {
            return (h.timeout() * 2).min(deadline / 2);
        }
        let _ = deadline;
        std::time::Duration::ZERO
    }

    /// Stops the worker (waiting briefly).
    pub fn shutdown(&mut self) {
        #[cfg(feature = "venue")]
        {
            self.txn = None;
            if let Some(h) = self.handle.take() {
                h.shutdown(std::time::Duration::from_millis(500));
            }
        }
    }
}
