//! Key rules: normalisation, length limits, key-type classification, key parsing, the
//! `KeyPattern` filter and the sync filters (BEHAVIOR 2, 4.3–4.5; API-5.0 2.2, 3.7, 4.7,
//! 4.8). Pure functions: no I/O, no async, no global state beyond regexes compiled once.
//!
//! * [`canonical_key`] is the one key form the stores use (trim, lower-case, drop spaces).
//! * [`validate_key`] and [`check_key_length`] are the write-path checks.
//! * [`classify()`] gives the [`KeyType`] of a lower-cased key.
//! * [`is_commit_skipped`] is the commit log's elision rule.
//! * [`utf7_encode`]/[`utf7_len`] measure keys the way the Dart (Hive) keystore does.
//! * [`parse_at_key`]/[`namespace_of`] split keys like at_commons `AtKey.fromString`.
//! * [`KeyPattern`] filters `scan_keys`; [`SyncRule`] filters sync responses.

mod classify;
mod parse;
mod pattern;
mod sync;
mod utf7;

use std::fmt;

use crate::error::{PersistenceError, Result};

pub use classify::{classify, is_at_sign_char, is_entity_char, MAX_AT_SIGN_CHARS};
pub use parse::{namespace_of, parse_at_key, KeyParseError, ParsedAtKey};
pub use pattern::KeyPattern;
pub use sync::{always_include_in_sync, is_namespace_authorised, SyncRule, MANAGE_NAMESPACE};
pub use utf7::{utf7_decode, utf7_encode, utf7_len};

/// The longest stored key (UTF-7 length) for keys not starting with `cached:`.
pub const MAX_KEY_LENGTH: usize = 248;
/// The longest stored key (UTF-7 length) for keys starting with `cached:`.
pub const MAX_CACHED_KEY_LENGTH: usize = 255;
/// The longest notification id, in UTF-16 code units (BEHAVIOR 2.3, open point 33).
pub const MAX_NOTIFICATION_ID_LENGTH: usize = 248;

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

impl KeyType {
    /// The Dart name of the type (`selfKey`, `sharedKey`, …, `invalidKey`).
    pub fn dart_name(self) -> &'static str {
        match self {
            KeyType::SelfKey => "selfKey",
            KeyType::SharedKey => "sharedKey",
            KeyType::PublicKey => "publicKey",
            KeyType::PrivateKey => "privateKey",
            KeyType::CachedPublicKey => "cachedPublicKey",
            KeyType::CachedSharedKey => "cachedSharedKey",
            KeyType::ReservedKey => "reservedKey",
            KeyType::LocalKey => "localKey",
            KeyType::InvalidKey => "invalidKey",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dart_name())
    }
}

/// Whether Dart's `String.trim` removes `c`: Unicode White_Space or U+FEFF.
fn is_dart_trimmed(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

/// Canonical form (API-5.0 3.7, BEHAVIOR 2.1): trim leading and trailing Unicode White_Space
/// and U+FEFF (Dart's `trim`), lower-case (full Unicode), then delete every U+0020. Other
/// whitespace inside the key (tabs, …) stays. Idempotent.
pub fn canonical_key(key: &str) -> String {
    key.trim_matches(is_dart_trimmed)
        .to_lowercase()
        .replace(' ', "")
}

/// Validates a key for a write and returns its canonical form.
///
/// The key is lower-cased (not trimmed) and classified (BEHAVIOR 2.4); an
/// [`KeyType::InvalidKey`] gives [`PersistenceError::InvalidKey`] with the key as given and
/// the first problem found. Because the classification form keeps spaces, a key with a
/// space is refused, except where reserved rule R1 finds a match anyway
/// (`" privatekey:at_secret"` → `privatekey:at_secret`).
pub fn validate_key(key: &str) -> Result<String> {
    let lower = key.to_lowercase();
    if !classify::is_valid(&lower) {
        return Err(PersistenceError::InvalidKey {
            key: key.to_string(),
            reason: classify::invalid_reason(&lower),
        });
    }
    Ok(canonical_key(key))
}

/// Checks the length rule on a canonical key (BEHAVIOR 2.3): the UTF-7 encoding (2.2) of
/// `canonical` may be at most [`MAX_CACHED_KEY_LENGTH`] characters when it starts with
/// `cached:` and at most [`MAX_KEY_LENGTH`] otherwise. A violation is
/// [`PersistenceError::KeyTooLong`] with `key` as given and the encoded length.
pub fn check_key_length(key: &str, canonical: &str) -> Result<()> {
    let len = utf7_len(canonical);
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

/// The commit skip rule (BEHAVIOR 4.1 step 1, API-5.0 4.3): a key that starts with
/// `private:`, `privatekey:`, `public:_` or `local:` and not with `public:__` gets no commit
/// entry. A case-sensitive prefix test on the key as passed (open point 45).
pub fn is_commit_skipped(key: &str) -> bool {
    !key.starts_with("public:__")
        && (key.starts_with("private:")
            || key.starts_with("privatekey:")
            || key.starts_with("public:_")
            || key.starts_with("local:"))
}

/// Validates an atSign for a store configuration: `@` followed by 1 to
/// [`MAX_AT_SIGN_CHARS`] atSign characters ([`is_at_sign_char`]), checked on the
/// lower-cased atSign (the atSign itself is never rewritten). A violation is
/// [`PersistenceError::InvalidConfig`] with the field `at_sign`.
pub fn validate_at_sign(at_sign: &str) -> Result<()> {
    let fail = |why: String| {
        Err(PersistenceError::InvalidConfig {
            field: "at_sign".to_string(),
            reason: format!("{at_sign:?} is not a valid atSign: {why}"),
        })
    };
    let lower = at_sign.to_lowercase();
    let Some(name) = lower.strip_prefix('@') else {
        return fail("it must start with '@'".to_string());
    };
    if name.is_empty() {
        return fail("no characters follow '@'".to_string());
    }
    let count = name.chars().count();
    if count > MAX_AT_SIGN_CHARS {
        return fail(format!(
            "{count} characters follow '@', at most {MAX_AT_SIGN_CHARS} are allowed"
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_at_sign_char(*c)) {
        return fail(format!(
            "{bad:?} (U+{:04X}) is not an atSign character (a-z, 0-9, '_', '-' or an allowed \
             emoji)",
            u32::from(bad)
        ));
    }
    Ok(())
}

/// Validates a notification id for the notification keystore: non-empty
/// ([`PersistenceError::InvalidKey`] otherwise) and at most
/// [`MAX_NOTIFICATION_ID_LENGTH`] UTF-16 code units ([`PersistenceError::KeyTooLong`]
/// otherwise; BEHAVIOR 2.3, open point 33). Ids are stored as given.
pub fn validate_notification_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(PersistenceError::InvalidKey {
            key: String::new(),
            reason: "a notification id may not be empty".to_string(),
        });
    }
    let len = id.encode_utf16().count();
    if len > MAX_NOTIFICATION_ID_LENGTH {
        return Err(PersistenceError::KeyTooLong {
            key: id.to_string(),
            len,
            max: MAX_NOTIFICATION_ID_LENGTH,
        });
    }
    Ok(())
}
