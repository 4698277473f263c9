//! The crate's one error type.
//!
//! Every fallible call returns [`Result<T>`]. Variants are meant to be acted upon: each names
//! the input that was wrong and the rule it broke, or the store and key that could not be
//! read. No call panics on bad input or on bad bytes found on disk.

use std::path::{Path, PathBuf};

/// A boxed error from a backend, a hook or another source outside this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `std::result::Result<T, PersistenceError>`.
pub type Result<T, E = PersistenceError> = std::result::Result<T, E>;

/// One storage location that differs between the bundle that is open and a new request
/// (see [`PersistenceError::StorageConflict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDifference {
    /// The configuration field, e.g. `storage_path`.
    pub field: &'static str,
    /// The location the open bundle holds.
    pub held: String,
    /// The location the new request names.
    pub requested: String,
}

impl std::fmt::Display for PathDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} vs {:?}", self.field, self.held, self.requested)
    }
}

fn join_differences(d: &[PathDifference]) -> String {
    d.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything that can go wrong in this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// A keystore `get` found no record under the (canonical) key.
    #[error("{key} does not exist in keystore")]
    KeyNotFound {
        /// The canonical key that was looked up.
        key: String,
    },

    /// The key is not a valid atKey (or notification id) for the operation.
    #[error("key {key:?} is invalid: {reason}")]
    InvalidKey {
        /// The key as given by the caller.
        key: String,
        /// The rule it broke.
        reason: String,
    },

    /// The key is longer than the store allows (measured as the rules of BEHAVIOR 2.3 say).
    #[error("key length {len} is greater than max allowed {max} chars (key {key:?})")]
    KeyTooLong {
        /// The key as given by the caller.
        key: String,
        /// Its measured length.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },

    /// A caller-supplied regular expression does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },

    /// An argument breaks the method's contract (a replayed entry without a commit id, an
    /// empty path in a predicate, ...).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: String,
        /// The rule it broke.
        reason: String,
    },

    /// A configuration value is unusable (empty atSign, missing path, wrong backend, ...).
    #[error("invalid configuration {field}: {reason}")]
    InvalidConfig {
        /// The configuration field or input.
        field: String,
        /// The rule it broke.
        reason: String,
    },

    /// A JSON document (metadata, notification) could not be read.
    #[error("invalid JSON for field {field}: {reason}")]
    InvalidJson {
        /// The field (or document) that was wrong.
        field: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The store (or its bundle) has been closed.
    #[error("{store} is closed")]
    StoreClosed {
        /// Which store.
        store: &'static str,
    },

    /// The operation needs a capability this store or bundle does not have.
    #[error("capability absent: {capability}")]
    CapabilityAbsent {
        /// The capability, e.g. `commit log` or `path queries`.
        capability: &'static str,
    },

    /// A snapshot handle was used after `release()`.
    #[error("snapshot has been released")]
    SnapshotReleased,

    /// A stored record could not be decoded.
    #[error("corrupt record in {store} at key {key:?}: {reason}")]
    CorruptRecord {
        /// Which store (or tree) holds it.
        store: &'static str,
        /// The storage key, rendered for humans.
        key: String,
        /// What failed.
        reason: String,
    },

    /// The database is damaged: found when opening it, or reported by sled during a read
    /// or write.
    #[error("corrupt database{}: {reason}", located(path))]
    CorruptStore {
        /// The database directory; empty when sled reported the damage during a read or
        /// write, where it names no path.
        path: PathBuf,
        /// What sled or the format check reported.
        reason: String,
    },

    /// The database was written by a newer (or unknown) on-disk format.
    #[error(
        "database at {path} has on-disk format {found}; this build reads formats up to {supported}"
    )]
    FormatMismatch {
        /// The database directory.
        path: PathBuf,
        /// The format version found on disk.
        found: u32,
        /// The newest format this build understands.
        supported: u32,
    },

    /// The database belongs to another atSign.
    #[error("database at {path} belongs to {stored}, not {requested}")]
    AtSignMismatch {
        /// The database directory.
        path: PathBuf,
        /// The atSign recorded in the database.
        stored: String,
        /// The atSign the caller asked for.
        requested: String,
    },

    /// The directory is held by another factory or another process.
    #[error("database at {path} is already open in another factory or process")]
    AlreadyOpen {
        /// The database directory.
        path: PathBuf,
    },

    /// `initialize` was called for an open atSign with other storage locations.
    #[error("factory already holds a bundle for {at_sign} at other storage locations: {}; call close_for({at_sign:?}) first or use a separate factory", join_differences(.differences))]
    StorageConflict {
        /// The atSign.
        at_sign: String,
        /// Each differing location, held vs requested.
        differences: Vec<PathDifference>,
    },

    /// A replayed commit entry conflicts with the entry already stored under its id.
    #[error("replay conflict at commit id {commit_id}: stored {stored}, replayed {replayed}")]
    ReplayConflict {
        /// The commit id.
        commit_id: i64,
        /// The stored entry, rendered.
        stored: String,
        /// The replayed entry, rendered.
        replayed: String,
    },

    /// A migration or import target already holds data.
    #[error("target {store} is not empty")]
    TargetNotEmpty {
        /// The first store found non-empty.
        store: &'static str,
    },

    /// A backup file is damaged, truncated or of an unknown version.
    #[error("invalid backup stream: {reason}")]
    InvalidBackup {
        /// What was wrong.
        reason: String,
    },

    /// A remove hook failed; for a pre-remove hook nothing was removed.
    #[error("remove hook failed for key {key:?}: {source}")]
    HookFailed {
        /// The canonical key.
        key: String,
        /// The hook's error.
        #[source]
        source: BoxError,
    },

    /// A filesystem operation failed.
    #[error("I/O error at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The storage engine reported an error.
    #[error("storage backend error during {context}: {source}")]
    Backend {
        /// What the crate was doing.
        context: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
}

impl PersistenceError {
    /// Builds a [`PersistenceError::Backend`] from any engine error.
    pub fn backend(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PersistenceError::Backend {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Builds a [`PersistenceError::InvalidArgument`].
    pub fn invalid_argument(name: impl Into<String>, reason: impl Into<String>) -> Self {
        PersistenceError::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// `" at <path>"`, or nothing for an empty path (the message then reads without a
/// location rather than with an empty one).
fn located(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" at {}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_store_names_its_path_and_leaves_out_an_unknown_one() {
        let at = PersistenceError::CorruptStore {
            path: PathBuf::from("/data/@alice"),
            reason: "bad segment".into(),
        };
        assert_eq!(
            at.to_string(),
            "corrupt database at /data/@alice: bad segment"
        );
        let unknown = PersistenceError::CorruptStore {
            path: PathBuf::new(),
            reason: "sled reported corruption".into(),
        };
        assert_eq!(
            unknown.to_string(),
            "corrupt database: sled reported corruption"
        );
    }
}
