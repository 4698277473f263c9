//! Notification keystore cases of the rich surface (API-5.0 2.1, 2.4-2.7, 5.4 and the
//! notification parts of API-5.0 9: remove_many_test, exists_test, keystore_changes_test,
//! snapshot_test, transaction_test, stats_test, min_max_first_class_test).
//!
//! The 5.0 scan_keys assertions on the notification store itself are dropped (scan_keys
//! lives on the main keystore, API-5.0 §11.12); its snapshot's scan_keys remains.

use super::{added, assert_no_event, collect, next_events, removed, updated, R, W};
use crate::conformance::{Backend, Ctx, T0};
use crate::model::{
    AtNotification, AtNotificationBuilder, Clock, NotificationStatus, NotificationType, Timestamp,
};
use crate::store::{
    CompactedItem, KeyPattern, KeyValueStoreExt, NotificationEvent, NotificationKeystore,
    NotificationStream,
};
use crate::PersistenceError;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// One day in milliseconds.
const DAY: i64 = 86_400_000;

/// The notification keystore of a server bundle.
fn nk(b: &crate::store::Bundle) -> Arc<dyn NotificationKeystore> {
    Arc::clone(
        b.notification_keystore()
            .expect("a server bundle has a notification keystore"),
    )
}

/// A notification with `id` and `ttl` (ms) built at `now`.
fn note(id: &str, ttl: i64, now: Timestamp) -> AtNotification {
    AtNotificationBuilder {
        id: id.into(),
        ttl: Some(ttl),
        notification: Some(format!("@bob:{id}.wavi@alice")),
        from_at_sign: Some("@alice".into()),
        to_at_sign: Some("@bob".into()),
        notification_type: Some(NotificationType::Sent),
        ..AtNotificationBuilder::new()
    }
    .build_at(now)
}

/// Stores `n` under its own id.
async fn put(store: &Arc<dyn NotificationKeystore>, n: &AtNotification) {
    store
        .put(&n.id, n.clone(), W)
        .await
        .unwrap_or_else(|e| panic!("put({}): {e}", n.id));
}

/// Every stored notification, in id order.
async fn all(store: &Arc<dyn NotificationKeystore>) -> Vec<AtNotification> {
    collect(store.iterate().await.expect("iterate")).await
}

/// Every stored id, in the store's order.
async fn ids(store: &Arc<dyn NotificationKeystore>) -> Vec<String> {
    collect(store.get_keys(None).await.expect("get_keys")).await
}

/// The expired ids (`get_expired_keys`).
async fn expired_ids(store: &Arc<dyn NotificationKeystore>) -> Vec<String> {
    collect(store.get_expired_keys().await.expect("get_expired_keys")).await
}

/// `peek_expired(as_of, limit)`.
async fn peek(
    store: &Arc<dyn NotificationKeystore>,
    as_of: Option<Timestamp>,
    limit: Option<usize>,
) -> Vec<String> {
    collect(
        store
            .peek_expired(as_of, limit)
            .await
            .expect("peek_expired"),
    )
    .await
}

/// Owned strings in the given order.
fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every stored notification and the entry count.
async fn fingerprint(store: &Arc<dyn NotificationKeystore>) -> (Vec<AtNotification>, u64) {
    (
        all(store).await,
        store.entries_count().await.expect("entries_count"),
    )
}

/// The next stored-notification event, or `None` when none arrives within a short wait.
async fn next_stored(s: &mut NotificationStream, wait: Duration) -> Option<NotificationEvent> {
    tokio::time::timeout(wait, s.next()).await.ok().flatten()
}

