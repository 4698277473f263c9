//! Format 3 keeps no creation index (see `src/sled/layout.rs`, "No creation index").
//! Opening a store of format 2 marks it format 3 and removes the index, also when an
//! earlier open was cut short between the two; creation order and the oldest and newest
//! creation times are then read from the records, and new writes add no index entry.

mod common;

use at_persistence_secondary_server::model::{AtData, ManualClock, Timestamp};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, KeyPattern, OrderByKey, PersistenceFactory, ScanOptions, WriteOptions,
};
use common::{collect_ok, edit_raw_tree, format_of, open_raw, raw_entries, server, T0};
use std::path::Path;
use std::sync::Arc;

const AT: &str = "@alice";
/// Put 5 ms apart in this order, which is not key order.
const BY_CREATION: [&str; 4] = [
    "mango.app@alice",
    "apple.app@alice",
    "zebra.app@alice",
    "banana.app@alice",
];
/// Restored without metadata: no `created_at`, so it sorts last by creation.
const NO_META: &str = "nometa.app@alice";

fn config(dir: &Path) -> SledPersistenceConfig {
    server(dir).with_clock(Arc::new(ManualClock::new(T0)))
}

async fn open(f: &SledPersistenceFactory, dir: &Path) -> Arc<Bundle> {
    f.initialize(AT, &config(dir)).await.unwrap()
}

/// `C` + instant + key: a format-2 creation index entry.
fn creation_entry(t: Timestamp, key: &str) -> Vec<u8> {
    let mut k = vec![b'C'];
    k.extend_from_slice(&((t.as_millis() as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

fn keys_db(dir: &Path) -> std::path::PathBuf {
    dir.join("keys")
}

fn creation_entries(dir: &Path) -> usize {
    raw_entries(&keys_db(dir), "keystore")
        .iter()
        .filter(|(k, _)| k.first() == Some(&b'C'))
        .count()
}

/// A closed store holding [`BY_CREATION`], created at T0, +5, +10 and +15 ms, and
/// [`NO_META`]; returns each key's creation time as the store reports it.
async fn build(dir: &Path) -> Vec<(String, Timestamp)> {
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let b = f
        .initialize(AT, &server(dir).with_clock(clock.clone()))
        .await
        .unwrap();
    let ks = b.key_value_store();
    let mut created = Vec::new();
    for k in BY_CREATION {
        ks.put(k, AtData::new("v"), WriteOptions::default())
            .await
            .unwrap();
        let t = ks.get_meta(k).await.unwrap().unwrap().created_at.unwrap();
        created.push((k.to_string(), t));
        clock.advance(5);
    }
    ks.restore(NO_META, AtData::new("v")).await.unwrap();
    assert_eq!(ks.get_meta(NO_META).await.unwrap(), None);
    f.close().await;
    assert_eq!(
        creation_entries(dir),
        0,
        "format 3 writes no creation index"
    );
    created
}

/// Writes the creation index a format-2 build kept for `created`, plus `stray` entries
/// naming no record, and sets the format record to `format`.
fn plant_index(dir: &Path, created: &[(String, Timestamp)], stray: usize, format: u32) {
    edit_raw_tree(&keys_db(dir), "keystore", |t| {
        for (k, at) in created {
            t.insert(creation_entry(*at, k), &[][..]).unwrap();
        }
        for i in 0..stray {
            let name = format!("gone{i:05}.app@alice");
            t.insert(creation_entry(T0, &name), &[][..]).unwrap();
        }
    });
    let db = open_raw(&keys_db(dir));
    db.insert("format_version", &format.to_be_bytes()[..])
        .unwrap();
    db.flush().unwrap();
}

/// What a store reads for creation order and creation times, and that it is consistent.
async fn check_creation_reads(b: &Bundle, created: &[(String, Timestamp)]) {
    let ks = b.key_value_store();
    let options = ScanOptions {
        order_by: Some(OrderByKey::ByCreatedAt),
        ..ScanOptions::default()
    };
    let mut expected: Vec<String> = BY_CREATION.iter().map(|k| k.to_string()).collect();
    expected.push(NO_META.to_string());
    let scanned = collect_ok(ks.scan_keys(&KeyPattern::default(), options).await.unwrap()).await;
    assert_eq!(scanned, expected, "creation order, no metadata last");
    let stats = ks.stats().await.unwrap();
    assert_eq!(stats.total_keys, 5);
    assert_eq!(stats.oldest_created_at, Some(created[0].1));
    assert_eq!(stats.newest_created_at, Some(created[3].1));
    assert_eq!(
        created[3].1.as_millis() - created[0].1.as_millis(),
        15,
        "the keys were created 5 ms apart"
    );
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn a_format_2_store_is_upgraded_and_loses_its_creation_index_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let created = build(dir.path()).await;
    plant_index(dir.path(), &created, 0, 2);
    assert_eq!(creation_entries(dir.path()), 4);

    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    check_creation_reads(&b, &created).await;
    b.key_value_store()
        .put("new.app@alice", AtData::new("v"), WriteOptions::default())
        .await
        .unwrap();
    f.close().await;
    drop(b);
    assert_eq!(
        format_of(&keys_db(dir.path())),
        3,
        "the format record was upgraded"
    );
    assert_eq!(
        creation_entries(dir.path()),
        0,
        "the index is gone and the new key wrote none"
    );
}

#[tokio::test]
async fn an_upgrade_cut_short_is_finished_by_the_next_open() {
    // A crash after the format record said 3 but before the index was gone: the next
    // open removes what is left, here more than one batch's worth.
    let dir = tempfile::tempdir().unwrap();
    let created = build(dir.path()).await;
    plant_index(dir.path(), &created[1..], 2_500, 3);
    assert_eq!(creation_entries(dir.path()), 2_503);

    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    check_creation_reads(&b, &created).await;
    f.close().await;
    drop(b);
    assert_eq!(creation_entries(dir.path()), 0);
    assert_eq!(format_of(&keys_db(dir.path())), 3);
}

#[tokio::test]
async fn a_store_without_creation_times_reports_none() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let ks = b.key_value_store();
    let stats = ks.stats().await.unwrap();
    assert_eq!(
        (stats.oldest_created_at, stats.newest_created_at),
        (None, None)
    );
    ks.restore(NO_META, AtData::new("v")).await.unwrap();
    let stats = ks.stats().await.unwrap();
    assert_eq!(stats.total_keys, 1);
    assert_eq!(
        (stats.oldest_created_at, stats.newest_created_at),
        (None, None),
        "a record without metadata has no creation time"
    );
    f.close().await;
}
