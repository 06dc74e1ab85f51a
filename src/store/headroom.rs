//! Free space kept under the store, so a full disk stops approvals before it stops the
//! journal.
//!
//! The redo log is preallocated, so a decision's record needs no new space; but a
//! checkpoint (log full, prefetch, stop) makes sled write its buffers out, and sled
//! needs new space for that. On a full disk the checkpoint fails, the store refuses
//! writes and the agent stops (losing nothing, but approving nothing either, and a
//! restart cannot open sled until space is freed). So the store checks the free space
//! of its filesystem (`statvfs`, the blocks available to an unprivileged user) before
//! each approval and refuses it ([`StoreError::NoHeadroom`]) while less than the
//! headroom is left: the agent journals a `store_error` deny in its place, logs why and
//! signals the status `low_disk`; denies are still journaled, and approvals resume by
//! themselves once space is freed.
//!
//! The default headroom, 8 MiB, is two redo logs of the default size: what sled may
//! need to write out one full log of decisions, with room to spare.

use std::path::Path;

use super::error::StoreError;

/// The default headroom (`store_min_free_mb = 8`).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes available to the agent on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, StoreError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| StoreError::File {
        path: dir.to_path_buf(),
        op: "read the free space (statvfs) of",
        source: e.into(),
    })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `Ok` while at least `need` bytes are free under `dir` (always when `need` is 0).
pub fn check(dir: &Path, need: u64) -> Result<(), StoreError> {
    if need == 0 {
        return Ok(());
    }
    let free = free_bytes(dir)?;
    if free < need {
        return Err(StoreError::NoHeadroom {
            dir: dir.to_path_buf(),
            free,
            need,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headroom_larger_than_the_disk_is_refused_and_zero_is_off() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(free_bytes(tmp.path()).unwrap() > 0);
        assert!(check(tmp.path(), 0).is_ok());
        let err = check(tmp.path(), u64::MAX).unwrap_err();
        assert!(matches!(err, StoreError::NoHeadroom { .. }), "{err}");
        assert!(err.to_string().contains("store_min_free_mb"), "{err}");
    }
}
