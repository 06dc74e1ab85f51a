//! Benchmarks 1 and 5: cache-hit decision latency and throughput, next to one fsync.
//!
//! A warm store (`TICKETS` cached records, all read once) answers scans the way the
//! agent does on a cache hit: read the cached record, the ticket's ledger and the
//! offline usage, `decide`, then `Store::commit_decision` (one record appended to the
//! store's redo log and `fdatasync`ed, then applied to sled's journal, ledger and meta
//! trees in memory). The physical floor is measured in the same loop, interleaved: write
//! 100 bytes at offset 0 of a file in the store's directory and `fsync` it
//! (`File::sync_all`). A second floor does what the redo log does without the store: a
//! 700-byte write on the next 4 KiB page of a preallocated file, then `fdatasync`.
//!
//! Interleaving (floor, full path, parts, in turn) means a busy neighbour on the shared
//! machine slows every series alike, so the ratios hold even when the absolutes move.
//!
//! Env: `SAMPLES` (default 400), `TICKETS` (default 1000), `THROUGHPUT_SECS` (default 5),
//! `CACHE_MB` (overrides `StoreOptions::cache_capacity_bytes`).

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{env_usize, Samples, TABLE_HEAD};
use concession_agent::decide::{decide, DecideInput, Evidence, Mode, Policy, ScanKind};
use concession_agent::store::{rfc3339_ms, NewDecision, Store};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Hit {
    store: Store,
    policy: Policy,
    today: String,
    events: Vec<String>,
}

impl Hit {
    /// The agent's cache-hit path up to (not including) the commit. Returns the decision
    /// inputs' results so the commit can follow.
    fn decide(
        &self,
        barcode: &str,
    ) -> (
        concession_agent::decide::Decision,
        concession_agent::ticket::TicketRecord,
    ) {
        let now = wall_ms();
        let rec = self
            .store
            .get_record(barcode)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("ticket not cached"));
        let ledger = self.store.ledger(barcode).unwrap_or_default();
        let usage = self.store.offline_usage().unwrap_or_default();
        let scan = ScanKind::Barcode(barcode.to_string());
        let d = decide(&DecideInput {
            scan: &scan,
            requested: Some(100),
            evidence: Evidence::Cached {
                record: &rec,
                age_ms: now.saturating_sub(rec.fetched_at_ms),
            },
            mode: Mode::Online,
            ledger: &ledger,
            usage,
            policy: &self.policy,
            today: &self.today,
            events: &self.events,
            clock_trusted: true,
        });
        (d, rec)
    }

    fn commit(
        &self,
        barcode: &str,
        d: &concession_agent::decide::Decision,
        rec: &concession_agent::ticket::TicketRecord,
    ) {
        let entry = self
            .store
            .commit_decision(&NewDecision {
                scan_time_ms: wall_ms(),
                barcode,
                decision: d,
                evidence: Some(rec),
                latency_ms: 0,
                request: None,
            })
            .unwrap_or_else(|e| panic!("commit failed: {e}"));
        assert!(entry.seq > 0);
    }
}

