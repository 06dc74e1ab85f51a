//! The upgrade of a store whose cache is in sled (schema 2 and earlier) to one whose
//! cache is in its own redb database (`cachedb.rs`, schema 3).
//!
//! Cached records are offline evidence (an outage approves from them), so they are
//! moved, never dropped: every entry of sled's `cache`, `prefetch`, `seats` and
//! `safetix` trees is copied into the redb table of the same name, the copy is made
//! durable, and only then are the sled trees dropped. A crash in between leaves the
//! sled trees in place and the next open copies again: a record never replaces a newer
//! one (the cache's rule), and a cursor, seat or token already in redb is kept.

use redb::ReadableTable;

use super::cachedb::{cache_err, Bytes, CacheDb, CACHE, PREFETCH, SEATS, TOKENS};
use super::error::{db_err, StoreError};
use super::record;

/// Records copied per redb transaction (bounds the transaction's dirty pages).
const BATCH: usize = 1_000;

/// Moves the cache trees of an older store out of sled into `tickets` (no-op when
/// sled has none). Returns the number of cached records moved.
pub(super) fn move_cache_out_of_sled(db: &sled::Db, tickets: &CacheDb) -> Result<u64, StoreError> {
    let names = db.tree_names();
    let has = |n: &str| names.iter().any(|t| t.as_ref() == n.as_bytes());
    let trees: [(&str, Bytes); 4] = [
        ("cache", CACHE),
        ("prefetch", PREFETCH),
        ("seats", SEATS),
        ("safetix", TOKENS),
    ];
    if !trees.iter().any(|(n, _)| has(n)) {
        return Ok(0);
    }
    let mut moved = 0;
    for (name, table) in trees {
        if !has(name) {
            continue;
        }
        let tree = db.open_tree(name).map_err(db_err)?;
        let mut batch: Vec<(sled::IVec, sled::IVec)> = Vec::with_capacity(BATCH);
        let mut iter = tree.iter();
        loop {
            batch.clear();
            for kv in iter.by_ref().take(BATCH) {
                batch.push(kv.map_err(db_err)?);
            }
            if batch.is_empty() {
                break;
            }
            moved += copy_batch(tickets, name, table, &batch)?;
        }
    }
    // Durable in redb before sled forgets them. Dropped whole at the end, not removed
    // batch by batch: removing as it goes peaked lower (16-19 MiB instead of 75 MiB
    // at 100,000 records, once) but left sled's log at 47 MB for good (its tail
    // segments hold the rewritten empty leaves); a dropped tree's segments are freed
    // and the log shrinks to 6 MB by the next opens (BENCHMARKS.md section 6).
    tickets.sync()?;
    for (name, _) in trees {
        if has(name) {
            db.drop_tree(name).map_err(db_err)?;
        }
    }
    // The drop is made durable by the checkpoint that ends `Store::open`.
    log::info!("store: moved {moved} cached record(s) from sled to the cache database");
    Ok(moved)
}

/// Copies one batch of sled entries into `table`; returns the cache records written.
fn copy_batch(
    tickets: &CacheDb,
    name: &str,
    table: Bytes,
    batch: &[(sled::IVec, sled::IVec)],
) -> Result<u64, StoreError> {
    tickets.write(|w| {
        let mut t = w.open_table(table).map_err(cache_err)?;
        let mut n = 0;
        for (k, v) in batch {
            let keep_old = match t.get(k.as_ref()).map_err(cache_err)? {
                None => false,
                Some(old) if name == "cache" => {
                    // Both unreadable, or the one in redb as new: keep redb's.
                    let barcode = String::from_utf8_lossy(k);
                    match (
                        record::decode(&barcode, v),
                        record::decode(&barcode, old.value()),
                    ) {
                        (Ok(new), Ok(old)) => !new.supersedes(&old),
                        (Ok(_), Err(_)) => false,
                        (Err(_), _) => true,
                    }
                }
                Some(_) => true,
            };
            if !keep_old {
                t.insert(k.as_ref(), v.as_ref()).map_err(cache_err)?;
                if name == "cache" {
                    n += 1;
                }
            }
        }
        Ok(n)
    })
}
