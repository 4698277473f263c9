//! Key rules: normalisation, length limits, key-type classification, namespace parsing and
//! the sync filters. Pure functions. STUB: replaced by the key work.

use crate::error::{PersistenceError, Result};

/// The longest stored key (UTF-7 length) for keys not starting with `cached:`.
pub const MAX_KEY_LENGTH: usize = 248;
/// The longest stored key (UTF-7 length) for keys starting with `cached:`.
pub const MAX_CACHED_KEY_LENGTH: usize = 255;

/// Key types (BEHAVIOR 1.8 order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `phone@alice`, `@alice:phone@alice`.
    SelfKey,
    /// `@bob:phone@alice`.
    SharedKey,
    /// `public:phone@alice`.
    PublicKey,
    /// `private:phone@alice`.
    PrivateKey,
    /// `cached:public:phone@bob`.
    CachedPublicKey,
    /// `cached:@alice:phone@bob`.
    CachedSharedKey,
    /// Reserved keys.
    ReservedKey,
    /// `local:phone@alice`.
    LocalKey,
    /// Anything else.
    InvalidKey,
}

/// Canonical form: trim, lower-case, remove every U+0020.
pub fn canonical_key(key: &str) -> String {
    key.trim().to_lowercase().replace(' ', "")
}

/// Classifies a lower-cased key.
pub fn classify(key: &str) -> KeyType {
    if key.contains('@') && !key.contains(' ') && !key.ends_with('@') {
        KeyType::SelfKey
    } else if key.starts_with("privatekey:at_") {
        KeyType::ReservedKey
    } else {
        KeyType::InvalidKey
    }
}

/// Validates a key for a write and returns its canonical form.
pub fn validate_key(key: &str) -> Result<String> {
    let lower = key.to_lowercase();
    if classify(&lower) == KeyType::InvalidKey {
        return Err(PersistenceError::InvalidKey {
            key: key.to_string(),
            reason: "not a valid atKey".into(),
        });
    }
    Ok(canonical_key(key))
}

/// Checks the length rule on a canonical key.
pub fn check_key_length(key: &str, canonical: &str) -> Result<()> {
    let len = canonical.chars().count();
    let max = if canonical.starts_with("cached:") {
        MAX_CACHED_KEY_LENGTH
    } else {
        MAX_KEY_LENGTH
    };
    if len > max {
        return Err(PersistenceError::KeyTooLong {
            key: key.to_string(),
            len,
            max,
        });
    }
    Ok(())
}

/// The commit skip rule.
pub fn is_commit_skipped(key: &str) -> bool {
    !key.starts_with("public:__")
        && (key.starts_with("private:")
            || key.starts_with("privatekey:")
            || key.starts_with("public:_")
            || key.starts_with("local:"))
}
