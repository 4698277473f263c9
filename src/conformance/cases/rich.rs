//! Cases of the rich keystore surface (API-5.0 2.2-2.7, 3.3, 3.6 and the per-test-file
//! lists of API-5.0 9: scan_keys_test, scan_keys_order_test, snapshot_test,
//! transaction_test, stats_test, query_by_path_test, min_max_first_class_test (availability
//! part), verbatim_restore_test), plus the bad-input rules of the rich methods.
//!
//! get_many, remove_many, exists, the change stream, next_expires_at/peek_expired and most
//! asserted-timestamp bullets live in `keystore.rs`; this file adds what those leave out.

use super::{
    added, assert_absent, assert_no_event, cl, collect, data, entries, expired, keys, last,
    latest_id, latest_op, meta, next_events, removed, set, updated, v, v_ttb, v_ttl, R, W,
};
use crate::conformance::{Backend, Ctx, T0};
use crate::model::{AssertedTimestamps, AtData, AtMetaData, Timestamp};
use crate::store::{
    DynKeyStore, KeyEntry, KeyPattern, KeyStoreTxn, KeyValueStoreExt, OrderByKey, Predicate,
    ScanOptions, WriteOptions,
};
use crate::PersistenceError;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// One day in milliseconds.
const DAY: i64 = 86_400_000;

/// A pattern with only `shared_by`.
fn by(at_sign: &str) -> KeyPattern {
    KeyPattern {
        shared_by: Some(at_sign.into()),
        ..Default::default()
    }
}

/// A pattern with only `shared_with`.
fn with(at_sign: &str) -> KeyPattern {
    KeyPattern {
        shared_with: Some(at_sign.into()),
        ..Default::default()
    }
}

