//! `Bundle::verify`: clean stores of every kind verify OK, and each kind of damage —
//! planted with raw sled on a closed database — is reported with the right store and key,
//! and nothing else is.

mod common;

use at_persistence_secondary_server::model::{
    codec, AtData, AtMetaData, AtNotificationBuilder, CommitEntry, CommitOp, ManualClock,
    NotificationType, Timestamp,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, CompactedItem, PersistenceFactory, Problem, RemoveOptions, ResultStream, VerifyReport,
    WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, edit_raw_tree, server_layout, T0};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

const AT: &str = "@alice";

/// The shared server layout with a 4 MiB page cache and `clock`.
fn server(dir: &Path, clock: Arc<ManualClock>) -> SledPersistenceConfig {
    server_layout(dir)
        .with_cache_capacity(4 * 1024 * 1024)
        .with_clock(clock)
}

fn ttl(ms: i64) -> AtMetaData {
    AtMetaData {
        ttl: Some(ms),
        ..Default::default()
    }
}

fn with_meta(data: &str, meta: AtMetaData) -> AtData {
    AtData {
        data: Some(data.into()),
        meta_data: Some(meta),
        key: None,
    }
}

/// Records the populated server bundle holds.
const KEYSTORE_RECORDS: u64 = 13;
/// Commit entries: k0..k9 (k9 is a DELETE), ttl, ttb.
const COMMIT_ENTRIES: u64 = 12;
const ACCESS_ENTRIES: u64 = 9;
const NOTIFICATIONS: u64 = 4;