/// remove_many_test and get_many_test (notification parts): ids are taken as given
/// (case-sensitive); get_many omits absent ids and collapses duplicates; remove_many
/// counts the ids actually removed and emits one KeyRemoved each.
pub async fn notification_get_many_and_remove_many_count_present_ids(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    for id in ["n1", "n2", "n3"] {
        put(&store, &note(id, 60_000, now)).await;
    }
    let got = store
        .get_many(&["n1", "n2", "absent", "n1", "N1"])
        .await
        .unwrap();
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        owned(&["n1", "n2"]),
        "absent ids omitted, duplicates collapse, ids are case-sensitive"
    );
    assert_eq!(got["n2"], store.get("n2").await.unwrap());
    assert!(store.get_many(&[]).await.unwrap().is_empty());

    let mut events = store.changes();
    assert_eq!(store.remove_many(&["n1", "n2"], false).await.unwrap(), 2);
    assert_eq!(store.entries_count().await.unwrap(), 1);
    assert_eq!(ids(&store).await, owned(&["n3"]));
    assert_eq!(
        next_events(&mut events, 2).await,
        vec![removed("n1"), removed("n2")]
    );
    assert_eq!(
        store.remove_many(&["n1", "absent"], false).await.unwrap(),
        0
    );
    assert_eq!(store.remove_many(&[], false).await.unwrap(), 0);
    assert_eq!(store.remove_many(&["N3"], false).await.unwrap(), 0);
    assert_no_event(&mut events, "nothing removed").await;
    assert_eq!(
        store.remove_many(&["n3", "n3", "n3"], true).await.unwrap(),
        1
    );
    assert_eq!(next_events(&mut events, 1).await, vec![removed("n3")]);
    assert_eq!(store.entries_count().await.unwrap(), 0);
    assert_no_event(&mut events, "one removal").await;
}

/// exists_test and keystore_changes_test (notification parts): exists follows put and
/// remove; put of a new id is KeyAdded, of a stored id KeyUpdated; remove of a stored id
/// is KeyRemoved and of an absent id emits nothing.
pub async fn notification_exists_and_changes_follow_put_and_remove(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    let n = note("abc-1", 60_000, now);
    assert!(!store.exists("does-not-exist").await.unwrap());
    let mut events = store.changes();
    put(&store, &n).await;
    assert!(store.exists("abc-1").await.unwrap());
    assert!(
        !store.exists("ABC-1").await.unwrap(),
        "ids are case-sensitive"
    );
    put(&store, &n).await;
    store.create(&n.id, n.clone(), W).await.unwrap();
    store.remove("abc-1", R).await.unwrap();
    assert!(!store.exists("abc-1").await.unwrap());
    assert!(matches!(
        store.get("abc-1").await,
        Err(PersistenceError::KeyNotFound { .. })
    ));
    store.remove("abc-1", R).await.unwrap();
    assert_eq!(
        next_events(&mut events, 4).await,
        vec![
            added("abc-1"),
            updated("abc-1"),
            updated("abc-1"),
            removed("abc-1")
        ]
    );
    assert_no_event(&mut events, "remove of an absent id").await;

    // Two subscribers each see put then remove; a late one misses earlier events.
    let mut first = store.changes();
    let mut second = store.changes();
    put(&store, &note("m", 60_000, now)).await;
    let mut late = store.changes();
    store.remove("m", R).await.unwrap();
    for s in [&mut first, &mut second] {
        assert_eq!(next_events(s, 2).await, vec![added("m"), removed("m")]);
    }
    assert_eq!(next_events(&mut late, 1).await, vec![removed("m")]);
    assert_no_event(&mut late, "late subscriber").await;
}

