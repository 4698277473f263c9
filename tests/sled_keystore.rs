//! Sled-specific keystore tests: concurrency, reopen without a scan, the on-disk guard,
//! compaction of planted duplicates, bad input on every entry point, directory modes.

mod common;

use at_persistence_secondary_server::model::{
    AtData, AtMetaData, CommitEntry, CommitOp, ManualClock,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, CompactedItem, IterateOptions, PersistenceFactory, RemoveOptions, WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, edit_raw_tree, raw_entries, server_layout, T0};
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The shared server layout with a 16 MiB page cache.
fn server(dir: &Path) -> SledPersistenceConfig {
    server_layout(dir).with_cache_capacity(16 * 1024 * 1024)
}

async fn open(f: &SledPersistenceFactory, dir: &Path) -> Arc<Bundle> {
    f.initialize("@alice", &server(dir))
        .await
        .expect("initialize")
}

/// Everything observable about a keystore and its log, to prove "nothing changed".
async fn fingerprint(b: &Bundle) -> (Vec<(String, AtData)>, Vec<CommitEntry>, i64, u64) {
    let ks = b.key_value_store();
    let keys: Vec<String> = collect_ok(ks.get_keys(None).await.unwrap()).await;
    let mut values = Vec::new();
    for k in keys {
        values.push((k.clone(), ks.get(&k).await.unwrap()));
    }
    let log = ks.commit_log().unwrap();
    let entries = collect_ok(log.iterate(IterateOptions::default()).await.unwrap()).await;
    (
        values,
        entries,
        log.last_committed_sequence_number().await.unwrap(),
        log.entries_count().await.unwrap(),
    )
}

fn check_concurrent_history(acks: Vec<(String, String, i64)>, stored: &HashMap<String, String>) {
    let n = acks.len() as i64;
    let mut ids: Vec<i64> = acks.iter().map(|a| a.2).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "ids are exactly a dense range"
    );
    let mut last: HashMap<&str, (i64, &str)> = HashMap::new();
    for (k, v, id) in &acks {
        let e = last.entry(k.as_str()).or_insert((*id, v.as_str()));
        if *id > e.0 {
            *e = (*id, v.as_str());
        }
    }
    for (k, (_, v)) in last {
        assert_eq!(
            stored.get(k).map(String::as_str),
            Some(v),
            "key {k} holds its highest-id value"
        );
    }
}

async fn stored_values(b: &Bundle, keys: usize) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for i in 0..keys {
        let k = format!("k{i}.conc@alice");
        if let Ok(d) = b.key_value_store().get(&k).await {
            out.insert(k, d.data.unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_of_200_writes_get_a_dense_id_range_and_the_last_value_wins() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let ks = Arc::clone(b.key_value_store());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..200 {
                let k = format!("k{}.conc@alice", (t * 7 + i) % 50);
                let v = format!("t{t}-{i}");
                let id = ks
                    .put(&k, AtData::new(&v), WriteOptions::default())
                    .await
                    .unwrap()
                    .unwrap();
                acks.push((k, v, id));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    assert_eq!(acks.len(), 3200);
    let stored = stored_values(&b, 50).await;
    check_concurrent_history(acks, &stored);
    let log = b.commit_log().unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 50, "one entry per key");
    let entries: Vec<CommitEntry> =
        collect_ok(log.iterate(IterateOptions::default()).await.unwrap()).await;
    assert_eq!(entries.len(), 50);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 3199);
}

#[test]
fn os_threads_writing_one_store_get_a_dense_id_range() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = SledPersistenceFactory::new();
    let b = rt.block_on(open(&f, dir.path()));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let ks = Arc::clone(b.key_value_store());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut acks = Vec::new();
                for i in 0..100 {
                    let k = format!("k{}.conc@alice", (t * 3 + i) % 20);
                    let v = format!("t{t}-{i}");
                    let id = rt
                        .block_on(ks.put(&k, AtData::new(&v), WriteOptions::default()))
                        .unwrap()
                        .unwrap();
                    acks.push((k, v, id));
                }
                acks
            })
        })
        .collect();
    let mut acks = Vec::new();
    for h in handles {
        acks.extend(h.join().unwrap());
    }
    let stored = rt.block_on(stored_values(&b, 20));
    check_concurrent_history(acks, &stored);
    assert_eq!(
        rt.block_on(b.commit_log().unwrap().entries_count())
            .unwrap(),
        20
    );
}

