//! The sled notification keystore through the public API (BEHAVIOR 6, API-5.0 5.4 and
//! 2.4): upserts, the id rules, every clause of the effective-expiry rule behind the
//! index, compaction, change events, the stored-notification subscription and its lag
//! rule, reopen, clear, close and corrupt records. Time is a manual clock.

mod common;

use at_persistence_secondary_server::model::{
    AtNotification, AtNotificationBuilder, ManualClock, NotificationStatus, NotificationType,
    Timestamp,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, ChangeStream, CompactedItem, KeyStoreChange, NotificationEvent, NotificationKeystore,
    NotificationStream, PersistenceFactory, RemoveHook, RemoveHookArgs, RemoveOptions,
    WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, edit_raw_tree, raw_entries, raw_insert, server, server_periodic, T0};
use futures::{FutureExt, StreamExt};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A guard against a hung test, never a timing assertion.
const GUARD: Duration = Duration::from_secs(30);

type Store = Arc<dyn NotificationKeystore>;

async fn open_with(
    f: &SledPersistenceFactory,
    cfg: &SledPersistenceConfig,
) -> (Arc<Bundle>, Store) {
    let b = f.initialize("@alice", cfg).await.expect("initialize");
    let n = Arc::clone(b.notification_keystore().expect("server bundles have one"));
    (b, n)
}

/// A store over a fresh directory with a manual clock at T0.
async fn fresh() -> (
    tempfile::TempDir,
    SledPersistenceFactory,
    Arc<ManualClock>,
    Arc<Bundle>,
    Store,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let cfg = server(dir.path()).with_clock(clock.clone());
    let (b, n) = open_with(&f, &cfg).await;
    (dir, f, clock, b, n)
}

/// A notification built at `now` with the given ttl and type.
fn built(id: &str, now: Timestamp, ttl_ms: i64, ty: Option<NotificationType>) -> AtNotification {
    AtNotificationBuilder {
        id: id.to_string(),
        ttl: Some(ttl_ms),
        notification_type: ty,
        from_at_sign: Some("@alice".into()),
        to_at_sign: Some("@bob".into()),
        notification: Some(format!("{id}.wavi@alice")),
        ..AtNotificationBuilder::new()
    }
    .build_at(now)
}

fn received(id: &str) -> AtNotification {
    built(id, T0, 600_000, Some(NotificationType::Received))
}

async fn put(n: &Store, v: AtNotification) {
    let id = v.id.clone();
    assert_eq!(n.put(&id, v, WriteOptions::default()).await.unwrap(), None);
}

async fn expired(n: &Store) -> BTreeSet<String> {
    collect_ok(n.get_expired_keys().await.unwrap())
        .await
        .into_iter()
        .collect()
}

async fn peek(n: &Store, as_of: Option<Timestamp>, limit: Option<usize>) -> Vec<String> {
    collect_ok(n.peek_expired(as_of, limit).await.unwrap()).await
}

async fn compact(n: &Store, dry_run: bool) -> Vec<String> {
    n.compact(dry_run)
        .await
        .unwrap()
        .map(|r| match r.unwrap() {
            CompactedItem::NotificationId(id) => id,
            other => panic!("unexpected item {other:?}"),
        })
        .collect()
        .await
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Puts a sentinel and returns every event that arrived before its `KeyAdded`, so the
/// caller can assert that nothing else was emitted.
async fn events_before_sentinel(
    n: &Store,
    events: &mut ChangeStream,
    sentinel: &str,
) -> Vec<KeyStoreChange> {
    put(n, received(sentinel)).await;
    let mut out = Vec::new();
    loop {
        let ev = tokio::time::timeout(GUARD, events.next())
            .await
            .expect("events keep coming")
            .expect("stream open");
        if ev
            == (KeyStoreChange::KeyAdded {
                key: sentinel.to_string(),
            })
        {
            return out;
        }
        out.push(ev);
    }
}

fn added(k: &str) -> KeyStoreChange {
    KeyStoreChange::KeyAdded { key: k.into() }
}
fn updated(k: &str) -> KeyStoreChange {
    KeyStoreChange::KeyUpdated { key: k.into() }
}
fn removed(k: &str) -> KeyStoreChange {
    KeyStoreChange::KeyRemoved { key: k.into() }
}

#[tokio::test]
async fn put_get_exists_and_remove_round_trip() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let v = received("n-1");
    put(&n, v.clone()).await;
    assert_eq!(n.get("n-1").await.unwrap(), v);
    assert!(n.exists("n-1").await.unwrap());
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert_eq!(
        n.remove("n-1", RemoveOptions::default()).await.unwrap(),
        None
    );
    assert!(!n.exists("n-1").await.unwrap());
    assert!(matches!(
        n.get("n-1").await,
        Err(PersistenceError::KeyNotFound { key }) if key == "n-1"
    ));
    assert!(!n.exists("does-not-exist").await.unwrap());
    // Removing an absent id is not an error.
    assert_eq!(
        n.remove("n-1", RemoveOptions::default()).await.unwrap(),
        None
    );
    assert_eq!(n.entries_count().await.unwrap(), 0);
    // create = put, skip_commit ignored.
    let w = received("n-2");
    assert_eq!(
        n.create("n-2", w.clone(), WriteOptions::skip_commit())
            .await
            .unwrap(),
        None
    );
    assert_eq!(n.get("n-2").await.unwrap(), w);
    assert!(n.size_bytes().await.unwrap() > 0);
}

