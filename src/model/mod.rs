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
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
