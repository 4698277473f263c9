//! Keystore cases (BEHAVIOR 3, API-5.0 2.1, 2.4, 3.1-3.8, 9.2; the per-test-file lists of
//! API-5.0 9: get_many_test, remove_many_test, exists_test, keystore_changes_test,
//! commit_log_free_test, asserted_timestamps_test (keystore level), min_max_first_class_test
//! (keystore part)).

use super::{
    added, assert_absent, assert_no_event, cl, collect, data, entries, expired, ids, keys, last,
    latest_id, latest_op, meta, meta_ttl, next_event, next_events, removed, set, updated, v, v_ttb,
    v_ttl, R, R_SKIP, W, W_SKIP,
};
use crate::conformance::{Backend, Ctx, T0};
use crate::error::BoxError;
use crate::model::{AssertedTimestamps, AtData, AtMetaData, Timestamp};
use crate::store::{DynKeyStore, RemoveHook, RemoveHookArgs, RemoveOptions, WriteOptions};
use crate::PersistenceError;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

/// One day in milliseconds.
const DAY: i64 = 86_400_000;

/// API-5.0 4.4: an empty log reports -1; ids start at 0 and are dense at issue.
pub async fn commit_ids_start_at_zero_and_never_go_back(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), -1);
    assert_eq!(log.first_committed_sequence_number().await.unwrap(), None);
    assert_eq!(ks.create("a.wavi@alice", v("1"), W).await.unwrap(), Some(0));
    assert_eq!(ks.put("a.wavi@alice", v("2"), W).await.unwrap(), Some(1));
    assert_eq!(ks.create("b.wavi@alice", v("1"), W).await.unwrap(), Some(2));
    assert_eq!(ks.remove("a.wavi@alice", R).await.unwrap(), Some(3));
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 3);
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(2)
    );
}

/// BEHAVIOR 3.8: the worked scenario with its exact commit ids; the expiry sweep commits
/// nothing and purges the expired key's entry.
pub async fn worked_scenario_of_behavior_3_8(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@test_user_1").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let expired = "expired_key1.g1t4@test_user_1";
    let deleted = "delete_key1.g1t4@test_user_1";
    let normal = "normal_key.g1t4@test_user_1";
    assert_eq!(ks.put(expired, v_ttl("x", 3), W).await.unwrap(), Some(0));
    assert_eq!(entries(&log).await, vec![(0, expired.to_string(), "*")]);
    assert_eq!(ks.put(deleted, v("x"), W).await.unwrap(), Some(1));
    assert_eq!(ks.remove(deleted, R).await.unwrap(), Some(2));
    assert_eq!(
        entries(&log).await,
        vec![(0, expired.to_string(), "*"), (2, deleted.to_string(), "-")]
    );
    assert_eq!(ks.put(normal, v("x"), W).await.unwrap(), Some(3));
    ctx.clock.advance(3);
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_eq!(
        entries(&log).await,
        vec![(2, deleted.to_string(), "-"), (3, normal.to_string(), "+")]
    );
    for k in [expired, deleted] {
        assert!(matches!(
            ks.get(k).await,
            Err(PersistenceError::KeyNotFound { .. })
        ));
    }
    assert_eq!(log.get_latest_commit_entry(expired).await.unwrap(), None);
    assert_eq!(log.entries_count().await.unwrap(), 2);
    assert_eq!(log.last_committed_sequence_number().await.unwrap(), 3);
}

/// API-5.0 2.1, 3.1: `get` of an absent key is `KeyNotFound` naming the canonical key;
/// `get_meta` is `None`; `exists` is false.
pub async fn get_of_an_absent_key_is_key_not_found_and_get_meta_is_none(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    match ks.get("PUBLIC:Nope.Wavi@Alice").await {
        Err(PersistenceError::KeyNotFound { key }) => {
            assert_eq!(
                key, "public:nope.wavi@alice",
                "KeyNotFound names the canonical key"
            )
        }
        other => panic!("get of an absent key should be KeyNotFound, got {other:?}"),
    }
    assert_absent(ks, "public:nope.wavi@alice").await;
    ks.put("public:other.wavi@alice", v("x"), W).await.unwrap();
    assert_absent(ks, "public:nope.wavi@alice").await;
}

/// BEHAVIOR 3.3, 3.5, 3.8: put of an absent key creates (version 0, createdBy the owner,
/// UPDATE); put of a present key updates (version + 1, createdAt kept, UPDATE_ALL).
pub async fn put_creates_then_updates_with_versions_and_commit_ops(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let k = "@bob:phone.wavi@alice";
    assert_eq!(ks.put(k, v("1"), W).await.unwrap(), Some(0));
    assert_eq!(latest_op(&log, k).await, Some("+"), "put of an absent key");
    let m = meta(ks, k).await;
    assert_eq!(m.version, Some(0));
    assert_eq!(m.created_by.as_deref(), Some("@alice"));
    assert_eq!(m.created_at, Some(T0));
    assert_eq!(m.updated_at, Some(T0));
    assert_eq!(m.status.as_deref(), Some("active"));

    ctx.clock.advance(10);
    assert_eq!(ks.put(k, v("2"), W).await.unwrap(), Some(1));
    assert_eq!(latest_op(&log, k).await, Some("*"), "put of a present key");
    assert_eq!(entries(&log).await, vec![(1, k.to_string(), "*")]);
    let got = ks.get(k).await.unwrap();
    assert_eq!(got.data.as_deref(), Some("2"));
    assert_eq!(got.key.as_deref(), Some(k), "get sets the canonical key");
    let m = got.meta_data.expect("metadata is always stored");
    assert_eq!(m.version, Some(1));
    assert_eq!(m.created_at, Some(T0), "createdAt is kept on update");
    assert_eq!(m.updated_at, Some(T0.plus_millis(10)));
}

/// API-5.0 2.1, BEHAVIOR open point 11: create overwrites an existing key without merging:
/// version back to 0, createdAt now.
pub async fn create_overwrites_an_existing_key_and_resets_version(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "phone.wavi@alice";
    ks.create(k, v("1"), W).await.unwrap();
    ks.put(k, v("2"), W).await.unwrap();
    assert_eq!(meta(ks, k).await.version, Some(1));
    ctx.clock.advance(50);
    assert_eq!(ks.create(k, v("3"), W).await.unwrap(), Some(2));
    assert_eq!(data(ks, k).await.as_deref(), Some("3"));
    let m = meta(ks, k).await;
    assert_eq!(m.version, Some(0), "create resets the version");
    assert_eq!(
        m.created_at,
        Some(T0.plus_millis(50)),
        "create stamps a fresh createdAt"
    );
    assert_eq!(entries(&cl(ks)).await, vec![(2, k.to_string(), "+")]);
}

/// BEHAVIOR 3.5: create commits UPDATE_ALL iff the incoming metadata sets one of the 17
/// caller-owned properties (false counts), else UPDATE.
pub async fn create_commits_update_all_only_when_metadata_fields_are_set(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let cases: Vec<(&str, AtData, &str)> = vec![
        ("plain.wavi@alice", v("1"), "+"),
        (
            "empty_meta.wavi@alice",
            AtData::with_meta("1", AtMetaData::default()),
            "+",
        ),
        ("ttl.wavi@alice", v_ttl("1", 5), "*"),
        (
            "enc_false.wavi@alice",
            AtData::with_meta(
                "1",
                AtMetaData {
                    is_encrypted: Some(false),
                    ..Default::default()
                },
            ),
            "*",
        ),
        (
            "encoding.wavi@alice",
            AtData::with_meta(
                "1",
                AtMetaData {
                    encoding: Some("base64".into()),
                    ..Default::default()
                },
            ),
            "*",
        ),
    ];
    for (k, value, op) in cases {
        ks.create(k, value, W).await.unwrap();
        assert_eq!(latest_op(&log, k).await, Some(op), "create of {k}");
    }
}

