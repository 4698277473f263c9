//! A state-machine property test of the keystore and its commit log against a small
//! in-memory model, and arbitrary bytes read back through every store.
//!
//! The state machine is hand-rolled: proptest generates a `Vec<Step>` (puts with and
//! without ttl, put_meta, put_all, removes, writes and removes with `skip_commit`, expiry
//! sweeps that move a manual clock, reopens through the factory) and the test replays it
//! on a real store and on the model. After every step they agree on the values present
//! (data and expiry), on what `get_keys` lists, on the commit entries (atKey → (id, op)),
//! on `last_committed_sequence_number` and `entries_count`, and on what each call returned;
//! `verify` is clean after every reopen and at the end. Keys come from a set of eight
//! (one commit-skipped `local:` key, and one spelling that canonicalises onto another) so
//! collisions are common.
//!
//! Cases: 64 by default; `PROPTEST_CASES` sets another number.

mod common;

use at_persistence_secondary_server::model::{
    codec, AccessLogEntry, AtData, AtMetaData, AtNotification, AtNotificationBuilder, CommitEntry,
    CommitOp, ManualClock, Timestamp,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, IterateOptions, PersistenceFactory, RemoveOptions, WriteOptions,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, every_record, raw_insert, server_layout, T0};
use futures::StreamExt;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

const AT: &str = "@alice";

/// The keys steps use, as callers spell them. `K1.Model@alice` is `k1.model@alice`
/// canonically; `local:` keys are never committed.
const KEYS: [&str; 8] = [
    "k0.model@alice",
    "k1.model@alice",
    "k2.model@alice",
    "k3.model@alice",
    "k4.model@alice",
    "@bob:k5.model@alice",
    "local:k6.model@alice",
    "K1.Model@alice",
];

fn canonical(i: usize) -> String {
    KEYS[i].to_lowercase()
}

fn skipped(i: usize) -> bool {
    KEYS[i].starts_with("local:")
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[derive(Debug, Clone)]
enum Step {
    Put {
        k: usize,
        data: u8,
        ttl: Option<i64>,
    },
    PutMeta {
        k: usize,
        ttl: Option<i64>,
    },
    PutAll {
        k: usize,
        data: u8,
        ttl: Option<i64>,
    },
    Remove {
        k: usize,
    },
    RemoveSkip {
        k: usize,
    },
    PutSkip {
        k: usize,
        data: u8,
    },
    Sweep {
        advance: i64,
    },
    Reopen,
}

fn ttl() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(0)),
        2 => (1i64..4).prop_map(|s| Some(s * 1_000)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0..KEYS.len();
    prop_oneof![
        6 => (k.clone(), any::<u8>(), ttl()).prop_map(|(k, data, ttl)| Step::Put { k, data, ttl }),
        2 => (k.clone(), ttl()).prop_map(|(k, ttl)| Step::PutMeta { k, ttl }),
        2 => (k.clone(), any::<u8>(), ttl()).prop_map(|(k, data, ttl)| Step::PutAll { k, data, ttl }),
        3 => k.clone().prop_map(|k| Step::Remove { k }),
        1 => k.clone().prop_map(|k| Step::RemoveSkip { k }),
        1 => (k, any::<u8>()).prop_map(|(k, data)| Step::PutSkip { k, data }),
        2 => (0i64..3_000).prop_map(|advance| Step::Sweep { advance }),
        1 => Just(Step::Reopen),
    ]
}

/// A record as the model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    data: Option<String>,
    ttl: Option<i64>,
    expires_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    records: BTreeMap<String, Rec>,
    entries: BTreeMap<String, (i64, CommitOp)>,
    hwm: i64,
}

impl Model {
    fn new() -> Self {
        Model {
            now: T0.as_millis(),
            hwm: -1,
            ..Model::default()
        }
    }

    fn expiry(&self, ttl: Option<i64>) -> Option<Timestamp> {
        ttl.filter(|&t| t > 0)
            .map(|t| Timestamp::from_millis(self.now + t))
    }

    /// Commits `op` for key `i`; what the call returns.
    fn commit(&mut self, i: usize, op: CommitOp) -> Option<i64> {
        if skipped(i) {
            return Some(-1);
        }
        self.hwm += 1;
        self.entries.insert(canonical(i), (self.hwm, op));
        Some(self.hwm)
    }

