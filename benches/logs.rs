//! The access log and the notification keystore beside raw-sled equivalents, at N = 10k
//! and 100k entries (1M with `ATPS_BENCH_BIG=1`), periodic flushing.
//!
//! ```text
//! cargo bench --bench logs
//! ```
//!
//! Baselines: an access-log insert against the minimal atomic append on raw sled (entry plus
//! the two counters in one batch; the crate also maintains the tallies and rank index that
//! make most-visited a prefix read); most-visited against a raw prefix read of as many keys;
//! a notification put against one raw batch writing the crate's four keys (record, expiry
//! index, filed expiry, counter); the sweep against a raw range read of the expired index
//! plus one batch removing the same keys.

mod common;

use at_persistence_secondary_server::model::{
    codec, AccessLogEntry, AtNotification, AtNotificationBuilder, NotificationType, Timestamp,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    AccessLog, NotificationKeystore, PersistenceFactory, WriteOptions,
};
use common::*;
use criterion::{Criterion, SamplingMode, Throughput};
use std::cell::{OnceCell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// An access log and a notification keystore (the keystore is opened too, as always).
struct Logs {
    _dir: tempfile::TempDir,
    _factory: SledPersistenceFactory,
    al: Arc<dyn AccessLog>,
    nk: Arc<dyn NotificationKeystore>,
}

fn at_sign_of(i: usize) -> String {
    format!("@visitor{:05}", i % 1000)
}

fn looked_up(i: usize) -> String {
    key(i % 5000)
}

fn notification(id: &str, expires_at: Option<Timestamp>) -> AtNotification {
    AtNotificationBuilder {
        id: id.to_string(),
        from_at_sign: Some("@bob".into()),
        to_at_sign: Some(AT_SIGN.into()),
        notification: Some("@alice:contact0000000001.app1@bob".into()),
        notification_type: Some(NotificationType::Received),
        at_value: Some(value(7)),
        expires_at,
        ..AtNotificationBuilder::new()
    }
    .build()
}

fn notification_id(i: usize) -> String {
    format!("5f0c6e1a-7d4b-4c7e-9a21-{i:012}")
}

impl Logs {
    async fn filled(n: usize) -> Logs {
        let dir = tempfile::tempdir().expect("tempdir");
        let factory = SledPersistenceFactory::new();
        let config = SledPersistenceConfig::new(dir.path().join("keys"))
            .with_access_log(dir.path().join("access_log"))
            .with_notification_keystore(dir.path().join("notifications"))
            .with_durability(periodic())
            .with_cache_capacity(CACHE);
        let b = factory
            .initialize(AT_SIGN, &config)
            .await
            .expect("initialize");
        let al = Arc::clone(b.access_log().expect("access log"));
        let nk = Arc::clone(b.notification_keystore().expect("notifications"));
        for i in 0..n {
            if i % 2 == 0 {
                al.insert(&at_sign_of(i), "lookup", Some(&looked_up(i)))
                    .await
                    .expect("insert");
            } else {
                al.insert(&at_sign_of(i), "pol", None)
                    .await
                    .expect("insert");
            }
        }
        let mut txn_ids: Vec<usize> = (0..n).collect();
        for chunk in txn_ids.chunks_mut(1000) {
            let txn = nk.begin_transaction().await.expect("txn");
            for &mut i in chunk {
                let id = notification_id(i);
                txn.put(&id, notification(&id, None)).await.expect("put");
            }
            txn.commit().await.expect("commit");
        }
        Logs {
            _dir: dir,
            _factory: factory,
            al,
            nk,
        }
    }
}

/// Raw sled with an access-log-shaped tree and a notification-shaped tree.
struct RawLogs {
    _dir: tempfile::TempDir,
    db: sled::Db,
    access: sled::Tree,
    notes: sled::Tree,
    next_id: u64,
}

fn access_entry(i: usize) -> Vec<u8> {
    codec::encode(&AccessLogEntry {
        from_at_sign: Some(at_sign_of(i)),
        request_date_time: Some(now()),
        verb_name: Some("lookup".into()),
        lookup_key: Some(looked_up(i)),
    })
}

/// Stages `note` the way the crate lays it out: the record, the expiry index entry and the
/// id's expiry instant.
fn stage_note(b: &mut sled::Batch, id: &str, note: &AtNotification) {
    let at = note.expires_at.unwrap_or(Timestamp::EPOCH);
    let inst = ((at.as_millis() as u64) ^ (1u64 << 63)).to_be_bytes();
    b.insert(prefixed(b'n', id.as_bytes()), codec::encode(note));
    b.insert(
        [&b"x"[..], &inst, id.as_bytes()].concat(),
        sled::IVec::default(),
    );
    b.insert(prefixed(b'y', id.as_bytes()), &inst[..]);
}

impl RawLogs {
    fn filled(n: usize) -> RawLogs {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = raw_db(&dir.path().join("db"));
        let access = db.open_tree("access_log").expect("tree");
        let notes = db.open_tree("notifications").expect("tree");
        let mut r = RawLogs {
            _dir: dir,
            db: db.clone(),
            access,
            notes,
            next_id: 0,
        };
        let idx: Vec<usize> = (0..n).collect();
        for chunk in idx.chunks(1000) {
            let mut a = sled::Batch::default();
            let mut b = sled::Batch::default();
            for &i in chunk {
                a.insert(prefixed(b'e', &(i as u64).to_be_bytes()), access_entry(i));
                // A rank-index-shaped key per name (for the top-n prefix read).
                if i < 5000 {
                    a.insert(
                        prefixed(b'r', looked_up(i).as_bytes()),
                        sled::IVec::default(),
                    );
                }
                let id = notification_id(i);
                stage_note(&mut b, &id, &notification(&id, None));
            }
            r.access.apply_batch(a).expect("fill");
            r.notes.apply_batch(b).expect("fill");
        }
        r.next_id = n as u64;
        r
    }
}

/// The data sets of one N, built on first use.
struct Fx<'r> {
    rt: &'r Runtime,
    n: usize,
    ours: OnceCell<Logs>,
    raw: OnceCell<RefCell<RawLogs>>,
}

