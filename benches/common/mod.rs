//! Shared pieces of the benchmarks: the data shape, the crate's stores and their raw-sled
//! equivalents, the criterion settings, and the ratio report printed at the end of a run.
//!
//! Data shape (the issue's): keys of about 35 bytes, values of 200 bytes, atSign `@alice`.
//! Every raw-sled baseline writes the same bytes the crate writes (the encoded record, the
//! encoded commit entry, the 8-byte id), so a ratio measures the crate's own overhead.
//!
//! Nothing here runs at compile time; data sets are built the first time a selected
//! benchmark asks for them.
#![allow(dead_code)]

use at_persistence_secondary_server::model::{
    build_metadata, codec, AtData, AtMetaData, CommitEntry, CommitOp, Timestamp,
};
use at_persistence_secondary_server::sled::{
    Durability, SledPersistenceConfig, SledPersistenceFactory,
};
use at_persistence_secondary_server::store::{
    Bundle, CommitLog, KeyValueStoreExt, PersistenceFactory,
};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use sled::Transactional;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The atSign every store belongs to.
pub const AT_SIGN: &str = "@alice";
/// Bytes of every value.
pub const VALUE_LEN: usize = 200;
/// The sled page cache of every database, crate and raw alike.
pub const CACHE: u64 = at_persistence_secondary_server::sled::DEFAULT_CACHE_CAPACITY;
/// The background flush interval of every database (the crate's default).
pub const FLUSH_EVERY_MS: u64 = 500;

/// The keystore type behind a bundle.
pub type Ks = at_persistence_secondary_server::store::DynKeyStore;

