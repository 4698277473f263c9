//! Concurrency: one server bundle under a mix of everything at once — tokio tasks and OS
//! threads writing the keystore (put, put_meta, remove, remove_many, transactions), expiry
//! sweeps driven by a moving manual clock, commit-log compaction, access-log inserts and
//! compaction, notification puts and sweeps, `verify` while all of that runs, and sync
//! readers paging through the commit log with `iterate(from)` on OS threads.
//!
//! Checked: every call succeeds; ids returned to one caller strictly increase; a sync
//! reader's ids strictly increase within and across pages, and an id at or below what it
//! has already seen never appears later (a full rescan only ever loses entries); `verify`
//! is clean during the load and at the end, with no orphan commit entry and no DELETE entry
//! for a present key. The totals are printed.
//!
//! Sized to run in a few seconds in debug; `ATPS_CONCURRENCY_SCALE` multiplies the work.

mod common;

use at_persistence_secondary_server::model::{
    AtData, AtMetaData, AtNotificationBuilder, Clock, CommitEntry, CommitOp, ManualClock,
    NotificationType, Timestamp,
};
use at_persistence_secondary_server::sled::SledPersistenceFactory;
use at_persistence_secondary_server::store::{
    Bundle, DynKeyStore, IterateOptions, KeyValueStoreExt, PersistenceFactory, RemoveOptions,
    WriteOptions,
};
use common::{collect_ok, server_layout, T0};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const KEYS: u64 = 48;
const WRITER_TASKS: u64 = 4;
const WRITER_THREADS: u64 = 2;
const READER_THREADS: usize = 2;
/// Entries a sync reader asks for per page.
const PAGE: usize = 25;

