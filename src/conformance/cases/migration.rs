//! Migration cases (API-5.0 7, BEHAVIOR 9.4, open points 42-43): the keystore's verbatim
//! `restore`, the access-log and notification primitives a migration uses,
//! [`PersistenceMigrator`], [`PersistenceSnapshot`] and the logical backup, all through the
//! abstract traits. (Commit-log `replay` has its own cases in `commit_log.rs`.)

use super::{assert_no_event, cl, collect, entries, last, meta, v, R, W};
use crate::conformance::{Backend, Ctx, T0};
use crate::model::{
    AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification, AtNotificationBuilder, Clock,
    CommitEntry, CommitOp, HashingAlgo, MessageType, NotificationPriority, NotificationStatus,
    NotificationType, OperationType, PublicKeyHash, Timestamp,
};
use crate::store::{
    Bundle, LogicalBackup, PersistenceFactory, PersistenceMigrator, PersistenceSnapshot,
    WriteOptions,
};
use crate::PersistenceError;
use std::sync::Arc;

/// The atSign of most cases: emoji in the atSign exercise every key path.
const ALICE: &str = "@alice💙";

/// A second factory and a server bundle of `at_sign` in the case's `target` directory,
/// sharing the case's clock (a bundle's atSign can be open once per factory).
async fn target(ctx: &Ctx<'_>, at_sign: &str) -> (Arc<dyn PersistenceFactory>, Arc<Bundle>) {
    let f = ctx.backend.new_factory();
    let b = reopen_target(ctx, &f, at_sign).await;
    (f, b)
}

async fn reopen_target(
    ctx: &Ctx<'_>,
    f: &Arc<dyn PersistenceFactory>,
    at_sign: &str,
) -> Arc<Bundle> {
    let cfg = ctx
        .backend
        .server_config(&ctx.root.path().join("target"), ctx.clock.clone());
    f.initialize(at_sign, cfg.as_ref())
        .await
        .expect("initialize the target bundle")
}

/// A client (keystore-only) bundle in the case's `client` directory, in a new factory.
async fn client_target(ctx: &Ctx<'_>, at_sign: &str) -> (Arc<dyn PersistenceFactory>, Arc<Bundle>) {
    let f = ctx.backend.new_factory();
    let cfg = ctx
        .backend
        .client_config(&ctx.root.path().join("client"), ctx.clock.clone());
    let b = f
        .initialize(at_sign, cfg.as_ref())
        .await
        .expect("initialize the client bundle");
    (f, b)
}

/// Metadata with every field set (none computed by a builder).
fn full_meta(i: i64) -> AtMetaData {
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
        data_signature: Some("sig".into()),
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
            algo: HashingAlgo::Sha512,
        }),
        immutable: Some(true),
        app_metadata: Some(AppMetadata {
            provider_id: "provider".into(),
            additional: Some("{\"k\":1}".into()),
        }),
    }
}

/// A notification of the given shape, built at `now` with a fixed id.
fn notification(
    id: &str,
    kind: NotificationType,
    status: NotificationStatus,
    op: OperationType,
    now: Timestamp,
) -> AtNotification {
    let mut b = AtNotificationBuilder::new();
    b.id = id.to_string();
    b.from_at_sign = Some("@bob".into());
    b.to_at_sign = Some(ALICE.into());
    b.notification = Some(format!("phone😀.wavi{ALICE}"));
    b.notification_type = Some(kind);
    b.notification_status = Some(status);
    b.op_type = Some(op);
    b.priority = Some(NotificationPriority::High);
    b.message_type = Some(MessageType::Text);
    b.at_value = Some("value".into());
    b.at_metadata = Some(full_meta(0));
    b.build_at(now)
}

/// What [`populate`] planted that a case checks.
struct Planted {
    orphans: u64,
}