/// Whether the 1M data sets are wanted (`ATPS_BENCH_BIG=1`).
pub fn big() -> bool {
    std::env::var("ATPS_BENCH_BIG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The store sizes: 10k and 100k, and 1M with `ATPS_BENCH_BIG=1`; only 1k when the
/// benches run as tests (`cargo test --benches`), which checks the routines, not speed.
pub fn sizes() -> Vec<usize> {
    if !measuring() {
        return vec![1_000];
    }
    let mut v = vec![10_000, 100_000];
    if big() {
        v.push(1_000_000);
    }
    v
}

/// The i-th key: 33-35 bytes, a shared key of `@alice` for `@bob`; a quarter of the keys
/// share each of the namespaces `app0`..`app3`.
pub fn key(i: usize) -> String {
    format!("@bob:contact{i:010}.app{}@alice", i % 4)
}

/// The regex that matches a quarter of the keys.
pub const QUARTER_REGEX: &str = r"\.app0@";
/// A regex that matches no key.
pub const NO_MATCH_REGEX: &str = r"\.nomatch@";

/// A 200-byte value (base64-looking text, as an encrypted value would be).
pub fn value(i: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..VALUE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

/// The metadata of a "put with metadata": what a client sends for a shared, encrypted key.
pub fn rich_meta() -> AtMetaData {
    AtMetaData {
        ttl: Some(86_400_000),
        is_encrypted: Some(true),
        shared_key_enc: Some("c2hhcmVkIGtleSBlbmNyeXB0ZWQgZm9yIGJvYg==".into()),
        pub_key_cs: Some("9a8b7c6d5e4f".into()),
        enc_key_name: Some("shared_key.bob".into()),
        enc_algo: Some("AES/SIC/PKCS7Padding".into()),
        iv_nonce: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()),
        ..Default::default()
    }
}

/// Deterministic visiting order over `n` keys (a prime stride, so neither sequential nor
/// cache-friendly by accident).
pub fn spread(i: u64, n: usize) -> usize {
    ((i.wrapping_mul(7919)) % n as u64) as usize
}

/// A current-thread tokio runtime (the single-caller benches).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The criterion settings: short warm-up and measurement so the whole suite stays within
/// a few minutes per binary on a 2-core machine; the command line still overrides them.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(0.05)
        .configure_from_args()
}

// ----- the crate's stores -----

/// A keystore with commit log in its own temporary directory.
pub struct Ours {
    pub dir: TempDir,
    pub factory: SledPersistenceFactory,
    pub bundle: Arc<Bundle>,
    pub ks: Ks,
    pub log: Arc<dyn CommitLog>,
    pub durability: Durability,
}

/// The configuration of the benchmarked keystore: commit log on, no access log or
/// notification store (those are separate databases with their own benches).
pub fn keystore_config(root: &Path, durability: Durability) -> SledPersistenceConfig {
    SledPersistenceConfig::new(root.join("keys"))
        .with_commit_log(root.join("commit_log"))
        .with_durability(durability)
        .with_cache_capacity(CACHE)
}

/// Periodic flushing at the crate's default interval.
pub fn periodic() -> Durability {
    Durability::Periodic {
        interval_ms: FLUSH_EVERY_MS,
    }
}

impl Ours {
    /// Opens an empty keystore.
    pub async fn open(durability: Durability) -> Ours {
        Ours::open_with(durability, |c| c).await
    }

    /// Opens an empty keystore with `adjust` applied to the configuration.
    pub async fn open_with(
        durability: Durability,
        adjust: impl FnOnce(SledPersistenceConfig) -> SledPersistenceConfig,
    ) -> Ours {
        let dir = tempfile::tempdir().expect("tempdir");
        let factory = SledPersistenceFactory::new();
        let bundle = factory
            .initialize(AT_SIGN, &adjust(keystore_config(dir.path(), durability)))
            .await
            .expect("initialize");
        let ks = bundle.key_value_store().clone();
        let log = ks.commit_log().expect("commit log");
        Ours {
            dir,
            factory,
            bundle,
            ks,
            log,
            durability,
        }
    }

    /// Opens a keystore holding keys `0..n`.
    pub async fn filled(durability: Durability, n: usize) -> Ours {
        let o = Ours::open(durability).await;
        fill(&o.ks, 0..n).await;
        o
    }

    /// Opens a keystore holding keys `0..n`, without the record cache.
    pub async fn filled_uncached(durability: Durability, n: usize) -> Ours {
        let o = Ours::open_with(durability, |c| c.with_record_cache_capacity(0)).await;
        fill(&o.ks, 0..n).await;
        o
    }
}

/// Puts `range` (key(i) = value(i), no metadata) in transactions of 1,000.
pub async fn fill(ks: &Ks, range: std::ops::Range<usize>) {
    fill_in(ks, range, 1000).await
}

/// Puts `range` (key(i) = value(i), no metadata) in transactions of `chunk` puts.
pub async fn fill_in(ks: &Ks, range: std::ops::Range<usize>, chunk: usize) {
    let idx: Vec<usize> = range.collect();
    for chunk in idx.chunks(chunk.max(1)) {
        let chunk = chunk.to_vec();
        ks.transaction(|txn| async move {
            for i in chunk {
                txn.put(&key(i), AtData::new(value(i))).await?;
            }
            Ok(())
        })
        .await
        .expect("fill");
    }
}

// ----- raw sled -----

/// The bytes the crate stores for `value(i)` written without metadata: the same envelope,
/// so raw baselines write exactly as many bytes.
pub fn record_bytes(i: usize, meta: Option<&AtMetaData>) -> Vec<u8> {
    let now = now();
    let built = build_metadata(AT_SIGN, meta, None, None, now);
    codec::encode(&AtData {
        data: Some(value(i)),
        meta_data: Some(built),
        key: None,
    })
}

/// Distinct encoded records, cycled by the raw baselines: every raw put writes a value
/// that differs from the one it replaces, as the crate's puts do (each carries a new
/// `updatedAt` and version). sled skips an insert whose value equals the stored one, so
/// writing one constant record would make a baseline skip most of its writes.
pub struct Records(Vec<Vec<u8>>);

impl Records {
    /// 1,021 records (a prime, so the cycle never lines up with a key stride).
    pub fn new(meta: Option<&AtMetaData>) -> Records {
        Records((0..1021).map(|i| record_bytes(i, meta)).collect())
    }

    /// The record for the `i`-th write.
    pub fn get(&self, i: u64) -> &[u8] {
        &self.0[(i % self.0.len() as u64) as usize]
    }
}

/// The bytes of a commit entry.
pub fn entry_bytes(key: &str, op: CommitOp, id: u64) -> Vec<u8> {
    codec::encode(&CommitEntry::new(key, op, now(), id as i64))
}

/// Opens a raw sled database with the crate's settings.
pub fn raw_db(path: &Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .open()
        .expect("open raw sled")
}

/// The crate's bound in [`Durability::Periodic`]: its writer waits for sled's log writes
/// (`Db::flush`) after every second atomic commit. This is `MAX_UNFLUSHED_COMMITS` in
/// `src/sled/db.rs`, which is `pub(crate)` and so out of a bench's reach: keep the two in
/// step by hand.
pub const CRATE_PERIODIC_BOUND: u32 = 2;

/// When a raw baseline waits for sled's log writes (`Db::flush`) after an atomic commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Never: the commits' writes queue on sled's I/O pool.
    Never,
    /// After every commit: the comparison for the crate's durable mode.
    Each,
    /// After every k-th commit, counted per database exactly as the crate's periodic mode
    /// counts them (`Every(CRATE_PERIODIC_BOUND)` is the crate's deadlock guard).
    Every(u32),
}

