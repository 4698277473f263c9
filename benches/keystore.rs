//! The keystore, its commit log and the sync query, each operation beside its raw-sled
//! equivalent (same bytes, same process), at N = 10k and 100k keys (1M with
//! `ATPS_BENCH_BIG=1`). The ratios are printed at the end and written to
//! `<target>/criterion/atps-keystore.md`.
//!
//! ```text
//! cargo bench --bench keystore                 # everything
//! cargo bench --bench keystore -- '^get/'      # one group
//! ```
//!
//! Baselines (see `common`): `raw_txn3` is the bare sled transaction over three trees
//! (value, commit entry, latest-id index, dropping the key's previous entry as the crate
//! does), `raw_batch1` the same writes as one atomic batch on one tree, `raw_plain` the
//! same writes as plain inserts (not atomic); `_flush` adds `Db::flush`, the comparison
//! for the crate's durable mode. `raw_txn3_bounded` is `raw_txn3` with the crate's
//! periodic-mode deadlock guard: `Db::flush` after every second transaction
//! (`CRATE_PERIODIC_BOUND`), sled's own floor in the configuration the crate runs;
//! `raw_txn3_every3` and `raw_txn3_every4` flush after every third and fourth, to show
//! how that floor moves with the bound.

mod common;

use at_persistence_secondary_server::key::{KeyPattern, SyncRule};
use at_persistence_secondary_server::model::{codec, AtData, AtMetaData, CommitEntry};
use at_persistence_secondary_server::sled::Durability;
use at_persistence_secondary_server::store::{
    IterateOptions, KeyValueStoreExt, PersistenceFactory, RemoveOptions, ScanOptions, WriteOptions,
};
use common::*;
use criterion::{Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use sled::Transactional;
use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The data sets of one N, built on first use.
struct Fx<'r> {
    rt: &'r Runtime,
    n: usize,
    keys: Vec<String>,
    ours_p: OnceCell<Ours>,
    ours_d: OnceCell<Ours>,
    ours_u: OnceCell<Ours>,
    raw3: OnceCell<RefCell<Raw3>>,
    raw1: OnceCell<RefCell<Raw1>>,
    raw2: OnceCell<RefCell<Raw2>>,
    /// Next index of a brand-new key, per store.
    new_p: Cell<usize>,
    new_d: Cell<usize>,
    new_r1: Cell<usize>,
}

impl<'r> Fx<'r> {
    fn new(rt: &'r Runtime, n: usize) -> Self {
        Fx {
            rt,
            n,
            keys: (0..n).map(key).collect(),
            ours_p: OnceCell::new(),
            ours_d: OnceCell::new(),
            ours_u: OnceCell::new(),
            raw3: OnceCell::new(),
            raw1: OnceCell::new(),
            raw2: OnceCell::new(),
            new_p: Cell::new(n),
            new_d: Cell::new(n),
            new_r1: Cell::new(n),
        }
    }
    fn ours(&self) -> &Ours {
        self.ours_p
            .get_or_init(|| self.rt.block_on(Ours::filled(periodic(), self.n)))
    }
    /// The periodic keystore with its record cache off.
    fn ours_uncached(&self) -> &Ours {
        self.ours_u
            .get_or_init(|| self.rt.block_on(Ours::filled_uncached(periodic(), self.n)))
    }
    fn ours_durable(&self) -> &Ours {
        self.ours_d
            .get_or_init(|| self.rt.block_on(Ours::filled(Durability::Durable, self.n)))
    }
    fn raw3(&self) -> &RefCell<Raw3> {
        self.raw3.get_or_init(|| RefCell::new(Raw3::filled(self.n)))
    }
    fn raw1(&self) -> &RefCell<Raw1> {
        self.raw1.get_or_init(|| RefCell::new(Raw1::filled(self.n)))
    }
    fn raw2(&self) -> &RefCell<Raw2> {
        self.raw2.get_or_init(|| RefCell::new(Raw2::filled(self.n)))
    }
    fn key(&self, i: u64) -> &str {
        &self.keys[spread(i, self.n)]
    }
}

/// Where a read variant's walk over the keys goes on: each sample starts where the last
/// one stopped, so a key comes back only after all N others (no variant, and no cache,
/// gains from criterion starting every sample at the same keys).
#[derive(Default)]
struct Walk(Cell<u64>);

