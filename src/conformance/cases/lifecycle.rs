//! Factory, bundle and lifecycle cases (API-5.0 1, BEHAVIOR 9.1, 9.5; the per-test-file
//! lists of API-5.0 9: at_persistence_factory_test, iterate_replay_test (bundle parts),
//! persistence_restart_cycle_test, persistence_factory_storage_path_test).

use super::{
    assert_absent, assert_no_event, cl, collect, data, is_closed, keys, last, v, v_ttl, R, W,
};
use crate::conformance::{Backend, Ctx};
use crate::model::{CommitEntry, CommitOp};
use crate::store::{BackendId, Bundle, IterateOptions, PersistenceConfig};
use crate::PersistenceError;
use futures::StreamExt;
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

async fn init(
    ctx: &Ctx<'_>,
    at_sign: &str,
    config: &dyn PersistenceConfig,
) -> Result<Arc<Bundle>, PersistenceError> {
    ctx.factory.initialize(at_sign, config).await
}

/// at_persistence_factory_test: initialize wires a server bundle: the atSign as given, the
/// factory's backend, a keystore with a commit log; a put commits and reads back.
pub async fn initialize_wires_a_server_bundle(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    assert_eq!(b.at_sign(), "@alice");
    assert_eq!(b.backend_id(), ctx.factory.backend_id());
    assert!(!b.is_closed());
    assert!(b.key_value_store().commit_log().is_some());
    assert!(b.commit_log().is_some());
    let ks = b.key_value_store();
    let id = ks.put("public:greet@alice", v("hello"), W).await.unwrap();
    assert!(
        matches!(id, Some(i) if i >= 0),
        "put returns an id, got {id:?}"
    );
    assert_eq!(
        data(ks, "public:greet@alice").await.as_deref(),
        Some("hello")
    );
}

/// at_persistence_factory_test, persistence_factory_storage_path_test: initialize twice
/// with equal locations (a freshly built, equal config too) returns the identical bundle,
/// and bundle_for returns it.
pub async fn initialize_twice_with_equal_locations_returns_the_same_bundle(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let first = ctx.server("@alice").await;
    let second = ctx.server("@alice").await;
    assert!(
        Arc::ptr_eq(&first, &second),
        "same config: the identical bundle"
    );
    let fresh = ctx.server_config("@alice");
    let third = init(&ctx, "@alice", fresh.as_ref()).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &third),
        "an equal config: the identical bundle"
    );
    let found = ctx.factory.bundle_for("@alice").expect("bundle_for");
    assert!(Arc::ptr_eq(&first, &found));
    first
        .key_value_store()
        .put("a.wavi@alice", v("1"), W)
        .await
        .unwrap();
    assert_eq!(
        data(third.key_value_store(), "a.wavi@alice")
            .await
            .as_deref(),
        Some("1")
    );
}

/// at_persistence_factory_test: bundle_for is None before initialize and for another
/// atSign; the cache is keyed by the exact atSign string.
pub async fn bundle_for_is_none_before_initialize_and_for_other_at_signs(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    assert!(ctx.factory.bundle_for("@alice").is_none());
    let b = ctx.server("@alice").await;
    assert!(Arc::ptr_eq(&ctx.factory.bundle_for("@alice").unwrap(), &b));
    assert!(ctx.factory.bundle_for("@bob").is_none());
    assert!(
        ctx.factory.bundle_for("@Alice").is_none(),
        "no normalisation"
    );
    assert!(ctx.factory.bundle_for("alice").is_none());
}

/// API-5.0 1.5, persistence_factory_storage_path_test: initialize of an open atSign at
/// other locations is `StorageConflict` listing each differing field; the open bundle is
/// untouched; after close_for any location is allowed.
pub async fn initialize_at_other_locations_is_a_storage_conflict_listing_the_fields(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    b.key_value_store()
        .put("a.wavi@alice", v("1"), W)
        .await
        .unwrap();
    let elsewhere = ctx.root.path().join("elsewhere");
    let other = backend.server_config(&elsewhere, ctx.clock.clone());
    match init(&ctx, "@alice", other.as_ref()).await {
        Err(PersistenceError::StorageConflict {
            at_sign,
            differences,
        }) => {
            assert_eq!(at_sign, "@alice");
            let fields: Vec<_> = differences.iter().map(|d| d.field).collect();
            assert_eq!(
                fields,
                vec![
                    "storage_path",
                    "commit_log_path",
                    "access_log_path",
                    "notification_storage_path"
                ]
            );
            for d in &differences {
                assert!(
                    d.requested.contains("elsewhere") && !d.held.contains("elsewhere"),
                    "held vs requested of {}: {d}",
                    d.field
                );
            }
        }
        Err(e) => panic!("another location should be StorageConflict, got {e:?}"),
        Ok(_) => panic!("another location should be StorageConflict, got a bundle"),
    }
    assert!(!b.is_closed(), "the open bundle is untouched");
    assert!(Arc::ptr_eq(&ctx.factory.bundle_for("@alice").unwrap(), &b));
    assert_eq!(
        data(b.key_value_store(), "a.wavi@alice").await.as_deref(),
        Some("1")
    );
    ctx.factory.close_for("@alice").await;
    assert!(b.is_closed());
    let moved = init(&ctx, "@alice", other.as_ref()).await.unwrap();
    assert!(!moved.is_closed());
    assert_absent(moved.key_value_store(), "a.wavi@alice").await;
}

