//! The decision write-ahead log: what makes a commit cost one device wait.
//!
//! sled's flush is a `sync_file_range` wait on its log, and that is not durable (neither
//! the grown file size nor the disk's write cache), so a durable sled flush needs an
//! `fdatasync` after it: two device round trips per commit. Instead, each decision's
//! final writes (journal entry, ledger value, meta seq / offline state: absolute values)
//! are appended to this log and `fdatasync`ed; sled gets the same writes in memory and
//! flushes them in its own time.
//!
//! # File
//!
//! `<store>/wal`, preallocated by writing zeros once (not `fallocate`: unwritten extents
//! would need a metadata update on first write), so appending changes neither its size
//! nor its allocation and `fdatasync` is one data write plus a cache flush.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload`, payload = `seq: u64 LE |
//! n: u8 | n × (tree: u8 | key_len: u32 LE | key | value_len: u32 LE | value)`.
//! Reading starts at offset 0 and stops at the first record that is empty, overruns
//! the file, fails its CRC or does not parse (a torn last record), or whose `seq` is not
//! greater than the previous one (the tail of an older lap after a rewind).
//!
//! # Recovery and checkpoints
//!
//! On open, records with `seq` above sled's `meta/decision_seq` are re-applied to sled
//! in order (each one is the transaction's final writes, so re-applying is idempotent),
//! sled is flushed durably, and the log is rewound. When a record no longer fits, the
//! commit checkpoints instead: it flushes sled durably (its own transaction included)
//! and rewinds the log. Records left from an earlier lap have sequence numbers at or
//! below the checkpoint, which sled holds durably, so they are skipped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::StoreError;

/// The log file's name inside the store directory.
pub(crate) const WAL_FILE: &str = "wal";
/// Header: length and CRC.
const HEADER: usize = 8;

/// Which tree a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TreeId {
    Journal = 0,
    Ledger = 1,
    Meta = 2,
}

impl TreeId {
    fn from_u8(b: u8) -> Option<TreeId> {
        match b {
            0 => Some(TreeId::Journal),
            1 => Some(TreeId::Ledger),
            2 => Some(TreeId::Meta),
            _ => None,
        }
    }
}

/// One record: a committed transaction's final writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) writes: Vec<(TreeId, Vec<u8>, Vec<u8>)>,
}

impl Record {
    /// The record as written, header included.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(
            HEADER
                + 9
                + self
                    .writes
                    .iter()
                    .map(|(_, k, v)| 9 + k.len() + v.len())
                    .sum::<usize>(),
        );
        p.extend_from_slice(&[0u8; HEADER]);
        p.extend_from_slice(&self.seq.to_le_bytes());
        assert!(self.writes.len() <= u8::MAX as usize);
        p.push(self.writes.len() as u8);
        for (tree, k, v) in &self.writes {
            p.push(*tree as u8);
            p.extend_from_slice(&(k.len() as u32).to_le_bytes());
            p.extend_from_slice(k);
            p.extend_from_slice(&(v.len() as u32).to_le_bytes());
            p.extend_from_slice(v);
        }
        let len = (p.len() - HEADER) as u32;
        let crc = crc32fast::hash(&p[HEADER..]);
        p[..4].copy_from_slice(&len.to_le_bytes());
        p[4..8].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn decode(payload: &[u8]) -> Option<Record> {
        let mut r = payload;
        let seq = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let n = take(&mut r, 1)?[0];
        let mut writes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let tree = TreeId::from_u8(take(&mut r, 1)?[0])?;
            let klen = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
            let k = take(&mut r, klen)?.to_vec();
            let vlen = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
            let v = take(&mut r, vlen)?.to_vec();
            writes.push((tree, k, v));
        }
        r.is_empty().then_some(Record { seq, writes })
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Some(a)
}

/// Every valid record of a log image, in order (see the module docs for where it stops).
pub(crate) fn read_records(buf: &[u8]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut pos = 0usize;
    while pos + HEADER <= buf.len() {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
        if len == 0 || len > buf.len() - pos - HEADER {
            break;
        }
        let payload = &buf[pos + HEADER..pos + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(rec) = Record::decode(payload) else {
            break;
        };
        if out.last().is_some_and(|last| rec.seq <= last.seq) {
            break;
        }
        out.push(rec);
        pos += HEADER + len;
    }
    out
}

/// The open log: the file and where the next record goes.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    capacity: u64,
    pos: u64,
}