#[tokio::test]
async fn put_is_an_upsert_by_id() {
    let (_d, _f, _c, _b, n) = fresh().await;
    put(&n, received("same")).await;
    let mut second = received("same");
    second.notification_status = Some(NotificationStatus::Delivered);
    second.retry_count = 3;
    put(&n, second.clone()).await;
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert_eq!(n.get("same").await.unwrap(), second);
    let all: Vec<AtNotification> = collect_ok(n.iterate().await.unwrap()).await;
    assert_eq!(all, vec![second]);
}

#[tokio::test]
async fn ids_are_stored_as_given_and_case_sensitive() {
    let (_d, _f, clock, _b, n) = fresh().await;
    // Ids Dart would have mangled through UTF-7 (open points 2 and 3).
    let ids = ["Abc", "abc", "a+b-c", "tilde~x", "back\\slash", "müde💙"];
    for id in ids {
        put(&n, built(id, T0, 1_000, Some(NotificationType::Received))).await;
    }
    assert_eq!(n.entries_count().await.unwrap(), 6);
    let listed: BTreeSet<String> = collect_ok(n.get_keys(None).await.unwrap())
        .await
        .into_iter()
        .collect();
    assert_eq!(listed, set(&ids));
    assert_eq!(n.get("Abc").await.unwrap().id, "Abc");
    clock.advance(1_000);
    assert_eq!(expired(&n).await, set(&ids), "listed as stored");
    assert!(n.delete_expired_keys().await.unwrap());
    assert_eq!(
        n.entries_count().await.unwrap(),
        0,
        "and therefore deletable"
    );
}

#[tokio::test]
async fn id_length_is_measured_in_utf16_units_and_bad_ids_change_nothing() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let mut events = n.changes();
    let ok: Vec<String> = vec!["a".repeat(248), "💙".repeat(124), "é".repeat(248)];
    for id in &ok {
        put(&n, received(id)).await;
        assert!(n.exists(id).await.unwrap());
    }
    let count = n.entries_count().await.unwrap();
    for (id, len) in [
        ("a".repeat(249), 249),
        ("💙".repeat(125), 250),
        ("é".repeat(249), 249),
    ] {
        let err = n
            .put(&id, received(&id), WriteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PersistenceError::KeyTooLong { key, len: l, max: 248 } if *key == id && *l == len),
            "{err}"
        );
        let err = n
            .create(&id, received(&id), WriteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PersistenceError::KeyTooLong { .. }), "{err}");
        assert!(!n.exists(&id).await.unwrap());
    }
    let err = n
        .put("", received(""), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::InvalidKey { .. }), "{err}");
    let err = n.remove("", RemoveOptions::default()).await.unwrap_err();
    assert!(matches!(err, PersistenceError::InvalidKey { .. }), "{err}");
    // The notification's own id must be the key.
    let err = n
        .put("key-a", received("key-b"), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::InvalidArgument { name, .. } if name == "notification.id"),
        "{err}"
    );
    assert!(!n.exists("key-a").await.unwrap() && !n.exists("key-b").await.unwrap());
    // One bad id fails the whole remove_many; nothing is removed.
    let err = n
        .remove_many(&[ok[0].as_str(), ""], false)
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::InvalidKey { .. }), "{err}");
    assert!(n.exists(&ok[0]).await.unwrap());
    assert_eq!(n.entries_count().await.unwrap(), count);
    let seen = events_before_sentinel(&n, &mut events, "sentinel").await;
    assert_eq!(
        seen,
        ok.iter().map(|id| added(id)).collect::<Vec<_>>(),
        "refused writes emit nothing"
    );
}

