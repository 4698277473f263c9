//! `PersistenceMigrator` and `PersistenceSnapshot` on sled bundles (API-5.0 7, BEHAVIOR
//! 9.4): a large rich server bundle round trip, restart of the target, replay on a
//! migrated log, progress reports, a failure midway clearing the target, and the
//! snapshot's sensitivity.

mod common;
mod migration_support;

use at_persistence_secondary_server::model::{CommitEntry, CommitOp};
use at_persistence_secondary_server::sled::SledPersistenceFactory;
use at_persistence_secondary_server::store::{
    Bundle, IterateOptions, Pass, PersistenceFactory, PersistenceMigrator, Progress, StoreKind,
    WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, edit_raw_tree};
use futures::StreamExt;
use migration_support::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source populated with `n` keys (under `dir/src`) and a target migrated from it (under
/// `dir/dst`), each in its own factory: (directory, source factory, source, target factory,
/// target).
async fn migrated(
    n: usize,
) -> (
    tempfile::TempDir,
    SledPersistenceFactory,
    Arc<Bundle>,
    SledPersistenceFactory,
    Arc<Bundle>,
) {
    let (dir, clock, sf, source, _) = populated_source(n).await;
    let tf = SledPersistenceFactory::new();
    let target = open(&tf, &dir.path().join("dst"), ALICE, &clock).await;
    PersistenceMigrator::new()
        .migrate(&source, &target)
        .await
        .unwrap();
    (dir, sf, source, tf, target)
}

/// The "done" list: thousands of keys (expired, unborn, emoji, tombstones), every
/// notification shape, the access log and an orphan migrate with no snapshot difference;
/// the target's next commit id is the source's last + 1, also after it is closed and
/// reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bundle_with_thousands_of_keys_round_trips() {
    let (dir, clock, sf, source, planted) = populated_source(3_000).await;
    let before = snapshot(&source).await;
    let counts = before.counts();
    assert!(counts["keystore"] > 2_500, "{counts:?}");
    let source_cl = source.commit_log().unwrap();
    let source_last = source_cl.last_committed_sequence_number().await.unwrap();
    let source_entries = source_cl.entries_count().await.unwrap();

    let tf = SledPersistenceFactory::new();
    let target = open(&tf, &dir.path().join("dst"), ALICE, &clock).await;
    let report = PersistenceMigrator::new()
        .migrate(&source, &target)
        .await
        .unwrap();
    assert_eq!(report.keys as usize, counts["keystore"]);
    assert_eq!(report.orphaned_commit_entries, planted.orphans);
    assert_eq!(report.commit_entries, source_entries - planted.orphans);
    assert_eq!(report.notifications, planted.notifications);
    assert_eq!(report.access_entries as usize, counts["accessLog"]);
    assert_eq!(report.last_committed_sequence_number, Some(source_last));
    assert_same(&before, &snapshot(&target).await, "migrated");

    // Close and reopen the target in a new factory (a new process, as far as the data
    // knows): same picture, numbering continues from the source's last id.
    let (tf, target) = reopen(tf, target, &dir.path().join("dst"), &clock).await;
    assert_same(&before, &snapshot(&target).await, "after reopening");
    assert_next_commit_id(&target, source_last + 1).await;
    tf.close().await;
    sf.close().await;
}

/// BEHAVIOR open point 42 on a migrated log: replaying an entry the migration already
/// wrote is a no-op; a different entry under a migrated id is `ReplayConflict`; neither
/// fires an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_on_a_migrated_log_is_idempotent_and_conflicts_are_typed() {
    let (_dir, sf, _source, tf, target) = migrated(200).await;
    let cl = target.commit_log().unwrap();
    let entries: Vec<CommitEntry> =
        collect_ok(cl.iterate(IterateOptions::default()).await.unwrap()).await;
    let count = cl.entries_count().await.unwrap();
    let mark = cl.last_committed_sequence_number().await.unwrap();
    let mut events = target.key_value_store().changes();
    for e in entries.iter().take(50) {
        cl.replay(e.clone())
            .await
            .expect("replaying a migrated entry");
    }
    let first = entries[0].clone();
    let conflict = CommitEntry {
        at_key: format!("other.wavi{ALICE}"),
        ..first.clone()
    };
    match cl.replay(conflict).await {
        Err(PersistenceError::ReplayConflict { commit_id, .. }) => {
            assert_eq!(Some(commit_id), first.commit_id)
        }
        other => panic!("expected ReplayConflict, got {other:?}"),
    }
    let other_op = CommitEntry {
        operation: if first.operation == CommitOp::Delete {
            CommitOp::Update
        } else {
            CommitOp::Delete
        },
        ..first.clone()
    };
    assert!(matches!(
        cl.replay(other_op).await,
        Err(PersistenceError::ReplayConflict { .. })
    ));
    assert_eq!(cl.entries_count().await.unwrap(), count);
    assert_eq!(cl.last_committed_sequence_number().await.unwrap(), mark);
    assert_eq!(
        cl.get_latest_commit_entry(&first.at_key).await.unwrap(),
        Some(first)
    );
    let quiet = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(quiet.is_err(), "replay fired {quiet:?}");
    tf.close().await;
    sf.close().await;
}