/// Fills a server bundle: `n` keys of mixed kinds (live, expiring, unborn, emoji, public
/// with full metadata, mixed case, removed (tombstones), skip-commit, metadata-only,
/// updated several times), one orphaned commit entry, access entries of several verbs
/// (some replayed with absent fields) and notifications of every type, status and op.
/// Leaves the clock past every ttl used, so the expiring keys are expired but present.
async fn populate(ctx: &Ctx<'_>, b: &Bundle, n: usize) -> Planted {
    let a = b.at_sign().to_string();
    let ks = b.key_value_store();
    for i in 0..n {
        match i % 10 {
            0 => {
                ks.put(&format!("k{i}.wavi{a}"), v(&format!("v{i}")), W)
                    .await
                    .unwrap();
            }
            1 => {
                let value = AtData::with_meta(
                    format!("t{i}"),
                    AtMetaData {
                        ttl: Some(60_000),
                        ..Default::default()
                    },
                );
                ks.put(&format!("ttl{i}.wavi{a}"), value, W).await.unwrap();
            }
            2 => {
                let value = AtData::with_meta(
                    format!("u{i}"),
                    AtMetaData {
                        ttb: Some(86_400_000),
                        ..Default::default()
                    },
                );
                ks.put(&format!("unborn{i}.wavi{a}"), value, W)
                    .await
                    .unwrap();
            }
            3 => {
                ks.put(&format!("phone😀{i}.wavi{a}"), v("📱"), W)
                    .await
                    .unwrap();
            }
            4 => {
                ks.put_all(
                    &format!("public:pub{i}.wavi{a}"),
                    AtData::new(format!("p{i}")),
                    full_meta(i as i64),
                )
                .await
                .unwrap();
            }
            5 => {
                let key = format!("@bob💙:gone{i}.wavi{a}");
                ks.put(&key, v("x"), W).await.unwrap();
                ks.remove(&key, R).await.unwrap();
            }
            6 => {
                ks.put(&format!("Mixed{i}.Wavi{a}"), v("M"), W)
                    .await
                    .unwrap();
            }
            7 => {
                ks.put(
                    &format!("quiet{i}.wavi{a}"),
                    v("q"),
                    WriteOptions::skip_commit(),
                )
                .await
                .unwrap();
            }
            8 => {
                ks.put_meta(&format!("metaonly{i}.wavi{a}"), full_meta(1), W)
                    .await
                    .unwrap();
            }
            _ => {
                let key = format!("@bob💙:hot{i}.wavi{a}");
                for round in 0..3 {
                    ks.put(&key, v(&format!("r{round}")), W).await.unwrap();
                }
            }
        }
        if i % 50 == 0 {
            ctx.clock.advance(7);
        }
    }
    // Keys the skip rule keeps out of the commit log.
    ks.put(&format!("private:secret{a}"), v("s"), W)
        .await
        .unwrap();
    ks.put(&format!("local:note{a}"), v("l"), W).await.unwrap();
    // An orphan: a commit entry for a key that has no record.
    cl(ks)
        .commit(&format!("public:ghost.wavi{a}"), CommitOp::Update, None)
        .await
        .unwrap();

    let log = b.access_log().expect("server bundles have an access log");
    for i in 0..(n / 4).max(4) {
        let verb = ["pol", "lookup", "plookup", "pkam"][i % 4];
        let lookup = (verb == "lookup").then(|| format!("phone😀{i}{a}"));
        log.insert(&format!("@visitor{}", i % 7), verb, lookup.as_deref())
            .await
            .unwrap();
        ctx.clock.advance(3);
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

    let nk = b
        .notification_keystore()
        .expect("server bundles have a notification keystore");
    let mut count = 0;
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
                let id = format!("n{count}-{kind:?}-{status:?}");
                let n = notification(&id, kind, status, op, ctx.clock.now());
                nk.put(&id, n, W).await.unwrap();
                count += 1;
            }
        }
    }
    let bare = AtNotification {
        id: "bare😀".into(),
        from_at_sign: None,
        notification_date_time: None,
        to_at_sign: None,
        notification: None,
        notification_type: None,
        op_type: None,
        message_type: None,
        expires_at: None,
        priority: None,
        notification_status: None,
        retry_count: 0,
        strategy: None,
        notifier: None,
        depth: None,
        at_value: None,
        at_metadata: None,
        ttl: None,
    };
    nk.put("bare😀", bare, W).await.unwrap();

    ctx.clock.advance(120_000);
    Planted { orphans: 1 }
}

