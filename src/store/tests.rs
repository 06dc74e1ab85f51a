//! Tests of the store as a whole: a failed redo-log write, sharing across threads.

use std::fs::File;

use super::db::{Store, StoreOptions};
use super::error::StoreError;
use super::journal::{JournalEntry, NewDecision};
use super::wal;

fn deny(store: &Store) -> Result<JournalEntry, StoreError> {
    let d = crate::decide::Decision::deny(
        crate::decide::Reason::Unreadable,
        crate::decide::Source::Live,
        false,
    );
    store.commit_decision(&NewDecision {
        scan_time_ms: 1_795_795_445_123,
        barcode: "",
        decision: &d,
        evidence: None,
        latency_ms: 0,
        request: None,
    })
}

/// After a redo-log write fails, nobody knows what the disk holds: the store refuses
/// every write (and checkpoint) until it is reopened, and the reopened store goes on
/// from the last acknowledged decision.
#[test]
fn a_failed_log_write_stops_writes_until_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        terminal_id: "t".into(),
        ..StoreOptions::default()
    };
    let store = Store::open(tmp.path(), opts.clone()).unwrap();
    assert_eq!(deny(&store).unwrap().seq, 1);
    let read_only = File::open(tmp.path().join(wal::WAL_FILE)).unwrap();
    store.lock_wal().replace_file_for_test(read_only);
    let err = deny(&store).unwrap_err();
    assert!(matches!(err, StoreError::Stopped(_)), "{err}");
    assert!(err.to_string().contains("restart"), "{err}");
    // Every later write, a void and a checkpoint are refused too.
    assert!(matches!(deny(&store), Err(StoreError::Stopped(_))));
    assert!(matches!(
        store.reset_offline_window(),
        Err(StoreError::Stopped(_))
    ));
    assert!(matches!(store.flush(), Err(StoreError::Stopped(_))));
    assert_eq!(store.journal_len(), 1);
    drop(store);
    let store = Store::open(tmp.path(), opts).unwrap();
    assert_eq!(store.journal_len(), 1);
    assert_eq!(deny(&store).unwrap().seq, 2);
}

#[test]
fn the_store_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}
