//! The conformance cases. Each is `pub async fn name(backend: &dyn Backend)` and panics on
//! a violated expectation.

mod commit_log;
mod keystore;
mod lifecycle;
mod migration;
mod notifications;
mod rich;

pub use commit_log::*;
pub use keystore::*;
pub use lifecycle::*;
pub use migration::*;
pub use notifications::*;
pub use rich::*;

use crate::model::{AtData, AtMetaData, CommitEntry, CommitOp, Timestamp};
use crate::store::{
    ChangeStream, CommitLog, DynKeyStore, IterateOptions, KeyStoreChange, RemoveOptions,
    ResultStream, WriteOptions,
};
use crate::PersistenceError;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Write options without skip_commit or asserted timestamps.
pub const W: WriteOptions = WriteOptions {
    skip_commit: false,
    asserted: None,
};

/// Write options with skip_commit.
pub const W_SKIP: WriteOptions = WriteOptions {
    skip_commit: true,
    asserted: None,
};

/// Remove options without skip_commit or deleted_at.
pub const R: RemoveOptions = RemoveOptions {
    skip_commit: false,
    deleted_at: None,
};

/// Remove options with skip_commit.
pub const R_SKIP: RemoveOptions = RemoveOptions {
    skip_commit: true,
    deleted_at: None,
};

/// How long a case waits for an event it expects.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long a case waits to be sure no further event arrives.
const QUIET_WAIT: Duration = Duration::from_millis(150);

/// Collects a result stream, panicking on an error item.
pub async fn collect<T>(s: ResultStream<T>) -> Vec<T> {
    s.map(|r| r.expect("stream item")).collect().await
}

/// Every retained entry as `(id, atKey, op symbol)`.
pub async fn entries(cl: &Arc<dyn CommitLog>) -> Vec<(i64, String, &'static str)> {
    iterate(cl, IterateOptions::default()).await
}

/// The entries `options` selects, as `(id, atKey, op symbol)`.
pub async fn iterate(
    cl: &Arc<dyn CommitLog>,
    options: IterateOptions,
) -> Vec<(i64, String, &'static str)> {
    collect(cl.iterate(options).await.expect("iterate"))
        .await
        .into_iter()
        .map(triple)
        .collect()
}

/// An entry as `(id, atKey, op symbol)`.
pub fn triple(e: CommitEntry) -> (i64, String, &'static str) {
    (e.commit_id.unwrap_or(-1), e.at_key, e.operation.symbol())
}

/// The ids of the retained entries, ascending.
pub async fn ids(cl: &Arc<dyn CommitLog>) -> Vec<i64> {
    entries(cl).await.into_iter().map(|e| e.0).collect()
}

/// A commit entry with an id (for `replay`).
pub fn entry(at_key: &str, op: CommitOp, op_time: Timestamp, id: i64) -> CommitEntry {
    CommitEntry::new(at_key, op, op_time, id)
}

/// The symbol of the retained entry of `key`, or `None`.
pub async fn latest_op(cl: &Arc<dyn CommitLog>, key: &str) -> Option<&'static str> {
    cl.get_latest_commit_entry(key)
        .await
        .expect("get_latest_commit_entry")
        .map(|e| e.operation.symbol())
}

/// The id of the retained entry of `key`, or `None`.
pub async fn latest_id(cl: &Arc<dyn CommitLog>, key: &str) -> Option<i64> {
    cl.get_latest_commit_entry(key)
        .await
        .expect("get_latest_commit_entry")
        .and_then(|e| e.commit_id)
}

/// The high-water mark.
pub async fn last(cl: &Arc<dyn CommitLog>) -> i64 {
    cl.last_committed_sequence_number()
        .await
        .expect("last_committed_sequence_number")
}

/// A value with data only.
pub fn v(data: &str) -> AtData {
    AtData::new(data)
}

/// A value with data and a ttl.
pub fn v_ttl(data: &str, ttl: i64) -> AtData {
    AtData::with_meta(data, meta_ttl(ttl))
}