async fn count_keys(b: &Bundle) -> u64 {
    let snapshot = PersistenceSnapshot::capture(b).await.unwrap();
    snapshot.counts()["keystore"] as u64
}

fn assert_matches(a: &PersistenceSnapshot, b: &PersistenceSnapshot, context: &str) {
    let d = a.differences_from(b);
    assert!(d.is_empty(), "{context}: {} differences: {:#?}", d.len(), d);
}

/// API-5.0 3.1, 7.1, BEHAVIOR 9.4 and open point 43 (verbatim_restore_test): `restore`
/// keeps every metadata field, commits nothing, fires no event, updates the expiry and
/// availability indexes, is idempotent and enforces the key rules.
pub async fn restore_writes_the_value_verbatim_without_commit_or_event(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ks.put("seed.wavi@alice", v("s"), W).await.unwrap();
    let mark = last(&log).await;
    let mut events = ks.changes();

    let value = AtData::with_meta("the-value", full_meta(0));
    ks.restore("Phone.Wavi@alice", value.clone()).await.unwrap();
    let got = ks.get("phone.wavi@alice").await.unwrap();
    assert_eq!(got.data, value.data);
    assert_eq!(got.meta_data, value.meta_data, "every metadata field kept");
    assert_eq!(meta(ks, "phone.wavi@alice").await.version, Some(99));
    assert_eq!(last(&log).await, mark, "restore consumes no commit id");
    assert_eq!(
        log.get_latest_commit_entry("phone.wavi@alice")
            .await
            .unwrap(),
        None,
        "restore writes no commit entry"
    );
    ks.restore("phone.wavi@alice", value.clone()).await.unwrap();
    assert_eq!(
        ks.get("phone.wavi@alice").await.unwrap().meta_data,
        value.meta_data
    );
    assert_eq!(log.entries_count().await.unwrap(), 1, "idempotent");

    // Expiry and availability indexes follow the restored metadata.
    let expiring = AtData::with_meta(
        "e",
        AtMetaData {
            expires_at: Some(T0.plus_millis(1_000)),
            ..Default::default()
        },
    );
    ks.restore("soon.wavi@alice", expiring).await.unwrap();
    let unborn = AtData::with_meta(
        "u",
        AtMetaData {
            available_at: Some(T0.plus_millis(5_000)),
            ..Default::default()
        },
    );
    ks.restore("later.wavi@alice", unborn).await.unwrap();
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(1_000))
    );
    let visible = collect(ks.get_keys(None).await.unwrap()).await;
    assert!(visible.contains(&"soon.wavi@alice".to_string()));
    assert!(!visible.contains(&"later.wavi@alice".to_string()), "unborn");
    ctx.clock.advance(6_000);
    let expired = collect(ks.get_expired_keys().await.unwrap()).await;
    assert_eq!(expired, vec!["soon.wavi@alice".to_string()]);
    let visible = collect(ks.get_keys(None).await.unwrap()).await;
    assert!(
        visible.contains(&"later.wavi@alice".to_string()),
        "born now"
    );
    assert!(!visible.contains(&"soon.wavi@alice".to_string()), "expired");

    // Key rules.
    match ks.restore("no at sign", v("x")).await {
        Err(PersistenceError::InvalidKey { .. }) => {}
        other => panic!("restore of an invalid key: {other:?}"),
    }
    let long = format!("{}.wavi@alice", "a".repeat(300));
    match ks.restore(&long, v("x")).await {
        Err(PersistenceError::KeyTooLong { .. }) => {}
        other => panic!("restore of an over-long key: {other:?}"),
    }
    assert!(!ks.exists(&long).await.unwrap());
    assert_no_event(&mut events, "restore").await;
}

