//! The sled notification keystore (BEHAVIOR 6, API-5.0 5.4).
//!
//! One tree, `notifications`, in the database at the configured notification path. A
//! notification, its expiry-index entry and the entry count are staged and applied as one
//! atomic sled batch by the group-commit writer ([`super::writer`]). Opening reads one
//! counter; nothing is scanned.
//!
//! # Layout of the `notifications` tree
//!
//! | key | value |
//! |---|---|
//! | `n` + id (UTF-8, as given) | envelope(`AtNotification`) |
//! | `x` + instant + id | empty: index ordered by effective expiry |
//! | `y` + id | instant (8 bytes): the effective expiry the `x` entry was filed under |
//! | `mentry_count` | number of notifications (8 bytes BE) |
//!
//! Instants are encoded as in [`super::layout::instant_bytes`]. The `y` entry lets a
//! write or a remove drop the old `x` entry without decoding the old record, so even a
//! record that no longer decodes can be overwritten or removed.
//!
//! # Effective expiry (BEHAVIOR 1.7)
//!
//! [`AtNotification::effective_expiry`]: the epoch when the status is `Expired` or
//! `expires_at` or `notification_date_time` is missing; otherwise
//! `min(expires_at, notification_date_time + 8 days)`. A notification is expired iff its
//! effective expiry is `<= now`. It is computed once, when the notification is written,
//! and filed in the index (a stored notification is never rewritten by a read).

use super::db::{backend, Durability, SledDb, Sweep};
use super::hooks::RemoveHooks;
use super::layout::{self as lay, instant_from, prefix_end, prefixed, timed};
use super::staging::Staging;
use super::store_core::{
    self, chunked, first_instant, found, lock, read_counter, regex_of, remove_in_chunks, run,
    Broadcast, GroupStore, Released, StoreHandle, TxnBuffer, WriteGroup,
};
use super::writer::WriteQueue;
use crate::error::{PersistenceError, Result};
use crate::key::{self, KeyPattern};
use crate::model::{codec, AtNotification, Clock, NotificationType, Timestamp};
use crate::store::{
    ChangeStream, Compactable, CompactedItem, KeyStoreChange, KeyStoreSnapshot, KeyStoreStats,
    KeyStoreTxn, KeyValueStore, NotificationEvent, NotificationKeystore, NotificationStream,
    RemoveHook, RemoveHookArgs, RemoveOptions, ResultStream, WriteOptions,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

pub(crate) const STORE: &str = "notification keystore";
/// The tree holding the notifications.
pub(crate) const TREE: &str = "notifications";

/// Prefix of notifications by id.
pub(crate) const RECORD: u8 = b'n';
/// Prefix of the effective-expiry index.
pub(crate) const EXPIRY: u8 = b'x';
/// Prefix of the id → filed effective expiry map.
pub(crate) const FILED: u8 = b'y';
/// Counter: the number of notifications.
pub(crate) const ENTRY_COUNT: &[u8] = b"mentry_count";

/// The longest notification id, in UTF-16 code units (BEHAVIOR 6.1, open point 33).
pub use crate::key::MAX_NOTIFICATION_ID_LENGTH;
/// How many notifications one compaction (or clear) batch removes at most.
pub(crate) const COMPACTION_CHUNK: usize = 1024;

/// Settings of one notification keystore.
#[derive(Debug, Clone)]
pub(crate) struct NotificationSettings {
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
    pub change_buffer: usize,
}

#[derive(Debug)]
pub(crate) enum Op {
    Put {
        id: String,
        notification: Box<AtNotification>,
    },
    Remove {
        id: String,
    },
    RemoveMany {
        ids: Vec<String>,
    },
    /// Removes those of `ids` whose effective expiry is `<= as_of`.
    ExpireRemove {
        ids: Vec<String>,
        as_of: Timestamp,
    },
    /// Removes up to `limit` notifications with effective expiry `<= as_of`.
    CompactChunk {
        as_of: Timestamp,
        limit: usize,
    },
    /// A committed transaction: puts (`Some`) and removes (`None`) in order.
    Txn {
        ops: Vec<(String, Option<Box<AtNotification>>)>,
    },
    Clear,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Unit,
    Count(u64),
    Ids(Vec<String>),
    /// A compaction chunk: the removed ids, and whether more may be left.
    Chunk(Vec<String>, bool),
}

type Queued = store_core::Queued<Op, Outcome>;

/// The effects of one operation, published once its group is applied.
struct OpResult {
    outcome: Outcome,
    events: Vec<KeyStoreChange>,
    stored: Vec<AtNotification>,
}

impl OpResult {
    fn new(outcome: Outcome) -> Self {
        OpResult {
            outcome,
            events: Vec::new(),
            stored: Vec::new(),
        }
    }
}

/// Shared state of one notification keystore.
pub(crate) struct NkInner {
    settings: NotificationSettings,
    pub(crate) handle: StoreHandle,
    queue: WriteQueue<Queued>,
    pub(crate) count: Mutex<u64>,
    events: Broadcast<KeyStoreChange>,
    stored: Broadcast<NotificationEvent>,
    hooks: RemoveHooks,
}

impl std::fmt::Debug for NkInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NkInner")
            .field("change_buffer", &self.settings.change_buffer)
            .finish_non_exhaustive()
    }
}

fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> PersistenceError {
    PersistenceError::CorruptRecord {
        store: STORE,
        key: key.into(),
        reason: reason.into(),
    }
}

/// Checks a write of `notification` under `id`: a valid id, and the notification's own.
fn check_write(id: &str, notification: &AtNotification) -> Result<()> {
    key::validate_notification_id(id)?;
    if notification.id != id {
        return Err(PersistenceError::invalid_argument(
            "notification.id",
            format!(
                "the notification's id {:?} differs from the id {id:?} it is written under",
                notification.id
            ),
        ));
    }
    Ok(())
}

fn decode_record(bytes: &[u8], id: &str) -> Result<AtNotification> {
    codec::decode::<AtNotification>(bytes, STORE, &|| id.to_string())
}

fn id_of(bytes: &[u8], key: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(lay::render(key), "id is not UTF-8"))
}

/// The filed effective expiry of `id`, as the group sees it.
fn filed(s: &Staging<'_>, id: &str) -> Result<Option<Timestamp>> {
    match s.get(&prefixed(FILED, id.as_bytes()))? {
        Some(v) => {
            let arr: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(id, "filed expiry is not 8 bytes"))?;
            Ok(Some(instant_from(arr)))
        }
        None => Ok(None),
    }
}

impl NkInner {
    pub(crate) fn open(db: Arc<SledDb>, settings: NotificationSettings) -> Result<Arc<NkInner>> {
        let tree = db.tree(TREE)?;
        let count = read_counter(&tree, STORE, ENTRY_COUNT)?.unwrap_or(0);
        let events = Broadcast::new(settings.change_buffer);
        let stored = Broadcast::new(settings.change_buffer);
        Ok(Arc::new(NkInner {
            settings,
            handle: StoreHandle::new(STORE, db, tree),
            queue: WriteQueue::default(),
            count: Mutex::new(count),
            events,
            stored,
            hooks: RemoveHooks::default(),
        }))
    }

    fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    /// Publishes the effects of an applied operation; returns its outcome.
    fn publish(&self, r: OpResult) -> Outcome {
        self.events.send_all(r.events);
        let stored = r.stored.into_iter();
        self.stored
            .send_all(stored.map(|n| NotificationEvent::Stored(Box::new(n))));
        r.outcome
    }

    // ----- staged primitives (writer only) -----

    /// Deletes `id` if present; true when it was.
    fn delete(s: &mut Staging<'_>, count: &mut u64, id: &str) -> Result<bool> {
        let rk = prefixed(RECORD, id.as_bytes());
        if s.get(&rk)?.is_none() {
            return Ok(false);
        }
        if let Some(t) = filed(s, id)? {
            s.remove(timed(EXPIRY, t, id.as_bytes()));
        }
        s.remove(prefixed(FILED, id.as_bytes()));
        s.remove(rk);
        *count = count.saturating_sub(1);
        Ok(true)
    }