/// API-5.0 3.1, BEHAVIOR 3.4: put_meta replaces the metadata only, keeps the value, and
/// commits UPDATE_META.
pub async fn put_meta_keeps_the_value_and_commits_update_meta(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let k = "note.wavi@alice";
    assert_eq!(ks.put(k, v_ttl("body", 10_000), W).await.unwrap(), Some(0));
    ctx.clock.advance(7);
    assert_eq!(ks.put_meta(k, meta_ttl(300_000), W).await.unwrap(), Some(1));
    assert_eq!(entries(&log).await, vec![(1, k.to_string(), "#")]);
    assert_eq!(data(ks, k).await.as_deref(), Some("body"), "value kept");
    let m = meta(ks, k).await;
    assert_eq!(m.ttl, Some(300_000));
    assert_eq!(m.version, Some(1));
    assert_eq!(m.created_at, Some(T0));
    assert_eq!(m.expires_at, Some(T0.plus_millis(7 + 300_000)));
}

/// API-5.0 3.1: put_meta of an absent (valid) key creates a record without data, version 0.
pub async fn put_meta_of_an_absent_key_creates_a_record_without_data(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "meta_only.wavi@alice";
    assert_eq!(ks.put_meta(k, meta_ttl(30_000), W).await.unwrap(), Some(0));
    let got = ks.get(k).await.unwrap();
    assert_eq!(got.data, None, "no data");
    let m = got.meta_data.expect("metadata");
    assert_eq!(m.version, Some(0));
    assert_eq!(m.ttl, Some(30_000));
    assert_eq!(latest_op(&cl(ks), k).await, Some("#"));
}

/// BEHAVIOR 3.4, 3.8: put_all writes value and metadata and commits UPDATE_ALL; twice →
/// version 1 and the second call's ttl.
pub async fn put_all_writes_value_and_metadata_and_commits_update_all(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let k = "email.wavi@alice";
    assert_eq!(
        ks.put_all(k, v("a@b.com"), meta_ttl(60_000)).await.unwrap(),
        Some(0)
    );
    assert_eq!(latest_op(&log, k).await, Some("*"));
    let m = meta(ks, k).await;
    assert_eq!((m.version, m.ttl), (Some(0), Some(60_000)));
    assert_eq!(
        ks.put_all(k, v("c@d.com"), meta_ttl(90_000)).await.unwrap(),
        Some(1)
    );
    assert_eq!(entries(&log).await, vec![(1, k.to_string(), "*")]);
    assert_eq!(data(ks, k).await.as_deref(), Some("c@d.com"));
    let m = meta(ks, k).await;
    assert_eq!((m.version, m.ttl), (Some(1), Some(90_000)));
}

/// API-5.0 3.2, BEHAVIOR 3.3: skip_commit on put/create/put_meta/remove writes, returns
/// `Some(-1)` and purges the key's existing entry; the mark stays.
pub async fn skip_commit_writes_return_minus_one_and_purge_the_entry(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@test_user_1").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let phone = "phone.wavi@test_user_1";
    let email = "email.wavi@test_user_1";
    let note = "note.wavi@test_user_1";
    let gone = "gone.wavi@test_user_1";
    assert_eq!(ks.put(phone, v("1"), W).await.unwrap(), Some(0));
    assert_eq!(ks.put(email, v("1"), W).await.unwrap(), Some(1));
    assert_eq!(ks.put(note, v("1"), W).await.unwrap(), Some(2));
    assert_eq!(ks.put(gone, v("1"), W).await.unwrap(), Some(3));

    assert_eq!(ks.put(phone, v("2"), W_SKIP).await.unwrap(), Some(-1));
    assert_eq!(
        data(ks, phone).await.as_deref(),
        Some("2"),
        "the write happens"
    );
    assert_eq!(latest_op(&log, phone).await, None, "put skip_commit purges");

    assert_eq!(ks.create(email, v("2"), W_SKIP).await.unwrap(), Some(-1));
    assert_eq!(data(ks, email).await.as_deref(), Some("2"));
    assert_eq!(
        latest_op(&log, email).await,
        None,
        "create skip_commit purges"
    );

    assert_eq!(
        ks.put_meta(note, meta_ttl(1_000), W_SKIP).await.unwrap(),
        Some(-1)
    );
    assert_eq!(meta(ks, note).await.ttl, Some(1_000));
    assert_eq!(
        latest_op(&log, note).await,
        None,
        "put_meta skip_commit purges"
    );

    assert_eq!(ks.remove(gone, R_SKIP).await.unwrap(), Some(-1));
    assert!(!ks.exists(gone).await.unwrap());
    assert_eq!(
        latest_op(&log, gone).await,
        None,
        "remove skip_commit purges"
    );

    assert_eq!(
        ks.remove("firstname.wavi@test_user_1", R_SKIP)
            .await
            .unwrap(),
        Some(-1),
        "remove skip_commit of a never-written key"
    );
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(log.first_committed_sequence_number().await.unwrap(), None);
    assert_eq!(last(&log).await, 3, "purges never lower the mark");
    assert_eq!(
        ks.put("next.wavi@test_user_1", v("1"), W).await.unwrap(),
        Some(4)
    );
}

/// API-5.0 4.4 (commit_id_high_water_mark_test purgeNewest): purging the newest entry keeps
/// the mark, also across a restart; the next id is `purged + 1`.
pub async fn skip_commit_purge_never_lowers_the_mark_across_a_restart(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ks.create("a.wavi@alice", v("1"), W).await.unwrap();
    let p = ks.create("b.wavi@alice", v("1"), W).await.unwrap().unwrap();
    assert_eq!(
        ks.put("b.wavi@alice", v("2"), W_SKIP).await.unwrap(),
        Some(-1)
    );
    assert_eq!(
        log.get_latest_commit_entry("b.wavi@alice").await.unwrap(),
        None
    );
    assert_eq!(last(&log).await, p);
    let _ = ks.compact(false).await.unwrap();
    let b2 = ctx.restart("@alice").await;
    let ks2 = b2.key_value_store();
    let log2 = cl(ks2);
    assert_eq!(last(&log2).await, p, "the mark survives a restart");
    assert_eq!(
        ks2.create("c.wavi@alice", v("1"), W).await.unwrap(),
        Some(p + 1),
        "ids are never re-issued"
    );
}

/// API-5.0 4.3, BEHAVIOR 4.1: keys the commit log skips return `Some(-1)`, are stored and
/// consume no id; `public:__` keys are committed.
pub async fn elided_keys_return_minus_one_and_consume_no_commit_id(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    for k in [
        "private:testkey@alice",
        "public:_location@alice",
        "local:phone.wavi@alice",
        "privatekey:at_pkam_privatekey",
    ] {
        assert_eq!(ks.put(k, v("x"), W).await.unwrap(), Some(-1), "put {k}");
        assert_eq!(
            ks.create(k, v("y"), W).await.unwrap(),
            Some(-1),
            "create {k}"
        );
        assert_eq!(
            ks.put_meta(k, meta_ttl(60_000), W).await.unwrap(),
            Some(-1),
            "put_meta {k}"
        );
        assert_eq!(
            ks.put_all(k, v("z"), AtMetaData::default()).await.unwrap(),
            Some(-1),
            "put_all {k}"
        );
        assert_eq!(data(ks, k).await.as_deref(), Some("z"), "{k} is stored");
        assert_eq!(latest_op(&log, k).await, None, "{k} has no entry");
    }
    assert_eq!(last(&log).await, -1, "no id consumed");
    assert_eq!(
        ks.put("public:__location@alice", v("x"), W).await.unwrap(),
        Some(0),
        "public:__ keys are committed"
    );
    assert_eq!(
        ks.remove("private:testkey@alice", R).await.unwrap(),
        Some(-1),
        "remove of an elided key"
    );
    assert!(!ks.exists("private:testkey@alice").await.unwrap());
    for k in [
        "public:signing_publickey@alice",
        "@alice:signing_privatekey@alice",
        "cached:public:phone@bob",
    ] {
        assert!(
            ks.put(k, v("x"), W).await.unwrap().unwrap() >= 0,
            "{k} is committed"
        );
    }
    assert_eq!(last(&log).await, 3);
    assert_eq!(log.entries_count().await.unwrap(), 4);
}