/// The bare three-tree layout of the issue: values by key, commit entries by id, the
/// latest id per key; plus an expiry index (key order: instant, key) for the sweep.
pub struct Raw3 {
    pub dir: TempDir,
    pub db: sled::Db,
    pub values: sled::Tree,
    pub commits: sled::Tree,
    pub keyidx: sled::Tree,
    pub expiry: sled::Tree,
    pub next_id: u64,
    /// Commits since the last flush, for [`Flush::Every`].
    unflushed: AtomicU32,
}

type TxErr = sled::transaction::ConflictableTransactionError<()>;

impl Raw3 {
    pub fn open() -> Raw3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = raw_db(&dir.path().join("db"));
        Raw3::with_db(dir, db)
    }

    /// The layout's trees in `db`, which lives in `dir`.
    pub fn with_db(dir: TempDir, db: sled::Db) -> Raw3 {
        Raw3 {
            values: db.open_tree("values").expect("tree"),
            commits: db.open_tree("commits").expect("tree"),
            keyidx: db.open_tree("keyidx").expect("tree"),
            expiry: db.open_tree("expiry").expect("tree"),
            db,
            dir,
            next_id: 0,
            unflushed: AtomicU32::new(0),
        }
    }

    /// Called after every atomic commit: flushes as `flush` asks (for [`Flush::Every`] the
    /// same counting as the crate's `SledDb::flush`).
    pub fn after_commit(&self, flush: Flush) {
        match flush {
            Flush::Never => {}
            Flush::Each => {
                self.db.flush().expect("flush");
            }
            Flush::Every(k) => {
                if self.unflushed.fetch_add(1, Ordering::Relaxed) + 1 < k {
                    return;
                }
                self.unflushed.store(0, Ordering::Relaxed);
                self.db.flush().expect("flush");
            }
        }
    }

    /// Holds keys `0..n`, written in batches (not timed).
    pub fn filled(n: usize) -> Raw3 {
        let mut r = Raw3::open();
        r.fill(0..n);
        r
    }

    pub fn fill(&mut self, range: std::ops::Range<usize>) {
        self.fill_in(range, 1000)
    }

    /// Fills `range` with one batch per tree for every `chunk` keys, then flushes.
    pub fn fill_in(&mut self, range: std::ops::Range<usize>, chunk: usize) {
        let idx: Vec<usize> = range.collect();
        for chunk in idx.chunks(chunk.max(1)) {
            let (mut v, mut c, mut k) = (
                sled::Batch::default(),
                sled::Batch::default(),
                sled::Batch::default(),
            );
            for &i in chunk {
                let key = key(i);
                let id = self.take_id();
                v.insert(key.as_bytes(), record_bytes(i, None));
                c.insert(
                    &id.to_be_bytes()[..],
                    entry_bytes(&key, CommitOp::Update, id),
                );
                k.insert(key.as_bytes(), &id.to_be_bytes()[..]);
            }
            self.values.apply_batch(v).expect("fill");
            self.commits.apply_batch(c).expect("fill");
            self.keyidx.apply_batch(k).expect("fill");
        }
        self.db.flush().expect("flush");
    }

    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One logical put as a bare 3-tree transaction: the value, a new commit entry, the
    /// latest-id index, and the removal of the key's previous entry (one entry per key, as
    /// the crate keeps it), then `Db::flush` as `flush` asks.
    pub fn put_txn(&mut self, key: &str, record: &[u8], flush: Flush) {
        let id = self.take_id();
        self.put_txn_id(key, record, id, flush);
    }

    /// [`Raw3::put_txn`] with the id given (for several threads sharing one store).
    pub fn put_txn_id(&self, key: &str, record: &[u8], id: u64, flush: Flush) {
        let entry = entry_bytes(key, CommitOp::Update, id);
        let idb = id.to_be_bytes();
        (&self.values, &self.commits, &self.keyidx)
            .transaction(|(v, c, k)| {
                if let Some(old) = k.get(key.as_bytes())? {
                    c.remove(old)?;
                }
                v.insert(key.as_bytes(), record)?;
                c.insert(&idb[..], entry.as_slice())?;
                k.insert(key.as_bytes(), &idb[..])?;
                Ok::<_, TxErr>(())
            })
            .expect("raw txn");
        self.after_commit(flush);
    }

    /// The same three writes as three plain inserts (not atomic).
    pub fn put_plain(&mut self, key: &str, record: &[u8]) {
        let id = self.take_id();
        let entry = entry_bytes(key, CommitOp::Update, id);
        let idb = id.to_be_bytes();
        if let Some(old) = self.keyidx.get(key.as_bytes()).expect("get") {
            self.commits.remove(old).expect("remove");
        }
        self.values.insert(key.as_bytes(), record).expect("insert");
        self.commits.insert(&idb[..], entry).expect("insert");
        self.keyidx
            .insert(key.as_bytes(), &idb[..])
            .expect("insert");
    }

    /// A remove as a bare 3-tree transaction: drop the value, replace the key's entry with
    /// a DELETE entry, point the index at it.
    pub fn remove_txn(&mut self, key: &str, flush: Flush) {
        let id = self.take_id();
        let entry = entry_bytes(key, CommitOp::Delete, id);
        let idb = id.to_be_bytes();
        (&self.values, &self.commits, &self.keyidx)
            .transaction(|(v, c, k)| {
                if let Some(old) = k.get(key.as_bytes())? {
                    c.remove(old)?;
                }
                v.remove(key.as_bytes())?;
                c.insert(&idb[..], entry.as_slice())?;
                k.insert(key.as_bytes(), &idb[..])?;
                Ok::<_, TxErr>(())
            })
            .expect("raw txn");
        self.after_commit(flush);
    }

    /// Many puts in one 3-tree transaction.
    pub fn put_many_txn(&mut self, items: &[(String, Vec<u8>)], flush: Flush) {
        let first = self.next_id;
        self.next_id += items.len() as u64;
        let entries: Vec<(Vec<u8>, [u8; 8])> = items
            .iter()
            .enumerate()
            .map(|(j, (k, _))| {
                let id = first + j as u64;
                (entry_bytes(k, CommitOp::Update, id), id.to_be_bytes())
            })
            .collect();
        (&self.values, &self.commits, &self.keyidx)
            .transaction(|(v, c, k)| {
                for ((key, record), (entry, idb)) in items.iter().zip(&entries) {
                    if let Some(old) = k.get(key.as_bytes())? {
                        c.remove(old)?;
                    }
                    v.insert(key.as_bytes(), record.as_slice())?;
                    c.insert(&idb[..], entry.as_slice())?;
                    k.insert(key.as_bytes(), &idb[..])?;
                }
                Ok::<_, TxErr>(())
            })
            .expect("raw txn");
        self.after_commit(flush);
    }
}