/// A pattern with only `namespace`.
fn ns(namespace: &str) -> KeyPattern {
    KeyPattern {
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

/// A pattern with only `id_prefix`.
fn prefix(p: &str) -> KeyPattern {
    KeyPattern {
        id_prefix: Some(p.into()),
        ..Default::default()
    }
}

/// `scan_keys` in the order the store yields them.
async fn scan(ks: &DynKeyStore, pattern: &KeyPattern, options: ScanOptions) -> Vec<String> {
    collect(
        ks.scan_keys(pattern, options)
            .await
            .unwrap_or_else(|e| panic!("scan_keys({pattern}): {e}")),
    )
    .await
}

/// `scan_keys` with default options, sorted.
async fn scan_set(ks: &DynKeyStore, pattern: &KeyPattern) -> Vec<String> {
    let mut k = scan(ks, pattern, ScanOptions::default()).await;
    k.sort();
    k
}

/// Scan options with skip and limit.
fn paged(order_by: Option<OrderByKey>, skip: Option<usize>, limit: Option<usize>) -> ScanOptions {
    ScanOptions {
        include_expired: false,
        order_by,
        limit,
        skip,
    }
}

/// Scan options listing expired and unborn keys too.
fn all_times() -> ScanOptions {
    ScanOptions {
        include_expired: true,
        ..Default::default()
    }
}

/// Owned, sorted strings.
fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Owned strings in the given order.
fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Everything observable about a keystore: every record (expired and unborn included)
/// with its value and metadata, every retained commit entry and the high-water mark.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    records: Vec<(String, AtData)>,
    entries: Vec<(i64, String, &'static str)>,
    mark: Option<i64>,
}

async fn fingerprint(ks: &DynKeyStore) -> Fingerprint {
    let mut records = Vec::new();
    for k in scan(ks, &KeyPattern::default(), all_times()).await {
        let value = ks.get(&k).await.unwrap_or_else(|e| panic!("get({k}): {e}"));
        records.push((k, value));
    }
    let (entries, mark) = match ks.commit_log() {
        Some(log) => (entries(&log).await, Some(last(&log).await)),
        None => (Vec::new(), None),
    };
    Fingerprint {
        records,
        entries,
        mark,
    }
}

// ------------------------------------------------------------------ scan_keys

const PHONE: &str = "public:phone.wavi@alice";
const EMAIL: &str = "public:email.wavi@alice";
const SECRET: &str = "@bob:secret.wavi@alice";
const BOB_PLAN: &str = "@bob:plan.tasks@alice";
const CHARLIE_PLAN: &str = "@charlie:plan.tasks@alice";
const APKAM: &str = "private:apkam.__manage@alice";

async fn seed_scan_keys(ks: &DynKeyStore) {
    for k in [PHONE, EMAIL, SECRET, BOB_PLAN, CHARLIE_PLAN, APKAM] {
        ks.put(k, v("v"), W).await.unwrap();
    }
}

/// scan_keys_test, API-5.0 2.2: each KeyPattern field on its own (owner and recipient
/// case-insensitive with an optional `@`, namespace exact, id prefix plain), and the set
/// fields AND-ed.
pub async fn scan_keys_filters_by_each_key_pattern_field_and_ands_them(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    seed_scan_keys(ks).await;
    let every = sorted(&[PHONE, EMAIL, SECRET, BOB_PLAN, CHARLIE_PLAN, APKAM]);
    assert_eq!(scan_set(ks, &KeyPattern::default()).await, every);
    assert_eq!(scan_set(ks, &by("@alice")).await, every);
    assert_eq!(
        scan_set(ks, &by("@ALICE")).await,
        every,
        "owner ignores case"
    );
    assert_eq!(scan_set(ks, &by("alice")).await, every, "the @ is optional");
    assert!(scan_set(ks, &by("@bob")).await.is_empty());
    let bob = scan_set(ks, &with("@bob")).await;
    assert_eq!(bob, sorted(&[SECRET, BOB_PLAN]));
    assert!(bob.iter().all(|k| k.starts_with("@bob:")), "{bob:?}");
    assert_eq!(
        scan_set(ks, &with("BOB")).await,
        bob,
        "recipient ignores case"
    );
    assert_eq!(
        scan_set(ks, &with("@charlie")).await,
        owned(&[CHARLIE_PLAN])
    );
    let wavi = scan_set(ks, &ns("wavi")).await;
    assert_eq!(wavi, sorted(&[PHONE, EMAIL, SECRET]));
    assert!(wavi.iter().all(|k| k.contains(".wavi@")));
    assert_eq!(scan_set(ks, &ns("tasks")).await.len(), 2);
    assert!(
        scan_set(ks, &ns("WAVI")).await.is_empty(),
        "namespace is exact"
    );
    assert_eq!(scan_set(ks, &ns("__manage")).await, owned(&[APKAM]));
    assert!(scan_set(ks, &ns("unknown")).await.is_empty());
    assert_eq!(
        scan_set(ks, &prefix("p")).await,
        sorted(&[PHONE, BOB_PLAN, CHARLIE_PLAN])
    );
    assert!(
        scan_set(ks, &prefix("P")).await.is_empty(),
        "id prefix is case-sensitive"
    );
    assert!(
        scan_set(ks, &prefix("p.*")).await.is_empty(),
        "id prefix is not a regex"
    );
    assert!(ks.exists(PHONE).await.unwrap());
    assert!(scan_set(ks, &prefix("phone"))
        .await
        .contains(&PHONE.to_string()));
    assert_eq!(
        scan_set(ks, &with("private")).await,
        owned(&[APKAM]),
        "the parser's quirk: private: is a recipient"
    );

    // AND: every set field must hold.
    let bob_tasks = KeyPattern {
        shared_with: Some("@bob".into()),
        namespace: Some("tasks".into()),
        ..Default::default()
    };
    assert_eq!(scan_set(ks, &bob_tasks).await, owned(&[BOB_PLAN]));
    let all_four = KeyPattern {
        shared_by: Some("@alice".into()),
        shared_with: Some("@bob".into()),
        namespace: Some("wavi".into()),
        id_prefix: Some("sec".into()),
    };
    assert_eq!(scan_set(ks, &all_four).await, owned(&[SECRET]));
    for broken in [
        KeyPattern {
            shared_by: Some("@bob".into()),
            ..all_four.clone()
        },
        KeyPattern {
            shared_with: Some("@charlie".into()),
            ..all_four.clone()
        },
        KeyPattern {
            namespace: Some("tasks".into()),
            ..all_four.clone()
        },
        KeyPattern {
            id_prefix: Some("plan".into()),
            ..all_four.clone()
        },
    ] {
        assert!(
            scan_set(ks, &broken).await.is_empty(),
            "one failing field fails the pattern: {broken}"
        );
    }
    let wavi_p = KeyPattern {
        namespace: Some("wavi".into()),
        id_prefix: Some("p".into()),
        ..Default::default()
    };
    assert_eq!(scan_set(ks, &wavi_p).await, owned(&[PHONE]));
}

/// scan_keys_order_test, API-5.0 2.2-2.3: byKey ascending; skip then limit after
/// filtering; byCreatedAt in creation order; byExpiresAt ascending; records without the
/// field come last in both metadata orders.
pub async fn scan_keys_orders_pages_and_puts_missing_fields_last(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let (zebra, apple, mango, banana) = (
        "public:zebra@alice",
        "public:apple@alice",
        "public:mango@alice",
        "public:banana@alice",
    );
    for k in [zebra, apple, mango, banana] {
        ks.put(k, v("v"), W).await.unwrap();
    }
    let any = KeyPattern::default();
    assert_eq!(
        scan_set(ks, &any).await,
        sorted(&[zebra, apple, mango, banana]),
        "the natural order yields every key once"
    );
    let by_key = Some(OrderByKey::ByKey);
    assert_eq!(
        scan(ks, &any, paged(by_key, None, None)).await,
        owned(&[apple, banana, mango, zebra])
    );
    assert_eq!(
        scan(ks, &any, paged(by_key, None, Some(2))).await,
        owned(&[apple, banana])
    );
    assert_eq!(
        scan(ks, &any, paged(by_key, Some(2), None)).await,
        owned(&[mango, zebra])
    );
    assert_eq!(
        scan(ks, &any, paged(by_key, Some(1), Some(2))).await,
        owned(&[banana, mango])
    );
    assert!(scan(ks, &any, paged(by_key, Some(100), None))
        .await
        .is_empty());
    assert!(scan(ks, &any, paged(by_key, None, Some(0)))
        .await
        .is_empty());

    // byCreatedAt: re-created zebra, apple, mango, banana 5 ms apart.
    assert_eq!(
        ks.remove_many(&[zebra, apple, mango, banana], false)
            .await
            .unwrap(),
        4
    );
    for k in [zebra, apple, mango, banana] {
        ctx.clock.advance(5);
        ks.put(k, v("v"), W).await.unwrap();
    }
    let by_created = Some(OrderByKey::ByCreatedAt);
    assert_eq!(
        scan(ks, &any, paged(by_created, None, None)).await,
        owned(&[zebra, apple, mango, banana])
    );
    assert_eq!(
        scan(ks, &any, paged(by_created, Some(1), Some(2))).await,
        owned(&[apple, mango]),
        "skip and limit apply to the ordered keys"
    );
    // A record restored without createdAt sorts after every dated one.
    let undated = "public:aardvark@alice";
    ks.restore(undated, v("raw")).await.unwrap();
    assert_eq!(meta_of(ks, undated).await.and_then(|m| m.created_at), None);
    assert_eq!(
        scan(ks, &any, paged(by_created, None, None)).await,
        owned(&[zebra, apple, mango, banana, undated]),
        "no createdAt sorts last"
    );
    // An update keeps createdAt, so the order does not move.
    ctx.clock.advance(5);
    ks.put(zebra, v("v2"), W).await.unwrap();
    assert_eq!(
        scan(ks, &any, paged(by_created, None, Some(1))).await,
        owned(&[zebra])
    );

    // byExpiresAt: ascending expiry, never-expiring keys last (in any order among them).
    ks.put(mango, v_ttl("v", 300_000), W).await.unwrap();
    ks.put(apple, v_ttl("v", 100_000), W).await.unwrap();
    ks.put(banana, v_ttl("v", 200_000), W).await.unwrap();
    let got = scan(ks, &any, ScanOptions::ordered(OrderByKey::ByExpiresAt)).await;
    assert_eq!(got[..3].to_vec(), owned(&[apple, banana, mango]));
    assert_eq!(
        got[3..].iter().cloned().collect::<BTreeSet<_>>(),
        set([zebra, undated]),
        "no expiry sorts last"
    );
    assert_eq!(
        scan(
            ks,
            &any,
            paged(Some(OrderByKey::ByExpiresAt), Some(1), Some(1))
        )
        .await,
        owned(&[banana])
    );

    // Filtering happens before ordering and paging.
    ks.put("public:plan.tasks@alice", v("v"), W).await.unwrap();
    assert_eq!(
        scan(ks, &ns("tasks"), paged(by_key, None, None)).await,
        owned(&["public:plan.tasks@alice"])
    );
    assert_eq!(
        scan(ks, &prefix("b"), paged(by_created, Some(0), Some(5))).await,
        owned(&[banana])
    );
}

async fn meta_of(ks: &DynKeyStore, key: &str) -> Option<AtMetaData> {
    ks.get_meta(key).await.unwrap()
}

/// API-5.0 2.3 and 3.8: without include_expired a key is hidden once `expires_at <= now`
/// and until `available_at <= now`, in every order; include_expired lists them all; the
/// boundary instant itself counts as expired / available.
pub async fn scan_keys_hides_expired_and_unborn_keys_at_the_boundary(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let dies = "public:dies.wavi@alice";
    let born = "public:born.wavi@alice";
    let plain = "public:plain.wavi@alice";
    ks.put(dies, v_ttl("x", 100), W).await.unwrap();
    ks.put(born, v_ttb("x", 100), W).await.unwrap();
    ks.put(plain, v("x"), W).await.unwrap();
    let every = sorted(&[dies, born, plain]);
    ctx.clock.set(T0.plus_millis(99));
    let check = |when: &'static str, visible: Vec<String>| {
        let ks = ks.clone();
        let every = every.clone();
        async move { assert_visible(&ks, when, &visible, &every).await }
    };
    check("1 ms before both instants", sorted(&[dies, plain])).await;
    ctx.clock.set(T0.plus_millis(100));
    check("at both instants", sorted(&[born, plain])).await;
    ctx.clock.set(T0.plus_millis(101));
    check("after both instants", sorted(&[born, plain])).await;
    assert_eq!(
        scan(
            ks,
            &ns("wavi"),
            paged(Some(OrderByKey::ByKey), Some(1), None)
        )
        .await,
        owned(&[plain]),
        "skip counts visible keys only"
    );
    // Reads ignore time.
    assert_eq!(data(ks, dies).await.as_deref(), Some("x"));
    assert!(ks.exists(dies).await.unwrap());
}

/// Asserts that scan_keys lists `visible` in every order without include_expired, `every`
/// with it, and that a snapshot's scan_keys lists `visible`.
async fn assert_visible(ks: &DynKeyStore, when: &str, visible: &[String], every: &[String]) {
    let any = KeyPattern::default();
    for order_by in [
        None,
        Some(OrderByKey::ByKey),
        Some(OrderByKey::ByCreatedAt),
        Some(OrderByKey::ByExpiresAt),
    ] {
        let mut got = scan(ks, &any, paged(order_by, None, None)).await;
        got.sort();
        assert_eq!(got, visible, "{when}, order {order_by:?}");
        let mut all = scan(
            ks,
            &any,
            ScanOptions {
                order_by,
                ..all_times()
            },
        )
        .await;
        all.sort();
        assert_eq!(all, every, "{when}, include_expired, order {order_by:?}");
    }
    let snap = ks.snapshot().await.unwrap();
    let mut got = collect(snap.scan_keys(&any).await.unwrap()).await;
    got.sort();
    assert_eq!(got, visible, "{when}: the snapshot's scan_keys");
    snap.release().await;
}

/// exists_test (5.0 port of the isKeyExists agreement): exists agrees with get, and for
/// available keys with scan_keys and get_keys, whatever the spelling.
pub async fn exists_agrees_with_get_scan_keys_and_get_keys(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    ks.put("public:Mixed@alice", v("1"), W).await.unwrap();
    ks.put("@bob:shared.wavi@alice", v("1"), W).await.unwrap();
    ks.put("gone.wavi@alice", v("1"), W).await.unwrap();
    ks.remove("gone.wavi@alice", R).await.unwrap();
    let scanned = scan_set(ks, &KeyPattern::default()).await;
    assert_eq!(scanned, keys(ks, None).await, "scan_keys == get_keys");
    for probe in [
        "public:Mixed@alice",
        "PUBLIC:MIXED@ALICE",
        "@BOB:shared.wavi@alice",
        "gone.wavi@alice",
        "never.wavi@alice",
    ] {
        let e = ks.exists(probe).await.unwrap();
        let canonical = probe.to_lowercase();
        assert_eq!(e, ks.get(probe).await.is_ok(), "exists vs get for {probe}");
        assert_eq!(
            e,
            scanned.contains(&canonical),
            "exists vs scan_keys for {probe}"
        );
        assert_eq!(
            e,
            ks.get_many(&[probe])
                .await
                .unwrap()
                .contains_key(&canonical),
            "exists vs get_many for {probe}"
        );
    }
}

// ------------------------------------------------------------------ snapshots

/// snapshot_test, API-5.0 2.6: supports_snapshots is false, so a snapshot reads live state;
/// an absent key is None; release is idempotent; every read after release is
/// SnapshotReleased.
pub async fn snapshot_reads_live_state_and_fails_after_release(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "public:k@alice";
    assert_eq!(ks.supports_snapshots(), backend.capabilities().snapshots);
    ks.put(k, v("v"), W).await.unwrap();
    let snap = ks.snapshot().await.unwrap();
    let got = snap
        .get(k)
        .await
        .unwrap()
        .expect("present through the snapshot");
    assert_eq!(got.data.as_deref(), Some("v"));
    assert_eq!(
        got.meta_data,
        ks.get(k).await.unwrap().meta_data,
        "the snapshot returns the stored record"
    );
    assert_eq!(
        snap.get("PUBLIC:K@alice").await.unwrap().map(|d| d.data),
        Some(Some("v".to_string())),
        "the snapshot folds keys to the canonical form"
    );
    assert!(
        collect(snap.scan_keys(&KeyPattern::default()).await.unwrap())
            .await
            .contains(&k.to_string())
    );
    assert_eq!(snap.get("public:absent@alice").await.unwrap(), None);

    ks.put(k, v("v2"), W).await.unwrap();
    ks.put("public:later@alice", v("l"), W).await.unwrap();
    let seen = snap.get(k).await.unwrap().and_then(|d| d.data);
    let later = collect(snap.scan_keys(&KeyPattern::default()).await.unwrap()).await;
    if ks.supports_snapshots() {
        assert_eq!(seen.as_deref(), Some("v"), "an isolated snapshot");
        assert!(!later.contains(&"public:later@alice".to_string()));
    } else {
        assert_eq!(
            seen.as_deref(),
            Some("v2"),
            "a live snapshot sees later writes"
        );
        assert!(later.contains(&"public:later@alice".to_string()));
    }
    snap.release().await;
    snap.release().await;
    assert!(matches!(
        snap.get(k).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        snap.get("public:absent@alice").await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        snap.scan_keys(&KeyPattern::default()).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    // Releasing one snapshot leaves the store and other snapshots alone.
    let other = ks.snapshot().await.unwrap();
    assert!(other.get(k).await.unwrap().is_some());
    assert_eq!(data(ks, k).await.as_deref(), Some("v2"));
    other.release().await;
}

// ------------------------------------------------------------------ transactions

/// transaction_test, API-5.0 2.5: buffered puts are applied when the body returns Ok, as
/// put_all (UPDATE_ALL, builder metadata, KeyAdded/KeyUpdated); a remove writes a DELETE;
/// transaction returns the body's value.
pub async fn transaction_applies_puts_as_put_all_and_returns_the_body_value(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let (a, bb, c) = ("public:a@alice", "public:b@alice", "public:c@alice");
    ks.put(c, v("seed"), W).await.unwrap(); // id 0
    let mut events = ks.changes();
    let out = ks
        .transaction(|txn| async move {
            txn.put(a, AtData::with_meta("one", AtMetaData::default()))
                .await?;
            txn.put(bb, v_ttl("two", 60_000)).await?;
            txn.remove(c).await?;
            Ok(42)
        })
        .await
        .unwrap();
    assert_eq!(out, 42, "the body's value is returned");
    assert_eq!(data(ks, a).await.as_deref(), Some("one"));
    assert_eq!(data(ks, bb).await.as_deref(), Some("two"));
    assert_absent(ks, c).await;
    assert_eq!(
        entries(&log).await,
        vec![
            (1, a.to_string(), "*"),
            (2, bb.to_string(), "*"),
            (3, c.to_string(), "-"),
        ],
        "puts commit UPDATE_ALL, the remove DELETE, in buffer order"
    );
    assert_eq!(
        next_events(&mut events, 3).await,
        vec![added(a), added(bb), removed(c)]
    );
    assert_no_event(&mut events, "after the transaction").await;
    // The metadata builder ran: versions, timestamps, owner, expiry.
    let m = meta(ks, bb).await;
    assert_eq!(m.version, Some(0));
    assert_eq!(m.created_at, Some(T0));
    assert_eq!(m.ttl, Some(60_000));
    assert_eq!(m.expires_at, Some(T0.plus_millis(60_000)));
    assert_eq!(ks.next_expires_at().await.unwrap(), m.expires_at);

    // A put of a present key updates it (version +1, createdAt kept, KeyUpdated).
    ctx.clock.advance(10);
    ks.transaction(|txn| async move {
        txn.put(a, AtData::with_meta("uno", AtMetaData::default()))
            .await
    })
    .await
    .unwrap();
    let m = meta(ks, a).await;
    assert_eq!(m.version, Some(1));
    assert_eq!(m.created_at, Some(T0));
    assert_eq!(m.updated_at, Some(T0.plus_millis(10)));
    assert_eq!(latest_id(&log, a).await, Some(4));
    assert_eq!(latest_op(&log, a).await, Some("*"));
    assert_eq!(next_events(&mut events, 1).await, vec![updated(a)]);

    // An empty transaction changes nothing.
    let before = fingerprint(ks).await;
    assert_eq!(
        ks.transaction(|_txn| async move { Ok("nothing") })
            .await
            .unwrap(),
        "nothing"
    );
    assert_eq!(fingerprint(ks).await, before);
    assert_no_event(&mut events, "an empty transaction").await;
}

/// transaction_test, API-5.0 2.5: when the body fails nothing is applied (values, commit
/// entries and mark unchanged), no event fires and the body's error comes back unchanged.
pub async fn transaction_body_error_applies_nothing_and_returns_the_error(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let (a, c) = ("public:a@alice", "public:c@alice");
    ks.put(c, v("seed"), W).await.unwrap();
    let before = fingerprint(ks).await;
    let mut events = ks.changes();
    let r: Result<u32, _> = ks
        .transaction(|txn| async move {
            txn.put(a, v("one")).await?;
            txn.remove(c).await?;
            assert!(txn.exists(a).await?);
            Err(PersistenceError::KeyNotFound {
                key: "sentinel-from-the-body".into(),
            })
        })
        .await;
    match r {
        Err(PersistenceError::KeyNotFound { key }) => assert_eq!(key, "sentinel-from-the-body"),
        other => panic!("the body's error should come back unchanged, got {other:?}"),
    }
    assert_absent(ks, a).await;
    assert!(ks.exists(c).await.unwrap(), "c is still there");
    assert_eq!(fingerprint(ks).await, before, "nothing was applied");
    assert_no_event(&mut events, "a failed transaction").await;

    // A body whose own operation fails (invalid key) propagates that typed error.
    let r = ks
        .transaction(|txn| async move {
            txn.put(a, v("one")).await?;
            txn.put("not a key", v("x")).await?;
            Ok(())
        })
        .await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidKey { .. })),
        "got {r:?}"
    );
    assert_absent(ks, a).await;
    assert_eq!(fingerprint(ks).await, before);
    assert_no_event(&mut events, "a transaction with an invalid key").await;

    // A successful one after the failures fires exactly its own event.
    ks.transaction(|txn| async move { txn.put("public:ok@alice", v("ok")).await })
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        vec![added("public:ok@alice")]
    );
    assert_no_event(&mut events, "one put").await;
}