/// BEHAVIOR 2.5 (rows 73 and R3): reserved keys without an `@` (`configkey`,
/// `_latestnotificationidv2`) are valid keys and are committed.
pub async fn reserved_keys_without_an_at_sign_are_valid_and_committed(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let r = ks.put("configkey", v("cfg"), W).await;
    assert!(
        matches!(r, Ok(Some(0))),
        "put(configkey) should commit id 0, got {r:?}"
    );
    let r = ks.put("_latestnotificationidv2", v("n1"), W).await;
    assert!(
        matches!(r, Ok(Some(1))),
        "put(_latestnotificationidv2) should commit id 1, got {r:?}"
    );
    assert_eq!(data(ks, "configkey").await.as_deref(), Some("cfg"));
    assert_eq!(latest_op(&log, "configkey").await, Some("+"));
    let r = log
        .commit("configkey", crate::model::CommitOp::Update, None)
        .await;
    assert!(
        matches!(r, Ok(2)),
        "commit(configkey) should give id 2, got {r:?}"
    );
}

/// API-5.0 2.1, BEHAVIOR open point 12: remove of an absent key commits a DELETE and emits
/// `KeyRemoved`.
pub async fn remove_of_an_absent_key_commits_a_delete_and_emits_removed(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let mut events = ks.changes();
    let k = "public:never.wavi@alice";
    assert_eq!(ks.remove(k, R).await.unwrap(), Some(0));
    assert_eq!(entries(&log).await, vec![(0, k.to_string(), "-")]);
    assert_eq!(next_event(&mut events).await, removed(k));
    assert_no_event(&mut events, "after one remove").await;
    assert_absent(ks, k).await;
}

