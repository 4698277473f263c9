//! The keystore's persisted counts (records, retained commit entries): whatever sequence of
//! writes a store sees, reopening it reads counts equal to what it holds, and `verify`
//! agrees. The counts live on the newest commit entry's index value or in `mcounts` (see
//! `src/sled/layout.rs`, "Where the counts live"); these tests drive every kind of write
//! that moves them, including format 1 stores upgraded in place.

mod common;

use at_persistence_secondary_server::model::{AtData, CommitEntry, CommitOp};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, IterateOptions, KeyValueStoreExt, PersistenceFactory, RemoveOptions, WriteOptions,
};
use common::{collect_ok, edit_raw_tree, format_of, open_raw, runtime, server_layout, T0};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

const AT: &str = "@alice";

/// One write (or a reopen) of the generated sequences.
#[derive(Debug, Clone)]
enum Op {
    /// A put of a committed key (`k{n}.app@alice`) or, with `skipped`, of a key the commit
    /// log skips (`local:k{n}@alice`).
    Put {
        n: u8,
        skipped: bool,
    },
    Remove {
        n: u8,
        skipped: bool,
        skip_commit: bool,
    },
    RemoveMany {
        a: u8,
        b: u8,
        skip_commit: bool,
    },
    /// A transaction: a put of `a`, a removal of `b`.
    Txn {
        a: u8,
        b: u8,
    },
    /// A legacy duplicate entry for `k{n}` (the newest id), then the compaction that
    /// removes it (a planted entry is damage `verify` reports until then).
    Plant {
        n: u8,
    },
    Compact,
    Raise,
    /// A replayed entry (the next id) for `k{n}`.
    Replay {
        n: u8,
    },
    Clear,
    Reopen,
}

fn key(n: u8, skipped: bool) -> String {
    if skipped {
        format!("local:k{n}@{}", &AT[1..])
    } else {
        format!("k{n}.app{AT}")
    }
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0u8..5;
    prop_oneof![
        6 => (n.clone(), any::<bool>()).prop_map(|(n, skipped)| Op::Put { n, skipped }),
        3 => (n.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(n, skipped, skip_commit)| Op::Remove { n, skipped, skip_commit }),
        1 => (n.clone(), n.clone(), any::<bool>())
            .prop_map(|(a, b, skip_commit)| Op::RemoveMany { a, b, skip_commit }),
        2 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Txn { a, b }),
        1 => n.clone().prop_map(|n| Op::Plant { n }),
        1 => Just(Op::Compact),
        1 => Just(Op::Raise),
        1 => n.prop_map(|n| Op::Replay { n }),
        1 => Just(Op::Clear),
        3 => Just(Op::Reopen),
    ]
}

async fn open(f: &SledPersistenceFactory, cfg: &SledPersistenceConfig) -> Arc<Bundle> {
    f.initialize(AT, cfg).await.expect("initialize")
}

/// The counts the store reports against what it holds, and a clean `verify`.
async fn check_counts(b: &Bundle, when: &str) {
    let ks = b.key_value_store();
    let held = collect_ok(ks.get_keys(None).await.unwrap()).await.len() as u64;
    assert_eq!(ks.stats().await.unwrap().total_keys, held, "records {when}");
    if let Some(log) = b.commit_log() {
        let entries = collect_ok(log.iterate(IterateOptions::default()).await.unwrap())
            .await
            .len() as u64;
        assert_eq!(
            log.entries_count().await.unwrap(),
            entries,
            "entries {when}"
        );
    }
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "verify {when}: {report}");
}