#[tokio::test]
async fn get_many_and_remove_many_count_present_ids_only() {
    let (_d, _f, _c, _b, n) = fresh().await;
    for id in ["a", "b", "c"] {
        put(&n, received(id)).await;
    }
    let got = n.get_many(&["a", "nope", "c", "a"]).await.unwrap();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(got["c"], n.get("c").await.unwrap());
    assert!(n.get_many(&[]).await.unwrap().is_empty());
    assert_eq!(n.remove_many(&["a", "b"], false).await.unwrap(), 2);
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert_eq!(n.remove_many(&["a", "nope"], false).await.unwrap(), 0);
    assert_eq!(n.remove_many(&[], false).await.unwrap(), 0);
    assert_eq!(n.remove_many(&["c", "c", "c"], false).await.unwrap(), 1);
    assert_eq!(n.entries_count().await.unwrap(), 0);
}

#[tokio::test]
async fn every_clause_of_the_effective_expiry_rule() {
    let (_d, _f, clock, _b, n) = fresh().await;
    let live = || built("live", T0, HOUR, Some(NotificationType::Received));

    // Status expired: expired whatever expiresAt says.
    let mut dead = built("dead", T0, HOUR, Some(NotificationType::Received));
    dead.notification_status = Some(NotificationStatus::Expired);
    // Missing expiresAt: expired at once (never re-derived on read).
    let mut no_expiry = built("no-expiry", T0, HOUR, None);
    no_expiry.expires_at = None;
    // Missing notificationDateTime: expired.
    let mut no_date = built("no-date", T0, HOUR, None);
    no_date.notification_date_time = None;
    // Made more than 8 days ago, expiresAt in the future: expired (the 8-day cap).
    let mut old = built("old", T0, HOUR, None);
    old.notification_date_time = Some(T0.minus_millis(9 * DAY));
    old.expires_at = Some(T0.plus_millis(HOUR));
    // expiresAt 100 ms ahead.
    let soon = built("soon", T0, 100, None);
    // expiresAt 30 days ahead, made now: the cap makes it T0 + 8 days.
    let mut far = built("far", T0, HOUR, None);
    far.expires_at = Some(T0.plus_millis(30 * DAY));

    for v in [live(), dead, no_expiry, no_date, old, soon, far] {
        put(&n, v).await;
    }
    let at_t0 = set(&["dead", "no-expiry", "no-date", "old"]);
    assert_eq!(expired(&n).await, at_t0);
    assert_eq!(
        peek(&n, None, None)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        at_t0
    );
    assert_eq!(n.next_expires_at().await.unwrap(), Some(Timestamp::EPOCH));
    // Still readable: get ignores expiry.
    assert_eq!(n.get("dead").await.unwrap().id, "dead");

    // The boundary: expired iff effective expiry <= now.
    clock.set(T0.plus_millis(99));
    assert!(!expired(&n).await.contains("soon"));
    clock.set(T0.plus_millis(100));
    assert!(expired(&n).await.contains("soon"));

    clock.set(T0.plus_millis(8 * DAY - 1));
    assert!(!expired(&n).await.contains("far"));
    clock.set(T0.plus_millis(8 * DAY));
    assert!(
        expired(&n).await.contains("far"),
        "capped at notificationDateTime + 8 days"
    );
    assert_eq!(expired(&n).await.len(), 7);
}

#[tokio::test]
async fn peek_expired_and_next_expires_at_follow_the_index() {
    let (_d, _f, _c, b, n) = fresh().await;
    assert_eq!(n.next_expires_at().await.unwrap(), None, "empty store");
    put(&n, built("n2", T0, 200_000, None)).await;
    put(&n, built("n1", T0, 100_000, None)).await;
    put(&n, built("n3", T0, 300_000, None)).await;
    assert!(peek(&n, None, None).await.is_empty(), "nothing expired yet");
    let tomorrow = Some(T0.plus_millis(DAY));
    assert_eq!(peek(&n, tomorrow, None).await, ["n1", "n2", "n3"]);
    assert_eq!(peek(&n, tomorrow, Some(1)).await, ["n1"]);
    assert_eq!(peek(&n, tomorrow, Some(2)).await, ["n1", "n2"]);
    assert!(peek(&n, tomorrow, Some(0)).await.is_empty());
    assert_eq!(
        peek(&n, Some(T0.plus_millis(200_000)), None).await,
        ["n1", "n2"]
    );
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(100_000))
    );

    // An upsert re-files the notification.
    put(&n, built("n1", T0, 400_000, None)).await;
    assert_eq!(peek(&n, tomorrow, None).await, ["n2", "n3", "n1"]);
    n.remove("n2", RemoveOptions::default()).await.unwrap();
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(300_000))
    );
    assert_eq!(n.remove_many(&["n3"], false).await.unwrap(), 1);
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(400_000))
    );
    b.clear().await.unwrap();
    assert_eq!(n.next_expires_at().await.unwrap(), None);
    assert!(peek(&n, tomorrow, None).await.is_empty());
}

