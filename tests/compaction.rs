//! `compact_and_report` over every store of a sled bundle (BEHAVIOR 7 and 9.3): entries
//! before and after, what was removed, dry runs, the 3.x stats form and its reserved key,
//! item failures, closed stores.

mod common;

use at_persistence_secondary_server::model::{
    AtData, AtNotification, AtNotificationBuilder, CommitEntry, CommitOp, CompactionStats,
    ManualClock, NotificationStatus, ACCESS_LOG_COMPACTION_KEY, COMMIT_LOG_COMPACTION_KEY,
    COMPACTION_TYPE_ACCESS_LOG, COMPACTION_TYPE_COMMIT_LOG, COMPACTION_TYPE_NOTIFICATION_KEYSTORE,
    NOTIFICATION_COMPACTION_KEY,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    compact_and_report, Bundle, CompactionReport, PersistenceFactory, WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{raw_insert, server, T0};
use std::sync::Arc;

async fn open(f: &SledPersistenceFactory, cfg: &SledPersistenceConfig) -> Arc<Bundle> {
    f.initialize("@alice", cfg).await.expect("initialize")
}

/// A notification built at T0 with the given ttl.
fn notification(id: &str, ttl: Option<i64>) -> AtNotification {
    AtNotificationBuilder {
        id: id.into(),
        ttl,
        ..AtNotificationBuilder::new()
    }
    .build_at(T0)
}

/// What a report counted: (entries before, entries after, removed).
fn counts(r: &CompactionReport) -> (u64, u64, u64) {
    (r.entries_before, r.entries_after, r.removed)
}

#[tokio::test]
async fn access_log_report_matches_the_dart_example() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path())
        .with_clock(clock.clone())
        .with_access_log_compaction_percentage(99);
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    let log = b.access_log().unwrap();
    for verb in ["from", "pol", "scan", "lookup"] {
        log.insert("@alice", verb, None).await.unwrap();
    }

    let dry = compact_and_report(log.as_ref(), true, clock.as_ref())
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(counts(&dry), (4, 4, 3));
    assert_eq!(log.entries_count().await.unwrap(), 4);

    clock.set(T0.plus_millis(123));
    let report = compact_and_report(log.as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert!(!report.dry_run);
    assert_eq!(report.compaction_type, COMPACTION_TYPE_ACCESS_LOG);
    assert_eq!(counts(&report), (4, 1, 3));
    assert_eq!((report.failed_items, report.first_error.clone()), (0, None));
    assert_eq!(report.started_at, T0.plus_millis(123));
    assert!(report.finished_at >= report.started_at);
    assert_eq!(report.stats_key(), Some(ACCESS_LOG_COMPACTION_KEY));

    let stats = report.to_stats();
    assert_eq!(stats.at_compaction_type, "AtAccessLog");
    assert_eq!(stats.pre_compaction_entries_count, 4);
    assert_eq!(stats.post_compaction_entries_count, 1);
    assert_eq!(stats.deleted_keys_count, 3);
    let json = stats.to_json();
    assert_eq!(json["atCompactionType"], "AtAccessLog");
    assert_eq!(json["lastCompactionRun"], "2024-01-01 00:00:00.123Z");
    assert_eq!(json["preCompactionEntriesCount"], "4");
    assert_eq!(json["postCompactionEntriesCount"], "1");
    assert_eq!(json["deletedKeysCount"], "3");
    assert!(json["compactionDurationInMills"]
        .as_str()
        .is_some_and(|d| d.parse::<u64>().is_ok()));

    // A consumer stores the stats under the reserved key, the way the Dart server did.
    let ks = b.key_value_store();
    let key = report.stats_key().unwrap();
    assert_eq!(
        ks.put(
            key,
            AtData::new(stats.to_json_string()),
            WriteOptions::default()
        )
        .await
        .unwrap(),
        Some(-1),
        "privatekey: keys are never committed"
    );
    let stored = ks.get("privatekey:accesslogcompactionstats").await.unwrap();
    assert_eq!(
        CompactionStats::from_json_str(stored.data.as_deref().unwrap()).unwrap(),
        stats
    );
}

