//! The conformance cases. Each is `pub async fn name(backend: &dyn Backend)` and panics on
//! a violated expectation.

mod keystore;

pub use keystore::*;

use crate::model::{AtData, AtMetaData};
use crate::store::{CommitLog, DynKeyStore, IterateOptions, ResultStream};
use futures::StreamExt;
use std::sync::Arc;

/// Collects a result stream, panicking on an error item.
pub async fn collect<T>(s: ResultStream<T>) -> Vec<T> {
    s.map(|r| r.expect("stream item")).collect().await
}

/// Every retained entry as `(id, atKey, op symbol)`.
pub async fn entries(cl: &Arc<dyn CommitLog>) -> Vec<(i64, String, &'static str)> {
    collect(
        cl.iterate(IterateOptions::default())
            .await
            .expect("iterate"),
    )
    .await
    .into_iter()
    .map(|e| (e.commit_id.unwrap_or(-1), e.at_key, e.operation.symbol()))
    .collect()
}

/// A value with data only.
pub fn v(data: &str) -> AtData {
    AtData::new(data)
}

/// A value with data and a ttl.
pub fn v_ttl(data: &str, ttl: i64) -> AtData {
    AtData::with_meta(
        data,
        AtMetaData {
            ttl: Some(ttl),
            ..Default::default()
        },
    )
}

/// The commit log of a server keystore.
pub fn cl(ks: &DynKeyStore) -> Arc<dyn CommitLog> {
    ks.commit_log().expect("a server keystore has a commit log")
}
