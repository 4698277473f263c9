//! The factory, its configuration and the per-atSign bundle (API-5.0 1).

use super::traits::{AccessLog, AtKeyValueStore, CommitLog, NotificationKeystore};
use super::verify::VerifyReport;
use crate::error::{PersistenceError, Result};
use crate::model::{AtData, AtMetaData};
use async_trait::async_trait;
use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Names a backend. Existing values never change; new backends add variants.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendId {
    /// The sled backend of this crate.
    Sled,
}

/// The main keystore as a bundle holds it.
pub type DynKeyStore = Arc<dyn AtKeyValueStore<AtData, AtMetaData>>;

/// The backend-neutral part of a configuration. A factory accepts a `&dyn
/// PersistenceConfig` and downcasts it to its own config type; another backend's config
/// is an [`InvalidConfig`](PersistenceError::InvalidConfig) error.
pub trait PersistenceConfig: Send + Sync + fmt::Debug + Any {
    /// Which backend this configuration is for.
    fn backend(&self) -> BackendId;
    /// Where the keystore lives.
    fn storage_path(&self) -> &Path;
    /// Where the commit log lives (see the backend's documentation for what it holds).
    fn commit_log_path(&self) -> PathBuf;
    /// Where the access log lives.
    fn access_log_path(&self) -> PathBuf;
    /// Where the notification keystore lives.
    fn notification_storage_path(&self) -> PathBuf;
    /// A marker file recording which backend owns the data (declared, never read).
    fn backend_marker_path(&self) -> PathBuf;
    /// Give the keystore a commit log.
    fn enable_commit_log(&self) -> bool;
    /// Open the access log.
    fn enable_access_log(&self) -> bool;
    /// Open the notification keystore.
    fn enable_notification_keystore(&self) -> bool;
    /// `self` as [`Any`], for the factory's downcast.
    fn as_any(&self) -> &dyn Any;
}

/// What a backend provides for a bundle's lifecycle.
#[async_trait]
pub trait BundleResources: Send + Sync + fmt::Debug {
    /// Empties every store, keeping them open.
    async fn clear(&self) -> Result<()>;
    /// Closes every store; idempotent.
    async fn close(&self);
    /// Whether `close` has run.
    fn is_closed(&self) -> bool;
    /// Checks every invariant of every store (see [`Bundle::verify`]). A backend without
    /// a checker keeps this default, which is
    /// [`CapabilityAbsent`](PersistenceError::CapabilityAbsent).
    async fn verify(&self) -> Result<VerifyReport> {
        Err(PersistenceError::CapabilityAbsent {
            capability: "verify",
        })
    }
}

