//! Commit-log cases (BEHAVIOR 4, 9.4; API-5.0 4.1-4.10 and the per-test-file lists of
//! API-5.0 9: iterate_replay_test, min_max_first_class_test (commit-log part),
//! commit_log_skip_deletes_test, skip_deletes_pushdown_test,
//! commit_id_high_water_mark_test).

use super::{
    added, assert_no_event, cl, collect, entries, entry, ids, iterate, last, latest_id, latest_op,
    next_event, set, triple, v, R, W, W_SKIP,
};
use crate::conformance::{Backend, Ctx, T0};
use crate::model::{CommitEntry, CommitOp, Timestamp};
use crate::store::{Bundle, CommitLog, IterateOptions};
use crate::PersistenceError;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;

const U: CommitOp = CommitOp::Update;
const D: CommitOp = CommitOp::Delete;

async fn commit(log: &Arc<dyn CommitLog>, key: &str, op: CommitOp) -> i64 {
    log.commit(key, op, None)
        .await
        .unwrap_or_else(|e| panic!("commit({key}): {e}"))
}

/// API-5.0 4.3, BEHAVIOR 4.1 step 1: the skip rule (`private:`, `privatekey:`, `public:_`
/// but not `public:__`, `local:`) returns -1 and consumes no id; it is a case-sensitive
/// prefix test on the key as given.
pub async fn commit_log_skip_rule_returns_minus_one_and_consumes_no_id(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    for k in [
        "public:_location@alice",
        "private:testkey@alice",
        "privatekey:testkey@alice",
        "local:phone.wavi@alice",
    ] {
        assert_eq!(commit(&log, k, U).await, -1, "commit({k})");
        assert_eq!(commit(&log, k, D).await, -1, "commit({k}, DELETE)");
        assert_eq!(latest_op(&log, k).await, None);
    }
    assert_eq!(last(&log).await, -1, "elided commits consume no id");
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(commit(&log, "public:__location@alice", U).await, 0);
    assert_eq!(commit(&log, "public:signing_publickey@alice", U).await, 1);
    assert_eq!(commit(&log, "@alice:signing_privatekey@alice", U).await, 2);
    assert_eq!(commit(&log, "cached:public:phone@bob", U).await, 3);
    assert_eq!(
        commit(&log, "LOCAL:phone.wavi@alice", U).await,
        4,
        "the prefix test is case-sensitive"
    );
    assert_eq!(
        latest_op(&log, "LOCAL:phone.wavi@alice").await,
        Some("+"),
        "the commit log stores the key as given"
    );
}

/// BEHAVIOR 4.1 (worked example), API-5.0 4.9: one entry per atKey, the newest wins, in
/// the order keys were last committed; the commit log does not lower-case.
pub async fn commit_log_keeps_one_entry_per_at_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    let seq = [
        ("firstname.wavi@alice", U),
        ("lastName.wavi@alice", U),
        ("country.wavi@alice", U),
        ("phone.wavi@alice", U),
        ("location.wavi@alice", U),
        ("location.wavi@alice", CommitOp::UpdateAll),
        ("lastName.wavi@alice", CommitOp::UpdateAll),
        ("firstname.wavi@alice", U),
        ("country.wavi@alice", U),
        ("city.wavi@alice", U),
        ("location.wavi@alice", D),
    ];
    for (i, (k, op)) in seq.iter().enumerate() {
        assert_eq!(commit(&log, k, *op).await, i as i64);
    }
    let expect: Vec<(i64, String, &str)> = vec![
        (3, "phone.wavi@alice".into(), "+"),
        (6, "lastName.wavi@alice".into(), "*"),
        (7, "firstname.wavi@alice".into(), "+"),
        (8, "country.wavi@alice".into(), "+"),
        (9, "city.wavi@alice".into(), "+"),
        (10, "location.wavi@alice".into(), "-"),
    ];
    assert_eq!(entries(&log).await, expect);
    assert_eq!(log.entries_count().await.unwrap(), 6);
    assert_eq!(
        latest_op(&log, "lastname.wavi@alice").await,
        None,
        "exact atKey"
    );
    assert_eq!(last(&log).await, 10);
    for _ in 0..10 {
        commit(&log, "public:hot@alice", U).await;
    }
    let hot: Vec<_> = entries(&log)
        .await
        .into_iter()
        .filter(|e| e.1 == "public:hot@alice")
        .collect();
    assert_eq!(hot, vec![(20, "public:hot@alice".to_string(), "+")]);
    assert_eq!(log.entries_count().await.unwrap(), 7);
}

