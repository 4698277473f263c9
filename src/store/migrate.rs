//! Moving an atSign's data between bundles (API-5.0 7): [`PersistenceMigrator`] copies a
//! bundle into a fresh one through the iterate/replay primitives of the store traits, and
//! [`PersistenceSnapshot`] compares two bundles in a backend-neutral form.
//!
//! Everything here is written against the abstract traits, so it moves data between any
//! two backends (or two directories of the same backend). The logical backup of
//! [`crate::store::LogicalBackup`] writes through the same code path as the migrator.
//!
//! # What a migration copies
//!
//! | store | read | write |
//! |---|---|---|
//! | keystore | `scan_keys(.., include_expired)` + `get` | `restore` (verbatim) |
//! | commit log | `iterate` | `replay`, then `raise_last_committed_sequence_number(source last)` |
//! | access log | `iterate` (insertion order) | `replay`, in order |
//! | notifications | `iterate` | `put` under the notification's id |
//!
//! A store present on only one side is skipped (its count stays 0). A non-DELETE commit
//! entry whose atKey has no record in the target after the keystore was copied is an
//! *orphan*: it is dropped and counted; DELETE tombstones are always kept. An expired key
//! whose record is still present is not an orphan.

use super::bundle::Bundle;
use super::query::ScanOptions;
use super::traits::{AccessLog, CommitLog, NotificationKeystore};
use super::types::{IterateOptions, WriteOptions};
use crate::error::{PersistenceError, Result};
use crate::key::{canonical_key, KeyPattern};
use crate::model::{AccessLogEntry, AtData, AtNotification, CommitEntry, CommitOp};
use crate::store::DynKeyStore;
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// What a migration (or a backup import) wrote (API-5.0 7.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Keystore records restored (expired and not-yet-available ones included).
    pub keys: u64,
    /// Commit entries replayed (tombstones included, orphans excluded).
    pub commit_entries: u64,
    /// Access-log entries replayed.
    pub access_entries: u64,
    /// Notifications stored.
    pub notifications: u64,
    /// Non-DELETE commit entries dropped because their atKey had no record.
    pub orphaned_commit_entries: u64,
    /// The high-water mark carried to the target (the source's
    /// `last_committed_sequence_number`), or `None` when no commit log was copied.
    pub last_committed_sequence_number: Option<i64>,
}

/// One of the four stores of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// The keystore.
    KeyStore,
    /// The keystore's commit log.
    CommitLog,
    /// The access log.
    AccessLog,
    /// The notification keystore.
    NotificationKeystore,
}

impl StoreKind {
    /// The store's name as errors and reports spell it (`keystore`, `commit log`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::KeyStore => "keystore",
            StoreKind::CommitLog => "commit log",
            StoreKind::AccessLog => "access log",
            StoreKind::NotificationKeystore => "notification keystore",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of bulk operation a [`Progress`] report belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// [`PersistenceMigrator::migrate`].
    Migrate,
    /// Writing a logical backup.
    Export,
    /// Reading a logical backup to check it (the first pass of an import, or `verify`).
    Verify,
    /// Writing a verified logical backup into a bundle (the second pass of an import).
    Import,
}

/// A progress report: `records` of `store` have been handled so far in `pass`. Sent every
/// few thousand records (see [`PersistenceMigrator::with_progress`]) and once at the end
/// of each store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The operation.
    pub pass: Pass,
    /// The store being handled.
    pub store: StoreKind,
    /// Records of that store handled so far.
    pub records: u64,
    /// Whether this is the last report for `store` in this pass.
    pub finished: bool,
}

/// A progress callback. It runs on the migrating task: keep it short.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Settings shared by the migrator and the logical backup.
#[derive(Clone)]
pub(crate) struct BulkSettings {
    pub(crate) parallelism: usize,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) progress_every: u64,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            parallelism: DEFAULT_PARALLELISM,
            progress: None,
            progress_every: DEFAULT_PROGRESS_EVERY,
        }
    }
}

impl fmt::Debug for BulkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkSettings")
            .field("parallelism", &self.parallelism)
            .field("progress", &self.progress.as_ref().map(|_| "<fn>"))
            .field("progress_every", &self.progress_every)
            .finish()
    }
}

impl BulkSettings {
    pub(crate) fn report(&self, pass: Pass, store: StoreKind, records: u64, finished: bool) {
        if let Some(f) = &self.progress {
            if finished || (self.progress_every > 0 && records.is_multiple_of(self.progress_every))
            {
                f(Progress {
                    pass,
                    store,
                    records,
                    finished,
                });
            }
        }
    }
}

