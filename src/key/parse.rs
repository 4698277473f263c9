//! Splitting an atKey into owner, recipient, id and namespace, the way at_commons
//! `AtKey.fromString` does (BEHAVIOR 2.6, API-5.0 2.2).
//!
//! This parser is deliberately lenient and quirky because the sync authorisation rule (4.5)
//! and `KeyPattern` matching depend on exactly these answers:
//!
//! * the text before the first `:` is the recipient unless it is `public`, `local` or
//!   `cached`, so `private:x@alice` has the recipient `private` and `privatekey:x@alice` the
//!   recipient `privatekey`;
//! * `cached:@bob:x@alice` has the recipient `@bob`; `cached:public:…`, `public:…` and
//!   `local:…` keys have none;
//! * only the segment after the first `:` (after the second for `cached:`) is read for the
//!   id and owner; later segments are ignored;
//! * the namespace is the lower-cased text after the **last** `.` of the id part.
//!
//! Unlike Dart, it never fails with an index error: the two inputs that crash Dart
//! (`cached:` with only two segments, `privatekey:privatekey` without `@`) are parse
//! failures (open point 20).

use std::fmt;

/// The pieces of an atKey, as at_commons `AtKey.fromString` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedAtKey {
    /// The identifier: the entity text before the last `.` (the whole entity when it has no
    /// `.`), as written (not lower-cased). `public:phone.wavi@alice` → `phone`;
    /// `privatekey:at_pkam_publickey` → the whole key.
    pub id: String,
    /// The namespace: the lower-cased text after the last `.` of the entity, or `None` when
    /// the entity has no `.` or nothing follows its last `.`.
    pub namespace: Option<String>,
    /// The owner atSign, lower case, always with a leading `@` (`@alice`). `None` when the
    /// key names no owner that the parser reads (e.g. `privatekey:at_pkam_publickey`, or
    /// `@bob:x@alice@carol` whose entity segment holds two `@`).
    pub shared_by: Option<String>,
    /// The recipient: the lower-cased text of the first `:`-segment (the second one for
    /// `cached:` keys) exactly as written, e.g. `@bob`, or `private` for `private:x@alice`.
    /// Dart stores it with an `@` prepended when missing (`@private`); the difference is
    /// invisible to `KeyPattern`, which compares atSigns with the leading `@` optional.
    /// `None` for self, `public:`, `cached:public:` and `local:` keys.
    pub shared_with: Option<String>,
    /// The key starts with `public:` or `cached:public:`.
    pub is_public: bool,
    /// The key starts with `cached:`.
    pub is_cached: bool,
    /// The key starts with `local:`.
    pub is_local: bool,
}

/// Why a key could not be parsed (BEHAVIOR 2.6 rules 2–4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParseError {
    /// The key contains no `@` (and is not a PKAM or encryption private key).
    NoAtSign {
        /// The key as given.
        key: String,
    },
    /// The key contains a space (U+0020).
    ContainsSpace {
        /// The key as given.
        key: String,
    },
    /// A `cached:` key with fewer than three `:`-segments (Dart fails with a range error).
    MissingCachedSegment {
        /// The key as given.
        key: String,
    },
    /// A `privatekey:privatekey…` key without `@` (Dart fails with a range error).
    EncryptionKeyWithoutOwner {
        /// The key as given.
        key: String,
    },
}

impl KeyParseError {
    /// The key that failed to parse.
    pub fn key(&self) -> &str {
        match self {
            KeyParseError::NoAtSign { key }
            | KeyParseError::ContainsSpace { key }
            | KeyParseError::MissingCachedSegment { key }
            | KeyParseError::EncryptionKeyWithoutOwner { key } => key,
        }
    }
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyParseError::NoAtSign { key } => {
                write!(f, "{key:?} is not a well-formed key: no '@'")
            }
            KeyParseError::ContainsSpace { key } => {
                write!(f, "{key:?} is not a well-formed key: it contains a space")
            }
            KeyParseError::MissingCachedSegment { key } => write!(
                f,
                "{key:?} is not a well-formed key: a cached: key needs a recipient and an entity"
            ),
            KeyParseError::EncryptionKeyWithoutOwner { key } => write!(
                f,
                "{key:?} is not a well-formed key: privatekey:privatekey needs an '@owner'"
            ),
        }
    }
}

