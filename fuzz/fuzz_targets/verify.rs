//! Fuzzed keys and values planted in the keystore tree of a closed store, then the store
//! reopened, read and verified. Opening may refuse (a planted counter of the wrong size is
//! a typed error); nothing may panic, and verify must return a report.
#![no_main]

use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{IterateOptions, PersistenceFactory};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

/// Opens a closed store's database with raw sled. sled releases its file lock a moment
/// after the last handle is dropped (its background threads hold it briefly), so a lock
/// error is retried for a while.
fn open_raw(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("raw open of {}: {e}", path.display()),
        }
    }
}

/// Splits the input into (key, value) pairs: a length byte, then that many key bytes, a
/// length byte, then that many value bytes, repeated.
fn pairs(mut data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let take = |data: &mut &[u8]| -> Option<Vec<u8>> {
        let (&n, rest) = data.split_first()?;
        let n = (n as usize).min(rest.len());
        let (v, rest) = rest.split_at(n);
        *data = rest;
        Some(v.to_vec())
    };
    while let (Some(k), Some(v)) = (take(&mut data), take(&mut data)) {
        if !k.is_empty() {
            out.push((k, v));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let config = SledPersistenceConfig::new(dir.path().join("keys"))
        .with_commit_log_enabled(true)
        .with_cache_capacity(1024 * 1024);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = SledPersistenceFactory::new();
        let b = f.initialize("@fuzz", &config).await.unwrap();
        b.key_value_store()
            .put("seed.fuzz@fuzz", Default::default(), Default::default())
            .await
            .unwrap();
        f.close().await;
    });
    {
        let db = open_raw(&dir.path().join("keys"));
        let tree = db.open_tree("keystore").unwrap();
        for (k, v) in pairs(data) {
            tree.insert(k, v).unwrap();
        }
        db.flush().unwrap();
    }
    rt.block_on(async {
        let f = SledPersistenceFactory::new();
        let Ok(b) = f.initialize("@fuzz", &config).await else {
            return;
        };
        let report = b.verify().await.expect("verify returns a report");
        let _ = report.to_string();
        let ks = b.key_value_store();
        let _ = ks.get("seed.fuzz@fuzz").await;
        if let Some(log) = b.commit_log() {
            if let Ok(mut s) = log.iterate(IterateOptions::default()).await {
                while s.next().await.is_some() {}
            }
        }
        f.close().await;
    });
});
