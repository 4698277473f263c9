//! The sled backend.
