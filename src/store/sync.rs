//! Sync helpers built on [`CommitLog::iterate`] and the sync rule of [`crate::key`].

use super::traits::CommitLog;
use super::types::IterateOptions;
use crate::error::Result;
use crate::key::SyncRule;
use futures::StreamExt;

impl IterateOptions {
    /// The options of a sync page: entries from `from_commit_id` that `rule` admits.
    pub fn for_sync(from_commit_id: i64, rule: SyncRule) -> Self {
        IterateOptions::from(from_commit_id).with_filter(move |e| rule.admits(&e.at_key))
    }
}

/// The last commit id a client syncing with `rule` would receive (API-5.0 4.8).
///
/// * Unfiltered (no regex or `.*`, and no enrollment restriction; see
///   [`SyncRule::is_unfiltered`]): the high-water mark, `Some(-1)` for a new log. It still
///   reports an id whose entry was purged.
/// * Filtered: the highest retained commit id the rule admits (keys in `__manage` and
///   `configkey` never count), or `None` when the rule admits no entry.
///
/// The filtered case walks the log from the newest entry down and stops at the first
/// admitted one, so it costs what lies above that entry, not the whole log.
pub async fn last_commit_id_for(log: &dyn CommitLog, rule: &SyncRule) -> Result<Option<i64>> {
    if rule.is_unfiltered() {
        return log.last_committed_sequence_number().await.map(Some);
    }
    let mut entries = log.iterate_rev(None).await?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        if rule.counts_toward_last_commit_id(&entry.at_key) {
            return Ok(entry.commit_id);
        }
    }
    Ok(None)
}
