//! The sled backend: [`SledPersistenceFactory`], [`SledPersistenceConfig`] and the stores.
//!
//! This is the only module that uses the `sled` crate (written `::sled::` where this
//! module's own name would be ambiguous).
//!
//! [`Bundle::verify`](crate::store::Bundle::verify) checks every store of a sled bundle:
//! each record decodes, every index and counter matches the records, the commit log keeps
//! one entry per atKey under a high-water mark that covers every id. It reads each tree
//! once in key order with constant memory per store, and holds each store's writer while
//! checking it (writes to that store wait; reads go on).

mod access_log;
mod config;
mod db;
mod factory;
mod hooks;
mod keystore;
pub(crate) mod layout;
mod notifications;
mod record_cache;
mod staging;
mod store_core;
mod verify;
mod writer;

pub use access_log::SledAccessLog;
pub use config::{
    SledPersistenceConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_CHANGE_BUFFER,
    DEFAULT_COMPACTION_PERCENTAGE, DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_RECORD_CACHE_CAPACITY,
};
pub use db::Durability;
pub use factory::SledPersistenceFactory;
pub use keystore::{SledCommitLog, SledKeyStore};
pub use notifications::{SledNotificationKeystore, MAX_NOTIFICATION_ID_LENGTH};

/// The sled backend for the conformance suite.
#[cfg(any(test, feature = "conformance"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct SledBackend;

#[cfg(any(test, feature = "conformance"))]
impl crate::conformance::Backend for SledBackend {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn new_factory(&self) -> std::sync::Arc<dyn crate::store::PersistenceFactory> {
        std::sync::Arc::new(SledPersistenceFactory::new())
    }

    fn server_config(
        &self,
        root: &std::path::Path,
        clock: std::sync::Arc<dyn crate::model::Clock>,
    ) -> Box<dyn crate::store::PersistenceConfig> {
        Box::new(
            SledPersistenceConfig::server_defaults(
                root.join("keys"),
                root.join("commit_log"),
                root.join("access_log"),
                root.join("notifications"),
            )
            .with_cache_capacity(8 * 1024 * 1024)
            .with_clock(clock),
        )
    }

    fn client_config(
        &self,
        root: &std::path::Path,
        clock: std::sync::Arc<dyn crate::model::Clock>,
    ) -> Box<dyn crate::store::PersistenceConfig> {
        Box::new(
            SledPersistenceConfig::client_defaults(root.join("keys"))
                .with_cache_capacity(8 * 1024 * 1024)
                .with_clock(clock),
        )
    }

    fn capabilities(&self) -> crate::conformance::Capabilities {
        crate::conformance::Capabilities {
            snapshots: false,
            path_queries: true,
        }
    }
}

#[cfg(test)]
mod conformance {
    crate::conformance_suite!(super::SledBackend);
}