    /// Stages an upsert of `notification` under `id` and records its events.
    fn apply_put(
        &self,
        s: &mut Staging<'_>,
        count: &mut u64,
        id: String,
        notification: Box<AtNotification>,
        r: &mut OpResult,
    ) -> Result<()> {
        let rk = prefixed(RECORD, id.as_bytes());
        let existed = s.get(&rk)?.is_some();
        if let Some(t) = filed(s, &id)? {
            s.remove(timed(EXPIRY, t, id.as_bytes()));
        }
        if !existed {
            *count = count.saturating_add(1);
        }
        let eff = notification.effective_expiry();
        s.insert(timed(EXPIRY, eff, id.as_bytes()), Vec::new());
        s.insert(
            prefixed(FILED, id.as_bytes()),
            lay::instant_bytes(eff).to_vec(),
        );
        s.insert(rk, codec::encode(notification.as_ref()));
        r.events.push(if existed {
            KeyStoreChange::KeyUpdated { key: id }
        } else {
            KeyStoreChange::KeyAdded { key: id }
        });
        let notify = matches!(
            notification.notification_type,
            Some(NotificationType::Received) | Some(NotificationType::SelfNotification)
        );
        // Only when anyone listens: saves a clone per put otherwise.
        if notify && self.stored.has_subscribers() {
            r.stored.push(*notification);
        }
        Ok(())
    }

    fn apply_op(&self, s: &mut Staging<'_>, count: &mut u64, op: Op) -> Result<OpResult> {
        match op {
            Op::Put { id, notification } => {
                let mut r = OpResult::new(Outcome::Unit);
                self.apply_put(s, count, id, notification, &mut r)?;
                Ok(r)
            }
            Op::Remove { id } => {
                let mut r = OpResult::new(Outcome::Unit);
                if Self::delete(s, count, &id)? {
                    r.events.push(KeyStoreChange::KeyRemoved { key: id });
                }
                Ok(r)
            }
            Op::Txn { ops } => {
                let mut r = OpResult::new(Outcome::Unit);
                for (id, value) in ops {
                    match value {
                        Some(n) => self.apply_put(s, count, id, n, &mut r)?,
                        None => {
                            if Self::delete(s, count, &id)? {
                                r.events.push(KeyStoreChange::KeyRemoved { key: id });
                            }
                        }
                    }
                }
                Ok(r)
            }
            Op::RemoveMany { ids } => {
                let mut r = OpResult::new(Outcome::Unit);
                let mut n = 0;
                for id in ids {
                    if Self::delete(s, count, &id)? {
                        r.events.push(KeyStoreChange::KeyRemoved { key: id });
                        n += 1;
                    }
                }
                r.outcome = Outcome::Count(n);
                Ok(r)
            }
            Op::ExpireRemove { ids, as_of } => {
                let mut r = OpResult::new(Outcome::Unit);
                let mut removed = Vec::new();
                for id in ids {
                    let expired = filed(s, &id)?.is_some_and(|t| t <= as_of);
                    if expired && Self::delete(s, count, &id)? {
                        r.events
                            .push(KeyStoreChange::KeyRemoved { key: id.clone() });
                        removed.push(id);
                    }
                }
                r.outcome = Outcome::Ids(removed);
                Ok(r)
            }
            Op::CompactChunk { .. } | Op::Clear => Err(PersistenceError::invalid_argument(
                "op",
                "not a batched notification operation",
            )),
        }
    }

    /// Removes up to `limit` notifications whose effective expiry is `<= as_of`, as one
    /// atomic batch. Runs alone (the tree is current).
    fn compact_chunk(
        &self,
        tree: &sled::Tree,
        count: &mut u64,
        as_of: Timestamp,
        limit: usize,
    ) -> Result<(Vec<String>, bool)> {
        let mut local = *count;
        let mut s = Staging::new(tree);
        let mut removed = Vec::new();
        let mut scanned = 0;
        let end = lay::timed_bound(EXPIRY, as_of.plus_millis(1));
        for item in tree.range(vec![EXPIRY]..end).keys().take(limit) {
            scanned += 1;
            let k = item.map_err(|e| backend("compact notifications", e))?;
            // An index entry that does not parse names no record: drop it.
            let Some((t, id)) = lay::split_timed(&k)
                .and_then(|(t, id)| String::from_utf8(id.to_vec()).ok().map(|id| (t, id)))
            else {
                s.remove(k.to_vec());
                continue;
            };
            // A stale index entry (not the one the record is filed under) is dropped
            // without touching the record.
            let current = filed(&s, &id)? == Some(t);
            s.remove(k.to_vec());
            if current && Self::delete(&mut s, &mut local, &id)? {
                removed.push(id);
            }
        }
        if local != *count {
            s.insert(ENTRY_COUNT.to_vec(), local.to_be_bytes().to_vec());
        }
        s.commit_op();
        s.apply()?;
        *count = local;
        Ok((removed, scanned == limit))
    }

