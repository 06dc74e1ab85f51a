//! The redo log: what makes a durable commit cost one device wait.
//!
//! A durable sled write costs two device round trips and more: sled's flush waits on
//! its log with `sync_file_range` (which persists neither the grown file size nor the
//! disk's write cache, so an `fdatasync` must follow), and every sled transaction
//! also makes sled's I/O threads write and `sync_file_range` its log at once, in
//! parallel with whatever the caller then waits for. So the journal, ledger and meta
//! trees are written without sled transactions: every write to them is first appended
//! to this log as one record (the final values of the keys it sets) and `fdatasync`ed,
//! then applied to sled with plain inserts, which sled persists in its own time.
//!
//! # The rule that makes it correct
//!
//! Every write to `journal`, `ledger` or `meta` goes through [`super::Store`]'s
//! `log_and_apply`, under the log's lock. So after a crash or power cut, sled's
//! state for those trees is some prefix of the applied writes (sled recovers its
//! own log in order), and re-applying every record of the current lap, in order,
//! restores exactly the state of the last durable record: a record sets absolute
//! values, so re-applying one sled already has changes nothing.
//!
//! # Laps and checkpoints
//!
//! A checkpoint makes sled durable (its flush plus an `fdatasync` of its log), then
//! stores the next lap number in sled's `meta` tree (durably too) and starts writing
//! the log from offset 0 again. Only records of the lap sled's `meta` names are read,
//! so records of an older lap still lying further in the file are never re-applied.
//! Checkpoints happen when a record does not fit, and after recovery at open.
//!
//! # File
//!
//! `<store>/wal`, preallocated by writing zeros once (not `fallocate`: unwritten extents
//! would need a metadata update on first write), so an append changes neither its size
//! nor its allocation and `fdatasync` is one data write plus a cache flush.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload`, with payload =
//! `lap: u64 LE | index: u32 LE | n: u32 LE | n × (tree: u8 | key_len: u32 LE | key |
//! value_len: u32 LE | value)`. Reading starts at offset 0 and stops at the first
//! record that is empty, overruns the file, fails its CRC, does not parse (a torn last
//! record), or is not the next one of the current lap (`lap` differs or `index` is not
//! the previous one + 1).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::Path;

use super::StoreError;

/// The log file's name inside the store directory.
pub(crate) const WAL_FILE: &str = "wal";
/// Header: length and CRC.
const HEADER: usize = 8;
/// Fixed part of the payload: lap, index, count.
const FIXED: usize = 16;

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

/// One write: `tree[key] = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) tree: TreeId,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// The writes of one logical change (a decision, a void, a reset), applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Writes(pub(crate) Vec<Write>);

impl Writes {
    /// Adds `tree[key] = value`.
    pub(crate) fn set(&mut self, tree: TreeId, key: &[u8], value: Vec<u8>) {
        self.0.push(Write {
            tree,
            key: key.to_vec(),
            value,
        });
    }
}

/// One record as read back: its place in the log and its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) lap: u64,
    pub(crate) index: u32,
    pub(crate) writes: Writes,
}

impl Record {
    /// The record as written, header included.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let body: usize = self
            .writes
            .0
            .iter()
            .map(|w| 9 + w.key.len() + w.value.len())
            .sum();
        let mut p = Vec::with_capacity(HEADER + FIXED + body);
        p.extend_from_slice(&[0u8; HEADER]);
        p.extend_from_slice(&self.lap.to_le_bytes());
        p.extend_from_slice(&self.index.to_le_bytes());
        p.extend_from_slice(&len_u32(self.writes.0.len()).to_le_bytes());
        for w in &self.writes.0 {
            p.push(w.tree as u8);
            p.extend_from_slice(&len_u32(w.key.len()).to_le_bytes());
            p.extend_from_slice(&w.key);
            p.extend_from_slice(&len_u32(w.value.len()).to_le_bytes());
            p.extend_from_slice(&w.value);
        }
        let len = len_u32(p.len() - HEADER);
        let crc = crc32fast::hash(&p[HEADER..]);
        p[..4].copy_from_slice(&len.to_le_bytes());
        p[4..8].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn decode(payload: &[u8]) -> Option<Record> {
        let mut r = payload;
        let lap = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let index = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?);
        let n = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?);
        let mut writes = Writes::default();
        for _ in 0..n {
            let tree = TreeId::from_u8(take(&mut r, 1)?[0])?;
            let klen = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
            let key = take(&mut r, klen)?.to_vec();
            let vlen = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
            let value = take(&mut r, vlen)?.to_vec();
            writes.0.push(Write { tree, key, value });
        }
        r.is_empty().then_some(Record { lap, index, writes })
    }
}