/// How many writes a migration keeps in flight by default.
pub const DEFAULT_PARALLELISM: usize = 64;
/// How often (in records) progress is reported by default.
pub const DEFAULT_PROGRESS_EVERY: u64 = 10_000;

/// Copies one bundle into another, fresh one (API-5.0 7.2). See the module documentation
/// for what is copied and how.
///
/// Memory stays bounded by the number of writes in flight
/// ([`with_parallelism`](Self::with_parallelism)), whatever the size of the stores: every
/// store is streamed, and the orphan rule asks the target's keystore instead of
/// remembering the copied keys.
///
/// The source should be quiescent (its server stopped): the stores are read one after the
/// other, not from one point-in-time snapshot.
///
/// ```no_run
/// # async fn demo(source: &at_persistence_secondary_server::store::Bundle,
/// #               target: &at_persistence_secondary_server::store::Bundle)
/// #               -> at_persistence_secondary_server::Result<()> {
/// use at_persistence_secondary_server::store::{PersistenceMigrator, PersistenceSnapshot};
/// let report = PersistenceMigrator::new().migrate(source, target).await?;
/// println!("{} keys, {} orphans dropped", report.keys, report.orphaned_commit_entries);
/// let a = PersistenceSnapshot::capture(source).await?;
/// let b = PersistenceSnapshot::capture(target).await?;
/// assert!(a.matches(&b), "{:?}", a.differences_from(&b));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct PersistenceMigrator {
    settings: BulkSettings,
}

impl PersistenceMigrator {
    /// A migrator with [`DEFAULT_PARALLELISM`] writes in flight and no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `n` keystore, commit-log and notification writes in flight (at least
    /// 1). Concurrent writes let a durable target share one flush among many of them.
    /// Access-log entries are always replayed one by one, to keep their order.
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.settings.parallelism = n.max(1);
        self
    }

    /// Calls `progress` every `every` records of each store and once when a store is done
    /// (`every == 0`: only at the end of each store).
    pub fn with_progress(mut self, every: u64, progress: ProgressFn) -> Self {
        self.settings.progress = Some(progress);
        self.settings.progress_every = every;
        self
    }

    /// Copies `source` into `target` and reports what was written.
    ///
    /// `target` must be empty (no record, no commit entry and a commit log that never
    /// issued an id, no access entry, no notification), else
    /// [`TargetNotEmpty`](PersistenceError::TargetNotEmpty) naming the first non-empty
    /// store, before anything is written. Both bundles must belong to the same atSign
    /// (compared case-insensitively), else
    /// [`InvalidArgument`](PersistenceError::InvalidArgument).
    ///
    /// When a read or a write fails midway, the target is cleared
    /// ([`Bundle::clear`]) and the error is returned, so a failed migration leaves an empty
    /// target that can simply be migrated into again.
    pub async fn migrate(&self, source: &Bundle, target: &Bundle) -> Result<MigrationReport> {
        check_same_at_sign(source.at_sign(), target)?;
        ensure_empty(target).await?;
        let mut sink = TargetWriter::new(target, self.settings.clone(), Pass::Migrate);
        match copy_bundle(source, &mut sink).await {
            Ok(()) => sink.finish().await,
            Err(e) => Err(sink.abort(e).await),
        }
    }
}

/// The receiving side of [`copy_bundle`]: a target bundle (migration) or a backup stream
/// (export). The calls come in store order: keys, commit entries, access entries,
/// notifications, each store closed by its `end_*` call (only for stores both sides have).
#[async_trait]
pub(crate) trait BundleSink: Send {
    /// Whether the receiving side has `kind`.
    fn has(&self, kind: StoreKind) -> bool;
    async fn key(&mut self, key: String, value: AtData) -> Result<()>;
    async fn end_keys(&mut self) -> Result<()>;
    async fn commit_entry(&mut self, entry: CommitEntry) -> Result<()>;
    async fn end_commit_log(&mut self, last: Option<i64>) -> Result<()>;
    async fn access_entry(&mut self, entry: AccessLogEntry) -> Result<()>;
    async fn end_access_log(&mut self) -> Result<()>;
    async fn notification(&mut self, n: AtNotification) -> Result<()>;
    async fn end_notifications(&mut self) -> Result<()>;
}

