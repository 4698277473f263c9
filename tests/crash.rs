//! Crash tests: a child process (this test binary, re-executed) writes through the public
//! API with the server defaults and reports what it starts and what is acknowledged; the
//! parent kills it with SIGKILL at a seeded random moment, reopens the stores and checks
//! that nothing acknowledged was lost, nothing was half-applied and every counter and
//! index agrees with what is stored.
//!
//! This file has its own `main` (`harness = false`). With `ATPS_CRASH_CHILD` set it is the
//! child and runs the workload `ATPS_CRASH_SCENARIO` names; otherwise it runs every scenario
//! and prints per-scenario figures and a closing `crash: N passed, M failed` line.
//!
//! Scenarios (default rounds): `migration` (6): migrations killed part-way; `writers` (20): four writers of put/put_meta/remove;
//! `transactions` (10): transactions of 2,000 puts, kills aimed inside commits;
//! `remove_many` (8): atomic fills and remove_many of 50-key groups; `expiry` (8): short
//! explicit expiries, a real clock and a delete_expired_keys loop; `compaction` (8):
//! access-log inserts while compact(false) is drained in a loop; `clear` (8): bundle clear
//! while writing; `upgrade` (6): the open that turns a format-2 store into format 3.
//!
//! Knobs: `ATPS_CRASH_SCENARIOS=a,b` runs only those; `ATPS_CRASH_ROUNDS` sets the rounds
//! of every scenario, `ATPS_CRASH_ROUNDS_<NAME>` (e.g. `ATPS_CRASH_ROUNDS_CLEAR`) one
//! scenario's; `ATPS_CRASH_ROUNDS_SCALE` multiplies them (for long manual runs). A failing
//! round prints its seed; replay it with `ATPS_CRASH_SEED=<seed> ATPS_CRASH_ROUNDS=1
//! ATPS_CRASH_SCENARIOS=<name>`. When sled refuses to reopen a killed database the
//! directory is kept and its path printed.

mod common;

use at_persistence_secondary_server::model::{AssertedTimestamps, AtData, AtMetaData, CommitOp};
use at_persistence_secondary_server::sled::SledPersistenceFactory;
use at_persistence_secondary_server::store::{
    Bundle, DynKeyStore, IterateOptions, KeyPattern, PersistenceFactory, RemoveOptions,
    ScanOptions, WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::server;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const AT_SIGN: &str = "@crash";
const DAY: i64 = 86_400_000;

/// A small deterministic PRNG (xorshift64*), so a seed replays a round.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a round measured.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    /// Acknowledged operations the verifier checked.
    acks: u64,
    /// Kills aimed at an operation window (a commit or a clear).
    aimed: u64,
    /// Aimed kills that landed inside the window (no acknowledgement seen).
    in_window: u64,
}

/// A failed round: `keep` asks the driver to keep the directory (sled refused to reopen).
struct Failure {
    message: String,
    keep: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            keep: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_string())
    }
}

type RoundResult = Result<Figures, Failure>;

struct Scenario {
    name: &'static str,
    default_rounds: u64,
    /// The child's workload.
    child: fn(Arc<Bundle>, u64) -> futures::future::BoxFuture<'static, ()>,
    /// The parent's side of one round.
    parent: fn(&Path, u64) -> RoundResult,
    /// Checks over all rounds (e.g. the share of aimed kills that hit a window).
    summary: fn(u64, &Figures) -> Result<(), String>,
}

fn no_summary(_: u64, _: &Figures) -> Result<(), String> {
    Ok(())
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "writers",
        default_rounds: 20,
        child: |b, seed| Box::pin(writers::child(b, seed)),
        parent: writers::parent,
        summary: no_summary,
    },
    Scenario {
        name: "transactions",
        default_rounds: 10,
        child: |b, seed| Box::pin(transactions::child(b, seed)),
        parent: transactions::parent,
        summary: transactions::summary,
    },
    Scenario {
        name: "remove_many",
        default_rounds: 8,
        child: |b, seed| Box::pin(remove_many::child(b, seed)),
        parent: remove_many::parent,
        summary: no_summary,
    },
    Scenario {
        name: "expiry",
        default_rounds: 8,
        child: |b, seed| Box::pin(expiry::child(b, seed)),
        parent: expiry::parent,
        summary: no_summary,
    },
    Scenario {
        name: "compaction",
        default_rounds: 8,
        child: |b, seed| Box::pin(compaction::child(b, seed)),
        parent: compaction::parent,
        summary: no_summary,
    },
    Scenario {
        name: "clear",
        default_rounds: 8,
        child: |b, seed| Box::pin(clear::child(b, seed)),
        parent: clear::parent,
        summary: no_summary,
    },
    Scenario {
        name: "migration",
        default_rounds: 6,
        child: |b, seed| Box::pin(migration::child(b, seed)),
        parent: migration::parent,
        summary: no_summary,
    },
    Scenario {
        name: "upgrade",
        default_rounds: 6,
        child: |b, seed| Box::pin(upgrade::child(b, seed)),
        parent: upgrade::parent,
        summary: upgrade::summary,
    },
];

// ---------------------------------------------------------------- child plumbing

type Out = Arc<std::sync::Mutex<std::io::Stdout>>;

fn say(out: &Out, line: String) {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn stdout() -> Out {
    Arc::new(std::sync::Mutex::new(std::io::stdout()))
}

fn child_main(scenario: &Scenario, dir: PathBuf, seed: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let factory = SledPersistenceFactory::new();
        let bundle = factory
            .initialize(AT_SIGN, &server(&dir))
            .await
            .expect("child initialize");
        (scenario.child)(bundle, seed).await;
    });
}

// ---------------------------------------------------------------- parent plumbing

/// A running child and the lines it printed.
struct Child {
    process: std::process::Child,
    lines: Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Child {
    fn spawn(scenario: &str, dir: &Path, seed: u64) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut process = Command::new(exe)
            .env("ATPS_CRASH_CHILD", dir)
            .env("ATPS_CRASH_SCENARIO", scenario)
            .env("ATPS_CRASH_SEED", seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stdout = process.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            process,
            lines,
            reader: Some(reader),
        })
    }

    /// Waits for the `ready` line, handing earlier lines to `on_line`.
    fn wait_ready(
        &mut self,
        mut on_line: impl FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l == "ready" => return Ok(()),
                Ok(l) => on_line(&l)?,
                Err(_) => {
                    let _ = self.process.kill();
                    let _ = self.process.wait();
                    return Err(format!("child not ready after {:?}", start.elapsed()));
                }
            }
        }
    }

    /// The next line, waiting at most `wait`.
    fn next_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Hands every line to `on_line` for `run_for`.
    fn follow(
        &self,
        run_for: Duration,
        mut on_line: impl FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + run_for;
        while Instant::now() < deadline {
            if let Some(l) = self.next_line(Duration::from_millis(2)) {
                on_line(&l)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs the child and returns the lines it printed that were not read yet.
    fn kill(mut self) -> Result<Vec<String>, String> {
        self.process.kill().map_err(|e| format!("kill: {e}"))?; // SIGKILL on Unix
        let _ = self.process.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(self.lines.try_iter().collect())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Spawns the child of `scenario` and hands every line it prints to `record`: until it is
/// ready, then for `run_for`; then SIGKILLs it and hands over the lines it printed that
/// were not read yet.
fn run_and_kill(
    scenario: &str,
    dir: &Path,
    seed: u64,
    run_for: Duration,
    mut record: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    let mut child = Child::spawn(scenario, dir, seed)?;
    child.wait_ready(&mut record)?;
    child.follow(run_for, &mut record)?;
    for l in child.kill()? {
        record(&l)?;
    }
    Ok(())
}

/// Reopens the stores of `dir` and runs `check` on the bundle; a refused reopen is a
/// failure that keeps the directory.
fn reopen<F>(dir: &Path, check: F) -> RoundResult
where
    F: for<'a> FnOnce(&'a Bundle) -> futures::future::BoxFuture<'a, Result<Figures, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let factory = SledPersistenceFactory::new();
        let bundle = match factory.initialize(AT_SIGN, &server(dir)).await {
            Ok(b) => b,
            Err(e) => {
                return Err(Failure {
                    message: format!("reopen failed: {e}"),
                    keep: true,
                })
            }
        };
        let r = check(&bundle).await;
        factory.close().await;
        r.map_err(Failure::from)
    })
}

fn parse<T: std::str::FromStr>(s: &str, line: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad line {line:?}"))
}

async fn state_of(ks: &DynKeyStore, k: &str) -> Result<Option<AtData>, String> {
    match ks.get(k).await {
        Ok(d) => Ok(Some(d)),
        Err(PersistenceError::KeyNotFound { .. }) => Ok(None),
        Err(e) => Err(format!("get {k}: {e}")),
    }
}

/// Every record (expired and unborn included), by key.
async fn records(ks: &DynKeyStore) -> Result<BTreeMap<String, AtData>, String> {
    let options = ScanOptions {
        include_expired: true,
        ..Default::default()
    };
    let mut keys = ks
        .scan_keys(&KeyPattern::default(), options)
        .await
        .map_err(|e| format!("scan_keys: {e}"))?;
    let mut out = BTreeMap::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| format!("scan item: {e}"))?;
        match state_of(ks, &k).await? {
            Some(d) => {
                if out.insert(k.clone(), d).is_some() {
                    return Err(format!("scan_keys listed {k} twice"));
                }
            }
            None => return Err(format!("scan_keys listed {k}, which get does not find")),
        }
    }
    Ok(out)
}