    /// Empties the tree in bounded atomic chunks (each keeping the count and the index
    /// consistent with what is left), then resets the count. Each chunk is followed by a
    /// flush at the store's durability, so sled's write backlog stays bounded however
    /// large the store is (see [`SledDb::flush`]); the caller flushes the final reset.
    fn clear_tree(&self, db: &SledDb, tree: &sled::Tree, count: &mut u64) -> Result<()> {
        let level = self.settings.durability;
        let notifications = |s: &mut Staging<'_>, local: &mut u64| {
            let mut n = 0;
            for item in tree
                .range(vec![RECORD]..prefix_end(RECORD))
                .keys()
                .take(COMPACTION_CHUNK)
            {
                let k = item.map_err(|e| backend("clear notifications", e))?;
                let id = id_of(&k[1..], &k)?;
                Self::delete(s, local, &id)?;
                n += 1;
            }
            Ok(n)
        };
        let stage_count = |s: &mut Staging<'_>, _: &u64, local: &mut u64| {
            s.insert(ENTRY_COUNT.to_vec(), local.to_be_bytes().to_vec());
            s.commit_op();
        };
        remove_in_chunks(db, tree, level, count, notifications, stage_count)?;
        // Leftovers (index entries of records that were already gone) in plain chunks.
        db.sweep_tree(
            tree,
            Sweep::AllButCounters,
            level,
            COMPACTION_CHUNK,
            "clear notifications",
        )?;
        let mut batch = sled::Batch::default();
        batch.insert(ENTRY_COUNT, &0u64.to_be_bytes()[..]);
        tree.apply_batch(batch)
            .map_err(|e| backend("clear notifications", e))?;
        *count = 0;
        Ok(())
    }

    /// Ids with effective expiry `<= as_of`, ascending by effective expiry.
    fn expired_ids(tree: &sled::Tree, as_of: Timestamp) -> impl Iterator<Item = Result<String>> {
        let end = lay::timed_bound(EXPIRY, as_of.plus_millis(1));
        tree.range(vec![EXPIRY]..end).keys().map(|item| {
            let k = item.map_err(|e| backend("expiry index", e))?;
            let (_, id) =
                lay::split_timed(&k).ok_or_else(|| corrupt(lay::render(&k), "short index key"))?;
            id_of(id, &k)
        })
    }
}

impl GroupStore for NkInner {
    type Op = Op;
    type Answer = Outcome;
    const WRITE_GROUP: &'static str = "notification write group";
    /// Empties the store; fires no events.
    const CLEAR: Op = Op::Clear;

    fn handle(&self) -> &StoreHandle {
        &self.handle
    }

    fn write_queue(&self) -> &WriteQueue<Queued> {
        &self.queue
    }

    /// Compaction chunks and clears scan the tree, so they run alone.
    fn exclusive(op: &Op) -> bool {
        matches!(op, Op::CompactChunk { .. } | Op::Clear)
    }

    /// Applies a run of non-exclusive operations as one batch.
    fn process_run(&self, db: &SledDb, tree: &sled::Tree, run: Vec<Queued>) {
        let mut group = WriteGroup::stage(tree, &self.count, run, |s, count, op| {
            self.apply_op(s, count, op)
        });
        group.stage_counters(|s, before, count| {
            if *count != *before {
                s.insert(ENTRY_COUNT.to_vec(), count.to_be_bytes().to_vec());
                s.commit_op();
            }
        });
        let context = "applying a notification write group";
        // Readers already see the change, so subscribers hear of it too.
        group.finish(db, self.settings.durability, context, |r| self.publish(r));
    }

