//! Keystore and commit-log cases (BEHAVIOR 3-4, API-5.0 3-4).

use super::{cl, entries, v, v_ttl};
use crate::conformance::{Backend, Ctx};
use crate::store::{RemoveOptions, WriteOptions};
use crate::PersistenceError;

const W: WriteOptions = WriteOptions {
    skip_commit: false,
    asserted: None,
};
const R: RemoveOptions = RemoveOptions {
    skip_commit: false,
    deleted_at: None,
};

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