/// API-5.0 3.1, 3.4, 4.3: a remove's `deleted_at` is the DELETE entry's op_time, an asserted
/// updatedAt the op_time of a put or put_meta entry; otherwise the op_time is now.
pub async fn commit_op_time_is_deleted_at_or_asserted_updated_at_else_now(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ctx.clock.advance(1234);
    ks.put("a.wavi@alice", v("1"), W).await.unwrap();
    let e = log
        .get_latest_commit_entry("a.wavi@alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.op_time, T0.plus_millis(1234), "op_time defaults to now");
    let when = Timestamp::from_millis(1_600_000_000_123);
    let opts = RemoveOptions {
        skip_commit: false,
        deleted_at: Some(when),
    };
    ks.remove("a.wavi@alice", opts).await.unwrap();
    let e = log
        .get_latest_commit_entry("a.wavi@alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.op_time, when, "deleted_at is the DELETE op_time");
    ks.remove("b.wavi@alice", R).await.unwrap();
    let e = log
        .get_latest_commit_entry("b.wavi@alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.op_time, T0.plus_millis(1234));
    let skip = RemoveOptions {
        skip_commit: true,
        deleted_at: Some(when),
    };
    assert_eq!(ks.remove("b.wavi@alice", skip).await.unwrap(), Some(-1));
    assert_eq!(latest_op(&log, "b.wavi@alice").await, None);

    // An asserted updatedAt is the op_time of put and put_meta entries.
    let opts = asserted(None, Some(U_AT), None, None, false);
    ks.put("c.wavi@alice", v("1"), opts).await.unwrap();
    ks.put_meta("d.wavi@alice", AtMetaData::default(), opts)
        .await
        .unwrap();
    for k in ["c.wavi@alice", "d.wavi@alice"] {
        let e = log.get_latest_commit_entry(k).await.unwrap().unwrap();
        assert_eq!(e.op_time, U_AT, "{k}: op_time is the asserted updatedAt");
    }
}

fn assert_invalid_key<T: std::fmt::Debug>(r: Result<T, PersistenceError>, what: &str) {
    assert!(
        matches!(r, Err(PersistenceError::InvalidKey { .. })),
        "{what} should be InvalidKey, got {r:?}"
    );
}

/// BEHAVIOR 3.2, 3.9, open point 14: invalid keys are refused on every write path (remove
/// and remove_many included) with `InvalidKey`; nothing is written, committed or emitted;
/// reads treat them as absent.
pub async fn invalid_keys_are_rejected_on_every_write_path_and_write_nothing(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let good = "public:good.wavi@alice";
    ks.put(good, v("1"), W).await.unwrap();
    let mut events = ks.changes();
    for k in ["hello123", "hello@", "privatekey:mykey"] {
        assert_invalid_key(ks.put(k, v("x"), W).await, &format!("put({k})"));
        assert_invalid_key(ks.put(k, v("x"), W_SKIP).await, &format!("put skip({k})"));
        assert_invalid_key(ks.create(k, v("x"), W).await, &format!("create({k})"));
        assert_invalid_key(
            ks.put_meta(k, meta_ttl(10), W).await,
            &format!("put_meta({k})"),
        );
        assert_invalid_key(
            ks.put_all(k, v("x"), AtMetaData::default()).await,
            &format!("put_all({k})"),
        );
        assert_invalid_key(ks.remove(k, R).await, &format!("remove({k})"));
        assert_invalid_key(ks.remove(k, R_SKIP).await, &format!("remove skip({k})"));
        assert_invalid_key(
            ks.remove_many(&[good, k], false).await,
            &format!("remove_many([good, {k}])"),
        );
        assert_absent(ks, k).await;
        assert!(ks.get_many(&[k]).await.unwrap().is_empty());
    }
    assert_eq!(
        data(ks, good).await.as_deref(),
        Some("1"),
        "remove_many wrote nothing"
    );
    assert_eq!(entries(&log).await, vec![(0, good.to_string(), "+")]);
    assert_eq!(last(&log).await, 0);
    assert_eq!(keys(ks, None).await, vec![good.to_string()]);
    assert_no_event(&mut events, "failed writes").await;
}

/// BEHAVIOR 2.3, API-5.0 §11.16: a key longer than 248 (255 for `cached:`) is refused
/// with `KeyTooLong` on every write path; the limit itself is accepted.
pub async fn over_long_keys_are_rejected_on_every_write_path_and_write_nothing(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let ok = format!("{}@alice", "a".repeat(242));
    let long = format!("{}@alice", "a".repeat(243));
    let cached_ok = format!("cached:public:{}@bob", "c".repeat(237));
    let cached_long = format!("cached:public:{}@bob", "c".repeat(238));
    assert_eq!((ok.len(), long.len()), (248, 249));
    assert_eq!((cached_ok.len(), cached_long.len()), (255, 256));
    let mut events = ks.changes();
    for (k, len, max) in [(&long, 249usize, 248usize), (&cached_long, 256, 255)] {
        let check = |r: Result<Option<i64>, PersistenceError>, what: &str| match r {
            Err(PersistenceError::KeyTooLong { len: l, max: m, .. }) => {
                assert_eq!((l, m), (len, max), "{what}: KeyTooLong fields")
            }
            other => panic!("{what} of a {len}-char key should be KeyTooLong, got {other:?}"),
        };
        check(ks.put(k, v("x"), W).await, "put");
        check(ks.create(k, v("x"), W).await, "create");
        check(ks.put_meta(k, meta_ttl(5), W).await, "put_meta");
        check(
            ks.put_all(k, v("x"), AtMetaData::default()).await,
            "put_all",
        );
        check(ks.remove(k, R).await, "remove");
        let r = ks.remove_many(&[k.as_str()], false).await;
        assert!(
            matches!(r, Err(PersistenceError::KeyTooLong { .. })),
            "remove_many of a {len}-char key should be KeyTooLong, got {r:?}"
        );
        assert_absent(ks, k).await;
    }
    assert_eq!(last(&log).await, -1, "nothing committed");
    assert_no_event(&mut events, "refused writes").await;
    assert_eq!(ks.put(&ok, v("x"), W).await.unwrap(), Some(0));
    assert_eq!(ks.put(&cached_ok, v("x"), W).await.unwrap(), Some(1));
    assert_eq!(data(ks, &ok).await.as_deref(), Some("x"));
}

/// BEHAVIOR 2.2-2.3, open point 32: the length rule measures the UTF-7 form:
/// `phone@` + 55 × 💙 (61 chars) encodes to 302 characters and is refused.
pub async fn key_length_is_measured_on_the_utf7_form(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = format!("phone@{}", "💙".repeat(55));
    match ks.put(&k, v("x"), W).await {
        Err(PersistenceError::KeyTooLong { len, max, .. }) => {
            assert_eq!((len, max), (302, 248), "UTF-7 length and limit")
        }
        other => panic!(
            "put of a key whose UTF-7 form has 302 chars should be KeyTooLong, got {other:?}"
        ),
    }
    assert_absent(ks, &k).await;
}

/// API-5.0 3.7: every entry point folds the key (trim, lower-case, remove spaces); results,
/// commit entries and events carry the canonical key.
pub async fn reads_and_writes_fold_keys_to_the_canonical_form(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let mut events = ks.changes();
    let canonical = "public:mixed.wavi@alice";
    ks.put("public:Mixed.Wavi@alice", v("1"), W).await.unwrap();
    assert_eq!(next_event(&mut events).await, added(canonical));
    for spelling in [
        "public:Mixed.Wavi@alice",
        "public:mixed.wavi@alice",
        "PUBLIC:MIXED.WAVI@ALICE",
        " public:mixed.wavi@alice ",
        "public:mixed .wavi@alice",
    ] {
        assert!(ks.exists(spelling).await.unwrap(), "exists({spelling:?})");
        let got = ks.get(spelling).await.unwrap();
        assert_eq!(got.key.as_deref(), Some(canonical), "get({spelling:?}).key");
        assert!(ks.get_meta(spelling).await.unwrap().is_some());
    }
    assert_eq!(keys(ks, None).await, vec![canonical.to_string()]);
    assert_eq!(entries(&log).await, vec![(0, canonical.to_string(), "+")]);
    ks.put("PUBLIC:MIXED.wavi@alice", v("2"), W).await.unwrap();
    assert_eq!(next_event(&mut events).await, updated(canonical));
    assert_eq!(
        ks.remove("Public:Mixed.Wavi@Alice", R).await.unwrap(),
        Some(2)
    );
    assert_eq!(next_event(&mut events).await, removed(canonical));
    assert_eq!(entries(&log).await, vec![(2, canonical.to_string(), "-")]);
    assert_absent(ks, canonical).await;
}

/// API-5.0 3.8, BEHAVIOR 3.7: expired iff expires_at <= now; get_keys hides expired keys
/// while get/get_meta/exists/get_many still return them; get_expired_keys lists them.
pub async fn get_keys_hides_expired_keys_at_the_boundary_while_reads_ignore_time(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "expired_key.wavi@alice";
    let other = "plain.wavi@alice";
    ks.put(k, v_ttl("x", 10), W).await.unwrap();
    ks.put(other, v("y"), W).await.unwrap();
    assert_eq!(meta(ks, k).await.expires_at, Some(T0.plus_millis(10)));
    ctx.clock.advance(9);
    assert_eq!(keys(ks, None).await, vec![k, other], "1 ms before expiry");
    assert!(expired(ks).await.is_empty());
    ctx.clock.advance(1);
    assert_eq!(
        keys(ks, None).await,
        vec![other.to_string()],
        "expires_at == now is expired"
    );
    assert_eq!(expired(ks).await, vec![k.to_string()]);
    assert_eq!(
        data(ks, k).await.as_deref(),
        Some("x"),
        "get ignores expiry"
    );
    assert!(ks.exists(k).await.unwrap(), "exists ignores expiry");
    assert!(
        ks.get_meta(k).await.unwrap().is_some(),
        "get_meta ignores expiry"
    );
    assert_eq!(
        ks.get_many(&[k]).await.unwrap().len(),
        1,
        "get_many ignores expiry"
    );
}

/// API-5.0 3.8: available iff available_at is None or <= now; get_keys hides unborn keys,
/// get returns them.
pub async fn get_keys_hides_unborn_keys_until_available_at(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "later.wavi@alice";
    ks.put(k, v_ttb("x", 1000), W).await.unwrap();
    ks.put("born.wavi@alice", v_ttb("y", 0), W).await.unwrap();
    assert_eq!(meta(ks, k).await.available_at, Some(T0.plus_millis(1000)));
    assert_eq!(
        keys(ks, None).await,
        vec!["born.wavi@alice".to_string()],
        "ttb 0 is born at once; ttb 1000 is not"
    );
    assert_eq!(data(ks, k).await.as_deref(), Some("x"), "get ignores ttb");
    assert!(ks.exists(k).await.unwrap());
    ctx.clock.advance(999);
    assert!(!keys(ks, None).await.contains(&k.to_string()), "1 ms early");
    ctx.clock.advance(1);
    assert!(
        keys(ks, None).await.contains(&k.to_string()),
        "available_at == now is available"
    );
}

/// API-5.0 2.1, BEHAVIOR 3.7, open point 15: get_keys matches by unanchored search; None
/// lists everything; a bad regex is `InvalidRegex`.
pub async fn get_keys_regex_is_an_unanchored_search_and_a_bad_regex_is_invalid_regex(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    ks.put("first_name.wavi@alice", v("1"), W).await.unwrap();
    ks.put("last_name.wavi@alice", v("1"), W).await.unwrap();
    ks.put("phone.buzz@alice", v("1"), W).await.unwrap();
    assert_eq!(
        keys(ks, Some("^first")).await,
        vec!["first_name.wavi@alice".to_string()]
    );
    assert_eq!(
        keys(ks, Some("wavi")).await.len(),
        2,
        "search, not full match"
    );
    assert_eq!(keys(ks, Some(".*")).await.len(), 3);
    assert_eq!(keys(ks, None).await.len(), 3);
    assert!(keys(ks, Some("nomatch")).await.is_empty());
    match ks.get_keys(Some("(unclosed")).await {
        Err(PersistenceError::InvalidRegex { pattern, .. }) => assert_eq!(pattern, "(unclosed"),
        Err(e) => panic!("a bad regex should be InvalidRegex, got {e:?}"),
        Ok(_) => panic!("a bad regex should be InvalidRegex, got a stream"),
    }
}

/// API-5.0 2.1, BEHAVIOR 3.7: delete_expired_keys removes exactly the expired keys, commits
/// nothing, purges their entries, keeps the mark and emits one KeyRemoved per key.
pub async fn delete_expired_keys_commits_nothing_purges_entries_and_emits_removed(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    assert!(
        ks.delete_expired_keys().await.unwrap(),
        "an empty sweep is true"
    );
    ks.put("a.wavi@alice", v_ttl("x", 5), W).await.unwrap();
    ks.put("b.wavi@alice", v_ttl("x", 5), W).await.unwrap();
    ks.put("c.wavi@alice", v_ttl("x", 100), W).await.unwrap();
    ks.put("d.wavi@alice", v("x"), W).await.unwrap();
    ctx.clock.advance(5);
    let mut events = ks.changes();
    assert!(ks.delete_expired_keys().await.unwrap());
    let got: HashSet<_> = next_events(&mut events, 2).await.into_iter().collect();
    assert_eq!(
        got,
        [removed("a.wavi@alice"), removed("b.wavi@alice")]
            .into_iter()
            .collect()
    );
    assert_no_event(&mut events, "after the sweep").await;
    assert_absent(ks, "a.wavi@alice").await;
    assert_absent(ks, "b.wavi@alice").await;
    assert!(ks.exists("c.wavi@alice").await.unwrap());
    assert!(ks.exists("d.wavi@alice").await.unwrap());
    assert_eq!(
        entries(&log).await,
        vec![
            (2, "c.wavi@alice".to_string(), "*"),
            (3, "d.wavi@alice".to_string(), "+")
        ]
    );
    assert_eq!(last(&log).await, 3, "the sweep commits nothing");
    assert!(expired(ks).await.is_empty());
    assert!(
        ks.delete_expired_keys().await.unwrap(),
        "nothing left: still true"
    );
    assert_no_event(&mut events, "second sweep").await;
}

/// BEHAVIOR 3.7 examples: expiry tracking follows the stored metadata through put_meta, a
/// put with ttl 0, and remove.
pub async fn expiry_tracking_follows_updates_put_meta_and_remove(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "tracked.wavi@alice";
    ks.put(
        "untracked.wavi@alice",
        AtData::with_meta(
            "x",
            AtMetaData {
                is_encrypted: Some(false),
                ..Default::default()
            },
        ),
        W,
    )
    .await
    .unwrap();
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        None,
        "no ttl: untracked"
    );
    ks.put(k, v_ttl("x", 10_000), W).await.unwrap();
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(10_000))
    );
    ctx.clock.advance(100);
    ks.put_meta(k, meta_ttl(300_000), W).await.unwrap();
    assert_eq!(meta(ks, k).await.ttl, Some(300_000));
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(100 + 300_000)),
        "the old expiry is no longer indexed"
    );
    let cleared = AtData::with_meta(
        "x",
        AtMetaData {
            ttl: Some(0),
            ttr: Some(-1),
            ..Default::default()
        },
    );
    ks.put(k, cleared, W).await.unwrap();
    let m = meta(ks, k).await;
    assert_eq!((m.ttl, m.ttr, m.expires_at), (Some(0), Some(-1), None));
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        None,
        "ttl 0: untracked"
    );
    ctx.clock.advance(10 * DAY);
    assert!(expired(ks).await.is_empty());
    ks.put(k, v_ttl("x", 10_000), W).await.unwrap();
    assert!(ks.next_expires_at().await.unwrap().is_some());
    ks.remove(k, R).await.unwrap();
    assert_eq!(ks.get_meta(k).await.unwrap(), None);
    assert_eq!(ks.next_expires_at().await.unwrap(), None, "remove untracks");
    ctx.clock.advance(20_000);
    assert!(expired(ks).await.is_empty());
}