    fn process_exclusive(&self, db: &SledDb, tree: &sled::Tree, q: Queued) {
        let mut count = lock(&self.count);
        let r = match q.op {
            Op::CompactChunk { as_of, limit } => self
                .compact_chunk(tree, &mut count, as_of, limit)
                .map(|(ids, more)| Outcome::Chunk(ids, more)),
            Op::Clear => self.clear_tree(db, tree, &mut count).map(|_| Outcome::Unit),
            _ => Err(PersistenceError::invalid_argument(
                "op",
                "not an exclusive notification operation",
            )),
        };
        drop(count);
        let r = r.and_then(|o| db.flush(self.settings.durability).map(|_| o));
        // Compaction removals are reported like removes.
        if let Ok(Outcome::Chunk(ids, _)) = &r {
            let removed = ids.iter();
            self.events
                .send_all(removed.map(|id| KeyStoreChange::KeyRemoved { key: id.clone() }));
        }
        let _ = q.tx.send(r);
    }

    /// Releases the database; later calls return `StoreClosed` and the change and
    /// notification streams end.
    fn close(&self) {
        self.handle.close();
        self.events.close();
        self.stored.close();
    }
}

/// The sled notification keystore ([`NotificationKeystore`]). Obtain it from a server
/// bundle ([`crate::store::Bundle::notification_keystore`]).
///
/// Ids are stored exactly as given (case-sensitive, not normalised). A write's id must be
/// non-empty ([`InvalidKey`](PersistenceError::InvalidKey)) and at most 248 UTF-16 code
/// units ([`KeyTooLong`](PersistenceError::KeyTooLong)); the notification's own `id` field
/// must equal the id it is written under
/// ([`InvalidArgument`](PersistenceError::InvalidArgument)), so a stored notification and
/// its key never disagree. A refused write changes nothing and emits nothing.
///
/// Departures from the Dart store, all deliberate: `get` of an absent id is
/// [`KeyNotFound`](PersistenceError::KeyNotFound) (the uniform [`KeyValueStore`] rule,
/// where Dart returns null); `get_keys`, `get_expired_keys` and `peek_expired` return the
/// ids as stored (no UTF-7 decoding or encoding, BEHAVIOR open points 2 and 3); a stored
/// notification is never rewritten by a read (open point 39).
///
/// Expiry follows the effective-expiry rule of BEHAVIOR 1.7 with the `<=` boundary, from a
/// persistent index, so `get_expired_keys`, `peek_expired`, `next_expires_at` and
/// `delete_expired_keys` cost what they return. Compaction removes every notification
/// whose effective expiry has passed; with `dry_run = false` the removal advances as the
/// returned stream is polled, in atomic batches of at most 1024, and each removal is
/// reported as `KeyRemoved` on [`changes`](KeyValueStore::changes) (remove hooks are not
/// run by compaction; [`delete_expired_keys`](KeyValueStore::delete_expired_keys) runs
/// them).
///
/// Events ([`KeyValueStore::changes`]): `put`/`create` → `KeyAdded` for a new id, else
/// `KeyUpdated`; `remove` → `KeyRemoved` only if the id was present; `remove_many` and
/// `delete_expired_keys` → one `KeyRemoved` per removed id; bundle `clear` → none. They
/// are sent after the write is applied. [`subscribe_notifications`](
/// NotificationKeystore::subscribe_notifications) additionally yields each stored
/// notification of type received or self.
#[derive(Clone, Debug)]
pub struct SledNotificationKeystore {
    inner: Arc<NkInner>,
}

impl SledNotificationKeystore {
    pub(crate) fn new(inner: Arc<NkInner>) -> Self {
        SledNotificationKeystore { inner }
    }

    async fn write(&self, id: &str, notification: AtNotification) -> Result<Option<i64>> {
        check_write(id, &notification)?;
        run(
            &self.inner,
            Op::Put {
                id: id.to_string(),
                notification: Box::new(notification),
            },
        )
        .await
        .map(|_| None)
    }
}

#[async_trait]
impl KeyValueStore<AtNotification> for SledNotificationKeystore {
    async fn get(&self, key: &str) -> Result<AtNotification> {
        let tree = self.inner.handle.tree()?;
        match tree
            .get(prefixed(RECORD, key.as_bytes()))
            .map_err(|e| backend("get notification", e))?
        {
            Some(bytes) => decode_record(&bytes, key),
            None => Err(PersistenceError::KeyNotFound {
                key: key.to_string(),
            }),
        }
    }