#[tokio::test]
async fn delete_expired_keys_removes_only_expired_ids_with_events_and_hooks() {
    let (_d, _f, clock, _b, n) = fresh().await;
    let hooked: Arc<Mutex<Vec<(bool, RemoveHookArgs)>>> = Arc::default();
    for pre in [true, false] {
        let hooked = Arc::clone(&hooked);
        let hook: RemoveHook = Arc::new(move |args: RemoveHookArgs| {
            hooked.lock().unwrap().push((pre, args));
            async { Ok(()) }.boxed()
        });
        if pre {
            n.add_pre_remove_hook(hook);
        } else {
            n.add_post_remove_hook(hook);
        }
    }
    for (id, ttl) in [("111", 100), ("222", 1_000), ("333", 75)] {
        put(&n, built(id, T0, ttl, None)).await;
    }
    let mut events = n.changes();
    clock.advance(150);
    assert_eq!(expired(&n).await, set(&["111", "333"]));
    assert!(n.delete_expired_keys().await.unwrap());
    assert!(matches!(
        n.get("111").await,
        Err(PersistenceError::KeyNotFound { .. })
    ));
    assert!(matches!(
        n.get("333").await,
        Err(PersistenceError::KeyNotFound { .. })
    ));
    assert!(n.exists("222").await.unwrap());
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert!(expired(&n).await.is_empty());
    assert!(
        n.delete_expired_keys().await.unwrap(),
        "nothing to do is still true"
    );
    let seen: std::collections::HashSet<KeyStoreChange> =
        events_before_sentinel(&n, &mut events, "s")
            .await
            .into_iter()
            .collect();
    assert_eq!(seen, [removed("111"), removed("333")].into_iter().collect());
    let hooked = hooked.lock().unwrap().clone();
    let mut calls: Vec<(bool, String, bool)> = hooked
        .into_iter()
        .map(|(p, a)| (p, a.key, a.skip_commit))
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        vec![
            (false, "111".into(), true),
            (false, "333".into(), true),
            (true, "111".into(), true),
            (true, "333".into(), true)
        ]
    );
}

#[tokio::test]
async fn a_failing_pre_remove_hook_aborts_the_remove() {
    let (_d, _f, _c, _b, n) = fresh().await;
    put(&n, received("keep")).await;
    n.add_pre_remove_hook(Arc::new(|args: RemoveHookArgs| {
        async move {
            if args.key == "keep" {
                Err("refused".into())
            } else {
                Ok(())
            }
        }
        .boxed()
    }));
    let err = n
        .remove("keep", RemoveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::HookFailed { key, .. } if key == "keep"),
        "{err}"
    );
    assert!(n.exists("keep").await.unwrap());
    let err = n.remove_many(&["keep"], false).await.unwrap_err();
    assert!(matches!(err, PersistenceError::HookFailed { .. }));
    assert!(n.exists("keep").await.unwrap());
}

#[tokio::test]
async fn compaction_removes_expired_notifications_and_a_dry_run_changes_nothing() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let mut dead = received("dead");
    dead.notification_status = Some(NotificationStatus::Expired);
    let live = received("live");
    put(&n, dead.clone()).await;
    put(&n, live.clone()).await;
    let mut events = n.changes();

    assert_eq!(compact(&n, true).await, ["dead"]);
    assert_eq!(n.entries_count().await.unwrap(), 2);
    assert_eq!(n.get("dead").await.unwrap(), dead);
    assert_eq!(expired(&n).await, set(&["dead"]));
    assert_eq!(n.next_expires_at().await.unwrap(), Some(Timestamp::EPOCH));

    assert_eq!(compact(&n, false).await, ["dead"]);
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert!(expired(&n).await.is_empty());
    assert_eq!(n.next_expires_at().await.unwrap(), live.expires_at);
    assert!(compact(&n, false).await.is_empty());
    assert_eq!(
        events_before_sentinel(&n, &mut events, "s").await,
        [removed("dead")]
    );
}