/// A value with data and a ttb.
pub fn v_ttb(data: &str, ttb: i64) -> AtData {
    AtData::with_meta(
        data,
        AtMetaData {
            ttb: Some(ttb),
            ..Default::default()
        },
    )
}

/// Metadata with only a ttl.
pub fn meta_ttl(ttl: i64) -> AtMetaData {
    AtMetaData {
        ttl: Some(ttl),
        ..Default::default()
    }
}

/// The commit log of a server keystore.
pub fn cl(ks: &DynKeyStore) -> Arc<dyn CommitLog> {
    ks.commit_log().expect("a server keystore has a commit log")
}

/// The available keys (`get_keys`) matching `regex`, sorted.
pub async fn keys(ks: &DynKeyStore, regex: Option<&str>) -> Vec<String> {
    let mut k = collect(ks.get_keys(regex).await.expect("get_keys")).await;
    k.sort();
    k
}

/// The expired keys (`get_expired_keys`), sorted.
pub async fn expired(ks: &DynKeyStore) -> Vec<String> {
    let mut k = collect(ks.get_expired_keys().await.expect("get_expired_keys")).await;
    k.sort();
    k
}

/// The stored data of `key` (panics when absent).
pub async fn data(ks: &DynKeyStore, key: &str) -> Option<String> {
    ks.get(key)
        .await
        .unwrap_or_else(|e| panic!("get({key}): {e}"))
        .data
}

/// The stored metadata of `key` (panics when absent).
pub async fn meta(ks: &DynKeyStore, key: &str) -> AtMetaData {
    ks.get_meta(key)
        .await
        .unwrap_or_else(|e| panic!("get_meta({key}): {e}"))
        .unwrap_or_else(|| panic!("get_meta({key}) is None"))
}

/// Asserts that `key` is absent: `get` is `KeyNotFound` naming the canonical key,
/// `exists` is false and `get_meta` is `None`.
pub async fn assert_absent(ks: &DynKeyStore, key: &str) {
    match ks.get(key).await {
        Err(PersistenceError::KeyNotFound { .. }) => {}
        other => panic!("get({key}) of an absent key should be KeyNotFound, got {other:?}"),
    }
    assert!(
        !ks.exists(key).await.expect("exists"),
        "exists({key}) should be false"
    );
    assert_eq!(
        ks.get_meta(key).await.expect("get_meta"),
        None,
        "get_meta({key}) should be None"
    );
}

/// The next change event (waits up to a few seconds; panics when none arrives).
pub async fn next_event(s: &mut ChangeStream) -> KeyStoreChange {
    match tokio::time::timeout(EVENT_WAIT, s.next()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the change stream ended while an event was expected"),
        Err(_) => panic!("no change event arrived within {EVENT_WAIT:?}"),
    }
}

/// The next `n` change events.
pub async fn next_events(s: &mut ChangeStream, n: usize) -> Vec<KeyStoreChange> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(s).await);
    }
    out
}

/// Asserts that no further event arrives within a short wait.
pub async fn assert_no_event(s: &mut ChangeStream, context: &str) {
    if let Ok(Some(e)) = tokio::time::timeout(QUIET_WAIT, s.next()).await {
        panic!("{context}: unexpected change event {e}");
    }
}

/// `KeyAdded(key)`.
pub fn added(key: &str) -> KeyStoreChange {
    KeyStoreChange::KeyAdded { key: key.into() }
}

/// `KeyUpdated(key)`.
pub fn updated(key: &str) -> KeyStoreChange {
    KeyStoreChange::KeyUpdated { key: key.into() }
}

/// `KeyRemoved(key)`.
pub fn removed(key: &str) -> KeyStoreChange {
    KeyStoreChange::KeyRemoved { key: key.into() }
}

/// A set of owned strings.
pub fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_string).collect()
}

/// Whether `r` is a `StoreClosed` error.
pub fn is_closed<T>(r: &Result<T, PersistenceError>) -> bool {
    matches!(r, Err(PersistenceError::StoreClosed { .. }))
}
