//! Running a compaction and reporting what it did.
//!
//! 5.x writes no compaction statistics itself (BEHAVIOR 7, 9.3); a consumer that wants
//! them computes them around `compact(false)`. [`compact_and_report`] does exactly that for
//! any store that implements [`CompactionTarget`] (every store trait object of a bundle)
//! and returns a [`CompactionReport`]. [`CompactionReport::to_stats`] turns it into the
//! 3.x [`CompactionStats`] (whose JSON is the `AtCompactionStats` form) and
//! [`CompactionReport::stats_key`] names the reserved keystore key the Dart server stored
//! it under (BEHAVIOR 1.9).
//!
//! ```no_run
//! # use at_persistence_secondary_server::store::{compact_and_report, Bundle};
//! # use at_persistence_secondary_server::model::SystemClock;
//! # async fn f(bundle: &Bundle) -> at_persistence_secondary_server::Result<()> {
//! if let Some(log) = bundle.access_log() {
//!     let report = compact_and_report(log.as_ref(), false, &SystemClock).await?;
//!     println!("{} {}", report.stats_key().unwrap_or("-"), report.to_stats().to_json());
//! }
//! # Ok(()) }
//! ```

use super::traits::{AccessLog, AtKeyValueStore, CommitLog, Compactable, NotificationKeystore};
use crate::error::Result;
use crate::model::{
    AtData, AtMetaData, Clock, CompactionStats, Timestamp, ACCESS_LOG_COMPACTION_KEY,
    COMMIT_LOG_COMPACTION_KEY, COMPACTION_TYPE_ACCESS_LOG, COMPACTION_TYPE_COMMIT_LOG,
    COMPACTION_TYPE_NOTIFICATION_KEYSTORE, NOTIFICATION_COMPACTION_KEY,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// A [`Compactable`] store that can also say how many entries it holds and what it is
/// called in compaction statistics.
///
/// Implemented for `dyn AccessLog`, `dyn NotificationKeystore`, `dyn CommitLog` and the
/// keystore (`dyn AtKeyValueStore<AtData, AtMetaData>`, which compacts its commit log), so
/// `compact_and_report(bundle.access_log().unwrap().as_ref(), ..)` works on any backend.
#[async_trait]
pub trait CompactionTarget: Compactable {
    /// The name used in statistics ([`COMPACTION_TYPE_COMMIT_LOG`],
    /// [`COMPACTION_TYPE_ACCESS_LOG`] or [`COMPACTION_TYPE_NOTIFICATION_KEYSTORE`]).
    fn compaction_type(&self) -> &'static str;

    /// How many entries the compacted part of the store holds.
    async fn compacted_entries_count(&self) -> Result<u64>;
}

#[async_trait]
impl CompactionTarget for dyn AccessLog {
    fn compaction_type(&self) -> &'static str {
        COMPACTION_TYPE_ACCESS_LOG
    }
    async fn compacted_entries_count(&self) -> Result<u64> {
        self.entries_count().await
    }
}

#[async_trait]
impl CompactionTarget for dyn NotificationKeystore {
    fn compaction_type(&self) -> &'static str {
        COMPACTION_TYPE_NOTIFICATION_KEYSTORE
    }
    async fn compacted_entries_count(&self) -> Result<u64> {
        self.entries_count().await
    }
}

#[async_trait]
impl CompactionTarget for dyn CommitLog {
    fn compaction_type(&self) -> &'static str {
        COMPACTION_TYPE_COMMIT_LOG
    }
    async fn compacted_entries_count(&self) -> Result<u64> {
        self.entries_count().await
    }
}

/// A keystore compacts its commit log; a commit-log-free keystore holds no entries to
/// compact (count 0).
#[async_trait]
impl CompactionTarget for dyn AtKeyValueStore<AtData, AtMetaData> {
    fn compaction_type(&self) -> &'static str {
        COMPACTION_TYPE_COMMIT_LOG
    }
    async fn compacted_entries_count(&self) -> Result<u64> {
        match self.commit_log() {
            Some(log) => log.entries_count().await,
            None => Ok(0),
        }
    }
}

