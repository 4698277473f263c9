//! Shared by `tests/migration.rs` and `tests/backup.rs`: sled server bundles with a manual
//! clock, filled with every kind of data a migration must carry. It builds on
//! `tests/common`, which both files load first (`mod common;`).
#![allow(dead_code)]

use crate::common::{collect_ok, server, T0};
use at_persistence_secondary_server::model::{
    AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification, AtNotificationBuilder,
    CommitOp, HashingAlgo, ManualClock, MessageType, NotificationPriority, NotificationStatus,
    NotificationType, OperationType, PublicKeyHash, Timestamp,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, PersistenceFactory, PersistenceSnapshot, RemoveOptions, WriteOptions,
};
use std::path::Path;
use std::sync::Arc;

/// The atSign of the rich bundles: an emoji atSign exercises every key path.
pub const ALICE: &str = "@alice💙";
/// How long after populating the expiring keys have expired.
pub const PAST_EVERY_TTL: i64 = 120_000;

/// A manual clock at [`T0`].
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// The server configuration the tests use, rooted at `dir`.
pub fn server_config(dir: &Path, clock: Arc<ManualClock>) -> SledPersistenceConfig {
    server(dir).with_clock(clock)
}

/// Initializes `at_sign` in `f` with [`server_config`] at `dir`.
pub async fn open(
    f: &SledPersistenceFactory,
    dir: &Path,
    at_sign: &str,
    clock: &Arc<ManualClock>,
) -> Arc<Bundle> {
    f.initialize(at_sign, &server_config(dir, Arc::clone(clock)))
        .await
        .expect("initialize")
}

/// A temporary directory holding a source bundle at `src`, opened in its own factory
/// with a fresh [`clock`] and filled by [`populate`] with `n` keys: (directory, clock,
/// factory, source, what was planted).
pub async fn populated_source(
    n: usize,
) -> (
    tempfile::TempDir,
    Arc<ManualClock>,
    SledPersistenceFactory,
    Arc<Bundle>,
    Planted,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let f = SledPersistenceFactory::new();
    let source = open(&f, &dir.path().join("src"), ALICE, &clock).await;
    let planted = populate(&source, &clock, n).await;
    (dir, clock, f, source, planted)
}

/// Closes `target` and its factory `tf`, and opens `dir` again in a new factory (a new
/// process, as far as the data knows).
pub async fn reopen(
    tf: SledPersistenceFactory,
    target: Arc<Bundle>,
    dir: &Path,
    clock: &Arc<ManualClock>,
) -> (SledPersistenceFactory, Arc<Bundle>) {
    tf.close().await;
    drop(target);
    let tf = SledPersistenceFactory::new();
    let target = open(&tf, dir, ALICE, clock).await;
    (tf, target)
}

