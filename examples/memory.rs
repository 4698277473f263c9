//! Peak memory, disk size and write volume of one load, in its own process (peak RSS is
//! per process, so each configuration is one run).
//!
//! Loads `--keys` keys, then overwrites them `--puts` times in total (spread over the keys)
//! from `--writers` OS threads (or, with `--tasks`, as many tokio tasks on a multi-thread
//! runtime with one worker per core: the crate's modes only), and reports the process's peak RSS (`VmHWM`), the database
//! size on disk, the bytes the process wrote (`/proc/self/io`: `wchar`, handed to write
//! calls, and `write_bytes`, written back by the kernel in whole pages) and the put rate.
//!
//! ```text
//! cargo run --release --example memory -- MODE [--keys N] [--puts P] [--writers W] [--cache-mb M] [--flush-every K] [--fill-chunk C] [--tasks]
//! ```
//!
//! `MODE` is one of:
//!
//! * `ours-durable`, `ours-periodic`: the crate's keystore with commit log (every put
//!   flushed before it is acknowledged, or flushed every 500 ms);
//! * `raw-txn3`, `raw-txn3-flush`: the bare sled transaction over three trees (value,
//!   commit entry, latest-id index) writing the same bytes, optionally followed by
//!   `Db::flush`;
//! * `raw-txn3-bounded`: `raw-txn3` with the crate's periodic-mode deadlock guard,
//!   `Db::flush` after every second transaction on the database (every `K`-th with
//!   `--flush-every K`): the raw comparison for `ours-periodic`;
//! * `raw-batch1`: the same writes as one atomic batch on one tree;
//! * `raw-plain`: the same writes as plain inserts (not atomic).
//!
//! The keys are loaded `--fill-chunk` at a time (default 100): the crate in transactions of
//! that many puts, `raw-batch1` in one batch per chunk, the 3-tree baselines in one batch
//! per tree per chunk. sled's memory grows with the size of its atomic batches (a one-tree
//! load in batches of 1,000 keys, 3,000 entries, peaks at about 240 MB before any put), so
//! every mode loads in the same moderate chunks, and the peak is the puts' and not the
//! load's.
//!
//! Defaults: 100,000 keys, 1,000,000 puts, 1 writer, the crate's default cache. The last
//! line is a Markdown table row: mode, keys, puts, writers, cache, puts/s, peak RSS, disk,
//! bytes by write calls, bytes written back.

#[path = "../benches/common/mod.rs"]
mod common;

use at_persistence_secondary_server::model::AtData;
use at_persistence_secondary_server::sled::Durability;
use at_persistence_secondary_server::store::{PersistenceFactory, WriteOptions};
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

struct Args {
    mode: String,
    keys: usize,
    puts: u64,
    writers: usize,
    cache: u64,
    /// `raw-txn3-bounded`: flush after every this many transactions.
    flush_every: u32,
    /// Keys per transaction (or per batch) while loading.
    fill_chunk: usize,
    /// The writers are tokio tasks, not OS threads (the crate's modes only).
    tasks: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: memory MODE [--keys N] [--puts P] [--writers W] [--cache-mb M] [--flush-every K] [--fill-chunk C] [--tasks]\n\
         MODE: ours-durable | ours-periodic | raw-txn3 | raw-txn3-bounded | raw-txn3-flush | raw-batch1 | raw-plain\n\
         --flush-every K: raw-txn3-bounded only (default 2, the crate's bound)\n\
         --tasks: ours-durable and ours-periodic only"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        mode,
        keys: 100_000,
        puts: 1_000_000,
        writers: 1,
        cache: CACHE,
        flush_every: CRATE_PERIODIC_BOUND,
        fill_chunk: 100,
        tasks: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--tasks" && a.mode.starts_with("ours-") {
            a.tasks = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| usage());
        let num: u64 = v.parse().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--keys" => a.keys = num as usize,
            "--puts" => a.puts = num,
            "--writers" => a.writers = (num as usize).max(1),
            "--cache-mb" => a.cache = num * 1024 * 1024,
            "--fill-chunk" => a.fill_chunk = (num as usize).max(1),
            "--flush-every" if a.mode == "raw-txn3-bounded" => {
                a.flush_every = u32::try_from(num).unwrap_or_else(|_| usage()).max(1)
            }
            _ => usage(),
        }
    }
    a
}