async fn apply(f: &SledPersistenceFactory, b: &Bundle, op: &Op) {
    let ks = b.key_value_store();
    let log = b.commit_log();
    match *op {
        Op::Put { n, skipped } => {
            ks.put(&key(n, skipped), AtData::new("v"), WriteOptions::default())
                .await
                .unwrap();
        }
        Op::Remove {
            n,
            skipped,
            skip_commit,
        } => {
            let options = RemoveOptions {
                skip_commit,
                deleted_at: None,
            };
            ks.remove(&key(n, skipped), options).await.unwrap();
        }
        Op::RemoveMany { a, b, skip_commit } => {
            let (a, b) = (key(a, false), key(b, true));
            ks.remove_many(&[a.as_str(), b.as_str()], skip_commit)
                .await
                .unwrap();
        }
        Op::Txn { a, b } => {
            let (a, b) = (key(a, false), key(b, false));
            ks.as_ref()
                .transaction(|txn| async move {
                    txn.put(&a, AtData::new("t")).await?;
                    txn.remove(&b).await?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        Op::Plant { n } => {
            let Some(log) = log else { return };
            let id = log.last_committed_sequence_number().await.unwrap() + 1;
            f.test_support_keystore(AT)
                .unwrap()
                .test_support_commit_log()
                .plant_superseded_entry(CommitEntry::new(key(n, false), CommitOp::Update, T0, id))
                .await
                .unwrap();
            collect_ok(log.compact(false).await.unwrap()).await;
        }
        Op::Compact => {
            if let Some(log) = log {
                collect_ok(log.compact(false).await.unwrap()).await;
            }
        }
        Op::Raise => {
            if let Some(log) = log {
                let to = log.last_committed_sequence_number().await.unwrap() + 3;
                log.raise_last_committed_sequence_number(to).await.unwrap();
            }
        }
        Op::Replay { n } => {
            if let Some(log) = log {
                let id = log.last_committed_sequence_number().await.unwrap() + 1;
                log.replay(CommitEntry::new(key(n, false), CommitOp::Update, T0, id))
                    .await
                    .unwrap();
            }
        }
        Op::Clear => b.clear().await.unwrap(),
        Op::Reopen => unreachable!("handled by the driver"),
    }
}

async fn run(cfg: SledPersistenceConfig, ops: Vec<Op>) {
    let mut f = SledPersistenceFactory::new();
    let mut b = open(&f, &cfg).await;
    for (i, op) in ops.iter().enumerate() {
        if let Op::Reopen = op {
            f.close().await;
            drop(b);
            f = SledPersistenceFactory::new();
            b = open(&f, &cfg).await;
            check_counts(&b, &format!("after reopen at step {i} of {ops:?}")).await;
        } else {
            apply(&f, &b, op).await;
        }
    }
    f.close().await;
    drop(b);
    let f = SledPersistenceFactory::new();
    let b = open(&f, &cfg).await;
    check_counts(&b, &format!("at the end of {ops:?}")).await;
    f.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn a_server_store_reopens_with_the_counts_it_holds(ops in prop::collection::vec(op(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(run(server_layout(dir.path()), ops));
    }

    #[test]
    fn a_client_store_reopens_with_the_counts_it_holds(ops in prop::collection::vec(op(), 1..16)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SledPersistenceConfig::client_defaults(dir.path().join("keys"));
        runtime().block_on(run(cfg, ops));
    }
}

/// Rewrites a closed server store's counts into format 1's form: the two counter entries
/// (with the counts it holds), no `mcounts`, 8-byte index values, format record 1.
fn downgrade_to_format_1(dir: &Path, records: u64, entries: u64) {
    let path = dir.join("keys");
    edit_raw_tree(&path, "keystore", |t| {
        t.remove("mcounts").unwrap();
        let index: Vec<_> = t.scan_prefix("k").map(|r| r.unwrap()).collect();
        for (k, v) in index {
            t.insert(k, &v[..8]).unwrap();
        }
        t.insert("mkey_count", &records.to_be_bytes()[..]).unwrap();
        t.insert("mcl_count", &entries.to_be_bytes()[..]).unwrap();
    });
    let db = open_raw(&path);
    db.insert("format_version", &1u32.to_be_bytes()[..])
        .unwrap();
    db.flush().unwrap();
}

fn has_key(dir: &Path, key: &str) -> bool {
    let db = open_raw(&dir.join("keys"));
    db.open_tree("keystore").unwrap().contains_key(key).unwrap()
}

/// Opens the store at `cfg`, puts each of `keys` (value "v"), closes it.
async fn put_and_close(cfg: &SledPersistenceConfig, keys: &[String]) {
    let f = SledPersistenceFactory::new();
    let b = open(&f, cfg).await;
    for k in keys {
        b.key_value_store()
            .put(k, AtData::new("v"), WriteOptions::default())
            .await
            .unwrap();
    }
    f.close().await;
}

/// Opens the closed store at `cfg` and checks its counts (see [`check_counts`]).
async fn reopen_checked(
    cfg: &SledPersistenceConfig,
    when: &str,
) -> (SledPersistenceFactory, Arc<Bundle>) {
    let f = SledPersistenceFactory::new();
    let b = open(&f, cfg).await;
    check_counts(&b, when).await;
    (f, b)
}

#[tokio::test]
async fn a_format_1_store_is_upgraded_at_open_and_keeps_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_layout(dir.path());
    let mut keys: Vec<String> = (0..4).map(|i| key(i, false)).collect();
    keys.push(key(0, true));
    put_and_close(&cfg, &keys).await;
    let (f, b) = reopen_checked(&cfg, "before the downgrade").await;
    b.key_value_store()
        .remove(&key(3, false), RemoveOptions::default())
        .await
        .unwrap();
    f.close().await;
    drop(b);
    // 4 records (k0-k2 and the skipped key), 4 entries (k0-k2 and k3's DELETE).
    downgrade_to_format_1(dir.path(), 4, 4);
    assert_eq!(format_of(&dir.path().join("keys")), 1);

    let (f, b) = reopen_checked(&cfg, "after the upgrade").await;
    assert_eq!(b.key_value_store().stats().await.unwrap().total_keys, 4);
    assert_eq!(b.commit_log().unwrap().entries_count().await.unwrap(), 4);
    f.close().await;
    drop(b);
    // A committed put carries the counts on its index value; format 1's counters stay
    // until the counts are next written on their own.
    put_and_close(&cfg, &[key(4, false)]).await;
    assert_eq!(
        format_of(&dir.path().join("keys")),
        3,
        "the format record was upgraded"
    );
    assert!(has_key(dir.path(), "mkey_count"));

    let (f, b) = reopen_checked(&cfg, "after a committed put").await;
    assert_eq!(b.key_value_store().stats().await.unwrap().total_keys, 5);
    f.close().await;
    drop(b);
    // A skipped key's put changes the counts without a commit entry: `mcounts` replaces
    // format 1's counters in the same batch.
    put_and_close(&cfg, &[key(1, true)]).await;
    assert!(has_key(dir.path(), "mcounts"));
    assert!(!has_key(dir.path(), "mkey_count"));
    assert!(!has_key(dir.path(), "mcl_count"));

    let (f, b) = reopen_checked(&cfg, "after the counts moved to mcounts").await;
    assert_eq!(b.key_value_store().stats().await.unwrap().total_keys, 6);
    assert_eq!(b.commit_log().unwrap().entries_count().await.unwrap(), 5);
    f.close().await;
}

#[tokio::test]
async fn a_new_key_put_writes_no_counter_entry() {
    // The point of the layout: a committed put of a new key writes its record, commit
    // entry and index value, and the counts ride on the index value.
    let dir = tempfile::tempdir().unwrap();
    put_and_close(&server_layout(dir.path()), &[key(0, false)]).await;
    let db = open_raw(&dir.path().join("keys"));
    let t = db.open_tree("keystore").unwrap();
    let counters: Vec<String> = t
        .scan_prefix("m")
        .keys()
        .map(|k| String::from_utf8_lossy(&k.unwrap()).into_owned())
        .collect();
    assert!(counters.is_empty(), "no counter entries: {counters:?}");
    let index = t.get(format!("k{}", key(0, false))).unwrap().unwrap();
    assert_eq!(
        index.as_ref(),
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        "id 0, then 1 record and 1 entry (varints)"
    );
}

#[tokio::test]
async fn malformed_counts_refuse_the_open_with_a_typed_error_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_layout(dir.path());
    put_and_close(&cfg, &[key(0, true)]).await;
    assert!(
        has_key(dir.path(), "mcounts"),
        "a skipped key's put wrote mcounts"
    );
    edit_raw_tree(&dir.path().join("keys"), "keystore", |t| {
        t.insert("mcounts", &[1u8, 2, 3][..]).unwrap();
    });
    let err = SledPersistenceFactory::new()
        .initialize(AT, &cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, at_persistence_secondary_server::PersistenceError::CorruptRecord { key, reason, .. }
            if key == "mcounts" && reason.contains("24 bytes")),
        "{err}"
    );
}