/// API-5.0 2.1 (min_max_first_class_test, keystore part): next_expires_at is the smallest
/// expiry; peek_expired lists keys with expiry <= as_of in expiry order, capped by limit;
/// get_expired_keys == peek_expired(now).
pub async fn next_expires_at_and_peek_expired_follow_the_expiry_index(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_ttl").await;
    let ks = b.key_value_store();
    let peek = |as_of: Option<Timestamp>, limit: Option<usize>| {
        let ks = ks.clone();
        async move { collect(ks.peek_expired(as_of, limit).await.unwrap()).await }
    };
    ks.put("plain.wavi@minmax_ttl", v("x"), W).await.unwrap();
    assert_eq!(ks.next_expires_at().await.unwrap(), None);
    ks.put("second.wavi@minmax_ttl", v_ttl("x", 200_000), W)
        .await
        .unwrap();
    ks.put("first.wavi@minmax_ttl", v_ttl("x", 100_000), W)
        .await
        .unwrap();
    ks.put("third.wavi@minmax_ttl", v_ttl("x", 300_000), W)
        .await
        .unwrap();
    let first_at = meta(ks, "first.wavi@minmax_ttl").await.expires_at;
    assert_eq!(first_at, Some(T0.plus_millis(100_000)));
    assert_eq!(ks.next_expires_at().await.unwrap(), first_at);
    assert!(peek(None, None).await.is_empty(), "nothing expired yet");
    let tomorrow = Some(T0.plus_millis(DAY));
    let order = vec![
        "first.wavi@minmax_ttl".to_string(),
        "second.wavi@minmax_ttl".to_string(),
        "third.wavi@minmax_ttl".to_string(),
    ];
    assert_eq!(peek(tomorrow, None).await, order);
    assert_eq!(peek(tomorrow, Some(2)).await, order[..2].to_vec());
    assert!(peek(tomorrow, Some(0)).await.is_empty());
    assert_eq!(
        peek(Some(T0.plus_millis(200_000)), None).await,
        order[..2].to_vec(),
        "as_of is inclusive"
    );
    ks.remove("first.wavi@minmax_ttl", R).await.unwrap();
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(200_000))
    );

    ks.put("gone.wavi@minmax_ttl", v_ttl("x", 1), W)
        .await
        .unwrap();
    ks.put("alive.wavi@minmax_ttl", v_ttl("x", 600_000), W)
        .await
        .unwrap();
    ctx.clock.advance(5);
    assert_eq!(expired(ks).await, vec!["gone.wavi@minmax_ttl".to_string()]);
    assert_eq!(
        peek(None, None).await,
        vec!["gone.wavi@minmax_ttl".to_string()]
    );
    assert_eq!(
        ks.next_expires_at().await.unwrap(),
        Some(T0.plus_millis(1)),
        "next_expires_at may be in the past"
    );
}

/// get_many_test: values of present keys by canonical key; absent keys omitted,
/// duplicates collapse, empty input empty, equal to single gets.
pub async fn get_many_returns_present_keys_by_canonical_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let phone = "public:phone.wavi@alice";
    let email = "public:email.wavi@alice";
    let secret = "@bob:secret.wavi@alice";
    ks.put(phone, v("+1 555-0100"), W).await.unwrap();
    ks.put(email, v("alice@example.com"), W).await.unwrap();
    ks.put(secret, v("shhh"), W).await.unwrap();
    let all = ks.get_many(&[phone, email, secret]).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[phone].data.as_deref(), Some("+1 555-0100"));
    assert_eq!(all[email].data.as_deref(), Some("alice@example.com"));
    assert_eq!(all[secret].data.as_deref(), Some("shhh"));
    for k in [phone, email, secret] {
        assert_eq!(
            all[k],
            ks.get(k).await.unwrap(),
            "get_many({k}) == get({k})"
        );
    }
    let some = ks
        .get_many(&[phone, "public:does_not_exist@alice"])
        .await
        .unwrap();
    assert_eq!(some.keys().cloned().collect::<Vec<_>>(), vec![phone]);
    assert!(ks
        .get_many(&["public:x@alice", "public:y@alice"])
        .await
        .unwrap()
        .is_empty());
    assert!(ks.get_many(&[]).await.unwrap().is_empty());
    let upper = ks.get_many(&["PUBLIC:Phone.Wavi@alice"]).await.unwrap();
    assert_eq!(upper.len(), 1);
    assert_eq!(upper[phone].data.as_deref(), Some("+1 555-0100"));
    let dup = ks
        .get_many(&[phone, phone, "PUBLIC:PHONE.WAVI@ALICE"])
        .await
        .unwrap();
    assert_eq!(dup.len(), 1, "duplicates collapse");
    ks.put("ttl.wavi@alice", v_ttl("t", 1), W).await.unwrap();
    ctx.clock.advance(10);
    assert_eq!(
        ks.get_many(&["ttl.wavi@alice"]).await.unwrap().len(),
        1,
        "no time filter"
    );
}