impl Fx<'_> {
    fn ours(&self) -> &Logs {
        self.ours
            .get_or_init(|| self.rt.block_on(Logs::filled(self.n)))
    }
    fn raw(&self) -> std::cell::RefMut<'_, RawLogs> {
        self.raw
            .get_or_init(|| RefCell::new(RawLogs::filled(self.n)))
            .borrow_mut()
    }
}

fn access_log(c: &mut Criterion, fx: &Fx<'_>) {
    let (rt, n) = (fx.rt, fx.n);
    let name = "access_log_insert";
    let mut g = Group::new(c, name, n);
    g.add("ours", |iters| {
        let al = &fx.ours().al;
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                let i = i as usize;
                al.insert(&at_sign_of(i), "lookup", Some(&looked_up(i)))
                    .await
                    .expect("insert");
            }
            t.elapsed()
        })
    });
    g.add("raw_batch1", |iters| {
        let mut r = fx.raw();
        let d = timed(iters, |i| {
            let id = r.next_id;
            r.next_id += 1;
            let mut b = sled::Batch::default();
            b.insert(prefixed(b'e', &id.to_be_bytes()), access_entry(i as usize));
            b.insert(&b"mnext_id"[..], &(id + 1).to_be_bytes()[..]);
            b.insert(&b"mentry_count"[..], &(id + 1).to_be_bytes()[..]);
            r.access.apply_batch(b).expect("batch");
        });
        // The writes queued in sled's I/O pool are part of the cost.
        let t = Instant::now();
        r.db.flush().expect("flush");
        d + t.elapsed()
    });
    g.finish(RATIOS);

    let name = "access_log_most_visited_10";
    let mut g = Group::new(c, name, n);
    g.add("ours", |iters| {
        let al = &fx.ours().al;
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(al.most_visited_keys(10).await.expect("most visited"));
            }
            t.elapsed()
        })
    });
    g.add("raw", |iters| {
        let r = fx.raw();
        timed(iters, |_| {
            let top: Vec<sled::IVec> = r
                .access
                .range(&b"r"[..]..&b"s"[..])
                .keys()
                .take(10)
                .map(|k| k.expect("key"))
                .collect();
            std::hint::black_box(top);
        })
    });
    g.finish(RATIOS);
}