#[tokio::test]
async fn a_large_compaction_runs_in_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path()).with_clock(clock.clone());
    let (_b, n) = open_with(&f, &cfg).await;
    for i in 0..2_500 {
        put(&n, built(&format!("old-{i:05}"), T0, 1_000 + i, None)).await;
    }
    for i in 0..10 {
        put(&n, built(&format!("live-{i}"), T0, DAY, None)).await;
    }
    clock.advance(10_000);
    assert_eq!(compact(&n, true).await.len(), 2_500);
    let ids = compact(&n, false).await;
    assert_eq!(ids.len(), 2_500);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        2_500,
        "each once"
    );
    assert_eq!(ids[0], "old-00000", "ascending effective expiry");
    assert_eq!(n.entries_count().await.unwrap(), 10);
    assert!(expired(&n).await.is_empty());
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(DAY))
    );
}

#[tokio::test]
async fn change_events_follow_the_notification_rules() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let mut events = n.changes();
    put(&n, received("a")).await;
    put(&n, received("a")).await;
    n.create("b", received("b"), WriteOptions::default())
        .await
        .unwrap();
    n.create("b", received("b"), WriteOptions::default())
        .await
        .unwrap();
    n.remove("a", RemoveOptions::default()).await.unwrap();
    n.remove("a", RemoveOptions::default()).await.unwrap();
    put(&n, received("c")).await;
    let mut late = n.changes();
    assert_eq!(
        n.remove_many(&["b", "c", "absent"], false).await.unwrap(),
        2
    );
    assert_eq!(
        events_before_sentinel(&n, &mut events, "s1").await,
        [
            added("a"),
            updated("a"),
            added("b"),
            updated("b"),
            removed("a"),
            added("c"),
            removed("b"),
            removed("c")
        ]
    );
    // A late subscriber sees only what happened after it subscribed.
    let seen = tokio::time::timeout(GUARD, async {
        let mut v = Vec::new();
        while v.len() < 3 {
            v.push(late.next().await.unwrap());
        }
        v
    })
    .await
    .unwrap();
    assert_eq!(seen, [removed("b"), removed("c"), added("s1")]);
}

/// Reads stored notifications until the one with `end_id`; returns those before it.
async fn stored_before(stream: &mut NotificationStream, end_id: &str) -> Vec<AtNotification> {
    let mut out = Vec::new();
    loop {
        let ev = tokio::time::timeout(GUARD, stream.next())
            .await
            .expect("notifications keep coming")
            .expect("stream open");
        match ev {
            NotificationEvent::Stored(n) if n.id == end_id => return out,
            NotificationEvent::Stored(n) => out.push(*n),
            NotificationEvent::Lagged { missed } => panic!("unexpected lag of {missed}"),
        }
    }
}

#[tokio::test]
async fn subscribers_get_received_and_self_notifications_but_not_sent_ones() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let mut sub = n.subscribe_notifications();
    let mut other = n.subscribe_notifications();
    let sent = built("sent", T0, HOUR, Some(NotificationType::Sent));
    let untyped = built("untyped", T0, HOUR, None);
    let rec = built("rec", T0, HOUR, Some(NotificationType::Received));
    let own = built("own", T0, HOUR, Some(NotificationType::SelfNotification));
    let mut rec2 = rec.clone();
    rec2.notification_status = Some(NotificationStatus::Delivered);
    put(&n, sent.clone()).await;
    put(&n, untyped).await;
    put(&n, rec.clone()).await;
    n.create("own", own.clone(), WriteOptions::default())
        .await
        .unwrap();
    put(&n, rec2.clone()).await; // an upsert is reported too
                                 // A sent notification upserted over a received id is not reported.
    let mut rec_as_sent = rec.clone();
    rec_as_sent.notification_type = Some(NotificationType::Sent);
    put(&n, rec_as_sent).await;
    // Failed writes report nothing.
    assert!(n
        .put("x", rec.clone(), WriteOptions::default())
        .await
        .is_err());
    n.remove("own", RemoveOptions::default()).await.unwrap();
    put(&n, built("end", T0, HOUR, Some(NotificationType::Received))).await;
    let expected = vec![rec, own, rec2];
    assert_eq!(stored_before(&mut sub, "end").await, expected);
    assert_eq!(
        stored_before(&mut other, "end").await,
        expected,
        "subscribers are independent"
    );
}