    fn purge(&mut self, i: usize) -> Option<i64> {
        self.entries.remove(&canonical(i));
        Some(-1)
    }

    /// A write of `data` (or the stored data when `None` and `keep_data`) whose metadata is
    /// `Some(ttl)` when the write carries metadata.
    fn write(&mut self, i: usize, data: Option<String>, meta: Option<Option<i64>>) {
        let old = self.records.get(&canonical(i)).cloned();
        let ttl = match meta {
            Some(ttl) => ttl,
            None => old.as_ref().and_then(|o| o.ttl),
        };
        let rec = Rec {
            data,
            ttl,
            expires_at: self.expiry(ttl),
        };
        self.records.insert(canonical(i), rec);
    }

    /// Applies `step`; what the store call returns (`None` for steps without one).
    fn apply(&mut self, step: &Step) -> Option<Option<i64>> {
        match *step {
            Step::Put { k, data, ttl } => {
                let existed = self.records.contains_key(&canonical(k));
                self.write(k, Some(data.to_string()), ttl.map(Some));
                let op = if existed || ttl.is_some() {
                    CommitOp::UpdateAll
                } else {
                    CommitOp::Update
                };
                Some(self.commit(k, op))
            }
            Step::PutMeta { k, ttl } => {
                let data = self.records.get(&canonical(k)).and_then(|r| r.data.clone());
                self.write(k, data, Some(ttl));
                Some(self.commit(k, CommitOp::UpdateMeta))
            }
            Step::PutAll { k, data, ttl } => {
                self.write(k, Some(data.to_string()), Some(ttl));
                Some(self.commit(k, CommitOp::UpdateAll))
            }
            Step::PutSkip { k, data } => {
                self.write(k, Some(data.to_string()), None);
                Some(self.purge(k))
            }
            Step::Remove { k } => {
                self.records.remove(&canonical(k));
                Some(self.commit(k, CommitOp::Delete))
            }
            Step::RemoveSkip { k } => {
                self.records.remove(&canonical(k));
                Some(self.purge(k))
            }
            Step::Sweep { advance } => {
                self.now += advance;
                let now = Timestamp::from_millis(self.now);
                let expired: Vec<String> = self
                    .records
                    .iter()
                    .filter(|(_, r)| r.expires_at.is_some_and(|t| t <= now))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in expired {
                    self.records.remove(&k);
                    self.entries.remove(&k);
                }
                None
            }
            Step::Reopen => None,
        }
    }
}

fn config(dir: &Path, clock: Arc<ManualClock>) -> SledPersistenceConfig {
    SledPersistenceConfig::new(dir.join("keys"))
        .with_commit_log_enabled(true)
        .with_cache_capacity(2 * 1024 * 1024)
        .with_clock(clock)
}

fn meta(ttl: Option<i64>) -> AtMetaData {
    AtMetaData {
        ttl,
        ..Default::default()
    }
}

/// Runs `step` on the store; what the call returned.
async fn run(b: &Bundle, clock: &ManualClock, step: &Step) -> Option<Option<i64>> {
    let ks = b.key_value_store();
    let r = match *step {
        Step::Put { k, data, ttl } => {
            let v = AtData {
                data: Some(data.to_string()),
                meta_data: ttl.map(|t| meta(Some(t))),
                key: None,
            };
            ks.put(KEYS[k], v, WriteOptions::default()).await
        }
        Step::PutMeta { k, ttl } => {
            ks.put_meta(KEYS[k], meta(ttl), WriteOptions::default())
                .await
        }
        Step::PutAll { k, data, ttl } => {
            ks.put_all(KEYS[k], AtData::new(data.to_string()), meta(ttl))
                .await
        }
        Step::PutSkip { k, data } => {
            ks.put(
                KEYS[k],
                AtData::new(data.to_string()),
                WriteOptions::skip_commit(),
            )
            .await
        }
        Step::Remove { k } => ks.remove(KEYS[k], RemoveOptions::default()).await,
        Step::RemoveSkip { k } => ks.remove(KEYS[k], RemoveOptions::skip_commit()).await,
        Step::Sweep { advance } => {
            clock.advance(advance);
            assert!(ks.delete_expired_keys().await.unwrap());
            return None;
        }
        Step::Reopen => return None,
    };
    Some(r.unwrap())
}