impl Walk {
    fn span(&self, iters: u64) -> std::ops::Range<u64> {
        let start = self.0.get();
        self.0.set(start + iters);
        start..start + iters
    }
}

fn next(c: &Cell<usize>) -> usize {
    let v = c.get();
    c.set(v + 1);
    v
}

fn reads(c: &mut Criterion, fx: &Fx<'_>) {
    let n = fx.n;
    let rt = fx.rt;

    let name = "get";
    let mut g = Group::new(c, name, n);
    let get_ours = |ours: &Ours, walk: &Walk, iters: u64| {
        let ks = &ours.ks;
        let span = walk.span(iters);
        rt.block_on(async {
            let t = Instant::now();
            for i in span {
                let v = ks.get(fx.key(i)).await.expect("get");
                std::hint::black_box(v);
            }
            t.elapsed()
        })
    };
    let walk = Walk::default();
    g.add("ours", |iters| get_ours(fx.ours(), &walk, iters));
    // The record cache off: every read descends sled's tree.
    let walk = Walk::default();
    g.add("ours_uncached", |iters| {
        get_ours(fx.ours_uncached(), &walk, iters)
    });
    let walk = Walk::default();
    g.add("raw", |iters| {
        let r = fx.raw3().borrow();
        timed_span(walk.span(iters), |i| {
            std::hint::black_box(r.values.get(fx.key(i)).expect("get"));
        })
    });
    // Raw get plus decoding the bytes into an `AtData` with the crate's codec: what a
    // caller of raw sled would need to do to have the value this `get` returns.
    let walk = Walk::default();
    g.add("raw_decode", |iters| {
        let r = fx.raw3().borrow();
        timed_span(walk.span(iters), |i| {
            let bytes = r.values.get(fx.key(i)).expect("get").expect("present");
            let v: AtData = codec::decode(&bytes, "raw", &String::new).expect("decode");
            std::hint::black_box(v);
        })
    });
    // The same record read from the one-tree layout (records, entries and index together).
    let walk = Walk::default();
    g.add("raw_one_tree", |iters| {
        let r = fx.raw1().borrow();
        timed_span(walk.span(iters), |i| {
            let k = prefixed(b'd', fx.key(i).as_bytes());
            std::hint::black_box(r.tree.get(k).expect("get"));
        })
    });
    // The same record read from a tree that holds only records (the other entries in a
    // second tree of the same database).
    let walk = Walk::default();
    g.add("raw_records_tree", |iters| {
        let r = fx.raw2().borrow();
        timed_span(walk.span(iters), |i| {
            std::hint::black_box(r.records.get(fx.key(i)).expect("get"));
        })
    });
    g.finish(RATIOS);

    let name = "get_meta";
    let mut g = Group::new(c, name, n);
    let walk = Walk::default();
    g.add("ours", |iters| {
        let ks = &fx.ours().ks;
        let span = walk.span(iters);
        rt.block_on(async {
            let t = Instant::now();
            for i in span {
                std::hint::black_box(ks.get_meta(fx.key(i)).await.expect("get_meta"));
            }
            t.elapsed()
        })
    });
    let walk = Walk::default();
    g.add("raw", |iters| {
        let r = fx.raw3().borrow();
        timed_span(walk.span(iters), |i| {
            std::hint::black_box(r.values.get(fx.key(i)).expect("get"));
        })
    });
    g.finish(RATIOS);

    let name = "get_many_100";
    let mut g = Group::new(c, name, n);
    g.inner().throughput(Throughput::Elements(100));
    let walk = Walk::default();
    g.add("ours", |iters| {
        let ks = &fx.ours().ks;
        let span = walk.span(iters);
        rt.block_on(async {
            let t = Instant::now();
            for i in span {
                let keys: Vec<&str> = (0..100).map(|j| fx.key(i * 100 + j)).collect();
                std::hint::black_box(ks.get_many(&keys).await.expect("get_many"));
            }
            t.elapsed()
        })
    });
    let walk = Walk::default();
    g.add("raw", |iters| {
        let r = fx.raw3().borrow();
        timed_span(walk.span(iters), |i| {
            let out: Vec<_> = (0..100)
                .map(|j| r.values.get(fx.key(i * 100 + j)).expect("get"))
                .collect();
            std::hint::black_box(out);
        })
    });
    g.finish(RATIOS);

    // The sync query: the commit log's iterate with the sync rule as filter, as a server
    // pages a client's sync (page limit 25).
    for (name, regex, from_tail) in [
        ("sync_tail", None, true),
        ("sync_head_quarter", Some(QUARTER_REGEX), false),
        ("sync_no_match", Some(NO_MATCH_REGEX), false),
    ] {
        let rule = Arc::new(SyncRule::new(regex, None).expect("regex"));
        let r2 = Arc::clone(&rule);
        let mut g = Group::new(c, name, n);
        if regex == Some(NO_MATCH_REGEX) {
            g.inner().sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        g.add("ours", |iters| {
            let log = &fx.ours().log;
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let from = if from_tail {
                        log.last_committed_sequence_number().await.expect("hwm") - 24
                    } else {
                        0
                    };
                    let rule = Arc::clone(&r2);
                    let page: Vec<CommitEntry> = log
                        .iterate(
                            IterateOptions::from(from).with_filter(move |e| rule.admits(&e.at_key)),
                        )
                        .await
                        .expect("iterate")
                        .take(25)
                        .map(|e| e.expect("entry"))
                        .collect()
                        .await;
                    std::hint::black_box(page);
                }
                t.elapsed()
            })
        });
        g.add("raw", |iters| {
            let r = fx.raw3().borrow();
            timed(iters, |_| {
                let start = if from_tail {
                    r.next_id.saturating_sub(25)
                } else {
                    0
                };
                let page: Vec<CommitEntry> = r
                    .commits
                    .range(start.to_be_bytes()..)
                    .filter_map(|kv| {
                        let (_, v) = kv.expect("range");
                        let e: CommitEntry =
                            codec::decode(&v, "raw", &|| String::new()).expect("decode");
                        rule.admits(&e.at_key).then_some(e)
                    })
                    .take(25)
                    .collect();
                std::hint::black_box(page);
            })
        });
        g.finish(RATIOS);
    }

    let name = "scan_keys_namespace";
    let pattern = KeyPattern {
        namespace: Some("app1".into()),
        ..Default::default()
    };
    let mut g = Group::new(c, name, n);
    g.inner().sample_size(10).sampling_mode(SamplingMode::Flat);
    g.add("ours", |iters| {
        let ks = &fx.ours().ks;
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let keys: Vec<String> = ks
                    .scan_keys(&pattern, ScanOptions::default())
                    .await
                    .expect("scan")
                    .map(|k| k.expect("key"))
                    .collect()
                    .await;
                std::hint::black_box(keys);
            }
            t.elapsed()
        })
    });
    g.add("raw", |iters| {
        let r = fx.raw3().borrow();
        timed(iters, |_| {
            let keys: Vec<String> = r
                .values
                .iter()
                .keys()
                .filter_map(|k| {
                    let k = String::from_utf8(k.expect("key").to_vec()).expect("utf8");
                    pattern.matches(&k).then_some(k)
                })
                .collect();
            std::hint::black_box(keys);
        })
    });
    g.finish(RATIOS);
}