/// API-5.0 7.1: access-log `replay` keeps each entry's fields and order; notifications
/// come back from `iterate` and `put` stores them as they are.
pub async fn access_replay_and_notification_put_keep_every_field(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = b.access_log().unwrap();
    let old = AccessLogEntry {
        from_at_sign: Some("@x".into()),
        request_date_time: Some(Timestamp::from_millis(1_551_675_967_008)),
        verb_name: Some("lookup".into()),
        lookup_key: Some("phone@x".into()),
    };
    log.replay(old.clone()).await.unwrap();
    log.replay(AccessLogEntry::default()).await.unwrap();
    log.insert("@y", "pol", None).await.unwrap();
    let all = collect(log.iterate().await.unwrap()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], old);
    assert_eq!(all[1], AccessLogEntry::default());
    assert_eq!(all[2].request_date_time, Some(T0));

    let nk = b.notification_keystore().unwrap();
    let n = notification(
        "n1",
        NotificationType::Received,
        NotificationStatus::Expired,
        OperationType::Delete,
        Timestamp::from_millis(1_000),
    );
    nk.put("n1", n.clone(), W).await.unwrap();
    let back = collect(nk.iterate().await.unwrap()).await;
    assert_eq!(back, vec![n.clone()], "stored as is, expired or not");
    let (f2, other) = target(&ctx, "@alice").await;
    let nk2 = other.notification_keystore().unwrap();
    for n in back {
        let id = n.id.clone();
        nk2.put(&id, n, W).await.unwrap();
    }
    assert_eq!(nk2.get("n1").await.unwrap(), n);
    f2.close().await;
}

/// API-5.0 7.2 and the "done" list: a rich server bundle migrates into a fresh
/// one with no difference under the snapshot; counts add up, no event fires on the target,
/// and the target's next commit id is the source's last + 1, also after a restart.
pub async fn migrate_copies_every_store_and_matches_the_source(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server(ALICE).await;
    let planted = populate(&ctx, &source, 300).await;
    let before = PersistenceSnapshot::capture(&source).await.unwrap();
    let source_log = cl(source.key_value_store());
    let source_last = last(&source_log).await;
    let source_entries = source_log.entries_count().await.unwrap();

    let (tf, dest) = target(&ctx, ALICE).await;
    let mut events = dest.key_value_store().changes();
    let report = PersistenceMigrator::new()
        .migrate(&source, &dest)
        .await
        .expect("migrate");
    assert_eq!(report.keys, count_keys(&source).await);
    assert_eq!(report.orphaned_commit_entries, planted.orphans);
    assert_eq!(report.commit_entries, source_entries - planted.orphans);
    assert_eq!(
        report.access_entries,
        source.access_log().unwrap().entries_count().await.unwrap()
    );
    assert_eq!(report.notifications, 25);
    assert_eq!(report.last_committed_sequence_number, Some(source_last));
    assert_no_event(&mut events, "migration (restore and replay fire none)").await;

    let after = PersistenceSnapshot::capture(&dest).await.unwrap();
    assert_matches(&before, &after, "target vs source");
    assert_matches(
        &before,
        &PersistenceSnapshot::capture(&source).await.unwrap(),
        "the source is unchanged",
    );
    let dest_log = cl(dest.key_value_store());
    assert_eq!(last(&dest_log).await, source_last);

    // Restart the target: same picture, and numbering goes on from the source's last.
    tf.close().await;
    let dest = reopen_target(&ctx, &tf, ALICE).await;
    assert_matches(
        &before,
        &PersistenceSnapshot::capture(&dest).await.unwrap(),
        "target after a restart",
    );
    let id = dest
        .key_value_store()
        .put(&format!("after.wavi{ALICE}"), v("1"), W)
        .await
        .unwrap();
    assert_eq!(id, Some(source_last + 1));
    tf.close().await;
}