/// Every retained commit entry as (id, atKey, op), ascending.
async fn log_entries(ks: &DynKeyStore) -> Result<Vec<(i64, String, CommitOp)>, String> {
    let log = ks.commit_log().ok_or("no commit log")?;
    let mut s = log
        .iterate(IterateOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(e) = s.next().await {
        let e = e.map_err(|e| format!("undecodable entry: {e}"))?;
        out.push((
            e.commit_id.ok_or("entry without id")?,
            e.at_key,
            e.operation,
        ));
    }
    Ok(out)
}

/// The counters and indexes of the keystore agree with its records and entries: one
/// entry per key, get_latest_commit_entry finds each, entries_count and stats count
/// exactly, get_keys lists only stored keys, the expiry index lists exactly the records
/// with an expiry, the mark is at least every stored id.
async fn check_keystore_consistency(ks: &DynKeyStore) -> Result<(), String> {
    let log = ks.commit_log().ok_or("no commit log")?;
    let recs = records(ks).await?;
    let entries = log_entries(ks).await?;
    let mut per_key = BTreeMap::new();
    let mut prev = -1;
    for (id, k, op) in &entries {
        if *id <= prev {
            return Err(format!("iterate not ascending at {id}"));
        }
        prev = *id;
        if per_key.insert(k.clone(), *id).is_some() {
            return Err(format!("two entries for {k}"));
        }
        let latest = log
            .get_latest_commit_entry(k)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|e| e.commit_id);
        if latest != Some(*id) {
            return Err(format!(
                "get_latest_commit_entry({k}) = {latest:?}, iterate has {id} {op:?}"
            ));
        }
    }
    let count = log.entries_count().await.map_err(|e| e.to_string())?;
    if count != entries.len() as u64 {
        return Err(format!(
            "entries_count {count} but iterate yields {}",
            entries.len()
        ));
    }
    let mark = log
        .last_committed_sequence_number()
        .await
        .map_err(|e| e.to_string())?;
    if entries.last().is_some_and(|(id, _, _)| *id > mark) {
        return Err(format!(
            "mark {mark} below a stored id {:?}",
            entries.last()
        ));
    }
    let stats = ks.stats().await.map_err(|e| e.to_string())?;
    if stats.total_keys != recs.len() as u64 {
        return Err(format!(
            "stats.total_keys {} but {} records",
            stats.total_keys,
            recs.len()
        ));
    }
    let with_expiry: BTreeSet<&String> = recs
        .iter()
        .filter(|(_, d)| d.meta_data.as_ref().and_then(|m| m.expires_at).is_some())
        .map(|(k, _)| k)
        .collect();
    if stats.ttl_keys != with_expiry.len() as u64 {
        return Err(format!(
            "stats.ttl_keys {} but {} records have an expiry",
            stats.ttl_keys,
            with_expiry.len()
        ));
    }
    let far = at_persistence_secondary_server::model::Timestamp::from_millis(i64::MAX / 2);
    let mut peeked = ks
        .peek_expired(Some(far), None)
        .await
        .map_err(|e| e.to_string())?;
    let mut indexed = BTreeSet::new();
    while let Some(k) = peeked.next().await {
        let k = k.map_err(|e| e.to_string())?;
        if !with_expiry.contains(&k) {
            return Err(format!(
                "the expiry index lists {k}, which has no stored expiry"
            ));
        }
        indexed.insert(k);
    }
    if indexed.len() != with_expiry.len() {
        return Err(format!(
            "the expiry index lists {} keys, {} records have an expiry",
            indexed.len(),
            with_expiry.len()
        ));
    }
    let mut listed = ks.get_keys(None).await.map_err(|e| e.to_string())?;
    while let Some(k) = listed.next().await {
        let k = k.map_err(|e| e.to_string())?;
        if !recs.contains_key(&k) {
            return Err(format!("get_keys lists {k}, which is not stored"));
        }
    }
    Ok(())
}

/// A fresh write after reopen gets an id above every id seen.
async fn check_next_id(ks: &DynKeyStore, above: i64) -> Result<(), String> {
    let next = ks
        .put(
            "after.crash@crash",
            AtData::new("x"),
            WriteOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no id")?;
    if next <= above {
        return Err(format!("next id {next} reuses an id (seen up to {above})"));
    }
    Ok(())
}

// ---------------------------------------------------------------- scenario: writers

mod writers {
    use super::*;

    const WRITERS: usize = 4;
    const KEYS_PER_WRITER: usize = 25;

    fn key(writer: usize, i: usize) -> String {
        format!("k{i}.w{writer}@crash")
    }

    pub async fn child(bundle: Arc<Bundle>, seed: u64) {
        let out = stdout();
        say(&out, "ready".to_string());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let ks = Arc::clone(bundle.key_value_store());
            let out = Arc::clone(&out);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((w as u64 + 1) * 0x9e37_79b9));
                let mut seq = 0u64;
                loop {
                    seq += 1;
                    let k = key(w, rng.below(KEYS_PER_WRITER as u64) as usize);
                    let value = format!("v{w}-{seq}");
                    let op = match rng.below(10) {
                        0..=5 => "put",
                        6..=7 => "meta",
                        _ => "rm",
                    };
                    say(&out, format!("begin {w} {op} {k} {value}"));
                    let id = match op {
                        "put" => {
                            ks.put(&k, AtData::new(&value), WriteOptions::default())
                                .await
                        }
                        "meta" => {
                            let meta = AtMetaData {
                                data_signature: Some(value.clone()),
                                ..Default::default()
                            };
                            ks.put_meta(&k, meta, WriteOptions::default()).await
                        }
                        _ => ks.remove(&k, RemoveOptions::default()).await,
                    }
                    .expect("child write");
                    say(
                        &out,
                        format!("ack {w} {op} {k} {value} {}", id.unwrap_or(-1)),
                    );
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    #[derive(Debug, Clone)]
    struct Op {
        op: String,
        value: String,
    }

    /// The acknowledged history of one round.
    #[derive(Debug)]
    struct History {
        /// Per key, the last acknowledged write and its id.
        acked: HashMap<String, (Op, i64)>,
        /// Per writer, the write begun but not acknowledged when the child died.
        in_flight: HashMap<usize, (String, Op)>,
        max_id: i64,
        acks: u64,
    }

    fn record(h: &mut History, line: &str) -> Result<(), String> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["begin", w, op, k, value] => {
                let w: usize = parse(w, line)?;
                let op = Op {
                    op: op.to_string(),
                    value: value.to_string(),
                };
                h.in_flight.insert(w, (k.to_string(), op));
            }
            ["ack", w, op, k, value, id] => {
                let w: usize = parse(w, line)?;
                let id: i64 = parse(id, line)?;
                h.in_flight.remove(&w);
                let op = Op {
                    op: op.to_string(),
                    value: value.to_string(),
                };
                h.acked.insert(k.to_string(), (op, id));
                h.max_id = h.max_id.max(id);
                h.acks += 1;
            }
            _ => return Err(format!("unexpected child output {line:?}")),
        }
        Ok(())
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut h = History {
            acked: HashMap::new(),
            in_flight: HashMap::new(),
            max_id: -1,
            acks: 0,
        };
        let run_for = Duration::from_millis(30 + Rng::new(seed).below(300));
        run_and_kill("writers", dir, seed, run_for, |l| record(&mut h, l))?;
        reopen(dir, |b| Box::pin(check(b, h)))
    }

    /// What a key looks like on disk: absent, or its data and its signature field.
    fn shows(state: &Option<AtData>, w: &Op) -> bool {
        match (w.op.as_str(), state) {
            ("put", Some(d)) => d.data.as_deref() == Some(w.value.as_str()),
            ("meta", Some(d)) => {
                d.meta_data
                    .as_ref()
                    .and_then(|m| m.data_signature.as_deref())
                    == Some(w.value.as_str())
            }
            ("rm", None) => true,
            _ => false,
        }
    }

    fn matches_op(actual: CommitOp, w: &Op) -> bool {
        match w.op.as_str() {
            "put" => matches!(actual, CommitOp::UpdateAll | CommitOp::Update),
            "meta" => actual == CommitOp::UpdateMeta,
            _ => actual == CommitOp::Delete,
        }
    }

    async fn check(bundle: &Bundle, h: History) -> Result<Figures, String> {
        let ks = bundle.key_value_store();
        let in_flight: HashMap<&str, &Op> =
            h.in_flight.values().map(|(k, w)| (k.as_str(), w)).collect();
        // 1. Every acknowledged write is there (or superseded by the in-flight one).
        for (k, (w, _)) in &h.acked {
            let state = state_of(ks, k).await?;
            if !shows(&state, w) && !in_flight.get(k.as_str()).is_some_and(|f| shows(&state, f)) {
                return Err(format!(
                    "key {k}: acknowledged {w:?} but found {state:?} (in flight: {:?})",
                    in_flight.get(k.as_str())
                ));
            }
        }
        // 2. Every entry belongs to the key's last write; acknowledged keys keep theirs.
        let entries = log_entries(ks).await?;
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        let mut max_seen = -1;
        for (id, at_key, op) in entries {
            max_seen = max_seen.max(id);
            seen.insert(at_key.clone(), id);
            let acked = h.acked.get(&at_key);
            let flight = in_flight.get(at_key.as_str());
            let ok = match (acked, flight) {
                (Some((w, aid)), _) if *aid == id && matches_op(op, w) => true,
                (Some((_, aid)), Some(f)) if id > *aid && matches_op(op, f) => true,
                (None, Some(f)) => matches_op(op, f),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "entry {id} {at_key} {op:?} matches no write (acked {acked:?}, in flight {flight:?})"
                ));
            }
        }
        for (k, (_, id)) in &h.acked {
            match seen.get(k) {
                Some(found) if found >= id => {}
                other => return Err(format!("key {k}: entry {id} missing, found {other:?}")),
            }
        }
        check_keystore_consistency(ks).await?;
        // 3. The mark and the next id are above every id seen.
        let log = ks.commit_log().ok_or("no commit log")?;
        let last = log
            .last_committed_sequence_number()
            .await
            .map_err(|e| e.to_string())?;
        if last < h.max_id || last < max_seen {
            return Err(format!(
                "high-water mark {last} below acknowledged {} / stored {max_seen}",
                h.max_id
            ));
        }
        check_next_id(ks, h.max_id.max(max_seen)).await?;
        Ok(Figures {
            acks: h.acks,
            ..Default::default()
        })
    }
}

