//! The notification builder (BEHAVIOR 1.7). STUB: replaced by the model work.
use super::{AtNotification, Timestamp};

/// Builds [`AtNotification`]s with the 5.x defaults.
#[derive(Debug, Clone, Default)]
pub struct AtNotificationBuilder {
    /// The id (default: a fresh UUID v4).
    pub id: Option<String>,
}

impl AtNotificationBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Builds at `now`.
    pub fn build_at(&self, now: Timestamp) -> AtNotification {
        AtNotification {
            id: self
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            from_at_sign: None,
            notification_date_time: Some(now),
            to_at_sign: None,
            notification: None,
            notification_type: None,
            op_type: None,
            message_type: None,
            expires_at: Some(now.plus_millis(900_000)),
            priority: None,
            notification_status: None,
            retry_count: 1,
            strategy: None,
            notifier: None,
            depth: None,
            at_value: None,
            at_metadata: None,
            ttl: Some(900_000),
        }
    }
}