#[tokio::test]
async fn dropped_subscribers_do_not_block_writers() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let sub = n.subscribe_notifications();
    let ch = n.changes();
    drop(sub);
    drop(ch);
    for i in 0..100 {
        put(&n, received(&format!("r{i}"))).await;
    }
    assert_eq!(n.entries_count().await.unwrap(), 100);
    // A new subscriber after the drops works as usual.
    let mut again = n.subscribe_notifications();
    put(&n, received("end")).await;
    assert!(stored_before(&mut again, "end").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_never_polled_subscriber_lags_and_does_not_hold_up_ten_thousand_puts() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path()).with_change_buffer(64);
    let (_b, n) = open_with(&f, &cfg).await;
    let mut idle_notifications = n.subscribe_notifications();
    let mut idle_changes = n.changes();

    let mut tasks = Vec::new();
    for t in 0..8 {
        let n = Arc::clone(&n);
        tasks.push(tokio::spawn(async move {
            for i in 0..1_250 {
                let id = format!("t{t}-{i}");
                n.put(&id, received(&id), WriteOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(GUARD, t)
            .await
            .expect("puts complete")
            .unwrap();
    }
    assert_eq!(n.entries_count().await.unwrap(), 10_000);

    match idle_notifications.next().await.unwrap() {
        NotificationEvent::Lagged { missed } => assert_eq!(missed, 10_000 - 64),
        other => panic!("expected a lag first, got {other:?}"),
    }
    let mut rest = 0;
    while let Some(Some(ev)) = idle_notifications.next().now_or_never() {
        assert!(matches!(ev, NotificationEvent::Stored(_)));
        rest += 1;
    }
    assert_eq!(rest, 64, "then the newest ones, and it goes on");
    match idle_changes.next().await.unwrap() {
        KeyStoreChange::Lagged { missed } => assert_eq!(missed, 10_000 - 64),
        other => panic!("expected a lag first, got {other:?}"),
    }
    put(&n, received("after")).await;
    let mut found = false;
    while let Some(Some(ev)) = idle_notifications.next().now_or_never() {
        found |= matches!(ev, NotificationEvent::Stored(ref s) if s.id == "after");
    }
    assert!(found, "a lagged subscriber keeps receiving");
}

#[tokio::test]
async fn reopen_keeps_the_count_and_the_expiry_index() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = server(dir.path()).with_clock(clock.clone());
    let f = SledPersistenceFactory::new();
    let (_b, n) = open_with(&f, &cfg).await;
    for (id, ttl) in [("x1", 1_000), ("x2", 2_000), ("x3", 3_000)] {
        put(&n, built(id, T0, ttl, None)).await;
    }
    let mut dead = received("dead");
    dead.notification_status = Some(NotificationStatus::Expired);
    put(&n, dead).await;
    n.remove("dead", RemoveOptions::default()).await.unwrap();
    let x2 = n.get("x2").await.unwrap();
    f.close().await;
    drop(n);

    let f = SledPersistenceFactory::new();
    let (_b, n) = open_with(&f, &cfg).await;
    assert_eq!(n.entries_count().await.unwrap(), 3);
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(1_000))
    );
    assert_eq!(n.get("x2").await.unwrap(), x2);
    clock.set(T0.plus_millis(2_000));
    assert_eq!(expired(&n).await, set(&["x1", "x2"]));
    assert_eq!(compact(&n, false).await, ["x1", "x2"]);
    assert_eq!(n.entries_count().await.unwrap(), 1);
}

#[tokio::test]
async fn get_keys_filters_by_regex_and_ignores_expiry() {
    let (_d, _f, clock, _b, n) = fresh().await;
    for id in ["alpha", "beta", "alphabet", "gamma"] {
        put(&n, built(id, T0, 100, None)).await;
    }
    clock.advance(1_000);
    let keys = |r: Option<&'static str>| {
        let n = Arc::clone(&n);
        async move { collect_ok(n.get_keys(r).await.unwrap()).await }
    };
    assert_eq!(keys(None).await, ["alpha", "alphabet", "beta", "gamma"]);
    assert_eq!(keys(Some("")).await, ["alpha", "alphabet", "beta", "gamma"]);
    assert_eq!(keys(Some("^alpha")).await, ["alpha", "alphabet"]);
    assert_eq!(keys(Some("bet")).await, ["alphabet", "beta"]);
    assert!(keys(Some("^zzz")).await.is_empty());
    let err = n
        .get_keys(Some("(unclosed"))
        .await
        .err()
        .expect("a bad regex is refused");
    assert!(
        matches!(&err, PersistenceError::InvalidRegex { pattern, .. } if pattern == "(unclosed"),
        "{err}"
    );
}