    /// Upserts the notification under `key` (see the type's documentation for the id
    /// rules). `skip_commit` and asserted timestamps are ignored. Returns `None`.
    async fn put(
        &self,
        key: &str,
        value: AtNotification,
        _options: WriteOptions,
    ) -> Result<Option<i64>> {
        self.write(key, value).await
    }

    /// The same as [`put`](Self::put).
    async fn create(
        &self,
        key: &str,
        value: AtNotification,
        _options: WriteOptions,
    ) -> Result<Option<i64>> {
        self.write(key, value).await
    }

    /// Runs the remove hooks and removes the id; an absent id is not an error (and emits
    /// nothing). Returns `None`.
    async fn remove(&self, key: &str, options: RemoveOptions) -> Result<Option<i64>> {
        key::validate_notification_id(key)?;
        self.inner.handle.ensure_open()?;
        let args = RemoveHookArgs {
            key: key.to_string(),
            skip_commit: options.skip_commit,
        };
        let id = key.to_string();
        let remove = run(&self.inner, Op::Remove { id });
        self.inner.hooks.around(&args, remove).await?;
        Ok(None)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let tree = self.inner.handle.tree()?;
        tree.contains_key(prefixed(RECORD, key.as_bytes()))
            .map_err(|e| backend("exists", e))
    }

    /// Every id (none or an empty pattern) or those containing a match of `regex`, as
    /// stored, in byte order. No expiry filtering.
    async fn get_keys(&self, regex: Option<&str>) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let re = regex_of(regex)?;
        let iter = tree.range(vec![RECORD]..prefix_end(RECORD)).keys();
        Ok(futures::stream::iter(iter.filter_map(move |item| {
            let k = match item {
                Ok(k) => k,
                Err(e) => return Some(Err(backend("get_keys", e))),
            };
            let id = match id_of(&k[1..], &k) {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            match &re {
                Some(re) if !re.is_match(&id) => None,
                _ => Some(Ok(id)),
            }
        }))
        .boxed())
    }