/// API-5.0 4.3 step 3: op_time is the given instant, else now.
pub async fn commit_op_time_defaults_to_now_and_keeps_a_given_one(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    ctx.clock.advance(77);
    commit(&log, "a.wavi@alice", U).await;
    let given = Timestamp::from_millis(1_500_000_000_001);
    log.commit("b.wavi@alice", U, Some(given)).await.unwrap();
    let got = log.get_latest_commit_entry("a.wavi@alice").await.unwrap();
    assert_eq!(got.map(|e| e.op_time), Some(T0.plus_millis(77)));
    let got = log.get_latest_commit_entry("b.wavi@alice").await.unwrap();
    assert_eq!(got.map(|e| e.op_time), Some(given));
}

/// iterate_replay_test: iterate yields the entries in strictly increasing id order;
/// `from_commit_id` is inclusive; filters combine; an empty log yields nothing; a stream
/// may be abandoned early.
pub async fn iterate_yields_ascending_ids_from_an_inclusive_start_and_filters(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    assert!(
        entries(&log).await.is_empty(),
        "an empty log iterates to nothing"
    );
    commit(&log, "public:foo@alice", U).await;
    commit(&log, "public:bar@alice", U).await;
    commit(&log, "public:baz@alice", D).await;
    let all = entries(&log).await;
    assert_eq!(all.len(), 3);
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "strictly increasing"
    );
    assert_eq!(
        all.iter().map(|e| e.1.as_str()).collect::<BTreeSet<_>>(),
        ["public:foo@alice", "public:bar@alice", "public:baz@alice"]
            .into_iter()
            .collect()
    );
    let from = iterate(&log, IterateOptions::from(all[1].0)).await;
    assert_eq!(from.len(), 2);
    assert_eq!(from[0].0, all[1].0, "from_commit_id is inclusive");
    assert!(iterate(&log, IterateOptions::from(all[2].0 + 1))
        .await
        .is_empty());
    assert_eq!(iterate(&log, IterateOptions::from(-5)).await, all);

    // Abandon a stream after one item, then iterate again.
    let mut s = log.iterate(IterateOptions::default()).await.unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.commit_id, Some(all[0].0));
    drop(s);

    b.clear().await.unwrap();
    for k in [
        "public:alpha@alice",
        "public:beta@alice",
        "public:gamma@alice",
    ] {
        commit(&log, k, U).await;
    }
    let beta = iterate(
        &log,
        IterateOptions::default().with_filter(|e| e.at_key == "public:beta@alice"),
    )
    .await;
    assert_eq!(beta, vec![(1, "public:beta@alice".to_string(), "+")]);
    let all = entries(&log).await;
    let updates_from = iterate(
        &log,
        IterateOptions::from(all[1].0).with_filter(|e| e.operation == CommitOp::Update),
    )
    .await;
    assert_eq!(updates_from.len(), 2);
}

/// CommitLog::iterate_rev: descending ids, from an inclusive start (or the newest).
pub async fn iterate_rev_yields_descending_ids_from_an_inclusive_start(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let rev = |from: Option<i64>| {
        let log = Arc::clone(&log);
        async move {
            collect(log.iterate_rev(from).await.unwrap())
                .await
                .into_iter()
                .map(triple)
                .map(|e| e.0)
                .collect::<Vec<_>>()
        }
    };
    assert!(rev(None).await.is_empty());
    for k in ["a", "b", "c", "d", "e"] {
        ks.put(&format!("{k}.wavi@alice"), v("1"), W).await.unwrap();
    }
    ks.put("b.wavi@alice", v("2"), W).await.unwrap(); // id 5 replaces id 1
    assert_eq!(rev(None).await, vec![5, 4, 3, 2, 0]);
    assert_eq!(rev(Some(3)).await, vec![3, 2, 0], "inclusive start");
    assert_eq!(
        rev(Some(1)).await,
        vec![0],
        "a hole starts at the next lower id"
    );
    assert_eq!(rev(Some(100)).await, vec![5, 4, 3, 2, 0]);
    assert!(rev(Some(-1)).await.is_empty());
    let mut forward = ids(&log).await;
    forward.reverse();
    assert_eq!(rev(None).await, forward, "iterate_rev is iterate reversed");
}