// ---------------------------------------------------------------- scenario: transactions

mod transactions {
    use super::*;

    /// Puts per transaction; every transaction rewrites the same keys.
    pub const KEYS: usize = 2_000;

    fn key(i: usize) -> String {
        format!("t{i}.txn@crash")
    }

    fn value(n: u64) -> AtData {
        AtData::with_meta(
            n.to_string(),
            AtMetaData {
                ttl: Some(DAY + n as i64),
                ..Default::default()
            },
        )
    }

    pub async fn child(bundle: Arc<Bundle>, _seed: u64) {
        let out = stdout();
        let ks = Arc::clone(bundle.key_value_store());
        say(&out, "ready".to_string());
        for n in 0u64.. {
            let txn = ks.begin_transaction().await.expect("begin_transaction");
            for i in 0..KEYS {
                txn.put(&key(i), value(n)).await.expect("txn.put");
            }
            say(&out, format!("commit-start {n}"));
            txn.commit().await.expect("commit");
            say(&out, format!("commit-ok {n}"));
        }
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut child = Child::spawn("transactions", dir, seed)?;
        let mut rng = Rng::new(seed);
        child.wait_ready(|l| Err(format!("unexpected line before ready: {l}")))?;
        // Let 1-2 commits complete (measuring them), then kill inside the next one after a
        // random delay between 10% and 90% of the fastest commit seen.
        let complete_first = 1 + rng.below(2);
        let mut acked: Option<u64> = None;
        let mut started: Option<(u64, Instant)> = None;
        let mut fastest: Option<Duration> = None;
        let target = loop {
            let l = child
                .next_line(Duration::from_secs(60))
                .ok_or("no output from the child for 60 s")?;
            let parts: Vec<&str> = l.split(' ').collect();
            match parts.as_slice() {
                ["commit-start", n] => {
                    let n: u64 = parse(n, &l)?;
                    if n >= complete_first {
                        break n;
                    }
                    started = Some((n, Instant::now()));
                }
                ["commit-ok", n] => {
                    let n: u64 = parse(n, &l)?;
                    if let Some((s, at)) = started {
                        if s == n {
                            let d = at.elapsed();
                            fastest = Some(fastest.map_or(d, |f| f.min(d)));
                        }
                    }
                    acked = Some(n);
                }
                _ => return Err(format!("unexpected child output {l:?}").into()),
            }
        };
        let window = fastest.ok_or("no commit was measured")?;
        let delay = window.mul_f64(0.1 + 0.8 * (rng.below(1000) as f64 / 1000.0));
        std::thread::sleep(delay);
        let rest = child.kill()?;
        let mut in_window = 1;
        for l in rest {
            if l == format!("commit-ok {target}") {
                acked = Some(target);
                in_window = 0;
            } else if l.starts_with("commit-start") {
                return Err(format!("the child started another commit: {l}").into());
            }
        }
        // Every acknowledged transaction's puts are checked (through the last one's values).
        let acks = acked.map_or(0, |n| (n + 1) * KEYS as u64);
        reopen(dir, move |b| Box::pin(check(b, acked, target)))?;
        Ok(Figures {
            acks,
            aimed: 1,
            in_window,
        })
    }

    /// Transaction `n` wrote every key with value n, key i under id KEYS * n + i.
    async fn check(bundle: &Bundle, acked: Option<u64>, in_flight: u64) -> Result<Figures, String> {
        let ks = bundle.key_value_store();
        let log = ks.commit_log().ok_or("no commit log")?;
        let recs = records(ks).await?;
        let applied: Option<u64> = if recs.is_empty() {
            None
        } else {
            let first = recs
                .values()
                .next()
                .and_then(|d| d.data.as_deref())
                .ok_or("a record without data")?;
            Some(
                first
                    .parse()
                    .map_err(|_| format!("unexpected value {first}"))?,
            )
        };
        let ok = applied == acked || applied == Some(in_flight);
        if !ok {
            return Err(format!(
                "transaction {applied:?} applied; acknowledged {acked:?}, in flight {in_flight}"
            ));
        }
        let Some(n) = applied else {
            let mark = log
                .last_committed_sequence_number()
                .await
                .map_err(|e| e.to_string())?;
            if mark != -1 || log.entries_count().await.map_err(|e| e.to_string())? != 0 {
                return Err(format!("no transaction applied but the mark is {mark}"));
            }
            return Ok(Figures::default());
        };
        if recs.len() != KEYS {
            return Err(format!(
                "transaction {n} applied to {} of {KEYS} keys",
                recs.len()
            ));
        }
        let base = (KEYS as i64) * n as i64;
        for i in 0..KEYS {
            let k = key(i);
            let d = recs.get(&k).ok_or_else(|| format!("{k} missing"))?;
            let meta = d.meta_data.as_ref().ok_or("no metadata")?;
            if d.data.as_deref() != Some(n.to_string().as_str()) || meta.ttl != Some(DAY + n as i64)
            {
                return Err(format!(
                    "{k}: {d:?} is not transaction {n}'s value (half-applied)"
                ));
            }
        }
        let entries = log_entries(ks).await?;
        if entries.len() != KEYS {
            return Err(format!("{} commit entries for {KEYS} keys", entries.len()));
        }
        for (j, (id, at_key, op)) in entries.iter().enumerate() {
            if *id != base + j as i64 || *at_key != key(j) || *op != CommitOp::UpdateAll {
                return Err(format!(
                    "entry {j} is ({id}, {at_key}, {op:?}), expected ({}, {}, UpdateAll)",
                    base + j as i64,
                    key(j)
                ));
            }
        }
        let mark = log
            .last_committed_sequence_number()
            .await
            .map_err(|e| e.to_string())?;
        if mark != base + KEYS as i64 - 1 {
            return Err(format!("mark {mark}, expected {}", base + KEYS as i64 - 1));
        }
        check_keystore_consistency(ks).await?;
        let mut listed = 0;
        let mut s = ks.get_keys(None).await.map_err(|e| e.to_string())?;
        while s.next().await.is_some() {
            listed += 1;
        }
        if listed != KEYS {
            return Err(format!("get_keys lists {listed} keys, expected {KEYS}"));
        }
        // One more transaction continues the numbering.
        use at_persistence_secondary_server::store::KeyValueStoreExt;
        ks.transaction(|txn| async move { txn.put(&key(0), value(n + 1)).await })
            .await
            .map_err(|e| e.to_string())?;
        let id = log
            .get_latest_commit_entry(&key(0))
            .await
            .map_err(|e| e.to_string())?
            .and_then(|e| e.commit_id);
        if id != Some(mark + 1) {
            return Err(format!(
                "the next transaction took id {id:?}, expected {}",
                mark + 1
            ));
        }
        Ok(Figures::default())
    }