/// persistence_factory_storage_path_test: `<path>/./` and a symlink to the directory name
/// the same locations (the identical bundle); a different directory conflicts.
pub async fn equivalent_paths_name_the_same_bundle_and_other_directories_conflict(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let dotted = backend.server_config(&ctx.dir("@alice").join("."), ctx.clock.clone());
    let again = init(&ctx, "@alice", dotted.as_ref()).await;
    assert!(
        matches!(&again, Ok(x) if Arc::ptr_eq(x, &b)),
        "<path>/./ should give the identical bundle, got {again:?}"
    );
    #[cfg(unix)]
    {
        let link = ctx.root.path().join("alice_link");
        std::os::unix::fs::symlink(ctx.dir("@alice"), &link).expect("symlink");
        let linked = backend.server_config(&link, ctx.clock.clone());
        let again = init(&ctx, "@alice", linked.as_ref()).await;
        assert!(
            matches!(&again, Ok(x) if Arc::ptr_eq(x, &b)),
            "a symlink to the directory should give the identical bundle, got {again:?}"
        );
    }
    let other = backend.server_config(&ctx.root.path().join("other"), ctx.clock.clone());
    let r = init(&ctx, "@alice", other.as_ref()).await;
    assert!(
        matches!(r, Err(PersistenceError::StorageConflict { .. })),
        "a different directory should be StorageConflict, got {r:?}"
    );
    let bob = init(&ctx, "@bob", other.as_ref()).await.unwrap();
    assert!(
        !Arc::ptr_eq(&bob, &b),
        "another atSign elsewhere: another bundle"
    );
}

/// at_persistence_factory_test: two atSigns of one factory have distinct stores: data and
/// commit ids are isolated.
pub async fn two_at_signs_in_one_factory_are_isolated(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let alice = ctx.server("@alice").await;
    let bob = ctx.server("@bob").await;
    assert!(!Arc::ptr_eq(&alice, &bob));
    let (ka, kb) = (alice.key_value_store(), bob.key_value_store());
    assert_eq!(ka.put("public:k@alice", v("a"), W).await.unwrap(), Some(0));
    assert_eq!(ka.put("public:k2@alice", v("a"), W).await.unwrap(), Some(1));
    assert_eq!(
        kb.put("public:k@bob", v("b"), W).await.unwrap(),
        Some(0),
        "ids are per atSign"
    );
    assert_absent(kb, "public:k@alice").await;
    assert_absent(ka, "public:k@bob").await;
    assert_eq!(keys(kb, None).await, vec!["public:k@bob".to_string()]);
    assert_eq!(last(&cl(ka)).await, 1);
    assert_eq!(last(&cl(kb)).await, 0);
    let mut bob_events = kb.changes();
    ka.put("public:k3@alice", v("a"), W).await.unwrap();
    assert_no_event(&mut bob_events, "bob sees none of alice's writes").await;
    alice.clear().await.unwrap();
    assert_eq!(data(kb, "public:k@bob").await.as_deref(), Some("b"));
    assert_eq!(last(&cl(kb)).await, 0, "alice's clear leaves bob alone");
}

/// at_persistence_factory_test, BEHAVIOR 9.5: two factories over different atSigns are
/// independent; closing one leaves the other open.
pub async fn two_factories_are_independent(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let other = backend.new_factory();
    let alice = ctx.server("@alice").await;
    let bob_cfg = ctx.server_config("@bob");
    let bob = other.initialize("@bob", bob_cfg.as_ref()).await.unwrap();
    assert!(ctx.factory.bundle_for("@bob").is_none());
    assert!(other.bundle_for("@alice").is_none());
    assert!(Arc::ptr_eq(&other.bundle_for("@bob").unwrap(), &bob));
    ctx.factory.close().await;
    assert!(alice.is_closed());
    assert!(ctx.factory.bundle_for("@alice").is_none());
    assert!(!bob.is_closed());
    assert!(Arc::ptr_eq(&other.bundle_for("@bob").unwrap(), &bob));
    let kb = bob.key_value_store();
    assert_eq!(kb.put("public:k@bob", v("b"), W).await.unwrap(), Some(0));
    assert_eq!(data(kb, "public:k@bob").await.as_deref(), Some("b"));
    other.close().await;
}

