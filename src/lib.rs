//! Per-atSign persistence for the Atsign protocol on sled.
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
