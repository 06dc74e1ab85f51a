//! The scan loop's hooks into the venue's fetch thread (`venue/background.rs`, docs/venue.md
//! "One fetch per event"): a ticket a stand fetched live on a cache miss is handed to the
//! thread, which writes it to the venue ticket table, with its seat, so the next stand
//! copies it instead of calling ATS. The hand-over is a `try_send`: the loop never waits.
//!
//! Without the `venue` feature, or without `[venue]`, the hooks do nothing.

use crate::ticket::TicketRecord;

use super::Agent;

impl Agent {
    /// Venue mode: the fetch thread's sender of live answers (see `app::run`).
    #[cfg(feature = "venue")]
    pub fn set_venue_share(&mut self, share: crate::venue::background::TicketShare) {
        self.venue.share = Some(share);
    }

    /// Shares a live answer with the venue (venue mode) and hands it back.
    pub(super) fn venue_share(&self, record: TicketRecord) -> Option<TicketRecord> {
        #[cfg(feature = "venue")]
        if let Some(s) = &self.venue.share {
            s.share(&record);
        }
        Some(record)
    }
}
