//! The store traits. All are async and object-safe: a consumer holds `Arc<dyn ...>` and
//! never names the backend.

use super::query::{KeyEntry, KeyStoreStats, Predicate, ScanOptions};
use super::types::{
    ChangeStream, CompactedItem, IterateOptions, RemoveHook, RemoveOptions, ResultStream,
    WriteOptions,
};
use crate::error::Result;
use crate::key::KeyPattern;
use crate::model::{AccessLogEntry, AtNotification, CommitEntry, CommitOp, Timestamp};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Something whose accumulated entries can be compacted (API-5.0 6).
#[async_trait]
pub trait Compactable: Send + Sync {
    /// Removes what this store's policy says is removable and yields each removed item;
    /// with `dry_run` it yields what would be removed and changes nothing.
    async fn compact(&self, dry_run: bool) -> Result<ResultStream<CompactedItem>>;
}

/// The backend-agnostic CRUD surface shared by the keystore (`V = AtData`) and the
/// notification keystore (`V = AtNotification`). Keys are strings.
#[async_trait]
pub trait KeyValueStore<V: Send + 'static>: Send + Sync {
    /// The stored value. An absent key is [`PersistenceError::KeyNotFound`]. Expired and
    /// not-yet-available records are returned (only enumerations filter by time).
    ///
    /// [`PersistenceError::KeyNotFound`]: crate::PersistenceError::KeyNotFound
    async fn get(&self, key: &str) -> Result<V>;

    /// Inserts or replaces. Returns the commit id (`Some(id)`), `Some(-1)` when the write
    /// was not committed (skip_commit, or a key the commit log skips), or `None` when the
    /// store has no commit log.
    async fn put(&self, key: &str, value: V, options: WriteOptions) -> Result<Option<i64>>;

    /// "Insert": writes as a new record even when the key exists (no existence check, as
    /// upstream). Returns as [`put`](Self::put).
    async fn create(&self, key: &str, value: V, options: WriteOptions) -> Result<Option<i64>>;

    /// Removes the key. Returns as [`put`](Self::put).
    async fn remove(&self, key: &str, options: RemoveOptions) -> Result<Option<i64>>;

    /// Whether a record is stored under the key (no time check).
    async fn exists(&self, key: &str) -> Result<bool>;

    /// The keys whose text contains a match of `regex` (a search, not a full match;
    /// `None` means every key). The keystore lists only available keys (born and not
    /// expired).
    async fn get_keys(&self, regex: Option<&str>) -> Result<ResultStream<String>>;

    /// Keys whose expiry instant has passed (`expires_at <= now`), from the expiry index.
    async fn get_expired_keys(&self) -> Result<ResultStream<String>>;

    /// Removes every expired key locally (no DELETE entry; the key's commit entry is
    /// purged). Remove hooks and `KeyRemoved` events fire per key. Returns `true`.
    async fn delete_expired_keys(&self) -> Result<bool>;

    /// The values of every present key of `keys`, keyed by canonical key. Absent keys are
    /// omitted, duplicates collapse, no time filter.
    async fn get_many(&self, keys: &[&str]) -> Result<BTreeMap<String, V>>;

    /// Removes every present key of `keys` as one atomic unit and returns how many were
    /// removed (absent keys and duplicates do not count). Remove hooks run per present key.
    async fn remove_many(&self, keys: &[&str], skip_commit: bool) -> Result<u64>;

    /// The smallest expiry instant in the store (it may be in the past), or `None`.
    async fn next_expires_at(&self) -> Result<Option<Timestamp>>;

    /// Up to `limit` keys with expiry `<= as_of` (default now), in ascending expiry order.
    /// `limit: None` is unbounded; `Some(0)` gives nothing.
    async fn peek_expired(
        &self,
        as_of: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<ResultStream<String>>;

    /// Whether [`snapshot`](Self::snapshot) gives real isolation. `false` for sled: sled
    /// 0.34 has no read snapshot, so a snapshot reads live state (as both upstream backends
    /// do).
    fn supports_snapshots(&self) -> bool;

    /// A read handle (see [`KeyStoreSnapshot`]).
    async fn snapshot(&self) -> Result<Box<dyn KeyStoreSnapshot<V>>>;

    /// Starts a transaction (see [`KeyStoreTxn`]); most callers use
    /// [`KeyValueStoreExt::transaction`].
    async fn begin_transaction(&self) -> Result<Arc<dyn KeyStoreTxn<V>>>;

    /// A diagnostic summary (see [`KeyStoreStats`]).
    async fn stats(&self) -> Result<KeyStoreStats>;

    /// A new subscription to this store's change events (see
    /// [`KeyStoreChange`](super::KeyStoreChange)).
    fn changes(&self) -> ChangeStream;

    /// Adds a hook awaited before each single-key remove; a failing hook aborts the remove.
    fn add_pre_remove_hook(&self, hook: RemoveHook);

    /// Adds a hook awaited after each single-key remove.
    fn add_post_remove_hook(&self, hook: RemoveHook);
}