#[tokio::test]
async fn clear_empties_the_store_and_emits_nothing() {
    let (_d, _f, _c, b, n) = fresh().await;
    for i in 0..20 {
        put(&n, received(&format!("c{i}"))).await;
    }
    let mut events = n.changes();
    b.clear().await.unwrap();
    assert_eq!(n.entries_count().await.unwrap(), 0);
    assert!(collect_ok(n.get_keys(None).await.unwrap()).await.is_empty());
    assert_eq!(n.next_expires_at().await.unwrap(), None);
    assert!(events_before_sentinel(&n, &mut events, "s")
        .await
        .is_empty());
    assert_eq!(n.entries_count().await.unwrap(), 1);
}

#[tokio::test]
async fn close_ends_the_streams_and_refuses_every_call() {
    let (_d, f, _c, _b, n) = fresh().await;
    put(&n, received("a")).await;
    let mut changes = n.changes();
    let mut stored = n.subscribe_notifications();
    f.close().await;
    assert_eq!(
        tokio::time::timeout(GUARD, changes.next()).await.unwrap(),
        None
    );
    assert_eq!(
        tokio::time::timeout(GUARD, stored.next()).await.unwrap(),
        None
    );
    assert!(n.changes().next().await.is_none());
    assert!(n.subscribe_notifications().next().await.is_none());
    let closed = |r: Result<(), PersistenceError>| {
        assert!(
            matches!(r, Err(PersistenceError::StoreClosed { .. })),
            "{r:?}"
        )
    };
    closed(
        n.put("b", received("b"), WriteOptions::default())
            .await
            .map(|_| ()),
    );
    closed(n.get("a").await.map(|_| ()));
    closed(n.exists("a").await.map(|_| ()));
    closed(n.remove("a", RemoveOptions::default()).await.map(|_| ()));
    closed(n.remove_many(&["a"], false).await.map(|_| ()));
    closed(n.get_many(&["a"]).await.map(|_| ()));
    closed(n.get_keys(None).await.map(|_| ()));
    closed(n.get_expired_keys().await.map(|_| ()));
    closed(n.delete_expired_keys().await.map(|_| ()));
    closed(n.next_expires_at().await.map(|_| ()));
    closed(n.peek_expired(None, None).await.map(|_| ()));
    closed(n.iterate().await.map(|_| ()));
    closed(n.entries_count().await.map(|_| ()));
    closed(n.size_bytes().await.map(|_| ()));
    closed(n.compact(false).await.map(|_| ()));
}

#[tokio::test]
async fn a_corrupt_record_is_a_typed_error_and_can_still_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server(dir.path());
    let (b, n) = open_with(&f, &cfg).await;
    put(&n, received("bad")).await;
    put(&n, received("good")).await;
    f.close().await;
    drop((b, n));
    raw_insert(
        &dir.path().join("notifications"),
        "notifications",
        b"nbad",
        b"\x01\xff\xff\xff",
    );
    let f = SledPersistenceFactory::new();
    let (_b, n) = open_with(&f, &cfg).await;
    let err = n.get("bad").await.unwrap_err();
    assert!(
        matches!(&err, PersistenceError::CorruptRecord { key, .. } if key == "bad"),
        "{err}"
    );
    let items: Vec<_> = n.iterate().await.unwrap().collect().await;
    assert_eq!(items.len(), 2);
    assert!(
        items[0].is_err() && items[1].is_ok(),
        "the stream goes on past a bad item"
    );
    n.remove("bad", RemoveOptions::default()).await.unwrap();
    assert!(!n.exists("bad").await.unwrap());
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert_eq!(
        n.next_expires_at().await.unwrap(),
        n.get("good").await.unwrap().expires_at
    );
}

#[tokio::test]
async fn notifications_round_trip_every_field() {
    let (_d, _f, _c, _b, n) = fresh().await;
    let mut v = AtNotificationBuilder {
        id: "full".into(),
        notification_type: Some(NotificationType::SelfNotification),
        at_value: Some("value".into()),
        at_metadata: Some(at_persistence_secondary_server::model::AtMetaData {
            ttl: Some(5),
            is_encrypted: Some(true),
            shared_key_enc: Some("ske".into()),
            ..Default::default()
        }),
        strategy: Some("latest".into()),
        depth: Some(3),
        ..AtNotificationBuilder::new()
    }
    .build_at(T0);
    v.retry_count = 7;
    put(&n, v.clone()).await;
    assert_eq!(n.get("full").await.unwrap(), v);
    assert_eq!(n.get_many(&["full"]).await.unwrap()["full"], v);
}

/// How many notifications, or planted keys, make a clear take three batches of at most
/// 1024.
const THREE_BATCHES: usize = 2_100;