/// iterate_replay_test, BEHAVIOR 9.4: replay stores the entry verbatim under its id (no
/// skip rule), raises the mark and fires no events.
pub async fn replay_stores_the_entry_verbatim_raises_the_mark_and_fires_no_events(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let mut events = ks.changes();
    let when = Timestamp::from_millis(1_600_000_000_000);
    let e = entry("public:replayed@alice", U, when, 9001);
    log.replay(e.clone()).await.unwrap();
    let got = collect(log.iterate(IterateOptions::default()).await.unwrap()).await;
    assert_eq!(got, vec![e.clone()], "stored verbatim");
    assert_eq!(
        log.get_latest_commit_entry("public:replayed@alice")
            .await
            .unwrap(),
        Some(e)
    );
    assert_eq!(last(&log).await, 9001, "replay raises the mark");
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(9001)
    );
    let private = entry("private:x@alice", CommitOp::UpdateAll, when, 9000);
    log.replay(private.clone()).await.unwrap();
    assert_eq!(
        log.get_latest_commit_entry("private:x@alice")
            .await
            .unwrap(),
        Some(private),
        "replay applies no skip rule"
    );
    assert_eq!(last(&log).await, 9001, "a lower id does not lower the mark");
    assert_eq!(
        ks.put("next.wavi@alice", v("1"), W).await.unwrap(),
        Some(9002)
    );
    assert_eq!(
        next_event(&mut events).await,
        added("next.wavi@alice"),
        "the first event is the put's: replay fired none"
    );
    assert_no_event(&mut events, "after replay").await;
}

/// iterate_replay_test, BEHAVIOR open point 42: replaying the same (id, atKey, op) twice
/// leaves one entry and is not an error.
pub async fn replay_is_idempotent_on_id_at_key_and_op(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    let e = entry("public:twice@alice", U, T0, 4242);
    log.replay(e.clone()).await.unwrap();
    log.replay(e.clone()).await.unwrap();
    let mut later = e.clone();
    later.op_time = T0.plus_millis(5);
    log.replay(later)
        .await
        .expect("same (id, atKey, op) with another op_time is idempotent");
    assert_eq!(ids(&log).await, vec![4242]);
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(last(&log).await, 4242);
}

/// BEHAVIOR open point 42: a different entry (atKey or op) under a stored id is
/// `ReplayConflict`; the stored entry is unchanged.
pub async fn replay_of_a_different_entry_under_a_stored_id_is_a_conflict(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    let e = entry("public:a@alice", U, T0, 5);
    log.replay(e.clone()).await.unwrap();
    for other in [
        entry("public:b@alice", U, T0, 5),
        entry("public:a@alice", D, T0, 5),
    ] {
        match log.replay(other.clone()).await {
            Err(PersistenceError::ReplayConflict { commit_id, .. }) => assert_eq!(commit_id, 5),
            r => panic!("replay of {other:?} over id 5 should be ReplayConflict, got {r:?}"),
        }
    }
    assert_eq!(
        entries(&log).await,
        vec![(5, "public:a@alice".to_string(), "+")]
    );
    assert_eq!(latest_op(&log, "public:b@alice").await, None);
    // An id issued by commit conflicts the same way.
    let id = commit(&log, "public:c@alice", U).await;
    let r = log.replay(entry("public:d@alice", U, T0, id)).await;
    assert!(
        matches!(r, Err(PersistenceError::ReplayConflict { .. })),
        "replay over a committed id should be ReplayConflict, got {r:?}"
    );
}

/// iterate_replay_test, BEHAVIOR 9.4: an entry without a commit id is `InvalidArgument`
/// and changes nothing.
pub async fn replay_without_a_commit_id_is_invalid_argument(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    let e = CommitEntry {
        at_key: "public:no_id@alice".into(),
        operation: U,
        op_time: T0,
        commit_id: None,
    };
    let r = log.replay(e).await;
    assert!(
        matches!(r, Err(PersistenceError::InvalidArgument { .. })),
        "replay without a commit id should be InvalidArgument, got {r:?}"
    );
    assert!(entries(&log).await.is_empty());
    assert_eq!(last(&log).await, -1);
}

