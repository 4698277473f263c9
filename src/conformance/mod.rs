//! The backend-generic conformance suite.
//!
//! Every case is written against the abstract traits only ([`PersistenceFactory`],
//! [`Bundle`] and the store traits) and takes a [`Backend`] that says how to build a factory
//! and its configurations. [`conformance_suite!`](crate::conformance_suite) expands into one
//! `#[tokio::test]` per case, so a backend runs the whole suite with one line:
//!
//! ```ignore
//! mod my_backend_conformance {
//!     at_persistence_secondary_server::conformance_suite!(my_crate::MyBackend::default());
//! }
//! ```
//!
//! Differences between backends are explicit [`Capabilities`]; a case whose capability is
//! absent asserts the documented "absent" behaviour instead of being skipped.

use crate::model::{Clock, ManualClock, Timestamp};
use crate::store::{Bundle, PersistenceConfig, PersistenceFactory};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod cases;

/// What a backend can do beyond the common contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `snapshot()` gives real isolation (`supports_snapshots() == true`).
    pub snapshots: bool,
    /// `query_by_path` is implemented (`supports_path_queries() == true`).
    pub path_queries: bool,
}

/// How the suite builds factories and configurations for one backend.
pub trait Backend: Send + Sync {
    /// A short name, e.g. `sled`.
    fn name(&self) -> &'static str;
    /// A new, empty factory.
    fn new_factory(&self) -> Arc<dyn PersistenceFactory>;
    /// A server configuration (every store on) rooted at `root`, using `clock`.
    fn server_config(&self, root: &Path, clock: Arc<dyn Clock>) -> Box<dyn PersistenceConfig>;
    /// A client configuration (keystore only, commit-log-free) rooted at `root`.
    fn client_config(&self, root: &Path, clock: Arc<dyn Clock>) -> Box<dyn PersistenceConfig>;
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;
}

/// 2024-01-01T00:00:00.000Z, where every case's clock starts.
pub const T0: Timestamp = Timestamp::from_millis(1_704_067_200_000);

/// One case's world: a temporary directory, a factory and a manual clock.
pub struct Ctx<'b> {
    /// The backend under test.
    pub backend: &'b dyn Backend,
    /// The temporary directory every store of this case lives under.
    pub root: tempfile::TempDir,
    /// The factory.
    pub factory: Arc<dyn PersistenceFactory>,
    /// The clock every store uses; starts at [`T0`].
    pub clock: Arc<ManualClock>,
}

impl<'b> Ctx<'b> {
    /// A fresh world for `backend`.
    pub fn new(backend: &'b dyn Backend) -> Self {
        Ctx {
            backend,
            root: tempfile::tempdir().expect("a temporary directory"),
            factory: backend.new_factory(),
            clock: Arc::new(ManualClock::new(T0)),
        }
    }

    /// The directory for `at_sign`'s stores.
    pub fn dir(&self, at_sign: &str) -> PathBuf {
        self.root.path().join(at_sign.trim_start_matches('@'))
    }

    /// The server configuration for `at_sign`.
    pub fn server_config(&self, at_sign: &str) -> Box<dyn PersistenceConfig> {
        self.backend
            .server_config(&self.dir(at_sign), self.clock.clone())
    }

    /// The client configuration for `at_sign`.
    pub fn client_config(&self, at_sign: &str) -> Box<dyn PersistenceConfig> {
        self.backend
            .client_config(&self.dir(at_sign), self.clock.clone())
    }

    /// Initializes `at_sign` with the server configuration.
    pub async fn server(&self, at_sign: &str) -> Arc<Bundle> {
        let cfg = self.server_config(at_sign);
        self.factory
            .initialize(at_sign, cfg.as_ref())
            .await
            .expect("initialize a server bundle")
    }

    /// Initializes `at_sign` with the client configuration.
    pub async fn client(&self, at_sign: &str) -> Arc<Bundle> {
        let cfg = self.client_config(at_sign);
        self.factory
            .initialize(at_sign, cfg.as_ref())
            .await
            .expect("initialize a client bundle")
    }

    /// Closes the factory and initializes `at_sign` again with the server configuration
    /// (a restart).
    pub async fn restart(&self, at_sign: &str) -> Arc<Bundle> {
        self.factory.close().await;
        self.server(at_sign).await
    }
}

/// Expands into one `#[tokio::test]` per conformance case for the backend `$backend`
/// (an expression of a type implementing [`Backend`]). Test names are the case names, so
/// instantiating the suite inside a module named after the backend lets `cargo test
/// <backend>::` select it.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::__conformance_tests!($backend;
            // keystore + commit log
            commit_ids_start_at_zero_and_never_go_back,
            worked_scenario_of_behavior_3_8,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::cases::$case(&backend).await;
            }
        )*
    };
}
