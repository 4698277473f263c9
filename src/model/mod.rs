//! Plain data: records, commit entries, access-log entries, notifications, the metadata
//! builder, their JSON forms and the versioned on-disk codec. No I/O, no async.

mod access;
pub mod builder;
pub mod codec;
mod commit;
mod datetime;
pub mod json;
mod metadata;
mod notification;
pub mod notification_builder;
pub mod stats;
mod time;

pub use access::AccessLogEntry;
pub use builder::build_metadata;
pub use commit::{CommitEntry, CommitOp};
pub use metadata::{
    AppMetadata, AssertedTimestamps, AtData, AtMetaData, HashingAlgo, PublicKeyHash,
};
pub use notification::{
    AtNotification, MessageType, NotificationPriority, NotificationStatus, NotificationType,
    OperationType,
};
pub use notification_builder::AtNotificationBuilder;
pub use stats::{
    CompactionStats, ACCESS_LOG_COMPACTION_KEY, ACCESS_LOG_COMPACTION_KEY_STORED,
    COMMIT_LOG_COMPACTION_KEY, COMMIT_LOG_COMPACTION_KEY_STORED, COMPACTION_TYPE_ACCESS_LOG,
    COMPACTION_TYPE_COMMIT_LOG, COMPACTION_TYPE_NOTIFICATION_KEYSTORE, NOTIFICATION_COMPACTION_KEY,
    NOTIFICATION_COMPACTION_KEY_STORED,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