/// The persistence of one atSign: a keystore (always), and, per configuration, its commit
/// log (on the keystore), an access log and a notification keystore.
#[derive(Clone)]
pub struct Bundle {
    at_sign: String,
    backend_id: BackendId,
    key_value_store: DynKeyStore,
    access_log: Option<Arc<dyn AccessLog>>,
    notification_keystore: Option<Arc<dyn NotificationKeystore>>,
    resources: Arc<dyn BundleResources>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("at_sign", &self.at_sign)
            .field("backend_id", &self.backend_id)
            .field("commit_log", &self.key_value_store.commit_log().is_some())
            .field("access_log", &self.access_log.is_some())
            .field(
                "notification_keystore",
                &self.notification_keystore.is_some(),
            )
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The stores of a server bundle, every optional one present (see
/// [`Bundle::server_stores`]).
#[derive(Clone)]
pub struct ServerStores {
    /// The keystore.
    pub key_value_store: DynKeyStore,
    /// Its commit log.
    pub commit_log: Arc<dyn CommitLog>,
    /// The access log.
    pub access_log: Arc<dyn AccessLog>,
    /// The notification keystore.
    pub notification_keystore: Arc<dyn NotificationKeystore>,
}

impl Bundle {
    /// Assembles a bundle (backends call this).
    pub fn new(
        at_sign: impl Into<String>,
        backend_id: BackendId,
        key_value_store: DynKeyStore,
        access_log: Option<Arc<dyn AccessLog>>,
        notification_keystore: Option<Arc<dyn NotificationKeystore>>,
        resources: Arc<dyn BundleResources>,
    ) -> Self {
        Bundle {
            at_sign: at_sign.into(),
            backend_id,
            key_value_store,
            access_log,
            notification_keystore,
            resources,
        }
    }

    /// The atSign, exactly as passed to `initialize`.
    pub fn at_sign(&self) -> &str {
        &self.at_sign
    }

    /// The backend that built this bundle.
    pub fn backend_id(&self) -> BackendId {
        self.backend_id
    }

    /// The keystore (always present). Its [`commit_log`](AtKeyValueStore::commit_log) is
    /// `Some` on server bundles and `None` on client bundles.
    pub fn key_value_store(&self) -> &DynKeyStore {
        &self.key_value_store
    }

    /// The keystore's commit log, if it has one (shorthand for
    /// `key_value_store().commit_log()`).
    pub fn commit_log(&self) -> Option<Arc<dyn CommitLog>> {
        self.key_value_store.commit_log()
    }

    /// The access log, if enabled.
    pub fn access_log(&self) -> Option<&Arc<dyn AccessLog>> {
        self.access_log.as_ref()
    }

    /// The notification keystore, if enabled.
    pub fn notification_keystore(&self) -> Option<&Arc<dyn NotificationKeystore>> {
        self.notification_keystore.as_ref()
    }

    /// Checks once that every server capability is present and hands back non-optional
    /// handles, so a server never unwraps at call sites. A missing one is
    /// [`CapabilityAbsent`](PersistenceError::CapabilityAbsent).
    pub fn server_stores(&self) -> Result<ServerStores> {
        let commit_log = self
            .commit_log()
            .ok_or(PersistenceError::CapabilityAbsent {
                capability: "commit log",
            })?;
        let access_log = self
            .access_log
            .clone()
            .ok_or(PersistenceError::CapabilityAbsent {
                capability: "access log",
            })?;
        let notification_keystore =
            self.notification_keystore
                .clone()
                .ok_or(PersistenceError::CapabilityAbsent {
                    capability: "notification keystore",
                })?;
        Ok(ServerStores {
            key_value_store: Arc::clone(&self.key_value_store),
            commit_log,
            access_log,
            notification_keystore,
        })
    }

    /// Empties every store of this bundle while keeping them open; commit ids restart at
    /// 0. Fires no change events. Meant for test isolation. A closed bundle is
    /// [`StoreClosed`](PersistenceError::StoreClosed).
    pub async fn clear(&self) -> Result<()> {
        if self.is_closed() {
            return Err(PersistenceError::StoreClosed { store: "bundle" });
        }
        self.resources.clear().await
    }

    /// Closes every store of this bundle; idempotent. Later calls on any of its store
    /// handles return [`StoreClosed`](PersistenceError::StoreClosed).
    pub async fn close(&self) {
        self.resources.close().await
    }

    /// Checks the consistency of every store of this bundle and reports each broken
    /// invariant with its store and key (records that do not decode, index entries
    /// missing, extra or disagreeing with their record, counters that differ from what
    /// the store holds, duplicate or dangling commit-log entries, ...). Meant for
    /// operators and tests; it reads every stored item once, so it takes time in
    /// proportion to the data. Bad bytes are reported, never a panic. A closed bundle is
    /// [`StoreClosed`](PersistenceError::StoreClosed). See the backend's documentation for
    /// what it checks and how it interacts with concurrent writes.
    pub async fn verify(&self) -> Result<VerifyReport> {
        if self.is_closed() {
            return Err(PersistenceError::StoreClosed { store: "bundle" });
        }
        self.resources.verify().await
    }

    /// Whether this bundle has been closed (directly or through its factory).
    pub fn is_closed(&self) -> bool {
        self.resources.is_closed()
    }
}

/// The per-process owner of per-atSign persistence (API-5.0 1.5). No global state: two
/// factories are independent.
#[async_trait]
pub trait PersistenceFactory: Send + Sync {
    /// The backend this factory builds.
    fn backend_id(&self) -> BackendId;

    /// Opens every store `config` asks for and returns the atSign's bundle. While that
    /// atSign's bundle is open, a call naming the same four storage locations returns the
    /// same bundle; other locations are a
    /// [`StorageConflict`](PersistenceError::StorageConflict).
    async fn initialize(
        &self,
        at_sign: &str,
        config: &dyn PersistenceConfig,
    ) -> Result<Arc<Bundle>>;

    /// The open bundle of `at_sign`, or `None`.
    fn bundle_for(&self, at_sign: &str) -> Option<Arc<Bundle>>;

    /// Closes and forgets one atSign's bundle; nothing happens when there is none.
    async fn close_for(&self, at_sign: &str);

    /// Closes every bundle this factory produced. Idempotent; a later `initialize` starts
    /// a new lifecycle over the same data.
    async fn close(&self);
}