/// API-5.0 7.2: a non-DELETE entry without a record is dropped and counted; a DELETE
/// tombstone is kept; an expired key whose record is still present keeps its entry; the
/// mark is carried even when the newest id was the orphan's.
pub async fn migrate_drops_orphans_and_keeps_tombstones_and_expired_keys(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server("@alice").await;
    let ks = source.key_value_store();
    let log = cl(ks);
    ks.put("a.wavi@alice", v("a"), W).await.unwrap(); // 0
    ks.put(
        "b.wavi@alice",
        AtData::with_meta(
            "b",
            AtMetaData {
                ttl: Some(1_000),
                ..Default::default()
            },
        ),
        W,
    )
    .await
    .unwrap(); // 1
    ks.remove("c.wavi@alice", R).await.unwrap(); // 2: a tombstone with no record
    log.commit("Ghost.Wavi@alice", CommitOp::UpdateAll, None)
        .await
        .unwrap(); // 3: an orphan
    ctx.clock.advance(5_000);
    assert_eq!(last(&log).await, 3);

    let (tf, dest) = target(&ctx, "@alice").await;
    let report = PersistenceMigrator::new()
        .migrate(&source, &dest)
        .await
        .unwrap();
    assert_eq!(report.keys, 2);
    assert_eq!(report.commit_entries, 3);
    assert_eq!(report.orphaned_commit_entries, 1);
    let dest_log = cl(dest.key_value_store());
    assert_eq!(
        entries(&dest_log).await,
        vec![
            (0, "a.wavi@alice".to_string(), "+"),
            (1, "b.wavi@alice".to_string(), "*"),
            (2, "c.wavi@alice".to_string(), "-"),
        ]
    );
    assert_eq!(
        last(&dest_log).await,
        3,
        "the orphan's id still counts as issued"
    );
    assert_matches(
        &PersistenceSnapshot::capture(&source).await.unwrap(),
        &PersistenceSnapshot::capture(&dest).await.unwrap(),
        "orphan dropped, the rest equal",
    );
    assert_eq!(
        dest.key_value_store()
            .put("d.wavi@alice", v("d"), W)
            .await
            .unwrap(),
        Some(4)
    );
    tf.close().await;
}

/// The issue: `migrate` and `import` refuse a target that holds anything
/// (`TargetNotEmpty` naming the store), before writing anything.
pub async fn migrate_and_import_refuse_a_non_empty_target(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server("@alice").await;
    source
        .key_value_store()
        .put("s.wavi@alice", v("s"), W)
        .await
        .unwrap();
    let file = ctx.root.path().join("alice.atbackup");
    LogicalBackup::new()
        .export_to_path(&source, &file)
        .await
        .unwrap();
    let (tf, dest) = target(&ctx, "@alice").await;
    let ks = dest.key_value_store();
    let dl = cl(ks);
    let mut cases: Vec<&'static str> = Vec::new();
    for store in [
        "keystore",
        "commit log",
        "commit log",
        "access log",
        "notification keystore",
    ] {
        dest.clear().await.unwrap();
        match cases.len() {
            0 => ks.restore("t.wavi@alice", v("t")).await.unwrap(),
            1 => {
                dl.commit("t.wavi@alice", CommitOp::Update, None)
                    .await
                    .unwrap();
            }
            2 => dl.raise_last_committed_sequence_number(5).await.unwrap(),
            3 => {
                dest.access_log()
                    .unwrap()
                    .insert("@x", "pol", None)
                    .await
                    .unwrap();
            }
            _ => {
                let n = notification(
                    "t",
                    NotificationType::Sent,
                    NotificationStatus::Queued,
                    OperationType::Update,
                    T0,
                );
                dest.notification_keystore()
                    .unwrap()
                    .put("t", n, W)
                    .await
                    .unwrap();
            }
        }
        cases.push(store);
        let before = PersistenceSnapshot::capture(&dest).await.unwrap();
        let mark = last(&dl).await;
        match PersistenceMigrator::new().migrate(&source, &dest).await {
            Err(PersistenceError::TargetNotEmpty { store: s }) => assert_eq!(s, store),
            other => panic!("migrate into a non-empty {store}: {other:?}"),
        }
        match LogicalBackup::new().import_from_path(&dest, &file).await {
            Err(PersistenceError::TargetNotEmpty { store: s }) => assert_eq!(s, store),
            other => panic!("import into a non-empty {store}: {other:?}"),
        }
        assert_matches(
            &before,
            &PersistenceSnapshot::capture(&dest).await.unwrap(),
            "the refused target is unchanged",
        );
        assert_eq!(last(&dl).await, mark);
        assert!(!ks.exists("s.wavi@alice").await.unwrap());
    }
    dest.clear().await.unwrap();
    PersistenceMigrator::new()
        .migrate(&source, &dest)
        .await
        .expect("a cleared target is empty again");
    tf.close().await;
}