    async fn get_expired_keys(&self) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let iter = NkInner::expired_ids(&tree, self.inner.now());
        Ok(futures::stream::iter(iter).boxed())
    }

    async fn delete_expired_keys(&self) -> Result<bool> {
        let tree = self.inner.handle.tree()?;
        let now = self.inner.now();
        let ids: Vec<String> = NkInner::expired_ids(&tree, now).collect::<Result<_>>()?;
        let inner = &self.inner;
        inner
            .hooks
            .sweep(ids, |ids| async move {
                match run(inner, Op::ExpireRemove { ids, as_of: now }).await? {
                    Outcome::Ids(ids) => Ok(ids),
                    _ => Ok(Vec::new()),
                }
            })
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<BTreeMap<String, AtNotification>> {
        let tree = self.inner.handle.tree()?;
        let mut out = BTreeMap::new();
        for &id in keys {
            if out.contains_key(id) {
                continue;
            }
            if let Some(bytes) = tree
                .get(prefixed(RECORD, id.as_bytes()))
                .map_err(|e| backend("get_many", e))?
            {
                out.insert(id.to_string(), decode_record(&bytes, id)?);
            }
        }
        Ok(out)
    }

    /// Removes every present id of `keys` as one atomic unit; returns how many were
    /// removed. Every id is validated first: one invalid id fails the call and nothing is
    /// removed. `skip_commit` is passed to the hooks only.
    async fn remove_many(&self, keys: &[&str], skip_commit: bool) -> Result<u64> {
        let tree = self.inner.handle.tree()?;
        for id in keys {
            key::validate_notification_id(id)?;
        }
        let mut seen = HashSet::new();
        let distinct: Vec<&str> = keys.iter().copied().filter(|&id| seen.insert(id)).collect();
        let present = |id: &str| {
            tree.contains_key(prefixed(RECORD, id.as_bytes()))
                .map_err(|e| backend("remove_many", e))
        };
        let inner = &self.inner;
        inner
            .hooks
            .around_many(distinct, skip_commit, present, |ids| async move {
                match run(inner, Op::RemoveMany { ids }).await? {
                    Outcome::Count(n) => Ok(n),
                    _ => Ok(0),
                }
            })
            .await
    }

    /// The smallest effective expiry, or `None` when the store is empty (the epoch while a
    /// status-expired or date-less notification is stored).
    async fn next_expires_at(&self) -> Result<Option<Timestamp>> {
        let tree = self.inner.handle.tree()?;
        first_instant(&tree, vec![EXPIRY], prefix_end(EXPIRY), "next_expires_at")
    }

    async fn peek_expired(
        &self,
        as_of: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let as_of = as_of.unwrap_or_else(|| self.inner.now());
        let iter = NkInner::expired_ids(&tree, as_of).take(limit.unwrap_or(usize::MAX));
        Ok(futures::stream::iter(iter).boxed())
    }

    fn supports_snapshots(&self) -> bool {
        false
    }

    async fn snapshot(&self) -> Result<Box<dyn KeyStoreSnapshot<AtNotification>>> {
        self.inner.handle.ensure_open()?;
        Ok(Box::new(NotificationSnapshot {
            store: self.clone(),
            released: Released::default(),
        }))
    }

    async fn begin_transaction(&self) -> Result<Arc<dyn KeyStoreTxn<AtNotification>>> {
        self.inner.handle.ensure_open()?;
        Ok(Arc::new(NotificationTxn {
            store: self.clone(),
            state: Mutex::new(TxnBuffer::default()),
        }))
    }

    /// Counts come from one pass over the stored notifications (there is no ttl index):
    /// `ttl_keys` counts notifications with a ttl, `ttb_keys` is 0, and the oldest and
    /// newest instants are the `notification_date_time`s.
    async fn stats(&self) -> Result<KeyStoreStats> {
        let tree = self.inner.handle.tree()?;
        let mut stats = KeyStoreStats {
            size_bytes: self.inner.handle.db()?.size_on_disk()?,
            ..Default::default()
        };
        for item in tree.range(vec![RECORD]..prefix_end(RECORD)) {
            let (k, v) = item.map_err(|e| backend("notification stats", e))?;
            let id = id_of(&k[1..], &k)?;
            let n = decode_record(&v, &id)?;
            stats.total_keys += 1;
            if n.ttl.is_some() {
                stats.ttl_keys += 1;
            }
            if let Some(t) = n.notification_date_time {
                stats.oldest_created_at = Some(stats.oldest_created_at.map_or(t, |o| o.min(t)));
                stats.newest_created_at = Some(stats.newest_created_at.map_or(t, |o| o.max(t)));
            }
        }
        Ok(stats)
    }

    fn changes(&self) -> ChangeStream {
        self.inner
            .events
            .stream(|missed| KeyStoreChange::Lagged { missed })
    }

    fn add_pre_remove_hook(&self, hook: RemoveHook) {
        self.inner.hooks.add(true, hook);
    }

    fn add_post_remove_hook(&self, hook: RemoveHook) {
        self.inner.hooks.add(false, hook);
    }
}

#[async_trait]
impl NotificationKeystore for SledNotificationKeystore {
    async fn iterate(&self) -> Result<ResultStream<AtNotification>> {
        let tree = self.inner.handle.tree()?;
        let iter = tree.range(vec![RECORD]..prefix_end(RECORD));
        Ok(futures::stream::iter(iter.map(|item| {
            let (k, v) = item.map_err(|e| backend("iterate notifications", e))?;
            let id = id_of(&k[1..], &k)?;
            decode_record(&v, &id)
        }))
        .boxed())
    }

    async fn entries_count(&self) -> Result<u64> {
        self.inner.handle.ensure_open()?;
        Ok(*lock(&self.inner.count))
    }

    async fn size_bytes(&self) -> Result<u64> {
        self.inner.handle.db()?.size_on_disk()
    }

    fn subscribe_notifications(&self) -> NotificationStream {
        self.inner
            .stored
            .stream(|missed| NotificationEvent::Lagged { missed })
    }
}