/// Fills every store with a bit of everything the indexes track.
async fn populate(b: &Bundle) {
    let ks = b.key_value_store();
    for i in 0..10 {
        ks.put(
            &format!("k{i}.app@alice"),
            AtData::new(format!("v{i}")),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    ks.put(
        "k0.app@alice",
        AtData::new("again"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    ks.put(
        "ttl.app@alice",
        with_meta("t", ttl(60_000)),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let ttb = AtMetaData {
        ttb: Some(30_000),
        ..Default::default()
    };
    ks.put(
        "ttb.app@alice",
        with_meta("b", ttb),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    ks.put(
        "local:x.app@alice",
        AtData::new("l"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    ks.put(
        "skip.app@alice",
        AtData::new("s"),
        WriteOptions::skip_commit(),
    )
    .await
    .unwrap();
    ks.remove("k9.app@alice", RemoveOptions::default())
        .await
        .unwrap();

    let al = b.access_log().unwrap();
    for _ in 0..3 {
        al.insert("@bob", "pol", None).await.unwrap();
    }
    al.insert("@carol", "pol", None).await.unwrap();
    for _ in 0..2 {
        al.insert("@bob", "lookup", Some("phone@alice"))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        al.insert("@bob", "pkam", None).await.unwrap();
    }
    al.insert("@bob", "from", None).await.unwrap();

    let nk = b.notification_keystore().unwrap();
    for (i, id) in ["n1", "n2", "n3", "n4"].iter().enumerate() {
        let n = AtNotificationBuilder {
            id: id.to_string(),
            ttl: Some(60_000 * (i as i64 + 1)),
            notification_type: Some(NotificationType::Received),
            from_at_sign: Some("@bob".into()),
            notification: Some(format!("{id}.app@alice")),
            ..AtNotificationBuilder::new()
        }
        .build_at(T0);
        nk.put(id, n, WriteOptions::default()).await.unwrap();
    }
}

/// Drains a compaction stream; the number of items removed.
async fn drain(s: ResultStream<CompactedItem>) -> usize {
    collect_ok(s).await.len()
}

/// A populated server store in `dir`, closed.
async fn build(dir: &Path) {
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let b = f.initialize(AT, &server(dir, clock)).await.unwrap();
    populate(&b).await;
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "freshly built store:\n{report}");
    f.close().await;
}

async fn reopen_and_verify(dir: &Path) -> VerifyReport {
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let b = f.initialize(AT, &server(dir, clock)).await.unwrap();
    let report = b.verify().await.unwrap();
    f.close().await;
    report
}

/// Builds a populated store, applies `edit` to one tree, reopens and verifies.
async fn damaged(sub: &str, tree: &str, edit: impl FnOnce(&sled::Tree)) -> VerifyReport {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    edit_raw_tree(&dir.path().join(sub), tree, edit);
    reopen_and_verify(dir.path()).await
}

fn instant(t: Timestamp) -> [u8; 8] {
    ((t.as_millis() as u64) ^ (1u64 << 63)).to_be_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The key of the first entry starting with `prefix` and ending with `suffix`.
fn find(t: &sled::Tree, prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    t.scan_prefix(prefix)
        .keys()
        .map(|k| k.unwrap().to_vec())
        .find(|k| k.ends_with(suffix))
        .unwrap_or_else(|| panic!("no entry {prefix:?}..{suffix:?}"))
}

fn id_of(t: &sled::Tree, at_key: &str) -> u64 {
    let v = t
        .get(cat(&[b"k", at_key.as_bytes()]))
        .unwrap()
        .expect("indexed");
    // The id, then (on the entry that carries them) the counts.
    u64::from_be_bytes(v[..8].try_into().unwrap())
}

/// The high-water mark opening recovers: the stored one or the newest entry's id.
fn hwm_of(t: &sled::Tree) -> i64 {
    let stored = t
        .get(b"mhwm")
        .unwrap()
        .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()) as i64)
        .unwrap_or(-1);
    let newest = t
        .range(&b"c"[..]..&b"d"[..])
        .keys()
        .next_back()
        .map(|k| u64::from_be_bytes(k.unwrap()[1..].try_into().unwrap()) as i64)
        .unwrap_or(-1);
    stored.max(newest)
}

/// Stores the counts in `mcounts`, valid as of `as_of` (which then outranks any entry
/// with an id up to `as_of` that carries counts).
fn set_counts(t: &sled::Tree, records: u64, entries: u64, as_of: i64) {
    let v = cat(&[
        &records.to_be_bytes(),
        &entries.to_be_bytes(),
        &as_of.to_be_bytes(),
    ]);
    t.insert(b"mcounts", v).unwrap();
}

/// The violations as (store, key, problem) for exact comparison.
fn found(r: &VerifyReport) -> Vec<(&'static str, String, Problem)> {
    let mut v: Vec<_> = r
        .violations
        .iter()
        .map(|v| (v.store, v.key.clone(), v.problem.clone()))
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

/// Asserts that the report holds exactly one violation, at `store` / `key`, and returns
/// its problem.
fn only(r: &VerifyReport, store: &str, key: &str) -> Problem {
    assert_eq!(r.violations.len(), 1, "{r}");
    let v = &r.violations[0];
    assert_eq!((v.store, v.key.as_str()), (store, key), "{r}");
    v.problem.clone()
}

// ------------------------------------------------------------------ clean stores

#[tokio::test]
async fn a_clean_server_bundle_verifies_ok_through_its_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let b = f
        .initialize(AT, &server(dir.path(), Arc::clone(&clock)))
        .await
        .unwrap();
    let empty = b.verify().await.unwrap();
    assert!(empty.is_ok(), "{empty}");
    assert_eq!(empty.checked.len(), 4, "{empty}");
    populate(&b).await;

    let r = b.verify().await.unwrap();
    assert!(r.is_ok(), "{r}");
    let records = |r: &VerifyReport, s: &str| r.checked_in(s).map(|c| c.records);
    assert_eq!(records(&r, "keystore"), Some(KEYSTORE_RECORDS));
    assert_eq!(records(&r, "commit log"), Some(COMMIT_ENTRIES));
    assert_eq!(records(&r, "access log"), Some(ACCESS_ENTRIES));
    assert_eq!(records(&r, "notification keystore"), Some(NOTIFICATIONS));
    // Records, every time index entry (1 expiry, 1 availability; no creation index
    // since format 3), counter.
    assert_eq!(
        r.checked_in("keystore").map(|c| c.entries),
        Some(13 + 2 + 1)
    );
    assert_eq!(r.orphan_commit_entries, 0);

    // Reopened: the same.
    f.close().await;
    let b = f
        .initialize(AT, &server(dir.path(), Arc::clone(&clock)))
        .await
        .unwrap();
    assert_eq!(b.verify().await.unwrap(), r);

    // Expiry, compaction of every store, and clear keep every invariant.
    clock.advance(10 * 60_000);
    let ks = b.key_value_store();
    assert!(ks.delete_expired_keys().await.unwrap());
    assert!(!ks.exists("ttl.app@alice").await.unwrap());
    let log = b.commit_log().unwrap();
    assert_eq!(drain(log.compact(false).await.unwrap()).await, 0);
    let al = b.access_log().unwrap();
    assert_eq!(drain(al.compact(false).await.unwrap()).await, 2);
    let nk = b.notification_keystore().unwrap();
    assert_eq!(drain(nk.compact(false).await.unwrap()).await, 4);
    let r = b.verify().await.unwrap();
    assert!(r.is_ok(), "{r}");
    assert_eq!(records(&r, "keystore"), Some(KEYSTORE_RECORDS - 1));
    assert_eq!(records(&r, "notification keystore"), Some(0));
    assert_eq!(records(&r, "access log"), Some(ACCESS_ENTRIES - 2));

    b.clear().await.unwrap();
    let r = b.verify().await.unwrap();
    assert!(r.is_ok(), "{r}");
    assert!(r.checked.iter().all(|c| c.records == 0), "{r}");
    f.close().await;
}

#[tokio::test]
async fn a_clean_client_bundle_verifies_ok() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = SledPersistenceConfig::client_defaults(dir.path().join("keys"))
        .with_cache_capacity(4 * 1024 * 1024);
    let b = f.initialize(AT, &cfg).await.unwrap();
    let ks = b.key_value_store();
    for i in 0..20 {
        ks.put(
            &format!("c{i}.app@alice"),
            with_meta("x", ttl(1_000 + i)),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    ks.remove("c3.app@alice", RemoveOptions::default())
        .await
        .unwrap();
    let r = b.verify().await.unwrap();
    assert!(r.is_ok(), "{r}");
    assert_eq!(
        r.checked.len(),
        2,
        "keystore and its (empty) commit log: {r}"
    );
    assert_eq!(r.checked_in("keystore").map(|c| c.records), Some(19));
    assert_eq!(r.checked_in("commit log").map(|c| c.records), Some(0));
    f.close().await;
}

#[tokio::test]
async fn orphan_commit_entries_are_counted_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let clock = Arc::new(ManualClock::new(T0));
    let b = f.initialize(AT, &server(dir.path(), clock)).await.unwrap();
    let log = b.commit_log().unwrap();
    log.commit("ghost.app@alice", CommitOp::Update, None)
        .await
        .unwrap();
    log.commit("gone.app@alice", CommitOp::Delete, None)
        .await
        .unwrap();
    let r = b.verify().await.unwrap();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.orphan_commit_entries, 1, "the DELETE is not an orphan");
    f.close().await;
}

#[tokio::test]
async fn a_closed_bundle_is_store_closed() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let clock = Arc::new(ManualClock::new(T0));
    let b = f.initialize(AT, &server(dir.path(), clock)).await.unwrap();
    b.close().await;
    assert!(matches!(
        b.verify().await,
        Err(PersistenceError::StoreClosed { .. })
    ));
}

// ------------------------------------------------------------------ keystore damage

#[tokio::test]
async fn garbage_records_are_undecodable_at_their_key() {
    let r = damaged("keys", "keystore", |t| {
        t.insert(b"dk1.app@alice", &[1u8, 0xff, 0xff, 0xff][..])
            .unwrap();
        t.insert(b"dk2.app@alice", &[9u8, 1, 2][..]).unwrap();
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 2, "{r}");
    for (i, key) in ["k1.app@alice", "k2.app@alice"].iter().enumerate() {
        assert_eq!((f[i].0, f[i].1.as_str()), ("keystore", *key));
        assert!(matches!(f[i].2, Problem::Undecodable { .. }), "{r}");
    }
}

#[tokio::test]
async fn a_missing_expiry_index_entry_is_reported_at_its_record() {
    let r = damaged("keys", "keystore", |t| {
        let k = find(t, b"e", b"ttl.app@alice");
        t.remove(k).unwrap();
    })
    .await;
    let p = only(&r, "keystore", "ttl.app@alice");
    assert!(
        matches!(&p, Problem::MissingEntry { entry } if entry.starts_with("expiry index entry")),
        "{p}"
    );
}

#[tokio::test]
async fn extra_and_misdated_index_entries_are_stray() {
    let r = damaged("keys", "keystore", |t| {
        // An entry for a key without a record.
        t.insert(cat(&[b"e", &instant(T0), b"ghost.app@alice"]), &[][..])
            .unwrap();
        // An availability entry for a record that has no available_at.
        t.insert(cat(&[b"a", &instant(T0), b"k2.app@alice"]), &[][..])
            .unwrap();
        // The availability entry of ttb moved to another instant.
        let k = find(t, b"a", b"ttb.app@alice");
        t.remove(&k).unwrap();
        t.insert(
            cat(&[b"a", &instant(T0.plus_millis(5)), b"ttb.app@alice"]),
            &[][..],
        )
        .unwrap();
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 4, "{r}");
    let at = |key: &str| f.iter().filter(|v| v.1 == key).collect::<Vec<_>>();
    assert!(matches!(
        at("ghost.app@alice")[..],
        [("keystore", _, Problem::StrayEntry { .. })]
    ));
    assert!(matches!(
        at("k2.app@alice")[..],
        [("keystore", _, Problem::StrayEntry { .. })]
    ));
    let ttb = at("ttb.app@alice");
    assert_eq!(ttb.len(), 2, "{r}");
    assert!(ttb.iter().any(
        |v| matches!(&v.2, Problem::MissingEntry { entry } if entry.starts_with("availability"))
    ));
    assert!(ttb.iter().any(
        |v| matches!(&v.2, Problem::StrayEntry { entry, .. } if entry.starts_with("availability"))
    ));
}

#[tokio::test]
async fn a_wrong_key_count_is_a_counter_mismatch() {
    let r = damaged("keys", "keystore", |t| {
        set_counts(t, 99, COMMIT_ENTRIES, hwm_of(t));
    })
    .await;
    assert_eq!(
        only(&r, "keystore", "key_count"),
        Problem::CounterMismatch {
            stored: 99,
            actual: KEYSTORE_RECORDS
        }
    );
}

#[tokio::test]
async fn wrong_counts_on_the_newest_entrys_index_value_are_a_counter_mismatch() {
    let r = damaged("keys", "keystore", |t| {
        // The newest entry's index value carries the counts (no `mcounts` outranks it).
        t.remove(b"mcounts").unwrap();
        let (_, newest) = t.range(&b"c"[..]..&b"d"[..]).next_back().unwrap().unwrap();
        let entry: CommitEntry = codec::decode(&newest, "test", &String::new).unwrap();
        let index = cat(&[b"k", entry.at_key.as_bytes()]);
        let v = t.get(&index).unwrap().unwrap();
        assert!(v.len() > 8, "the newest entry carries the counts");
        // The id, then the counts as one-byte varints (both are below 128 here).
        let wrong = cat(&[&v[..8], &[KEYSTORE_RECORDS as u8, 7]]);
        t.insert(index, wrong).unwrap();
    })
    .await;
    assert_eq!(
        only(&r, "commit log", "cl_count"),
        Problem::CounterMismatch {
            stored: 7,
            actual: COMMIT_ENTRIES
        }
    );
}

#[tokio::test]
async fn an_unknown_key_in_the_keystore_tree_is_malformed() {
    let r = damaged("keys", "keystore", |t| {
        t.insert(b"zzz", &b"?"[..]).unwrap();
    })
    .await;
    assert!(matches!(
        only(&r, "keystore", "zzz"),
        Problem::Malformed { .. }
    ));
}

// ------------------------------------------------------------------ commit-log damage

#[tokio::test]
async fn a_dangling_latest_entry_index_is_stray() {
    let r = damaged("keys", "keystore", |t| {
        t.insert(b"kghost.app@alice", &9_999u64.to_be_bytes()[..])
            .unwrap();
    })
    .await;
    let p = only(&r, "commit log", "ghost.app@alice");
    assert!(
        matches!(&p, Problem::StrayEntry { reason, .. } if reason.contains("9999")),
        "{p}"
    );
}

#[tokio::test]
async fn a_second_entry_for_an_at_key_is_a_duplicate() {
    let mut planted = 0;
    let mut retained = 0;
    let r = damaged("keys", "keystore", |t| {
        retained = id_of(t, "k1.app@alice") as i64;
        let hwm = hwm_of(t) as u64;
        planted = hwm as i64 + 1;
        let e = CommitEntry::new("k1.app@alice", CommitOp::Update, T0, planted);
        // Counters kept consistent, so only the duplicate itself is wrong.
        t.insert(
            cat(&[b"c", &(planted as u64).to_be_bytes()]),
            codec::encode(&e),
        )
        .unwrap();
        t.insert(b"mhwm", &(hwm + 1).to_be_bytes()[..]).unwrap();
        set_counts(t, KEYSTORE_RECORDS, COMMIT_ENTRIES + 1, planted);
    })
    .await;
    assert_eq!(
        only(&r, "commit log", &format!("commit id {planted}")),
        Problem::DuplicateEntry {
            at_key: "k1.app@alice".into(),
            retained
        }
    );
}

#[tokio::test]
async fn an_entry_without_its_latest_entry_index_is_reported() {
    let mut id = 0;
    let r = damaged("keys", "keystore", |t| {
        id = id_of(t, "k2.app@alice");
        t.remove(b"kk2.app@alice").unwrap();
    })
    .await;
    assert!(matches!(
        only(&r, "commit log", &format!("commit id {id}")),
        Problem::MissingEntry { .. }
    ));
}

#[tokio::test]
async fn an_index_naming_another_keys_entry_is_stray() {
    let (mut k2, mut k3) = (0, 0);
    let r = damaged("keys", "keystore", |t| {
        k2 = id_of(t, "k2.app@alice");
        k3 = id_of(t, "k3.app@alice");
        t.insert(b"kk2.app@alice", &k3.to_be_bytes()[..]).unwrap();
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 2, "{r}");
    assert_eq!(
        f[0],
        (
            "commit log",
            format!("commit id {k2}"),
            Problem::DuplicateEntry {
                at_key: "k2.app@alice".into(),
                retained: k3 as i64
            }
        )
    );
    assert_eq!((f[1].0, f[1].1.as_str()), ("commit log", "k2.app@alice"));
    assert!(matches!(f[1].2, Problem::StrayEntry { .. }), "{r}");
}

#[tokio::test]
async fn wrong_commit_counters_are_reported() {
    // A stored mark below the newest id is not damage: the mark is persisted lazily and
    // the newest entry carries it, so reopening recovers it. A wrong entry count is.
    let r = damaged("keys", "keystore", |t| {
        let hwm = hwm_of(t);
        t.insert(b"mhwm", &0u64.to_be_bytes()[..]).unwrap();
        set_counts(t, KEYSTORE_RECORDS, 3, hwm);
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(
        f[0],
        (
            "commit log",
            "cl_count".into(),
            Problem::CounterMismatch {
                stored: 3,
                actual: COMMIT_ENTRIES
            }
        )
    );
}

#[tokio::test]
async fn a_garbage_commit_entry_is_undecodable_at_its_id() {
    let mut id = 0;
    let r = damaged("keys", "keystore", |t| {
        id = id_of(t, "k4.app@alice");
        t.insert(cat(&[b"c", &id.to_be_bytes()]), &[1u8, 0x80][..])
            .unwrap();
    })
    .await;
    assert!(matches!(
        only(&r, "commit log", &format!("commit id {id}")),
        Problem::Undecodable { .. }
    ));
}

// ------------------------------------------------------------------ access-log damage

fn al_entry_key(id: u64) -> Vec<u8> {
    cat(&[b"e", &id.to_be_bytes()])
}

#[tokio::test]
async fn a_garbage_access_log_entry_is_undecodable() {
    let r = damaged("access_log", "access_log", |t| {
        t.insert(al_entry_key(0), &[1u8, 0xff, 0xff][..]).unwrap();
    })
    .await;
    assert!(matches!(
        only(&r, "access log", "entry 0"),
        Problem::Undecodable { .. }
    ));
}

#[tokio::test]
async fn a_wrong_tally_is_reported_at_its_name() {
    let r = damaged("access_log", "access_log", |t| {
        let v = t.get(b"ca@bob").unwrap().unwrap();
        let mut v = v.to_vec();
        v[..8].copy_from_slice(&4u64.to_be_bytes());
        t.insert(b"ca@bob", v).unwrap();
    })
    .await;
    assert!(
        r.violations
            .iter()
            .all(|v| v.store == "access log" && v.key == "@bob"),
        "{r}"
    );
    assert!(r.violations.iter().any(|v| v.problem
        == Problem::CounterMismatch {
            stored: 4,
            actual: 3
        }));
    // The rank entry no longer matches its tally, and the tally lacks its rank entry.
    assert_eq!(r.violations.len(), 3, "{r}");
}

#[tokio::test]
async fn a_missing_occurrence_is_reported_at_the_entry_and_the_tally() {
    let r = damaged("access_log", "access_log", |t| {
        // @carol's one pol entry is entry 3.
        let k = find(t, b"oa\0\0\0\x06@carol", &3u64.to_be_bytes());
        t.remove(k).unwrap();
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 2, "{r}");
    assert!(f
        .iter()
        .any(|v| v.1 == "@carol" && matches!(v.2, Problem::StrayEntry { .. })));
    assert!(f.iter().any(|v| v.1 == "entry 3"
        && matches!(&v.2, Problem::MissingEntry { entry } if entry.contains("occurrence"))));
}

#[tokio::test]
async fn stray_pkam_entries_and_wrong_access_counters_are_reported() {
    let r = damaged("access_log", "access_log", |t| {
        t.insert(cat(&[b"p", &instant(T0), &9_999u64.to_be_bytes()]), &[][..])
            .unwrap();
        t.insert(b"mentry_count", &1u64.to_be_bytes()[..]).unwrap();
        t.insert(b"mnext_id", &2u64.to_be_bytes()[..]).unwrap();
    })
    .await;
    let f = found(&r);
    assert_eq!(f.len(), 3, "{r}");
    assert!(f.contains(&(
        "access log",
        "entry_count".into(),
        Problem::CounterMismatch {
            stored: 1,
            actual: ACCESS_ENTRIES
        }
    )));
    assert!(f.contains(&(
        "access log",
        "next_id".into(),
        Problem::HighWaterMarkBelow {
            hwm: 2,
            highest_id: ACCESS_ENTRIES as i64 - 1
        }
    )));
    assert!(f
        .iter()
        .any(|v| v.1 == "entry 9999" && matches!(v.2, Problem::StrayEntry { .. })));
}

// ------------------------------------------------------------------ notification damage

#[tokio::test]
async fn a_garbage_notification_is_undecodable_at_its_id() {
    let r = damaged("notifications", "notifications", |t| {
        t.insert(b"nn1", &[1u8, 7][..]).unwrap();
    })
    .await;
    assert!(matches!(
        only(&r, "notification keystore", "n1"),
        Problem::Undecodable { .. }
    ));
}

#[tokio::test]
async fn notification_index_damage_is_reported_at_its_id() {
    let r = damaged("notifications", "notifications", |t| {
        // n2 loses its expiry index entry.
        let k = find(t, b"x", b"n2");
        t.remove(k).unwrap();
        // n3 is filed under another instant than its effective expiry.
        t.insert(b"yn3", &instant(T0)[..]).unwrap();
        // Entries for an id without a notification.
        t.insert(b"yghost", &instant(T0)[..]).unwrap();
        t.insert(cat(&[b"x", &instant(T0), b"ghost"]), &[][..])
            .unwrap();
        t.insert(b"mentry_count", &7u64.to_be_bytes()[..]).unwrap();
    })
    .await;
    let f = found(&r);
    let at = |key: &str| {
        f.iter()
            .filter(|v| v.1 == key)
            .map(|v| &v.2)
            .collect::<Vec<_>>()
    };
    assert!(f.iter().all(|v| v.0 == "notification keystore"), "{r}");
    assert!(
        matches!(at("n2")[..], [Problem::MissingEntry { .. }]),
        "{r}"
    );
    // n3: the record disagrees with its filed expiry, and its index entry with it too.
    assert_eq!(at("n3").len(), 2, "{r}");
    assert!(at("n3")
        .iter()
        .all(|p| matches!(p, Problem::StrayEntry { .. })));
    assert_eq!(at("ghost").len(), 2, "{r}");
    assert_eq!(
        at("entry_count"),
        [&Problem::CounterMismatch {
            stored: 7,
            actual: NOTIFICATIONS
        }]
    );
    assert_eq!(f.len(), 6, "{r}");
}

// ------------------------------------------------------------------ arbitrary bytes

const PREFIXES: &[(&str, &str, &[u8])] = &[
    ("keys", "keystore", b"deaCckz"),
    ("access_log", "access_log", b"ecropz"),
    ("notifications", "notifications", b"nxyz"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Arbitrary keys and values planted in every tree never make verify panic or fail:
    /// they come back as violations.
    #[test]
    fn arbitrary_bytes_in_any_tree_are_reported_never_a_panic(
        plants in prop::collection::vec(
            (0usize..3, 0usize..8, prop::collection::vec(any::<u8>(), 0..24),
             prop::collection::vec(any::<u8>(), 0..24)),
            1..40,
        )
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(build(dir.path()));
        for (sub, tree, prefixes) in PREFIXES {
            edit_raw_tree(&dir.path().join(sub), tree, |t| {
                for (which, p, k, v) in &plants {
                    if PREFIXES[*which].1 != *tree {
                        continue;
                    }
                    let prefix = prefixes[p % prefixes.len()];
                    let key = cat(&[&[prefix], k]);
                    t.insert(key, v.clone()).unwrap();
                }
            });
        }
        let report = rt.block_on(reopen_and_verify(dir.path()));
        prop_assert_eq!(report.checked.len(), 4);
        // Not every plant is damage (an empty `e`... value under an unknown key is), but a
        // planted record or entry that does not decode always is; the report is complete.
        let _ = report.to_string();
    }
}