/// The number after `field` in the `/proc/self/<file>` listing (`status`: `VmHWM:`,
/// `VmRSS:` in kB; `io`: `wchar:`, bytes passed to write calls, or `write_bytes:`, bytes
/// the kernel wrote back to storage for this process), 0 when unavailable.
fn proc_self(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `puts` puts over `writers` threads; `put(writer, j)` does one.
fn drive(puts: u64, writers: usize, put: &(dyn Fn(usize, u64) + Sync)) {
    let per = puts.div_ceil(writers as u64);
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                for j in 0..per {
                    put(w, j);
                }
            });
        }
    });
}

/// Runs the puts of `a` as `a.writers` tokio tasks on a multi-thread runtime with one
/// worker per core, as a server runs its connections.
fn drive_tasks(ks: &Ks, a: &Args) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let per = a.puts.div_ceil(a.writers as u64);
    rt.block_on(async {
        let tasks: Vec<_> = (0..a.writers)
            .map(|w| {
                let ks = ks.clone();
                let keys = a.keys;
                tokio::spawn(async move {
                    for j in 0..per {
                        let i = pick(w, j, keys);
                        let v = AtData::new(value(j as usize));
                        ks.put(&key(i), v, WriteOptions::default())
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer task");
        }
    });
}

fn pick(w: usize, j: u64, keys: usize) -> usize {
    spread(w as u64 * 1_000_003 + j, keys)
}

fn main() {
    let a = parse();
    let rt = runtime();
    let started = Instant::now();
    let (wchar_before, written_before) =
        (proc_self("io", "wchar:"), proc_self("io", "write_bytes:"));
    let (load_time, dir_bytes) = match a.mode.as_str() {
        "ours-durable" | "ours-periodic" => {
            let durability = if a.mode == "ours-durable" {
                Durability::Durable
            } else {
                periodic()
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let factory = at_persistence_secondary_server::sled::SledPersistenceFactory::new();
            let config = keystore_config(dir.path(), durability).with_cache_capacity(a.cache);
            let bundle = rt
                .block_on(factory.initialize(AT_SIGN, &config))
                .expect("initialize");
            let ks = bundle.key_value_store().clone();
            rt.block_on(fill_in(&ks, 0..a.keys, a.fill_chunk));
            let t = Instant::now();
            if a.tasks {
                drive_tasks(&ks, &a);
            } else {
                drive(a.puts, a.writers, &|w, j| {
                    let i = pick(w, j, a.keys);
                    futures::executor::block_on(ks.put(
                        &key(i),
                        AtData::new(value(j as usize)),
                        WriteOptions::default(),
                    ))
                    .expect("put");
                });
            }
            let load = t.elapsed();
            rt.block_on(bundle.close());
            (load, dir_size(dir.path()))
        }
        "raw-txn3" | "raw-txn3-bounded" | "raw-txn3-flush" | "raw-plain" => {
            let flush = match a.mode.as_str() {
                "raw-txn3-flush" => Flush::Each,
                "raw-txn3-bounded" => Flush::Every(a.flush_every),
                _ => Flush::Never,
            };
            let plain = a.mode == "raw-plain";
            let dir = tempfile::tempdir().expect("tempdir");
            let db = sled::Config::new()
                .path(dir.path().join("db"))
                .cache_capacity(a.cache)
                .flush_every_ms(Some(FLUSH_EVERY_MS))
                .open()
                .expect("open");
            let mut r = Raw3::with_db(dir, db);
            r.fill_in(0..a.keys, a.fill_chunk);
            let records = Records::new(None);
            let ids = AtomicU64::new(r.next_id);
            let plain_lock = Mutex::new(());
            let t = Instant::now();
            drive(a.puts, a.writers, &|w, j| {
                let k = key(pick(w, j, a.keys));
                let id = ids.fetch_add(1, Ordering::Relaxed);
                if plain {
                    // `put_plain` needs `&mut`; one writer at a time.
                    let _g = plain_lock.lock().unwrap_or_else(|p| p.into_inner());
                    plain_put(&r, &k, records.get(id), id);
                } else {
                    r.put_txn_id(&k, records.get(id), id, flush);
                }
            });
            // Unflushed writes may still be queued in sled's I/O pool: count them in.
            r.db.flush().expect("flush");
            let load = t.elapsed();
            let size = dir_size(r.dir.path());
            (load, size)
        }
        "raw-batch1" => {
            let mut r = Raw1::filled_in(a.keys, a.fill_chunk);
            let records = Records::new(None);
            let t = Instant::now();
            for j in 0..a.puts {
                let k = key(pick(0, j, a.keys));
                r.put_batch(&k, records.get(j), false);
            }
            r.db.flush().expect("flush");
            let load = t.elapsed();
            (load, dir_size(r.dir.path()))
        }
        _ => usage(),
    };
    let hwm_kb = proc_self("status", "VmHWM:");
    let rss_kb = proc_self("status", "VmRSS:");
    let wchar = proc_self("io", "wchar:").saturating_sub(wchar_before);
    let written = proc_self("io", "write_bytes:").saturating_sub(written_before);
    let rate = a.puts as f64 / load_time.as_secs_f64();
    let mode = if a.mode == "raw-txn3-bounded" && a.flush_every != CRATE_PERIODIC_BOUND {
        format!("{} (flush every {})", a.mode, a.flush_every)
    } else {
        a.mode.clone()
    };
    let writers = if a.tasks {
        format!("{} tasks", a.writers)
    } else {
        a.writers.to_string()
    };
    println!(
        "mode={} keys={} puts={} writers={} cache={}MiB",
        mode,
        a.keys,
        a.puts,
        writers,
        a.cache / (1024 * 1024)
    );
    println!(
        "put phase {:.1} s ({:.0} puts/s, {:.1} us/put); total {:.1} s",
        load_time.as_secs_f64(),
        rate,
        1e6 / rate,
        started.elapsed().as_secs_f64()
    );
    println!(
        "peak RSS {:.0} MB, RSS at end {:.0} MB, disk {:.0} MB, written {:.2} GB by write calls, {:.2} GB written back",
        hwm_kb as f64 / 1024.0,
        rss_kb as f64 / 1024.0,
        dir_bytes as f64 / 1e6,
        wchar as f64 / 1e9,
        written as f64 / 1e9
    );
    println!(
        "| {} | {} | {} | {} | {} MiB | {:.0} | {:.0} MB | {:.0} MB | {:.2} GB | {:.2} GB |",
        mode,
        a.keys,
        a.puts,
        writers,
        a.cache / (1024 * 1024),
        rate,
        hwm_kb as f64 / 1024.0,
        dir_bytes as f64 / 1e6,
        wchar as f64 / 1e9,
        written as f64 / 1e9
    );
}

/// [`Raw3::put_plain`] through a shared reference, with the id given.
fn plain_put(r: &Raw3, key: &str, record: &[u8], id: u64) {
    let entry = entry_bytes(
        key,
        at_persistence_secondary_server::model::CommitOp::Update,
        id,
    );
    let idb = id.to_be_bytes();
    if let Some(old) = r.keyidx.get(key.as_bytes()).expect("get") {
        r.commits.remove(old).expect("remove");
    }
    r.values.insert(key.as_bytes(), record).expect("insert");
    r.commits.insert(&idb[..], entry).expect("insert");
    r.keyidx.insert(key.as_bytes(), &idb[..]).expect("insert");
}
