//! The keystore's record cache: a read after any kind of write returns what the write
//! left, with the cache on (the default, and a cache small enough to evict all the time)
//! and off; concurrent readers never get a value older than the last acknowledged write;
//! a closed store answers `StoreClosed` whatever is cached.

mod common;

use at_persistence_secondary_server::model::{AtData, AtMetaData, ManualClock};
use at_persistence_secondary_server::sled::{
    SledPersistenceConfig, SledPersistenceFactory, DEFAULT_RECORD_CACHE_CAPACITY,
};
use at_persistence_secondary_server::store::{
    Bundle, DynKeyStore, KeyValueStoreExt, PersistenceFactory, RemoveOptions, WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{server, T0};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Cache sizes every behaviour is checked with: the default, one small enough that a few
/// dozen records make it evict, and off.
const CAPACITIES: [u64; 3] = [DEFAULT_RECORD_CACHE_CAPACITY, 16 * 1024, 0];

async fn open(config: SledPersistenceConfig) -> (SledPersistenceFactory, Arc<Bundle>) {
    let f = SledPersistenceFactory::new();
    let b = f.initialize("@alice", &config).await.expect("initialize");
    (f, b)
}

fn key(i: usize) -> String {
    format!("public:k{i}.cache@alice")
}

async fn value_of(ks: &DynKeyStore, k: &str) -> Option<String> {
    match ks.get(k).await {
        Ok(d) => Some(d.data.expect("a value")),
        Err(PersistenceError::KeyNotFound { .. }) => None,
        Err(e) => panic!("get {k}: {e}"),
    }
}

/// Reads `k` twice (so a cache holds it), then checks it reads as `expected`.
async fn warm(ks: &DynKeyStore, k: &str, expected: Option<&str>) {
    for _ in 0..2 {
        assert_eq!(value_of(ks, k).await.as_deref(), expected, "{k}");
    }
}

#[tokio::test]
async fn a_read_after_each_kind_of_write_returns_what_the_write_left() {
    for capacity in CAPACITIES {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let config = server(dir.path())
            .with_record_cache_capacity(capacity)
            .with_clock(clock.clone());
        let (f, b) = open(config).await;
        let ks = b.key_value_store();
        let w = WriteOptions::default;
        // Enough other records that the small cache evicts between the steps.
        for i in 100..160 {
            ks.put(&key(i), AtData::new(format!("filler {i}")), w())
                .await
                .unwrap();
            value_of(ks, &key(i)).await;
        }

        let k = key(1);
        ks.put(&k, AtData::new("one"), w()).await.unwrap();
        warm(ks, &k, Some("one")).await;

        // put over a cached record
        ks.put(&k, AtData::new("two"), w()).await.unwrap();
        warm(ks, &k, Some("two")).await;

        // put_meta keeps the value, changes the metadata
        let meta = AtMetaData {
            is_binary: Some(true),
            ..Default::default()
        };
        ks.put_meta(&k, meta, w()).await.unwrap();
        let got = ks.get(&k).await.unwrap();
        assert_eq!(got.data.as_deref(), Some("two"));
        assert_eq!(got.meta_data.unwrap().is_binary, Some(true), "{capacity}");
        warm(ks, &k, Some("two")).await;

        // put_all
        let meta = AtMetaData {
            is_binary: Some(false),
            ..Default::default()
        };
        ks.put_all(&k, AtData::new("three"), meta).await.unwrap();
        warm(ks, &k, Some("three")).await;
        assert_eq!(
            ks.get_meta(&k).await.unwrap().unwrap().is_binary,
            Some(false)
        );

        // remove, then create
        ks.remove(&k, RemoveOptions::default()).await.unwrap();
        warm(ks, &k, None).await;
        ks.create(&k, AtData::new("four"), w()).await.unwrap();
        warm(ks, &k, Some("four")).await;

        // remove_many
        ks.remove_many(&[k.as_str()], false).await.unwrap();
        warm(ks, &k, None).await;

        // a transaction's put and remove
        ks.put(&k, AtData::new("five"), w()).await.unwrap();
        let k2 = key(2);
        ks.put(&k2, AtData::new("other"), w()).await.unwrap();
        warm(ks, &k, Some("five")).await;
        warm(ks, &k2, Some("other")).await;
        let (k_txn, k2_txn) = (k.clone(), k2.clone());
        ks.transaction(move |txn| async move {
            txn.put(&k_txn, AtData::new("six")).await?;
            txn.remove(&k2_txn).await
        })
        .await
        .unwrap();
        warm(ks, &k, Some("six")).await;
        warm(ks, &k2, None).await;

        // restore (migration's write)
        ks.restore(&k, AtData::new("seven")).await.unwrap();
        warm(ks, &k, Some("seven")).await;

        // the expiry sweep
        let ttl = AtMetaData {
            ttl: Some(1_000),
            ..Default::default()
        };
        ks.put_all(&k, AtData::new("eight"), ttl).await.unwrap();
        warm(ks, &k, Some("eight")).await;
        clock.advance(2_000);
        assert!(ks.delete_expired_keys().await.unwrap());
        warm(ks, &k, None).await;

        // get_many and get_meta see the same
        ks.put(&k, AtData::new("nine"), w()).await.unwrap();
        let many = ks.get_many(&[k.as_str(), k2.as_str()]).await.unwrap();
        assert_eq!(many.len(), 1);
        assert_eq!(many[&k].data.as_deref(), Some("nine"));
        ks.put(&k, AtData::new("ten"), w()).await.unwrap();
        let many = ks.get_many(&[k.as_str()]).await.unwrap();
        assert_eq!(many[&k].data.as_deref(), Some("ten"), "{capacity}");

        // the bundle's clear
        warm(ks, &k, Some("ten")).await;
        b.clear().await.unwrap();
        warm(ks, &k, None).await;
        warm(ks, &key(100), None).await;
        assert!(ks.get_meta(&k).await.unwrap().is_none());
        f.close().await;
    }
}

#[tokio::test]
async fn a_closed_store_answers_store_closed_even_for_a_cached_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_f, b) = open(server(dir.path())).await;
    let ks = b.key_value_store().clone();
    let k = key(1);
    ks.put(&k, AtData::new("v"), WriteOptions::default())
        .await
        .unwrap();
    warm(&ks, &k, Some("v")).await;
    b.close().await;
    let err = ks.get(&k).await.unwrap_err();
    assert!(matches!(err, PersistenceError::StoreClosed { .. }), "{err}");
    let err = ks.get_meta(&k).await.unwrap_err();
    assert!(matches!(err, PersistenceError::StoreClosed { .. }), "{err}");
}

