//! The redo log: what makes a durable commit cost one device wait.
//!
//! A durable sled write costs two device round trips and more: sled's flush waits on
//! its log with `sync_file_range` (which persists neither the grown file size nor the
//! disk's write cache, so an `fdatasync` must follow), and every sled transaction
//! also makes sled's I/O threads write and `sync_file_range` its log at once, in
//! parallel with whatever the caller then waits for. So the journal, ledger and meta
//! trees are written without sled transactions: every write to them is first appended
//! to this log as one record (the final values of the keys it sets) and `fdatasync`ed,
//! then applied to sled with plain inserts, which sled writes out with its next buffer
//! (the store turns off sled's 500 ms background flush) and makes durable only at
//! checkpoints.
//!
//! # The rule that makes it correct
//!
//! Every write to `journal`, `ledger` or `meta` goes through [`super::Store`]'s
//! `log_and_apply`, under the log's lock, and is applied only after its record is
//! durable. A checkpoint makes sled durable (its flush plus an `fdatasync` of its log)
//! *before* it names the next lap in `meta`, and syncs again before the first record of
//! that lap is written. So after a crash or power cut, sled's durable state for those
//! trees is the state at the last checkpoint plus some subset of the writes applied
//! since (sled does not promise a prefix: it may keep a later write and lose an earlier
//! one), and every such write belongs to a durable record of the current lap.
//! Re-applying those records in order restores the state of the last durable record:
//! a record sets absolute values, so re-applying one sled already has changes nothing.
//!
//! # Laps and checkpoints
//!
//! Records carry the store's random id and the lap number; only records of this store
//! and of the lap sled's `meta` names are read, so records of an older lap still lying
//! further in the file, or a log copied from another store, are never applied.
//! Checkpoints happen when a record does not fit, at [`super::Store::flush`] (the
//! agent's clean stop) and after recovery at open.
//!
//! # File
//!
//! `<store>/wal`, preallocated by writing zeros once (not `fallocate`: unwritten extents
//! would need a metadata update on first write), so an append changes neither its size
//! nor its allocation and `fdatasync` is one data write plus a cache flush. Records
//! start on 4 KiB boundaries ([`ALIGN`]): a write torn by a power cut can only damage
//! the record being written (the one not yet acknowledged), never the page of an
//! earlier, acknowledged one.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload`, with payload =
//! `store: u64 LE | lap: u64 LE | index: u32 LE | n: u32 LE | n × (tree: u8 |
//! key_len: u32 LE | key | value_len: u32 LE | value)`. Reading starts at offset 0 and
//! stops at the first record that is empty, overruns the file, fails its CRC, does not
//! parse (a torn last record), or is not the next one of this store's current lap.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use super::error::StoreError;

/// The log file's name inside the store directory.
pub(crate) const WAL_FILE: &str = "wal";
/// Header: length and CRC.
const HEADER: usize = 8;
/// Fixed part of the payload: store id, lap, index, count.
const FIXED: usize = 24;
/// Records start at multiples of this (a page: see the module docs).
pub(crate) const ALIGN: u64 = 4096;

/// One page of the log, aligned for direct I/O.
#[repr(C, align(4096))]
struct Page([u8; ALIGN as usize]);

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Page")
    }
}

/// `n` rounded up to a multiple of [`ALIGN`].
fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN).saturating_mul(ALIGN)
}

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

/// One record: whose, its place in the log, and its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) store: u64,
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
        p.extend_from_slice(&self.store.to_le_bytes());
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
        let store = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
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
        r.is_empty().then_some(Record {
            store,
            lap,
            index,
            writes,
        })
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