fn scale() -> u64 {
    std::env::var("ATPS_CONCURRENCY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// xorshift64*: a deterministic stream per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).max(1))
    }
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn key(i: u64) -> String {
    format!("k{i}.load@alice")
}

/// Operation counters, printed at the end.
#[derive(Default)]
struct Totals {
    keystore_writes: AtomicU64,
    sweeps: AtomicU64,
    compactions: AtomicU64,
    access_inserts: AtomicU64,
    notification_ops: AtomicU64,
    verifications: AtomicU64,
    pages: AtomicU64,
    entries_read: AtomicU64,
    rescans: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One random keystore write; returns the commit id when it made one.
async fn keystore_op(ks: &DynKeyStore, rng: &mut Rng, tag: &str, seq: u64) -> Option<i64> {
    let k = key(rng.below(KEYS));
    match rng.below(10) {
        0..=3 => {
            let ttl = (rng.below(3) == 0).then(|| 500 + rng.below(4_000) as i64);
            let v = AtData {
                data: Some(format!("{tag}-{seq}")),
                meta_data: ttl.map(|ttl| AtMetaData {
                    ttl: Some(ttl),
                    ..Default::default()
                }),
                key: None,
            };
            ks.put(&k, v, WriteOptions::default()).await.unwrap()
        }
        4 => {
            let meta = AtMetaData {
                data_signature: Some(format!("{tag}-{seq}")),
                ..Default::default()
            };
            ks.put_meta(&k, meta, WriteOptions::default())
                .await
                .unwrap()
        }
        5 => ks
            .put(&k, AtData::new("quiet"), WriteOptions::skip_commit())
            .await
            .unwrap()
            .filter(|&id| id >= 0),
        6..=7 => ks.remove(&k, RemoveOptions::default()).await.unwrap(),
        8 => {
            let others: Vec<String> = (0..3).map(|_| key(rng.below(KEYS))).collect();
            let refs: Vec<&str> = others.iter().map(String::as_str).collect();
            ks.remove_many(&refs, rng.below(2) == 0).await.unwrap();
            None
        }
        _ => {
            let (a, b) = (key(rng.below(KEYS)), key(rng.below(KEYS)));
            let value = format!("{tag}-{seq}-txn");
            ks.as_ref()
                .transaction(|txn| async move {
                    txn.put(&a, AtData::new(value)).await?;
                    txn.remove(&b).await?;
                    Ok(())
                })
                .await
                .unwrap();
            None
        }
    }
}

/// Checks that ids handed to one caller strictly increase.
fn check_rising(last: &mut i64, id: Option<i64>, who: &str) {
    if let Some(id) = id {
        assert!(id > *last, "{who}: id {id} after {last}");
        *last = id;
    }
}

/// A sync reader: pages from the last id seen on, and every few pages rescans from 0 to
/// check that nothing at or below the ids already seen appeared since.
fn sync_reader(
    handle: tokio::runtime::Handle,
    bundle: Arc<Bundle>,
    done: Arc<AtomicBool>,
    totals: Arc<Totals>,
) {
    let log = bundle.commit_log().unwrap();
    let mut last = -1i64;
    let mut known: BTreeSet<i64> = BTreeSet::new();
    let mut pages = 0u64;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let page: Vec<CommitEntry> = handle.block_on(async {
            log.iterate(IterateOptions::from(last + 1))
                .await
                .unwrap()
                .take(PAGE)
                .map(|e| e.unwrap())
                .collect()
                .await
        });
        let mut prev = last;
        for e in &page {
            let id = e.commit_id.unwrap();
            assert!(
                id > prev,
                "sync reader: id {id} after {prev} (page from {})",
                last + 1
            );
            prev = id;
        }
        bump(&totals.pages);
        totals
            .entries_read
            .fetch_add(page.len() as u64, Ordering::Relaxed);
        last = prev;
        pages += 1;
        if pages.is_multiple_of(8) {
            // Everything at or below `last` now was there at the previous rescan or has
            // been read since; ids are never handed out below the high-water mark.
            let all: Vec<i64> = handle.block_on(async {
                log.iterate(IterateOptions::default())
                    .await
                    .unwrap()
                    .map(|e| e.unwrap().commit_id.unwrap())
                    .collect()
                    .await
            });
            let seen_max = known.last().copied().unwrap_or(-1);
            for id in all.iter().filter(|&&id| id <= seen_max) {
                assert!(known.contains(id), "id {id} appeared below {seen_max}");
            }
            known = all.into_iter().filter(|&id| id <= last).collect();
            bump(&totals.rescans);
        }
        if finished && page.len() < PAGE {
            return;
        }
        if page.is_empty() {
            // Caught up: let the writers make progress.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

fn notification(
    id: String,
    ttl: i64,
    now: Timestamp,
) -> at_persistence_secondary_server::model::AtNotification {
    AtNotificationBuilder {
        id,
        ttl: Some(ttl),
        notification_type: Some(NotificationType::Received),
        from_at_sign: Some("@bob".into()),
        ..AtNotificationBuilder::new()
    }
    .build_at(now)
}

#[test]
fn everything_at_once_keeps_every_invariant() {
    let scale = scale();
    let ops_per_task = 1000 * scale;
    let ops_per_thread = 500 * scale;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let factory = SledPersistenceFactory::new();
    let cfg = server_layout(dir.path())
        .with_cache_capacity(16 * 1024 * 1024)
        .with_clock(clock.clone());
    let bundle = rt.block_on(factory.initialize("@alice", &cfg)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());

    // Readers on OS threads.
    let readers: Vec<_> = (0..READER_THREADS)
        .map(|_| {
            let (h, b, d, t) = (
                rt.handle().clone(),
                Arc::clone(&bundle),
                Arc::clone(&done),
                Arc::clone(&totals),
            );
            std::thread::spawn(move || sync_reader(h, b, d, t))
        })
        .collect();

    // Keystore writers: tokio tasks and OS threads.
    let mut writers = Vec::new();
    for w in 0..WRITER_TASKS {
        let (ks, t) = (Arc::clone(bundle.key_value_store()), Arc::clone(&totals));
        writers.push(rt.spawn(async move {
            let mut rng = Rng::new(w + 1);
            let mut last = -1;
            for seq in 0..ops_per_task {
                let id = keystore_op(&ks, &mut rng, &format!("task{w}"), seq).await;
                check_rising(&mut last, id, "writer task");
                bump(&t.keystore_writes);
            }
        }));
    }
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|w| {
            let (h, ks, t) = (
                rt.handle().clone(),
                Arc::clone(bundle.key_value_store()),
                Arc::clone(&totals),
            );
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + w);
                let mut last = -1;
                for seq in 0..ops_per_thread {
                    let id = h.block_on(keystore_op(&ks, &mut rng, &format!("thread{w}"), seq));
                    check_rising(&mut last, id, "writer thread");
                    bump(&t.keystore_writes);
                }
            })
        })
        .collect();
    // Access-log inserts and notification puts.
    {
        let (al, t) = (
            Arc::clone(bundle.access_log().unwrap()),
            Arc::clone(&totals),
        );
        writers.push(rt.spawn(async move {
            let mut rng = Rng::new(7);
            let mut last = -1i64;
            for _ in 0..ops_per_task {
                let who = format!("@p{}", rng.below(6));
                let id = match rng.below(3) {
                    0 => al.insert(&who, "pol", None).await,
                    1 => al.insert(&who, "lookup", Some(&key(rng.below(8)))).await,
                    _ => al.insert(&who, "pkam", None).await,
                }
                .unwrap();
                check_rising(&mut last, Some(id as i64), "access log");
                bump(&t.access_inserts);
            }
        }));
        let (nk, t, c) = (
            Arc::clone(bundle.notification_keystore().unwrap()),
            Arc::clone(&totals),
            Arc::clone(&clock),
        );
        writers.push(rt.spawn(async move {
            let mut rng = Rng::new(9);
            for i in 0..ops_per_task {
                let id = format!("n{}", rng.below(40));
                if rng.below(5) == 0 {
                    nk.remove(&id, RemoveOptions::default()).await.unwrap();
                } else {
                    let n = notification(id.clone(), 1_000 + rng.below(5_000) as i64, c.now());
                    nk.put(&id, n, WriteOptions::default()).await.unwrap();
                }
                let _ = i;
                bump(&t.notification_ops);
            }
        }));
    }

    // Background work until the writers are done: sweeps with a moving clock, compactions,
    // verification.
    let mut background = Vec::new();
    {
        let (b, d, t, c) = (
            Arc::clone(&bundle),
            Arc::clone(&done),
            Arc::clone(&totals),
            Arc::clone(&clock),
        );
        background.push(rt.spawn(async move {
            while !d.load(Ordering::SeqCst) {
                c.advance(250);
                assert!(b.key_value_store().delete_expired_keys().await.unwrap());
                let nk = b.notification_keystore().unwrap();
                assert!(nk.delete_expired_keys().await.unwrap());
                t.sweeps.fetch_add(2, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }));
    }
    {
        let (b, d, t) = (Arc::clone(&bundle), Arc::clone(&done), Arc::clone(&totals));
        background.push(rt.spawn(async move {
            while !d.load(Ordering::SeqCst) {
                let log = b.commit_log().unwrap();
                let removed: Vec<_> = log.compact(false).await.unwrap().collect().await;
                assert!(removed.iter().all(|r| r.is_ok()));
                let al = b.access_log().unwrap();
                let removed: Vec<_> = al.compact(false).await.unwrap().collect().await;
                assert!(removed.iter().all(|r| r.is_ok()));
                let nk = b.notification_keystore().unwrap();
                let removed: Vec<_> = nk.compact(false).await.unwrap().collect().await;
                assert!(removed.iter().all(|r| r.is_ok()));
                t.compactions.fetch_add(3, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }));
    }
    {
        let (b, d, t) = (Arc::clone(&bundle), Arc::clone(&done), Arc::clone(&totals));
        background.push(rt.spawn(async move {
            while !d.load(Ordering::SeqCst) {
                let r = b.verify().await.unwrap();
                assert!(r.is_ok(), "verify during the load:\n{r}");
                bump(&t.verifications);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }));
    }

    for w in writers {
        rt.block_on(w).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for b in background {
        rt.block_on(b).unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }

    // The end state.
    rt.block_on(async {
        let report = bundle.verify().await.unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.orphan_commit_entries, 0, "{report}");
        bump(&totals.verifications);
        let ks = bundle.key_value_store();
        let log = bundle.commit_log().unwrap();
        let entries: Vec<CommitEntry> =
            collect_ok(log.iterate(IterateOptions::default()).await.unwrap()).await;
        assert_eq!(entries.len() as u64, log.entries_count().await.unwrap());
        let hwm = log.last_committed_sequence_number().await.unwrap();
        for e in &entries {
            assert!(e.commit_id.unwrap() <= hwm);
            if e.operation == CommitOp::Delete {
                assert!(
                    !ks.exists(&e.at_key).await.unwrap(),
                    "DELETE for present {}",
                    e.at_key
                );
            }
        }
        println!("{report}");
    });
    let t = &totals;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let ops = get(&t.keystore_writes)
        + get(&t.sweeps)
        + get(&t.compactions)
        + get(&t.access_inserts)
        + get(&t.notification_ops)
        + get(&t.verifications)
        + get(&t.pages)
        + get(&t.rescans);
    println!(
        "concurrency: {ops} operations checked: {} keystore writes, {} sweeps, {} compactions, \
         {} access-log inserts, {} notification ops, {} verifications, {} reader pages \
         ({} entries, {} rescans)",
        get(&t.keystore_writes),
        get(&t.sweeps),
        get(&t.compactions),
        get(&t.access_inserts),
        get(&t.notification_ops),
        get(&t.verifications),
        get(&t.pages),
        get(&t.entries_read),
        get(&t.rescans),
    );
    assert!(get(&t.verifications) > 1, "verify ran during the load");
    rt.block_on(factory.close());
}