fn notifications(c: &mut Criterion, fx: &Fx<'_>) {
    let (rt, n) = (fx.rt, fx.n);
    let name = "notification_put";
    let mut g = Group::new(c, name, n);
    g.add("ours", |iters| {
        let nk = &fx.ours().nk;
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                let id = notification_id(spread(i, n));
                nk.put(&id, notification(&id, None), WriteOptions::default())
                    .await
                    .expect("put");
            }
            t.elapsed()
        })
    });
    g.add("raw_batch1", |iters| {
        let r = fx.raw();
        let d = timed(iters, |i| {
            let id = notification_id(spread(i, n));
            let mut b = sled::Batch::default();
            let old = r.notes.get(prefixed(b'y', id.as_bytes())).expect("get");
            if let Some(old) = old {
                b.remove([&b"x"[..], &old, id.as_bytes()].concat());
            }
            stage_note(&mut b, &id, &notification(&id, None));
            b.insert(&b"mentry_count"[..], &(n as u64).to_be_bytes()[..]);
            r.notes.apply_batch(b).expect("batch");
        });
        let t = Instant::now();
        r.db.flush().expect("flush");
        d + t.elapsed()
    });
    g.finish(RATIOS);

    // 1% of N expired: plant them (not timed), then sweep (timed).
    let name = "notification_sweep_1pct";
    let count = n / 100;
    let mut g = Group::new(c, name, n);
    g.inner()
        .throughput(Throughput::Elements(count as u64))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    let past = || now().minus_millis(1000);
    g.add("ours", |iters| {
        let nk = &fx.ours().nk;
        rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txn = nk.begin_transaction().await.expect("txn");
                for j in 0..count {
                    let id = format!("expired-{j:08}");
                    txn.put(&id, notification(&id, Some(past())))
                        .await
                        .expect("put");
                }
                txn.commit().await.expect("commit");
                let t = Instant::now();
                nk.delete_expired_keys().await.expect("sweep");
                total += t.elapsed();
            }
            total
        })
    });
    g.add("raw_batch1", |iters| {
        let r = fx.raw();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let mut b = sled::Batch::default();
            for j in 0..count {
                let id = format!("expired-{j:08}");
                stage_note(&mut b, &id, &notification(&id, Some(past())));
            }
            r.notes.apply_batch(b).expect("plant");
            r.db.flush().expect("flush");
            let t = Instant::now();
            let bound = [
                &b"x"[..],
                &((now().as_millis() as u64) ^ (1u64 << 63)).to_be_bytes(),
            ]
            .concat();
            let mut b = sled::Batch::default();
            for k in r.notes.range(&b"x"[..]..bound.as_slice()).keys() {
                let k = k.expect("key");
                let id = &k[9..];
                b.remove(prefixed(b'n', id));
                b.remove(prefixed(b'y', id));
                b.remove(k);
            }
            r.notes.apply_batch(b).expect("sweep");
            r.db.flush().expect("flush");
            total += t.elapsed();
        }
        total
    });
    g.finish(RATIOS);
}

const RATIOS: &[Ratio] = &[
    Ratio {
        group: "access_log_insert",
        num: "ours",
        den: "raw_batch1",
        note: "vs minimal atomic append",
    },
    Ratio {
        group: "access_log_most_visited_10",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "notification_put",
        num: "ours",
        den: "raw_batch1",
        note: "same four keys",
    },
    Ratio {
        group: "notification_sweep_1pct",
        num: "ours",
        den: "raw_batch1",
        note: "",
    },
];

fn main() {
    let mut c = criterion();
    let rt = runtime();
    for n in sizes() {
        let fx = Fx {
            rt: &rt,
            n,
            ours: OnceCell::new(),
            raw: OnceCell::new(),
        };
        access_log(&mut c, &fx);
        notifications(&mut c, &fx);
    }
    c.final_summary();
    report("logs", RATIOS);
}