/// The main keystore: [`KeyValueStore`] plus the sync-coupled surface (API-5.0 3).
#[async_trait]
pub trait AtKeyValueStore<V: Send + 'static, T: Send + 'static>:
    KeyValueStore<V> + Compactable
{
    /// The commit log, or `None` on a commit-log-free (client) store.
    fn commit_log(&self) -> Option<Arc<dyn CommitLog>>;

    /// Replaces the metadata only (the value is kept; an absent key gets a record without
    /// data). Commits `UPDATE_META`.
    async fn put_meta(&self, key: &str, metadata: T, options: WriteOptions) -> Result<Option<i64>>;

    /// Writes value and metadata together. Commits `UPDATE_ALL`.
    async fn put_all(&self, key: &str, value: V, metadata: T) -> Result<Option<i64>>;

    /// The stored metadata, or `None` when the key is absent.
    async fn get_meta(&self, key: &str) -> Result<Option<T>>;

    /// Writes `value` verbatim (migration): no metadata builder (version, timestamps and
    /// authors are kept), no commit entry, no change event; the expiry and availability
    /// indexes follow the stored metadata. Key rules apply. Idempotent.
    async fn restore(&self, key: &str, value: V) -> Result<()>;

    /// The keys matching `pattern` (API-5.0 2.3): available keys only unless
    /// `options.include_expired`; ordered by `options.order_by`; `skip` then `limit` apply
    /// after filtering.
    async fn scan_keys(
        &self,
        pattern: &KeyPattern,
        options: ScanOptions,
    ) -> Result<ResultStream<String>>;

    /// Whether [`query_by_path`](Self::query_by_path) is implemented (`true` for sled).
    fn supports_path_queries(&self) -> bool;

    /// The records whose key matches `pattern` and whose value, read as JSON, matches
    /// `predicate`. Expiry is not filtered. Values are usually end-to-end encrypted on a
    /// server, so this serves plaintext values only (public data, a client's local cache).
    async fn query_by_path(
        &self,
        pattern: &KeyPattern,
        predicate: &Predicate,
        options: ScanOptions,
    ) -> Result<ResultStream<KeyEntry<V, T>>>;

    /// The smallest `available_at` strictly after `as_of` (default now), or `None`.
    async fn next_available_at(&self, as_of: Option<Timestamp>) -> Result<Option<Timestamp>>;

    /// Keys with `since < available_at <= as_of` (default now), ascending, at most `limit`.
    async fn peek_newly_available(
        &self,
        since: Timestamp,
        as_of: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<ResultStream<String>>;
}

/// A read handle on a store (API-5.0 2.6). When the store does not support snapshots it
/// reads live state: a write made after `snapshot()` is visible through it. After
/// [`release`](Self::release) every read is
/// [`SnapshotReleased`](crate::PersistenceError::SnapshotReleased).
#[async_trait]
pub trait KeyStoreSnapshot<V: Send + 'static>: Send + Sync {
    /// The value, or `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<V>>;

    /// The keys matching `pattern` (expired and unborn keys hidden, natural order).
    async fn scan_keys(&self, pattern: &KeyPattern) -> Result<ResultStream<String>>;

    /// Releases the handle; idempotent.
    async fn release(&self);
}