/// The one-tree layout: the crate's prefixes (`d` record, `c` entry, `k` index) in one
/// tree, each logical put one atomic `apply_batch`.
pub struct Raw1 {
    pub dir: TempDir,
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub next_id: u64,
}

pub fn prefixed(p: u8, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.push(p);
    v.extend_from_slice(k);
    v
}

impl Raw1 {
    pub fn filled(n: usize) -> Raw1 {
        Raw1::filled_in(n, 1000)
    }

    /// A one-tree store holding `n` keys, loaded in one batch per `chunk` keys.
    pub fn filled_in(n: usize, chunk: usize) -> Raw1 {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = raw_db(&dir.path().join("db"));
        let tree = db.open_tree("keystore").expect("tree");
        let mut r = Raw1 {
            dir,
            db,
            tree,
            next_id: 0,
        };
        let idx: Vec<usize> = (0..n).collect();
        for chunk in idx.chunks(chunk.max(1)) {
            let mut b = sled::Batch::default();
            for &i in chunk {
                let key = key(i);
                let id = r.next_id;
                r.next_id += 1;
                b.insert(prefixed(b'd', key.as_bytes()), record_bytes(i, None));
                b.insert(
                    prefixed(b'c', &id.to_be_bytes()),
                    entry_bytes(&key, CommitOp::Update, id),
                );
                b.insert(prefixed(b'k', key.as_bytes()), &id.to_be_bytes()[..]);
            }
            r.tree.apply_batch(b).expect("fill");
        }
        r.db.flush().expect("flush");
        r
    }