/// snapshot_test (notification part), API-5.0 2.3 and 2.6: supports_snapshots is false;
/// a snapshot reads live state (absent → None); its scan_keys yields every id for the
/// unrestricted pattern (expired ones too) and none for any atKey field; after release
/// every read is SnapshotReleased.
pub async fn notification_snapshot_reads_live_state_and_scans_only_the_unrestricted_pattern(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    assert_eq!(store.supports_snapshots(), backend.capabilities().snapshots);
    let now = ctx.clock.now();
    let n1 = note(&AtNotificationBuilder::new().id, 60_000, now);
    let short = note("short-lived", 1, now);
    put(&store, &n1).await;
    put(&store, &short).await;
    ctx.clock.advance(10);
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.get(&n1.id).await.unwrap(), Some(n1.clone()));
    assert_eq!(snap.get("absent").await.unwrap(), None);
    let mut every = vec![n1.id.clone(), short.id.clone()];
    every.sort();
    let mut got = collect(snap.scan_keys(&KeyPattern::default()).await.unwrap()).await;
    got.sort();
    assert_eq!(got, every, "the unrestricted pattern yields every id");
    for pattern in [
        KeyPattern {
            shared_by: Some("@alice".into()),
            ..Default::default()
        },
        KeyPattern {
            shared_with: Some("@bob".into()),
            ..Default::default()
        },
        KeyPattern {
            namespace: Some("wavi".into()),
            ..Default::default()
        },
        KeyPattern {
            id_prefix: Some(n1.id[..2].to_string()),
            ..Default::default()
        },
    ] {
        assert!(
            collect(snap.scan_keys(&pattern).await.unwrap())
                .await
                .is_empty(),
            "{pattern} matches no notification id"
        );
    }
    let n2 = note("later", 60_000, ctx.clock.now());
    put(&store, &n2).await;
    let seen = snap.get("later").await.unwrap();
    if store.supports_snapshots() {
        assert_eq!(seen, None, "an isolated snapshot");
    } else {
        assert_eq!(seen, Some(n2), "a live snapshot sees later writes");
    }
    snap.release().await;
    snap.release().await;
    assert!(matches!(
        snap.get(&n1.id).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        snap.scan_keys(&KeyPattern::default()).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(
        store.exists(&n1.id).await.unwrap(),
        "the store is untouched"
    );
}

/// transaction_test (notification part), API-5.0 2.5: with n stored, a transaction that
/// puts m and removes n leaves m and not n, fires the events of the applied ops in the
/// order of each id's last op and publishes stored received notifications after commit; a
/// failing body applies nothing and fires nothing; reads see the buffer; the latest op per
/// id wins; a second commit is InvalidArgument.
pub async fn notification_transaction_applies_atomically_or_not_at_all(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    let n = note("n", 60_000, now);
    put(&store, &n).await;
    let before = fingerprint(&store).await;
    let mut events = store.changes();
    let mut stored = store.subscribe_notifications();
    let m = AtNotification {
        notification_type: Some(NotificationType::Received),
        ..note("m", 60_000, now)
    };

    // A failing body: nothing applied, no events, its error unchanged.
    let (m1, s1) = (m.clone(), Arc::clone(&store));
    let r: Result<(), _> = store
        .transaction(|txn| async move {
            txn.put("m", m1).await?;
            txn.remove("n").await?;
            assert!(txn.exists("m").await?);
            assert!(!txn.exists("n").await?, "None after a buffered remove");
            assert!(
                !s1.exists("m").await?,
                "nothing reaches the store before commit"
            );
            Err(PersistenceError::KeyNotFound {
                key: "sentinel-from-the-body".into(),
            })
        })
        .await;
    match r {
        Err(PersistenceError::KeyNotFound { key }) => assert_eq!(key, "sentinel-from-the-body"),
        other => panic!("the body's error should come back unchanged, got {other:?}"),
    }
    assert_eq!(fingerprint(&store).await, before, "nothing applied");
    assert_no_event(&mut events, "a failed transaction").await;
    assert_eq!(
        next_stored(&mut stored, Duration::from_millis(150)).await,
        None
    );

    // A successful one.
    let (m1, n1) = (m.clone(), n.clone());
    let out = store
        .transaction(|txn| async move {
            assert_eq!(txn.get("n").await?, Some(n1), "the store's value");
            assert_eq!(txn.get("absent").await?, None, "absent is None");
            txn.put("x", note("x", 1000, now)).await?;
            txn.put("m", m1.clone()).await?;
            txn.remove("n").await?;
            assert_eq!(txn.get("m").await?, Some(m1), "the buffered value");
            txn.remove("x").await?; // x ends removed: it was never stored
            Ok(7)
        })
        .await
        .unwrap();
    assert_eq!(out, 7);
    assert!(store.exists("m").await.unwrap());
    assert!(!store.exists("n").await.unwrap());
    assert!(!store.exists("x").await.unwrap());
    assert_eq!(store.entries_count().await.unwrap(), 1);
    assert_eq!(
        next_events(&mut events, 2).await,
        vec![added("m"), removed("n")],
        "events in the order of each id's last op; nothing for the absent x"
    );
    assert_no_event(&mut events, "after the transaction").await;
    match next_stored(&mut stored, Duration::from_secs(5)).await {
        Some(NotificationEvent::Stored(got)) => assert_eq!(*got, m),
        other => panic!("the received notification should be published, got {other:?}"),
    }
    assert_eq!(ids(&store).await, owned(&["m"]));
    assert_eq!(store.next_expires_at().await.unwrap(), m.expires_at);

    // Reuse after commit and a dropped transaction.
    let txn = store.begin_transaction().await.unwrap();
    txn.put("y", note("y", 1000, now)).await.unwrap();
    txn.commit().await.unwrap();
    assert!(matches!(
        txn.commit().await,
        Err(PersistenceError::InvalidArgument { .. })
    ));
    assert!(matches!(
        txn.put("z", note("z", 1000, now)).await,
        Err(PersistenceError::InvalidArgument { .. })
    ));
    {
        let t = store.begin_transaction().await.unwrap();
        t.remove("m").await.unwrap();
    }
    assert!(
        store.exists("m").await.unwrap(),
        "a dropped transaction discards"
    );
    assert_eq!(next_events(&mut events, 1).await, vec![added("y")]);
    assert_no_event(&mut events, "a dropped transaction").await;
}

/// stats_test (notification part), API-5.0 2.7: total, notifications with a ttl (every
/// built one), ttb always 0, oldest/newest notification_date_time.
pub async fn notification_stats_count_ttls_and_date_edges(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    let s = store.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (0, 0, 0));
    assert_eq!((s.oldest_created_at, s.newest_created_at), (None, None));
    put(&store, &note("a", 60_000, ctx.clock.now())).await;
    ctx.clock.advance(10);
    put(&store, &note("b", 60_000, ctx.clock.now())).await;
    let s = store.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (2, 2, 0));
    assert_eq!(s.oldest_created_at, Some(T0));
    assert_eq!(s.newest_created_at, Some(T0.plus_millis(10)));
    let undated = AtNotification {
        ttl: None,
        notification_date_time: None,
        ..note("c", 60_000, ctx.clock.now())
    };
    put(&store, &undated).await;
    let s = store.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (3, 2, 0));
    assert_eq!(s.newest_created_at, Some(T0.plus_millis(10)));
    ctx.clock.advance(DAY * 30);
    assert_eq!(
        store.stats().await.unwrap().total_keys,
        3,
        "expired notifications are counted"
    );
    store.remove("a", R).await.unwrap();
    let s = store.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys), (2, 1));
    assert_eq!(s.oldest_created_at, Some(T0.plus_millis(10)));
}

