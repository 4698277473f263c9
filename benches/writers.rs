//! Concurrent writers on one bundle: 1, 4 and 16 writers as tokio tasks (multi-thread
//! runtime, two workers) and as OS threads, each overwriting keys of a 10k-key keystore
//! with commit log. One iteration is one put, so criterion's throughput line is puts per
//! second over all writers. The raw baseline runs the same number of OS threads, each
//! committing bare 3-tree transactions (plus `Db::flush` in durable mode) on one database.
//! In periodic mode there are two raw baselines: `raw_txn3` never waits for sled's log
//! writes, `raw_txn3_bounded` waits after every second commit on the database (counted
//! over all threads), the crate's deadlock guard (`CRATE_PERIODIC_BOUND`).
//!
//! ```text
//! cargo bench --bench writers
//! ```
//!
//! Peak RSS per configuration needs one process each: see `examples/memory.rs`.

mod common;

use at_persistence_secondary_server::model::AtData;
use at_persistence_secondary_server::sled::Durability;
use at_persistence_secondary_server::store::WriteOptions;
use common::*;
use criterion::{SamplingMode, Throughput};
use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys in the store (1k when the benches run as tests).
fn n() -> usize {
    if measuring() {
        10_000
    } else {
        1_000
    }
}
const WRITERS: [usize; 3] = [1, 4, 16];

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Writer `w`'s `j`-th key.
fn writer_key(w: usize, j: u64) -> String {
    key(spread(w as u64 * 1_000_003 + j, n()))
}

/// `iters` puts split over `writers` tokio tasks; returns the wall time.
fn ours_tasks(rt: &tokio::runtime::Runtime, o: &Ours, writers: usize, iters: u64) -> Duration {
    let per = iters.div_ceil(writers as u64);
    rt.block_on(async {
        let t = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let ks = o.ks.clone();
                tokio::spawn(async move {
                    for j in 0..per {
                        ks.put(
                            &writer_key(w, j),
                            AtData::new(value(j as usize)),
                            WriteOptions::default(),
                        )
                        .await
                        .expect("put");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("writer task");
        }
        t.elapsed()
    })
}

/// `iters` puts split over `writers` OS threads (each blocks on its own puts).
fn ours_threads(o: &Ours, writers: usize, iters: u64) -> Duration {
    let per = iters.div_ceil(writers as u64);
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let ks = o.ks.clone();
            s.spawn(move || {
                for j in 0..per {
                    futures::executor::block_on(ks.put(
                        &writer_key(w, j),
                        AtData::new(value(j as usize)),
                        WriteOptions::default(),
                    ))
                    .expect("put");
                }
            });
        }
    });
    t.elapsed()
}

fn raw_threads(r: &Raw3, ids: &AtomicU64, writers: usize, iters: u64, flush: Flush) -> Duration {
    let per = iters.div_ceil(writers as u64);
    let records = Records::new(None);
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let records = &records;
            s.spawn(move || {
                for j in 0..per {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    r.put_txn_id(&writer_key(w, j), records.get(id), id, flush);
                }
            });
        }
    });
    // Without a flush per put the writes queue in sled's I/O pool: pay for them here.
    r.db.flush().expect("flush");
    t.elapsed()
}

const RATIOS: &[Ratio] = &[
    Ratio {
        group: "writers_durable",
        num: "ours_tasks_1",
        den: "ours_tasks_16",
        note: "throughput 16 vs 1, target >= 1.8x",
    },
    Ratio {
        group: "writers_durable",
        num: "ours_threads_1",
        den: "ours_threads_16",
        note: "throughput 16 vs 1, target >= 1.8x",
    },
    Ratio {
        group: "writers_durable",
        num: "ours_tasks_1",
        den: "ours_tasks_4",
        note: "throughput 4 vs 1",
    },
    Ratio {
        group: "writers_durable",
        num: "ours_threads_1",
        den: "ours_threads_4",
        note: "throughput 4 vs 1",
    },
    Ratio {
        group: "writers_durable",
        num: "raw_txn3_flush_threads_1",
        den: "raw_txn3_flush_threads_16",
        note: "raw sled, throughput 16 vs 1",
    },
    Ratio {
        group: "writers_durable",
        num: "ours_threads_1",
        den: "raw_txn3_flush_threads_1",
        note: "single writer vs raw",
    },
    Ratio {
        group: "writers_durable",
        num: "ours_threads_16",
        den: "raw_txn3_flush_threads_16",
        note: "16 writers vs raw",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_tasks_1",
        den: "ours_tasks_16",
        note: "throughput 16 vs 1",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_threads_1",
        den: "ours_threads_16",
        note: "throughput 16 vs 1",
    },
    Ratio {
        group: "writers_periodic",
        num: "raw_txn3_threads_1",
        den: "raw_txn3_threads_16",
        note: "raw sled, throughput 16 vs 1",
    },
    Ratio {
        group: "writers_periodic",
        num: "raw_txn3_bounded_threads_1",
        den: "raw_txn3_bounded_threads_16",
        note: "raw sled with the guard, throughput 16 vs 1",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_threads_1",
        den: "raw_txn3_threads_1",
        note: "single writer vs raw",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_threads_1",
        den: "raw_txn3_bounded_threads_1",
        note: "single writer vs raw with the guard",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_threads_16",
        den: "raw_txn3_threads_16",
        note: "16 writers vs raw",
    },
    Ratio {
        group: "writers_periodic",
        num: "ours_threads_16",
        den: "raw_txn3_bounded_threads_16",
        note: "16 writers vs raw with the guard",
    },
];

fn main() {
    let mut c = criterion();
    let rt = multi_thread_runtime();
    for (group, durable) in [("writers_durable", true), ("writers_periodic", false)] {
        let ours: OnceCell<Ours> = OnceCell::new();
        let raw: OnceCell<(Raw3, AtomicU64)> = OnceCell::new();
        let rt = &rt;
        let ours = &|| {
            ours.get_or_init(|| {
                let d = if durable {
                    Durability::Durable
                } else {
                    periodic()
                };
                rt.block_on(Ours::filled(d, n()))
            })
        };
        let raw = &|| {
            raw.get_or_init(|| {
                let r = Raw3::filled(n());
                let next = AtomicU64::new(r.next_id);
                (r, next)
            })
        };
        let mut g = Group::new(&mut c, group, n());
        g.inner()
            .throughput(Throughput::Elements(1))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(4));
        for w in WRITERS {
            g.add(&format!("ours_tasks_{w}"), move |iters| {
                ours_tasks(rt, ours(), w, iters)
            });
            g.add(&format!("ours_threads_{w}"), move |iters| {
                ours_threads(ours(), w, iters)
            });
            let raws: &[(&str, Flush)] = if durable {
                &[("raw_txn3_flush", Flush::Each)]
            } else {
                &[
                    ("raw_txn3", Flush::Never),
                    ("raw_txn3_bounded", Flush::Every(CRATE_PERIODIC_BOUND)),
                ]
            };
            for &(raw_name, flush) in raws {
                g.add(&format!("{raw_name}_threads_{w}"), move |iters| {
                    let (r, ids) = raw();
                    raw_threads(r, ids, w, iters, flush)
                });
            }
        }
        g.finish(RATIOS);
    }
    c.final_summary();
    report("writers", RATIOS);
}