    /// One logical put as one atomic batch on one tree (same writes as [`Raw3::put_txn`]).
    pub fn put_batch(&mut self, key: &str, record: &[u8], flush: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let mut b = sled::Batch::default();
        let kk = prefixed(b'k', key.as_bytes());
        if let Some(old) = self.tree.get(&kk).expect("get") {
            b.remove(prefixed(b'c', &old));
        }
        b.insert(prefixed(b'd', key.as_bytes()), record);
        b.insert(
            prefixed(b'c', &id.to_be_bytes()),
            entry_bytes(key, CommitOp::Update, id),
        );
        b.insert(kk, &id.to_be_bytes()[..]);
        self.tree.apply_batch(b).expect("batch");
        if flush {
            self.db.flush().expect("flush");
        }
    }
}

/// Records in a tree of their own, the layout the crate did not choose (see PERFORMANCE.md,
/// "Known limits"): `records` holds the records by key, `rest` the one-tree layout's other
/// entries (`c` entry, `k` index); a put is one two-tree transaction, with the previous
/// entry read before it as the crate reads it.
pub struct Raw2 {
    pub dir: TempDir,
    pub db: sled::Db,
    pub records: sled::Tree,
    pub rest: sled::Tree,
    pub next_id: u64,
}

impl Raw2 {
    /// Holds keys `0..n`, loaded in one batch per tree for every 1,000 keys.
    pub fn filled(n: usize) -> Raw2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = raw_db(&dir.path().join("db"));
        let mut r = Raw2 {
            records: db.open_tree("records").expect("tree"),
            rest: db.open_tree("keystore").expect("tree"),
            db,
            dir,
            next_id: 0,
        };
        let idx: Vec<usize> = (0..n).collect();
        for chunk in idx.chunks(1000) {
            let (mut v, mut rest) = (sled::Batch::default(), sled::Batch::default());
            for &i in chunk {
                let key = key(i);
                let id = r.next_id;
                r.next_id += 1;
                v.insert(key.as_bytes(), record_bytes(i, None));
                rest.insert(
                    prefixed(b'c', &id.to_be_bytes()),
                    entry_bytes(&key, CommitOp::Update, id),
                );
                rest.insert(prefixed(b'k', key.as_bytes()), &id.to_be_bytes()[..]);
            }
            r.records.apply_batch(v).expect("fill");
            r.rest.apply_batch(rest).expect("fill");
        }
        r.db.flush().expect("flush");
        r
    }

    /// One logical put (the writes of [`Raw1::put_batch`]) as one two-tree transaction.
    pub fn put_txn(&mut self, key: &str, record: &[u8], flush: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let kk = prefixed(b'k', key.as_bytes());
        let old = self.rest.get(&kk).expect("get").map(|o| prefixed(b'c', &o));
        let ck = prefixed(b'c', &id.to_be_bytes());
        let entry = entry_bytes(key, CommitOp::Update, id);
        (&self.records, &self.rest)
            .transaction(|(v, rest)| {
                if let Some(old) = &old {
                    rest.remove(old.as_slice())?;
                }
                v.insert(key.as_bytes(), record)?;
                rest.insert(ck.as_slice(), entry.as_slice())?;
                rest.insert(kk.as_slice(), &id.to_be_bytes()[..])?;
                Ok::<_, TxErr>(())
            })
            .expect("raw txn");
        if flush {
            self.db.flush().expect("flush");
        }
    }
}

