//! The sled backend: [`SledPersistenceFactory`], [`SledPersistenceConfig`] and the stores.
//!
//! This is the only module that uses the `sled` crate (written `::sled::` where this
//! module's own name would be ambiguous).

mod config;
mod db;
mod factory;
mod keystore;
pub(crate) mod layout;
mod staging;
mod writer;

pub use config::{
    SledPersistenceConfig, DEFAULT_CACHE_CAPACITY, DEFAULT_CHANGE_BUFFER,
    DEFAULT_COMPACTION_PERCENTAGE, DEFAULT_FLUSH_INTERVAL_MS,
};
pub use db::Durability;
pub use factory::SledPersistenceFactory;
pub use keystore::{SledCommitLog, SledKeyStore};
