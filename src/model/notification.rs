//! Notifications and their enumerations (BEHAVIOR 1.7, 1.8).

use super::metadata::AtMetaData;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Delivery status. Declaration order is the storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationStatus {
    /// Delivered to the recipient.
    Delivered,
    /// Delivery failed.
    Errored,
    /// Waiting for delivery.
    Queued,
    /// Expired; treated as expired whatever its dates say.
    Expired,
}

/// Direction of a notification. Declaration order is the storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationType {
    /// Sent by this atSign.
    Sent,
    /// Received from another atSign.
    Received,
    /// Sent by this atSign to itself.
    SelfNotification,
}

/// What the notified key underwent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationType {
    /// The key was updated.
    Update,
    /// The key was deleted.
    Delete,
}

/// Delivery priority. Declaration order is the storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NotificationPriority {
    /// Placeholder value of the Dart enum.
    Dummy,
    /// Low (the default).
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// Whether the notification carries a key or a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    /// A key (the default).
    Key,
    /// Free text.
    Text,
}

/// A stored notification (BEHAVIOR 1.7). Build new ones with
/// [`AtNotificationBuilder`](crate::model::AtNotificationBuilder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtNotification {
    /// Unique id (the store's key).
    pub id: String,
    /// Sender.
    pub from_at_sign: Option<String>,
    /// When it was made.
    pub notification_date_time: Option<Timestamp>,
    /// Recipient.
    pub to_at_sign: Option<String>,
    /// The notified key or text.
    pub notification: Option<String>,
    /// Direction.
    pub notification_type: Option<NotificationType>,
    /// What happened to the key.
    pub op_type: Option<OperationType>,
    /// Key or text.
    pub message_type: Option<MessageType>,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
    /// Priority (mutable).
    pub priority: Option<NotificationPriority>,
    /// Status (mutable).
    pub notification_status: Option<NotificationStatus>,
    /// Delivery attempts (mutable).
    pub retry_count: i64,
    /// Delivery strategy, e.g. `"all"`.
    pub strategy: Option<String>,
    /// Notifier, e.g. `"system"`.
    pub notifier: Option<String>,
    /// Depth.
    pub depth: Option<i64>,
    /// The value that came with the notification.
    pub at_value: Option<String>,
    /// The metadata that came with the notification.
    pub at_metadata: Option<AtMetaData>,
    /// Time to live in milliseconds.
    pub ttl: Option<i64>,
}