/// After a clear: reopened, the store is empty and consistent, its tree (read with raw
/// sled) holds only a zero count, and it takes new notifications.
async fn assert_cleared_after_reopen(dir: &Path, cfg: &SledPersistenceConfig) {
    let f = SledPersistenceFactory::new();
    let (b, n) = open_with(&f, cfg).await;
    assert_eq!(n.entries_count().await.unwrap(), 0);
    assert!(collect_ok(n.get_keys(None).await.unwrap()).await.is_empty());
    assert_eq!(n.iterate().await.unwrap().count().await, 0);
    assert_eq!(n.next_expires_at().await.unwrap(), None);
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.violations);
    f.close().await;
    drop((b, n));
    assert_eq!(
        raw_entries(&dir.join("notifications"), "notifications"),
        vec![(b"mentry_count".to_vec(), 0u64.to_be_bytes().to_vec())]
    );
    let f = SledPersistenceFactory::new();
    let (_b, n) = open_with(&f, cfg).await;
    put(&n, received("after")).await;
    assert_eq!(n.entries_count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_clear_in_several_batches_flushes_after_each_and_is_complete_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path()).with_clock(clock.clone());
    let (b, n) = open_with(&f, &cfg).await;
    for i in 0..THREE_BATCHES {
        put(&n, built(&format!("n-{i:05}"), T0, DAY + i as i64, None)).await;
    }
    assert_eq!(n.entries_count().await.unwrap(), THREE_BATCHES as u64);
    let path = dir.path().join("notifications");
    let before = f.test_support_flush_calls(&path).unwrap();
    b.clear().await.unwrap();
    let flushes = f.test_support_flush_calls(&path).unwrap() - before;
    // Three batches of notifications, each followed by a flush (plus the one after the
    // reset), so sled never holds more than a bounded number of unflushed commits.
    assert!(flushes >= 3, "{flushes} flushes for three batches");
    assert_eq!(n.entries_count().await.unwrap(), 0);
    f.close().await;
    drop((b, n));
    assert_cleared_after_reopen(dir.path(), &cfg).await;
}

#[tokio::test]
async fn a_clear_sweeps_many_leftover_keys_in_flushed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path());
    let (b, n) = open_with(&f, &cfg).await;
    for i in 0..20 {
        put(&n, received(&format!("n-{i}"))).await;
    }
    f.close().await;
    drop((b, n));
    // Index entries whose record is gone: only the clear's final sweep removes them.
    edit_raw_tree(&dir.path().join("notifications"), "notifications", |tree| {
        for i in 0..THREE_BATCHES {
            let mut k = vec![b'y'];
            k.extend_from_slice(format!("ghost-{i:05}").as_bytes());
            tree.insert(k, &0u64.to_be_bytes()[..]).unwrap();
        }
    });
    let f = SledPersistenceFactory::new();
    let (b, n) = open_with(&f, &cfg).await;
    let path = dir.path().join("notifications");
    let before = f.test_support_flush_calls(&path).unwrap();
    b.clear().await.unwrap();
    let flushes = f.test_support_flush_calls(&path).unwrap() - before;
    // One batch of notifications, then three of leftovers: each followed by a flush.
    assert!(flushes >= 4, "{flushes} flushes for four batches");
    f.close().await;
    drop((b, n));
    assert_cleared_after_reopen(dir.path(), &cfg).await;
}

#[tokio::test]
async fn a_failed_flush_after_an_applied_put_reports_the_error_and_keeps_the_count_right() {
    let (dir, f, _clock, b, n) = fresh().await;
    let mut stream = n.subscribe_notifications();
    put(&n, received("n-a")).await;
    assert!(f.test_support_fail_next_flushes(&dir.path().join("notifications"), 1));
    let err = n
        .put("n-b", received("n-b"), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::Backend { context, .. } if context.contains("flush")),
        "{err:?}"
    );
    // The put was applied before the flush failed: it is stored, counted and announced.
    assert_eq!(n.get("n-b").await.unwrap().id, "n-b");
    assert_eq!(n.entries_count().await.unwrap(), 2);
    put(&n, received("n-c")).await;
    assert_eq!(n.entries_count().await.unwrap(), 3);
    let mut announced = Vec::new();
    for _ in 0..3 {
        match stream.next().await {
            Some(at_persistence_secondary_server::store::NotificationEvent::Stored(v)) => {
                announced.push(v.id)
            }
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_eq!(announced, ["n-a", "n-b", "n-c"]);
    f.close().await;
    drop((b, n));

    let cfg = server(dir.path());
    let f = SledPersistenceFactory::new();
    let (b, n) = open_with(&f, &cfg).await;
    assert_eq!(n.entries_count().await.unwrap(), 3);
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.violations);
}