/// remove_many_test: the count of actually removed keys, absent keys and duplicates not
/// counted, one DELETE per removed key; with skip_commit the removed keys' entries are
/// purged instead.
pub async fn remove_many_counts_removed_keys_and_commits_deletes_or_purges(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let a = "public:a.wavi@alice";
    let bb = "public:b.wavi@alice";
    let c = "public:c.wavi@alice";
    let seed = || async {
        for k in [a, bb, c] {
            ks.put(k, v("v"), W).await.unwrap();
        }
    };
    seed().await;
    let before = last(&log).await;
    assert_eq!(ks.remove_many(&[a, bb], false).await.unwrap(), 2);
    assert_absent(ks, a).await;
    assert_absent(ks, bb).await;
    assert!(ks.exists(c).await.unwrap());
    assert_eq!(latest_op(&log, a).await, Some("-"));
    assert_eq!(latest_op(&log, bb).await, Some("-"));
    assert_eq!(latest_op(&log, c).await, Some("+"));
    let (ia, ib) = (
        latest_id(&log, a).await.unwrap(),
        latest_id(&log, bb).await.unwrap(),
    );
    assert_ne!(ia, ib, "each removed key gets its own entry");
    assert!(ia > before && ib > before);
    assert_eq!(last(&log).await, before + 2);

    seed().await;
    assert_eq!(
        ks.remove_many(&[a, "public:nope@alice", "public:also_nope@alice"], false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        latest_op(&log, "public:nope@alice").await,
        None,
        "absent: no DELETE"
    );
    assert_eq!(
        ks.remove_many(&["public:nope@alice", "public:also_nope@alice"], false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(ks.remove_many(&[], false).await.unwrap(), 0);
    seed().await;
    assert_eq!(ks.remove_many(&[a, a, a], false).await.unwrap(), 1);
    seed().await;
    assert_eq!(
        ks.remove_many(&["PUBLIC:A.Wavi@alice", "public:b.wavi@ALICE", a], false)
            .await
            .unwrap(),
        2,
        "duplicates compare case-insensitively"
    );
    assert_absent(ks, a).await;
    assert_absent(ks, bb).await;

    // skip_commit purges the removed keys' entries, leaves the others, keeps the mark.
    seed().await;
    let mark = last(&log).await;
    assert_eq!(ks.remove_many(&[a], true).await.unwrap(), 1);
    assert_absent(ks, a).await;
    assert_eq!(log.get_latest_commit_entry(a).await.unwrap(), None);
    assert_eq!(latest_id(&log, c).await, Some(mark), "c keeps its entry");
    assert_eq!(
        latest_id(&log, bb).await,
        Some(mark - 1),
        "b keeps its entry"
    );
    assert_eq!(last(&log).await, mark, "the purge keeps the mark");
}

/// exists_test: exists is true after put, false for a never-written key, false after
/// remove, case-insensitive, and agrees with get and get_keys.
pub async fn exists_agrees_with_get_and_get_keys(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "public:phone@alice";
    assert!(!ks.exists(k).await.unwrap());
    ks.put(k, v("1"), W).await.unwrap();
    assert!(ks.exists(k).await.unwrap());
    assert!(!ks.exists("public:never@alice").await.unwrap());
    ks.put("public:Mixed@alice", v("1"), W).await.unwrap();
    for s in [
        "public:Mixed@alice",
        "public:mixed@alice",
        "PUBLIC:MIXED@alice",
    ] {
        assert!(ks.exists(s).await.unwrap(), "exists({s})");
    }
    for probe in [k, "public:mixed@alice", "public:never@alice"] {
        let e = ks.exists(probe).await.unwrap();
        assert_eq!(e, ks.get(probe).await.is_ok(), "exists vs get for {probe}");
        assert_eq!(
            e,
            keys(ks, None).await.contains(&probe.to_string()),
            "exists vs get_keys for {probe}"
        );
    }
    ks.remove(k, R).await.unwrap();
    assert!(!ks.exists(k).await.unwrap());
    assert!(ks.get(k).await.is_err());
}

/// keystore_changes_test, API-5.0 2.4: first put KeyAdded, second put KeyUpdated, create
/// always KeyAdded, remove KeyRemoved (present or absent).
pub async fn changes_report_put_create_and_remove(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let mut s = ks.changes();
    let k = "public:phone@alice";
    ks.put(k, v("1"), W).await.unwrap();
    assert_eq!(next_event(&mut s).await, added(k));
    assert_no_event(&mut s, "one put").await;
    ks.put(k, v("2"), W).await.unwrap();
    assert_eq!(next_event(&mut s).await, updated(k));
    ks.create(k, v("3"), W).await.unwrap();
    assert_eq!(
        next_event(&mut s).await,
        added(k),
        "create over an existing key"
    );
    ks.put(k, v("4"), W_SKIP).await.unwrap();
    assert_eq!(
        next_event(&mut s).await,
        updated(k),
        "skip_commit still emits"
    );
    ks.put("private:x@alice", v("1"), W).await.unwrap();
    assert_eq!(
        next_event(&mut s).await,
        added("private:x@alice"),
        "elided keys emit"
    );
    ks.remove("public:gone@alice", R).await.unwrap();
    assert_eq!(next_event(&mut s).await, removed("public:gone@alice"));
    ks.remove(k, R).await.unwrap();
    assert_eq!(next_event(&mut s).await, removed(k));
    assert_no_event(&mut s, "end").await;
}

/// API-5.0 2.4: put_all and put_meta emit KeyAdded for an absent key, else KeyUpdated.
pub async fn changes_report_put_all_and_put_meta(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let mut s = ks.changes();
    ks.put_all("a.wavi@alice", v("1"), AtMetaData::default())
        .await
        .unwrap();
    ks.put_all("a.wavi@alice", v("2"), AtMetaData::default())
        .await
        .unwrap();
    ks.put_meta("b.wavi@alice", meta_ttl(1000), W)
        .await
        .unwrap();
    ks.put_meta("b.wavi@alice", meta_ttl(2000), W)
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut s, 4).await,
        vec![
            added("a.wavi@alice"),
            updated("a.wavi@alice"),
            added("b.wavi@alice"),
            updated("b.wavi@alice"),
        ]
    );
    assert_no_event(&mut s, "end").await;
}

/// keystore_changes_test: remove_many emits one KeyRemoved per actually removed key.
pub async fn changes_remove_many_emits_one_removed_per_removed_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let a = "public:a@alice";
    let bb = "public:b@alice";
    ks.put(a, v("1"), W).await.unwrap();
    ks.put(bb, v("1"), W).await.unwrap();
    let mut s = ks.changes();
    assert_eq!(
        ks.remove_many(&[a, bb, "public:absent@alice"], false)
            .await
            .unwrap(),
        2
    );
    let got: HashSet<_> = next_events(&mut s, 2).await.into_iter().collect();
    assert_eq!(got, [removed(a), removed(bb)].into_iter().collect());
    assert_no_event(&mut s, "absent keys emit nothing").await;
    ks.put(a, v("1"), W).await.unwrap();
    assert_eq!(next_event(&mut s).await, added(a));
    ks.remove_many(&[a], true).await.unwrap();
    assert_eq!(
        next_event(&mut s).await,
        removed(a),
        "skip_commit still emits"
    );
}

/// keystore_changes_test: every subscriber gets every event; a late subscriber misses
/// earlier events.
pub async fn changes_subscribers_are_independent_and_late_ones_miss_earlier_events(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let mut one = ks.changes();
    let mut two = ks.changes();
    ks.put("public:k@alice", v("1"), W).await.unwrap();
    ks.remove("public:k@alice", R).await.unwrap();
    for s in [&mut one, &mut two] {
        assert_eq!(
            next_events(s, 2).await,
            vec![added("public:k@alice"), removed("public:k@alice")]
        );
    }
    ks.put("public:early@alice", v("1"), W).await.unwrap();
    let mut late = ks.changes();
    ks.put("public:late@alice", v("1"), W).await.unwrap();
    assert_eq!(next_event(&mut late).await, added("public:late@alice"));
    assert_no_event(&mut late, "late subscriber").await;
    drop(one);
    ks.put("public:after_drop@alice", v("1"), W).await.unwrap();
    assert_eq!(
        next_events(&mut two, 3).await,
        vec![
            added("public:early@alice"),
            added("public:late@alice"),
            added("public:after_drop@alice")
        ],
        "a dropped subscriber does not affect the others"
    );
}

fn recorder(
    log: &Arc<Mutex<Vec<String>>>,
    tag: &'static str,
    ks: &DynKeyStore,
    fail_on: Option<&'static str>,
) -> RemoveHook {
    let log = Arc::clone(log);
    let weak = Arc::downgrade(ks);
    Arc::new(
        move |args: RemoveHookArgs| -> BoxFuture<'static, Result<(), BoxError>> {
            let log = Arc::clone(&log);
            let weak = weak.clone();
            async move {
                let present = match weak.upgrade() {
                    Some(ks) => ks.exists(&args.key).await.unwrap_or(false),
                    None => false,
                };
                log.lock().unwrap().push(format!(
                    "{tag}:{}:skip={}:present={present}",
                    args.key, args.skip_commit
                ));
                if fail_on == Some(tag) {
                    return Err::<(), BoxError>(format!("{tag} hook refuses").into());
                }
                Ok(())
            }
            .boxed()
        },
    )
}