/// min_max_first_class_test (notification store), API-5.0 5.4: next_expires_at,
/// peek_expired and get_expired_keys use the effective expiry: a status-expired or
/// date-less notification counts from the epoch; one made more than 8 days ago is expired
/// whatever its expires_at; the boundary instant is expired; ascending order and limit.
pub async fn notification_expiry_queries_use_the_effective_expiry(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_n").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    assert_eq!(store.next_expires_at().await.unwrap(), None);
    let soon = note("soon", 100_000, now);
    put(&store, &soon).await;
    put(&store, &note("late", 600_000, now)).await;
    assert_eq!(store.next_expires_at().await.unwrap(), soon.expires_at);
    assert!(expired_ids(&store).await.is_empty());
    assert!(peek(&store, None, None).await.is_empty());
    let at = soon.expires_at.expect("built with an expiry");
    assert_eq!(
        peek(&store, Some(at.minus_millis(1)), None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        peek(&store, Some(at), None).await,
        owned(&["soon"]),
        "expired at its instant"
    );
    store.remove_many(&["soon", "late"], false).await.unwrap();

    let dead = AtNotification {
        notification_status: Some(NotificationStatus::Expired),
        ..note("dead", 600_000, now)
    };
    put(&store, &dead).await;
    put(&store, &note("live", 600_000, now)).await;
    assert_eq!(
        store.next_expires_at().await.unwrap(),
        Some(Timestamp::EPOCH)
    );
    assert_eq!(expired_ids(&store).await, owned(&["dead"]));
    assert_eq!(peek(&store, None, None).await, owned(&["dead"]));

    let outlived = AtNotificationBuilder {
        id: "outlived".into(),
        notification_date_time: Some(now.minus_millis(AtNotification::MAX_TTL_MS + DAY)),
        expires_at: Some(now.plus_millis(3_600_000)),
        ..AtNotificationBuilder::new()
    }
    .build_at(now);
    assert!(outlived.is_expired_at(now));
    put(&store, &outlived).await;
    let undated = AtNotification {
        notification_date_time: None,
        ..note("undated", 600_000, now)
    };
    assert!(undated.is_expired_at(now));
    put(&store, &undated).await;
    let mut got = expired_ids(&store).await;
    got.sort();
    assert_eq!(got, owned(&["dead", "outlived", "undated"]));
    let mut peeked = peek(&store, None, None).await;
    assert_eq!(peeked.len(), 3);
    assert_eq!(
        peeked.last().map(String::as_str),
        Some("outlived"),
        "ascending effective expiry: the epoch ones first"
    );
    peeked.sort();
    assert_eq!(peeked, got, "peek_expired(now) == get_expired_keys");
    store
        .remove_many(&["dead", "outlived", "undated", "live"], false)
        .await
        .unwrap();

    put(&store, &note("n2", 200_000, now)).await;
    put(&store, &note("n1", 100_000, now)).await;
    put(&store, &note("n3", 300_000, now)).await;
    let tomorrow = Some(now.plus_millis(DAY));
    assert_eq!(
        peek(&store, tomorrow, None).await,
        owned(&["n1", "n2", "n3"])
    );
    assert_eq!(peek(&store, tomorrow, Some(1)).await, owned(&["n1"]));
    assert!(peek(&store, tomorrow, Some(0)).await.is_empty());
    ctx.clock.set(now.plus_millis(200_000));
    assert_eq!(
        expired_ids(&store).await,
        owned(&["n1", "n2"]),
        "get_expired_keys uses the store's clock"
    );
    // An update moves the notification in the index.
    put(&store, &note("n1", 900_000, ctx.clock.now())).await;
    assert_eq!(expired_ids(&store).await, owned(&["n2"]));
    assert!(store.delete_expired_keys().await.unwrap());
    assert_eq!(ids(&store).await, owned(&["n1", "n3"]));
    assert_eq!(
        store.next_expires_at().await.unwrap(),
        Some(now.plus_millis(300_000))
    );
}

/// min_max_first_class_test (notification store), API-5.0 5.4 and 6: the expiry index
/// follows remove, remove_many, bundle clear and compaction (which removes exactly the
/// expired notifications) and is there again after a reopen.
pub async fn notification_expiry_index_survives_removes_clear_compact_and_reopen(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_idx").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    let n1 = note("n1", 100_000, now);
    let n2 = note("n2", 200_000, now);
    let n3 = note("n3", 300_000, now);
    for n in [&n1, &n2, &n3] {
        put(&store, n).await;
    }
    assert_eq!(store.next_expires_at().await.unwrap(), n1.expires_at);
    store.remove("n1", R).await.unwrap();
    assert_eq!(store.next_expires_at().await.unwrap(), n2.expires_at);
    store.remove_many(&["n2"], false).await.unwrap();
    assert_eq!(store.next_expires_at().await.unwrap(), n3.expires_at);
    b.clear().await.unwrap();
    assert_eq!(store.next_expires_at().await.unwrap(), None);
    assert!(peek(&store, Some(now.plus_millis(DAY)), None)
        .await
        .is_empty());

    let dead = AtNotification {
        notification_status: Some(NotificationStatus::Expired),
        ..note("dead", 600_000, now)
    };
    let live = note("live", 600_000, now);
    put(&store, &dead).await;
    put(&store, &live).await;
    let dry = collect(store.compact(true).await.unwrap()).await;
    assert_eq!(dry, vec![CompactedItem::NotificationId("dead".into())]);
    assert!(
        store.exists("dead").await.unwrap(),
        "a dry run removes nothing"
    );
    let removed_ids = collect(store.compact(false).await.unwrap()).await;
    assert_eq!(
        removed_ids,
        vec![CompactedItem::NotificationId("dead".into())]
    );
    assert!(expired_ids(&store).await.is_empty());
    assert_eq!(store.next_expires_at().await.unwrap(), live.expires_at);
    assert_eq!(ids(&store).await, owned(&["live"]));
    assert_eq!(store.entries_count().await.unwrap(), 1);

    let b2 = ctx.restart("@minmax_idx").await;
    let reopened = nk(&b2);
    assert_eq!(reopened.next_expires_at().await.unwrap(), live.expires_at);
    assert_eq!(reopened.get("live").await.unwrap(), live);
    ctx.clock
        .set(live.expires_at.expect("built with an expiry"));
    assert_eq!(expired_ids(&reopened).await, owned(&["live"]));
    assert_eq!(
        collect(reopened.compact(false).await.unwrap()).await,
        vec![CompactedItem::NotificationId("live".into())]
    );
    assert_eq!(reopened.next_expires_at().await.unwrap(), None);
    assert_eq!(reopened.entries_count().await.unwrap(), 0);
}

/// Bad input to the notification store: an empty or over-long id in a batch or a
/// transaction, a notification written under another id, a released snapshot and a bad
/// regex are typed errors, and nothing changes (records, count, events).
pub async fn notification_bad_input_is_typed_and_changes_nothing(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let store = nk(&b);
    let now = ctx.clock.now();
    for id in ["a", "b"] {
        put(&store, &note(id, 60_000, now)).await;
    }
    let before = fingerprint(&store).await;
    let mut events = store.changes();
    let long = "x".repeat(249);

    let r = store.remove_many(&["a", "b", ""], false).await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidKey { .. })),
        "remove_many with an empty id: {r:?}"
    );
    let r = store.remove_many(&["a", long.as_str()], true).await;
    assert!(
        matches!(r, Err(PersistenceError::KeyTooLong { .. })),
        "remove_many with a 249-character id: {r:?}"
    );
    let r = store.put("other", note("c", 60_000, now), W).await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidArgument { .. })),
        "put under another id: {r:?}"
    );
    let r = store.put("", note("", 60_000, now), W).await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidKey { .. })),
        "{r:?}"
    );
    for body in 0..3 {
        let long = long.clone();
        let r = store
            .transaction(|txn| async move {
                txn.remove("a").await?;
                txn.put("c", note("c", 60_000, now)).await?;
                match body {
                    0 => txn.put("d", note("not-d", 60_000, now)).await,
                    1 => txn.remove("").await,
                    _ => txn.remove(&long).await,
                }
            })
            .await;
        assert!(
            matches!(
                r,
                Err(PersistenceError::InvalidArgument { .. }
                    | PersistenceError::InvalidKey { .. }
                    | PersistenceError::KeyTooLong { .. })
            ),
            "transaction body {body}: {r:?}"
        );
    }
    let snap = store.snapshot().await.unwrap();
    snap.release().await;
    assert!(matches!(
        snap.get("a").await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        snap.scan_keys(&KeyPattern::default()).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        store.get_keys(Some("(unclosed")).await,
        Err(PersistenceError::InvalidRegex { .. })
    ));
    assert_eq!(fingerprint(&store).await, before, "nothing changed");
    assert_no_event(&mut events, "refused calls").await;
    assert_eq!(store.remove_many(&["a", "b"], false).await.unwrap(), 2);
}