/// transaction_test, API-5.0 2.5: reads inside the body see the transaction's view: the
/// buffered value, None after a buffered remove, else the store (absent → None); keys
/// compare case-insensitively.
pub async fn transaction_reads_see_the_buffer_over_the_store(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "public:k@alice";
    let fresh = "public:fresh@alice";
    ks.put(k, v("stored"), W).await.unwrap();
    let store = ks.clone();
    ks.transaction(|txn| async move {
        assert_eq!(
            txn.get(k).await?.and_then(|d| d.data).as_deref(),
            Some("stored")
        );
        assert!(txn.exists(k).await?);
        assert_eq!(
            txn.get("public:absent@alice").await?,
            None,
            "absent is None"
        );
        assert!(!txn.exists("public:absent@alice").await?);
        txn.put("public:TMP@alice", v("x")).await?;
        assert_eq!(
            txn.get("public:tmp@alice")
                .await?
                .and_then(|d| d.data)
                .as_deref(),
            Some("x"),
            "the buffered value, case-insensitively"
        );
        assert!(
            !store.exists("public:tmp@alice").await?,
            "nothing reaches the store before commit"
        );
        txn.remove("PUBLIC:K@alice").await?;
        assert_eq!(txn.get(k).await?, None, "None after a buffered remove");
        assert!(!txn.exists(k).await?);
        assert!(store.exists(k).await?, "the store still has it");
        txn.put(fresh, v("f")).await?;
        assert!(txn.exists(fresh).await?);
        Ok(())
    })
    .await
    .unwrap();
    assert_absent(ks, k).await;
    assert!(ks.exists(fresh).await.unwrap());
    assert_eq!(data(ks, "public:tmp@alice").await.as_deref(), Some("x"));

    // put then remove of the same key inside one transaction leaves it absent.
    let rw = "public:rw@alice";
    ks.put(rw, v("pre"), W).await.unwrap();
    ks.transaction(|txn| async move {
        txn.put(rw, v("mid")).await?;
        assert_eq!(
            txn.get(rw).await?.and_then(|d| d.data).as_deref(),
            Some("mid")
        );
        txn.remove(rw).await
    })
    .await
    .unwrap();
    assert_absent(ks, rw).await;
}