#[async_trait]
impl Compactable for SledNotificationKeystore {
    async fn compact(&self, dry_run: bool) -> Result<ResultStream<CompactedItem>> {
        let tree = self.inner.handle.tree()?;
        let as_of = self.inner.now();
        if dry_run {
            let iter =
                NkInner::expired_ids(&tree, as_of).map(|r| r.map(CompactedItem::NotificationId));
            return Ok(futures::stream::iter(iter).boxed());
        }
        let inner = Arc::clone(&self.inner);
        let chunks = chunked(move || {
            let inner = Arc::clone(&inner);
            async move {
                let op = Op::CompactChunk {
                    as_of,
                    limit: COMPACTION_CHUNK,
                };
                match run(&inner, op).await? {
                    Outcome::Chunk(ids, more) => Ok((ids, more)),
                    _ => Ok((Vec::new(), false)),
                }
            }
        });
        Ok(chunks.map(|r| r.map(CompactedItem::NotificationId)).boxed())
    }
}

/// A live-reading snapshot of the notification keystore.
struct NotificationSnapshot {
    store: SledNotificationKeystore,
    released: Released,
}

#[async_trait]
impl KeyStoreSnapshot<AtNotification> for NotificationSnapshot {
    async fn get(&self, key: &str) -> Result<Option<AtNotification>> {
        self.released.check()?;
        found(self.store.get(key).await)
    }

    /// Ids are matched with [`KeyPattern::matches`]: the unrestricted pattern yields every
    /// id, and an id that does not parse as an atKey (a UUID, say) matches no atKey field
    /// (API-5.0 2.3, the 5.0 placement of `scanKeys`).
    async fn scan_keys(&self, pattern: &KeyPattern) -> Result<ResultStream<String>> {
        self.released.check()?;
        let tree = self.store.inner.handle.tree()?;
        let pattern = pattern.clone();
        let iter = tree.range(vec![RECORD]..prefix_end(RECORD)).keys();
        Ok(futures::stream::iter(iter.filter_map(move |k| {
            let k = match k {
                Ok(k) => k,
                Err(e) => return Some(Err(backend("scan notification ids", e))),
            };
            match id_of(&k[1..], &k) {
                Ok(id) if pattern.matches(&id) => Some(Ok(id)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }))
        .boxed())
    }

    async fn release(&self) {
        self.released.release();
    }
}

/// A notification transaction, applied as one atomic write group.
struct NotificationTxn {
    store: SledNotificationKeystore,
    state: Mutex<TxnBuffer<Box<AtNotification>>>,
}

#[async_trait]
impl KeyStoreTxn<AtNotification> for NotificationTxn {
    async fn put(&self, key: &str, value: AtNotification) -> Result<()> {
        check_write(key, &value)?;
        lock(&self.state).buffer(key.to_string(), Some(Box::new(value)))
    }

    async fn remove(&self, key: &str) -> Result<()> {
        key::validate_notification_id(key)?;
        lock(&self.state).buffer(key.to_string(), None)
    }

    async fn get(&self, key: &str) -> Result<Option<AtNotification>> {
        let buffered = lock(&self.state)
            .lookup(key)?
            .map(|v| v.as_deref().cloned());
        match buffered {
            Some(v) => Ok(v),
            None => found(self.store.get(key).await),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    async fn commit(&self) -> Result<()> {
        let Some(ops) = lock(&self.state).commit()? else {
            return Ok(());
        };
        run(&self.store.inner, Op::Txn { ops }).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_layouts() {
        // These bytes are the on-disk format of the notifications tree; changing them
        // breaks every existing store.
        assert_eq!(TREE, "notifications");
        assert_eq!(prefixed(RECORD, b"id-1"), b"nid-1".to_vec());
        assert_eq!(prefixed(FILED, b"id-1"), b"yid-1".to_vec());
        assert_eq!(
            timed(EXPIRY, Timestamp::from_millis(1_704_067_200_000), b"id-1"),
            [
                &b"x"[..],
                &[0x80, 0, 0x01, 0x8c, 0xc2, 0x51, 0xf4, 0x00],
                b"id-1"
            ]
            .concat()
        );
        assert_eq!(
            timed(EXPIRY, Timestamp::EPOCH, b"d"),
            [&b"x"[..], &[0x80, 0, 0, 0, 0, 0, 0, 0], b"d"].concat()
        );
        assert_eq!(ENTRY_COUNT, b"mentry_count");
    }
}