fn put_group(c: &mut Criterion, fx: &Fx<'_>, name: &str, fresh: bool) {
    let n = fx.n;
    let rt = fx.rt;
    let records = Records::new(None);
    let records = &records;
    let raws = [
        ("raw_txn3", Flush::Never),
        ("raw_txn3_bounded", Flush::Every(CRATE_PERIODIC_BOUND)),
        ("raw_txn3_every3", Flush::Every(3)),
        ("raw_txn3_every4", Flush::Every(4)),
        ("raw_txn3_flush", Flush::Each),
    ];
    // New keys: each raw variant grows a store of its own from N keys, as each of ours
    // does, so that no variant writes into a store the others have grown.
    let own: Vec<(OnceCell<RefCell<Raw3>>, Cell<usize>)> = raws
        .iter()
        .map(|_| (OnceCell::new(), Cell::new(n)))
        .collect();
    let own = &own;
    let mut g = Group::new(c, name, n);
    let pick = move |i: u64, counter: &Cell<usize>| -> String {
        if fresh {
            key(next(counter))
        } else {
            fx.key(i).to_string()
        }
    };
    for (function, durable) in [("ours_periodic", false), ("ours_durable", true)] {
        g.add(function, move |iters| {
            let (o, counter) = if durable {
                (fx.ours_durable(), &fx.new_d)
            } else {
                (fx.ours(), &fx.new_p)
            };
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..iters {
                    let k = pick(i, counter);
                    let v = AtData::new(value(i as usize));
                    o.ks.put(&k, v, WriteOptions::default()).await.expect("put");
                }
                t.elapsed()
            })
        });
    }
    // Without a flush per put, a raw baseline's writes queue in sled's I/O pool; each
    // measurement ends with `Db::flush`, so the queue it built is paid for in its time.
    for (j, (function, flush)) in raws.into_iter().enumerate() {
        g.add(function, move |iters| {
            let (cell, counter) = &own[j];
            let mut r = if fresh {
                cell.get_or_init(|| RefCell::new(Raw3::filled(n)))
                    .borrow_mut()
            } else {
                fx.raw3().borrow_mut()
            };
            let db = r.db.clone();
            timed_flushed(&db, iters, |i| {
                let k = pick(i, counter);
                r.put_txn(&k, records.get(i), flush);
            })
        });
    }
    if !fresh {
        for (function, flush) in [("raw_batch1", false), ("raw_batch1_flush", true)] {
            g.add(function, move |iters| {
                let mut r = fx.raw1().borrow_mut();
                let db = r.db.clone();
                timed_flushed(&db, iters, |i| {
                    let k = pick(i, &fx.new_r1);
                    r.put_batch(&k, records.get(i), flush);
                })
            });
        }
        for (function, flush) in [("raw_txn2", false), ("raw_txn2_flush", true)] {
            g.add(function, move |iters| {
                let mut r = fx.raw2().borrow_mut();
                let db = r.db.clone();
                timed_flushed(&db, iters, |i| r.put_txn(fx.key(i), records.get(i), flush))
            });
        }
        g.add("raw_plain", |iters| {
            let mut r = fx.raw3().borrow_mut();
            let db = r.db.clone();
            timed_flushed(&db, iters, |i| r.put_plain(fx.key(i), records.get(i)))
        });
    }
    g.finish(RATIOS);
}