/// Streams every store of `source` into `sink` (API-5.0 7.1 read side).
pub(crate) async fn copy_bundle(source: &Bundle, sink: &mut dyn BundleSink) -> Result<()> {
    let ks = source.key_value_store();
    let mut keys = ks
        .scan_keys(
            &KeyPattern::default(),
            ScanOptions {
                include_expired: true,
                ..Default::default()
            },
        )
        .await?;
    while let Some(key) = keys.next().await {
        let key = key?;
        match ks.get(&key).await {
            Ok(value) => sink.key(key, value).await?,
            // Removed after the scan listed it: nothing to copy.
            Err(PersistenceError::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    drop(keys);
    sink.end_keys().await?;

    if let Some(cl) = source.commit_log() {
        if sink.has(StoreKind::CommitLog) {
            let mut entries = cl.iterate(IterateOptions::default()).await?;
            while let Some(entry) = entries.next().await {
                sink.commit_entry(entry?).await?;
            }
            drop(entries);
            // Read after iterating, so the mark covers every entry copied.
            let last = cl.last_committed_sequence_number().await?;
            sink.end_commit_log(Some(last)).await?;
        }
    }

    if let Some(al) = source.access_log() {
        if sink.has(StoreKind::AccessLog) {
            let mut entries = al.iterate().await?;
            while let Some(entry) = entries.next().await {
                sink.access_entry(entry?).await?;
            }
            sink.end_access_log().await?;
        }
    }

    if let Some(nk) = source.notification_keystore() {
        if sink.has(StoreKind::NotificationKeystore) {
            let mut all = nk.iterate().await?;
            while let Some(n) = all.next().await {
                sink.notification(n?).await?;
            }
            drop(all);
            sink.end_notifications().await?;
        }
    }
    Ok(())
}

/// Refuses to move one atSign's data into another atSign's bundle.
pub(crate) fn check_same_at_sign(source_at_sign: &str, target: &Bundle) -> Result<()> {
    if source_at_sign.to_lowercase() != target.at_sign().to_lowercase() {
        return Err(PersistenceError::invalid_argument(
            "target",
            format!(
                "the data belongs to {source_at_sign} but the target bundle is {}'s; \
                 data moves only between bundles of the same atSign",
                target.at_sign()
            ),
        ));
    }
    Ok(())
}

/// Checks that every store of `target` is empty (see [`PersistenceMigrator::migrate`]).
pub(crate) async fn ensure_empty(target: &Bundle) -> Result<()> {
    if target.is_closed() {
        return Err(PersistenceError::StoreClosed { store: "bundle" });
    }
    let not_empty = |kind: StoreKind| PersistenceError::TargetNotEmpty { store: kind.name() };
    let mut any_key = target
        .key_value_store()
        .scan_keys(
            &KeyPattern::default(),
            ScanOptions {
                include_expired: true,
                limit: Some(1),
                ..Default::default()
            },
        )
        .await?;
    if let Some(k) = any_key.next().await {
        k?;
        return Err(not_empty(StoreKind::KeyStore));
    }
    drop(any_key);
    if let Some(cl) = target.commit_log() {
        if cl.entries_count().await? > 0 || cl.last_committed_sequence_number().await? != -1 {
            return Err(not_empty(StoreKind::CommitLog));
        }
    }
    if let Some(al) = target.access_log() {
        if al.entries_count().await? > 0 {
            return Err(not_empty(StoreKind::AccessLog));
        }
    }
    if let Some(nk) = target.notification_keystore() {
        if nk.entries_count().await? > 0 {
            return Err(not_empty(StoreKind::NotificationKeystore));
        }
    }
    Ok(())
}

/// Writes a stream of records into an empty target bundle with the migration rules; shared
/// by the migrator and the backup import. Call order: `key`*, `end_keys`,
/// `commit_entry`*, `end_commit_log`, `access_entry`*, `end_access_log`,
/// `notification`*, `end_notifications`, then `finish` (or `abort` on an error).
pub(crate) struct TargetWriter {
    target: Bundle,
    ks: DynKeyStore,
    cl: Option<Arc<dyn CommitLog>>,
    al: Option<Arc<dyn AccessLog>>,
    nk: Option<Arc<dyn NotificationKeystore>>,
    settings: BulkSettings,
    pass: Pass,
    in_flight: InFlight,
    report: MigrationReport,
    commit_seen: u64,
}

impl TargetWriter {
    pub(crate) fn new(target: &Bundle, settings: BulkSettings, pass: Pass) -> Self {
        let in_flight = InFlight::new(settings.parallelism);
        TargetWriter {
            ks: Arc::clone(target.key_value_store()),
            cl: target.commit_log(),
            al: target.access_log().cloned(),
            nk: target.notification_keystore().cloned(),
            target: target.clone(),
            settings,
            pass,
            in_flight,
            report: MigrationReport::default(),
            commit_seen: 0,
        }
    }

    /// Waits for every write and returns the report.
    pub(crate) async fn finish(mut self) -> Result<MigrationReport> {
        match self.in_flight.drain().await {
            Ok(()) => Ok(self.report),
            Err(e) => Err(self.abort(e).await),
        }
    }

    /// Stops the writes in flight, clears the target and hands back `error` (with the
    /// clearing failure added when the target could not be cleared).
    pub(crate) async fn abort(mut self, error: PersistenceError) -> PersistenceError {
        // Let the writes already queued finish, so clearing sees a settled store.
        let _ = self.in_flight.drain().await;
        match self.target.clear().await {
            Ok(()) => error,
            Err(clear) => PersistenceError::Backend {
                context: format!(
                    "clearing the target after a failed write ({clear}); the target may hold \
                     part of the data"
                ),
                source: Box::new(error),
            },
        }
    }
}

#[async_trait]
impl BundleSink for TargetWriter {
    /// Whether the target has `kind`.
    fn has(&self, kind: StoreKind) -> bool {
        match kind {
            StoreKind::KeyStore => true,
            StoreKind::CommitLog => self.cl.is_some(),
            StoreKind::AccessLog => self.al.is_some(),
            StoreKind::NotificationKeystore => self.nk.is_some(),
        }
    }

    async fn key(&mut self, key: String, value: AtData) -> Result<()> {
        let ks = Arc::clone(&self.ks);
        self.in_flight
            .push(async move { ks.restore(&key, value).await })
            .await?;
        self.report.keys += 1;
        self.settings
            .report(self.pass, StoreKind::KeyStore, self.report.keys, false);
        Ok(())
    }

    async fn end_keys(&mut self) -> Result<()> {
        // Every restore must have landed before the orphan rule asks the keystore.
        self.in_flight.drain().await?;
        self.settings
            .report(self.pass, StoreKind::KeyStore, self.report.keys, true);
        Ok(())
    }

    /// Replays `entry` unless it is an orphan; a target without a commit log ignores it.
    async fn commit_entry(&mut self, entry: CommitEntry) -> Result<()> {
        let Some(cl) = self.cl.clone() else {
            return Ok(());
        };
        self.commit_seen += 1;
        if entry.operation != CommitOp::Delete && !self.ks.exists(&entry.at_key).await? {
            self.report.orphaned_commit_entries += 1;
        } else {
            self.in_flight
                .push(async move { cl.replay(entry).await })
                .await?;
            self.report.commit_entries += 1;
        }
        self.settings
            .report(self.pass, StoreKind::CommitLog, self.commit_seen, false);
        Ok(())
    }

    /// Waits for the replays and carries the source's high-water mark.
    async fn end_commit_log(&mut self, last: Option<i64>) -> Result<()> {
        self.in_flight.drain().await?;
        if let (Some(cl), Some(last)) = (&self.cl, last) {
            if last >= 0 {
                cl.raise_last_committed_sequence_number(last).await?;
            }
            self.report.last_committed_sequence_number = Some(last);
        }
        self.settings
            .report(self.pass, StoreKind::CommitLog, self.commit_seen, true);
        Ok(())
    }

    /// Replays one access-log entry (in order: never in parallel).
    async fn access_entry(&mut self, entry: AccessLogEntry) -> Result<()> {
        let Some(al) = &self.al else {
            return Ok(());
        };
        al.replay(entry).await?;
        self.report.access_entries += 1;
        self.settings.report(
            self.pass,
            StoreKind::AccessLog,
            self.report.access_entries,
            false,
        );
        Ok(())
    }

    async fn end_access_log(&mut self) -> Result<()> {
        self.settings.report(
            self.pass,
            StoreKind::AccessLog,
            self.report.access_entries,
            true,
        );
        Ok(())
    }

    async fn notification(&mut self, n: AtNotification) -> Result<()> {
        let Some(nk) = self.nk.clone() else {
            return Ok(());
        };
        self.in_flight
            .push(async move {
                let id = n.id.clone();
                nk.put(&id, n, WriteOptions::default()).await.map(|_| ())
            })
            .await?;
        self.report.notifications += 1;
        self.settings.report(
            self.pass,
            StoreKind::NotificationKeystore,
            self.report.notifications,
            false,
        );
        Ok(())
    }

    async fn end_notifications(&mut self) -> Result<()> {
        self.in_flight.drain().await?;
        self.settings.report(
            self.pass,
            StoreKind::NotificationKeystore,
            self.report.notifications,
            true,
        );
        Ok(())
    }
}

/// A bounded set of spawned writes. Without a tokio runtime (or with parallelism 1) each
/// write runs inline.
struct InFlight {
    set: tokio::task::JoinSet<Result<()>>,
    max: usize,
    spawn: bool,
}

impl InFlight {
    fn new(max: usize) -> Self {
        let max = max.max(1);
        InFlight {
            set: tokio::task::JoinSet::new(),
            max,
            spawn: max > 1 && tokio::runtime::Handle::try_current().is_ok(),
        }
    }

    async fn push<F>(&mut self, write: F) -> Result<()>
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        if !self.spawn {
            return write.await;
        }
        while self.set.len() >= self.max {
            self.join_one().await?;
        }
        self.set.spawn(write);
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.set.join_next().await {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(PersistenceError::Backend {
                context: "a migration write task".into(),
                source: Box::new(e),
            }),
        }
    }

    /// Waits for every write in flight; the first error wins (the rest are still awaited).
    async fn drain(&mut self) -> Result<()> {
        let mut first = Ok(());
        while !self.set.is_empty() {
            let r = self.join_one().await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// A backend-neutral picture of a bundle, for comparing two bundles (API-5.0 7.3): a
/// migration's or an import's target must match its source.
///
/// * keystore: canonical key → `{"data", "metaData"}` JSON of every record (expired and
///   unborn included);
/// * commit log: the ordered lines `commitId|atKey|op|opTimeMillis`, where a non-DELETE
///   entry is kept only when its key is present and not expired by the store's clock (the
///   *tolerance rule*: entries of expired or missing keys are not compared); DELETE
///   entries are always kept;
/// * access log: the lines `fromAtSign|requestMillis|verbName|lookupKey`, sorted (a
///   multiset; `null` for an absent field);
/// * notifications: id → the notification's JSON.
///
/// A store the bundle lacks is `None`, and differs from a present one. The high-water
/// mark is not compared (two logs with equal entries may have issued different ids).
///
/// The snapshot holds every store in memory: it is meant for tests and for checking a
/// migration or a backup, not for stores that do not fit in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistenceSnapshot {
    keystore: BTreeMap<String, String>,
    commit_log: Option<Vec<String>>,
    access_log: Option<Vec<String>>,
    notifications: Option<BTreeMap<String, String>>,
}

impl PersistenceSnapshot {
    /// Reads every store of `bundle`.
    pub async fn capture(bundle: &Bundle) -> Result<PersistenceSnapshot> {
        let ks = bundle.key_value_store();
        let mut keystore = BTreeMap::new();
        let mut keys = ks
            .scan_keys(
                &KeyPattern::default(),
                ScanOptions {
                    include_expired: true,
                    ..Default::default()
                },
            )
            .await?;
        while let Some(key) = keys.next().await {
            let key = key?;
            match ks.get(&key).await {
                Ok(value) => {
                    let value = AtData { key: None, ..value };
                    keystore.insert(key, value.to_json_string());
                }
                Err(PersistenceError::KeyNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        drop(keys);

        let commit_log = match bundle.commit_log() {
            None => None,
            Some(cl) => {
                let mut expired = HashSet::new();
                let mut exp = ks.get_expired_keys().await?;
                while let Some(k) = exp.next().await {
                    expired.insert(k?);
                }
                drop(exp);
                let mut lines = Vec::new();
                let mut entries = cl.iterate(IterateOptions::default()).await?;
                while let Some(e) = entries.next().await {
                    let e = e?;
                    if e.operation != CommitOp::Delete {
                        let k = canonical_key(&e.at_key);
                        if !keystore.contains_key(&k) || expired.contains(&k) {
                            continue;
                        }
                    }
                    lines.push(format!(
                        "{}|{}|{}|{}",
                        e.commit_id.map_or_else(|| "null".into(), |i| i.to_string()),
                        e.at_key,
                        e.operation.symbol(),
                        e.op_time.as_millis()
                    ));
                }
                Some(lines)
            }
        };

        let access_log = match bundle.access_log() {
            None => None,
            Some(al) => {
                let mut lines = Vec::new();
                let mut entries = al.iterate().await?;
                while let Some(e) = entries.next().await {
                    let e = e?;
                    lines.push(format!(
                        "{}|{}|{}|{}",
                        e.from_at_sign.as_deref().unwrap_or("null"),
                        e.request_date_time
                            .map_or_else(|| "null".into(), |t| t.as_millis().to_string()),
                        e.verb_name.as_deref().unwrap_or("null"),
                        e.lookup_key.as_deref().unwrap_or("null"),
                    ));
                }
                lines.sort();
                Some(lines)
            }
        };

        let notifications = match bundle.notification_keystore() {
            None => None,
            Some(nk) => {
                let mut map = BTreeMap::new();
                let mut all = nk.iterate().await?;
                while let Some(n) = all.next().await {
                    let n = n?;
                    map.insert(n.id.clone(), n.to_json_string());
                }
                Some(map)
            }
        };

        Ok(PersistenceSnapshot {
            keystore,
            commit_log,
            access_log,
            notifications,
        })
    }

    /// Every difference between `self` (A) and `other` (B), one line each; empty when
    /// they match. Maps report keys present on one side only and values that differ;
    /// lists report a length mismatch and each differing position.
    pub fn differences_from(&self, other: &PersistenceSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps("keystore", &self.keystore, &other.keystore, &mut out);
        diff_opt(
            "commitLog",
            &self.commit_log,
            &other.commit_log,
            &mut out,
            |n, a: &Vec<String>, b: &Vec<String>, o| diff_lists(n, a, b, o),
        );
        diff_opt(
            "accessLog",
            &self.access_log,
            &other.access_log,
            &mut out,
            |n, a: &Vec<String>, b: &Vec<String>, o| diff_lists(n, a, b, o),
        );
        diff_opt(
            "notifications",
            &self.notifications,
            &other.notifications,
            &mut out,
            diff_maps,
        );
        out
    }

    /// The first difference, or `None` when the snapshots match.
    pub fn describe_difference_from(&self, other: &PersistenceSnapshot) -> Option<String> {
        self.differences_from(other).into_iter().next()
    }

    /// Whether the snapshots have no difference.
    pub fn matches(&self, other: &PersistenceSnapshot) -> bool {
        self.differences_from(other).is_empty()
    }

    /// How many items each store contributed (`keystore`, `commitLog`, `accessLog`,
    /// `notifications`); an absent store is left out.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        out.insert("keystore", self.keystore.len());
        if let Some(c) = &self.commit_log {
            out.insert("commitLog", c.len());
        }
        if let Some(a) = &self.access_log {
            out.insert("accessLog", a.len());
        }
        if let Some(n) = &self.notifications {
            out.insert("notifications", n.len());
        }
        out
    }
}

fn diff_opt<T>(
    name: &str,
    a: &Option<T>,
    b: &Option<T>,
    out: &mut Vec<String>,
    diff: impl Fn(&str, &T, &T, &mut Vec<String>),
) {
    match (a, b) {
        (Some(a), Some(b)) => diff(name, a, b, out),
        (Some(_), None) => out.push(format!("{name}: store present only in A")),
        (None, Some(_)) => out.push(format!("{name}: store present only in B")),
        (None, None) => {}
    }
}

fn diff_maps(
    name: &str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    for (k, va) in a {
        match b.get(k) {
            None => out.push(format!("{name}: {k:?} only in A")),
            Some(vb) if vb != va => {
                out.push(format!("{name}: value of {k:?} differs: A {va} vs B {vb}"))
            }
            Some(_) => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("{name}: {k:?} only in B"));
        }
    }
}

fn diff_lists(name: &str, a: &[String], b: &[String], out: &mut Vec<String>) {
    if a.len() != b.len() {
        out.push(format!(
            "{name}: length differs: A {} vs B {}",
            a.len(),
            b.len()
        ));
    }
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            let show = |v: Option<&String>| v.map_or_else(|| "<none>".to_string(), |s| s.clone());
            out.push(format!("{name}[{i}]: A {} vs B {}", show(x), show(y)));
        }
    }
}