/// at_persistence_factory_test, API-5.0 1.5: close is idempotent; bundle_for is then None;
/// a new initialize gives a new bundle over the same data, and the sequence carries on.
pub async fn factory_close_is_idempotent_and_reinitialize_reopens_the_same_data(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    ks.put("before.wavi@alice", v("1"), W).await.unwrap();
    ks.put("ttl.wavi@alice", v_ttl("t", 1_000), W)
        .await
        .unwrap();
    let before = last(&cl(ks)).await;
    ctx.factory.close().await;
    ctx.factory.close().await;
    assert!(b.is_closed());
    assert!(ctx.factory.bundle_for("@alice").is_none());
    let b2 = ctx.server("@alice").await;
    assert!(!Arc::ptr_eq(&b, &b2), "a new lifecycle: a new bundle");
    assert_eq!(b2.at_sign(), "@alice");
    assert!(!b2.is_closed());
    let ks2 = b2.key_value_store();
    assert_eq!(data(ks2, "before.wavi@alice").await.as_deref(), Some("1"));
    assert_eq!(last(&cl(ks2)).await, before, "the mark is kept");
    assert_eq!(
        ks2.put("after.wavi@alice", v("2"), W).await.unwrap(),
        Some(before + 1),
        "the sequence carries on"
    );
    assert_eq!(
        ks2.next_expires_at().await.unwrap(),
        Some(crate::conformance::T0.plus_millis(1_000)),
        "the expiry index survives"
    );
}

/// at_persistence_factory_test: a bundle closed directly is closed, bundle_for treats it
/// as absent, and initialize builds a different, open bundle.
pub async fn a_bundle_closed_directly_counts_as_absent_and_is_rebuilt(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    b.key_value_store()
        .put("a.wavi@alice", v("1"), W)
        .await
        .unwrap();
    b.close().await;
    b.close().await;
    assert!(b.is_closed());
    assert!(ctx.factory.bundle_for("@alice").is_none());
    let b2 = ctx.server("@alice").await;
    assert!(!Arc::ptr_eq(&b, &b2));
    assert!(!b2.is_closed());
    assert_eq!(
        data(b2.key_value_store(), "a.wavi@alice").await.as_deref(),
        Some("1")
    );
}

/// at_persistence_factory_test: close_for closes and forgets one atSign; others stay;
/// close_for of an unknown atSign does nothing.
pub async fn close_for_closes_only_that_at_sign(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let alice = ctx.server("@alice").await;
    let bob = ctx.server("@bob").await;
    ctx.factory.close_for("@nobody").await;
    ctx.factory.close_for("@alice").await;
    assert!(alice.is_closed());
    assert!(ctx.factory.bundle_for("@alice").is_none());
    assert!(!bob.is_closed());
    assert!(Arc::ptr_eq(&ctx.factory.bundle_for("@bob").unwrap(), &bob));
    bob.key_value_store()
        .put("a.wavi@bob", v("1"), W)
        .await
        .unwrap();
    ctx.factory.close_for("@alice").await;
}