/// API-5.0 7.2: a store present on only one side is skipped (count 0); data moves
/// between server and client bundles; another atSign's bundle is refused.
pub async fn migrate_skips_stores_absent_on_either_side(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server("@alice").await;
    populate(&ctx, &source, 30).await;
    let (cf, client) = client_target(&ctx, "@alice").await;
    let report = PersistenceMigrator::new()
        .migrate(&source, &client)
        .await
        .unwrap();
    assert_eq!(report.keys, count_keys(&source).await);
    assert_eq!(
        (
            report.commit_entries,
            report.orphaned_commit_entries,
            report.access_entries,
            report.notifications,
            report.last_committed_sequence_number
        ),
        (0, 0, 0, 0, None)
    );
    let server_keys = PersistenceSnapshot::capture(&source).await.unwrap();
    let client_keys = PersistenceSnapshot::capture(&client).await.unwrap();
    assert_eq!(
        server_keys.counts()["keystore"],
        client_keys.counts()["keystore"]
    );
    assert!(
        !server_keys.matches(&client_keys),
        "the client lacks three stores"
    );

    // Client → server: the keys come back; the target's commit log stays empty.
    let (sf, server) = target(&ctx, "@alice").await;
    let back = PersistenceMigrator::new()
        .migrate(&client, &server)
        .await
        .unwrap();
    assert_eq!(back.keys, report.keys);
    assert_eq!(back.last_committed_sequence_number, None);
    assert_eq!(last(&cl(server.key_value_store())).await, -1);
    assert_eq!(
        PersistenceSnapshot::capture(&server)
            .await
            .unwrap()
            .counts()["keystore"],
        server_keys.counts()["keystore"]
    );

    // Another atSign.
    let bob = ctx.server("@bob").await;
    match PersistenceMigrator::new().migrate(&source, &bob).await {
        Err(PersistenceError::InvalidArgument { name, .. }) => assert_eq!(name, "target"),
        other => panic!("migrate into another atSign: {other:?}"),
    }
    assert_eq!(count_keys(&bob).await, 0);
    cf.close().await;
    sf.close().await;
}