impl std::error::Error for KeyParseError {}

const PKAM_PRIVATE_KEY: &str = "privatekey:at_pkam_privatekey";
const PKAM_PUBLIC_KEY: &str = "privatekey:at_pkam_publickey";
const ENCRYPTION_PRIVATE_KEY: &str = "privatekey:privatekey";

fn owner(text: &str) -> String {
    format!("@{text}").to_lowercase()
}

impl ParsedAtKey {
    /// Parses `key` (BEHAVIOR 2.6). See the module documentation for the rules and quirks.
    /// The key is read as given; only the owner, recipient and namespace are lower-cased.
    pub fn parse(key: &str) -> Result<ParsedAtKey, KeyParseError> {
        let mut parsed = ParsedAtKey {
            id: String::new(),
            namespace: None,
            shared_by: None,
            shared_with: None,
            is_public: false,
            is_cached: false,
            is_local: false,
        };
        if key.starts_with(PKAM_PRIVATE_KEY) || key.starts_with(PKAM_PUBLIC_KEY) {
            parsed.id = key.to_string();
            return Ok(parsed);
        }
        if key.starts_with(ENCRYPTION_PRIVATE_KEY) {
            let mut pieces = key.split('@');
            let id = pieces.next().unwrap_or_default();
            let Some(by) = pieces.next() else {
                return Err(KeyParseError::EncryptionKeyWithoutOwner {
                    key: key.to_string(),
                });
            };
            parsed.id = id.to_string();
            parsed.shared_by = Some(owner(by));
            return Ok(parsed);
        }
        if !key.contains('@') {
            return Err(KeyParseError::NoAtSign {
                key: key.to_string(),
            });
        }
        if key.contains(' ') {
            return Err(KeyParseError::ContainsSpace {
                key: key.to_string(),
            });
        }

        let segments: Vec<&str> = key.split(':').collect();
        let entity_segment = if segments.len() == 1 {
            // `phone@bob`: the id is the text before the first `@`, the owner the text
            // between the first and the second.
            let mut pieces = key.split('@');
            parsed.id = pieces.next().unwrap_or_default().to_string();
            parsed.shared_by = pieces.next().map(owner);
            None
        } else {
            match segments[0] {
                "public" => parsed.is_public = true,
                "local" => parsed.is_local = true,
                "cached" => {
                    parsed.is_cached = true;
                    if segments[1] == "public" {
                        parsed.is_public = true;
                    } else {
                        parsed.shared_with = Some(segments[1].to_lowercase());
                    }
                }
                other => parsed.shared_with = Some(other.to_lowercase()),
            }
            if segments[0] == "cached" {
                match segments.get(2) {
                    Some(segment) => Some(*segment),
                    None => {
                        return Err(KeyParseError::MissingCachedSegment {
                            key: key.to_string(),
                        })
                    }
                }
            } else {
                Some(segments[1])
            }
        };
        if let Some(segment) = entity_segment {
            let pieces: Vec<&str> = segment.split('@').collect();
            parsed.id = pieces[0].to_string();
            if pieces.len() == 2 {
                parsed.shared_by = Some(owner(pieces[1]));
            }
        }

        if let Some(dot) = parsed.id.rfind('.') {
            let namespace = &parsed.id[dot + 1..];
            if !namespace.is_empty() {
                parsed.namespace = Some(namespace.to_lowercase());
            }
            parsed.id.truncate(dot);
        }
        Ok(parsed)
    }
}

/// Parses `key` like at_commons `AtKey.fromString`; `None` when it does not parse (no `@`, a
/// space, or one of the inputs that crash Dart). Never panics. See [`ParsedAtKey::parse`]
/// for the reason of a failure.
pub fn parse_at_key(key: &str) -> Option<ParsedAtKey> {
    ParsedAtKey::parse(key).ok()
}

/// The namespace of `key` as the sync authorisation rule derives it (BEHAVIOR 2.6):
/// `Ok(Some(ns))`, `Ok(None)` for a key without a namespace, or the parse failure.
///
/// `phone.WAVI@alice` → `wavi`; `shared_key.bob@alice` → `bob`; `phone@alice` → none;
/// `configkey` → parse failure.
pub fn namespace_of(key: &str) -> Result<Option<String>, KeyParseError> {
    ParsedAtKey::parse(key).map(|parsed| parsed.namespace)
}