/// BEHAVIOR 9.5 (port): every call on a store handle of a closed bundle is `StoreClosed`;
/// its change streams end; `clear` on a closed bundle is `StoreClosed`.
pub async fn every_store_call_on_a_closed_bundle_is_store_closed(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store().clone();
    let log = cl(&ks);
    let k = "a.wavi@alice";
    ks.put(k, v("1"), W).await.unwrap();
    let mut stream = ks.changes();
    b.close().await;
    macro_rules! closed {
        ($e:expr) => {{
            let r = $e;
            assert!(
                is_closed(&r),
                "{} on a closed bundle should be StoreClosed, got {:?}",
                stringify!($e),
                r.as_ref().map(|_| "Ok(..)")
            );
        }};
    }
    closed!(ks.get(k).await);
    closed!(ks.put(k, v("2"), W).await);
    closed!(ks.create(k, v("2"), W).await);
    closed!(ks.remove(k, R).await);
    closed!(ks.exists(k).await);
    closed!(ks.get_keys(None).await);
    closed!(ks.get_expired_keys().await);
    closed!(ks.delete_expired_keys().await);
    closed!(ks.get_many(&[k]).await);
    closed!(ks.remove_many(&[k], false).await);
    closed!(ks.next_expires_at().await);
    closed!(ks.peek_expired(None, None).await);
    closed!(ks.put_meta(k, Default::default(), W).await);
    closed!(ks.put_all(k, v("2"), Default::default()).await);
    closed!(ks.get_meta(k).await);
    closed!(ks.compact(false).await);
    closed!(log.commit(k, CommitOp::Update, None).await);
    closed!(log.remove_entry_for(k).await);
    closed!(
        log.replay(CommitEntry::new(
            "b.wavi@alice",
            CommitOp::Update,
            crate::conformance::T0,
            9
        ))
        .await
    );
    closed!(log.raise_last_committed_sequence_number(5).await);
    closed!(log.iterate(IterateOptions::default()).await);
    closed!(log.iterate_rev(None).await);
    closed!(log.last_committed_sequence_number().await);
    closed!(log.first_committed_sequence_number().await);
    closed!(log.get_latest_commit_entry(k).await);
    closed!(log.entries_count().await);
    closed!(log.size_bytes().await);
    closed!(log.compact(true).await);
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(None) => {}
        Ok(Some(e)) => panic!("a closed store's change stream yielded {e}"),
        Err(_) => panic!("a closed store's change stream did not end"),
    }
    let mut late = ks.changes();
    assert!(
        matches!(
            tokio::time::timeout(Duration::from_secs(5), late.next()).await,
            Ok(None)
        ),
        "a subscription taken after close ends at once"
    );

    // clear on a closed bundle (iterate_replay_test, API-5.0 1.6).
    let r = b.clear().await;
    assert!(
        is_closed(&r),
        "clear on a closed bundle should be StoreClosed, got {r:?}"
    );
    let s = ctx.server("@bob").await;
    ctx.factory.close().await;
    let r = s.clear().await;
    assert!(is_closed(&r), "clear after factory.close(): {r:?}");
    let c = ctx.client("@carol").await;
    c.close().await;
    let r = c.clear().await;
    assert!(is_closed(&r), "clear on a closed client bundle: {r:?}");
}

/// iterate_replay_test, API-5.0 1.6, BEHAVIOR 9.5: clear empties the keystore, its expiry
/// index and the commit log, resets numbering, fires no events, is idempotent, and leaves
/// the handles usable.
pub async fn clear_empties_the_stores_resets_numbering_and_keeps_handles_usable(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ks.put("a.wavi@alice", v("1"), W).await.unwrap();
    ks.put("t.wavi@alice", v_ttl("t", 10), W).await.unwrap();
    assert!(log.entries_count().await.unwrap() > 0);
    let mut events = ks.changes();
    b.clear().await.unwrap();
    assert_no_event(&mut events, "clear").await;
    assert!(keys(ks, None).await.is_empty());
    assert_absent(ks, "a.wavi@alice").await;
    assert_absent(ks, "t.wavi@alice").await;
    assert_eq!(ks.next_expires_at().await.unwrap(), None);
    ctx.clock.advance(100);
    assert!(collect(ks.get_expired_keys().await.unwrap())
        .await
        .is_empty());
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(last(&log).await, -1);
    b.clear().await.expect("clear is idempotent");
    assert_eq!(ks.put("b.wavi@alice", v("1"), W).await.unwrap(), Some(0));
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(
        super::next_event(&mut events).await,
        super::added("b.wavi@alice")
    );
    let c = ctx.client("@carol").await;
    c.key_value_store()
        .put("x.wavi@carol", v("1"), W)
        .await
        .unwrap();
    c.clear().await.unwrap();
    assert_absent(c.key_value_store(), "x.wavi@carol").await;
}

/// API-5.0 1.6 capability matrix, BEHAVIOR 9.2: a client bundle has a commit-log-free
/// keystore and no optional store; server_stores() reports the absent capability.
pub async fn client_bundle_has_only_a_commit_log_free_keystore(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let c = ctx.client("@alice").await;
    assert_eq!(c.at_sign(), "@alice");
    assert_eq!(c.backend_id(), ctx.factory.backend_id());
    assert!(c.key_value_store().commit_log().is_none());
    assert!(c.commit_log().is_none());
    assert!(c.access_log().is_none());
    assert!(c.notification_keystore().is_none());
    assert!(
        matches!(
            c.server_stores(),
            Err(PersistenceError::CapabilityAbsent { .. })
        ),
        "server_stores on a client bundle"
    );
    let s = ctx.server("@bob").await;
    assert!(s.commit_log().is_some());
}