/// Compares the store with the model; a description of the first difference.
async fn compare(b: &Bundle, m: &Model) -> Result<(), String> {
    let ks = b.key_value_store();
    for (i, spelled) in KEYS.iter().enumerate() {
        let k = canonical(i);
        let stored = match ks.get(spelled).await {
            Ok(d) => Some((
                d.data,
                d.meta_data.as_ref().and_then(|m| m.ttl),
                d.meta_data.as_ref().and_then(|m| m.expires_at),
            )),
            Err(PersistenceError::KeyNotFound { .. }) => None,
            Err(e) => return Err(format!("get {k}: {e}")),
        };
        let model = m
            .records
            .get(&k)
            .map(|r| (r.data.clone(), r.ttl, r.expires_at));
        if stored != model {
            return Err(format!("{k}: store {stored:?}, model {model:?}"));
        }
    }
    let now = Timestamp::from_millis(m.now);
    let listed: BTreeSet<String> = collect_ok(ks.get_keys(None).await.unwrap())
        .await
        .into_iter()
        .collect();
    let live: BTreeSet<String> = m
        .records
        .iter()
        .filter(|(_, r)| r.expires_at.is_none_or(|t| t > now))
        .map(|(k, _)| k.clone())
        .collect();
    if listed != live {
        return Err(format!("get_keys {listed:?}, model {live:?}"));
    }
    let log = b.commit_log().unwrap();
    let entries: BTreeMap<String, (i64, CommitOp)> = log
        .iterate(IterateOptions::default())
        .await
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.at_key, (e.commit_id.unwrap(), e.operation))
        })
        .collect()
        .await;
    if entries != m.entries {
        return Err(format!("entries {entries:?}, model {:?}", m.entries));
    }
    let hwm = log.last_committed_sequence_number().await.unwrap();
    let count = log.entries_count().await.unwrap();
    if (hwm, count) != (m.hwm, m.entries.len() as u64) {
        return Err(format!(
            "hwm/count {hwm}/{count}, model {}/{}",
            m.hwm,
            m.entries.len()
        ));
    }
    Ok(())
}