/// API-5.0 2.5 as decided for the port: the latest operation per key wins; operations take
/// commit ids and fire events in the order of each key's last operation.
pub async fn transaction_latest_op_per_key_wins_in_the_order_of_last_ops(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let (a, bb, c, x) = (
        "public:a@alice",
        "public:b@alice",
        "public:c@alice",
        "public:x@alice",
    );
    ks.put(x, v("seed"), W).await.unwrap(); // id 0
    let mut events = ks.changes();
    ks.transaction(|txn| async move {
        txn.put(a, v("a1")).await?; // superseded by the later put of a
        txn.put(bb, v("b1")).await?;
        txn.remove(x).await?;
        txn.put("PUBLIC:A@alice", v("a2")).await?; // a moves behind x
        txn.put(c, v("c1")).await?;
        txn.remove(c).await?; // c ends removed (it never existed)
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        data(ks, a).await.as_deref(),
        Some("a2"),
        "the latest put wins"
    );
    assert_eq!(meta(ks, a).await.version, Some(0), "applied once");
    assert_eq!(data(ks, bb).await.as_deref(), Some("b1"));
    assert_absent(ks, x).await;
    assert_absent(ks, c).await;
    assert_eq!(
        entries(&log).await,
        vec![
            (1, bb.to_string(), "*"),
            (2, x.to_string(), "-"),
            (3, a.to_string(), "*"),
            (4, c.to_string(), "-"),
        ],
        "ids follow the order of each key's last op; one entry per key"
    );
    assert_eq!(last(&log).await, 4);
    assert_eq!(
        next_events(&mut events, 4).await,
        vec![added(bb), removed(x), added(a), removed(c)]
    );
    assert_no_event(&mut events, "superseded ops fire nothing").await;
}

/// API-5.0 2.5: an invalid key is refused by txn.put / txn.remove at once with a typed
/// error (the buffer keeps its other ops); a second commit, and any use after commit, is
/// InvalidArgument; a transaction dropped without commit discards its buffer.
pub async fn transaction_handles_reject_bad_keys_reuse_and_discard_on_drop(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let a = "public:a@alice";
    ks.put("public:seed@alice", v("s"), W).await.unwrap();
    let before = fingerprint(ks).await;
    let mut events = ks.changes();

    let txn: Arc<dyn KeyStoreTxn<AtData>> = ks.begin_transaction().await.unwrap();
    txn.put(a, v("1")).await.unwrap();
    for bad in ["hello123", "hello@", "privatekey:mykey", ""] {
        let r = txn.put(bad, v("x")).await;
        assert!(
            matches!(r, Err(PersistenceError::InvalidKey { .. })),
            "txn.put({bad:?}): {r:?}"
        );
        let r = txn.remove(bad).await;
        assert!(
            matches!(r, Err(PersistenceError::InvalidKey { .. })),
            "txn.remove({bad:?}): {r:?}"
        );
    }
    let long = format!("public:{}@alice", "x".repeat(300));
    assert!(matches!(
        txn.put(&long, v("x")).await,
        Err(PersistenceError::KeyTooLong { .. })
    ));
    assert_eq!(
        fingerprint(ks).await,
        before,
        "nothing applied before commit"
    );
    txn.commit().await.unwrap();
    assert_eq!(
        data(ks, a).await.as_deref(),
        Some("1"),
        "the valid op was kept"
    );
    assert_eq!(latest_op(&log, a).await, Some("*"));
    assert_eq!(next_events(&mut events, 1).await, vec![added(a)]);
    let after = fingerprint(ks).await;
    for r in [
        txn.commit().await,
        txn.put("public:late@alice", v("x")).await,
        txn.remove(a).await,
    ] {
        assert!(
            matches!(r, Err(PersistenceError::InvalidArgument { .. })),
            "use after commit: {r:?}"
        );
    }
    assert!(matches!(
        txn.get(a).await,
        Err(PersistenceError::InvalidArgument { .. })
    ));
    assert_eq!(
        fingerprint(ks).await,
        after,
        "a second commit applies nothing"
    );

    // Dropped without commit: nothing happens.
    {
        let t = ks.begin_transaction().await.unwrap();
        t.put("public:dropped@alice", v("x")).await.unwrap();
        t.remove(a).await.unwrap();
    }
    assert_absent(ks, "public:dropped@alice").await;
    assert_eq!(data(ks, a).await.as_deref(), Some("1"));
    assert_eq!(fingerprint(ks).await, after);
    assert_no_event(&mut events, "a dropped transaction").await;
}

// ------------------------------------------------------------------ stats

/// stats_test, API-5.0 2.7: exact counts; ttl/ttb keys are records with a stored
/// expiresAt/availableAt; oldest/newest createdAt; expired and unborn keys counted.
pub async fn stats_count_records_expiry_availability_and_creation_edges(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (0, 0, 0));
    assert_eq!((s.oldest_created_at, s.newest_created_at), (None, None));

    ks.put("public:a@alice", v("a"), W).await.unwrap();
    ctx.clock.advance(10);
    ks.put("public:b@alice", v_ttl("b", 60_000), W)
        .await
        .unwrap();
    ctx.clock.advance(10);
    ks.put("public:c@alice", v_ttb("c", 30_000), W)
        .await
        .unwrap();
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (3, 1, 1));
    assert_eq!(s.oldest_created_at, Some(T0));
    assert_eq!(s.newest_created_at, Some(T0.plus_millis(20)));
    assert!(s.oldest_created_at < s.newest_created_at);

    // An asserted expiresAt without a ttl still counts (a stored expiresAt).
    ks.put(
        "public:d@alice",
        v("d"),
        WriteOptions::asserted(AssertedTimestamps {
            expires_at: Some(T0.plus_millis(DAY)),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(ks.stats().await.unwrap().ttl_keys, 2);
    // Expired and unborn keys still count; removals and updates are reflected exactly.
    ctx.clock.advance(DAY * 2);
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (4, 2, 1));
    // Metadata given with a write replaces the stored one: no ttl any more.
    ks.put(
        "public:b@alice",
        AtData::with_meta("b2", AtMetaData::default()),
        W,
    )
    .await
    .unwrap();
    ks.remove("public:c@alice", R).await.unwrap();
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (3, 1, 0));
    assert_eq!(s.oldest_created_at, Some(T0), "an update keeps createdAt");
    assert_eq!(
        s.newest_created_at,
        Some(T0.plus_millis(20)),
        "d was created at +20 ms too"
    );
    ks.remove_many(
        &["public:a@alice", "public:b@alice", "public:d@alice"],
        false,
    )
    .await
    .unwrap();
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (0, 0, 0));
    assert_eq!((s.oldest_created_at, s.newest_created_at), (None, None));

    // The counts survive a restart.
    ks.put("public:e@alice", v_ttl("e", DAY), W).await.unwrap();
    let before = ks.stats().await.unwrap();
    let b2 = ctx.restart("@alice").await;
    let after = b2.key_value_store().stats().await.unwrap();
    assert_eq!(
        (
            after.total_keys,
            after.ttl_keys,
            after.ttb_keys,
            after.oldest_created_at,
            after.newest_created_at
        ),
        (
            before.total_keys,
            before.ttl_keys,
            before.ttb_keys,
            before.oldest_created_at,
            before.newest_created_at
        )
    );
}