/// The records of store `store`'s lap `lap`, in order, from a log of `size` bytes read
/// through `read_at(offset, len)` (`None` past the end or on a read error). See the
/// module docs for where reading stops.
fn read_records_with(
    size: u64,
    store: u64,
    lap: u64,
    mut read_at: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut pos = 0u64;
    while pos.saturating_add(HEADER as u64) <= size {
        let Some(head) = read_at(pos, HEADER) else {
            break;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let start = pos + HEADER as u64;
        if len == 0 || u64::from(len) > size - start {
            break;
        }
        let Some(payload) = read_at(start, len as usize) else {
            break;
        };
        if crc32fast::hash(&payload) != crc {
            break;
        }
        let Some(rec) = Record::decode(&payload) else {
            break;
        };
        if rec.store != store || rec.lap != lap || rec.index as usize != out.len() {
            break;
        }
        out.push(rec);
        pos = align_up(start + u64::from(len));
    }
    out
}

/// [`read_records_with`] over a log image in memory.
#[cfg(test)]
fn read_records(buf: &[u8], store: u64, lap: u64) -> Vec<Record> {
    read_records_with(buf.len() as u64, store, lap, |off, len| {
        let off = usize::try_from(off).ok()?;
        buf.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
    })
}

/// The open log: the file, where the next record goes, and whether the store must be
/// reopened before it may write again.
#[derive(Debug)]
pub(crate) struct Wal {
    /// Buffered handle: reads at open, zero-fill, records larger than a page, and every
    /// write where direct I/O is not available.
    file: File,
    /// `O_DIRECT | O_DSYNC` handle (Linux, filesystems that support it): a one-page
    /// record is one write that returns when the page is on stable storage (a FUA write
    /// where the disk has it), instead of a write plus an `fdatasync`.
    direct: Option<File>,
    /// The page a one-page record is copied into for `direct` (aligned as O_DIRECT
    /// requires).
    page: Box<Page>,
    /// The path, to open `direct`.
    path: PathBuf,
    /// The size asked for ([`super::StoreOptions::wal_capacity_bytes`]).
    configured: u64,
    /// The file's size now (larger than `configured` after a record that did not fit).
    capacity: u64,
    store: u64,
    lap: u64,
    index: u32,
    pos: u64,
    broken: Option<String>,
}

impl Wal {
    /// Opens `<dir>/wal`, creating it zero-filled at `capacity` bytes if missing, and
    /// returns it with the records of store `store`'s lap `lap` it holds. Call
    /// [`Wal::restart`] once sled holds them durably.
    pub(crate) fn open(
        dir: &Path,
        capacity: u64,
        store: u64,
        lap: u64,
    ) -> Result<(Wal, Vec<Record>), StoreError> {
        let capacity = align_up(capacity.max(ALIGN));
        let path = dir.join(WAL_FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut records = Vec::new();
        let size = file.metadata()?.len();
        if existed {
            // Record by record, not the whole file: after a clean stop the lap is empty
            // and this is one small read.
            records = read_records_with(size, store, lap, |off, len| {
                let mut buf = vec![0u8; len];
                read_exact_at(&file, &mut buf, off).ok().map(|()| buf)
            });
        }
        let mut wal = Wal {
            file,
            direct: None,
            page: Box::new(Page([0; ALIGN as usize])),
            path,
            configured: capacity,
            capacity: size,
            store,
            lap,
            index: 0,
            // Nothing is appended before the first restart.
            pos: u64::MAX,
            broken: None,
        };
        if !existed {
            wal.zero_fill(capacity)?;
            sync_dir(dir)?;
        }
        Ok((wal, records))
    }

    /// Gives the file its configured size if it has another one, and opens the direct
    /// handle (probing it with a zero page at offset 0). Only while no record of the
    /// current lap is needed (right after a checkpoint).
    pub(crate) fn resize(&mut self) -> Result<(), StoreError> {
        if self.capacity != self.configured {
            self.zero_fill(self.configured)?;
        }
        self.page.0.fill(0);
        self.direct = open_direct(&self.path).and_then(|f| {
            // Some filesystems accept the flag at open and refuse the first write.
            match write_at(&f, &self.page.0, 0) {
                Ok(()) => Some(f),
                Err(e) => {
                    log::debug!("store: redo log without direct i/o ({e})");
                    None
                }
            }
        });
        Ok(())
    }

    /// Makes room for one record of `len` bytes when even an empty log cannot hold it.
    /// Only right after a checkpoint. The next open's [`Wal::resize`] shrinks it back.
    pub(crate) fn grow_for(&mut self, len: usize) -> Result<(), StoreError> {
        let want = align_up(len as u64).max(self.capacity.saturating_mul(2));
        log::warn!(
            "store: a {len}-byte record does not fit the {}-byte redo log; growing it to {want}",
            self.capacity
        );
        self.zero_fill(want)
    }

    fn zero_fill(&mut self, size: u64) -> Result<(), StoreError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        self.file.sync_all()?;
        self.capacity = size;
        Ok(())
    }

    /// The lap records are written in now.
    pub(crate) fn lap(&self) -> u64 {
        self.lap
    }

    /// The next record of this lap with `writes`.
    pub(crate) fn next_record(&self, writes: Writes) -> Record {
        Record {
            store: self.store,
            lap: self.lap,
            index: self.index,
            writes,
        }
    }

    /// Whether an encoded record of `len` bytes fits after the last one.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.pos.saturating_add(len as u64) <= self.capacity
    }

    /// Whether an encoded record of `len` bytes fits in an empty log.
    pub(crate) fn could_fit(&self, len: usize) -> bool {
        len as u64 <= self.capacity
    }

    /// Appends an encoded record made by [`Wal::next_record`] and waits until it is on
    /// stable storage. The caller checked [`Wal::fits`]. On failure the record's header
    /// is zeroed as far as the disk still allows and the log refuses further records:
    /// after a failed `fdatasync` nobody knows what the disk holds.
    pub(crate) fn append_durable(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        debug_assert!(self.fits(rec.len()));
        let done = match &self.direct {
            Some(direct) if rec.len() <= self.page.0.len() => {
                // The rest of the page is zeroed: no stale bytes of an older lap.
                self.page.0[..rec.len()].copy_from_slice(rec);
                self.page.0[rec.len()..].fill(0);
                write_at(direct, &self.page.0, self.pos)
            }
            _ => write_at(&self.file, rec, self.pos).and_then(|()| self.file.sync_data()),
        };
        if let Err(e) = done {
            let _ =
                write_at(&self.file, &[0u8; HEADER], self.pos).and_then(|()| self.file.sync_data());
            let why = format!("the redo log write failed: {e}");
            self.set_broken(why.clone());
            return Err(StoreError::Stopped(why));
        }
        self.pos = align_up(self.pos + rec.len() as u64);
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

    /// Swaps the file handle (tests: a read-only handle makes the next append fail).
    #[cfg(test)]
    pub(crate) fn replace_file_for_test(&mut self, file: File) {
        self.file = file;
        self.direct = None;
    }

    /// Whether one-page records go through the direct handle.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
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

/// Opens `path` for `O_DIRECT | O_DSYNC` writes, or `None` where that is not
/// available (tmpfs refuses `O_DIRECT`; other systems have no such flags).
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
        .map_err(|e| log::debug!("store: redo log without direct i/o ({e})"))
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
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
fn read_exact_at(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, off)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::io::Read as _;
    file.seek(SeekFrom::Start(off))?;
    file.read_exact(buf)
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

    const ID: u64 = 0x5eed;

    fn rec(lap: u64, index: u32, v: &[u8]) -> Record {
        let mut writes = Writes::default();
        writes.set(
            TreeId::Meta,
            b"decision_seq",
            u64::from(index).to_be_bytes().to_vec(),
        );
        writes.set(TreeId::Journal, &index.to_be_bytes(), v.to_vec());
        Record {
            store: ID,
            lap,
            index,
            writes,
        }
    }

    /// Records laid out as the log lays them out (each on a 4 KiB boundary).
    fn image(recs: &[Record], size: usize) -> Vec<u8> {
        let mut buf = vec![0u8; size];
        let mut pos = 0usize;
        for r in recs {
            let e = r.encode();
            if buf.len() < pos + e.len() {
                buf.resize(pos + e.len(), 0);
            }
            buf[pos..pos + e.len()].copy_from_slice(&e);
            pos = align_up((pos + e.len()) as u64) as usize;
        }
        buf
    }

    #[test]
    fn records_round_trip() {
        let recs = vec![rec(3, 0, b"a"), rec(3, 1, &[b'b'; 5000]), rec(3, 2, b"")];
        assert_eq!(read_records(&image(&recs, 5 * 4096), ID, 3), recs);
        // The same image read for another lap or another store holds nothing.
        assert!(read_records(&image(&recs, 5 * 4096), ID, 4).is_empty());
        assert!(read_records(&image(&recs, 5 * 4096), ID + 1, 3).is_empty());
        // An image ending exactly at the last record's end, and an empty one.
        assert_eq!(read_records(&image(&recs, 0), ID, 3), recs);
        assert!(read_records(&[], ID, 3).is_empty());
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let recs = vec![rec(0, 0, b"first"), rec(0, 1, b"second")];
        let full = image(&recs, 3 * 4096);
        let start = ALIGN as usize;
        let end = start + recs[1].encode().len();
        // Every truncation and every single-byte corruption of the last record.
        for cut in start..end {
            let mut buf = full.clone();
            buf[cut..].fill(0);
            assert_eq!(read_records(&buf, ID, 0), recs[..1], "cut at {cut}");
            assert_eq!(
                read_records(&buf[..cut], ID, 0),
                recs[..1],
                "file ends at {cut}"
            );
        }
        for at in start..end {
            let mut buf = full.clone();
            buf[at] ^= 0x40;
            assert_eq!(read_records(&buf, ID, 0), recs[..1], "flip at {at}");
        }
        // Garbage in the rest of a record's page is never read.
        let mut buf = full.clone();
        let first_end = recs[0].encode().len();
        buf[first_end..start].fill(0xa5);
        assert_eq!(read_records(&buf, ID, 0), recs);
    }

    #[test]
    fn an_older_lap_after_a_restart_is_not_read() {
        // Lap 1 wrote six records; lap 2 overwrote the first two pages.
        let old: Vec<Record> = (0..6).map(|i| rec(1, i, b"old lap record")).collect();
        let new: Vec<Record> = (0..2).map(|i| rec(2, i, b"x")).collect();
        let mut buf = image(&old, 8 * 4096);
        let head = image(&new, 2 * 4096);
        buf[..head.len()].copy_from_slice(&head);
        assert_eq!(read_records(&buf, ID, 2), new);
        // A lap whose records were never written reads as empty, whatever lies there.
        assert!(read_records(&image(&old, 8 * 4096), ID, 2).is_empty());
    }

    /// Whatever the file holds (a disk that returns garbage, a file written by something
    /// else), reading never panics and returns a prefix of what was written.
    #[test]
    fn random_damage_never_panics_and_yields_a_prefix() {
        let recs: Vec<Record> = (0..5)
            .map(|i| rec(9, i, &vec![b'v'; 100 + 900 * i as usize]))
            .collect();
        let clean = image(&recs, 6 * 4096);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for trial in 0..2000 {
            let mut buf = clean.clone();
            match trial % 3 {
                // Flip a few random bytes.
                0 => {
                    for _ in 0..1 + next() % 4 {
                        let at = (next() % buf.len() as u64) as usize;
                        buf[at] ^= (next() % 255 + 1) as u8;
                    }
                }
                // Overwrite a random run with random bytes.
                1 => {
                    let at = (next() % buf.len() as u64) as usize;
                    let len = ((next() % 512) as usize).min(buf.len() - at);
                    for b in &mut buf[at..at + len] {
                        *b = next() as u8;
                    }
                }
                // Cut the file anywhere.
                _ => buf.truncate((next() % buf.len() as u64) as usize),
            }
            let got = read_records(&buf, ID, 9);
            assert!(got.len() <= recs.len(), "trial {trial}");
            assert_eq!(got, recs[..got.len()], "trial {trial}");
        }
        // Pure noise reads as nothing.
        let noise: Vec<u8> = (0..8192).map(|_| next() as u8).collect();
        assert!(read_records(&noise, ID, 9).is_empty());
    }

    #[test]
    fn a_gap_in_the_indexes_ends_the_lap() {
        let recs = vec![rec(0, 0, b"a"), rec(0, 2, b"c")];
        assert_eq!(read_records(&image(&recs, 4 * 4096), ID, 0), recs[..1]);
    }

    #[test]
    fn appends_are_page_aligned_and_a_restart_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, recs) = Wal::open(dir.path(), 6 * 4096, ID, 7).unwrap();
        assert!(recs.is_empty());
        let path = dir.path().join(WAL_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 6 * 4096);
        wal.restart(7);
        // Opens the direct handle where the filesystem has direct i/o (not tmpfs): the
        // records below then take that path, and read back the same either way.
        wal.resize().unwrap();
        eprintln!("direct i/o: {}", wal.is_direct());
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
        assert_eq!(written.len(), 6, "one record per page");
        drop(wal);
        let file = std::fs::read(&path).unwrap();
        for (i, r) in written.iter().enumerate() {
            let at = i * ALIGN as usize;
            assert_eq!(&file[at..at + r.encode().len()], &r.encode()[..]);
        }
        let (mut wal, recs) = Wal::open(dir.path(), 6 * 4096, ID, 7).unwrap();
        assert_eq!(recs, written);
        // The next lap starts at 0; the tail of lap 7 is not part of it.
        wal.restart(8);
        let r = wal.next_record(Writes::default());
        wal.append_durable(&r.encode()).unwrap();
        drop(wal);
        let (_, recs) = Wal::open(dir.path(), 6 * 4096, ID, 8).unwrap();
        assert_eq!(recs, vec![r]);
    }

    #[test]
    fn grows_for_a_record_larger_than_the_log_and_shrinks_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 4096, ID, 0).unwrap();
        wal.restart(0);
        let big = wal.next_record(rec(0, 0, &[b'x'; 10_000]).writes).encode();
        assert!(!wal.could_fit(big.len()));
        wal.grow_for(big.len()).unwrap();
        assert!(wal.fits(big.len()));
        wal.append_durable(&big).unwrap();
        let path = dir.path().join(WAL_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12_288);
        drop(wal);
        let (mut wal, recs) = Wal::open(dir.path(), 4096, ID, 0).unwrap();
        assert_eq!(recs.len(), 1);
        wal.resize().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    }
}