/// Asserts that the next write to `b` takes the commit id `expected`.
pub async fn assert_next_commit_id(b: &Bundle, expected: i64) {
    let id = b
        .key_value_store()
        .put(
            &format!("next.wavi{ALICE}"),
            AtData::new("n"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(id, Some(expected));
}

/// Metadata with every field set.
pub fn full_meta(i: i64) -> AtMetaData {
    AtMetaData {
        created_by: Some("@someone_else".into()),
        updated_by: Some("@someone_else".into()),
        created_at: Some(Timestamp::from_millis(1_577_934_245_678 + i)),
        updated_at: Some(Timestamp::from_millis(1_623_053_350_111 + i)),
        expires_at: None,
        status: Some("active".into()),
        version: Some(99),
        available_at: None,
        ttb: None,
        ttl: Some(0),
        ttr: Some(-1),
        refresh_at: Some(Timestamp::from_millis(1_700_000_000_000)),
        is_cascade: Some(true),
        is_binary: Some(false),
        is_encrypted: Some(true),
        data_signature: Some(format!("sig{i}")),
        shared_key_enc: Some("ske".into()),
        pub_key_cs: Some("cs".into()),
        encoding: Some("base64".into()),
        enc_key_name: Some("key1".into()),
        enc_algo: Some("aes256".into()),
        iv_nonce: Some("iv".into()),
        ske_enc_key_name: Some("ske1".into()),
        ske_enc_algo: Some("rsa".into()),
        pub_key_hash: Some(PublicKeyHash {
            hash: "abc".into(),
            algo: HashingAlgo::Sha256,
        }),
        immutable: Some(true),
        app_metadata: Some(AppMetadata {
            provider_id: "provider".into(),
            additional: Some("{\"k\":1}".into()),
        }),
    }
}

/// The kind of each populated key, by `i % 10`.
fn key_for(i: usize, a: &str) -> String {
    match i % 10 {
        0 => format!("k{i}.wavi{a}"),
        1 => format!("ttl{i}.wavi{a}"),
        2 => format!("unborn{i}.wavi{a}"),
        3 => format!("phone😀{i}.wavi{a}"),
        4 => format!("public:pub{i}.wavi{a}"),
        5 => format!("@bob💙:gone{i}.wavi{a}"),
        6 => format!("Mixed{i}.Wavi{a}"),
        7 => format!("quiet{i}.wavi{a}"),
        8 => format!("cached:@bob💙:c{i}.wavi@bob💙"),
        _ => format!("@bob💙:hot{i}.wavi{a}"),
    }
}

async fn write_key(b: Arc<Bundle>, i: usize) {
    let a = b.at_sign().to_string();
    let ks = b.key_value_store();
    let key = key_for(i, &a);
    let w = WriteOptions::default();
    match i % 10 {
        1 => {
            let meta = AtMetaData {
                ttl: Some(60_000),
                ..Default::default()
            };
            ks.put(&key, AtData::with_meta(format!("t{i}"), meta), w)
                .await
                .unwrap();
        }
        2 => {
            let meta = AtMetaData {
                ttb: Some(86_400_000),
                ..Default::default()
            };
            ks.put(&key, AtData::with_meta(format!("u{i}"), meta), w)
                .await
                .unwrap();
        }
        4 => {
            ks.put_all(&key, AtData::new(format!("p{i}")), full_meta(i as i64))
                .await
                .unwrap();
        }
        5 => {
            ks.put(&key, AtData::new("x"), w).await.unwrap();
            ks.remove(&key, RemoveOptions::default()).await.unwrap();
        }
        7 => {
            ks.put(&key, AtData::new("q"), WriteOptions::skip_commit())
                .await
                .unwrap();
        }
        8 => {
            ks.put_meta(&key, full_meta(1), w).await.unwrap();
        }
        9 => {
            for round in 0..3 {
                ks.put(&key, AtData::new(format!("r{round}")), w)
                    .await
                    .unwrap();
            }
        }
        _ => {
            ks.put(&key, AtData::new(format!("v{i}😀")), w)
                .await
                .unwrap();
        }
    }
}

/// A notification of the given shape, built at `now` under `id`.
pub fn notification(
    id: &str,
    kind: NotificationType,
    status: NotificationStatus,
    op: OperationType,
    now: Timestamp,
) -> AtNotification {
    let mut b = AtNotificationBuilder::new();
    b.id = id.to_string();
    b.from_at_sign = Some("@bob💙".into());
    b.to_at_sign = Some(ALICE.into());
    b.notification = Some(format!("phone😀.wavi{ALICE}"));
    b.notification_type = Some(kind);
    b.notification_status = Some(status);
    b.op_type = Some(op);
    b.priority = Some(NotificationPriority::Medium);
    b.message_type = Some(MessageType::Key);
    b.at_value = Some("value".into());
    b.at_metadata = Some(full_meta(0));
    b.build_at(now)
}

/// What [`populate`] planted.
pub struct Planted {
    /// Orphaned commit entries (non-DELETE entries without a record).
    pub orphans: u64,
    /// Notifications stored.
    pub notifications: u64,
}

/// Fills a server bundle: `n` keys of ten kinds (live, expiring, unborn, emoji, public with
/// full metadata, tombstoned, mixed case, skip-commit, cached metadata-only, updated three
/// times), two skip-rule keys, one orphaned commit entry, `n / 4` access entries (plus two
/// replayed ones with absent and old fields) and notifications of every type, status and
/// op. Writes run 64 at a time. Leaves the clock past every ttl, so the expiring keys are
/// expired but still present.
pub async fn populate(b: &Arc<Bundle>, clock: &ManualClock, n: usize) -> Planted {
    let a = b.at_sign().to_string();
    let mut i = 0;
    while i < n {
        let end = (i + 64).min(n);
        let tasks: Vec<_> = (i..end)
            .map(|j| tokio::spawn(write_key(Arc::clone(b), j)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        clock.advance(5);
        i = end;
    }
    let ks = b.key_value_store();
    let w = WriteOptions::default();
    ks.put(&format!("private:secret{a}"), AtData::new("s"), w)
        .await
        .unwrap();
    ks.put(&format!("local:note{a}"), AtData::new("l"), w)
        .await
        .unwrap();
    b.commit_log()
        .unwrap()
        .commit(&format!("public:ghost.wavi{a}"), CommitOp::Update, None)
        .await
        .unwrap();

    let log = b.access_log().unwrap();
    for i in 0..(n / 4).max(4) {
        let verb = ["pol", "lookup", "plookup", "pkam"][i % 4];
        let lookup = (verb == "lookup").then(|| format!("phone😀{i}{a}"));
        log.insert(&format!("@visitor{}", i % 7), verb, lookup.as_deref())
            .await
            .unwrap();
        if i % 16 == 0 {
            clock.advance(1);
        }
    }
    log.replay(AccessLogEntry::default()).await.unwrap();
    log.replay(AccessLogEntry {
        from_at_sign: Some("@old".into()),
        request_date_time: Some(Timestamp::from_millis(1_551_675_967_008)),
        verb_name: Some("lookup".into()),
        lookup_key: Some("phone@x".into()),
    })
    .await
    .unwrap();

    let nk = b.notification_keystore().unwrap();
    let mut count = 0u64;
    for kind in [
        NotificationType::Sent,
        NotificationType::Received,
        NotificationType::SelfNotification,
    ] {
        for status in [
            NotificationStatus::Delivered,
            NotificationStatus::Errored,
            NotificationStatus::Queued,
            NotificationStatus::Expired,
        ] {
            for op in [OperationType::Update, OperationType::Delete] {
                let id = format!("n{count}-{kind:?}-{status:?}-😀");
                let n = notification(&id, kind, status, op, clock_now(clock));
                nk.put(&id, n, w).await.unwrap();
                count += 1;
            }
        }
    }
    clock.advance(PAST_EVERY_TTL);
    Planted {
        orphans: 1,
        notifications: count,
    }
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use at_persistence_secondary_server::model::Clock;
    clock.now()
}

/// The snapshot of `b`.
pub async fn snapshot(b: &Bundle) -> PersistenceSnapshot {
    PersistenceSnapshot::capture(b).await.expect("capture")
}

/// Asserts that two snapshots have no difference, printing them all otherwise.
pub fn assert_same(a: &PersistenceSnapshot, b: &PersistenceSnapshot, context: &str) {
    let d = a.differences_from(b);
    assert!(
        d.is_empty(),
        "{context}: {} differences, the first ones: {:#?}",
        d.len(),
        &d[..d.len().min(20)]
    );
}

/// Every key of the keystore, expired and unborn included.
pub async fn all_keys(b: &Bundle) -> Vec<String> {
    use at_persistence_secondary_server::store::{KeyPattern, ScanOptions};
    let options = ScanOptions {
        include_expired: true,
        ..Default::default()
    };
    collect_ok(
        b.key_value_store()
            .scan_keys(&KeyPattern::default(), options)
            .await
            .unwrap(),
    )
    .await
}

/// Asserts that every store of `b` is empty and its commit log never issued an id.
pub async fn assert_empty(b: &Bundle, context: &str) {
    assert!(all_keys(b).await.is_empty(), "{context}: keys");
    let cl = b.commit_log().unwrap();
    assert_eq!(
        cl.entries_count().await.unwrap(),
        0,
        "{context}: commit log"
    );
    assert_eq!(
        cl.last_committed_sequence_number().await.unwrap(),
        -1,
        "{context}: high-water mark"
    );
    assert_eq!(
        b.access_log().unwrap().entries_count().await.unwrap(),
        0,
        "{context}: access log"
    );
    assert_eq!(
        b.notification_keystore()
            .unwrap()
            .entries_count()
            .await
            .unwrap(),
        0,
        "{context}: notifications"
    );
}