// ------------------------------------------------------------------ query_by_path

/// `query_by_path` collected.
async fn query(
    ks: &DynKeyStore,
    pattern: &KeyPattern,
    p: &Predicate,
    options: ScanOptions,
) -> Vec<KeyEntry<AtData, AtMetaData>> {
    collect(
        ks.query_by_path(pattern, p, options)
            .await
            .unwrap_or_else(|e| panic!("query_by_path({p}): {e}")),
    )
    .await
}

/// The keys `query_by_path` yields, in its order.
async fn query_keys(
    ks: &DynKeyStore,
    pattern: &KeyPattern,
    p: &Predicate,
    options: ScanOptions,
) -> Vec<String> {
    query(ks, pattern, p, options)
        .await
        .into_iter()
        .map(|e| e.key)
        .collect()
}

/// query_by_path_test, API-5.0 2.2 and 3.3: with path queries supported, values are read
/// as JSON: `city = paris` yields only `a.wavi@alice`; And([]) yields every key of the
/// pattern and Or([]) none; a null expected value matches null or missing; numbers compare
/// by value; booleans match only JSON booleans; a value that is not JSON never matches a
/// PathEquals; expiry is not filtered; skip and limit apply after filtering. Without the
/// capability, the store says so and the query fails.
pub async fn query_by_path_matches_values_read_as_json(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let (a, bk, c, d, e) = (
        "a.wavi@alice",
        "b.wavi@alice",
        "c.wavi@alice",
        "d.wavi@alice",
        "e.wavi@alice",
    );
    let other = "x.tasks@alice";
    let docs: [(&str, String); 6] = [
        (
            a,
            json!({"city": "paris", "n": 1, "ok": true, "obj": {"amount": 100}}).to_string(),
        ),
        (
            bk,
            json!({"city": "london", "n": 1.0, "ok": 1, "obj": {"amount": 200}}).to_string(),
        ),
        (c, "not json at all".to_string()),
        (d, json!({"city": null, "n": 2}).to_string()),
        (e, json!({"other": "paris"}).to_string()),
        (other, json!({"city": "paris"}).to_string()),
    ];
    for (k, doc) in &docs {
        ks.put(k, v(doc), W).await.unwrap();
    }
    let wavi = ns("wavi");
    let paris = Predicate::path_equals(["city"], "paris");
    if !backend.capabilities().path_queries {
        assert!(!ks.supports_path_queries());
        assert!(ks
            .query_by_path(&wavi, &paris, ScanOptions::default())
            .await
            .is_err());
        return;
    }
    assert!(ks.supports_path_queries());
    let keys_of = |p: Predicate| {
        let ks = ks.clone();
        let wavi = wavi.clone();
        async move {
            let mut k = query_keys(&ks, &wavi, &p, ScanOptions::default()).await;
            k.sort();
            k
        }
    };
    let found = query(ks, &wavi, &paris, ScanOptions::default()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, a);
    let stored = ks.get(a).await.unwrap();
    assert_eq!(
        found[0].data.data, stored.data,
        "the entry carries the value"
    );
    assert_eq!(found[0].metadata, stored.meta_data, "and the metadata");
    assert_eq!(
        query(ks, &KeyPattern::default(), &paris, ScanOptions::default())
            .await
            .len(),
        2,
        "the pattern restricts the keys (x.tasks also has city paris)"
    );
    assert_eq!(
        keys_of(Predicate::And(vec![])).await,
        sorted(&[a, bk, c, d, e]),
        "And([]) is true, even for a value that is not JSON"
    );
    assert!(
        keys_of(Predicate::Or(vec![])).await.is_empty(),
        "Or([]) is false"
    );
    assert_eq!(
        keys_of(Predicate::path_equals(["city"], Value::Null)).await,
        sorted(&[d, e]),
        "null matches JSON null or a missing field, never a non-JSON value"
    );
    assert_eq!(
        keys_of(Predicate::path_equals(["n"], 1)).await,
        sorted(&[a, bk]),
        "1 and 1.0 are the same number"
    );
    assert_eq!(
        keys_of(Predicate::path_equals(["n"], 1.0)).await,
        sorted(&[a, bk])
    );
    assert_eq!(
        keys_of(Predicate::path_equals(["ok"], true)).await,
        owned(&[a]),
        "a boolean matches only a JSON boolean"
    );
    assert!(keys_of(Predicate::path_equals(["ok"], "true"))
        .await
        .is_empty());
    assert_eq!(
        keys_of(Predicate::path_equals(["obj", "amount"], 200)).await,
        owned(&[bk]),
        "paths walk nested objects"
    );
    assert!(
        keys_of(Predicate::path_equals(["city", "x"], "paris"))
            .await
            .is_empty(),
        "walking into a string finds nothing"
    );
    assert_eq!(
        keys_of(Predicate::And(vec![
            Predicate::path_equals(["n"], 1),
            Predicate::Or(vec![
                Predicate::path_equals(["obj", "amount"], 100),
                Predicate::path_equals(["obj", "amount"], 300),
            ]),
        ]))
        .await,
        owned(&[a])
    );
    assert_eq!(
        keys_of(Predicate::Or(vec![
            paris.clone(),
            Predicate::path_equals(["n"], 2)
        ]))
        .await,
        sorted(&[a, d])
    );

    // Skip and limit apply after filtering (in key order).
    let every = ScanOptions::ordered(OrderByKey::ByKey);
    let page = |skip, limit| ScanOptions {
        skip,
        limit,
        ..every
    };
    let page_keys = |p: Predicate, o: ScanOptions| {
        let ks = ks.clone();
        let wavi = wavi.clone();
        async move { query_keys(&ks, &wavi, &p, o).await }
    };
    let num = Predicate::Or(vec![
        Predicate::path_equals(["n"], 1),
        Predicate::path_equals(["n"], 2),
    ]);
    assert_eq!(page_keys(num.clone(), every).await, owned(&[a, bk, d]));
    assert_eq!(
        page_keys(num.clone(), page(Some(1), None)).await,
        owned(&[bk, d])
    );
    assert_eq!(
        page_keys(num.clone(), page(Some(1), Some(1))).await,
        owned(&[bk])
    );
    assert!(page_keys(num.clone(), page(None, Some(0))).await.is_empty());
    assert!(page_keys(num, page(Some(3), None)).await.is_empty());

    // Expiry is not filtered.
    ks.put(
        "t.wavi@alice",
        v_ttl(&json!({"city": "paris"}).to_string(), 1),
        W,
    )
    .await
    .unwrap();
    ctx.clock.advance(10);
    assert_eq!(expired(ks).await, owned(&["t.wavi@alice"]));
    assert_eq!(keys_of(paris).await, sorted(&[a, "t.wavi@alice"]));
}