/// persistence_snapshot_test (API-5.0 9, 7.3): the tolerance rule ignores non-DELETE
/// entries of expired or missing keys; an entry of a live key, or a DELETE, on one side
/// only is a difference; the access log is a multiset.
pub async fn snapshot_differences_follow_the_tolerance_rule(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let a = ctx.server("@a").await;
    let (bf, b) = target(&ctx, "@a").await;
    let t2021 = Timestamp::from_millis(1_609_459_200_000);
    let live = AtData::with_meta(
        "v",
        AtMetaData {
            created_at: Some(t2021),
            updated_at: Some(t2021),
            version: Some(0),
            ..Default::default()
        },
    );
    let expired = AtData::with_meta(
        "v",
        AtMetaData {
            created_at: Some(t2021),
            updated_at: Some(t2021),
            version: Some(0),
            ttl: Some(200),
            expires_at: Some(t2021.plus_millis(200)),
            ..Default::default()
        },
    );
    for bundle in [&a, &b] {
        let ks = bundle.key_value_store();
        ks.restore("k.wavi@a", live.clone()).await.unwrap();
        cl(ks)
            .replay(CommitEntry::new("k.wavi@a", CommitOp::UpdateAll, t2021, 1))
            .await
            .unwrap();
        ks.restore("ttlkey.wavi@a", expired.clone()).await.unwrap();
    }
    let snap = |x: &Arc<Bundle>| {
        let x = Arc::clone(x);
        async move { PersistenceSnapshot::capture(&x).await.unwrap() }
    };
    assert!(snap(&a).await.matches(&snap(&b).await));
    cl(a.key_value_store())
        .replay(CommitEntry::new(
            "ttlkey.wavi@a",
            CommitOp::UpdateAll,
            t2021,
            50,
        ))
        .await
        .unwrap();
    assert!(
        snap(&a).await.matches(&snap(&b).await),
        "an entry of an expired key is not compared"
    );
    cl(a.key_value_store())
        .replay(CommitEntry::new(
            "nokey.wavi@a",
            CommitOp::Update,
            t2021,
            51,
        ))
        .await
        .unwrap();
    assert!(
        snap(&a).await.matches(&snap(&b).await),
        "an entry of a missing key is not compared"
    );

    for bundle in [&a, &b] {
        bundle
            .key_value_store()
            .restore("live.wavi@a", live.clone())
            .await
            .unwrap();
    }
    cl(a.key_value_store())
        .replay(CommitEntry::new(
            "live.wavi@a",
            CommitOp::UpdateAll,
            t2021,
            7,
        ))
        .await
        .unwrap();
    let d = snap(&a).await.differences_from(&snap(&b).await);
    assert!(!d.is_empty(), "an entry of a live key on one side differs");
    assert!(d.iter().all(|l| l.starts_with("commitLog")), "{d:?}");
    assert_eq!(
        snap(&a).await.describe_difference_from(&snap(&b).await),
        d.first().cloned()
    );
    cl(b.key_value_store())
        .replay(CommitEntry::new(
            "live.wavi@a",
            CommitOp::UpdateAll,
            t2021,
            7,
        ))
        .await
        .unwrap();
    assert!(snap(&a).await.matches(&snap(&b).await));

    cl(a.key_value_store())
        .replay(CommitEntry::new("gone.wavi@a", CommitOp::Delete, t2021, 9))
        .await
        .unwrap();
    assert!(
        !snap(&a).await.matches(&snap(&b).await),
        "a DELETE on one side differs"
    );
    cl(b.key_value_store())
        .replay(CommitEntry::new("gone.wavi@a", CommitOp::Delete, t2021, 9))
        .await
        .unwrap();
    assert!(snap(&a).await.matches(&snap(&b).await));

    // The access log is compared as a multiset; values and notifications by content.
    let e = |from: &str, t: i64| AccessLogEntry {
        from_at_sign: Some(from.into()),
        request_date_time: Some(Timestamp::from_millis(t)),
        verb_name: Some("pol".into()),
        lookup_key: None,
    };
    let (al_a, al_b) = (a.access_log().unwrap(), b.access_log().unwrap());
    al_a.replay(e("@x", 1)).await.unwrap();
    al_a.replay(e("@y", 2)).await.unwrap();
    al_b.replay(e("@y", 2)).await.unwrap();
    assert!(!snap(&a).await.matches(&snap(&b).await));
    al_b.replay(e("@x", 1)).await.unwrap();
    assert!(
        snap(&a).await.matches(&snap(&b).await),
        "order is not compared"
    );
    b.key_value_store()
        .restore(
            "k.wavi@a",
            AtData::with_meta("other", live.meta_data.clone().unwrap()),
        )
        .await
        .unwrap();
    let d = snap(&a).await.differences_from(&snap(&b).await);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("keystore"), "{d:?}");
    let counts = snap(&a).await.counts();
    assert_eq!(counts["keystore"], 3);
    assert_eq!(counts["accessLog"], 2);
    assert_eq!(counts["notifications"], 0);
    bf.close().await;
}