/// Size of a directory tree in bytes.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

// ----- running and reporting -----

/// The benchmarks that ran in this process: (group, function, parameter).
static RAN: Mutex<BTreeSet<(String, String, String)>> = Mutex::new(BTreeSet::new());

/// Whether criterion was asked to measure (`cargo bench`), not to test (`--test`, which
/// `cargo test --benches` implies), list or profile.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a == "--profile-time")
}

/// A routine for `iter_custom`: `routine(iters)` returns the time of `iters` iterations.
pub type Routine<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// A criterion group at one parameter (N) that keeps its routines, so that after the
/// group the ratios of [`Ratio`] pairs can be measured again head to head.
pub struct Group<'c, 'a> {
    name: String,
    param: String,
    g: BenchmarkGroup<'c, criterion::measurement::WallTime>,
    fns: Vec<(String, Routine<'a>)>,
}

impl<'c, 'a> Group<'c, 'a> {
    pub fn new(c: &'c mut Criterion, name: &str, param: impl std::fmt::Display) -> Self {
        Group {
            name: name.to_string(),
            param: param.to_string(),
            g: c.benchmark_group(name),
            fns: Vec::new(),
        }
    }

    /// The criterion group, to configure it.
    pub fn inner(&mut self) -> &mut BenchmarkGroup<'c, criterion::measurement::WallTime> {
        &mut self.g
    }

    /// Benches `routine` as `function/N` (the data set is built by a first call with zero
    /// iterations, outside any measurement).
    pub fn add(&mut self, function: &str, routine: impl FnMut(u64) -> Duration + 'a) {
        let mut routine: Routine<'a> = Box::new(routine);
        let (group, param) = (self.name.clone(), self.param.clone());
        self.g
            .bench_function(BenchmarkId::new(function, &param), |b| {
                RAN.lock().unwrap_or_else(|p| p.into_inner()).insert((
                    group.clone(),
                    function.to_string(),
                    param.clone(),
                ));
                routine(0);
                b.iter_custom(&mut routine)
            });
        self.fns.push((function.to_string(), routine));
    }