// ------------------------------------------------------------------ availability index

/// min_max_first_class_test (availability part), API-5.0 3.6: next_available_at is the
/// smallest availableAt strictly after as_of (ttl-only keys ignored); peek_newly_available
/// lists keys with since < availableAt <= as_of in ascending order, capped by limit; both
/// follow updates and removes.
pub async fn next_available_at_and_peek_newly_available_follow_the_availability_index(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_ttb").await;
    let ks = b.key_value_store();
    let peek = |since: Timestamp, as_of: Option<Timestamp>, limit: Option<usize>| {
        let ks = ks.clone();
        async move { collect(ks.peek_newly_available(since, as_of, limit).await.unwrap()).await }
    };
    ks.put("ttl.wavi@minmax_ttb", v_ttl("x", 1000), W)
        .await
        .unwrap();
    assert_eq!(
        ks.next_available_at(None).await.unwrap(),
        None,
        "a ttl-only key is ignored"
    );
    let (early, late) = ("early.wavi@minmax_ttb", "late.wavi@minmax_ttb");
    ks.put(late, v_ttb("x", 200_000), W).await.unwrap();
    ks.put(early, v_ttb("x", 100_000), W).await.unwrap();
    let early_at = meta(ks, early).await.available_at.expect("availableAt");
    let late_at = meta(ks, late).await.available_at.expect("availableAt");
    assert_eq!(early_at, T0.plus_millis(100_000));
    assert_eq!(ks.next_available_at(None).await.unwrap(), Some(early_at));
    assert_eq!(
        ks.next_available_at(Some(early_at)).await.unwrap(),
        Some(late_at),
        "strictly after as_of"
    );
    assert_eq!(ks.next_available_at(Some(late_at)).await.unwrap(), None);
    assert_eq!(
        ks.next_available_at(Some(early_at.minus_millis(1)))
            .await
            .unwrap(),
        Some(early_at)
    );

    let (ka, kb, kc) = (
        "a.wavi@minmax_ttb",
        "b.wavi@minmax_ttb",
        "c.wavi@minmax_ttb",
    );
    ks.remove_many(&[early, late], false).await.unwrap();
    ks.put(kc, v_ttb("x", 300_000), W).await.unwrap();
    ks.put(ka, v_ttb("x", 100_000), W).await.unwrap();
    ks.put(kb, v_ttb("x", 200_000), W).await.unwrap();
    let (a_at, c_at) = (
        meta(ks, ka).await.available_at.expect("a"),
        meta(ks, kc).await.available_at.expect("c"),
    );
    assert_eq!(
        peek(Timestamp::EPOCH, Some(c_at), None).await,
        owned(&[ka, kb, kc])
    );
    assert_eq!(
        peek(a_at, Some(c_at), None).await,
        owned(&[kb, kc]),
        "since is exclusive"
    );
    assert_eq!(
        peek(Timestamp::EPOCH, Some(c_at), Some(1)).await,
        owned(&[ka])
    );
    assert!(peek(Timestamp::EPOCH, Some(c_at), Some(0)).await.is_empty());
    assert_eq!(
        peek(Timestamp::EPOCH, Some(c_at.minus_millis(1)), None).await,
        owned(&[ka, kb]),
        "as_of is inclusive"
    );
    assert!(
        peek(Timestamp::EPOCH, None, None).await.is_empty(),
        "nothing is available yet at now"
    );
    ctx.clock.set(a_at);
    assert_eq!(
        peek(Timestamp::EPOCH, None, None).await,
        owned(&[ka]),
        "as_of defaults to now"
    );
    assert_eq!(
        ks.next_available_at(None).await.unwrap(),
        Some(T0.plus_millis(200_000)),
        "as_of defaults to now"
    );
    // Updates and removes move the index.
    ks.remove(kb, R).await.unwrap();
    assert_eq!(ks.next_available_at(None).await.unwrap(), Some(c_at));
    ks.put(kc, AtData::with_meta("no ttb", AtMetaData::default()), W)
        .await
        .unwrap();
    assert_eq!(ks.next_available_at(None).await.unwrap(), None);
    assert_eq!(
        peek(Timestamp::EPOCH, Some(T0.plus_millis(DAY)), None).await,
        owned(&[ka])
    );
}

