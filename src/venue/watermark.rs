//! The replay watermark: every journal entry up to it is in the venue. Kept in a small
//! file in the store directory (`venue_uploaded`), not synced: a lost or stale one only
//! makes the next replay re-send entries the venue already holds (idempotent by id).
//!
//! With `venue.synchronous_commit = "off"` the server acknowledges a `COMMIT` before its
//! WAL is flushed, and a server crash loses the last commits (docs/venue.md, "Durability
//! and latency"). So the watermark has two levels: the worker's in-memory one (committed
//! on this connection: the replay does not re-send those while the connection lives; a
//! server can only lose acknowledged commits by crashing or failing over, which ends
//! every connection to it) and
//! [`Flushed::through`] (committed *and* flushed: survives a server crash). Only the
//! latter is written to the file, and a new connection starts the replay after it: a
//! commit the crash lost is still in the journal, after that point, and is uploaded again
//! (by id, so one the crash kept changes nothing).
//!
//! A commit's own WAL position is not returned to the client, but any later reading of
//! the server's insert position (`pg_current_wal_insert_lsn()`) is at or past its end; so
//! a commit is known flushed once a flush position (`pg_current_wal_flush_lsn()`) read
//! afterwards reaches an insert position read after it. Both are read in every decision's
//! record step (no extra round trip) and on the worker's idle tick.

use std::collections::VecDeque;

/// Insert positions kept at most (older ones merge: a later position is a safe bound).
const MAX_MARKS: usize = 16;

/// The watermark's file name in the store directory.
pub(super) const WATERMARK_FILE: &str = "venue_uploaded";

/// Journal entries of a store no agent runs on that its last agent had not seen in
/// the venue (`status` of a stopped stand): its `journal_entries` after the watermark
/// file in `store_dir`. At most: a watermark lags the uploads (module docs).
pub fn pending_in_store(store_dir: &std::path::Path, issuer: &str, journal_entries: u64) -> u64 {
    journal_entries.saturating_sub(read_watermark(&store_dir.join(WATERMARK_FILE), issuer))
}

/// `issuer seq`; anything else (another store's file, a torn write) reads as 0.
pub(super) fn read_watermark(path: &std::path::Path, issuer: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            let (i, s) = t.trim().rsplit_once(' ')?;
            (i == issuer).then(|| s.parse().ok()).flatten()
        })
        .unwrap_or(0)
}

pub(super) fn write_watermark(path: &std::path::Path, issuer: &str, seq: u64) {
    // Not synced: a lost or stale watermark only makes the next replay re-send entries
    // the venue already holds, which changes nothing.
    let tmp = path.with_extension("tmp");
    let r = std::fs::write(&tmp, format!("{issuer} {seq}\n"))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        log::warn!("venue: cannot save the replay watermark: {e}");
    }
}

/// What is known flushed on the server of this connection's commits (see the module
/// docs). With synchronous commits every acknowledged commit is flushed at once.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    /// Every entry up to this sequence number is committed and flushed.
    pub(super) through: u64,
    /// `(watermark, insert position)`: the commits up to `watermark` end at or before the
    /// position; oldest first.
    marks: VecDeque<(u64, u64)>,
    /// The watermark after the newest commit that no insert position was read after.
    unmarked: Option<u64>,
}

impl Flushed {
    /// Everything up to `through` is known flushed (read from the file at start).
    pub(super) fn new(through: u64) -> Flushed {
        Flushed {
            through,
            ..Flushed::default()
        }
    }

    /// A commit moved the watermark to `watermark`; `flushed`: the server flushed it
    /// before answering (`synchronous_commit` other than `off`).
    pub(super) fn committed(&mut self, watermark: u64, flushed: bool) {
        if flushed {
            self.through = self.through.max(watermark);
            self.marks.retain(|m| m.0 > watermark);
            self.unmarked = self.unmarked.filter(|u| *u > watermark);
        } else if watermark > self.through {
            self.unmarked = Some(watermark);
        }
    }