/// API-5.0 4.5, BEHAVIOR 9.4 (port decision): replay upserts by atKey, so a key keeps one
/// entry; the mark is the highest id seen.
pub async fn replay_upserts_by_at_key_keeping_one_entry_per_key(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    log.replay(entry("public:k@alice", U, T0, 3)).await.unwrap();
    log.replay(entry("public:k@alice", D, T0, 7)).await.unwrap();
    assert_eq!(
        entries(&log).await,
        vec![(7, "public:k@alice".to_string(), "-")]
    );
    assert_eq!(log.entries_count().await.unwrap(), 1);
    log.replay(entry("public:k@alice", U, T0, 4)).await.unwrap();
    assert_eq!(
        entries(&log).await,
        vec![(4, "public:k@alice".to_string(), "+")],
        "the replayed entry replaces the atKey's entry"
    );
    assert_eq!(last(&log).await, 7);
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(4)
    );
}

/// min_max_first_class_test, as replaced by the port decision: replaying a stale id and
/// then committing the same key leaves one entry, and the floor is the new id.
pub async fn replayed_stale_id_then_commit_leaves_one_entry_with_the_new_floor(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_cl").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let dup = "dup.wavi@minmax_cl";
    log.replay(entry(dup, U, T0, 5)).await.unwrap();
    let live = ks.put(dup, v("x"), W).await.unwrap().unwrap();
    assert_eq!(live, 6);
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(live)
    );
    assert_eq!(latest_id(&log, dup).await, Some(live));
    assert!(collect(log.compact(false).await.unwrap()).await.is_empty());
    assert_eq!(
        log.first_committed_sequence_number().await.unwrap(),
        Some(live)
    );
}

/// commit_id_high_water_mark_test: replaying ids 0, 1 and 2 makes the next create 3.
pub async fn replayed_ids_raise_the_mark_for_the_next_commit(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
        log.replay(entry(&format!("{k}.wavi@alice"), U, T0, i as i64))
            .await
            .unwrap();
    }
    assert_eq!(ks.create("d.wavi@alice", v("1"), W).await.unwrap(), Some(3));
}

/// API-5.0 4.2, 4.4: raise_last_committed_sequence_number sets max(mark, id),
/// persistently, and writes no entry.
pub async fn raise_last_committed_sequence_number_is_a_persistent_max(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    log.raise_last_committed_sequence_number(10).await.unwrap();
    assert_eq!(last(&log).await, 10);
    assert!(entries(&log).await.is_empty(), "no entry written");
    assert_eq!(log.first_committed_sequence_number().await.unwrap(), None);
    log.raise_last_committed_sequence_number(3).await.unwrap();
    assert_eq!(last(&log).await, 10, "never lowers the mark");
    log.raise_last_committed_sequence_number(20).await.unwrap();
    let b2 = ctx.restart("@alice").await;
    let ks2 = b2.key_value_store();
    let log2 = cl(ks2);
    assert_eq!(last(&log2).await, 20, "persisted across a restart");
    assert_eq!(ks2.put("a.wavi@alice", v("1"), W).await.unwrap(), Some(21));
}

