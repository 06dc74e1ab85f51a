//! The replay watermark: every journal entry up to it is in the venue. Kept in a small
//! file in the store directory (`venue_uploaded`), not synced: a lost or stale one only
//! makes the next replay re-send entries the venue already holds (idempotent by id).

/// The watermark's file name in the store directory.
pub(super) const WATERMARK_FILE: &str = "venue_uploaded";

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

#[cfg(test)]
mod tests {
    use super::*;

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
