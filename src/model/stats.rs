//! Compaction statistics in the 3.x `AtCompactionStats` format and the reserved keys they
//! were stored under (BEHAVIOR 1.9).
//!
//! 5.x writes no statistics; the type exists for a consumer that wants to keep writing
//! stats that older tools can read. The reserved-key constants still matter in 5.x: they
//! take part in key classification (BEHAVIOR 2.4 rule R1).

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The key commit-log compaction stats were stored under, as Dart spells it.
pub const COMMIT_LOG_COMPACTION_KEY: &str = "privatekey:commitLogCompactionStats";
/// [`COMMIT_LOG_COMPACTION_KEY`] as the keystore stores it (lower case).
pub const COMMIT_LOG_COMPACTION_KEY_STORED: &str = "privatekey:commitlogcompactionstats";
/// The key access-log compaction stats were stored under, as Dart spells it.
pub const ACCESS_LOG_COMPACTION_KEY: &str = "privatekey:accessLogCompactionStats";
/// [`ACCESS_LOG_COMPACTION_KEY`] as the keystore stores it (lower case).
pub const ACCESS_LOG_COMPACTION_KEY_STORED: &str = "privatekey:accesslogcompactionstats";
/// The key notification-keystore compaction stats were stored under, as Dart spells it.
pub const NOTIFICATION_COMPACTION_KEY: &str = "privatekey:notificationCompactionStats";
/// [`NOTIFICATION_COMPACTION_KEY`] as the keystore stores it (lower case).
pub const NOTIFICATION_COMPACTION_KEY_STORED: &str = "privatekey:notificationcompactionstats";

/// `atCompactionType` of commit-log stats.
pub const COMPACTION_TYPE_COMMIT_LOG: &str = "AtCommitLog";
/// `atCompactionType` of access-log stats.
pub const COMPACTION_TYPE_ACCESS_LOG: &str = "AtAccessLog";
/// `atCompactionType` of notification-keystore stats.
pub const COMPACTION_TYPE_NOTIFICATION_KEYSTORE: &str = "AtNotificationKeystore";

/// The result of one compaction run, in the 3.x `AtCompactionStats` shape.
///
/// Its JSON form ([`CompactionStats::to_json`]) has exactly six keys and every value is a
/// string:
///
/// ```json
/// {"atCompactionType":"AtAccessLog","lastCompactionRun":"2024-01-01 00:00:00.123Z",
///  "compactionDurationInMills":"4","preCompactionEntriesCount":"4",
///  "postCompactionEntriesCount":"1","deletedKeysCount":"3"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionStats {
    /// Which store was compacted, e.g. [`COMPACTION_TYPE_ACCESS_LOG`]
    /// (JSON `atCompactionType`).
    pub at_compaction_type: String,
    /// When the run started (JSON `lastCompactionRun`).
    pub last_compaction_run: Timestamp,
    /// How long it took, in milliseconds (JSON `compactionDurationInMills`).
    pub compaction_duration_ms: i64,
    /// Entries before the run (JSON `preCompactionEntriesCount`).
    pub pre_compaction_entries_count: i64,
    /// Entries after the run (JSON `postCompactionEntriesCount`).
    pub post_compaction_entries_count: i64,
    /// Entries removed (JSON `deletedKeysCount`).
    pub deleted_keys_count: i64,
}