    /// The journal has no entry `seq` (nothing to upload): known flushed as soon as
    /// everything before it is.
    pub(super) fn skipped(&mut self, seq: u64) {
        if self.waiting() {
            self.unmarked = Some(seq);
        } else {
            self.through = self.through.max(seq);
        }
    }

    /// The server's WAL positions read now: `flush` (on disk) and `insert` (at or past
    /// the end of every commit acknowledged before the reading). Returns true when
    /// [`Flushed::through`] advanced.
    pub(super) fn observe(&mut self, flush: u64, insert: u64) -> bool {
        let before = self.through;
        while let Some(&(w, pos)) = self.marks.front() {
            if pos > flush {
                break;
            }
            self.through = self.through.max(w);
            self.marks.pop_front();
        }
        if let Some(w) = self.unmarked.take() {
            if insert <= flush {
                self.through = self.through.max(w);
            } else if self.marks.len() >= MAX_MARKS {
                // Merge into the newest mark: a later position only waits longer.
                if let Some(last) = self.marks.back_mut() {
                    *last = (w, insert);
                }
            } else {
                self.marks.push_back((w, insert));
            }
        }
        self.through != before
    }

    /// True while some commit is not known flushed.
    pub(super) fn waiting(&self) -> bool {
        self.unmarked.is_some() || !self.marks.is_empty()
    }

    /// A new connection: what was not known flushed may be lost (the server may have
    /// crashed, or a standby been promoted: its positions mean nothing for the old
    /// commits). Returns where the replay starts again.
    pub(super) fn reconnected(&mut self) -> u64 {
        self.marks.clear();
        self.unmarked = None;
        self.through
    }

    /// The venue lacks entries up to `to` (a failover lost flushed commits too): start
    /// over from there.
    pub(super) fn reset(&mut self, to: u64) {
        self.reconnected();
        self.through = self.through.min(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asynchronous_commit_counts_as_flushed_only_once_a_later_flush_covers_it() {
        let mut f = Flushed::new(3);
        f.committed(4, false);
        assert!(f.waiting());
        // Read after the commit: the insert position 100 bounds its end; flushed to 90.
        assert!(!f.observe(90, 100));
        assert_eq!(f.through, 3);
        f.committed(5, false);
        // Flushed to 100: commit 4 is on disk; 5 now has the bound 120.
        assert!(f.observe(100, 120));
        assert_eq!(f.through, 4);
        assert!(f.waiting());
        // Everything inserted is flushed: 5 too.
        assert!(f.observe(130, 130));
        assert_eq!(f.through, 5);
        assert!(!f.waiting());
    }

    #[test]
    fn a_new_connection_replays_from_what_was_known_flushed() {
        let mut f = Flushed::new(0);
        f.committed(7, false);
        f.observe(10, 20);
        assert_eq!(f.reconnected(), 0, "the crash may have lost 1..=7");
        assert!(!f.waiting());
        // Positions read on the new server do not confirm the old commits.
        assert!(!f.observe(1_000, 1_000));
        f.committed(7, true);
        assert_eq!(
            f.through, 7,
            "a synchronous commit is flushed when acknowledged"
        );
        f.committed(8, false);
        f.committed(9, true);
        assert!(!f.waiting(), "a flushed commit flushes every earlier one");
        f.reset(2);
        assert_eq!(f.through, 2);
    }

    #[test]
    fn many_unconfirmed_commits_keep_a_bounded_list_and_still_confirm() {
        let mut f = Flushed::new(0);
        for i in 1..=100u64 {
            f.committed(i, false);
            f.observe(0, i * 10);
        }
        assert!(f.marks.len() <= MAX_MARKS);
        f.observe(1_000, 2_000);
        assert_eq!(f.through, 100);
    }

    #[test]
    fn a_watermark_of_another_store_or_torn_reads_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(WATERMARK_FILE);
        assert_eq!(read_watermark(&p, "t1"), 0);
        write_watermark(&p, "t1", 42);
        assert_eq!(read_watermark(&p, "t1"), 42);
        assert_eq!(read_watermark(&p, "t2"), 0);
        std::fs::write(&p, "t1 4x").unwrap();
        assert_eq!(read_watermark(&p, "t1"), 0);
    }
}
