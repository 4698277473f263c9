//! [`SledPersistenceFactory`]: opens and caches per-atSign bundles, and owns the registry of
//! open sled databases (one per canonical directory, shared by the stores that name it).

use super::access_log::{AccessLogSettings, AlInner, SledAccessLog};
use super::config::SledPersistenceConfig;
use super::db::{check_dir_path, DbOptions, SledDb};
use super::keystore::{KeyStoreSettings, KsInner, SledKeyStore};
use super::notifications::{NkInner, NotificationSettings, SledNotificationKeystore};
use super::store_core::{self, GroupStore};
use super::verify::Target;
use crate::error::{PathDifference, PersistenceError, Result};
use crate::store::{
    AccessLog, BackendId, Bundle, BundleResources, NotificationKeystore, PersistenceConfig,
    PersistenceFactory, VerifyReport,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A store the bundle's lifecycle drives.
#[async_trait]
pub(crate) trait SledStore: Send + Sync {
    /// Empties the store.
    async fn clear_store(&self) -> Result<()>;
    /// Releases the store's database handle.
    fn close_store(&self);
}

#[async_trait]
impl<S: GroupStore> SledStore for Arc<S> {
    async fn clear_store(&self) -> Result<()> {
        store_core::run(self, S::CLEAR).await.map(|_| ())
    }
    fn close_store(&self) {
        self.close()
    }
}

/// The lifecycle half of a sled bundle.
pub(crate) struct SledBundleResources {
    stores: Vec<Arc<dyn SledStore>>,
    /// The same stores, for `verify`.
    targets: Vec<Target>,
    closed: AtomicBool,
}

impl std::fmt::Debug for SledBundleResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBundleResources")
            .field("stores", &self.stores.len())
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

#[async_trait]
impl BundleResources for SledBundleResources {
    async fn clear(&self) -> Result<()> {
        for s in &self.stores {
            s.clear_store().await?;
        }
        Ok(())
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in &self.stores {
            s.close_store();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// See [`super::verify`] for what is checked. Runs on a blocking thread when called
    /// inside a tokio runtime.
    async fn verify(&self) -> Result<VerifyReport> {
        let targets = self.targets.clone();
        let check = move || -> Result<VerifyReport> {
            let mut report = VerifyReport::new();
            for t in &targets {
                t.verify(&mut report)?;
            }
            Ok(report)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle
                    .spawn_blocking(check)
                    .await
                    .map_err(|e| PersistenceError::Backend {
                        context: "verify".into(),
                        source: e.to_string().into(),
                    })?
            }
            Err(_) => check(),
        }
    }
}

struct OpenBundle {
    bundle: Arc<Bundle>,
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    keystore: SledKeyStore,
    locations: [(&'static str, PathBuf); 4],
}

#[derive(Default)]
struct FactoryState {
    bundles: HashMap<String, OpenBundle>,
    dbs: HashMap<PathBuf, Weak<SledDb>>,
}

/// The sled [`PersistenceFactory`]. Holds no global state: each factory has its own
/// registry of bundles and databases.
#[derive(Default)]
pub struct SledPersistenceFactory {
    state: Mutex<FactoryState>,
}

impl std::fmt::Debug for SledPersistenceFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().bundles.len();
        f.debug_struct("SledPersistenceFactory")
            .field("bundles", &n)
            .finish()
    }
}

/// The lexical canonical form of `p`: absolute, with `.` removed and `..` applied.
pub(crate) fn lexical(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The real location `p` names: its longest existing ancestor with symlinks resolved, with
/// the components that do not exist yet appended. `None` when nothing of it exists.
fn resolve(p: &Path) -> Option<PathBuf> {
    let lex = lexical(p);
    let mut existing = lex.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return Some(out);
        }
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?;
    }
}

/// Whether two configured locations name the same place (API-5.0 1.5): equal lexical
/// forms, or the same real location once symlinks are resolved (a symlink equals its
/// target). Locations that cannot be resolved at all are never equal.
pub(crate) fn same_location(a: &Path, b: &Path) -> bool {
    if lexical(a) == lexical(b) {
        return true;
    }
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn locations(config: &SledPersistenceConfig) -> [(&'static str, PathBuf); 4] {
    [
        ("storage_path", config.storage_path().to_path_buf()),
        ("commit_log_path", config.commit_log_path()),
        ("access_log_path", config.access_log_path()),
        (
            "notification_storage_path",
            config.notification_storage_path(),
        ),
    ]
}

impl SledPersistenceFactory {
    /// A factory with no bundles.
    pub fn new() -> Self {
        Self::default()
    }

    /// The concrete keystore of an open bundle, for the crate's own tests.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn test_support_keystore(&self, at_sign: &str) -> Option<SledKeyStore> {
        self.lock()
            .bundles
            .get(at_sign)
            .map(|open| open.keystore.clone())
    }

    /// How many atomic commits the open database at `path` has followed with a flush
    /// (calls to its per-commit flush, at the configured durability), or `None` when this
    /// factory holds no open database there. For the crate's own tests of the
    /// write-backlog bound.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn test_support_flush_calls(&self, path: &Path) -> Option<u64> {
        let real = std::fs::canonicalize(path).ok()?;
        self.lock()
            .dbs
            .get(&real)
            .and_then(Weak::upgrade)
            .map(|db| db.flush_calls())
    }

    /// Makes the next `n` flushes of the open database at `path` fail with an injected I/O
    /// error, after their batch is applied (as a failing disk would); false when this
    /// factory holds no open database there. For the crate's own tests of the failure path.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn test_support_fail_next_flushes(&self, path: &Path, n: u32) -> bool {
        let Ok(real) = std::fs::canonicalize(path) else {
            return false;
        };
        match self.lock().dbs.get(&real).and_then(Weak::upgrade) {
            Some(db) => {
                db.fail_next_flushes(n);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FactoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared database at `path` for `at_sign`, opening it if this factory holds none.
    fn database(
        state: &mut FactoryState,
        path: &Path,
        at_sign: &str,
        options: &DbOptions,
        created: &mut Vec<PathBuf>,
    ) -> Result<Arc<SledDb>> {
        if let Ok(real) = std::fs::canonicalize(path) {
            if let Some(db) = state.dbs.get(&real).and_then(Weak::upgrade) {
                if db.at_sign() != at_sign {
                    return Err(PersistenceError::AtSignMismatch {
                        path: path.to_path_buf(),
                        stored: db.at_sign().to_string(),
                        requested: at_sign.to_string(),
                    });
                }
                return Ok(db);
            }
        } else {
            // It does not exist yet: opening creates it; remember it for cleanup.
            created.push(path.to_path_buf());
        }
        let db = Arc::new(SledDb::open(path, at_sign, options)?);
        let real = std::fs::canonicalize(path).map_err(|source| PersistenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        state.dbs.retain(|_, w| w.strong_count() > 0);
        state.dbs.insert(real, Arc::downgrade(&db));
        Ok(db)
    }

    fn build(
        state: &mut FactoryState,
        at_sign: &str,
        config: &SledPersistenceConfig,
        created: &mut Vec<PathBuf>,
    ) -> Result<(Bundle, SledKeyStore)> {
        let options = DbOptions {
            cache_capacity: config.cache_capacity(),
            durability: config.durability(),
            lock_retry: config.lock_retry(),
        };
        let mut stores: Vec<Arc<dyn SledStore>> = Vec::new();
        let mut targets = Vec::new();
        let ks_db = Self::database(state, config.storage_path(), at_sign, &options, created)?;
        let ks = KsInner::open(
            ks_db,
            KeyStoreSettings {
                at_sign: at_sign.to_string(),
                commit_log: config.enable_commit_log(),
                durability: config.durability(),
                clock: config.clock(),
                change_buffer: config.change_buffer(),
                record_cache: config.record_cache_capacity(),
            },
        )?;
        stores.push(Arc::new(Arc::clone(&ks)));
        targets.push(Target::Keystore(Arc::clone(&ks)));
        let mut access_log: Option<Arc<dyn AccessLog>> = None;
        if config.enable_access_log() {
            let db = Self::database(state, &config.access_log_path(), at_sign, &options, created)?;
            let al = AlInner::open(
                db,
                AccessLogSettings {
                    durability: config.durability(),
                    clock: config.clock(),
                    compaction_percentage: config.access_log_compaction_percentage(),
                },
            )?;
            stores.push(Arc::new(Arc::clone(&al)));
            targets.push(Target::AccessLog(Arc::clone(&al)));
            access_log = Some(Arc::new(SledAccessLog::new(al)));
        }
        let mut notification_keystore: Option<Arc<dyn NotificationKeystore>> = None;
        if config.enable_notification_keystore() {
            let path = config.notification_storage_path();
            let db = Self::database(state, &path, at_sign, &options, created)?;
            let nk = NkInner::open(
                db,
                NotificationSettings {
                    durability: config.durability(),
                    clock: config.clock(),
                    change_buffer: config.change_buffer(),
                },
            )?;
            stores.push(Arc::new(Arc::clone(&nk)));
            targets.push(Target::Notifications(Arc::clone(&nk)));
            notification_keystore = Some(Arc::new(SledNotificationKeystore::new(nk)));
        }
        let resources = Arc::new(SledBundleResources {
            stores,
            targets,
            closed: AtomicBool::new(false),
        });
        let keystore = SledKeyStore::new(ks);
        let bundle = Bundle::new(
            at_sign,
            BackendId::Sled,
            Arc::new(keystore.clone()),
            access_log,
            notification_keystore,
            resources,
        );
        Ok((bundle, keystore))
    }
}

#[async_trait]
impl PersistenceFactory for SledPersistenceFactory {
    fn backend_id(&self) -> BackendId {
        BackendId::Sled
    }

    async fn initialize(
        &self,
        at_sign: &str,
        config: &dyn PersistenceConfig,
    ) -> Result<Arc<Bundle>> {
        let config = config
            .as_any()
            .downcast_ref::<SledPersistenceConfig>()
            .ok_or_else(|| PersistenceError::InvalidConfig {
                field: "config".into(),
                reason: format!(
                    "the sled factory needs a SledPersistenceConfig, got a config for {:?}",
                    config.backend()
                ),
            })?;
        crate::key::validate_at_sign(at_sign)?;
        let requested = locations(config);
        let mut state = self.lock();
        if let Some(open) = state.bundles.get(at_sign) {
            if open.bundle.is_closed() {
                state.bundles.remove(at_sign);
            } else {
                let differences: Vec<PathDifference> = open
                    .locations
                    .iter()
                    .zip(requested.iter())
                    .filter(|((_, held), (_, req))| !same_location(held, req))
                    .map(|((field, held), (_, req))| PathDifference {
                        field,
                        held: held.display().to_string(),
                        requested: req.display().to_string(),
                    })
                    .collect();
                if differences.is_empty() {
                    return Ok(Arc::clone(&open.bundle));
                }
                return Err(PersistenceError::StorageConflict {
                    at_sign: at_sign.to_string(),
                    differences,
                });
            }
        }
        // Validate every path before creating anything.
        check_dir_path("storage_path", config.storage_path())?;
        let enabled = [
            config.enable_commit_log(),
            config.enable_access_log(),
            config.enable_notification_keystore(),
        ];
        for ((field, path), on) in config.explicit_paths().into_iter().zip(enabled) {
            match path {
                Some(p) => check_dir_path(field, p)?,
                None if on && field != "commit_log_path" => {
                    return Err(PersistenceError::InvalidConfig {
                        field: field.into(),
                        reason: "the store is enabled but no path is given".into(),
                    })
                }
                None => {}
            }
        }
        let mut created = Vec::new();
        match Self::build(&mut state, at_sign, config, &mut created) {
            Ok((bundle, keystore)) => {
                let bundle = Arc::new(bundle);
                state.bundles.insert(
                    at_sign.to_string(),
                    OpenBundle {
                        bundle: Arc::clone(&bundle),
                        keystore,
                        locations: requested,
                    },
                );
                Ok(bundle)
            }
            Err(e) => {
                // Leave nothing behind: directories this call created are removed.
                state.dbs.retain(|_, w| w.strong_count() > 0);
                drop(state);
                for dir in created {
                    let _ = std::fs::remove_dir_all(dir);
                }
                Err(e)
            }
        }
    }

    fn bundle_for(&self, at_sign: &str) -> Option<Arc<Bundle>> {
        let mut state = self.lock();
        match state.bundles.get(at_sign) {
            Some(open) if open.bundle.is_closed() => {
                state.bundles.remove(at_sign);
                None
            }
            Some(open) => Some(Arc::clone(&open.bundle)),
            None => None,
        }
    }

    async fn close_for(&self, at_sign: &str) {
        let open = self.lock().bundles.remove(at_sign);
        if let Some(open) = open {
            open.bundle.close().await;
        }
    }

    async fn close(&self) {
        let all: Vec<OpenBundle> = {
            let mut state = self.lock();
            state.bundles.drain().map(|(_, b)| b).collect()
        };
        for open in all {
            open.bundle.close().await;
        }
    }
}
