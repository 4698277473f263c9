//! The abstract, backend-agnostic surface: the store traits and their query and event
//! types. A consumer holds `Arc<dyn ...>` of these and never names the backend.

mod backup;
mod bundle;

pub use crate::key::KeyPattern;
mod compaction;
mod migrate;
mod query;
mod sync;
mod traits;
mod types;
mod verify;

pub use backup::{
    BackupStores, BackupSummary, LogicalBackup, BACKUP_FORMAT_VERSION, BACKUP_MAGIC,
    DEFAULT_CHUNK_BYTES, MAX_FRAME_BYTES,
};
pub use bundle::{
    BackendId, Bundle, BundleResources, DynKeyStore, PersistenceConfig, PersistenceFactory,
    ServerStores,
};
pub use compaction::{compact_and_report, CompactionReport, CompactionTarget};
pub use migrate::{
    MigrationReport, Pass, PersistenceMigrator, PersistenceSnapshot, Progress, ProgressFn,
    StoreKind, DEFAULT_PARALLELISM, DEFAULT_PROGRESS_EVERY,
};
pub use query::{KeyEntry, KeyStoreStats, OrderByKey, Predicate, ScanOptions};
pub use sync::last_commit_id_for;
pub use traits::{
    AccessLog, AtKeyValueStore, CommitLog, Compactable, KeyStoreSnapshot, KeyStoreTxn,
    KeyValueStore, KeyValueStoreExt, NotificationEvent, NotificationKeystore, NotificationStream,
};
pub use types::{
    ChangeStream, CommitFilter, CompactedItem, IterateOptions, KeyStoreChange, RemoveHook,
    RemoveHookArgs, RemoveOptions, ResultStream, WriteOptions,
};
pub use verify::{Problem, StoreChecked, VerifyReport, Violation, MAX_REPORTED_VIOLATIONS};