/// API-5.0 2.1: pre-remove hooks run in order before, post-remove hooks after each
/// single-key remove, with the canonical key and the skip_commit flag.
pub async fn remove_hooks_run_around_each_remove_with_the_canonical_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = Arc::new(Mutex::new(Vec::new()));
    ks.add_pre_remove_hook(recorder(&log, "pre1", ks, None));
    ks.add_pre_remove_hook(recorder(&log, "pre2", ks, None));
    ks.add_post_remove_hook(recorder(&log, "post", ks, None));
    ks.put("public:k.wavi@alice", v("1"), W).await.unwrap();
    ks.remove("PUBLIC:K.Wavi@alice", R).await.unwrap();
    ks.remove("public:absent.wavi@alice", R_SKIP).await.unwrap();
    assert_eq!(
        log.lock().unwrap().clone(),
        vec![
            "pre1:public:k.wavi@alice:skip=false:present=true",
            "pre2:public:k.wavi@alice:skip=false:present=true",
            "post:public:k.wavi@alice:skip=false:present=false",
            "pre1:public:absent.wavi@alice:skip=true:present=false",
            "pre2:public:absent.wavi@alice:skip=true:present=false",
            "post:public:absent.wavi@alice:skip=true:present=false",
        ]
    );
}

/// API-5.0 2.1: a failing pre-remove hook aborts the remove (`HookFailed`): the record, its
/// entry and the mark stay, no event; a failing post-remove hook is reported (`HookFailed`)
/// after the remove has happened.
pub async fn failing_remove_hooks_abort_before_and_report_after_the_remove(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let clog = cl(ks);
    let log = Arc::new(Mutex::new(Vec::new()));
    ks.add_pre_remove_hook(recorder(&log, "pre", ks, Some("pre")));
    ks.add_post_remove_hook(recorder(&log, "post", ks, None));
    let k = "public:k.wavi@alice";
    ks.put(k, v("1"), W).await.unwrap();
    let mut s = ks.changes();
    match ks.remove(k, R).await {
        Err(PersistenceError::HookFailed { key, .. }) => assert_eq!(key, k),
        other => panic!("a failing pre-remove hook should give HookFailed, got {other:?}"),
    }
    assert_eq!(
        data(ks, k).await.as_deref(),
        Some("1"),
        "the record is still there"
    );
    assert_eq!(entries(&clog).await, vec![(0, k.to_string(), "+")]);
    assert_eq!(last(&clog).await, 0);
    assert_no_event(&mut s, "aborted remove").await;
    assert_eq!(
        log.lock().unwrap().clone(),
        vec!["pre:public:k.wavi@alice:skip=false:present=true"],
        "post hooks do not run"
    );

    // A failing post-remove hook is reported after the remove has happened.
    let b2 = ctx.server("@bob").await;
    let ks2 = b2.key_value_store();
    let log2 = Arc::new(Mutex::new(Vec::new()));
    ks2.add_post_remove_hook(recorder(&log2, "post", ks2, Some("post")));
    let k2 = "public:k.wavi@bob";
    ks2.put(k2, v("1"), W).await.unwrap();
    let r = ks2.remove(k2, R).await;
    assert!(
        matches!(r, Err(PersistenceError::HookFailed { .. })),
        "a failing post-remove hook should give HookFailed, got {r:?}"
    );
    assert_absent(ks2, k2).await;
    assert_eq!(
        latest_op(&cl(ks2), k2).await,
        Some("-"),
        "the remove happened"
    );
}

/// API-5.0 2.1, BEHAVIOR 3.7: the expiry sweep runs the remove hooks per removed key, with
/// skip_commit true.
pub async fn remove_hooks_run_for_each_expiry_sweep_removal(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = Arc::new(Mutex::new(Vec::new()));
    ks.add_pre_remove_hook(recorder(&log, "pre", ks, None));
    ks.add_post_remove_hook(recorder(&log, "post", ks, None));
    ks.put("a.wavi@alice", v_ttl("x", 1), W).await.unwrap();
    ks.put("b.wavi@alice", v_ttl("x", 1_000), W).await.unwrap();
    ctx.clock.advance(1);
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_eq!(
        log.lock().unwrap().clone(),
        vec![
            "pre:a.wavi@alice:skip=true:present=true",
            "post:a.wavi@alice:skip=true:present=false",
        ]
    );
}

/// API-5.0 2.1 (Hive), trait contract: remove_many runs the hooks per present key only.
pub async fn remove_hooks_run_per_present_key_in_remove_many(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = Arc::new(Mutex::new(Vec::new()));
    ks.add_pre_remove_hook(recorder(&log, "pre", ks, None));
    ks.add_post_remove_hook(recorder(&log, "post", ks, None));
    ks.put("a.wavi@alice", v("x"), W).await.unwrap();
    assert_eq!(
        ks.remove_many(&["A.Wavi@alice", "absent.wavi@alice"], false)
            .await
            .unwrap(),
        1
    );
    let got: BTreeSet<String> = log.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        got,
        set([
            "pre:a.wavi@alice:skip=false:present=true",
            "post:a.wavi@alice:skip=false:present=false",
        ])
    );
}

