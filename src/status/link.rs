//! What the status publisher and the venue worker share ([`VenueLink`]), in plain std
//! types so that the agent never sees the venue's (postgres) ones.
//!
//! The publisher offers every snapshot it builds; the venue worker takes the newest one
//! for its heartbeat row (`venue/heartbeat.rs`), on its idle tick, never on a scan's
//! path. The worker tells the link its upload watermark (every journal entry up to it
//! is in the venue database), so the publisher can count the pending uploads from the
//! journal's length even while the database is away.

use std::sync::{Arc, Mutex, MutexGuard};

use super::snapshot::StatusSnapshot;

/// The shared slot (cheap to clone: one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct VenueLink {
    inner: Arc<Mutex<LinkState>>,
}

#[derive(Debug, Default)]
struct LinkState {
    /// The newest snapshot and its number (counts offers).
    latest: Option<(u64, StatusSnapshot)>,
    offers: u64,
    /// The venue worker's upload watermark (`None` until it said).
    watermark: Option<u64>,
}

impl VenueLink {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // A panic elsewhere while holding it leaves plain data: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The publisher's newest snapshot.
    pub fn offer(&self, snapshot: &StatusSnapshot) {
        let mut s = self.lock();
        s.offers += 1;
        let n = s.offers;
        s.latest = Some((n, snapshot.clone()));
    }

    /// The newest snapshot when it is newer than offer number `after` (with its number).
    pub fn newer_than(&self, after: u64) -> Option<(u64, StatusSnapshot)> {
        let s = self.lock();
        s.latest.as_ref().filter(|(n, _)| *n > after).cloned()
    }

    /// The venue worker's watermark now.
    pub fn set_watermark(&self, watermark: u64) {
        self.lock().watermark = Some(watermark);
    }

    /// Journal entries not yet in the venue database, of `journal_entries` (the newest
    /// sequence number): `None` until the worker has told its watermark.
    pub fn pending(&self, journal_entries: u64) -> Option<u64> {
        self.lock()
            .watermark
            .map(|w| journal_entries.saturating_sub(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_offer_is_taken_and_pending_counts_from_the_watermark() {
        let link = VenueLink::default();
        assert!(link.newer_than(0).is_none());
        assert_eq!(link.pending(5), None);
        let s = super::super::snapshot::tests::sample();
        link.offer(&s);
        let (n, got) = link.newer_than(0).unwrap();
        assert_eq!(got, s);
        assert!(link.newer_than(n).is_none());
        link.set_watermark(3);
        assert_eq!(link.pending(5), Some(2));
        assert_eq!(link.pending(2), Some(0));
    }
}