async fn replay(steps: &[Step]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let factory = SledPersistenceFactory::new();
    let cfg = config(dir.path(), Arc::clone(&clock));
    let mut b = factory.initialize(AT, &cfg).await.unwrap();
    let mut m = Model::new();
    for (n, step) in steps.iter().enumerate() {
        if let Step::Reopen = step {
            factory.close().await;
            b = factory.initialize(AT, &cfg).await.unwrap();
            let r = b.verify().await.unwrap();
            if !r.is_ok() {
                return Err(format!("step {n}: verify after reopen:\n{r}"));
            }
        }
        let got = run(&b, &clock, step).await;
        let want = m.apply(step);
        if got != want {
            return Err(format!(
                "step {n} {step:?}: returned {got:?}, model {want:?}"
            ));
        }
        compare(&b, &m)
            .await
            .map_err(|e| format!("after step {n} {step:?}: {e}"))?;
    }
    let r = b.verify().await.unwrap();
    factory.close().await;
    if !r.is_ok() {
        return Err(format!("verify at the end:\n{r}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_keystore_and_its_commit_log_follow_the_model(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = rt.block_on(replay(&steps));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

// ------------------------------------------------------------------ arbitrary bytes

/// A populated server store in `dir`, closed.
async fn build_server(dir: &Path) {
    let f = SledPersistenceFactory::new();
    let b = f.initialize(AT, &server(dir)).await.unwrap();
    let ks = b.key_value_store();
    for i in 0..3 {
        ks.put(
            &format!("r{i}.model@alice"),
            AtData::new("x"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    let al = b.access_log().unwrap();
    for _ in 0..3 {
        al.insert("@bob", "pol", None).await.unwrap();
    }
    let nk = b.notification_keystore().unwrap();
    for i in 0..3 {
        let id = format!("n{i}");
        let n = AtNotificationBuilder {
            id: id.clone(),
            ..AtNotificationBuilder::new()
        }
        .build_at(T0);
        nk.put(&id, n, WriteOptions::default()).await.unwrap();
    }
    f.close().await;
}

/// The shared server layout with a 2 MiB page cache and a manual clock at T0.
fn server(dir: &Path) -> SledPersistenceConfig {
    server_layout(dir)
        .with_cache_capacity(2 * 1024 * 1024)
        .with_clock(Arc::new(ManualClock::new(T0)))
}

/// `Ok` when `r` is a value, or a `CorruptRecord` naming `store` and `key`.
fn typed<T>(r: &Result<T, PersistenceError>, store: &str, key: &str) -> Result<bool, String> {
    match r {
        Ok(_) => Ok(false),
        Err(PersistenceError::CorruptRecord {
            store: s, key: k, ..
        }) if *s == store && k == key => Ok(true),
        Err(e) => Err(format!("{store} {key}: {e:?}")),
    }
}

async fn read_everything(dir: &Path) -> Result<u64, String> {
    let f = SledPersistenceFactory::new();
    let b = f.initialize(AT, &server(dir)).await.unwrap();
    let mut undecodable = 0u64;
    let ks = b.key_value_store();
    let key = "r1.model@alice";
    undecodable += typed(&ks.get(key).await, "keystore", key)? as u64;
    typed(
        &ks.get_many(&[key, "r0.model@alice"]).await,
        "keystore",
        key,
    )?;
    let items = every_record(ks).await;
    for i in &items {
        typed(i, "keystore", key)?;
    }
    let log = b.commit_log().unwrap();
    undecodable += typed(
        &log.get_latest_commit_entry("r2.model@alice").await,
        "commit log",
        "commit id 2",
    )? as u64;
    let entries: Vec<Result<CommitEntry, _>> = log
        .iterate(IterateOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    for e in &entries {
        typed(e, "commit log", "commit id 2")?;
    }
    let al = b.access_log().unwrap();
    let items: Vec<Result<AccessLogEntry, _>> = al.iterate().await.unwrap().collect().await;
    for i in &items {
        undecodable += typed(i, "access log", "entry 2")? as u64;
    }
    typed(
        &al.get_last_access_log_entry().await,
        "access log",
        "entry 2",
    )?;
    let nk = b.notification_keystore().unwrap();
    undecodable += typed(&nk.get("n1").await, "notification keystore", "n1")? as u64;
    let items: Vec<Result<AtNotification, _>> = nk.iterate().await.unwrap().collect().await;
    for i in &items {
        typed(i, "notification keystore", "n1")?;
    }
    let report = b.verify().await.unwrap();
    f.close().await;
    if report.violation_count() < undecodable {
        return Err(format!(
            "{undecodable} records did not decode, verify saw:\n{report}"
        ));
    }
    Ok(undecodable)
}

/// Bytes to plant: anything, or a format-1 envelope around anything, or a real record of
/// another type (which may or may not decode as the target type).
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let any_bytes = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        any_bytes.clone(),
        any_bytes.prop_map(|b| [&[1u8][..], &b].concat()),
        Just(codec::encode(&CommitEntry::new(
            "x@alice",
            CommitOp::Update,
            T0,
            2
        ))),
        Just(codec::encode(&AtData::new("y"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() / 4 + 1))]

    /// Arbitrary bytes stored as a record of every store read back as the value or as a
    /// `CorruptRecord` naming the store and the key, through every read path; never a
    /// panic, never another error; verify reports at least each one that does not decode.
    #[test]
    fn arbitrary_stored_bytes_are_typed_errors_through_every_store(
        record in garbage(), entry in garbage(), access in garbage(), note in garbage()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(build_server(dir.path()));
        let keys = dir.path().join("keys");
        raw_insert(&keys, "keystore", b"dr1.model@alice", &record);
        let mut c = vec![b'c'];
        c.extend_from_slice(&2u64.to_be_bytes());
        raw_insert(&keys, "keystore", &c, &entry);
        let mut e = vec![b'e'];
        e.extend_from_slice(&2u64.to_be_bytes());
        raw_insert(&dir.path().join("access_log"), "access_log", &e, &access);
        raw_insert(&dir.path().join("notifications"), "notifications", b"nn1", &note);
        let outcome = rt.block_on(read_everything(dir.path()));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