/// The raw baselines of the periodic metadata puts: the bare 3-tree transaction writing
/// `rich`'s records, without and with the crate's deadlock guard.
fn raw_rich_puts<'a>(g: &mut Group<'_, 'a>, fx: &'a Fx<'_>, rich: &'a Records) {
    for (function, flush) in [
        ("raw_txn3", Flush::Never),
        ("raw_txn3_bounded", Flush::Every(CRATE_PERIODIC_BOUND)),
    ] {
        g.add(function, move |iters| {
            let mut r = fx.raw3().borrow_mut();
            let db = r.db.clone();
            timed_flushed(&db, iters, |i| r.put_txn(fx.key(i), rich.get(i), flush))
        });
    }
}

fn writes(c: &mut Criterion, fx: &Fx<'_>) {
    let n = fx.n;
    let rt = fx.rt;
    put_group(c, fx, "put_overwrite", false);
    put_group(c, fx, "put_new", true);

    // A put carrying metadata (ttl, encryption fields): writes the expiry index too.
    let rich = Records::new(Some(&rich_meta()));
    let name = "put_with_meta";
    let mut g = Group::new(c, name, n);
    g.add("ours_periodic", |iters| {
        let ks = &fx.ours().ks;
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                let v = AtData::with_meta(value(i as usize), rich_meta());
                ks.put(fx.key(i), v, WriteOptions::default())
                    .await
                    .expect("put");
            }
            t.elapsed()
        })
    });
    raw_rich_puts(&mut g, fx, &rich);
    g.finish(RATIOS);

    // Metadata only: the value is kept, the record rewritten, UPDATE_META committed.
    let name = "put_meta";
    let mut g = Group::new(c, name, n);
    g.add("ours_periodic", |iters| {
        let ks = &fx.ours().ks;
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                ks.put_meta(fx.key(i), rich_meta(), WriteOptions::default())
                    .await
                    .expect("put_meta");
            }
            t.elapsed()
        })
    });
    raw_rich_puts(&mut g, fx, &rich);
    g.finish(RATIOS);

    // remove (timed) then put back (not timed), so the store stays at N.
    let records = Records::new(None);
    let name = "remove";
    let mut g = Group::new(c, name, n);
    // `iters` removes of distinct keys (timed), then the keys are put back (not timed),
    // so the store stays at N between measurements.
    g.add("ours_periodic", |iters| {
        let ks = &fx.ours().ks;
        let keys: Vec<&str> = (0..iters).map(|i| fx.key(i)).collect();
        rt.block_on(async {
            let t = Instant::now();
            for k in &keys {
                ks.remove(k, RemoveOptions::default())
                    .await
                    .expect("remove");
            }
            let total = t.elapsed();
            for chunk in keys.chunks(1000) {
                ks.transaction(|txn| async move {
                    for k in chunk {
                        txn.put(k, AtData::new(value(0))).await?;
                    }
                    Ok(())
                })
                .await
                .expect("put back");
            }
            total
        })
    });
    for (function, flush) in [
        ("raw_txn3", Flush::Never),
        ("raw_txn3_bounded", Flush::Every(CRATE_PERIODIC_BOUND)),
    ] {
        let records = &records;
        g.add(function, move |iters| {
            let mut r = fx.raw3().borrow_mut();
            let keys: Vec<&str> = (0..iters).map(|i| fx.key(i)).collect();
            let t = Instant::now();
            for k in &keys {
                r.remove_txn(k, flush);
            }
            r.db.flush().expect("flush");
            let total = t.elapsed();
            for chunk in keys.chunks(1000) {
                let items: Vec<(String, Vec<u8>)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, k)| (k.to_string(), records.get(j as u64).to_vec()))
                    .collect();
                r.put_many_txn(&items, Flush::Never);
            }
            r.db.flush().expect("flush");
            total
        });
    }
    g.finish(RATIOS);

    let name = "remove_many_100";
    let mut g = Group::new(c, name, n);
    g.inner().throughput(Throughput::Elements(100));
    g.add("ours_periodic", |iters| {
        let ks = &fx.ours().ks;
        rt.block_on(async {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let keys: Vec<&str> = (0..100).map(|j| fx.key(i * 100 + j)).collect();
                let t = Instant::now();
                ks.remove_many(&keys, false).await.expect("remove_many");
                total += t.elapsed();
                ks.transaction(|txn| async move {
                    for k in keys {
                        txn.put(k, AtData::new(value(0))).await?;
                    }
                    Ok(())
                })
                .await
                .expect("put back");
            }
            total
        })
    });
    g.add("raw_txn3", |iters| {
        let mut r = fx.raw3().borrow_mut();
        let mut total = Duration::ZERO;
        for i in 0..iters {
            let keys: Vec<String> = (0..100).map(|j| fx.key(i * 100 + j).to_string()).collect();
            let first = r.next_id;
            r.next_id += 100;
            let entries: Vec<(Vec<u8>, [u8; 8])> = keys
                .iter()
                .enumerate()
                .map(|(j, k)| {
                    let id = first + j as u64;
                    (
                        entry_bytes(
                            k,
                            at_persistence_secondary_server::model::CommitOp::Delete,
                            id,
                        ),
                        id.to_be_bytes(),
                    )
                })
                .collect();
            r.db.flush().expect("flush");
            let t = Instant::now();
            (&r.values, &r.commits, &r.keyidx)
                .transaction(|(v, c, k)| {
                    for (key, (entry, idb)) in keys.iter().zip(&entries) {
                        if v.remove(key.as_bytes())?.is_none() {
                            continue;
                        }
                        if let Some(old) = k.get(key.as_bytes())? {
                            c.remove(old)?;
                        }
                        c.insert(&idb[..], entry.as_slice())?;
                        k.insert(key.as_bytes(), &idb[..])?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .expect("raw remove_many");
            r.db.flush().expect("flush");
            total += t.elapsed();
            let items: Vec<(String, Vec<u8>)> = keys
                .into_iter()
                .map(|k| (k, record_bytes(i as usize, None)))
                .collect();
            r.put_many_txn(&items, Flush::Never);
        }
        total
    });
    g.finish(RATIOS);

    // 1,000 puts in one transaction against 1,000 single puts (throughput per put).
    let name = "txn_1000";
    let mut g = Group::new(c, name, n);
    g.inner()
        .throughput(Throughput::Elements(1000))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    for (function, durable, single) in [
        ("ours_txn_periodic", false, false),
        ("ours_single_periodic", false, true),
        ("ours_txn_durable", true, false),
        ("ours_single_durable", true, true),
    ] {
        g.add(function, move |iters| {
            let o = if durable {
                fx.ours_durable()
            } else {
                fx.ours()
            };
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..iters {
                    let keys: Vec<&str> = (0..1000).map(|j| fx.key(i * 1000 + j)).collect();
                    if single {
                        for k in keys {
                            o.ks.put(k, AtData::new(value(1)), WriteOptions::default())
                                .await
                                .expect("put");
                        }
                    } else {
                        o.ks.transaction(|txn| async move {
                            for k in keys {
                                txn.put(k, AtData::new(value(1))).await?;
                            }
                            Ok(())
                        })
                        .await
                        .expect("txn");
                    }
                }
                t.elapsed()
            })
        });
    }
    g.add("raw_txn3", |iters| {
        let mut r = fx.raw3().borrow_mut();
        let records = Records::new(None);
        let t = Instant::now();
        for i in 0..iters {
            let items: Vec<(String, Vec<u8>)> = (0..1000)
                .map(|j| {
                    let k = fx.key(i * 1000 + j).to_string();
                    (k, records.get(i * 1000 + j).to_vec())
                })
                .collect();
            r.put_many_txn(&items, Flush::Never);
        }
        r.db.flush().expect("flush");
        t.elapsed()
    });
    g.finish(RATIOS);
}