/// Progress is reported per store, with a final report carrying each store's count; a
/// migrator with one write in flight gives the same result as the parallel default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reports_every_store_and_parallelism_does_not_change_the_result() {
    let (dir, clock, sf, source, _) = populated_source(500).await;
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let tf = SledPersistenceFactory::new();
    let target = open(&tf, &dir.path().join("dst"), ALICE, &clock).await;
    let report = PersistenceMigrator::new()
        .with_parallelism(1)
        .with_progress(100, Arc::new(move |p| sink.lock().unwrap().push(p)))
        .migrate(&source, &target)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let finals: Vec<(StoreKind, u64)> = seen
        .iter()
        .filter(|p| p.finished)
        .map(|p| (p.store, p.records))
        .collect();
    assert_eq!(
        finals,
        vec![
            (StoreKind::KeyStore, report.keys),
            (
                StoreKind::CommitLog,
                report.commit_entries + report.orphaned_commit_entries
            ),
            (StoreKind::AccessLog, report.access_entries),
            (StoreKind::NotificationKeystore, report.notifications),
        ]
    );
    assert!(seen.iter().all(|p| p.pass == Pass::Migrate));
    let keystore_ticks = seen
        .iter()
        .filter(|p| p.store == StoreKind::KeyStore && !p.finished)
        .count() as u64;
    assert_eq!(keystore_ticks, report.keys / 100);

    let pf = SledPersistenceFactory::new();
    let parallel = open(&pf, &dir.path().join("par"), ALICE, &clock).await;
    let again = PersistenceMigrator::new()
        .with_parallelism(256)
        .migrate(&source, &parallel)
        .await
        .unwrap();
    assert_eq!(again, report);
    assert_same(
        &snapshot(&target).await,
        &snapshot(&parallel).await,
        "1 vs 256",
    );
    assert_same(
        &snapshot(&source).await,
        &snapshot(&parallel).await,
        "source",
    );
    pf.close().await;
    tf.close().await;
    sf.close().await;
}

/// A migration that fails midway (here: a record of the source that cannot be decoded)
/// returns the error and leaves the target empty, ready for another attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_fails_midway_clears_the_target() {
    let (dir, clock, sf, source, _) = populated_source(400).await;
    let src = dir.path().join("src");
    sf.close().await;
    drop(source);
    // Plant a record with an unknown format byte, sorted after many good ones.
    edit_raw_tree(&src.join("keys"), "keystore", |tree| {
        tree.insert(broken_key(), vec![0x7f, 1, 2, 3]).unwrap();
    });
    let sf = SledPersistenceFactory::new();
    let source = open(&sf, &src, ALICE, &clock).await;
    let tf = SledPersistenceFactory::new();
    let target = open(&tf, &dir.path().join("dst"), ALICE, &clock).await;
    match PersistenceMigrator::new().migrate(&source, &target).await {
        Err(PersistenceError::CorruptRecord { key, .. }) => {
            assert!(key.contains("zz-broken"), "{key}")
        }
        other => panic!("expected CorruptRecord, got {other:?}"),
    }
    assert_empty(&target, "after a failed migration").await;
    // Take the broken record out (the keystore cannot remove a record it cannot decode)
    // and migrate again into the same target.
    sf.close().await;
    drop(source);
    edit_raw_tree(&src.join("keys"), "keystore", |tree| {
        tree.remove(broken_key()).unwrap();
    });
    let sf = SledPersistenceFactory::new();
    let source = open(&sf, &src, ALICE, &clock).await;
    PersistenceMigrator::new()
        .migrate(&source, &target)
        .await
        .unwrap();
    assert_same(&snapshot(&source).await, &snapshot(&target).await, "retry");
    tf.close().await;
    sf.close().await;
}

/// The snapshot notices a change to any one metadata field, a value, a notification
/// field, a missing access entry and a missing tombstone (so the round-trip tests can
/// fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_notices_any_single_change() {
    let (_dir, sf, source, tf, target) = migrated(100).await;
    let base = snapshot(&source).await;
    assert_same(&base, &snapshot(&target).await, "before any change");
    let ks = target.key_value_store();

    // One metadata field.
    let key = format!("public:pub4.wavi{ALICE}");
    let original = ks.get(&key).await.unwrap();
    let mut changed = original.clone();
    changed.meta_data.as_mut().unwrap().app_metadata = None;
    ks.restore(&key, changed).await.unwrap();
    let d = base.differences_from(&snapshot(&target).await);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].contains("pub4"), "{d:?}");
    ks.restore(&key, original).await.unwrap();

    // A notification field.
    let nk = target.notification_keystore().unwrap();
    let mut n = nk.iterate().await.unwrap().next().await.unwrap().unwrap();
    let original = n.clone();
    n.retry_count += 1;
    nk.put(&n.id.clone(), n, WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(base.differences_from(&snapshot(&target).await).len(), 1);
    nk.put(&original.id.clone(), original, WriteOptions::default())
        .await
        .unwrap();
    assert_same(&base, &snapshot(&target).await, "restored");

    // A missing tombstone.
    let cl = target.commit_log().unwrap();
    let tomb = format!("@bob💙:gone5.wavi{ALICE}");
    cl.remove_entry_for(&canonical(&tomb)).await.unwrap();
    let d = base.differences_from(&snapshot(&target).await);
    assert!(d.iter().any(|l| l.contains("gone5")), "{d:?}");

    // The access log has one entry more.
    target
        .access_log()
        .unwrap()
        .insert("@x", "pol", None)
        .await
        .unwrap();
    let d = base.differences_from(&snapshot(&target).await);
    assert!(d.iter().any(|l| l.starts_with("accessLog")), "{d:?}");
    tf.close().await;
    sf.close().await;
}

/// The storage key of the planted broken record (the keystore tree's record prefix `d`).
fn broken_key() -> Vec<u8> {
    let mut key = vec![b'd'];
    key.extend_from_slice(format!("zz-broken.wavi{ALICE}").as_bytes());
    key
}

fn canonical(key: &str) -> String {
    at_persistence_secondary_server::key::canonical_key(key)
}