#[tokio::test]
async fn notification_report_counts_expired_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path()).with_clock(clock.clone());
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    let n = b.notification_keystore().unwrap();
    for (id, ttl) in [("a", 100), ("b", 200), ("c", 60_000)] {
        let v = notification(id, Some(ttl));
        n.put(id, v, WriteOptions::default()).await.unwrap();
    }
    let mut dead = notification("dead", None);
    dead.notification_status = Some(NotificationStatus::Expired);
    n.put("dead", dead, WriteOptions::default()).await.unwrap();
    clock.advance(500);

    let dry = compact_and_report(n.as_ref(), true, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(counts(&dry), (4, 4, 3));
    let report = compact_and_report(n.as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(
        report.compaction_type,
        COMPACTION_TYPE_NOTIFICATION_KEYSTORE
    );
    assert_eq!(report.stats_key(), Some(NOTIFICATION_COMPACTION_KEY));
    assert_eq!(counts(&report), (4, 1, 3));
    assert!(n.exists("c").await.unwrap());
}

#[tokio::test]
async fn keystore_and_commit_log_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path()).with_clock(clock.clone());
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    let ks = b.key_value_store();
    // Dart's expectation: two commits of one key → pre 1, post 1, deleted 0.
    for v in ["1", "2"] {
        ks.put("dup.wavi@alice", AtData::new(v), WriteOptions::default())
            .await
            .unwrap();
    }
    let report = compact_and_report(ks.as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(report.compaction_type, COMPACTION_TYPE_COMMIT_LOG);
    assert_eq!(report.stats_key(), Some(COMMIT_LOG_COMPACTION_KEY));
    assert_eq!(counts(&report), (1, 1, 0));
    assert_eq!(report.to_stats().to_json()["deletedKeysCount"], "0");

    // A planted legacy duplicate is what commit-log compaction removes.
    f.test_support_keystore("@alice")
        .unwrap()
        .test_support_commit_log()
        .plant_superseded_entry(CommitEntry::new("dup.wavi@alice", CommitOp::Update, T0, 7))
        .await
        .unwrap();
    let log = b.commit_log().unwrap();
    let dry = compact_and_report(log.as_ref(), true, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(counts(&dry), (2, 2, 1));
    let report = compact_and_report(log.as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(counts(&report), (2, 1, 1));
    f.close().await;

    // A commit-log-free keystore has nothing to compact.
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(
        &f,
        &SledPersistenceConfig::client_defaults(dir.path().join("k")),
    )
    .await;
    b.key_value_store()
        .put(
            "phone.wavi@alice",
            AtData::new("1"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let report = compact_and_report(b.key_value_store().as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(counts(&report), (0, 0, 0));
}

#[tokio::test]
async fn item_errors_are_counted_and_the_compaction_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path()).with_clock(clock.clone());
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    let n = b.notification_keystore().unwrap();
    for id in ["a", "b"] {
        let v = notification(id, Some(100));
        n.put(id, v, WriteOptions::default()).await.unwrap();
    }
    f.close().await;
    drop(b);
    // An expiry-index entry whose id is not UTF-8.
    let mut k = vec![b'x', 0x80, 0, 0, 0, 0, 0, 0, 0];
    k.push(0xff);
    raw_insert(&dir.path().join("notifications"), "notifications", &k, b"");
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    let n = b.notification_keystore().unwrap();
    clock.advance(1_000);
    let dry = compact_and_report(n.as_ref(), true, clock.as_ref())
        .await
        .unwrap();
    assert_eq!((dry.removed, dry.failed_items), (2, 1));
    assert!(dry
        .first_error
        .as_deref()
        .is_some_and(|e| e.contains("notification keystore")));
    // The real run removes both notifications and drops the unreadable index entry.
    let report = compact_and_report(n.as_ref(), false, clock.as_ref())
        .await
        .unwrap();
    assert_eq!((report.removed, report.failed_items), (2, 0));
    assert_eq!(report.entries_after, 0);
    let again = compact_and_report(n.as_ref(), true, clock.as_ref())
        .await
        .unwrap();
    assert_eq!((again.removed, again.failed_items), (0, 0));
}

#[tokio::test]
async fn a_closed_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = open(&f, &server(dir.path())).await;
    let log = Arc::clone(b.access_log().unwrap());
    let n = Arc::clone(b.notification_keystore().unwrap());
    f.close().await;
    let clock = ManualClock::new(T0);
    let err = compact_and_report(log.as_ref(), false, &clock)
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::StoreClosed { .. }), "{err}");
    let err = compact_and_report(n.as_ref(), true, &clock)
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::StoreClosed { .. }), "{err}");
}