/// What one compaction did (see [`compact_and_report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// The store's compaction type name (see [`CompactionTarget::compaction_type`]).
    pub compaction_type: &'static str,
    /// Whether it was a dry run: then nothing was removed and `removed` counts what would
    /// have been.
    pub dry_run: bool,
    /// When it started, by the clock passed in.
    pub started_at: Timestamp,
    /// When it finished, by the clock passed in.
    pub finished_at: Timestamp,
    /// How long it took (monotonic time, whatever the clock says).
    pub duration: Duration,
    /// Entries before.
    pub entries_before: u64,
    /// Entries after (equal to `entries_before` after a dry run, unless other writers
    /// changed the store meanwhile).
    pub entries_after: u64,
    /// Items the compaction yielded: removed, or, in a dry run, removable.
    pub removed: u64,
    /// Items that came back as errors (a corrupt record, a store closed mid-way).
    pub failed_items: u64,
    /// The first such error, rendered.
    pub first_error: Option<String>,
}

impl CompactionReport {
    /// The reserved keystore key the Dart server stored these statistics under (BEHAVIOR
    /// 1.9, spelled as Dart spells it; the keystore stores it lower-cased), or `None` for
    /// an unknown type name.
    pub fn stats_key(&self) -> Option<&'static str> {
        match self.compaction_type {
            COMPACTION_TYPE_COMMIT_LOG => Some(COMMIT_LOG_COMPACTION_KEY),
            COMPACTION_TYPE_ACCESS_LOG => Some(ACCESS_LOG_COMPACTION_KEY),
            COMPACTION_TYPE_NOTIFICATION_KEYSTORE => Some(NOTIFICATION_COMPACTION_KEY),
            _ => None,
        }
    }

    /// The report in the 3.x `AtCompactionStats` shape: `last_compaction_run` is
    /// [`started_at`](Self::started_at) and `deleted_keys_count` is
    /// [`removed`](Self::removed) (Dart computed pre − post, which is the same when no
    /// other writer ran meanwhile).
    pub fn to_stats(&self) -> CompactionStats {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        CompactionStats {
            at_compaction_type: self.compaction_type.to_string(),
            last_compaction_run: self.started_at,
            compaction_duration_ms: i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX),
            pre_compaction_entries_count: to_i64(self.entries_before),
            post_compaction_entries_count: to_i64(self.entries_after),
            deleted_keys_count: to_i64(self.removed),
        }
    }
}

/// Runs `store.compact(dry_run)` to completion and reports what it did: entries before
/// and after, items yielded, failed items, duration and when.
///
/// Item errors are counted (and the first one kept) while the compaction goes on; an
/// error before the first item (a closed store) is returned as the error of this call.
/// The items themselves are not kept, so a large compaction needs no memory for them.
pub async fn compact_and_report<T>(
    store: &T,
    dry_run: bool,
    clock: &dyn Clock,
) -> Result<CompactionReport>
where
    T: CompactionTarget + ?Sized,
{
    let started_at = clock.now();
    let t0 = Instant::now();
    let entries_before = store.compacted_entries_count().await?;
    let mut items = store.compact(dry_run).await?;
    let mut removed = 0u64;
    let mut failed_items = 0u64;
    let mut first_error = None;
    while let Some(item) = items.next().await {
        match item {
            Ok(_) => removed += 1,
            Err(e) => {
                failed_items += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    drop(items);
    let entries_after = store.compacted_entries_count().await?;
    Ok(CompactionReport {
        compaction_type: store.compaction_type(),
        dry_run,
        started_at,
        finished_at: clock.now(),
        duration: t0.elapsed(),
        entries_before,
        entries_after,
        removed,
        failed_items,
        first_error,
    })
}