// ------------------------------------------------------------------ restore

/// The verbatim_restore_test source metadata.
fn foreign_meta() -> AtMetaData {
    AtMetaData {
        created_by: Some("@someone_else".into()),
        updated_by: Some("@someone_else".into()),
        // 2020-01-02T03:04:05.678Z and 2021-06-07T08:09:10.111Z
        created_at: Some(Timestamp::from_millis(1_577_934_245_678)),
        updated_at: Some(Timestamp::from_millis(1_623_053_350_111)),
        version: Some(99),
        ttl: Some(0),
        ttr: Some(-1),
        is_encrypted: Some(true),
        data_signature: Some("sig".into()),
        encoding: Some("base64".into()),
        status: Some("active".into()),
        ..Default::default()
    }
}

/// verbatim_restore_test, API-5.0 3.1: restore keeps every metadata field as given (no
/// builder), writes no commit entry, fires no event, leaves the mark alone and is
/// idempotent; key rules apply.
pub async fn restore_keeps_every_field_without_commit_or_event_and_is_idempotent(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@verbatim_user").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let seeded = "seeded.wavi@verbatim_user";
    let k = "phone.wavi@verbatim_user";
    ks.put(seeded, v("s"), W).await.unwrap();
    let mark = last(&log).await;
    let mut events = ks.changes();
    let value = AtData::with_meta("the-value", foreign_meta());
    ks.restore(k, value.clone()).await.unwrap();
    let got = ks.get(k).await.unwrap();
    assert_eq!(got.data.as_deref(), Some("the-value"));
    assert_eq!(
        got.meta_data,
        Some(foreign_meta()),
        "every metadata field is kept"
    );
    assert_eq!(log.get_latest_commit_entry(k).await.unwrap(), None);
    assert_eq!(last(&log).await, mark, "the mark is unchanged");
    assert_eq!(entries(&log).await, vec![(mark, seeded.to_string(), "+")]);
    assert_no_event(&mut events, "restore").await;
    let once = fingerprint(ks).await;
    ks.restore(k, value.clone()).await.unwrap();
    assert_eq!(fingerprint(ks).await, once, "restore is idempotent");
    assert_eq!(ks.stats().await.unwrap().total_keys, 2);
    // Canonical form and key rules.
    ks.restore("PHONE.Wavi@verbatim_user", value.clone())
        .await
        .unwrap();
    assert_eq!(
        fingerprint(ks).await,
        once,
        "keys fold to the canonical form"
    );
    for bad in ["hello123", "hello@", ""] {
        assert!(
            matches!(
                ks.restore(bad, value.clone()).await,
                Err(PersistenceError::InvalidKey { .. })
            ),
            "restore({bad:?})"
        );
    }
    assert_eq!(
        fingerprint(ks).await,
        once,
        "refused restores change nothing"
    );
    assert_no_event(&mut events, "restore of invalid keys").await;
    // A restore over a committed key keeps that key's entry as it was.
    let entry = log.get_latest_commit_entry(seeded).await.unwrap();
    ks.restore(seeded, AtData::with_meta("r", foreign_meta()))
        .await
        .unwrap();
    assert_eq!(data(ks, seeded).await.as_deref(), Some("r"));
    assert_eq!(meta(ks, seeded).await.version, Some(99));
    assert_eq!(log.get_latest_commit_entry(seeded).await.unwrap(), entry);
    assert_eq!(last(&log).await, mark);
    // A later ordinary put runs the builder over the restored metadata.
    ks.put(k, v("new"), W).await.unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.version, Some(100));
    assert_eq!(m.created_at, foreign_meta().created_at);
    assert_eq!(latest_id(&log, k).await, Some(mark + 1));
}

/// verbatim_restore_test, API-5.0 3.1: the expiry and availability indexes follow the
/// restored metadata (expiry sweep, next_expires_at, scan visibility, byExpiresAt), and a
/// restore over an existing record replaces its index entries.
pub async fn restore_indexes_follow_the_stored_metadata(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let (old, fresh, unborn) = ("old.wavi@alice", "fresh.wavi@alice", "unborn.wavi@alice");
    let with_times = |expires: Option<Timestamp>, available: Option<Timestamp>| AtMetaData {
        created_at: Some(T0.minus_millis(DAY)),
        expires_at: expires,
        available_at: available,
        ..Default::default()
    };
    ks.restore(
        old,
        AtData::with_meta("o", with_times(Some(T0.minus_millis(1)), None)),
    )
    .await
    .unwrap();
    ks.restore(
        fresh,
        AtData::with_meta("f", with_times(Some(T0.plus_millis(DAY)), None)),
    )
    .await
    .unwrap();
    ks.restore(
        unborn,
        AtData::with_meta("u", with_times(None, Some(T0.plus_millis(50)))),
    )
    .await
    .unwrap();
    assert_eq!(
        expired(ks).await,
        owned(&[old]),
        "an expiry in the past is expired"
    );
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.minus_millis(1))
    );
    assert_eq!(scan_set(ks, &KeyPattern::default()).await, owned(&[fresh]));
    assert_eq!(
        ks.next_available_at(None).await.unwrap(),
        Some(T0.plus_millis(50))
    );
    let s = ks.stats().await.unwrap();
    assert_eq!((s.total_keys, s.ttl_keys, s.ttb_keys), (3, 2, 1));
    assert_eq!(s.oldest_created_at, Some(T0.minus_millis(DAY)));
    assert_eq!(
        scan(
            ks,
            &KeyPattern::default(),
            ScanOptions {
                order_by: Some(OrderByKey::ByExpiresAt),
                ..all_times()
            }
        )
        .await,
        owned(&[old, fresh, unborn])
    );

    // A restore over an existing record moves its index entries.
    ks.restore(
        fresh,
        AtData::with_meta("f", with_times(Some(T0.minus_millis(5)), None)),
    )
    .await
    .unwrap();
    assert_eq!(expired(ks).await, sorted(&[old, fresh]));
    ks.restore(old, AtData::with_meta("o", with_times(None, None)))
        .await
        .unwrap();
    assert_eq!(
        expired(ks).await,
        owned(&[fresh]),
        "the old expiry entry is gone"
    );
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.minus_millis(5))
    );
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_absent(ks, fresh).await;
    ctx.clock.set(T0.plus_millis(50));
    assert_eq!(
        scan_set(ks, &KeyPattern::default()).await,
        sorted(&[old, unborn])
    );
    assert_eq!(ks.stats().await.unwrap().ttl_keys, 0);
}