#[derive(Debug)]
struct ForeignConfig {
    root: PathBuf,
}

impl PersistenceConfig for ForeignConfig {
    fn backend(&self) -> BackendId {
        // The factory must check the config's type, not what it claims.
        BackendId::Sled
    }
    fn storage_path(&self) -> &Path {
        &self.root
    }
    fn commit_log_path(&self) -> PathBuf {
        self.root.join("c")
    }
    fn access_log_path(&self) -> PathBuf {
        self.root.join("a")
    }
    fn notification_storage_path(&self) -> PathBuf {
        self.root.join("n")
    }
    fn backend_marker_path(&self) -> PathBuf {
        self.root.join(".persistence_backend")
    }
    fn enable_commit_log(&self) -> bool {
        true
    }
    fn enable_access_log(&self) -> bool {
        false
    }
    fn enable_notification_keystore(&self) -> bool {
        false
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// at_persistence_factory_test, BEHAVIOR 3.9: a config of another type is `InvalidConfig`;
/// nothing is opened.
pub async fn config_of_another_backend_type_is_invalid_config(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let foreign = ForeignConfig {
        root: ctx.dir("@alice"),
    };
    let r = init(&ctx, "@alice", &foreign).await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidConfig { .. })),
        "a foreign config should be InvalidConfig, got {r:?}"
    );
    assert!(ctx.factory.bundle_for("@alice").is_none());
    assert!(!ctx.dir("@alice").exists(), "nothing is created");
}

/// API-5.0 §11.18 (port decision): a malformed atSign is `InvalidConfig` and no bundle is
/// cached; `@` + 55 characters is accepted.
pub async fn malformed_at_signs_are_invalid_config(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let too_long = format!("@{}", "a".repeat(56));
    for at_sign in ["", "alice", "@", too_long.as_str(), "@al ice"] {
        let cfg = ctx.server_config("@bad");
        let r = init(&ctx, at_sign, cfg.as_ref()).await;
        assert!(
            matches!(r, Err(PersistenceError::InvalidConfig { .. })),
            "initialize({at_sign:?}) should be InvalidConfig, got {r:?}"
        );
        assert!(
            ctx.factory.bundle_for(at_sign).is_none(),
            "{at_sign:?} cached"
        );
    }
    let longest = format!("@{}", "a".repeat(55));
    let cfg = ctx.server_config("@longest");
    init(&ctx, &longest, cfg.as_ref())
        .await
        .expect("'@' + 55 characters is a valid atSign");
}

/// persistence_restart_cycle_test (API-5.0 9), 50 rounds: three close → initialize cycles
/// on one factory with an old store handle held; every value stays readable, the mark
/// never decreases, the storage-conflict guard never fires, and the old handle is closed.
pub async fn restart_cycles_keep_every_value_and_never_lower_the_mark(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let first = ctx.server("@alice").await;
    let old = first.key_value_store().clone();
    old.put("before@alice", v("before"), W).await.unwrap();
    let mut mark = last(&cl(&old)).await;
    assert!(mark >= 0);
    let mut written: Vec<String> = vec!["before@alice".into()];
    for round in 0..50 {
        for i in 0..3 {
            ctx.factory.close().await;
            let cfg = ctx.server_config("@alice");
            let b = init(&ctx, "@alice", cfg.as_ref())
                .await
                .unwrap_or_else(|e| panic!("round {round} cycle {i}: initialize: {e}"));
            let ks = b.key_value_store();
            let now = last(&cl(ks)).await;
            assert!(
                now >= mark,
                "round {round} cycle {i}: mark went down {mark} -> {now}"
            );
            mark = now;
            let key = format!("cycle{round}_{i}@alice");
            let id = ks.put(&key, v(&key), W).await.unwrap().unwrap();
            assert_eq!(id, mark + 1, "round {round} cycle {i}: next id");
            mark = id;
            written.push(key);
        }
        ctx.factory.close().await;
        let b = ctx.server("@alice").await;
        let ks = b.key_value_store();
        assert!(last(&cl(ks)).await >= mark);
        let refs: Vec<&str> = written.iter().map(String::as_str).collect();
        let got = ks.get_many(&refs).await.unwrap();
        assert_eq!(
            got.len(),
            written.len(),
            "round {round}: every value readable"
        );
        assert_eq!(
            got["before@alice"].data.as_deref(),
            Some("before"),
            "round {round}"
        );
        let r = old.get("before@alice").await;
        assert!(
            is_closed(&r),
            "round {round}: the old handle should be StoreClosed, got {r:?}"
        );
    }
}