fn main() {
    let samples = env_usize("SAMPLES", 400);
    let tickets = env_usize("TICKETS", 1000);
    let tp_secs = env_usize("THROUGHPUT_SECS", 5);
    let dir = common::scratch();
    println!("{}", common::machine(dir.path()));
    println!("decide_latency: samples {samples}, cached tickets {tickets}");

    let opts = common::store_options();
    let store =
        Store::open(&dir.path().join("store"), opts).unwrap_or_else(|e| panic!("open: {e}"));
    let now = wall_ms();
    let today = rfc3339_ms(now)[..10].to_string();
    let records: Vec<_> = (0..tickets)
        .map(|i| common::record(&common::barcode(i), &today, 1_000_000, now))
        .collect();
    for chunk in records.chunks(500) {
        store
            .put_records(chunk.iter())
            .unwrap_or_else(|e| panic!("prefill: {e}"));
    }
    store.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    let policy = Policy {
        // Fresh for the whole run (the config's fresh_ms default is 10 minutes).
        online_cache_max_age_ms: 600_000,
        ..Policy::default()
    };
    let hit = Hit {
        store,
        policy,
        today,
        events: Vec::new(),
    };
    // Warm: every record read once.
    for i in 0..tickets {
        let _ = hit.decide(&common::barcode(i));
    }

    let mut floor_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("store").join("fsync-probe"))
        .unwrap_or_else(|e| panic!("probe file: {e}"));
    let payload = [b'x'; 100];
    let fsync_floor = |f: &mut std::fs::File, data_only: bool| {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0)).unwrap_or_default();
        f.write_all(&payload).unwrap_or_else(|e| panic!("{e}"));
        if data_only {
            f.sync_data().unwrap_or_else(|e| panic!("{e}"));
        } else {
            f.sync_all().unwrap_or_else(|e| panic!("{e}"));
        }
        t.elapsed()
    };

    // What the redo log does, without the store: a 700 B record on the next 4 KiB page
    // of a preallocated (zero-filled) 4 MiB file, then fdatasync.
    let wal_probe_len: u64 = 4 * 1024 * 1024;
    let wal_probe = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.path().join("store").join("wal-probe"))
        .unwrap_or_else(|e| panic!("wal probe: {e}"));
    wal_probe
        .write_all_at(&vec![0u8; wal_probe_len as usize], 0)
        .unwrap_or_else(|e| panic!("{e}"));
    wal_probe.sync_all().unwrap_or_else(|e| panic!("{e}"));
    let mut wal_probe_pos = 0u64;
    let record = [b'r'; 700];
    let mut s_wal_probe = Samples::with_capacity(samples);

    let mut s_fsync = Samples::with_capacity(samples);
    let mut s_fdatasync = Samples::with_capacity(samples);
    let mut s_decide_only = Samples::with_capacity(samples);
    let mut s_hit_noflush = Samples::with_capacity(samples);
    let mut s_commit = Samples::with_capacity(samples);
    let mut s_full = Samples::with_capacity(samples);
    let mut s_cache_put_flush = Samples::with_capacity(samples);
    let mut s_flush_clean = Samples::with_capacity(samples);
    let mut s_raw_sled = Samples::with_capacity(samples);
    // A bare sled database beside the store: one insert + `Db::flush`, which writes the
    // log with `sync_file_range` only (no fdatasync): what a commit cost before
    // `Store::flush` added the fdatasync of the log file.
    let raw = sled::Config::new()
        .path(dir.path().join("raw-sled"))
        .cache_capacity(8 * 1024 * 1024)
        .open()
        .unwrap_or_else(|e| panic!("raw sled: {e}"));

    let mut rng = common::Rng(42);
    for i in 0..samples {
        s_fsync.push(fsync_floor(&mut floor_file, false));
        s_fdatasync.push(fsync_floor(&mut floor_file, true));
        let t = Instant::now();
        wal_probe
            .write_all_at(&record, wal_probe_pos)
            .unwrap_or_else(|e| panic!("{e}"));
        wal_probe.sync_data().unwrap_or_else(|e| panic!("{e}"));
        s_wal_probe.push(t.elapsed());
        // Like the store's redo log: the next record starts on the next 4 KiB page.
        wal_probe_pos = (wal_probe_pos + 4096) % wal_probe_len;

        let bc = common::barcode(rng.below(tickets));
        // Full path: read + decide + commit (durable).
        let t = Instant::now();
        let (d, rec) = hit.decide(&bc);
        let t_decided = t.elapsed();
        hit.commit(&bc, &d, &rec);
        let full = t.elapsed();
        s_full.push(full);
        s_hit_noflush.push(t_decided);
        s_commit.push(full - t_decided);
        let t = Instant::now();
        raw.insert(bc.as_bytes(), &payload[..])
            .unwrap_or_else(|e| panic!("{e}"));
        raw.flush().unwrap_or_else(|e| panic!("{e}"));
        s_raw_sled.push(t.elapsed());

        // The pure function alone, on the record just read.
        let ledger = hit.store.ledger(&bc).unwrap_or_default();
        let scan = ScanKind::Barcode(bc.clone());
        let t = Instant::now();
        let d2 = decide(&DecideInput {
            scan: &scan,
            requested: Some(100),
            evidence: Evidence::Cached {
                record: &rec,
                age_ms: 10,
            },
            mode: Mode::Online,
            ledger: &ledger,
            usage: Default::default(),
            policy: &hit.policy,
            today: &hit.today,
            events: &hit.events,
            clock_trusted: true,
        });
        s_decide_only.push(t.elapsed());
        assert!(d2.is_approve(), "{d2:?}");

        // One non-transactional sled write + flush (the cache tree), and a flush with
        // nothing dirty: what the flush costs without the transaction.
        let mut r = rec.clone();
        r.fetched_at_ms = wall_ms() + i as u64;
        let t = Instant::now();
        hit.store.put_record(&r).unwrap_or_default();
        hit.store.flush().unwrap_or_else(|e| panic!("{e}"));
        s_cache_put_flush.push(t.elapsed());
        let t = Instant::now();
        hit.store.flush().unwrap_or_else(|e| panic!("{e}"));
        s_flush_clean.push(t.elapsed());
    }

    println!();
    println!("{TABLE_HEAD}");
    println!("{}", s_fsync.line("floor: write 100 B + fsync (sync_all)"));
    println!(
        "{}",
        s_fdatasync.line("floor: write 100 B + fdatasync (sync_data)")
    );
    println!(
        "{}",
        s_wal_probe.line(
            "log-shaped floor: 700 B on the next 4 KiB page of a preallocated file + fdatasync"
        )
    );
    println!(
        "{}",
        s_full.line(
            "cache hit, durable: read + decide + commit_decision (redo-log record + fdatasync)"
        )
    );
    println!(
        "{}",
        s_hit_noflush.line("cache hit, not durable: read cache+ledger+usage + decide")
    );
    println!("{}", s_decide_only.line("decide() alone (pure)"));
    println!(
        "{}",
        s_commit.line("commit_decision alone (log append + fdatasync + apply to sled)")
    );
    println!(
        "{}",
        s_cache_put_flush.line("put_record (compare-and-swap) + Store::flush")
    );
    println!("{}", s_flush_clean.line("Store::flush with nothing dirty"));
    println!(
        "{}",
        s_raw_sled.line("bare sled: insert 100 B + Db::flush (sync_file_range, no fdatasync)")
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    println!();
    println!(
        "ratio durable cache hit / bare fsync: p50 {:.2}x, p99 {:.2}x (target <= 1.5x); p99 durable {} ms (target <= 2 ms)",
        ratio(s_full.pct(50.0), s_fsync.pct(50.0)),
        ratio(s_full.pct(99.0), s_fsync.pct(99.0)),
        common::ms(s_full.pct(99.0)),
    );

    // Throughput: the durable cache-hit path back to back.
    let until = Instant::now() + Duration::from_secs(tp_secs as u64);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        let bc = common::barcode(rng.below(tickets));
        let (d, rec) = hit.decide(&bc);
        hit.commit(&bc, &d, &rec);
        n += 1;
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "throughput, durable cache hits back to back: {n} in {el:.2} s = {:.0} decisions/s",
        n as f64 / el
    );
    let until = Instant::now() + Duration::from_secs(tp_secs.min(2) as u64);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        let bc = common::barcode(rng.below(tickets));
        let _ = hit.decide(&bc);
        n += 1;
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "throughput, cache-hit decide without commit: {n} in {el:.2} s = {:.0} decisions/s",
        n as f64 / el
    );
    println!("{}", common::machine(dir.path()));
}