/// The issue: a bundle exported to a logical backup and imported into a fresh one has no
/// difference under the snapshot; the import carries the mark and fires no events.
pub async fn backup_round_trip_matches_the_source(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server(ALICE).await;
    let planted = populate(&ctx, &source, 200).await;
    let before = PersistenceSnapshot::capture(&source).await.unwrap();
    let source_last = last(&cl(source.key_value_store())).await;
    let file = ctx.root.path().join("alice.atbackup");
    // Small chunks, so the stream has many of them.
    let backup = LogicalBackup::new().with_chunk_bytes(4 * 1024);
    let written = backup.export_to_path(&source, &file).await.unwrap();
    assert!(written.chunks > 4, "{written:?}");
    assert_eq!(written.at_sign, ALICE);
    assert_eq!(written.last_committed_sequence_number, Some(source_last));
    assert_eq!(backup.verify_path(&file).unwrap(), written);

    let (tf, dest) = target(&ctx, ALICE).await;
    let mut events = dest.key_value_store().changes();
    let report = backup.import_from_path(&dest, &file).await.unwrap();
    assert_eq!(report.keys, written.keys);
    assert_eq!(report.orphaned_commit_entries, planted.orphans);
    assert_eq!(
        report.commit_entries + report.orphaned_commit_entries,
        written.commit_entries
    );
    assert_eq!(report.access_entries, written.access_entries);
    assert_eq!(report.notifications, written.notifications);
    assert_no_event(&mut events, "import").await;
    assert_matches(
        &before,
        &PersistenceSnapshot::capture(&dest).await.unwrap(),
        "imported vs source",
    );
    tf.close().await;
    let dest = reopen_target(&ctx, &tf, ALICE).await;
    assert_eq!(
        dest.key_value_store()
            .put(&format!("next.wavi{ALICE}"), v("n"), W)
            .await
            .unwrap(),
        Some(source_last + 1)
    );
    tf.close().await;
}

/// The issue: a truncated stream, a flipped byte and a newer format version are each
/// `InvalidBackup`, and the target stays empty.
pub async fn backup_import_refuses_a_damaged_stream_and_writes_nothing(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let source = ctx.server("@alice").await;
    populate(&ctx, &source, 60).await;
    let mut bytes = Vec::new();
    LogicalBackup::new()
        .with_chunk_bytes(512)
        .export(&source, &mut bytes)
        .await
        .unwrap();
    let (tf, dest) = target(&ctx, "@alice").await;
    let mut damaged: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() - 3].to_vec()),
        ("truncated to the header", bytes[..40].to_vec()),
    ];
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    damaged.push(("flipped byte", flipped));
    let mut newer = bytes.clone();
    newer[8] = 2;
    damaged.push(("newer version", newer));
    for (what, stream) in damaged {
        match LogicalBackup::new()
            .import(&dest, std::io::Cursor::new(stream))
            .await
        {
            Err(PersistenceError::InvalidBackup { reason }) => {
                if what == "newer version" {
                    assert!(reason.contains("newer"), "{reason}");
                }
            }
            other => panic!("{what}: expected InvalidBackup, got {other:?}"),
        }
        assert_eq!(count_keys(&dest).await, 0, "{what}: nothing written");
        assert_eq!(last(&cl(dest.key_value_store())).await, -1, "{what}");
        assert_eq!(dest.access_log().unwrap().entries_count().await.unwrap(), 0);
        assert_eq!(
            dest.notification_keystore()
                .unwrap()
                .entries_count()
                .await
                .unwrap(),
            0
        );
    }
    LogicalBackup::new()
        .import(&dest, std::io::Cursor::new(bytes))
        .await
        .expect("the undamaged stream imports");
    tf.close().await;
}
