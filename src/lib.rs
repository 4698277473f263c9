//! Per-atSign persistence for the Atsign protocol on sled: a keystore with its commit log
//! (which clients sync from), an access log and a notification keystore. A port of the Dart
//! package `at_persistence_secondary_server` 5.0.0.
//!
//! Start at [`sled::SledPersistenceFactory`] and [`sled::SledPersistenceConfig`]; the
//! backend-neutral traits are in [`store`]. README.md has the quick start, the architecture
//! and the durability guarantees; MIGRATION.md maps the Dart API to this crate.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
pub mod key;
pub mod model;
pub mod sled;
pub mod store;

pub use error::{PersistenceError, Result};

// The README's code blocks are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