/// The expiring key of the sweep benches (not among the N keys).
fn expiring_key(j: usize) -> String {
    format!("@bob:expiring{j:08}.app{}@alice", j % 4)
}

fn expiry(c: &mut Criterion, fx: &Fx<'_>) {
    let n = fx.n;
    let rt = fx.rt;
    for (name, count) in [("expiry_sweep_1pct", n / 100), ("expiry_sweep_100", 100)] {
        let mut g = Group::new(c, name, n);
        g.inner()
            .throughput(Throughput::Elements(count as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat);
        g.add("ours", |iters| {
            let ks = &fx.ours().ks;
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Plant `count` keys that expire 1 ms after the write (not timed).
                    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
                        let chunk = chunk.to_vec();
                        ks.transaction(|txn| async move {
                            for j in chunk {
                                let meta = AtMetaData {
                                    ttl: Some(1),
                                    ..Default::default()
                                };
                                txn.put(&expiring_key(j), AtData::with_meta(value(j), meta))
                                    .await?;
                            }
                            Ok(())
                        })
                        .await
                        .expect("plant");
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    let t = Instant::now();
                    ks.delete_expired_keys().await.expect("sweep");
                    total += t.elapsed();
                }
                total
            })
        });
        g.add("raw", |iters| {
            let mut r = fx.raw3().borrow_mut();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let at = now().plus_millis(1);
                let items: Vec<(String, Vec<u8>)> = (0..count)
                    .map(|j| (expiring_key(j), record_bytes(j, None)))
                    .collect();
                r.put_many_txn(&items, Flush::Never);
                let mut b = sled::Batch::default();
                for (k, _) in &items {
                    b.insert(
                        [&instant(at)[..], k.as_bytes()].concat(),
                        sled::IVec::default(),
                    );
                }
                r.expiry.apply_batch(b).expect("expiry index");
                r.db.flush().expect("flush");
                std::thread::sleep(Duration::from_millis(3));
                let t = Instant::now();
                let bound = instant(now());
                let expired: Vec<sled::IVec> = r
                    .expiry
                    .range(..bound)
                    .keys()
                    .map(|k| k.expect("key"))
                    .collect();
                (&r.values, &r.commits, &r.keyidx, &r.expiry)
                    .transaction(|(v, c, k, e)| {
                        for ek in &expired {
                            let key = &ek[8..];
                            v.remove(key)?;
                            if let Some(id) = k.remove(key)? {
                                c.remove(id)?;
                            }
                            e.remove(ek)?;
                        }
                        Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .expect("raw sweep");
                r.db.flush().expect("flush");
                total += t.elapsed();
            }
            total
        });
        g.finish(RATIOS);
    }
}

