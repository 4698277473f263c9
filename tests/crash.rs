//! Crash tests: a child process (this test binary, re-executed) writes through the public
//! API with the server defaults and reports each acknowledged write; the parent kills it
//! with SIGKILL at a seeded random moment, reopens the store and checks that nothing
//! acknowledged was lost and nothing was half-applied.
//!
//! This file has its own `main` (`harness = false`): with `ATPS_CRASH_CHILD` set it is the
//! child; otherwise it runs every scenario and prints a closing `N passed, N failed` line.
//!
//! Rounds per scenario: `ATPS_CRASH_ROUNDS` (default 20). The seed of a round is printed
//! when it fails and can be replayed with `ATPS_CRASH_SEED`.

use at_persistence_secondary_server::model::{AtData, AtMetaData, CommitOp};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, IterateOptions, PersistenceFactory, RemoveOptions, WriteOptions,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AT_SIGN: &str = "@crash";
const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 25;

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
        self.next() % n
    }
}

fn config(dir: &Path) -> SledPersistenceConfig {
    SledPersistenceConfig::server_defaults(
        dir.join("keys"),
        dir.join("commit_log"),
        dir.join("access_log"),
        dir.join("notifications"),
    )
    .with_cache_capacity(8 * 1024 * 1024)
}

fn key(writer: usize, i: usize) -> String {
    format!("k{i}.w{writer}@crash")
}

// ---------------------------------------------------------------- child

/// One write the child makes: `put`, `meta` (put_meta) or `rm` (remove).
fn child_main(dir: PathBuf, seed: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let factory = SledPersistenceFactory::new();
        let bundle = factory
            .initialize(AT_SIGN, &config(&dir))
            .await
            .expect("child initialize");
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
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
    });
}

fn say(out: &std::sync::Mutex<std::io::Stdout>, line: String) {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

// ---------------------------------------------------------------- parent

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

impl Default for History {
    fn default() -> Self {
        History {
            acked: HashMap::new(),
            in_flight: HashMap::new(),
            max_id: -1,
            acks: 0,
        }
    }
}

fn run_round(seed: u64) -> Result<u64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env("ATPS_CRASH_CHILD", dir.path())
        .env("ATPS_CRASH_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let mut rng = Rng::new(seed);
    let mut history = History::default();
    // Wait for "ready", then let it write for a random while.
    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l == "ready" => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                return Err(format!("child not ready after {:?}", start.elapsed()));
            }
        }
    }
    let run_for = Duration::from_millis(30 + rng.below(300));
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(5)) {
            record(&mut history, &l)?;
        }
    }
    child.kill().map_err(|e| format!("kill: {e}"))?; // SIGKILL on Unix
    let _ = child.wait();
    let _ = reader.join();
    for l in rx.try_iter() {
        record(&mut history, &l)?;
    }
    verify(dir.path(), &history)?;
    Ok(history.acks)
}

fn record(h: &mut History, line: &str) -> Result<(), String> {
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["begin", w, op, k, value] => {
            let w: usize = w.parse().map_err(|_| format!("bad line {line}"))?;
            h.in_flight.insert(
                w,
                (
                    k.to_string(),
                    Op {
                        op: op.to_string(),
                        value: value.to_string(),
                    },
                ),
            );
        }
        ["ack", w, op, k, value, id] => {
            let w: usize = w.parse().map_err(|_| format!("bad line {line}"))?;
            let id: i64 = id.parse().map_err(|_| format!("bad line {line}"))?;
            h.in_flight.remove(&w);
            h.acked.insert(
                k.to_string(),
                (
                    Op {
                        op: op.to_string(),
                        value: value.to_string(),
                    },
                    id,
                ),
            );
            h.max_id = h.max_id.max(id);
            h.acks += 1;
        }
        ["ready"] => {}
        _ => return Err(format!("unexpected child output {line:?}")),
    }
    Ok(())
}

/// What a key looks like on disk: absent, or its data and its metadata's signature field.
#[derive(Debug, Clone, PartialEq)]
struct State {
    present: bool,
    data: Option<String>,
    signature: Option<String>,
}

/// Whether `state` is what `w` leaves behind.
fn shows(state: &State, w: &Op) -> bool {
    match w.op.as_str() {
        "put" => state.present && state.data.as_deref() == Some(w.value.as_str()),
        "meta" => state.present && state.signature.as_deref() == Some(w.value.as_str()),
        _ => !state.present,
    }
}

fn op_of(w: &Op) -> CommitOp {
    match w.op.as_str() {
        "put" => CommitOp::UpdateAll, // or Update for a create; checked loosely below
        "meta" => CommitOp::UpdateMeta,
        _ => CommitOp::Delete,
    }
}