    pub fn summary(rounds: u64, f: &Figures) -> Result<(), String> {
        if rounds > 0 && f.in_window * 2 < f.aimed {
            return Err(format!(
                "only {} of {} kills landed inside a commit",
                f.in_window, f.aimed
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- scenario: remove_many

mod remove_many {
    use super::*;

    const WRITERS: u64 = 2;
    const GROUPS_PER_WRITER: u64 = 5;
    const GROUP: usize = 50;

    fn keys(g: u64) -> Vec<String> {
        (0..GROUP)
            .map(|i| format!("g{g}-{i:02}.rm@crash"))
            .collect()
    }

    pub async fn child(bundle: Arc<Bundle>, seed: u64) {
        let out = stdout();
        say(&out, "ready".to_string());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let ks = Arc::clone(bundle.key_value_store());
            let out = Arc::clone(&out);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((w + 1) * 0x51_7cc1_b727));
                for seq in 0u64.. {
                    let g = w * GROUPS_PER_WRITER + rng.below(GROUPS_PER_WRITER);
                    let ks_keys = keys(g);
                    if rng.below(2) == 0 {
                        let v = format!("f{w}-{seq}");
                        say(&out, format!("begin {w} fill {g} {v}"));
                        let txn = ks.begin_transaction().await.expect("begin");
                        for k in &ks_keys {
                            txn.put(k, AtData::with_meta(&v, AtMetaData::default()))
                                .await
                                .expect("txn.put");
                        }
                        txn.commit().await.expect("commit");
                        say(&out, format!("ack {w} fill {g} {v}"));
                    } else {
                        say(&out, format!("begin {w} rm {g} -"));
                        let refs: Vec<&str> = ks_keys.iter().map(String::as_str).collect();
                        let n = ks.remove_many(&refs, false).await.expect("remove_many");
                        say(&out, format!("ack {w} rm {g} {n}"));
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum GroupOp {
        Fill(String),
        Rm,
    }

    #[derive(Default)]
    struct History {
        acked: HashMap<u64, GroupOp>,
        in_flight: HashMap<u64, (u64, GroupOp)>,
        acks: u64,
    }

    fn record(h: &mut History, line: &str) -> Result<(), String> {
        let parts: Vec<&str> = line.split(' ').collect();
        let (kind, w, op, g, v) = match parts.as_slice() {
            [kind, w, op, g, v] => (
                *kind,
                parse::<u64>(w, line)?,
                *op,
                parse::<u64>(g, line)?,
                *v,
            ),
            _ => return Err(format!("unexpected child output {line:?}")),
        };
        let op = match op {
            "fill" => GroupOp::Fill(v.to_string()),
            "rm" => GroupOp::Rm,
            _ => return Err(format!("unexpected child output {line:?}")),
        };
        match kind {
            "begin" => {
                h.in_flight.insert(w, (g, op));
            }
            "ack" => {
                if op == GroupOp::Rm {
                    let n: usize = parse(v, line)?;
                    if n != 0 && n != GROUP {
                        return Err(format!("remove_many of group {g} removed {n} keys"));
                    }
                }
                h.in_flight.remove(&w);
                h.acked.insert(g, op);
                h.acks += 1;
            }
            _ => return Err(format!("unexpected child output {line:?}")),
        }
        Ok(())
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut h = History::default();
        let run_for = Duration::from_millis(30 + Rng::new(seed).below(400));
        run_and_kill("remove_many", dir, seed, run_for, |l| record(&mut h, l))?;
        reopen(dir, |b| Box::pin(check(b, h)))
    }

    async fn check(bundle: &Bundle, h: History) -> Result<Figures, String> {
        let ks = bundle.key_value_store();
        let recs = records(ks).await?;
        let entries = log_entries(ks).await?;
        let by_key: HashMap<&str, (i64, CommitOp)> = entries
            .iter()
            .map(|(id, k, op)| (k.as_str(), (*id, *op)))
            .collect();
        let in_flight: HashMap<u64, &GroupOp> =
            h.in_flight.values().map(|(g, op)| (*g, op)).collect();
        for g in 0..WRITERS * GROUPS_PER_WRITER {
            let ks_keys = keys(g);
            let values: Vec<Option<&str>> = ks_keys
                .iter()
                .map(|k| recs.get(k).map(|d| d.data.as_deref().unwrap_or("")))
                .collect();
            let state = if values.iter().all(|v| v.is_none()) {
                GroupOp::Rm
            } else if values.iter().all(|v| *v == values[0]) {
                GroupOp::Fill(values[0].unwrap_or("").to_string())
            } else {
                return Err(format!("group {g} is half-applied: {values:?}"));
            };
            let acked = h.acked.get(&g);
            let flight = in_flight.get(&g).copied();
            let ok = match acked {
                Some(a) => *a == state || flight == Some(&state),
                None => state == GroupOp::Rm || flight == Some(&state),
            };
            if !ok {
                return Err(format!(
                    "group {g} shows {state:?}; acknowledged {acked:?}, in flight {flight:?}"
                ));
            }
            // The group's entries: all or none, one op, contiguous ids in key order.
            let group_entries: Vec<Option<&(i64, CommitOp)>> =
                ks_keys.iter().map(|k| by_key.get(k.as_str())).collect();
            if group_entries.iter().all(|e| e.is_none()) {
                if state != GroupOp::Rm {
                    return Err(format!("group {g} is filled but has no commit entries"));
                }
                continue;
            }
            let first = group_entries[0].ok_or_else(|| format!("group {g}: partial entries"))?;
            for (i, e) in group_entries.iter().enumerate() {
                let (id, op) = e.ok_or_else(|| format!("group {g}: key {i} has no entry"))?;
                if *id != first.0 + i as i64 || *op != first.1 {
                    return Err(format!(
                        "group {g}: key {i} has ({id}, {op:?}), expected ({}, {:?})",
                        first.0 + i as i64,
                        first.1
                    ));
                }
            }
            let expected_op = match state {
                GroupOp::Fill(_) => CommitOp::UpdateAll,
                GroupOp::Rm => CommitOp::Delete,
            };
            if first.1 != expected_op {
                return Err(format!(
                    "group {g} shows {state:?} but its entries are {:?}",
                    first.1
                ));
            }
        }
        check_keystore_consistency(ks).await?;
        let max = entries.iter().map(|e| e.0).max().unwrap_or(-1);
        check_next_id(ks, max).await?;
        Ok(Figures {
            acks: h.acks,
            ..Default::default()
        })
    }
}

// ---------------------------------------------------------------- scenario: expiry

mod expiry {
    use super::*;
    use at_persistence_secondary_server::model::{Clock, SystemClock, Timestamp};

    const WRITERS: u64 = 3;
    const KEYS_PER_WRITER: u64 = 40;

    fn key(w: u64, i: u64) -> String {
        format!("e{i}.w{w}@crash")
    }

    pub async fn child(bundle: Arc<Bundle>, seed: u64) {
        let out = stdout();
        say(&out, "ready".to_string());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let ks = Arc::clone(bundle.key_value_store());
            let out = Arc::clone(&out);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((w + 1) * 0x2545_f491));
                for seq in 0u64.. {
                    let k = key(w, rng.below(KEYS_PER_WRITER));
                    let v = format!("x{w}-{seq}");
                    // Three in four writes expire 1-80 ms from now; the rest never do.
                    let expires = (rng.below(4) != 0)
                        .then(|| SystemClock.now().plus_millis(1 + rng.below(80) as i64));
                    let shown = expires.map_or("none".to_string(), |t| t.as_millis().to_string());
                    say(&out, format!("begin {w} {k} {v} {shown}"));
                    let options = WriteOptions::asserted(AssertedTimestamps {
                        expires_at: expires,
                        ..Default::default()
                    });
                    let id = ks
                        .put(&k, AtData::with_meta(&v, AtMetaData::default()), options)
                        .await
                        .expect("put")
                        .unwrap_or(-1);
                    say(&out, format!("ack {w} {k} {v} {shown} {id}"));
                }
            }));
        }
        let ks = Arc::clone(bundle.key_value_store());
        let out2 = Arc::clone(&out);
        tasks.push(tokio::spawn(async move {
            loop {
                ks.delete_expired_keys().await.expect("delete_expired_keys");
                say(&out2, "sweep".to_string());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    }

    #[derive(Debug, Clone)]
    struct Write {
        value: String,
        expires: Option<i64>,
        id: i64,
    }

    #[derive(Default)]
    struct History {
        acked: HashMap<String, Write>,
        in_flight: HashMap<u64, (String, Write)>,
        acks: u64,
        sweeps: u64,
    }

    fn record(h: &mut History, line: &str) -> Result<(), String> {
        let parts: Vec<&str> = line.split(' ').collect();
        let exp = |s: &str| -> Result<Option<i64>, String> {
            if s == "none" {
                Ok(None)
            } else {
                parse(s, line).map(Some)
            }
        };
        match parts.as_slice() {
            ["sweep"] => h.sweeps += 1,
            ["begin", w, k, v, e] => {
                let write = Write {
                    value: v.to_string(),
                    expires: exp(e)?,
                    id: -1,
                };
                h.in_flight.insert(parse(w, line)?, (k.to_string(), write));
            }
            ["ack", w, k, v, e, id] => {
                let write = Write {
                    value: v.to_string(),
                    expires: exp(e)?,
                    id: parse(id, line)?,
                };
                h.in_flight.remove(&parse::<u64>(w, line)?);
                h.acked.insert(k.to_string(), write);
                h.acks += 1;
            }
            _ => return Err(format!("unexpected child output {line:?}")),
        }
        Ok(())
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut h = History::default();
        let run_for = Duration::from_millis(40 + Rng::new(seed).below(300));
        run_and_kill("expiry", dir, seed, run_for, |l| record(&mut h, l))?;
        reopen(dir, |b| Box::pin(check(b, h)))
    }

    async fn check(bundle: &Bundle, h: History) -> Result<Figures, String> {
        let ks = bundle.key_value_store();
        let log = ks.commit_log().ok_or("no commit log")?;
        let now = SystemClock.now().as_millis();
        let recs = records(ks).await?;
        let in_flight: HashMap<&str, &Write> =
            h.in_flight.values().map(|(k, w)| (k.as_str(), w)).collect();
        let shows = |d: &Option<&AtData>, w: &Write| match d {
            Some(d) => {
                d.data.as_deref() == Some(w.value.as_str())
                    && d.meta_data
                        .as_ref()
                        .and_then(|m| m.expires_at)
                        .map(Timestamp::as_millis)
                        == w.expires
            }
            // Gone only by the sweep, so only once expired.
            None => w.expires.is_some_and(|e| e <= now),
        };
        for w in 0..WRITERS {
            for i in 0..KEYS_PER_WRITER {
                let k = key(w, i);
                let d = recs.get(&k);
                let acked = h.acked.get(&k);
                let flight = in_flight.get(k.as_str()).copied();
                let ok = match acked {
                    Some(a) => shows(&d, a) || flight.is_some_and(|f| shows(&d, f)),
                    None => d.is_none() || flight.is_some_and(|f| shows(&d, f)),
                };
                if !ok {
                    return Err(format!(
                        "{k}: found {d:?}; acknowledged {acked:?}, in flight {flight:?} (now {now})"
                    ));
                }
                // A present key has its entry; a swept key's entry was purged with it.
                let entry = log
                    .get_latest_commit_entry(&k)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|e| e.commit_id);
                match (d, entry, acked) {
                    (Some(_), Some(id), Some(a))
                        if id == a.id || (id > a.id && flight.is_some()) => {}
                    (Some(_), Some(_), None) if flight.is_some() => {}
                    (None, None, _) => {}
                    _ => {
                        return Err(format!(
                            "{k}: record {d:?} with entry {entry:?} (acknowledged {acked:?})"
                        ))
                    }
                }
            }
        }
        check_keystore_consistency(ks).await?;
        // The expired listing is exactly the stored records expired at a fixed instant.
        let at = Timestamp::from_millis(now);
        let mut peeked = BTreeSet::new();
        let mut s = ks
            .peek_expired(Some(at), None)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(k) = s.next().await {
            peeked.insert(k.map_err(|e| e.to_string())?);
        }
        let due: BTreeSet<String> = recs
            .iter()
            .filter(|(_, d)| {
                d.meta_data
                    .as_ref()
                    .and_then(|m| m.expires_at)
                    .is_some_and(|e| e <= at)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if peeked != due {
            return Err(format!(
                "peek_expired({now}) = {peeked:?}, stored expired {due:?}"
            ));
        }
        // A sweep now removes them, purging their entries, and nothing else.
        ks.delete_expired_keys().await.map_err(|e| e.to_string())?;
        let after = records(ks).await?;
        for k in &due {
            if after.contains_key(k) {
                return Err(format!("{k} survived the sweep"));
            }
            if log
                .get_latest_commit_entry(k)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!("{k}: the sweep left its entry"));
            }
        }
        for k in recs.keys() {
            if !due.contains(k) && !after.contains_key(k) {
                let still_live = SystemClock.now().as_millis();
                let exp = recs[k].meta_data.as_ref().and_then(|m| m.expires_at);
                if exp.is_none_or(|e| e.as_millis() > still_live) {
                    return Err(format!("{k} was swept although not expired ({exp:?})"));
                }
            }
        }
        check_keystore_consistency(ks).await?;
        let max = h.acked.values().map(|w| w.id).max().unwrap_or(-1);
        check_next_id(ks, max).await?;
        Ok(Figures {
            acks: h.acks + h.sweeps,
            ..Default::default()
        })
    }
}

// ---------------------------------------------------------------- scenario: compaction

mod compaction {
    use super::*;

    const WRITERS: u64 = 3;
    const AT_SIGNS: [&str; 4] = ["@ann", "@ben", "@cat", "@dan"];
    const KEYS: [&str; 5] = ["a.wavi", "b.wavi", "c.wavi", "d.wavi", "e.wavi"];

    pub async fn child(bundle: Arc<Bundle>, seed: u64) {
        let out = stdout();
        let log = Arc::clone(bundle.access_log().expect("an access log"));
        say(&out, "ready".to_string());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let log = Arc::clone(&log);
            let out = Arc::clone(&out);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((w + 1) * 0x9e37_79b9));
                for seq in 0u64.. {
                    // The untallied field carries a marker naming the writer and sequence.
                    let marker = format!("w{w}-{seq}");
                    say(&out, format!("begin {w} {seq}"));
                    let r = match rng.below(3) {
                        0 => {
                            let from = AT_SIGNS[rng.below(4) as usize];
                            log.insert(from, "pol", Some(&marker)).await
                        }
                        1 => {
                            let key = KEYS[rng.below(5) as usize];
                            log.insert(&format!("@{marker}"), "lookup", Some(key)).await
                        }
                        _ => log.insert(&format!("@{marker}"), "from", None).await,
                    };
                    let id = r.expect("insert");
                    say(&out, format!("ack {w} {seq} {id}"));
                }
            }));
        }
        let out2 = Arc::clone(&out);
        tasks.push(tokio::spawn(async move {
            loop {
                let mut s = log.compact(false).await.expect("compact");
                let mut n = 0;
                while let Some(item) = s.next().await {
                    item.expect("compaction item");
                    n += 1;
                }
                say(&out2, format!("compacted {n}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    }

    #[derive(Default)]
    struct History {
        last_acked: HashMap<u64, u64>,
        in_flight: HashMap<u64, u64>,
        acks: u64,
        compactions: u64,
    }

    fn record(h: &mut History, line: &str) -> Result<(), String> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["compacted", _] => h.compactions += 1,
            ["begin", w, seq] => {
                h.in_flight.insert(parse(w, line)?, parse(seq, line)?);
            }
            ["ack", w, seq, _id] => {
                let w: u64 = parse(w, line)?;
                h.in_flight.remove(&w);
                h.last_acked.insert(w, parse(seq, line)?);
                h.acks += 1;
            }
            _ => return Err(format!("unexpected child output {line:?}")),
        }
        Ok(())
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut h = History::default();
        let run_for = Duration::from_millis(40 + Rng::new(seed).below(300));
        run_and_kill("compaction", dir, seed, run_for, |l| record(&mut h, l))?;
        reopen(dir, |b| Box::pin(check(b, h)))
    }

    /// Recounts a tally the way the access log ranks it: descending count, ties by first
    /// retained occurrence.
    fn ranking(names: &[String]) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64, usize)> = Vec::new();
        for (pos, n) in names.iter().enumerate() {
            match counts.iter_mut().find(|(name, _, _)| name == n) {
                Some(c) => c.1 += 1,
                None => counts.push((n.clone(), 1, pos)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        counts.into_iter().map(|(n, c, _)| (n, c)).collect()
    }

    async fn check(bundle: &Bundle, h: History) -> Result<Figures, String> {
        let log = bundle.access_log().ok_or("no access log")?;
        let mut s = log.iterate().await.map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        while let Some(e) = s.next().await {
            entries.push(e.map_err(|e| format!("undecodable access-log entry: {e}"))?);
        }
        let count = log.entries_count().await.map_err(|e| e.to_string())?;
        if count != entries.len() as u64 {
            return Err(format!(
                "entries_count {count} but iterate yields {}",
                entries.len()
            ));
        }
        let pol: Vec<String> = entries
            .iter()
            .filter(|e| e.verb_name.as_deref() == Some("pol"))
            .filter_map(|e| e.from_at_sign.clone())
            .collect();
        let lookups: Vec<String> = entries
            .iter()
            .filter(|e| e.verb_name.as_deref() == Some("lookup"))
            .filter_map(|e| e.lookup_key.clone())
            .collect();
        let top_at_signs = log
            .most_visited_at_signs(100)
            .await
            .map_err(|e| e.to_string())?;
        if top_at_signs != ranking(&pol) {
            return Err(format!(
                "most_visited_at_signs {top_at_signs:?}, recount {:?}",
                ranking(&pol)
            ));
        }
        let top_keys = log
            .most_visited_keys(100)
            .await
            .map_err(|e| e.to_string())?;
        if top_keys != ranking(&lookups) {
            return Err(format!(
                "most_visited_keys {top_keys:?}, recount {:?}",
                ranking(&lookups)
            ));
        }
        let last = log
            .get_last_access_log_entry()
            .await
            .map_err(|e| e.to_string())?;
        if last.as_ref() != entries.last() {
            return Err(format!(
                "get_last_access_log_entry {last:?}, iterate ends {:?}",
                entries.last()
            ));
        }
        // Per writer: the retained entries are a contiguous run of its sequence ending at
        // its last acknowledged insert (or the one in flight).
        let mut per_writer: HashMap<u64, Vec<u64>> = HashMap::new();
        for e in &entries {
            let marker = match e.verb_name.as_deref() {
                Some("pol") => e.lookup_key.clone(),
                _ => e
                    .from_at_sign
                    .as_deref()
                    .map(|s| s.trim_start_matches('@').to_string()),
            }
            .ok_or_else(|| format!("entry without marker: {e:?}"))?;
            let (w, seq) = marker
                .trim_start_matches('w')
                .split_once('-')
                .ok_or_else(|| format!("bad marker {marker}"))?;
            per_writer
                .entry(parse(w, &marker)?)
                .or_default()
                .push(parse(seq, &marker)?);
        }
        for w in 0..WRITERS {
            let seqs = per_writer.remove(&w).unwrap_or_default();
            let acked = h.last_acked.get(&w).copied();
            let flight = h.in_flight.get(&w).copied();
            if seqs.windows(2).any(|p| p[1] != p[0] + 1) {
                return Err(format!(
                    "writer {w}: retained entries are not contiguous: {seqs:?}"
                ));
            }
            match (seqs.last(), acked) {
                (None, None) => {}
                (None, Some(_)) if entries.len() < 10 => {}
                (Some(&l), Some(a)) if l == a || Some(l) == flight => {}
                (Some(&l), None) if Some(l) == flight => {}
                (l, a) => {
                    return Err(format!(
                        "writer {w}: newest retained {l:?}, last acknowledged {a:?}, in flight {flight:?}"
                    ))
                }
            }
        }
        if !per_writer.is_empty() {
            return Err(format!(
                "entries of unknown writers {:?}",
                per_writer.keys()
            ));
        }
        // The log goes on: a compaction after reopen keeps the counts consistent.
        let mut s = log.compact(false).await.map_err(|e| e.to_string())?;
        let mut removed = 0u64;
        while let Some(i) = s.next().await {
            i.map_err(|e| e.to_string())?;
            removed += 1;
        }
        let after = log.entries_count().await.map_err(|e| e.to_string())?;
        if after + removed != count {
            return Err(format!(
                "compaction removed {removed} of {count}, {after} left"
            ));
        }
        Ok(Figures {
            acks: h.acks + h.compactions,
            ..Default::default()
        })
    }
}

// ---------------------------------------------------------------- scenario: clear

mod clear {
    use super::*;
    use at_persistence_secondary_server::model::AtNotificationBuilder;

    /// Pre-clear ids start here, so ids issued after a completed clear (from 0) are told
    /// apart from every earlier one.
    pub const FLOOR: i64 = 1_000_000;
    const SEED_KEYS: usize = 1_500;
    const WRITERS: u64 = 2;
    const KEYS_PER_WRITER: u64 = 30;

    fn seed_key(i: usize) -> String {
        format!("s{i}.seed@crash")
    }

    fn key(w: u64, i: u64) -> String {
        format!("k{i}.w{w}@crash")
    }

    pub async fn child(bundle: Arc<Bundle>, seed: u64) {
        use at_persistence_secondary_server::store::KeyValueStoreExt;
        let out = stdout();
        let ks = Arc::clone(bundle.key_value_store());
        let log = ks.commit_log().expect("commit log");
        log.raise_last_committed_sequence_number(FLOOR)
            .await
            .expect("raise");
        ks.transaction(|txn| async move {
            for i in 0..SEED_KEYS {
                let meta = AtMetaData {
                    ttl: Some(DAY),
                    ..Default::default()
                };
                txn.put(&seed_key(i), AtData::with_meta("seed", meta))
                    .await?;
            }
            Ok(())
        })
        .await
        .expect("seed");
        let al = bundle.access_log().expect("access log");
        for i in 0..300u64 {
            al.insert(["@ann", "@ben"][(i % 2) as usize], "pol", None)
                .await
                .expect("access log seed");
        }
        let nk = bundle.notification_keystore().expect("notifications");
        for i in 0..100u64 {
            let n = AtNotificationBuilder {
                id: format!("n{i}"),
                ..AtNotificationBuilder::new()
            }
            .build();
            nk.put(&n.id, n.clone(), WriteOptions::default())
                .await
                .expect("notification seed");
        }
        say(&out, "ready".to_string());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let ks = Arc::clone(&ks);
            let out = Arc::clone(&out);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((w + 1) * 0x9e37_79b9));
                for seq in 0u64.. {
                    let k = key(w, rng.below(KEYS_PER_WRITER));
                    let v = format!("v{w}-{seq}");
                    say(&out, format!("begin {w} {k} {v}"));
                    let id = ks
                        .put(&k, AtData::new(&v), WriteOptions::default())
                        .await
                        .expect("put")
                        .unwrap_or(-1);
                    say(&out, format!("ack {w} {k} {v} {id}"));
                }
            }));
        }
        let mut rng = Rng::new(seed ^ 0xc1ea);
        tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
        say(&out, "clear-start".to_string());
        bundle.clear().await.expect("clear");
        say(&out, "clear-ok".to_string());
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Where a line stands relative to the clear.
    #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
    enum Phase {
        Before,
        During,
        After,
    }

    #[derive(Debug, Clone)]
    struct Write {
        value: String,
        id: i64,
        phase: Phase,
    }

    struct History {
        phase: Phase,
        acked: HashMap<String, Write>,
        in_flight: HashMap<u64, (String, String)>,
        acks: u64,
        max_acked_before: i64,
    }

    fn record(h: &mut History, line: &str) -> Result<(), String> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["clear-start"] => h.phase = Phase::During,
            ["clear-ok"] => h.phase = Phase::After,
            ["begin", w, k, v] => {
                h.in_flight
                    .insert(parse(w, line)?, (k.to_string(), v.to_string()));
            }
            ["ack", w, k, v, id] => {
                let id: i64 = parse(id, line)?;
                h.in_flight.remove(&parse::<u64>(w, line)?);
                if h.phase == Phase::Before {
                    h.max_acked_before = h.max_acked_before.max(id);
                }
                h.acked.insert(
                    k.to_string(),
                    Write {
                        value: v.to_string(),
                        id,
                        phase: h.phase,
                    },
                );
                h.acks += 1;
            }
            _ => return Err(format!("unexpected child output {line:?}")),
        }
        Ok(())
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut child = Child::spawn("clear", dir, seed)?;
        let mut rng = Rng::new(seed);
        let mut h = History {
            phase: Phase::Before,
            acked: HashMap::new(),
            in_flight: HashMap::new(),
            acks: 0,
            max_acked_before: FLOOR + SEED_KEYS as i64,
        };
        child.wait_ready(|l| record(&mut h, l))?;
        let mut aimed = 0;
        if rng.below(2) == 0 {
            // Aim: kill 0-30 ms after the clear starts.
            aimed = 1;
            loop {
                let l = child
                    .next_line(Duration::from_secs(60))
                    .ok_or("no output from the child for 60 s")?;
                record(&mut h, &l)?;
                if h.phase != Phase::Before {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        } else {
            child.follow(Duration::from_millis(10 + rng.below(200)), |l| {
                record(&mut h, l)
            })?;
        }
        for l in child.kill()? {
            record(&mut h, &l)?;
        }
        let in_window = u64::from(aimed == 1 && h.phase == Phase::During);
        let acks = h.acks;
        reopen(dir, |b| Box::pin(check(b, h)))?;
        Ok(Figures {
            acks,
            aimed,
            in_window,
        })
    }

    async fn check(bundle: &Bundle, h: History) -> Result<Figures, String> {
        let ks = bundle.key_value_store();
        let log = ks.commit_log().ok_or("no commit log")?;
        check_keystore_consistency(ks)
            .await
            .map_err(|e| format!("after reopen: {e}"))?;
        let recs = records(ks).await?;
        let entries = log_entries(ks).await?;
        let mark = log
            .last_committed_sequence_number()
            .await
            .map_err(|e| e.to_string())?;
        let cleared = mark < FLOOR;
        if h.phase == Phase::After && !cleared {
            return Err(format!("clear acknowledged but the mark is {mark}"));
        }
        let in_flight: HashMap<&str, &str> = h
            .in_flight
            .values()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // Every record holds a value written to its key.
        for (k, d) in &recs {
            let v = d.data.as_deref().unwrap_or("");
            let known = (k.ends_with(".seed@crash") && v == "seed")
                || (k.starts_with('k') && v.starts_with('v'));
            if !known {
                return Err(format!("{k} holds {v:?}, which was never written to it"));
            }
        }
        if cleared {
            // Nothing from before the clear survives; ids restarted below the floor.
            if let Some(e) = entries.iter().find(|e| e.0 >= FLOOR) {
                return Err(format!("clear completed but entry {e:?} survived"));
            }
            for (k, d) in &recs {
                let before = h.acked.get(k).is_some_and(|w| {
                    w.phase == Phase::Before && d.data.as_deref() == Some(w.value.as_str())
                });
                if k.ends_with(".seed@crash") || before {
                    return Err(format!("clear completed but {k} = {d:?} survived"));
                }
            }
        } else if h.phase == Phase::Before {
            // The clear never started: every acknowledged write is there.
            for i in 0..SEED_KEYS {
                if !recs.contains_key(&seed_key(i)) {
                    return Err(format!("{} lost without a clear", seed_key(i)));
                }
            }
        }
        for (k, w) in &h.acked {
            let d = recs.get(k);
            let shows = d.is_some_and(|d| d.data.as_deref() == Some(w.value.as_str()))
                || in_flight
                    .get(k.as_str())
                    .is_some_and(|v| d.is_some_and(|d| d.data.as_deref() == Some(*v)));
            // Ids restart at 0 after a clear, so an id below the floor is a post-clear write.
            let post_clear = w.phase == Phase::After || w.id < FLOOR;
            let may_be_cleared = !post_clear && h.phase != Phase::Before;
            let cleared_away = may_be_cleared && (d.is_none() || cleared);
            if !shows && !cleared_away {
                return Err(format!(
                    "{k}: acknowledged {w:?} ({:?} the clear) but found {d:?}",
                    h.phase
                ));
            }
        }
        if !cleared {
            check_next_id(ks, h.max_acked_before.max(mark)).await?;
        }
        // The other stores of the bundle are consistent too.
        let al = bundle.access_log().ok_or("no access log")?;
        let mut s = al.iterate().await.map_err(|e| e.to_string())?;
        let mut n = 0u64;
        let mut pol: HashMap<String, u64> = HashMap::new();
        while let Some(e) = s.next().await {
            let e = e.map_err(|e| e.to_string())?;
            n += 1;
            if let (Some("pol"), Some(from)) = (e.verb_name.as_deref(), e.from_at_sign) {
                *pol.entry(from).or_default() += 1;
            }
        }
        if al.entries_count().await.map_err(|e| e.to_string())? != n {
            return Err("access log: entries_count differs from iterate".into());
        }
        let top: HashMap<String, u64> = al
            .most_visited_at_signs(10)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        if top != pol {
            return Err(format!(
                "access log: most_visited_at_signs {top:?}, recount {pol:?}"
            ));
        }
        let nk = bundle.notification_keystore().ok_or("no notifications")?;
        let mut s = nk.iterate().await.map_err(|e| e.to_string())?;
        let mut ids = BTreeSet::new();
        while let Some(n) = s.next().await {
            ids.insert(n.map_err(|e| e.to_string())?.id);
        }
        if nk.entries_count().await.map_err(|e| e.to_string())? != ids.len() as u64 {
            return Err("notifications: entries_count differs from iterate".into());
        }
        let far = at_persistence_secondary_server::model::Timestamp::from_millis(i64::MAX / 2);
        let mut s = nk
            .peek_expired(Some(far), None)
            .await
            .map_err(|e| e.to_string())?;
        let mut indexed = BTreeSet::new();
        while let Some(id) = s.next().await {
            indexed.insert(id.map_err(|e| e.to_string())?);
        }
        if indexed != ids {
            return Err(format!(
                "notifications: the expiry index lists {} ids, {} are stored",
                indexed.len(),
                ids.len()
            ));
        }
        // Writing every key again keeps the counters exact (no stale index entries).
        {
            use at_persistence_secondary_server::store::KeyValueStoreExt;
            ks.transaction(|txn| async move {
                for i in 0..SEED_KEYS {
                    txn.put(&seed_key(i), AtData::new("again")).await?;
                }
                for w in 0..WRITERS {
                    for i in 0..KEYS_PER_WRITER {
                        txn.put(&key(w, i), AtData::new("again")).await?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| format!("rewriting every key: {e}"))?;
        }
        check_keystore_consistency(ks)
            .await
            .map_err(|e| format!("after rewriting every key: {e}"))?;
        Ok(Figures::default())
    }
}

// ---------------------------------------------------------------- driver

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn rounds_for(s: &Scenario) -> u64 {
    let specific = format!("ATPS_CRASH_ROUNDS_{}", s.name.to_uppercase());
    let base = env_u64(&specific)
        .or_else(|| env_u64("ATPS_CRASH_ROUNDS"))
        .unwrap_or(s.default_rounds);
    let scale: f64 = std::env::var("ATPS_CRASH_ROUNDS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    (base as f64 * scale).round() as u64
}

fn main() {
    if let Ok(dir) = std::env::var("ATPS_CRASH_CHILD") {
        let name = std::env::var("ATPS_CRASH_SCENARIO").unwrap_or_default();
        let seed = env_u64("ATPS_CRASH_SEED").unwrap_or(1);
        match SCENARIOS.iter().find(|s| s.name == name) {
            Some(s) => child_main(s, PathBuf::from(dir), seed),
            None => {
                eprintln!("unknown crash scenario {name:?}");
                std::process::exit(2);
            }
        }
        return;
    }
    let only: Option<Vec<String>> = std::env::var("ATPS_CRASH_SCENARIOS")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let base_seed = env_u64("ATPS_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
    });
    let (mut passed, mut failed) = (0u64, 0u64);
    for s in SCENARIOS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == s.name))
        {
            continue;
        }
        let rounds = rounds_for(s);
        let started = Instant::now();
        let mut total = Figures::default();
        let mut ok_rounds = 0;
        for r in 0..rounds {
            let seed = base_seed.wrapping_add(r.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => {
                    failed += 1;
                    eprintln!("crash {}: no temporary directory: {e}", s.name);
                    continue;
                }
            };
            match (s.parent)(dir.path(), seed) {
                Ok(f) => {
                    passed += 1;
                    ok_rounds += 1;
                    total.acks += f.acks;
                    total.aimed += f.aimed;
                    total.in_window += f.in_window;
                }
                Err(f) => {
                    failed += 1;
                    let kept = if f.keep {
                        format!(" (directory kept: {})", dir.keep().display())
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "crash {} round {r} FAILED (replay with ATPS_CRASH_SCENARIOS={} ATPS_CRASH_SEED={seed} ATPS_CRASH_ROUNDS=1): {}{kept}",
                        s.name, s.name, f.message
                    );
                }
            }
        }
        if let Err(e) = (s.summary)(ok_rounds, &total) {
            failed += 1;
            eprintln!("crash {} FAILED over {ok_rounds} rounds: {e}", s.name);
        }
        println!(
            "crash {}: {rounds} rounds, {} acknowledged operations checked, {} of {} aimed kills inside the window, {:.1} s",
            s.name,
            total.acks,
            total.in_window,
            total.aimed,
            started.elapsed().as_secs_f64()
        );
    }
    println!("crash: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Migration killed part-way: the child seeds the source bundle once, then migrates it into
/// a fresh target directory after another. After the kill, the source is unchanged and
/// consistent; every acknowledged target matches the source; the target that was being
/// written is consistent (`verify`), holds no id above the source's mark, and is refused as
/// a migration target until cleared, after which a migration into it matches the source.
mod migration {
    use super::*;
    use at_persistence_secondary_server::model::AtNotificationBuilder;
    use at_persistence_secondary_server::store::{
        KeyValueStoreExt, PersistenceMigrator, PersistenceSnapshot,
    };

    const KEYS: usize = 400;

    fn target_dir(dir: &Path, i: u64) -> PathBuf {
        dir.join(format!("target{i}"))
    }

    async fn seed(bundle: &Bundle) {
        let ks = bundle.key_value_store();
        ks.transaction(|txn| async move {
            for i in 0..KEYS {
                let meta = AtMetaData {
                    ttl: Some(if i % 7 == 0 { 1 } else { 86_400_000 }),
                    ..Default::default()
                };
                txn.put(&format!("k{i}.mig@crash"), AtData::with_meta("v", meta))
                    .await?;
            }
            Ok(())
        })
        .await
        .expect("seed keys");
        for i in 0..20 {
            ks.remove(&format!("gone{i}.mig@crash"), Default::default())
                .await
                .expect("tombstone");
        }
        let al = bundle.access_log().expect("access log");
        for i in 0..50 {
            al.insert("@bob", "pol", Some(&format!("k{i}")))
                .await
                .expect("access");
        }
        let nk = bundle.notification_keystore().expect("notifications");
        for _ in 0..30 {
            let n = AtNotificationBuilder::new().build();
            nk.put(&n.id.clone(), n, WriteOptions::default())
                .await
                .expect("notification");
        }
    }

    pub async fn child(bundle: Arc<Bundle>, _seed: u64) {
        let out = stdout();
        let dir = PathBuf::from(std::env::var("ATPS_CRASH_CHILD").expect("child dir"));
        seed(&bundle).await;
        say(&out, "ready".to_string());
        for i in 0u64.. {
            let factory = SledPersistenceFactory::new();
            let target = factory
                .initialize(AT_SIGN, &server(&target_dir(&dir, i)))
                .await
                .expect("target");
            say(&out, format!("begin {i}"));
            PersistenceMigrator::new()
                .migrate(&bundle, &target)
                .await
                .expect("migrate");
            say(&out, format!("ack {i}"));
            factory.close().await;
        }
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        let mut acked = Vec::new();
        let mut begun = None;
        let record = |l: &str| -> Result<(), String> {
            match l.split(' ').collect::<Vec<_>>().as_slice() {
                ["ready"] => {}
                ["begin", i] => begun = Some(parse::<u64>(i, l)?),
                ["ack", i] => acked.push(parse::<u64>(i, l)?),
                _ => return Err(format!("unexpected child output {l:?}")),
            }
            Ok(())
        };
        let run_for = Duration::from_millis(20 + Rng::new(seed).below(400));
        run_and_kill("migration", dir, seed, run_for, record)?;
        let dir = dir.to_path_buf();
        reopen(&dir.clone(), move |b| Box::pin(check(b, dir, acked, begun)))
    }

    async fn open(path: &Path) -> Result<(SledPersistenceFactory, Arc<Bundle>), String> {
        let f = SledPersistenceFactory::new();
        let b = f
            .initialize(AT_SIGN, &server(path))
            .await
            .map_err(|e| format!("reopen {}: {e}", path.display()))?;
        Ok((f, b))
    }

    async fn check(
        source: &Bundle,
        dir: PathBuf,
        acked: Vec<u64>,
        begun: Option<u64>,
    ) -> Result<Figures, String> {
        let report = source.verify().await.map_err(|e| e.to_string())?;
        if !report.is_ok() {
            return Err(format!("source after the kill:\n{report}"));
        }
        let want = PersistenceSnapshot::capture(source)
            .await
            .map_err(|e| e.to_string())?;
        let mark = source
            .commit_log()
            .ok_or("no commit log")?
            .last_committed_sequence_number()
            .await
            .map_err(|e| e.to_string())?;
        for i in &acked {
            let (f, t) = open(&target_dir(&dir, *i)).await?;
            let got = PersistenceSnapshot::capture(&t)
                .await
                .map_err(|e| e.to_string())?;
            if !got.matches(&want) {
                return Err(format!(
                    "acknowledged target {i} differs: {:?}",
                    got.differences_from(&want).first()
                ));
            }
            f.close().await;
        }
        let mut partial = 0;
        let in_flight = begun.filter(|i| !acked.contains(i));
        if let Some(i) = in_flight {
            let path = target_dir(&dir, i);
            if path.join("keys").exists() {
                let (f, t) = open(&path).await?;
                let report = t.verify().await.map_err(|e| e.to_string())?;
                if !report.is_ok() {
                    return Err(format!("target {i} half-written:\n{report}"));
                }
                let last = t
                    .commit_log()
                    .ok_or("no commit log")?
                    .last_committed_sequence_number()
                    .await
                    .map_err(|e| e.to_string())?;
                if last > mark {
                    return Err(format!("target {i} mark {last} above the source's {mark}"));
                }
                match PersistenceMigrator::new().migrate(source, &t).await {
                    Ok(_) => {}
                    Err(PersistenceError::TargetNotEmpty { .. }) => {
                        partial = 1;
                        t.clear().await.map_err(|e| e.to_string())?;
                        PersistenceMigrator::new()
                            .migrate(source, &t)
                            .await
                            .map_err(|e| format!("migrate after clear: {e}"))?;
                    }
                    Err(e) => return Err(format!("re-migrate target {i}: {e}")),
                }
                let got = PersistenceSnapshot::capture(&t)
                    .await
                    .map_err(|e| e.to_string())?;
                if !got.matches(&want) {
                    return Err(format!("re-migrated target {i} differs"));
                }
                f.close().await;
            }
        }
        // "Aimed" here: a migration was in flight at the kill; "inside the window": its
        // target already held data and had to be cleared before a new migration.
        Ok(Figures {
            acks: acked.len() as u64,
            aimed: u64::from(in_flight.is_some()),
            in_window: partial,
        })
    }
}

/// A format upgrade killed part-way: the parent turns a store into format 2's shape (a
/// creation-index entry per record, plus enough stray ones that removing them takes a
/// while), and the child's open upgrades it. The first round lets the open finish to time
/// it; later rounds kill the child at a seeded moment inside that time. Right after the
/// kill the store must still be format 2 with its whole index, or format 3 (with any
/// part of it); never format 2 missing entries. Every record must be there, and the next
/// open must finish the removal and leave a consistent store.
mod upgrade {
    use super::*;
    use at_persistence_secondary_server::store::KeyValueStoreExt;
    use common::open_raw;
    use std::sync::atomic::{AtomicU64, Ordering};

    const KEYS: usize = 500;
    const STRAY: usize = 60_000;
    /// Microseconds from spawning the child to its `opened` line, from the first round.
    static OPEN_MICROS: AtomicU64 = AtomicU64::new(0);

    pub async fn child(_bundle: Arc<Bundle>, _seed: u64) {
        say(&stdout(), "opened".to_string());
        futures::future::pending::<()>().await;
    }

    /// A closed store of [`KEYS`] records, rewritten into format 2's shape with
    /// [`STRAY`] extra index entries.
    fn build(dir: &Path) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let f = SledPersistenceFactory::new();
            let b = f
                .initialize(AT_SIGN, &server(dir))
                .await
                .map_err(|e| e.to_string())?;
            b.key_value_store()
                .transaction(|txn| async move {
                    for i in 0..KEYS {
                        txn.put(&format!("k{i}.up@crash"), AtData::new("v")).await?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?;
            f.close().await;
            Ok::<_, String>(())
        })?;
        let db = open_raw(&dir.join("keys"));
        let t = db.open_tree("keystore").map_err(|e| e.to_string())?;
        let entry = |i: usize, name: &str| {
            let mut k = vec![b'C'];
            k.extend_from_slice(&(((i as u64) + 1_700_000_000_000) ^ (1 << 63)).to_be_bytes());
            k.extend_from_slice(name.as_bytes());
            k
        };
        let names: Vec<String> = (0..KEYS)
            .map(|i| format!("k{i}.up@crash"))
            .chain((0..STRAY).map(|i| format!("gone{i}.up@crash")))
            .collect();
        for (c, names) in names.chunks(5_000).enumerate() {
            let mut batch = sled::Batch::default();
            for (j, n) in names.iter().enumerate() {
                batch.insert(entry(c * 5_000 + j, n), &[][..]);
            }
            t.apply_batch(batch).map_err(|e| e.to_string())?;
        }
        db.insert("format_version", &2u32.to_be_bytes()[..])
            .map_err(|e| e.to_string())?;
        db.flush().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The format record, the creation-index entries and the records of the closed store.
    fn raw_state(dir: &Path) -> Result<(u32, usize, usize), String> {
        let db = open_raw(&dir.join("keys"));
        let format = db
            .get("format_version")
            .map_err(|e| e.to_string())?
            .ok_or("no format record")?;
        let format = u32::from_be_bytes(
            format
                .as_ref()
                .try_into()
                .map_err(|_| "format record not 4 bytes")?,
        );
        let t = db.open_tree("keystore").map_err(|e| e.to_string())?;
        Ok((
            format,
            t.scan_prefix("C").count(),
            t.scan_prefix("d").count(),
        ))
    }

    pub fn parent(dir: &Path, seed: u64) -> RoundResult {
        build(dir)?;
        let started = Instant::now();
        let child = Child::spawn("upgrade", dir, seed)?;
        let calibrated = OPEN_MICROS.load(Ordering::Relaxed);
        let mut opened = false;
        if calibrated == 0 {
            // The timing round: let the open finish.
            match child.next_line(Duration::from_secs(120)) {
                Some(l) if l == "opened" => opened = true,
                other => return Err(format!("timing round: child said {other:?}").into()),
            }
            OPEN_MICROS.store(
                started.elapsed().as_micros().max(1) as u64,
                Ordering::Relaxed,
            );
        } else {
            // Aim between a fifth and nine tenths of the time an open took.
            let lo = calibrated / 5;
            let at = lo + Rng::new(seed).below(calibrated * 9 / 10 - lo);
            std::thread::sleep(Duration::from_micros(at).saturating_sub(started.elapsed()));
        }
        for l in child.kill()? {
            match l.as_str() {
                "opened" => opened = true,
                _ => return Err(format!("unexpected child output {l:?}").into()),
            }
        }
        let total = KEYS + STRAY;
        let (format, index, records) = raw_state(dir)?;
        if records != KEYS {
            return Err(format!("{records} records after the kill, not {KEYS}").into());
        }
        let cut_short = match (format, index) {
            (2, n) if n == total => false,
            (2, n) => return Err(format!("format 2 with {n} of {total} index entries").into()),
            (3, 0) => false,
            (3, n) if n < total => true,
            (3, _) => false,
            (f, _) => return Err(format!("format {f} after the kill").into()),
        };
        if opened && index != 0 {
            return Err(format!("the child opened with {index} index entries left").into());
        }
        let figures = reopen(dir, |b| {
            Box::pin(async move {
                let report = b.verify().await.map_err(|e| e.to_string())?;
                if !report.is_ok() {
                    return Err(format!("after the reopen:\n{report}"));
                }
                let stats = b
                    .key_value_store()
                    .stats()
                    .await
                    .map_err(|e| e.to_string())?;
                if stats.total_keys != KEYS as u64 {
                    return Err(format!("{} keys after the reopen", stats.total_keys));
                }
                Ok(Figures::default())
            })
        })?;
        let (format, index, records) = raw_state(dir)?;
        if (format, index, records) != (3, 0, KEYS) {
            return Err(format!(
                "after the reopen: format {format}, {index} index entries, {records} records"
            )
            .into());
        }
        // "Aimed": a kill round; "inside the window": it left a format-3 store with part of
        // the index, which the reopen finished.
        Ok(Figures {
            acks: figures.acks,
            aimed: u64::from(calibrated != 0),
            in_window: u64::from(cut_short),
        })
    }

    pub fn summary(rounds: u64, total: &Figures) -> Result<(), String> {
        if rounds > 2 && total.in_window == 0 {
            return Err(format!(
                "no kill of {} landed inside the removal of the index",
                total.aimed
            ));
        }
        Ok(())
    }
}