/// Order-preserving instant bytes (as the crate's index keys).
fn instant(t: at_persistence_secondary_server::model::Timestamp) -> [u8; 8] {
    ((t.as_millis() as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Reopen of a closed store holding N keys: the crate's bundle against raw sled opening
/// the very same directory (both open the database and the keystore tree and read the
/// counters).
fn reopen(c: &mut Criterion, rt: &Runtime, n: usize) {
    let store: OnceCell<(tempfile::TempDir, std::path::PathBuf)> = OnceCell::new();
    let dir = || {
        store.get_or_init(|| {
            rt.block_on(async {
                let o = Ours::filled(periodic(), n).await;
                o.bundle.close().await;
                let path = o.dir.path().to_path_buf();
                (o.dir, path)
            })
        })
    };
    let name = "reopen";
    let mut g = Group::new(c, name, n);
    g.inner().sample_size(10).sampling_mode(SamplingMode::Flat);
    g.add("ours", |iters| {
        let (_, root) = dir();
        let config = keystore_config(root, periodic());
        rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let factory = at_persistence_secondary_server::sled::SledPersistenceFactory::new();
                let t = Instant::now();
                let b = factory.initialize(AT_SIGN, &config).await.expect("reopen");
                total += t.elapsed();
                b.close().await;
                drop(b);
                factory.close().await;
            }
            total
        })
    });
    g.add("raw", |iters| {
        let (_, root) = dir();
        let path = root.join("keys");
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            let db = raw_db(&path);
            let tree = db.open_tree("keystore").expect("tree");
            std::hint::black_box(db.get("format_version").expect("get"));
            std::hint::black_box(db.get("at_sign").expect("get"));
            // What the crate reads at open: the mark, the stored counts, the newest commit
            // entry and its latest-entry index value (which may carry the counts).
            for k in ["mhwm", "mcounts"] {
                std::hint::black_box(tree.get(k).expect("get"));
            }
            let newest = tree.range(&b"c"[..]..&b"d"[..]).next_back();
            if let Some((_, v)) = newest.transpose().expect("newest") {
                let e: CommitEntry = codec::decode(&v, "raw", &String::new).expect("decode");
                let index = [&b"k"[..], e.at_key.as_bytes()].concat();
                std::hint::black_box(tree.get(index).expect("get"));
            }
            total += t.elapsed();
            drop(tree);
            drop(db);
        }
        total
    });
    g.finish(RATIOS);
}