// ------------------------------------------------------------------ asserted timestamps

/// asserted_timestamps_test (keystore level, beyond `keystore.rs`): asserted timestamps
/// given to put_meta and create reach the indexes: an asserted createdAt orders byCreatedAt
/// and sets the stats edges; an asserted expiresAt through put_meta is tracked and expires
/// at its instant; an asserted availableAt through create governs next_available_at.
pub async fn asserted_timestamps_reach_the_time_indexes(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let ancient = Timestamp::from_millis(1_577_934_245_678);
    let (x, y, z) = ("x.wavi@alice", "y.wavi@alice", "z.wavi@alice");
    ks.put(x, v("x"), W).await.unwrap();
    ctx.clock.advance(5);
    ks.put(
        y,
        v("y"),
        WriteOptions::asserted(AssertedTimestamps {
            created_at: Some(ancient),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        scan(
            ks,
            &KeyPattern::default(),
            ScanOptions::ordered(OrderByKey::ByCreatedAt)
        )
        .await,
        owned(&[y, x]),
        "the asserted createdAt orders"
    );
    let s = ks.stats().await.unwrap();
    assert_eq!(s.oldest_created_at, Some(ancient));
    assert_eq!(s.newest_created_at, Some(T0));

    let e_at = T0.plus_millis(1_000);
    ks.put_meta(
        x,
        AtMetaData::default(),
        WriteOptions::asserted(AssertedTimestamps {
            expires_at: Some(e_at),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(meta(ks, x).await.expires_at, Some(e_at));
    assert_eq!(ks.next_expires_at().await.unwrap(), Some(e_at));
    ctx.clock.set(e_at.minus_millis(1));
    assert!(expired(ks).await.is_empty());
    assert!(keys(ks, None).await.contains(&x.to_string()));
    ctx.clock.set(e_at);
    assert_eq!(
        expired(ks).await,
        owned(&[x]),
        "expired at its asserted instant"
    );
    assert!(!scan_set(ks, &KeyPattern::default())
        .await
        .contains(&x.to_string()));

    let a_at = e_at.plus_millis(DAY);
    ks.create(
        z,
        v("z"),
        WriteOptions::asserted(AssertedTimestamps {
            available_at: Some(a_at),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(meta(ks, z).await.available_at, Some(a_at));
    assert_eq!(ks.next_available_at(None).await.unwrap(), Some(a_at));
    assert!(!scan_set(ks, &KeyPattern::default())
        .await
        .contains(&z.to_string()));
    ctx.clock.set(a_at);
    assert!(scan_set(ks, &KeyPattern::default())
        .await
        .contains(&z.to_string()));
}

// ------------------------------------------------------------------ bad input

/// Bad input to the rich methods: a batch or transaction with one invalid key, an empty
/// path in PathEquals (nested too), a released snapshot, a bad regex: each is a typed
/// error and nothing at all changes (records, metadata, commit entries, mark, events).
pub async fn bad_input_to_rich_methods_is_typed_and_changes_nothing(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let (a, bk) = ("public:a.wavi@alice", "public:b.wavi@alice");
    ks.put(a, v(&json!({"city": "paris"}).to_string()), W)
        .await
        .unwrap();
    ks.put(bk, v_ttl("b", DAY), W).await.unwrap();
    ks.put("public:c.wavi@alice", v("c"), W).await.unwrap();
    let before = fingerprint(ks).await;
    let mut events = ks.changes();

    for bad in ["hello123", "hello@", "privatekey:mykey", ""] {
        for skip in [false, true] {
            let r = ks.remove_many(&[a, bk, bad], skip).await;
            assert!(
                matches!(r, Err(PersistenceError::InvalidKey { .. })),
                "remove_many([a, b, {bad:?}], {skip}): {r:?}"
            );
            let r = ks.remove_many(&[bad, a], skip).await;
            assert!(
                matches!(r, Err(PersistenceError::InvalidKey { .. })),
                "remove_many([{bad:?}, a], {skip}): {r:?}"
            );
        }
        let r = ks
            .transaction(|txn| async move {
                txn.remove(a).await?;
                txn.put(bk, v("changed")).await?;
                txn.put(bad, v("x")).await?;
                Ok(())
            })
            .await;
        assert!(
            matches!(r, Err(PersistenceError::InvalidKey { .. })),
            "transaction with {bad:?}: {r:?}"
        );
    }
    let long = format!("public:{}@alice", "x".repeat(300));
    assert!(matches!(
        ks.remove_many(&[a, long.as_str()], false).await,
        Err(PersistenceError::KeyTooLong { .. })
    ));

    let empty: Vec<String> = Vec::new();
    for p in [
        Predicate::path_equals(empty.clone(), "x"),
        Predicate::And(vec![
            Predicate::path_equals(["city"], "paris"),
            Predicate::path_equals(empty.clone(), 1),
        ]),
        Predicate::Or(vec![Predicate::And(vec![Predicate::path_equals(
            empty.clone(),
            Value::Null,
        )])]),
    ] {
        let r = ks
            .query_by_path(&KeyPattern::default(), &p, ScanOptions::default())
            .await;
        if backend.capabilities().path_queries {
            assert!(
                matches!(r, Err(PersistenceError::InvalidArgument { .. })),
                "query_by_path({p}) should be InvalidArgument"
            );
        } else {
            assert!(r.is_err(), "query_by_path without the capability");
        }
    }

    let snap = ks.snapshot().await.unwrap();
    snap.release().await;
    assert!(matches!(
        snap.get(a).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        snap.scan_keys(&KeyPattern::default()).await,
        Err(PersistenceError::SnapshotReleased)
    ));
    assert!(matches!(
        ks.get_keys(Some("(unclosed")).await,
        Err(PersistenceError::InvalidRegex { .. })
    ));

    assert_eq!(fingerprint(ks).await, before, "nothing changed");
    assert_eq!(ks.stats().await.unwrap().total_keys, 3);
    assert_no_event(&mut events, "refused calls").await;
    // The store is still fully usable.
    assert_eq!(ks.remove_many(&[a, bk], false).await.unwrap(), 2);
    assert_eq!(
        next_events(&mut events, 2)
            .await
            .into_iter()
            .collect::<HashSet<_>>(),
        [removed(a), removed(bk)].into_iter().collect()
    );
}
