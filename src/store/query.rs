//! Query types of the rich keystore surface (API-5.0 2.2, 2.7): orderings, scan options,
//! value predicates, query results and statistics.

use crate::error::{PersistenceError, Result};
use crate::model::Timestamp;
use std::fmt;

/// The order of a scan. `None` in [`ScanOptions::order_by`] means the natural order, which
/// for the sled backend is ascending canonical key (the same as [`OrderByKey::ByKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderByKey {
    /// Ascending canonical key (byte order).
    ByKey,
    /// Ascending `created_at`; records without one come last. The sled backend keeps no
    /// creation index, so this order reads every record: a scan for maintenance, not
    /// for a hot path.
    ByCreatedAt,
    /// Ascending `expires_at`; records that never expire come last.
    ByExpiresAt,
}

/// Options of `scan_keys` and `query_by_path`: `skip` then `limit` apply after filtering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Also list expired and not-yet-available keys.
    pub include_expired: bool,
    /// The order; `None` is the natural order.
    pub order_by: Option<OrderByKey>,
    /// At most this many keys (`Some(0)` gives none).
    pub limit: Option<usize>,
    /// Drop this many matching keys first.
    pub skip: Option<usize>,
}

impl ScanOptions {
    /// Options with `order_by` set.
    pub fn ordered(order_by: OrderByKey) -> Self {
        ScanOptions {
            order_by: Some(order_by),
            ..Default::default()
        }
    }
}

/// A predicate over a value read as a JSON document (API-5.0 2.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The field at `path` (a non-empty list of object keys) equals `expected`. A `null`
    /// expected value matches JSON null or a missing field; numbers compare by value;
    /// booleans match only JSON booleans; a value that is not JSON never matches.
    PathEquals {
        /// The field names to walk, e.g. `["obj", "amount"]` for `$.obj.amount`.
        path: Vec<String>,
        /// The expected value.
        expected: serde_json::Value,
    },
    /// All children hold; `And([])` is true.
    And(Vec<Predicate>),
    /// Some child holds; `Or([])` is false.
    Or(Vec<Predicate>),
}

impl Predicate {
    /// `PathEquals(path, expected)`.
    pub fn path_equals<S: Into<String>>(
        path: impl IntoIterator<Item = S>,
        expected: impl Into<serde_json::Value>,
    ) -> Self {
        Predicate::PathEquals {
            path: path.into_iter().map(Into::into).collect(),
            expected: expected.into(),
        }
    }

    /// Checks that every `PathEquals` has a non-empty path.
    pub fn validate(&self) -> Result<()> {
        match self {
            Predicate::PathEquals { path, .. } if path.is_empty() => {
                Err(PersistenceError::invalid_argument(
                    "predicate",
                    "PathEquals needs a non-empty path",
                ))
            }
            Predicate::PathEquals { .. } => Ok(()),
            Predicate::And(c) | Predicate::Or(c) => c.iter().try_for_each(Predicate::validate),
        }
    }

    /// Evaluates the predicate on a value given as text.
    pub fn matches_text(&self, value: Option<&str>) -> bool {
        match value.and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok()) {
            Some(doc) => self.matches(&doc),
            None => self.matches_non_json(),
        }
    }

    /// Evaluates the predicate on a parsed JSON document.
    pub fn matches(&self, doc: &serde_json::Value) -> bool {
        match self {
            Predicate::PathEquals { path, expected } => {
                let mut cur = Some(doc);
                for field in path {
                    cur = cur.and_then(|v| v.as_object()).and_then(|o| o.get(field));
                }
                json_equals(cur, expected)
            }
            Predicate::And(c) => c.iter().all(|p| p.matches(doc)),
            Predicate::Or(c) => c.iter().any(|p| p.matches(doc)),
        }
    }

    /// A value that is not JSON: every `PathEquals` is false, so `And([])` stays true.
    fn matches_non_json(&self) -> bool {
        match self {
            Predicate::PathEquals { .. } => false,
            Predicate::And(c) => c.iter().all(Predicate::matches_non_json),
            Predicate::Or(c) => c.iter().any(Predicate::matches_non_json),
        }
    }
}