/// A transaction: writes are buffered and applied together, atomically, by
/// [`commit`](Self::commit) (API-5.0 2.5). Keys compare case-insensitively (canonical
/// form); the latest operation per key wins, and operations are applied (taking commit
/// ids and firing events) in the order of each key's last operation. Reads see the
/// transaction's own view. Dropping the handle without `commit` discards everything.
#[async_trait]
pub trait KeyStoreTxn<V: Send + 'static>: Send + Sync {
    /// Buffers a write (validated now). On the keystore it is applied like `put_all`
    /// with the value's metadata, committing `UPDATE_ALL`.
    async fn put(&self, key: &str, value: V) -> Result<()>;

    /// Buffers a remove (validated now), committing `DELETE` when applied.
    async fn remove(&self, key: &str) -> Result<()>;

    /// The buffered value, `None` after a buffered remove, else the stored value (or
    /// `None` when absent).
    async fn get(&self, key: &str) -> Result<Option<V>>;

    /// Whether [`get`](Self::get) would return a value.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// Applies every buffered operation as one atomic unit. A second commit, or any use
    /// after commit, is an [`InvalidArgument`](crate::PersistenceError::InvalidArgument).
    async fn commit(&self) -> Result<()>;
}

/// The generic `transaction(body)` helper.
#[async_trait]
pub trait KeyValueStoreExt<V: Send + 'static>: KeyValueStore<V> {
    /// Runs `body` with a new transaction and commits it when `body` returns `Ok`. When
    /// `body` fails nothing is applied, no event fires and its error is returned as is.
    async fn transaction<R, F, Fut>(&self, body: F) -> Result<R>
    where
        R: Send,
        F: FnOnce(Arc<dyn KeyStoreTxn<V>>) -> Fut + Send,
        Fut: std::future::Future<Output = Result<R>> + Send,
    {
        let txn = self.begin_transaction().await?;
        let out = body(Arc::clone(&txn)).await?;
        txn.commit().await?;
        Ok(out)
    }
}

impl<V: Send + 'static, S: KeyValueStore<V> + ?Sized> KeyValueStoreExt<V> for S {}

/// The commit log clients sync from (API-5.0 4): at most one entry per atKey, ids dense at
/// issue from 0, a high-water mark that never goes down.
#[async_trait]
pub trait CommitLog: Compactable {
    /// Records `op` for `key` and returns its id; `-1` (no id consumed) for a key the skip
    /// rule elides (`private:`, `privatekey:`, `public:_` but not `public:__`, `local:`).
    async fn commit(&self, key: &str, op: CommitOp, op_time: Option<Timestamp>) -> Result<i64>;

    /// Deletes the key's entry if there is one. Never changes the high-water mark.
    async fn remove_entry_for(&self, key: &str) -> Result<()>;

    /// Writes `entry` under its own commit id, verbatim, replacing the atKey's entry
    /// (migration). Idempotent on (commit id, atKey, op); a different entry already stored
    /// under the id is [`ReplayConflict`](crate::PersistenceError::ReplayConflict). Raises
    /// the high-water mark. Fires no events.
    async fn replay(&self, entry: CommitEntry) -> Result<()>;

    /// Sets the high-water mark to `max(current, commit_id)`, persistently. Writes no entry.
    async fn raise_last_committed_sequence_number(&self, commit_id: i64) -> Result<()>;

    /// The retained entries in ascending commit id, lazily (API-5.0 4.6).
    async fn iterate(&self, options: IterateOptions) -> Result<ResultStream<CommitEntry>>;