/// API-5.0 4.2, min_max_first_class_test: remove_entry_for deletes the key's entry (none is
/// not an error) and never changes the mark.
pub async fn remove_entry_for_deletes_the_entry_and_keeps_the_mark(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let log = cl(b.key_value_store());
    let id = commit(&log, "gone.wavi@alice", U).await;
    log.remove_entry_for("gone.wavi@alice").await.unwrap();
    assert_eq!(
        log.get_latest_commit_entry("gone.wavi@alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(log.first_committed_sequence_number().await.unwrap(), None);
    assert_eq!(last(&log).await, id);
    log.remove_entry_for("never.wavi@alice")
        .await
        .expect("removing a missing entry is not an error");
    for k in ["location@alice", "mobile@alice", "phone@alice"] {
        commit(&log, k, U).await;
    }
    log.remove_entry_for("mobile@alice").await.unwrap();
    assert_eq!(
        entries(&log)
            .await
            .into_iter()
            .map(|e| e.1)
            .collect::<Vec<_>>(),
        vec!["location@alice", "phone@alice"]
    );
    assert_eq!(log.entries_count().await.unwrap(), 2);
    log.remove_entry_for("phone@alice").await.unwrap();
    assert_eq!(last(&log).await, 3, "purging the newest keeps the mark");
    assert_eq!(commit(&log, "new@alice", U).await, 4);
}

/// API-5.0 4.2 (min_max_first_class_test): first_committed_sequence_number is the exact
/// smallest retained id, None when empty.
pub async fn first_committed_sequence_number_is_the_exact_floor(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@minmax_cl").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let first = || {
        let log = Arc::clone(&log);
        async move { log.first_committed_sequence_number().await.unwrap() }
    };
    assert_eq!(first().await, None);
    let one = ks
        .put("one.wavi@minmax_cl", v("1"), W)
        .await
        .unwrap()
        .unwrap();
    let two = ks
        .put("two.wavi@minmax_cl", v("1"), W)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first().await, Some(one));
    assert_eq!(last(&log).await, two);
    let again = ks
        .put("one.wavi@minmax_cl", v("2"), W)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first().await,
        Some(two),
        "re-committing one moves the floor"
    );
    assert_eq!(last(&log).await, again);
    ks.put("two.wavi@minmax_cl", v("2"), W_SKIP).await.unwrap();
    assert_eq!(first().await, Some(again), "a purge moves the floor");
    ks.remove(
        "one.wavi@minmax_cl",
        crate::store::RemoveOptions::skip_commit(),
    )
    .await
    .unwrap();
    assert_eq!(first().await, None);
    assert_eq!(log.entries_count().await.unwrap(), 0);
}

/// commit_log_skip_deletes_test: skip_deletes_until excludes DELETE entries up to the
/// threshold, except the one whose id is latest_commit_id.
pub async fn skip_deletes_until_excludes_old_deletes_except_the_latest(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    let u1 = ks.put("u1.wavi@alice", v("1"), W).await.unwrap().unwrap();
    ks.put("d1.wavi@alice", v("1"), W).await.unwrap();
    let d1 = ks.remove("d1.wavi@alice", R).await.unwrap().unwrap();
    ks.put("u2.wavi@alice", v("1"), W).await.unwrap();
    ks.put("d2.wavi@alice", v("1"), W).await.unwrap();
    let d2 = ks.remove("d2.wavi@alice", R).await.unwrap().unwrap();
    let keys_of = |opts: IterateOptions| {
        let log = Arc::clone(&log);
        async move {
            iterate(&log, opts)
                .await
                .into_iter()
                .map(|e| e.1)
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        keys_of(IterateOptions::from(u1).with_skip_deletes(d1, Some(d2))).await,
        set(["u1.wavi@alice", "u2.wavi@alice", "d2.wavi@alice"])
    );
    assert_eq!(
        keys_of(IterateOptions::default().with_skip_deletes(d2, Some(d2))).await,
        set(["u1.wavi@alice", "u2.wavi@alice", "d2.wavi@alice"]),
        "the latest DELETE is always yielded"
    );
    assert_eq!(
        keys_of(IterateOptions::default().with_skip_deletes(d2, None)).await,
        set(["u1.wavi@alice", "u2.wavi@alice"]),
        "latest None exempts nothing"
    );
    assert_eq!(
        keys_of(IterateOptions::default()).await,
        set([
            "u1.wavi@alice",
            "u2.wavi@alice",
            "d1.wavi@alice",
            "d2.wavi@alice"
        ])
    );
}

/// Seeds `n` commits of `public:k<i>@alice` (i = 1..=n; UPDATE if i is live, else DELETE)
/// and checks that the pushdown hint gives exactly the results of the equivalent filter.
async fn pushdown_case(
    b: &Bundle,
    n: usize,
    live: &[usize],
    t: i64,
    from: Option<i64>,
) -> Vec<(i64, String, &'static str)> {
    b.clear().await.unwrap();
    let log = cl(b.key_value_store());
    for i in 1..=n {
        let op = if live.contains(&i) { U } else { D };
        commit(&log, &format!("public:k{i}@alice"), op).await;
    }
    let latest = last(&log).await;
    let reference = move |e: &CommitEntry| {
        !(e.operation == D && e.commit_id.is_some_and(|id| id <= t && id != latest))
    };
    let base = IterateOptions {
        from_commit_id: from,
        ..Default::default()
    };
    let with_filter_only = iterate(&log, base.clone().with_filter(reference)).await;
    let with_hint_and_filter = iterate(
        &log,
        base.clone()
            .with_filter(reference)
            .with_skip_deletes(t, Some(latest)),
    )
    .await;
    let with_hint_only = iterate(&log, base.with_skip_deletes(t, Some(latest))).await;
    let label = format!("n={n} live={live:?} t={t} from={from:?}");
    assert_eq!(
        with_hint_and_filter, with_filter_only,
        "{label}: hint + filter"
    );
    assert_eq!(with_hint_only, with_filter_only, "{label}: hint alone");
    with_filter_only
}

/// skip_deletes_pushdown_test: the skip-deletes hint gives the same ids and atKeys in the
/// same order as the equivalent filter, for every case of the Dart test.
pub async fn skip_deletes_pushdown_gives_exactly_the_results_of_the_equivalent_filter(
    backend: &dyn Backend,
) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let r = pushdown_case(&b, 40, &[40], 40, None).await;
    assert_eq!(r.len(), 1);
    let r = pushdown_case(&b, 40, &[3, 17, 18, 39], 40, None).await;
    assert_eq!(
        r.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![2, 16, 17, 38, 39],
        "the four lives and the latest DELETE"
    );
    let r = pushdown_case(&b, 40, &[5], 20, None).await;
    assert_eq!(r.len(), 1 + 19, "live 5 plus every DELETE above 20");
    let r = pushdown_case(&b, 40, &[5, 33], 40, Some(10)).await;
    assert_eq!(r.iter().map(|e| e.0).collect::<Vec<_>>(), vec![32, 39]);
    let r = pushdown_case(&b, 12, &[], 11, None).await;
    assert_eq!(
        r,
        vec![(11, "public:k12@alice".to_string(), "-")],
        "exactly [latest]"
    );
    let r = pushdown_case(&b, 12, &[], 11 + 5000, None).await;
    assert_eq!(r, vec![(11, "public:k12@alice".to_string(), "-")]);
    let r = pushdown_case(&b, 0, &[], 100, None).await;
    assert!(r.is_empty());
    let lives: Vec<usize> = (1..=10).collect();
    let r = pushdown_case(&b, 10, &lives, 10, None).await;
    assert_eq!(r.len(), 10);
}

