//! The sync filter (BEHAVIOR 4.3–4.5, API-5.0 4.7–4.8): which commit-log entries a client
//! connection may receive, and which ones count for its "last commit id".
//!
//! The commit log itself filters nothing; a consumer builds a [`SyncRule`] for a connection
//! and passes [`SyncRule::admits`] (or [`SyncRule::counts_toward_last_commit_id`]) as the
//! `where` predicate of the commit log's iterate.

use regex::Regex;

use super::classify::is_reserved;
use super::parse::namespace_of;
use crate::error::{PersistenceError, Result};

/// The namespace whose keys never count for the last commit id (API-5.0 4.8).
pub const MANAGE_NAMESPACE: &str = "__manage";

/// Whether `at_key` lower-cased is `configkey`. Lower-casing never maps a character to
/// nothing, so only keys of at most nine characters (36 bytes) can qualify; longer keys are
/// rejected without allocating.
fn is_config_key(at_key: &str) -> bool {
    at_key.len() <= 36 && at_key.to_lowercase() == "configkey"
}

/// Whether every client must receive `at_key` whatever its sync regex (BEHAVIOR 4.4):
///
/// * the key contains `shared_key` and classifies (lower-cased) as a reserved key;
/// * or it starts with `public:publickey` (a plain prefix test);
/// * or it starts with `public:` and contains no `.` (a public key without namespace).
///
/// The prefix and substring tests are case-sensitive, as in Dart; commit-log keys are lower
/// case anyway.
pub fn always_include_in_sync(at_key: &str) -> bool {
    (at_key.contains("shared_key") && is_reserved(&at_key.to_lowercase()))
        || at_key.starts_with("public:publickey")
        || (at_key.starts_with("public:") && !at_key.contains('.'))
}

/// Whether a connection enrolled for `enrolled` namespaces may see `at_key` (BEHAVIOR 4.5):
///
/// 1. `configkey` (compared lower-cased) is always authorised;
/// 2. a key that does not parse (BEHAVIOR 2.6: no `@`, a space, …) is never authorised;
/// 3. no enrollment (`None` or empty) or a key without namespace: authorised;
/// 4. otherwise authorised iff the list holds `*` or exactly the key's namespace.
///
/// Note that `shared_key.bob@alice` has the namespace `bob`, so an enrollment without `bob`
/// or `*` hides it although it is always-included (open point 21).
pub fn is_namespace_authorised(at_key: &str, enrolled: Option<&[String]>) -> bool {
    if is_config_key(at_key) {
        return true;
    }
    let namespace = match namespace_of(at_key) {
        Ok(namespace) => namespace,
        Err(_) => return false,
    };
    let enrolled = match enrolled {
        Some(list) if !list.is_empty() => list,
        _ => return true,
    };
    let Some(namespace) = namespace else {
        return true;
    };
    enrolled.iter().any(|ns| ns == "*" || *ns == namespace)
}

/// The sync rule of one client request: an optional regex and the connection's enrolled
/// namespaces (BEHAVIOR 4.3, API-5.0 4.7).
///
/// `admits(k)` = authorised(k, enrolled) AND (regex finds a match in k OR
/// alwaysInclude(k)). A `None` regex matches every key (Dart's default `.*`).
///
/// The regex uses the `regex` crate's syntax, not Dart's (open point 16): look-around and
/// back-references are refused with [`PersistenceError::InvalidRegex`]; `\w`, `\d` and `\b`
/// are Unicode-aware; `.` matches one Unicode scalar value rather than one UTF-16 unit. The
/// patterns clients use in practice (`.*`, `.wavi`, `^first`, `buzz`) behave the same.
#[derive(Debug, Clone)]
pub struct SyncRule {
    pattern: Option<String>,
    regex: Option<Regex>,
    enrolled: Option<Vec<String>>,
}

impl SyncRule {
    /// Builds the rule; a `regex` that does not compile is
    /// [`PersistenceError::InvalidRegex`] naming the pattern and the reason.
    pub fn new(regex: Option<&str>, enrolled_namespaces: Option<Vec<String>>) -> Result<SyncRule> {
        let compiled = match regex {
            None => None,
            Some(pattern) => {
                Some(
                    Regex::new(pattern).map_err(|e| PersistenceError::InvalidRegex {
                        pattern: pattern.to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        Ok(SyncRule {
            pattern: regex.map(str::to_string),
            regex: compiled,
            enrolled: enrolled_namespaces,
        })
    }

    /// The rule that admits every key except those that do not parse (BEHAVIOR 4.5): no
    /// regex, no enrollment.
    pub fn unfiltered() -> SyncRule {
        SyncRule {
            pattern: None,
            regex: None,
            enrolled: None,
        }
    }

    /// The regex as given, if any.
    pub fn regex(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// The enrolled namespaces as given, if any.
    pub fn enrolled_namespaces(&self) -> Option<&[String]> {
        self.enrolled.as_deref()
    }

    /// Whether the connection's enrollment lets it see `at_key`
    /// ([`is_namespace_authorised`]).
    pub fn authorises(&self, at_key: &str) -> bool {
        is_namespace_authorised(at_key, self.enrolled.as_deref())
    }

    /// Whether the regex (when there is one) finds a match anywhere in `at_key`
    /// (case-sensitive search; `None` matches everything).
    pub fn regex_matches(&self, at_key: &str) -> bool {
        self.regex.as_ref().is_none_or(|re| re.is_match(at_key))
    }

    /// Whether a sync response on this connection may contain `at_key`: authorised AND
    /// (regex matches OR always-included).
    pub fn admits(&self, at_key: &str) -> bool {
        self.authorises(at_key) && (self.regex_matches(at_key) || always_include_in_sync(at_key))
    }

    /// Whether the request is unfiltered (BEHAVIOR open point 47): the regex is `None` or
    /// exactly `.*`, AND the enrollment is `None`, empty or holds `*`. An unfiltered request's
    /// last commit id is the commit log's high-water mark; a filtered one's is the highest
    /// retained id for which [`SyncRule::counts_toward_last_commit_id`] holds.
    pub fn is_unfiltered(&self) -> bool {
        let regex_open = matches!(self.pattern.as_deref(), None | Some(".*"));
        let enrollment_open = match &self.enrolled {
            None => true,
            Some(list) => list.is_empty() || list.iter().any(|ns| ns == "*"),
        };
        regex_open && enrollment_open
    }

    /// Whether `at_key` counts for a filtered request's last commit id (API-5.0 4.8): the rule
    /// admits it, it is not in the `__manage` namespace and it is not `configkey`.
    pub fn counts_toward_last_commit_id(&self, at_key: &str) -> bool {
        if is_config_key(at_key) {
            return false;
        }
        if matches!(namespace_of(at_key), Ok(Some(ns)) if ns == MANAGE_NAMESPACE) {
            return false;
        }
        self.admits(at_key)
    }
}
