//! Set-up helpers shared by the integration tests: the instant their manual clocks start
//! at, the server configurations they open, raw sled on the database of a closed store,
//! and draining result streams.
//!
//! A test file loads this with `mod common;`. Cargo compiles every test file as a crate of
//! its own and each uses only some of these items, so the others would be dead code there
//! and break `cargo clippy --all-targets -- -D warnings`; hence the module-wide allow.
#![allow(dead_code)]

use at_persistence_secondary_server::model::{AtData, AtMetaData, Timestamp};
use at_persistence_secondary_server::sled::{Durability, SledPersistenceConfig};
use at_persistence_secondary_server::store::{
    DynKeyStore, KeyEntry, KeyPattern, Predicate, ResultStream, ScanOptions,
};
use at_persistence_secondary_server::PersistenceError;
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// 2024-01-01T00:00:00Z, where the tests' manual clocks start.
pub const T0: Timestamp = Timestamp::from_millis(1_704_067_200_000);

/// The server layout under `dir` (`keys`, `commit_log`, `access_log` and `notifications`)
/// with sled's default page cache.
pub fn server_layout(dir: &Path) -> SledPersistenceConfig {
    SledPersistenceConfig::server_defaults(
        dir.join("keys"),
        dir.join("commit_log"),
        dir.join("access_log"),
        dir.join("notifications"),
    )
}

/// [`server_layout`] with an 8 MiB page cache: the configuration most tests open.
pub fn server(dir: &Path) -> SledPersistenceConfig {
    server_layout(dir).with_cache_capacity(8 * 1024 * 1024)
}

/// [`server`] flushing every 50 ms instead of after every write.
pub fn server_periodic(dir: &Path) -> SledPersistenceConfig {
    server(dir).with_durability(Durability::Periodic { interval_ms: 50 })
}

/// A two-worker tokio runtime, for test functions that are not `#[tokio::test]`
/// (property tests, a custom harness).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Opens the closed database at `path` with raw sled. sled releases its file lock a moment
/// after the last handle is dropped (its background threads hold it briefly), so a lock
/// error is retried for a while.
pub fn open_raw(path: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e)
                if Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("raw open of {}: {e}", path.display()),
        }
    }
}

/// The crate's format record (`format_version` in the default tree) of the closed
/// database at `path`, read with raw sled.
pub fn format_of(path: &Path) -> u32 {
    let v = open_raw(path)
        .get("format_version")
        .unwrap()
        .expect("a format record");
    u32::from_be_bytes(v.as_ref().try_into().expect("a 4-byte format record"))
}

/// Applies `edit` to the tree `tree` of the closed database at `path` with raw sled, then
/// flushes.
pub fn edit_raw_tree(path: &Path, tree: &str, edit: impl FnOnce(&sled::Tree)) {
    let db = open_raw(path);
    let t = db.open_tree(tree).unwrap();
    edit(&t);
    db.flush().unwrap();
}

/// Stores `key` → `value` in the tree `tree` of the closed database at `path` with raw
/// sled, then flushes.
pub fn raw_insert(path: &Path, tree: &str, key: &[u8], value: &[u8]) {
    edit_raw_tree(path, tree, |t| {
        t.insert(key, value).unwrap();
    });
}

/// Every entry of the tree `tree` of the closed database at `path`, read with raw sled, in
/// key order.
pub fn raw_entries(path: &Path, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = open_raw(path);
    let t = db.open_tree(tree).unwrap();
    t.iter()
        .map(|r| r.unwrap())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Every item of `stream`, in order; panics on an error item.
pub async fn collect_ok<T>(stream: ResultStream<T>) -> Vec<T> {
    stream.map(|r| r.unwrap()).collect().await
}

/// Every record of `ks` through an enumeration that reads records (`query_by_path` with an
/// empty `And`, which matches everything), error items included.
pub async fn every_record(
    ks: &DynKeyStore,
) -> Vec<Result<KeyEntry<AtData, AtMetaData>, PersistenceError>> {
    ks.query_by_path(
        &KeyPattern::default(),
        &Predicate::And(Vec::new()),
        ScanOptions::default(),
    )
    .await
    .unwrap()
    .collect()
    .await
}