    /// Ends the group, then measures each of `ratios` that belongs to it head to head.
    pub fn finish(mut self, ratios: &[Ratio]) {
        self.g.finish();
        for r in ratios.iter().filter(|r| r.group == self.name) {
            let ia = self.fns.iter().position(|(f, _)| f == r.num);
            let ib = self.fns.iter().position(|(f, _)| f == r.den);
            let (Some(ia), Some(ib)) = (ia, ib) else {
                continue;
            };
            if !ran(&self.name, r.num, &self.param) || !ran(&self.name, r.den, &self.param) {
                continue;
            }
            if !measuring() {
                continue;
            }
            let (lo, hi) = self.fns.split_at_mut(ia.max(ib));
            let (a, b) = if ia < ib {
                (&mut lo[ia].1, &mut hi[0].1)
            } else {
                (&mut hi[0].1, &mut lo[ib].1)
            };
            let p = paired(a, b);
            println!(
                "{}/{}: {} / {} = {:.2}x head to head (quartiles {:.2}-{:.2}, {} rounds; {} vs {})",
                self.name,
                self.param,
                r.num,
                r.den,
                p.ratio,
                p.q1,
                p.q3,
                p.rounds,
                fmt_ns(p.num_ns),
                fmt_ns(p.den_ns)
            );
            PAIRS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(PairResult {
                    group: self.name.clone(),
                    num: r.num.to_string(),
                    den: r.den.to_string(),
                    param: self.param.clone(),
                    p,
                });
        }
    }
}

fn ran(group: &str, function: &str, param: &str) -> bool {
    RAN.lock().unwrap_or_else(|p| p.into_inner()).contains(&(
        group.to_string(),
        function.to_string(),
        param.to_string(),
    ))
}

/// A head-to-head measurement of two routines.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Median over the rounds of (time per iteration of a) / (time per iteration of b).
    pub ratio: f64,
    pub q1: f64,
    pub q3: f64,
    pub rounds: usize,
    /// Median time per iteration of a and of b, in ns.
    pub num_ns: f64,
    pub den_ns: f64,
}

struct PairResult {
    group: String,
    num: String,
    den: String,
    param: String,
    p: Paired,
}

static PAIRS: Mutex<Vec<PairResult>> = Mutex::new(Vec::new());