impl Wal {
    /// Opens `<dir>/wal`, creating it zero-filled at `capacity` bytes if missing. Returns
    /// the log (positioned at its end: call [`Wal::rewind`] after recovery) and every
    /// record it holds.
    pub(crate) fn open(dir: &Path, capacity: u64) -> Result<(Wal, Vec<Record>), StoreError> {
        let path = dir.join(WAL_FILE);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut records = Vec::new();
        if existed {
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)?;
            records = read_records(&buf);
        }
        let mut wal = Wal {
            file,
            capacity,
            pos: capacity,
        };
        if !existed {
            wal.zero_fill()?;
            sync_dir(dir)?;
        }
        Ok((wal, records))
    }

    /// After recovery (sled holds every record durably): gives the file its configured
    /// size if it had another one, and rewinds it.
    pub(crate) fn recovered(&mut self) -> Result<(), StoreError> {
        if self.file.metadata()?.len() != self.capacity {
            self.zero_fill()?;
        }
        self.rewind();
        Ok(())
    }

    fn zero_fill(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = self.capacity;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        self.file.sync_all()?;
        Ok(())
    }

    /// Whether a record of `len` bytes (header included) fits after the last one.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.pos + len as u64 <= self.capacity
    }

    /// Appends an encoded record and waits until it is on stable storage. The caller
    /// checked [`Wal::fits`].
    pub(crate) fn append_durable(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        debug_assert!(self.fits(rec.len()));
        write_at(&self.file, rec, self.pos)?;
        self.file.sync_data()?;
        self.pos += rec.len() as u64;
        Ok(())
    }

    /// Starts the next lap at offset 0. Only after sled holds every record durably.
    pub(crate) fn rewind(&mut self) {
        self.pos = 0;
    }
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, off)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(off))?;
    file.write_all(buf)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, v: &[u8]) -> Record {
        Record {
            seq,
            writes: vec![
                (
                    TreeId::Meta,
                    b"decision_seq".to_vec(),
                    seq.to_be_bytes().to_vec(),
                ),
                (TreeId::Journal, seq.to_be_bytes().to_vec(), v.to_vec()),
            ],
        }
    }

    fn image(recs: &[Record], size: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for r in recs {
            buf.extend(r.encode());
        }
        buf.resize(size, 0);
        buf
    }

    #[test]
    fn records_round_trip() {
        let recs = vec![rec(1, b"a"), rec(2, b"bb"), rec(3, b"")];
        assert_eq!(read_records(&image(&recs, 4096)), recs);
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let recs = vec![rec(1, b"first"), rec(2, b"second")];
        let full = image(&recs, 4096);
        let first_len = recs[0].encode().len();
        let total = first_len + recs[1].encode().len();
        // Every truncation and every single-byte corruption of the last record.
        for cut in first_len..total {
            let mut buf = full.clone();
            buf[cut..].fill(0);
            assert_eq!(read_records(&buf), recs[..1], "cut at {cut}");
        }
        for at in first_len..total {
            let mut buf = full.clone();
            buf[at] ^= 0x40;
            assert_eq!(read_records(&buf), recs[..1], "flip at {at}");
        }
    }

    #[test]
    fn an_older_lap_after_a_rewind_is_not_read() {
        // Lap 1 wrote 10..=15; lap 2 overwrote the start with 16, 17.
        let old: Vec<Record> = (10..=15).map(|s| rec(s, b"old lap record")).collect();
        let mut buf = image(&old, 4096);
        let mut pos = 0;
        for s in [16, 17] {
            let e = rec(s, b"x").encode();
            buf[pos..pos + e.len()].copy_from_slice(&e);
            pos += e.len();
        }
        let got: Vec<u64> = read_records(&buf).iter().map(|r| r.seq).collect();
        assert_eq!(got, vec![16, 17]);
        // Exactly on a boundary of an older record: stopped by the sequence rule.
        let mut buf = image(&old, 4096);
        let e = rec(16, b"old lap record").encode();
        buf[..e.len()].copy_from_slice(&e);
        let got: Vec<u64> = read_records(&buf).iter().map(|r| r.seq).collect();
        assert_eq!(got, vec![16]);
    }
}
