//! [`SledPersistenceConfig`]: where each store lives and how it behaves.

use super::db::Durability;
use crate::model::{Clock, SystemClock};
use crate::store::{BackendId, PersistenceConfig};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default sled page-cache size per database (64 MiB).
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;
/// Default size of the keystore's record cache (8 MiB): the recently read records, kept
/// in memory in front of sled's page cache: about 13,000 records of 300 bytes under keys
/// of 35, counting each entry's bookkeeping.
pub const DEFAULT_RECORD_CACHE_CAPACITY: u64 = 8 * 1024 * 1024;
/// Default periodic flush interval of the client configuration, in milliseconds.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 500;
/// Default per-subscriber buffer of change streams.
pub const DEFAULT_CHANGE_BUFFER: usize = 1024;
/// Default access-log compaction percentage.
pub const DEFAULT_COMPACTION_PERCENTAGE: u8 = 30;

/// Configuration of the sled backend.
///
/// * [`server_defaults`](Self::server_defaults): keystore with commit log, access log and
///   notification keystore; durable writes.
/// * [`client_defaults`](Self::client_defaults): keystore only, commit-log-free; periodic
///   flush (a client crash can lose up to one flush interval of unsynced writes; its server
///   holds the truth).
/// * [`new`](Self::new) plus the `with_*` methods: any mix, every knob named.
///
/// The keystore and its commit log share the database at `storage_path`, so a write and
/// its commit entry are one atomic unit. `commit_log_path` is accepted for parity with the
/// Dart configuration and takes part in storage identity, but holds no data and is never
/// opened.
#[derive(Clone)]
pub struct SledPersistenceConfig {
    storage_path: PathBuf,
    commit_log_path: Option<PathBuf>,
    access_log_path: Option<PathBuf>,
    notification_storage_path: Option<PathBuf>,
    backend_marker_path: Option<PathBuf>,
    enable_commit_log: bool,
    enable_access_log: bool,
    enable_notification_keystore: bool,
    durability: Durability,
    cache_capacity: u64,
    record_cache_capacity: u64,
    change_buffer: usize,
    clock: Arc<dyn Clock>,
    access_log_compaction_percentage: u8,
    lock_retry: Duration,
}

impl std::fmt::Debug for SledPersistenceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledPersistenceConfig")
            .field("storage_path", &self.storage_path)
            .field("commit_log_path", &self.commit_log_path)
            .field("access_log_path", &self.access_log_path)
            .field("notification_storage_path", &self.notification_storage_path)
            .field("enable_commit_log", &self.enable_commit_log)
            .field("enable_access_log", &self.enable_access_log)
            .field(
                "enable_notification_keystore",
                &self.enable_notification_keystore,
            )
            .field("durability", &self.durability)
            .field("cache_capacity", &self.cache_capacity)
            .field("record_cache_capacity", &self.record_cache_capacity)
            .finish_non_exhaustive()
    }
}

impl SledPersistenceConfig {
    /// A keystore-only configuration at `storage_path` with durable writes; add stores and
    /// change knobs with the `with_*` methods.
    pub fn new(storage_path: impl Into<PathBuf>) -> Self {
        SledPersistenceConfig {
            storage_path: storage_path.into(),
            commit_log_path: None,
            access_log_path: None,
            notification_storage_path: None,
            backend_marker_path: None,
            enable_commit_log: false,
            enable_access_log: false,
            enable_notification_keystore: false,
            durability: Durability::Durable,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            record_cache_capacity: DEFAULT_RECORD_CACHE_CAPACITY,
            change_buffer: DEFAULT_CHANGE_BUFFER,
            clock: Arc::new(SystemClock),
            access_log_compaction_percentage: DEFAULT_COMPACTION_PERCENTAGE,
            lock_retry: Duration::from_secs(2),
        }
    }

    /// The server shape: every store on, durable writes.
    pub fn server_defaults(
        storage_path: impl Into<PathBuf>,
        commit_log_path: impl Into<PathBuf>,
        access_log_path: impl Into<PathBuf>,
        notification_storage_path: impl Into<PathBuf>,
    ) -> Self {
        SledPersistenceConfig::new(storage_path)
            .with_commit_log(commit_log_path)
            .with_access_log(access_log_path)
            .with_notification_keystore(notification_storage_path)
    }

    /// The client shape: keystore only, commit-log-free, periodic flush.
    pub fn client_defaults(storage_path: impl Into<PathBuf>) -> Self {
        SledPersistenceConfig::new(storage_path).with_durability(Durability::Periodic {
            interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
        })
    }