/// How many iterations of `f` take at least 10 ms (1 for slow routines).
fn calibrate(f: &mut Routine<'_>) -> u64 {
    let mut k = 1u64;
    loop {
        let d = f(k);
        if d >= Duration::from_millis(10) || k >= 1 << 20 {
            return k;
        }
        k *= 2;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Runs `a` and `b` in alternating bursts of about 10 ms each (order flipped every round,
/// so drift and bursts of load from other processes hit both alike) and returns the median
/// ratio of their times per iteration.
pub fn paired(a: &mut Routine<'_>, b: &mut Routine<'_>) -> Paired {
    let ka = calibrate(a);
    let kb = calibrate(b);
    let probe = a(ka) + b(kb);
    let rounds = (Duration::from_secs(4).as_secs_f64() / probe.as_secs_f64().max(1e-6))
        .clamp(9.0, 41.0) as usize;
    let (mut ratios, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let (da, db) = if r % 2 == 0 {
            let da = a(ka);
            (da, b(kb))
        } else {
            let db = b(kb);
            (a(ka), db)
        };
        let x = da.as_nanos() as f64 / ka as f64;
        let y = db.as_nanos() as f64 / kb as f64;
        ratios.push(x / y);
        ta.push(x);
        tb.push(y);
    }
    for v in [&mut ratios, &mut ta, &mut tb] {
        v.sort_by(|x, y| x.total_cmp(y));
    }
    Paired {
        ratio: quantile(&ratios, 0.5),
        q1: quantile(&ratios, 0.25),
        q3: quantile(&ratios, 0.75),
        rounds,
        num_ns: quantile(&ta, 0.5),
        den_ns: quantile(&tb, 0.5),
    }
}

/// Times `iters` runs of `f` and returns the total.
pub fn timed(iters: u64, f: impl FnMut(u64)) -> Duration {
    timed_span(0..iters, f)
}

/// Times `f` for each index of `span`.
pub fn timed_span(span: std::ops::Range<u64>, mut f: impl FnMut(u64)) -> Duration {
    let t = Instant::now();
    for i in span {
        f(i);
    }
    t.elapsed()
}

/// Times `f` for each of `iters` writes, then the `Db::flush` of `db` that pays for the
/// writes they left queued on sled's I/O pool (see the raw baselines in PERFORMANCE.md).
pub fn timed_flushed(db: &sled::Db, iters: u64, f: impl FnMut(u64)) -> Duration {
    let t = Instant::now();
    timed(iters, f);
    db.flush().expect("flush");
    t.elapsed()
}

/// A ratio to print at the end: `num / den` within `group` at each parameter.
pub struct Ratio {
    pub group: &'static str,
    pub num: &'static str,
    pub den: &'static str,
    /// What the ratio means or the target it is checked against.
    pub note: &'static str,
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    // <target>/release/deps/<bench binary>
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect()
}

/// The median time per iteration in nanoseconds that criterion estimated in this run.
pub fn median_ns(group: &str, function: &str, param: &str) -> Option<f64> {
    let ran = RAN.lock().unwrap_or_else(|p| p.into_inner());
    if !ran.contains(&(group.to_string(), function.to_string(), param.to_string())) {
        return None;
    }
    drop(ran);
    let path = criterion_dir()
        .join(safe(group))
        .join(safe(function))
        .join(safe(param))
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("median")?.get("point_estimate")?.as_f64()
}

/// Renders nanoseconds for a table.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Prints every measured median and the ratios, and writes them as Markdown to
/// `<target>/criterion/atps-<bench>.md`.
pub fn report(bench: &str, ratios: &[Ratio]) {
    let ran: Vec<(String, String, String)> = RAN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    if ran.is_empty() {
        return;
    }
    let mut md = String::new();
    md.push_str(&format!(
        "### `{bench}` (median per iteration, this run)\n\n| group | function | N | median |\n|---|---|---|---|\n"
    ));
    for (g, f, p) in &ran {
        if let Some(ns) = median_ns(g, f, p) {
            md.push_str(&format!("| {g} | {f} | {p} | {} |\n", fmt_ns(ns)));
        }
    }
    let pairs = PAIRS.lock().unwrap_or_else(|p| p.into_inner());
    if !pairs.is_empty() {
        md.push_str(
            "\n#### Head to head (alternating bursts, median ratio of times per iteration)\n\n| group | N | ratio | value | quartiles | times | note |\n|---|---|---|---|---|---|---|\n",
        );
        for pr in pairs.iter() {
            let note = ratios
                .iter()
                .find(|r| r.group == pr.group && r.num == pr.num && r.den == pr.den)
                .map_or("", |r| r.note);
            md.push_str(&format!(
                "| {} | {} | {} / {} | {:.2}x | {:.2}-{:.2} | {} / {} | {} |\n",
                pr.group,
                pr.param,
                pr.num,
                pr.den,
                pr.p.ratio,
                pr.p.q1,
                pr.p.q3,
                fmt_ns(pr.p.num_ns),
                fmt_ns(pr.p.den_ns),
                note
            ));
        }
    }
    drop(pairs);
    md.push_str("\n#### Ratios of criterion's medians\n\n| group | N | ratio | value | note |\n|---|---|---|---|---|\n");
    let params: BTreeSet<&String> = ran.iter().map(|(_, _, p)| p).collect();
    for r in ratios {
        for p in &params {
            if let (Some(a), Some(b)) = (median_ns(r.group, r.num, p), median_ns(r.group, r.den, p))
            {
                md.push_str(&format!(
                    "| {} | {p} | {} / {} | {:.2}x | {} |\n",
                    r.group,
                    r.num,
                    r.den,
                    a / b,
                    r.note
                ));
            }
        }
    }
    println!("\n{md}");
    let dir = criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("atps-{bench}.md")), md);
}

/// The system clock's now.
pub fn now() -> Timestamp {
    use at_persistence_secondary_server::model::{Clock, SystemClock};
    SystemClock.now()
}