    /// The retained entries in descending commit id, lazily, starting at `from_commit_id`
    /// (inclusive) or at the newest.
    async fn iterate_rev(&self, from_commit_id: Option<i64>) -> Result<ResultStream<CommitEntry>>;

    /// The highest id ever issued (or raised to); `-1` for a new log.
    async fn last_committed_sequence_number(&self) -> Result<i64>;

    /// The smallest retained id, or `None` when the log is empty.
    async fn first_committed_sequence_number(&self) -> Result<Option<i64>>;

    /// The retained entry of the atKey, or `None`.
    async fn get_latest_commit_entry(&self, key: &str) -> Result<Option<CommitEntry>>;

    /// How many entries are retained (one per atKey).
    async fn entries_count(&self) -> Result<u64>;

    /// Approximate bytes on disk of the database holding the log.
    async fn size_bytes(&self) -> Result<u64>;
}

/// The access log (API-5.0 5.2): append-only, server only.
#[async_trait]
pub trait AccessLog: Compactable {
    /// Appends an entry stamped now and returns its id (ids ascend in insertion order).
    async fn insert(
        &self,
        from_at_sign: &str,
        verb_name: &str,
        lookup_key: Option<&str>,
    ) -> Result<u64>;

    /// The `n` atSigns with the most `pol` entries, by descending count, ties by first
    /// occurrence.
    async fn most_visited_at_signs(&self, n: usize) -> Result<Vec<(String, u64)>>;

    /// The `n` keys with the most `lookup` entries, by descending count, ties by first
    /// occurrence.
    async fn most_visited_keys(&self, n: usize) -> Result<Vec<(String, u64)>>;

    /// The most recently inserted entry, or `None` on an empty log.
    async fn get_last_access_log_entry(&self) -> Result<Option<AccessLogEntry>>;

    /// The `pkam` entry with the latest request time (ties: the last inserted), or `None`.
    async fn get_last_pkam_access_log_entry(&self) -> Result<Option<AccessLogEntry>>;

    /// Every entry in insertion order, lazily.
    async fn iterate(&self) -> Result<ResultStream<AccessLogEntry>>;

    /// Appends `entry` verbatim (keeping its request time) and returns its id (migration).
    async fn replay(&self, entry: AccessLogEntry) -> Result<u64>;

    /// How many entries the log holds.
    async fn entries_count(&self) -> Result<u64>;

    /// Approximate bytes on disk of the database holding the log.
    async fn size_bytes(&self) -> Result<u64>;
}

/// A stream of stored notifications (see
/// [`NotificationKeystore::subscribe_notifications`]).
pub type NotificationStream = futures::stream::BoxStream<'static, NotificationEvent>;

/// One item of a notification subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationEvent {
    /// A notification of type received or self was stored.
    Stored(Box<AtNotification>),
    /// This subscriber fell behind and missed `missed` notifications.
    Lagged {
        /// How many were dropped for this subscriber.
        missed: u64,
    },
}

/// The notification keystore (API-5.0 5.4): a [`KeyValueStore`] of [`AtNotification`]s by
/// id, with no commit log. Ids are stored as given (case-sensitive, not normalised).
#[async_trait]
pub trait NotificationKeystore: KeyValueStore<AtNotification> + Compactable {
    /// Every stored notification (expired ones included), in id order, lazily.
    async fn iterate(&self) -> Result<ResultStream<AtNotification>>;

    /// How many notifications are stored.
    async fn entries_count(&self) -> Result<u64>;

    /// Approximate bytes on disk of the database holding the store.
    async fn size_bytes(&self) -> Result<u64>;

    /// A subscription yielding each stored notification of type received or self after
    /// its put/create commits (upserts included). Bounded buffer; a lagging subscriber
    /// gets one `Lagged` item and goes on; writers never wait.
    fn subscribe_notifications(&self) -> NotificationStream;
}