const RATIOS: &[Ratio] = &[
    Ratio {
        group: "get",
        num: "ours",
        den: "raw",
        note: "target <= 1.5x",
    },
    Ratio {
        group: "get",
        num: "ours_uncached",
        den: "raw",
        note: "record cache off",
    },
    Ratio {
        group: "get",
        num: "ours",
        den: "ours_uncached",
        note: "what the record cache saves",
    },
    Ratio {
        group: "get",
        num: "ours_uncached",
        den: "raw_decode",
        note: "raw get plus decode",
    },
    Ratio {
        group: "get",
        num: "ours",
        den: "raw_one_tree",
        note: "same layout",
    },
    Ratio {
        group: "get",
        num: "ours_uncached",
        den: "raw_one_tree",
        note: "same layout, record cache off",
    },
    Ratio {
        group: "get",
        num: "ours",
        den: "raw_records_tree",
        note: "raw sled's leanest layout",
    },
    Ratio {
        group: "get",
        num: "raw_one_tree",
        den: "raw",
        note: "raw sled: one-tree layout",
    },
    Ratio {
        group: "get",
        num: "raw_records_tree",
        den: "raw",
        note: "raw sled: records in a tree of their own",
    },
    Ratio {
        group: "get_meta",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "get_many_100",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "put_overwrite",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "target <= 1.25x",
    },
    Ratio {
        group: "put_overwrite",
        num: "ours_durable",
        den: "raw_txn3_flush",
        note: "target <= 1.25x",
    },
    Ratio {
        group: "put_overwrite",
        num: "ours_periodic",
        den: "raw_txn3_bounded",
        note: "same deadlock guard on both sides",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3_bounded",
        den: "raw_txn3",
        note: "sled's cost of flushing every 2nd commit",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3_every3",
        den: "raw_txn3",
        note: "sled's cost of flushing every 3rd commit",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3_every4",
        den: "raw_txn3",
        note: "sled's cost of flushing every 4th commit",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3_every3",
        den: "raw_txn3_bounded",
        note: "floor at bound 3 vs 2",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3_every4",
        den: "raw_txn3_bounded",
        note: "floor at bound 4 vs 2",
    },
    Ratio {
        group: "put_overwrite",
        num: "ours_periodic",
        den: "raw_batch1",
        note: "one-tree batch",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn3",
        den: "raw_plain",
        note: "sled's atomicity cost",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn2_flush",
        den: "raw_batch1_flush",
        note: "raw sled: records in their own tree, 2-tree txn vs one-tree batch",
    },
    Ratio {
        group: "put_overwrite",
        num: "raw_txn2",
        den: "raw_batch1",
        note: "the same without flushes",
    },
    Ratio {
        group: "put_new",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "target <= 1.25x",
    },
    Ratio {
        group: "put_new",
        num: "ours_durable",
        den: "raw_txn3_flush",
        note: "target <= 1.25x",
    },
    Ratio {
        group: "put_new",
        num: "ours_periodic",
        den: "raw_txn3_bounded",
        note: "same deadlock guard on both sides",
    },
    Ratio {
        group: "put_new",
        num: "raw_txn3_bounded",
        den: "raw_txn3",
        note: "sled's cost of flushing every 2nd commit",
    },
    Ratio {
        group: "put_new",
        num: "raw_txn3_every3",
        den: "raw_txn3",
        note: "sled's cost of flushing every 3rd commit",
    },
    Ratio {
        group: "put_new",
        num: "raw_txn3_every4",
        den: "raw_txn3",
        note: "sled's cost of flushing every 4th commit",
    },
    Ratio {
        group: "put_new",
        num: "raw_txn3_every3",
        den: "raw_txn3_bounded",
        note: "floor at bound 3 vs 2",
    },
    Ratio {
        group: "put_new",
        num: "raw_txn3_every4",
        den: "raw_txn3_bounded",
        note: "floor at bound 4 vs 2",
    },
    Ratio {
        group: "put_with_meta",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "",
    },
    Ratio {
        group: "put_with_meta",
        num: "ours_periodic",
        den: "raw_txn3_bounded",
        note: "same deadlock guard on both sides",
    },
    Ratio {
        group: "put_meta",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "",
    },
    Ratio {
        group: "put_meta",
        num: "ours_periodic",
        den: "raw_txn3_bounded",
        note: "same deadlock guard on both sides",
    },
    Ratio {
        group: "remove",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "",
    },
    Ratio {
        group: "remove",
        num: "ours_periodic",
        den: "raw_txn3_bounded",
        note: "same deadlock guard on both sides",
    },
    Ratio {
        group: "remove_many_100",
        num: "ours_periodic",
        den: "raw_txn3",
        note: "",
    },
    Ratio {
        group: "txn_1000",
        num: "ours_single_periodic",
        den: "ours_txn_periodic",
        note: "txn speed-up, target >= 1.8x",
    },
    Ratio {
        group: "txn_1000",
        num: "ours_single_durable",
        den: "ours_txn_durable",
        note: "txn speed-up, target >= 1.8x",
    },
    Ratio {
        group: "txn_1000",
        num: "ours_txn_periodic",
        den: "raw_txn3",
        note: "",
    },
    Ratio {
        group: "sync_tail",
        num: "ours",
        den: "raw",
        note: "target < 20 us, flat in N",
    },
    Ratio {
        group: "sync_head_quarter",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "sync_no_match",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "scan_keys_namespace",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "expiry_sweep_1pct",
        num: "ours",
        den: "raw",
        note: "",
    },
    Ratio {
        group: "expiry_sweep_100",
        num: "ours",
        den: "raw",
        note: "flat in N",
    },
    Ratio {
        group: "reopen",
        num: "ours",
        den: "raw",
        note: "target <= 1.2x",
    },
];

fn main() {
    let mut c = criterion();
    let rt = runtime();
    for n in sizes() {
        {
            let fx = Fx::new(&rt, n);
            reads(&mut c, &fx);
            writes(&mut c, &fx);
            expiry(&mut c, &fx);
        }
        reopen(&mut c, &rt, n);
    }
    c.final_summary();
    report("keystore", RATIOS);
}