fn json_equals(found: Option<&serde_json::Value>, expected: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (found, expected) {
        (None, Value::Null) | (Some(Value::Null), Value::Null) => true,
        (None, _) => false,
        (Some(Value::Number(a)), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        (Some(a), b) => a == b,
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::PathEquals { path, expected } => {
                write!(f, "PathEquals({} = {expected})", path.join("."))
            }
            Predicate::And(c) | Predicate::Or(c) => {
                let name = if matches!(self, Predicate::And(_)) {
                    "And"
                } else {
                    "Or"
                };
                let parts: Vec<String> = c.iter().map(|p| p.to_string()).collect();
                write!(f, "{name}([{}])", parts.join(", "))
            }
        }
    }
}

/// One result of `query_by_path`: the canonical key, its value and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry<V, T> {
    /// The canonical key.
    pub key: String,
    /// The stored value.
    pub data: V,
    /// Its metadata.
    pub metadata: Option<T>,
}

/// A diagnostic summary of a store (API-5.0 2.7). Counts are exact. Not for hot paths:
/// the sled keystore reads every record for the oldest and newest `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyStoreStats {
    /// Every stored key, expired and unborn included.
    pub total_keys: u64,
    /// Keys with a stored expiry instant (keystore) or a ttl (notifications).
    pub ttl_keys: u64,
    /// Keys with a stored availability instant (always 0 for notifications).
    pub ttb_keys: u64,
    /// Approximate bytes on disk; 0 means "not reported".
    pub size_bytes: u64,
    /// The smallest `created_at` (notifications: `notification_date_time`).
    pub oldest_created_at: Option<Timestamp>,
    /// The largest `created_at` (notifications: `notification_date_time`).
    pub newest_created_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn predicate_rules() {
        let doc = json!({"city": "paris", "obj": {"amount": 100, "ok": true, "n": null}});
        assert!(Predicate::path_equals(["city"], "paris").matches(&doc));
        assert!(!Predicate::path_equals(["city"], "london").matches(&doc));
        assert!(Predicate::path_equals(["obj", "amount"], 100.0).matches(&doc));
        assert!(Predicate::path_equals(["obj", "amount"], 100).matches(&doc));
        assert!(!Predicate::path_equals(["obj", "ok"], 1).matches(&doc));
        assert!(Predicate::path_equals(["obj", "ok"], true).matches(&doc));
        assert!(Predicate::path_equals(["obj", "n"], serde_json::Value::Null).matches(&doc));
        assert!(Predicate::path_equals(["missing"], serde_json::Value::Null).matches(&doc));
        assert!(!Predicate::path_equals(["missing"], "x").matches(&doc));
        assert!(Predicate::And(vec![]).matches(&doc));
        assert!(!Predicate::Or(vec![]).matches(&doc));
        assert!(!Predicate::path_equals(["city"], "paris").matches_text(Some("not json")));
        assert!(Predicate::And(vec![]).matches_text(Some("not json")));
        assert!(Predicate::path_equals(Vec::<String>::new(), 1)
            .validate()
            .is_err());
        assert!(
            Predicate::And(vec![Predicate::path_equals(Vec::<String>::new(), 1)])
                .validate()
                .is_err()
        );
        let ast = Predicate::And(vec![
            Predicate::path_equals(["obj", "status"], "unpaid"),
            Predicate::Or(vec![
                Predicate::path_equals(["obj", "amount"], 100),
                Predicate::path_equals(["obj", "amount"], 200),
            ]),
        ]);
        assert_eq!(
            ast.to_string(),
            "And([PathEquals(obj.status = \"unpaid\"), Or([PathEquals(obj.amount = 100), PathEquals(obj.amount = 200)])])"
        );
    }
}