#[tokio::test]
async fn reopen_restores_counters_and_indexes_without_decoding_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path()).with_clock(clock.clone());
    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let ks = b.key_value_store();
    for i in 0..10_000i64 {
        let meta = AtMetaData {
            ttl: Some(1_000 + i),
            ..Default::default()
        };
        ks.put(
            &format!("k{i}.big@alice"),
            AtData::with_meta("v", meta),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    let next_before = ks.next_expires_at().await.unwrap();
    f.close().await;

    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let probe = f.test_support_keystore("@alice").unwrap();
    assert!(
        probe.records_decoded_at_open() <= 2,
        "open decodes no records"
    );
    let ks = b.key_value_store();
    let log = b.commit_log().unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 10_000);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 9_999);
    assert_eq!(ks.next_expires_at().await.unwrap(), next_before);
    assert_eq!(next_before, Some(T0.plus_millis(1_000)));
    clock.set(T0.plus_millis(1_004));
    let expired: Vec<String> = collect_ok(ks.get_expired_keys().await.unwrap()).await;
    assert_eq!(expired.len(), 5, "ttl 1000..=1004 have expired");
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_eq!(log.entries_count().await.unwrap(), 9_995);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 9_999);
}

fn tamper(dir: &Path, key: &[u8], value: &[u8]) {
    // The database is closed; poke its format record with raw sled.
    let db = common::open_raw(&dir.join("keys"));
    db.insert(key, value).unwrap();
    db.flush().unwrap();
    drop(db);
}

#[tokio::test]
async fn newer_format_and_other_at_sign_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    b.key_value_store()
        .put(
            "phone.wavi@alice",
            AtData::new("1"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let before = fingerprint(&b).await;
    f.close().await;
    drop(b);

    // Another atSign at alice's location.
    let f2 = SledPersistenceFactory::new();
    let err = f2
        .initialize("@bob", &server(dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::AtSignMismatch { stored, requested, .. } if stored == "@alice" && requested == "@bob"),
        "{err}"
    );
    assert!(f2.bundle_for("@bob").is_none());

    // A newer on-disk format.
    tamper(dir.path(), b"format_version", &4u32.to_be_bytes());
    let err = f2
        .initialize("@alice", &server(dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PersistenceError::FormatMismatch {
                found: 4,
                supported: 3,
                ..
            }
        ),
        "{err}"
    );
    tamper(dir.path(), b"format_version", &3u32.to_be_bytes());
    let b = open(&f2, dir.path()).await;
    assert_eq!(
        fingerprint(&b).await,
        before,
        "the refused opens changed nothing"
    );
}

#[tokio::test]
async fn compaction_removes_only_superseded_entries() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let ks = b.key_value_store();
    let log = b.commit_log().unwrap();
    ks.put("dup.wavi@alice", AtData::new("1"), WriteOptions::default())
        .await
        .unwrap(); // id 0
    ks.put("dup.wavi@alice", AtData::new("2"), WriteOptions::default())
        .await
        .unwrap(); // id 1
    let items: Vec<_> = ks.compact(false).await.unwrap().collect().await;
    assert!(
        items.is_empty(),
        "nothing superseded under one entry per key"
    );
    // Plant the legacy state: a stale entry for the same key under id 5.
    let concrete = f.test_support_keystore("@alice").unwrap();
    concrete
        .test_support_commit_log()
        .plant_superseded_entry(CommitEntry::new("dup.wavi@alice", CommitOp::Update, T0, 5))
        .await
        .unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 2);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 5);

    let dry = collect_ok(log.compact(true).await.unwrap()).await;
    assert_eq!(dry, vec![CompactedItem::CommitId(5)]);
    assert_eq!(
        log.entries_count().await.unwrap(),
        2,
        "a dry run changes nothing"
    );

    let real = collect_ok(ks.compact(false).await.unwrap()).await;
    assert_eq!(real, vec![CompactedItem::CommitId(5)]);
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(
        log.get_latest_commit_entry("dup.wavi@alice")
            .await
            .unwrap()
            .unwrap()
            .commit_id,
        Some(1),
        "the latest entry of the key is kept"
    );
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(1)
    );
    assert_eq!(
        log.last_committed_sequence_number().await.unwrap(),
        5,
        "the mark stays"
    );
    f.close().await;
    let b = open(&SledPersistenceFactory::new(), dir.path()).await;
    let log = b.commit_log().unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 5);
}