    /// Turns the commit log on; `path` is recorded for storage identity only.
    pub fn with_commit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.enable_commit_log = true;
        self.commit_log_path = Some(path.into());
        self
    }

    /// Turns the commit log on or off without naming a path.
    pub fn with_commit_log_enabled(mut self, enabled: bool) -> Self {
        self.enable_commit_log = enabled;
        self
    }

    /// Turns the access log on, stored at `path`.
    pub fn with_access_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.enable_access_log = true;
        self.access_log_path = Some(path.into());
        self
    }

    /// Turns the notification keystore on, stored at `path`.
    pub fn with_notification_keystore(mut self, path: impl Into<PathBuf>) -> Self {
        self.enable_notification_keystore = true;
        self.notification_storage_path = Some(path.into());
        self
    }

    /// Sets the backend marker path (declared for parity; never read or written).
    pub fn with_backend_marker_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.backend_marker_path = Some(path.into());
        self
    }

    /// Sets when a write counts as acknowledged (see [`Durability`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page-cache size, in bytes, per database.
    pub fn with_cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Sets the size, in bytes, of the keystore's record cache: recently read records kept
    /// in memory (sharing sled's buffer of each value), so reading one again costs a hash
    /// lookup instead of a descent of sled's tree. 0 turns it off. Writes never fill it and always keep
    /// it true to sled: a read returns what a read of sled would.
    pub fn with_record_cache_capacity(mut self, bytes: u64) -> Self {
        self.record_cache_capacity = bytes;
        self
    }

    /// Sets the per-subscriber buffer of change streams (at least 1).
    pub fn with_change_buffer(mut self, events: usize) -> Self {
        self.change_buffer = events.max(1);
        self
    }

    /// Sets the clock every time rule uses (tests use a [`ManualClock`](crate::model::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the share of the access log its compaction removes (0..=100).
    pub fn with_access_log_compaction_percentage(mut self, percentage: u8) -> Self {
        self.access_log_compaction_percentage = percentage.min(100);
        self
    }

    /// Sets how long opening retries sled's lock error (sled releases its file lock late
    /// after a close) before reporting [`AlreadyOpen`](crate::PersistenceError::AlreadyOpen).
    pub fn with_lock_retry(mut self, retry: Duration) -> Self {
        self.lock_retry = retry;
        self
    }

    /// The durability setting.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The page-cache size per database.
    pub fn cache_capacity(&self) -> u64 {
        self.cache_capacity
    }

    /// The keystore's record-cache size.
    pub fn record_cache_capacity(&self) -> u64 {
        self.record_cache_capacity
    }

    /// The per-subscriber change buffer.
    pub fn change_buffer(&self) -> usize {
        self.change_buffer
    }

    /// The clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// The access-log compaction percentage.
    pub fn access_log_compaction_percentage(&self) -> u8 {
        self.access_log_compaction_percentage
    }

    /// The lock retry window.
    pub fn lock_retry(&self) -> Duration {
        self.lock_retry
    }

    /// The explicitly configured path of the commit log, access log or notification store
    /// (`None` when not given).
    pub(crate) fn explicit_paths(&self) -> [(&'static str, Option<&Path>); 3] {
        [
            ("commit_log_path", self.commit_log_path.as_deref()),
            ("access_log_path", self.access_log_path.as_deref()),
            (
                "notification_storage_path",
                self.notification_storage_path.as_deref(),
            ),
        ]
    }
}

impl PersistenceConfig for SledPersistenceConfig {
    fn backend(&self) -> BackendId {
        BackendId::Sled
    }

    fn storage_path(&self) -> &Path {
        &self.storage_path
    }

    fn commit_log_path(&self) -> PathBuf {
        self.commit_log_path
            .clone()
            .unwrap_or_else(|| self.storage_path.join(".unused_commit_log"))
    }

    fn access_log_path(&self) -> PathBuf {
        self.access_log_path
            .clone()
            .unwrap_or_else(|| self.storage_path.join(".unused_access_log"))
    }

    fn notification_storage_path(&self) -> PathBuf {
        self.notification_storage_path
            .clone()
            .unwrap_or_else(|| self.storage_path.join(".unused_notifications"))
    }

    fn backend_marker_path(&self) -> PathBuf {
        self.backend_marker_path
            .clone()
            .unwrap_or_else(|| self.storage_path.join(".persistence_backend"))
    }

    fn enable_commit_log(&self) -> bool {
        self.enable_commit_log
    }

    fn enable_access_log(&self) -> bool {
        self.enable_access_log
    }

    fn enable_notification_keystore(&self) -> bool {
        self.enable_notification_keystore
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