/// A length as the log's u32. Keys and values are a few hundred bytes (journal entries,
/// ledgers); saturating keeps a 4 GiB value from wrapping into a valid-looking record:
/// it fails to parse instead.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Some(a)
}

fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().ok()?))
}

/// The records of lap `lap` in a log image, in order (see the module docs for where
/// reading stops).
pub(crate) fn read_records(buf: &[u8], lap: u64) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut pos = 0usize;
    while let (Some(len), Some(crc)) = (u32_at(buf, pos), u32_at(buf, pos + 4)) {
        let len = len as usize;
        let start = pos + HEADER;
        if len == 0 || len > buf.len() - start {
            break;
        }
        let payload = &buf[start..start + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(rec) = Record::decode(payload) else {
            break;
        };
        if rec.lap != lap || rec.index as usize != out.len() {
            break;
        }
        out.push(rec);
        pos = start + len;
    }
    out
}

/// The open log: the file, where the next record goes, and whether the store must be
/// reopened before it may write again.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    capacity: u64,
    pos: u64,
    lap: u64,
    index: u32,
    broken: Option<String>,
}

impl Wal {
    /// Opens `<dir>/wal`, creating it zero-filled at `capacity` bytes if missing, and
    /// returns it with the records of `lap` it holds. Call [`Wal::restart`] once sled
    /// holds them durably.
    pub(crate) fn open(
        dir: &Path,
        capacity: u64,
        lap: u64,
    ) -> Result<(Wal, Vec<Record>), StoreError> {
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
            records = read_records(&buf, lap);
        }
        let mut wal = Wal {
            file,
            capacity,
            pos: capacity,
            lap,
            index: 0,
            broken: None,
        };
        if !existed {
            wal.zero_fill()?;
            sync_dir(dir)?;
        }
        Ok((wal, records))
    }

    /// Gives the file its configured size if it has another one. Only while no record
    /// of the current lap is needed (after a checkpoint).
    pub(crate) fn resize(&mut self) -> Result<(), StoreError> {
        if self.file.metadata()?.len() != self.capacity {
            self.zero_fill()?;
        }
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

    /// The lap records are written in now.
    pub(crate) fn lap(&self) -> u64 {
        self.lap
    }

    /// The next record of this lap with `writes`.
    pub(crate) fn next_record(&self, writes: Writes) -> Record {
        Record {
            lap: self.lap,
            index: self.index,
            writes,
        }
    }

    /// Whether an encoded record of `len` bytes fits after the last one.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.pos.saturating_add(len as u64) <= self.capacity
    }

    /// Appends an encoded record made by [`Wal::next_record`] and waits until it is on
    /// stable storage. The caller checked [`Wal::fits`]. On failure nothing advances
    /// (the next record goes to the same place), and the record's header is zeroed as
    /// far as the disk still allows, so a record that was refused is not replayed.
    pub(crate) fn append_durable(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        debug_assert!(self.fits(rec.len()));
        let done = write_at(&self.file, rec, self.pos).and_then(|()| self.file.sync_data());
        if let Err(e) = done {
            let _ =
                write_at(&self.file, &[0u8; HEADER], self.pos).and_then(|()| self.file.sync_data());
            return Err(e.into());
        }
        self.pos += rec.len() as u64;
        self.index += 1;
        Ok(())
    }

    /// Starts lap `lap` at offset 0. Only once sled holds every earlier record durably
    /// and names `lap` as the current one.
    pub(crate) fn restart(&mut self, lap: u64) {
        self.lap = lap;
        self.index = 0;
        self.pos = 0;
    }

    /// Why the store refuses writes until it is reopened, if it does.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Refuses further writes until the store is reopened (which recovers from the log
    /// and sled's files): sled's in-memory state may no longer match what is durable.
    pub(crate) fn set_broken(&mut self, why: String) {
        log::error!("store: {why}; it refuses writes until the agent restarts");
        self.broken = Some(why);
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

    fn rec(lap: u64, index: u32, v: &[u8]) -> Record {
        let mut writes = Writes::default();
        writes.set(
            TreeId::Meta,
            b"decision_seq",
            u64::from(index).to_be_bytes().to_vec(),
        );
        writes.set(TreeId::Journal, &index.to_be_bytes(), v.to_vec());
        Record { lap, index, writes }
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
        let recs = vec![rec(3, 0, b"a"), rec(3, 1, b"bb"), rec(3, 2, b"")];
        assert_eq!(read_records(&image(&recs, 4096), 3), recs);
        // The same image read for another lap holds nothing.
        assert!(read_records(&image(&recs, 4096), 4).is_empty());
        // An image ending exactly at a record's end, and an empty one.
        let exact: Vec<u8> = recs.iter().flat_map(Record::encode).collect();
        assert_eq!(read_records(&exact, 3), recs);
        assert!(read_records(&[], 3).is_empty());
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let recs = vec![rec(0, 0, b"first"), rec(0, 1, b"second")];
        let full = image(&recs, 4096);
        let first_len = recs[0].encode().len();
        let total = first_len + recs[1].encode().len();
        // Every truncation and every single-byte corruption of the last record.
        for cut in first_len..total {
            let mut buf = full.clone();
            buf[cut..].fill(0);
            assert_eq!(read_records(&buf, 0), recs[..1], "cut at {cut}");
            assert_eq!(
                read_records(&buf[..cut], 0),
                recs[..1],
                "file ends at {cut}"
            );
        }
        for at in first_len..total {
            let mut buf = full.clone();
            buf[at] ^= 0x40;
            assert_eq!(read_records(&buf, 0), recs[..1], "flip at {at}");
        }
    }

    #[test]
    fn an_older_lap_after_a_restart_is_not_read() {
        // Lap 1 wrote six records; lap 2 overwrote the start with two.
        let old: Vec<Record> = (0..6).map(|i| rec(1, i, b"old lap record")).collect();
        let mut buf = image(&old, 4096);
        let mut pos = 0;
        let new: Vec<Record> = (0..2).map(|i| rec(2, i, b"x")).collect();
        for r in &new {
            let e = r.encode();
            buf[pos..pos + e.len()].copy_from_slice(&e);
            pos += e.len();
        }
        assert_eq!(read_records(&buf, 2), new);
        // Exactly on a boundary of an older record, with the same index: stopped by
        // the lap.
        let mut buf = image(&old, 4096);
        let e = rec(2, 0, b"old lap record").encode();
        buf[..e.len()].copy_from_slice(&e);
        let got: Vec<(u64, u32)> = read_records(&buf, 2)
            .iter()
            .map(|r| (r.lap, r.index))
            .collect();
        assert_eq!(got, vec![(2, 0)]);
        // A lap whose records were never written reads as empty, whatever lies there.
        assert!(read_records(&image(&old, 4096), 2).is_empty());
    }

    #[test]
    fn a_gap_in_the_indexes_ends_the_lap() {
        let recs = vec![rec(0, 0, b"a"), rec(0, 2, b"c")];
        assert_eq!(read_records(&image(&recs, 4096), 0), recs[..1]);
    }

    #[test]
    fn appends_advance_and_a_restart_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, recs) = Wal::open(dir.path(), 4096, 7).unwrap();
        assert!(recs.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
            4096
        );
        wal.restart(7);
        let mut written = Vec::new();
        loop {
            let r = wal.next_record(rec(0, 0, &[b'v'; 300]).writes);
            let bytes = r.encode();
            if !wal.fits(bytes.len()) {
                break;
            }
            wal.append_durable(&bytes).unwrap();
            written.push(r);
        }
        assert!(written.len() >= 10, "{} records in 4 KiB", written.len());
        drop(wal);
        let (mut wal, recs) = Wal::open(dir.path(), 4096, 7).unwrap();
        assert_eq!(recs, written);
        // The next lap starts at 0; the tail of lap 7 is not part of it.
        wal.restart(8);
        let r = wal.next_record(Writes::default());
        wal.append_durable(&r.encode()).unwrap();
        drop(wal);
        let (_, recs) = Wal::open(dir.path(), 4096, 8).unwrap();
        assert_eq!(recs, vec![r]);
    }
}