#[tokio::test]
async fn every_entry_point_refuses_bad_input_and_leaves_the_data_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let ks = b.key_value_store();
    let log = b.commit_log().unwrap();
    ks.put(
        "phone.wavi@alice",
        AtData::new("1"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    ks.put(
        "email.wavi@alice",
        AtData::new("2"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let before = fingerprint(&b).await;
    let long = format!("{}@alice", "a".repeat(300));
    let invalid = ["hello123", "hello@", "my phone@alice", "privatekey:mykey"];
    let meta = AtMetaData::default();
    let w = WriteOptions::default();

    for k in invalid {
        let is_invalid = |e: PersistenceError| matches!(e, PersistenceError::InvalidKey { ref key, .. } if key == k);
        assert!(is_invalid(
            ks.put(k, AtData::new("x"), w).await.unwrap_err()
        ));
        assert!(is_invalid(
            ks.create(k, AtData::new("x"), w).await.unwrap_err()
        ));
        assert!(is_invalid(
            ks.put_meta(k, meta.clone(), w).await.unwrap_err()
        ));
        assert!(is_invalid(
            ks.put_all(k, AtData::new("x"), meta.clone())
                .await
                .unwrap_err()
        ));
        assert!(is_invalid(
            ks.remove(k, RemoveOptions::default()).await.unwrap_err()
        ));
        assert!(is_invalid(
            ks.remove_many(&["phone.wavi@alice", k], false)
                .await
                .unwrap_err()
        ));
        match log.commit(k, CommitOp::Update, None).await {
            // The skip rule answers first for an elided prefix: -1, nothing written.
            Ok(-1) if k.starts_with("privatekey:") => {}
            other => assert!(is_invalid(other.unwrap_err())),
        }
        assert!(is_invalid(
            log.replay(CommitEntry::new(k, CommitOp::Update, T0, 50))
                .await
                .unwrap_err()
        ));
        // Reads treat it as absent.
        assert!(matches!(
            ks.get(k).await,
            Err(PersistenceError::KeyNotFound { .. })
        ));
        assert!(!ks.exists(k).await.unwrap());
        assert_eq!(ks.get_meta(k).await.unwrap(), None);
    }
    let too_long = |e: PersistenceError| {
        matches!(
            e,
            PersistenceError::KeyTooLong {
                len: 306,
                max: 248,
                ..
            }
        )
    };
    assert!(too_long(
        ks.put(&long, AtData::new("x"), w).await.unwrap_err()
    ));
    assert!(too_long(
        ks.create(&long, AtData::new("x"), w).await.unwrap_err()
    ));
    assert!(too_long(
        ks.put_meta(&long, meta.clone(), w).await.unwrap_err()
    ));
    assert!(too_long(
        ks.put_all(&long, AtData::new("x"), meta.clone())
            .await
            .unwrap_err()
    ));
    assert!(too_long(
        ks.remove(&long, RemoveOptions::default())
            .await
            .unwrap_err()
    ));

    let err = ks.get_keys(Some("(unclosed")).await.err().unwrap();
    assert!(
        matches!(err, PersistenceError::InvalidRegex { ref pattern, .. } if pattern == "(unclosed")
    );
    let err = log
        .replay(CommitEntry {
            at_key: "x.wavi@alice".into(),
            operation: CommitOp::Update,
            op_time: T0,
            commit_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::InvalidArgument { .. }),
        "{err}"
    );
    // A conflicting replay.
    let first = log
        .iterate(IterateOptions::default())
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let err = log
        .replay(CommitEntry::new(
            "other.wavi@alice",
            CommitOp::Delete,
            T0,
            first.commit_id.unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::ReplayConflict { .. }),
        "{err}"
    );

    assert_eq!(fingerprint(&b).await, before, "bad input changed nothing");

    // After close every entry point reports StoreClosed.
    b.close().await;
    let closed = |e: PersistenceError| matches!(e, PersistenceError::StoreClosed { .. });
    assert!(closed(ks.get("phone.wavi@alice").await.unwrap_err()));
    assert!(closed(
        ks.put("phone.wavi@alice", AtData::new("x"), w)
            .await
            .unwrap_err()
    ));
    assert!(closed(
        ks.create("phone.wavi@alice", AtData::new("x"), w)
            .await
            .unwrap_err()
    ));
    assert!(closed(
        ks.put_meta("phone.wavi@alice", meta.clone(), w)
            .await
            .unwrap_err()
    ));
    assert!(closed(
        ks.put_all("phone.wavi@alice", AtData::new("x"), meta.clone())
            .await
            .unwrap_err()
    ));
    assert!(closed(
        ks.remove("phone.wavi@alice", RemoveOptions::default())
            .await
            .unwrap_err()
    ));
    assert!(closed(ks.exists("phone.wavi@alice").await.unwrap_err()));
    assert!(closed(ks.get_keys(None).await.err().unwrap()));
    assert!(closed(ks.get_expired_keys().await.err().unwrap()));
    assert!(closed(ks.delete_expired_keys().await.unwrap_err()));
    assert!(closed(
        ks.get_many(&["phone.wavi@alice"]).await.unwrap_err()
    ));
    assert!(closed(
        ks.remove_many(&["phone.wavi@alice"], false)
            .await
            .unwrap_err()
    ));
    assert!(closed(ks.compact(true).await.err().unwrap()));
    assert!(closed(
        log.commit("x.wavi@alice", CommitOp::Update, None)
            .await
            .unwrap_err()
    ));
    assert!(closed(
        log.last_committed_sequence_number().await.unwrap_err()
    ));
    assert!(closed(log.entries_count().await.unwrap_err()));
    assert!(closed(
        log.iterate(IterateOptions::default()).await.err().unwrap()
    ));
    assert!(matches!(
        b.clear().await,
        Err(PersistenceError::StoreClosed { .. })
    ));

    let b = open(&f, dir.path()).await;
    assert_eq!(fingerprint(&b).await, before);
}

#[cfg(unix)]
#[tokio::test]
async fn new_store_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let _b = open(&f, dir.path()).await;
    let mode = std::fs::metadata(dir.path().join("keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test]
async fn two_factories_cannot_hold_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f1 = SledPersistenceFactory::new();
    let _b = open(&f1, dir.path()).await;
    let f2 = SledPersistenceFactory::new();
    let cfg = server(dir.path()).with_lock_retry(std::time::Duration::from_millis(100));
    let err = f2.initialize("@alice", &cfg).await.unwrap_err();
    assert!(matches!(err, PersistenceError::AlreadyOpen { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_hold_up_writers_and_learns_what_it_missed() {
    use at_persistence_secondary_server::store::KeyStoreChange;
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server(dir.path()).with_change_buffer(16).with_durability(
        at_persistence_secondary_server::sled::Durability::Periodic { interval_ms: 500 },
    );
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let ks = b.key_value_store();
    let mut idle = ks.changes(); // never polled during the writes
    for i in 0..2_000 {
        ks.put(
            &format!("k{i}.lag@alice"),
            AtData::new("v"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        idle.next().await,
        Some(KeyStoreChange::Lagged { missed: 2_000 - 16 })
    );
    // Then the 16 newest events, in order.
    for i in 2_000 - 16..2_000 {
        assert_eq!(
            idle.next().await,
            Some(KeyStoreChange::KeyAdded {
                key: format!("k{i}.lag@alice")
            })
        );
    }
    f.close().await;
    assert_eq!(
        idle.next().await,
        None,
        "the stream ends when the store closes"
    );
}

#[tokio::test]
async fn a_clear_in_several_batches_flushes_after_each_and_is_complete_after_reopen() {
    const THREE_BATCHES: usize = 2_100;
    let dir = tempfile::tempdir().unwrap();
    let cfg = server(dir.path()).with_durability(
        at_persistence_secondary_server::sled::Durability::Periodic { interval_ms: 50 },
    );
    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    for i in 0..THREE_BATCHES {
        b.key_value_store()
            .put(
                &format!("k{i:05}.clear@alice"),
                AtData::new("v"),
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    f.close().await;
    drop(b);
    // Index entries of records that are gone: only the clear's final sweep removes them.
    edit_raw_tree(&dir.path().join("keys"), "keystore", |tree| {
        for i in 0..THREE_BATCHES {
            let mut k = vec![b'a'];
            k.extend_from_slice(format!("ghost{i:05}.clear@alice").as_bytes());
            tree.insert(k, &b""[..]).unwrap();
        }
    });
    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let path = dir.path().join("keys");
    let before = f.test_support_flush_calls(&path).unwrap();
    b.clear().await.unwrap();
    let flushes = f.test_support_flush_calls(&path).unwrap() - before;
    // Three batches of records and three of leftovers, each followed by a flush.
    assert!(flushes >= 6, "{flushes} flushes for six batches");
    f.close().await;
    drop(b);

    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let (values, entries, hwm, count) = fingerprint(&b).await;
    assert!(values.is_empty() && entries.is_empty());
    assert_eq!((hwm, count), (-1, 0));
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.violations);
    f.close().await;
    drop(b);
    let left: Vec<Vec<u8>> = raw_entries(&dir.path().join("keys"), "keystore")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        left.iter().all(|k| k.first() == Some(&b'm')),
        "only counters are left: {:?}",
        left.iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let id = b
        .key_value_store()
        .put(
            "after.clear@alice",
            AtData::new("v"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(id, Some(0), "commit ids restart after a completed clear");
}

#[tokio::test]
async fn a_failed_flush_after_an_applied_group_reports_the_error_and_never_reuses_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let ks = b.key_value_store();
    let mut events = ks.changes();
    let first = ks
        .put("a.flush@alice", AtData::new("1"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(first, Some(0));
    assert!(f.test_support_fail_next_flushes(&dir.path().join("keys"), 1));
    let err = ks
        .put("b.flush@alice", AtData::new("2"), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::Backend { context, .. } if context.contains("flush")),
        "{err:?}"
    );
    // The batch was applied before the flush failed: the write is visible, counted, and
    // its commit id is taken.
    assert_eq!(
        ks.get("b.flush@alice").await.unwrap().data.as_deref(),
        Some("2")
    );
    let next = ks
        .put("c.flush@alice", AtData::new("3"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(next, Some(2), "the failed flush's group kept id 1");
    let log = b.commit_log().unwrap();
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 2);
    // Readers see the failed flush's write, so subscribers hear of it too.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(events.next().await);
    }
    let added = |k: &str| {
        Some(at_persistence_secondary_server::store::KeyStoreChange::KeyAdded { key: k.into() })
    };
    assert_eq!(
        seen,
        vec![
            added("a.flush@alice"),
            added("b.flush@alice"),
            added("c.flush@alice")
        ]
    );
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.violations);
    f.close().await;
    drop(b);

    let f = SledPersistenceFactory::new();
    let b = open(&f, dir.path()).await;
    let (values, entries, hwm, count) = fingerprint(&b).await;
    assert_eq!(values.len(), 3);
    assert_eq!(
        entries.iter().map(|e| e.commit_id).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)]
    );
    assert_eq!((hwm, count), (2, 3));
    assert!(b.verify().await.unwrap().is_ok());
}