/// commit_id_high_water_mark_test, API-5.0 1.6: bundle.clear() resets numbering: last is
/// -1 and the next create returns 0.
pub async fn bundle_clear_resets_commit_numbering(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    let log = cl(ks);
    ks.create("a.wavi@alice", v("1"), W).await.unwrap();
    let f = ks.create("b.wavi@alice", v("1"), W).await.unwrap().unwrap();
    log.raise_last_committed_sequence_number(100).await.unwrap();
    b.clear().await.unwrap();
    assert_eq!(last(&log).await, -1);
    assert_eq!(log.first_committed_sequence_number().await.unwrap(), None);
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(
        ks.create("c.wavi@alice", v("1"), W).await.unwrap(),
        Some(f - 1)
    );
    assert_eq!(log.entries_count().await.unwrap(), 1);
}

/// API-5.0 4.4: the mark survives a restart with nothing written, also when the newest
/// entry was removed by remove_entry_for.
pub async fn high_water_mark_survives_a_restart_without_writes(backend: &dyn Backend) {
    let ctx = Ctx::new(backend);
    let b = ctx.server("@alice").await;
    let ks = b.key_value_store();
    ks.put("a.wavi@alice", v("1"), W).await.unwrap();
    ks.put("b.wavi@alice", v("1"), W).await.unwrap();
    cl(ks).remove_entry_for("b.wavi@alice").await.unwrap();
    let b2 = ctx.restart("@alice").await;
    let log2 = cl(b2.key_value_store());
    assert_eq!(last(&log2).await, 1);
    assert_eq!(
        log2.first_committed_sequence_number().await.unwrap(),
        Some(0)
    );
    let b3 = ctx.restart("@alice").await;
    let log3 = cl(b3.key_value_store());
    assert_eq!(last(&log3).await, 1);
    assert_eq!(commit(&log3, "c.wavi@alice", U).await, 2);
}