#[tokio::test]
async fn the_largest_capacity_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = server(dir.path()).with_record_cache_capacity(u64::MAX);
    assert_eq!(config.record_cache_capacity(), u64::MAX);
    let (f, b) = open(config).await;
    let ks = b.key_value_store();
    ks.put(&key(1), AtData::new("v"), WriteOptions::default())
        .await
        .unwrap();
    warm(ks, &key(1), Some("v")).await;
    f.close().await;
}

/// Writers on their own keys count up; readers on OS threads read any key, checking that
/// the count they get is at least the last one a writer had acknowledged before the read
/// began. A cached copy that outlived a write would read lower.
#[test]
fn concurrent_readers_never_read_behind_an_acknowledged_write() {
    const WRITERS: usize = 4;
    const READERS: usize = 3;
    const PUTS: u64 = 300;
    /// Records read between the counted ones, so the small cache evicts all the time.
    const FILLERS: usize = 120;
    for capacity in [DEFAULT_RECORD_CACHE_CAPACITY, 16 * 1024] {
        let rt = common::runtime();
        let dir = tempfile::tempdir().unwrap();
        let config = common::server_periodic(dir.path()).with_record_cache_capacity(capacity);
        let (f, b) = rt.block_on(open(config));
        let ks = b.key_value_store().clone();
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
        rt.block_on(async {
            for w in 0..WRITERS {
                ks.put(&key(w), AtData::new("0"), WriteOptions::default())
                    .await
                    .unwrap();
            }
            for i in 0..FILLERS {
                let v = AtData::new(format!("{i:0>200}"));
                ks.put(&key(1000 + i), v, WriteOptions::default())
                    .await
                    .unwrap();
            }
        });
        let done = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (ks, acked, done, reads) =
                    (ks.clone(), acked.clone(), done.clone(), reads.clone());
                let handle = rt.handle().clone();
                std::thread::spawn(move || {
                    let mut i = r;
                    while !done.load(Ordering::SeqCst) {
                        let w = i % WRITERS;
                        i += 1;
                        let floor = acked[w].load(Ordering::SeqCst);
                        let got = handle.block_on(ks.get(&key(w))).unwrap();
                        let n: u64 = got.data.unwrap().parse().unwrap();
                        assert!(n >= floor, "read {n} after {floor} was acknowledged");
                        reads.fetch_add(1, Ordering::Relaxed);
                        let filler = handle.block_on(ks.get(&key(1000 + i % FILLERS)));
                        assert!(filler.is_ok());
                    }
                })
            })
            .collect();
        rt.block_on(async {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (ks, acked) = (ks.clone(), acked.clone());
                    tokio::spawn(async move {
                        for n in 1..=PUTS {
                            if n % 10 == 0 {
                                let k = key(w);
                                ks.transaction(move |txn| async move {
                                    txn.put(&k, AtData::new(n.to_string())).await
                                })
                                .await
                                .unwrap();
                            } else {
                                ks.put(
                                    &key(w),
                                    AtData::new(n.to_string()),
                                    WriteOptions::default(),
                                )
                                .await
                                .unwrap();
                            }
                            acked[w].store(n, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
        });
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().expect("a reader found a stale value");
        }
        assert!(reads.load(Ordering::Relaxed) > 0);
        rt.block_on(async {
            for w in 0..WRITERS {
                assert_eq!(value_of(&ks, &key(w)).await, Some(PUTS.to_string()));
            }
            f.close().await;
        });
    }
}