fn matches_op(actual: CommitOp, w: &Op) -> bool {
    match op_of(w) {
        CommitOp::UpdateAll => matches!(actual, CommitOp::UpdateAll | CommitOp::Update),
        other => actual == other,
    }
}

fn verify(dir: &Path, h: &History) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let factory = SledPersistenceFactory::new();
        let bundle = factory
            .initialize(AT_SIGN, &config(dir))
            .await
            .map_err(|e| format!("reopen failed: {e}"))?;
        let r = check_bundle(&bundle, h).await;
        factory.close().await;
        r
    })
}

async fn state_of(bundle: &Bundle, k: &str) -> Result<State, String> {
    match bundle.key_value_store().get(k).await {
        Ok(d) => Ok(State {
            present: true,
            signature: d.meta_data.as_ref().and_then(|m| m.data_signature.clone()),
            data: d.data,
        }),
        Err(at_persistence_secondary_server::PersistenceError::KeyNotFound { .. }) => Ok(State {
            present: false,
            data: None,
            signature: None,
        }),
        Err(e) => Err(format!("get {k}: {e}")),
    }
}

async fn check_bundle(bundle: &Bundle, h: &History) -> Result<(), String> {
    let ks = bundle.key_value_store();
    let log = ks.commit_log().ok_or("no commit log")?;
    let in_flight: HashMap<&str, &Op> =
        h.in_flight.values().map(|(k, w)| (k.as_str(), w)).collect();
    // 1. Every acknowledged write is there (or was superseded by the one in-flight write).
    for (k, (w, _)) in &h.acked {
        let state = state_of(bundle, k).await?;
        let ok_acked = shows(&state, w);
        let ok_flight = in_flight.get(k.as_str()).is_some_and(|f| shows(&state, f));
        if !ok_acked && !ok_flight {
            return Err(format!(
                "key {k}: acknowledged {w:?} but found {state:?} (in flight: {:?})",
                in_flight.get(k.as_str())
            ));
        }
    }
    // 2. Every commit entry belongs to a write that happened and matches the key's last
    //    write; one entry per key.
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut stream = log
        .iterate(IterateOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut max_seen = -1;
    while let Some(e) = stream.next().await {
        let e = e.map_err(|e| format!("undecodable entry: {e}"))?;
        let id = e.commit_id.ok_or("entry without id")?;
        max_seen = max_seen.max(id);
        if seen.insert(e.at_key.clone(), id).is_some() {
            return Err(format!("two entries for {}", e.at_key));
        }
        let acked = h.acked.get(&e.at_key);
        let flight = in_flight.get(e.at_key.as_str());
        let ok = match (acked, flight) {
            (Some((w, aid)), _) if *aid == id && matches_op(e.operation, w) => true,
            (Some((_, aid)), Some(f)) if id > *aid && matches_op(e.operation, f) => true,
            (None, Some(f)) => matches_op(e.operation, f),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "entry {id} {} {:?} matches no write (acked {acked:?}, in flight {flight:?})",
                e.at_key, e.operation
            ));
        }
    }
    // Every acknowledged key still has its entry (or a newer in-flight one).
    for (k, (_, id)) in &h.acked {
        match seen.get(k) {
            Some(found) if found >= id => {}
            other => return Err(format!("key {k}: entry {id} missing, found {other:?}")),
        }
    }
    // 3. The next id is greater than every id seen.
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
    let next = ks
        .put(
            "after.crash@crash",
            AtData::new("x"),
            WriteOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no id")?;
    if next <= h.max_id.max(max_seen) {
        return Err(format!("next id {next} reuses an id"));
    }
    Ok(())
}

fn main() {
    if let Ok(dir) = std::env::var("ATPS_CRASH_CHILD") {
        let seed = std::env::var("ATPS_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        child_main(PathBuf::from(dir), seed);
        return;
    }
    let rounds: u64 = std::env::var("ATPS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let base_seed: u64 = std::env::var("ATPS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    let (mut passed, mut failed, mut acks) = (0u64, 0u64, 0u64);
    for r in 0..rounds {
        let seed = base_seed.wrapping_add(r.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        match run_round(seed) {
            Ok(n) => {
                passed += 1;
                acks += n;
            }
            Err(e) => {
                failed += 1;
                eprintln!("crash round {r} FAILED (replay with ATPS_CRASH_SEED={seed} ATPS_CRASH_ROUNDS=1): {e}");
            }
        }
    }
    println!("crash (puts/put_meta/remove, 4 writers): {rounds} rounds, {acks} acknowledged writes checked");
    println!("crash: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