/// API-5.0 4.3, commit_id_high_water_mark_test: 20 concurrent creates get 20 distinct,
/// dense ids.
pub async fn concurrent_creates_get_distinct_dense_ids(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ks = ks.clone();
        tasks.push(tokio::spawn(async move {
            ks.create(&format!("k{i}.wavi@alice"), v("x"), W)
                .await
                .unwrap()
                .unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<i64>>());
    assert_eq!(last(&log).await, 19);
    assert_eq!(log.entries_count().await.unwrap(), 20);
}

/// API-5.0 6, BEHAVIOR 4.7: with one entry per atKey, compaction (dry run or not) removes
/// nothing.
pub async fn compact_yields_nothing_under_one_entry_per_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ks.put("@alice:phone@alice", v("1"), W).await.unwrap();
    ks.put("@alice:phone@alice", v("2"), W).await.unwrap();
    ks.put("other@alice", v("2"), W).await.unwrap();
    assert!(collect(ks.compact(true).await.unwrap()).await.is_empty());
    assert!(collect(ks.compact(false).await.unwrap()).await.is_empty());
    assert!(collect(log.compact(false).await.unwrap()).await.is_empty());
    assert_eq!(log.entries_count().await.unwrap(), 2);
    assert_eq!(ids(&log).await, vec![1, 2]);
}

/// commit_log_free_test, BEHAVIOR 9.2: a client keystore has no commit log; writes return
/// `None`, skip_commit writes `Some(-1)`; values round-trip; remove_many counts.
pub async fn commit_log_free_writes_return_none_and_skip_commit_minus_one(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.client("@alice").await;
    let ks = b.key_value_store();
    assert!(ks.commit_log().is_none());
    assert_eq!(
        ks.create("phone.wavi@alice", v("123"), W).await.unwrap(),
        None
    );
    assert_eq!(data(ks, "phone.wavi@alice").await.as_deref(), Some("123"));
    assert_eq!(ks.put("city.wavi@alice", v("rome"), W).await.unwrap(), None);
    assert_eq!(
        ks.put("city.wavi@alice", v("paris"), W).await.unwrap(),
        None
    );
    assert_eq!(data(ks, "city.wavi@alice").await.as_deref(), Some("paris"));
    assert_eq!(meta(ks, "city.wavi@alice").await.version, Some(1));
    assert_eq!(
        ks.put_all("email.wavi@alice", v("a@b.com"), meta_ttl(60_000))
            .await
            .unwrap(),
        None
    );
    assert_eq!(meta(ks, "email.wavi@alice").await.ttl, Some(60_000));
    assert_eq!(
        ks.put_meta("note.wavi@alice", meta_ttl(30_000), W)
            .await
            .unwrap(),
        None
    );
    assert_eq!(meta(ks, "note.wavi@alice").await.ttl, Some(30_000));
    ks.put("temp.wavi@alice", v("t"), W).await.unwrap();
    assert_eq!(ks.remove("temp.wavi@alice", R).await.unwrap(), None);
    assert!(!ks.exists("temp.wavi@alice").await.unwrap());
    assert_eq!(
        ks.put("private:x@alice", v("1"), W).await.unwrap(),
        None,
        "every key type returns None without a log"
    );
    for (what, r) in [
        ("put", ks.put("s1.wavi@alice", v("1"), W_SKIP).await),
        ("create", ks.create("s2.wavi@alice", v("1"), W_SKIP).await),
        (
            "put_meta",
            ks.put_meta("s3.wavi@alice", meta_ttl(5), W_SKIP).await,
        ),
        ("remove", ks.remove("s1.wavi@alice", R_SKIP).await),
    ] {
        assert_eq!(r.unwrap(), Some(-1), "{what} with skip_commit on a client");
    }
    ks.put("a.wavi@alice", v("1"), W).await.unwrap();
    ks.put("b.wavi@alice", v("1"), W).await.unwrap();
    assert_eq!(
        ks.remove_many(&["a.wavi@alice", "b.wavi@alice"], false)
            .await
            .unwrap(),
        2
    );
    assert_absent(ks, "a.wavi@alice").await;
    assert_absent(ks, "b.wavi@alice").await;
    assert!(collect(ks.compact(false).await.unwrap()).await.is_empty());
    assert!(collect(ks.compact(true).await.unwrap()).await.is_empty());
}

/// commit_log_free_test, BEHAVIOR 9.2: a commit-log-free keystore emits the same events
/// and expires keys the same way.
pub async fn commit_log_free_store_emits_the_same_events_and_expires_keys(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.client("@alice").await;
    let ks = b.key_value_store();
    let mut s = ks.changes();
    let k = "phone.wavi@alice";
    ks.create(k, v("1"), W).await.unwrap();
    ks.put(k, v("2"), W).await.unwrap();
    ks.remove(k, R).await.unwrap();
    assert_eq!(
        next_events(&mut s, 3).await,
        vec![added(k), updated(k), removed(k)]
    );
    ks.put("t.wavi@alice", v_ttl("x", 10), W).await.unwrap();
    assert_eq!(next_event(&mut s).await, added("t.wavi@alice"));
    ctx.clock.advance(10);
    assert!(keys(ks, None).await.is_empty());
    assert_eq!(expired(ks).await, vec!["t.wavi@alice".to_string()]);
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_eq!(next_event(&mut s).await, removed("t.wavi@alice"));
    assert_absent(ks, "t.wavi@alice").await;
    assert_invalid_key(ks.put("hello123", v("x"), W).await, "client put(hello123)");
    assert_no_event(&mut s, "end").await;
}

fn asserted(
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    available_at: Option<Timestamp>,
    derive_ttl: bool,
) -> WriteOptions {
    WriteOptions::asserted(AssertedTimestamps {
        created_at,
        updated_at,
        expires_at,
        available_at,
        derive_ttl,
        derive_ttb: false,
    })
}

/// 2020-01-02T03:04:05.678Z
const C_AT: Timestamp = Timestamp::from_millis(1_577_934_245_678);
/// 2021-02-03T04:05:06.789Z
const U_AT: Timestamp = Timestamp::from_millis(1_612_325_106_789);
/// 2022-03-04T05:06:07.890Z
const A_AT: Timestamp = Timestamp::from_millis(1_646_370_367_890);

/// asserted_timestamps_test (keystore level), API-5.0 3.4: asserted createdAt/updatedAt
/// are stored by put, create and put_meta; an asserted createdAt wins over the stored one,
/// and an unasserted put keeps it.
pub async fn asserted_created_and_updated_at_are_stored_and_win_over_the_stored_record(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let opts = asserted(Some(C_AT), Some(U_AT), None, None, false);
    ks.put("put.wavi@alice", v("1"), opts).await.unwrap();
    ks.create("create.wavi@alice", v("1"), opts).await.unwrap();
    ks.put_meta("meta.wavi@alice", AtMetaData::default(), opts)
        .await
        .unwrap();
    for k in ["put.wavi@alice", "create.wavi@alice", "meta.wavi@alice"] {
        let m = meta(ks, k).await;
        assert_eq!(m.created_at, Some(C_AT), "{k}: asserted createdAt");
        assert_eq!(m.updated_at, Some(U_AT), "{k}: asserted updatedAt");
    }

    // An asserted createdAt beats the stored one; a later put without assertions keeps
    // createdAt and stamps updatedAt now.
    let k = "c.wavi@alice";
    ks.put(k, v("1"), W).await.unwrap();
    assert_eq!(meta(ks, k).await.created_at, Some(T0));
    ctx.clock.advance(10);
    ks.put(k, v("2"), asserted(Some(C_AT), None, None, None, false))
        .await
        .unwrap();
    let m = meta(ks, k).await;
    assert_eq!(
        m.created_at,
        Some(C_AT),
        "asserted createdAt wins over the stored one"
    );
    assert_eq!(m.updated_at, Some(T0.plus_millis(10)));
    ctx.clock.advance(10);
    ks.put(k, v("3"), W).await.unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.created_at, Some(C_AT), "createdAt is kept");
    assert_eq!(
        m.updated_at,
        Some(T0.plus_millis(20)),
        "updatedAt re-stamped"
    );
}

/// asserted_timestamps_test: an asserted expiresAt wins over ttl (ttl kept); without the
/// assertion expiry is now + ttl again; derive_ttl stores eAt − uAt.
pub async fn asserted_expires_at_wins_over_ttl_and_derive_ttl_derives_it(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "e.wavi@alice";
    let e_at = T0.plus_millis(30 * DAY);
    ks.put(
        k,
        v_ttl("1", DAY),
        asserted(None, None, Some(e_at), None, false),
    )
    .await
    .unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.expires_at, Some(e_at), "asserted expiresAt wins");
    assert_eq!(m.ttl, Some(DAY), "ttl is kept");
    assert_eq!(ks.next_expires_at().await.unwrap(), Some(e_at));
    ctx.clock.advance(5);
    ks.put(k, v_ttl("2", DAY), W).await.unwrap();
    assert_eq!(
        meta(ks, k).await.expires_at,
        Some(T0.plus_millis(5 + DAY)),
        "no assertion: now + ttl"
    );
    let u_at = T0.plus_millis(1000);
    ks.put(
        k,
        v_ttl("3", DAY),
        asserted(None, Some(u_at), Some(e_at), None, true),
    )
    .await
    .unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.expires_at, Some(e_at));
    assert_eq!(
        m.ttl,
        Some(e_at.millis_since(u_at)),
        "derive_ttl: ttl = eAt − uAt"
    );
}

/// asserted_timestamps_test (otp): an asserted expiresAt without a usable ttl still
/// expires: tracked, listed by get_expired_keys and removed by the sweep.
pub async fn asserted_expires_at_without_ttl_still_expires(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "otp.wavi@alice";
    let u_at = T0.plus_millis(10_000);
    let e_at = T0.plus_millis(150);
    ks.put(
        k,
        v("123456"),
        asserted(None, Some(u_at), Some(e_at), None, true),
    )
    .await
    .unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.ttl, None, "a negative derived ttl is not stored");
    assert_eq!(m.expires_at, Some(e_at));
    assert!(ks.exists(k).await.unwrap());
    assert_eq!(ks.next_expires_at().await.unwrap(), Some(e_at));
    ctx.clock.advance(300);
    assert_eq!(expired(ks).await, vec![k.to_string()]);
    assert!(ks.delete_expired_keys().await.unwrap());
    assert_absent(ks, k).await;
}

/// asserted_timestamps_test: an asserted availableAt is stored (ttb kept) and governs
/// visibility.
pub async fn asserted_available_at_is_stored_and_governs_visibility(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let k = "a.wavi@alice";
    ctx.clock.set(A_AT.minus_millis(1000));
    ks.put(
        k,
        v_ttb("x", 60_000),
        asserted(None, None, None, Some(A_AT), false),
    )
    .await
    .unwrap();
    let m = meta(ks, k).await;
    assert_eq!(m.available_at, Some(A_AT), "asserted availableAt stored");
    assert_eq!(m.ttb, Some(60_000), "ttb kept");
    assert!(keys(ks, None).await.is_empty(), "not yet available");
    ctx.clock.set(A_AT);
    assert_eq!(keys(ks, None).await, vec![k.to_string()]);
}
