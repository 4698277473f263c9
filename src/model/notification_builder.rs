//! The notification builder and the expiry rule of notifications (BEHAVIOR 1.7, API-5.0
//! 5.3 and 5.4).

use super::{
    AtMetaData, AtNotification, Clock, MessageType, NotificationPriority, NotificationStatus,
    NotificationType, OperationType, SystemClock, Timestamp,
};

impl AtNotification {
    /// The longest a notification lives: 8 days, in milliseconds (Dart `maxTtl`).
    pub const MAX_TTL_MS: i64 = 8 * 24 * 60 * 60 * 1_000;

    /// The ttl of a notification built without a positive one: 15 minutes, in
    /// milliseconds (Dart `defaultTtl`).
    pub const DEFAULT_TTL_MS: i64 = 15 * 60 * 1_000;

    /// The instant from which this notification counts as expired (API-5.0 5.4).
    ///
    /// The epoch (1970-01-01Z, so always in the past) when the status is
    /// [`NotificationStatus::Expired`] or when `expires_at` or `notification_date_time` is
    /// missing; otherwise the earlier of `expires_at` and
    /// `notification_date_time + MAX_TTL_MS` (a notification never outlives 8 days after
    /// it was made, whatever its `expires_at` says).
    pub fn effective_expiry(&self) -> Timestamp {
        if self.notification_status == Some(NotificationStatus::Expired) {
            return Timestamp::EPOCH;
        }
        match (self.expires_at, self.notification_date_time) {
            (Some(expires_at), Some(made_at)) => {
                expires_at.min(made_at.plus_millis(Self::MAX_TTL_MS))
            }
            _ => Timestamp::EPOCH,
        }
    }

    /// True iff the notification is expired at `now`: `effective_expiry() <= now`.
    ///
    /// This is the crate's one boundary rule (BEHAVIOR conventions): a record whose expiry
    /// instant equals `now` is already expired, so the notification keystore's expired-key
    /// listing and `peek_expired(now)` agree.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.effective_expiry() <= now
    }

    /// [`AtNotification::is_expired_at`] with the system clock.
    pub fn is_expired(&self) -> bool {
        self.is_expired_at(SystemClock.now())
    }
}

/// Builds [`AtNotification`]s with the 5.x defaults and rules (BEHAVIOR 1.7).
///
/// Set the public fields, then call [`AtNotificationBuilder::build_at`] (or
/// [`AtNotificationBuilder::build`] for the system clock). Building does not change the
/// builder; [`AtNotificationBuilder::reset`] restores the defaults (with a fresh id).
///
/// ```
/// use at_persistence_secondary_server::model::{AtNotification, AtNotificationBuilder, Timestamp};
/// let now = Timestamp::from_millis(1_704_067_200_000);
/// let n = AtNotificationBuilder { ttl: Some(0), ..AtNotificationBuilder::new() }.build_at(now);
/// assert_eq!(n.ttl, Some(AtNotification::DEFAULT_TTL_MS));
/// assert_eq!(n.expires_at, Some(now.plus_millis(AtNotification::DEFAULT_TTL_MS)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtNotificationBuilder {
    /// The id (default: a fresh random UUID v4, made when the builder is made or reset).
    pub id: String,
    /// Sender (default `None`).
    pub from_at_sign: Option<String>,
    /// When it was made (default `None`: the build instant).
    pub notification_date_time: Option<Timestamp>,
    /// Recipient (default `None`).
    pub to_at_sign: Option<String>,
    /// The notified key or text (default `None`).
    pub notification: Option<String>,
    /// Direction (default `None`).
    pub notification_type: Option<NotificationType>,
    /// What happened to the key (default `None`).
    pub op_type: Option<OperationType>,
    /// Key or text (default [`MessageType::Key`]).
    pub message_type: Option<MessageType>,
    /// When it expires (default `None`: build instant + ttl). Clamped to at most build
    /// instant + [`AtNotification::MAX_TTL_MS`].
    pub expires_at: Option<Timestamp>,
    /// Priority (default [`NotificationPriority::Low`]).
    pub priority: Option<NotificationPriority>,
    /// Status (default [`NotificationStatus::Queued`]).
    pub notification_status: Option<NotificationStatus>,
    /// Delivery attempts (default 1).
    pub retry_count: i64,
    /// Delivery strategy (default `"all"`).
    pub strategy: Option<String>,
    /// Notifier (default `"system"`).
    pub notifier: Option<String>,
    /// Depth (default 1).
    pub depth: Option<i64>,
    /// The value sent with the notification (default `None`).
    pub at_value: Option<String>,
    /// The metadata sent with the notification (default `None`).
    pub at_metadata: Option<AtMetaData>,
    /// Time to live in milliseconds (default [`AtNotification::DEFAULT_TTL_MS`]). `None`
    /// or a non-positive value builds with the default; larger than
    /// [`AtNotification::MAX_TTL_MS`] builds with the maximum.
    pub ttl: Option<i64>,
}

impl Default for AtNotificationBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AtNotificationBuilder {
    /// A builder with the defaults of BEHAVIOR 1.7 and a fresh UUID v4 id.
    pub fn new() -> Self {
        AtNotificationBuilder {
            id: uuid::Uuid::new_v4().to_string(),
            from_at_sign: None,
            notification_date_time: None,
            to_at_sign: None,
            notification: None,
            notification_type: None,
            op_type: None,
            message_type: Some(MessageType::Key),
            expires_at: None,
            priority: Some(NotificationPriority::Low),
            notification_status: Some(NotificationStatus::Queued),
            retry_count: 1,
            strategy: Some("all".to_owned()),
            notifier: Some("system".to_owned()),
            depth: Some(1),
            at_value: None,
            at_metadata: None,
            ttl: Some(AtNotification::DEFAULT_TTL_MS),
        }
    }

    /// Restores every default, with a fresh id and ttl = 15 minutes.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Builds the notification at `now` (UTC, ms), applying the 5.x rules in order:
    ///
    /// 1. a `None` or non-positive `ttl` becomes [`AtNotification::DEFAULT_TTL_MS`];
    /// 2. `ttl` is clamped to at most [`AtNotification::MAX_TTL_MS`];
    /// 3. a `None` `expires_at` becomes `now + ttl`;
    /// 4. `expires_at` is clamped to at most `now + MAX_TTL_MS`;
    ///
    /// and a `None` `notification_date_time` becomes `now`. Every built notification
    /// therefore has a positive ttl and an `expires_at`.
    pub fn build_at(&self, now: Timestamp) -> AtNotification {
        let ttl = self
            .ttl
            .filter(|&ttl| ttl > 0)
            .unwrap_or(AtNotification::DEFAULT_TTL_MS)
            .min(AtNotification::MAX_TTL_MS);
        let latest = now.plus_millis(AtNotification::MAX_TTL_MS);
        let expires_at = self.expires_at.unwrap_or(now.plus_millis(ttl)).min(latest);
        AtNotification {
            id: self.id.clone(),
            from_at_sign: self.from_at_sign.clone(),
            notification_date_time: Some(self.notification_date_time.unwrap_or(now)),
            to_at_sign: self.to_at_sign.clone(),
            notification: self.notification.clone(),
            notification_type: self.notification_type,
            op_type: self.op_type,
            message_type: self.message_type,
            expires_at: Some(expires_at),
            priority: self.priority,
            notification_status: self.notification_status,
            retry_count: self.retry_count,
            strategy: self.strategy.clone(),
            notifier: self.notifier.clone(),
            depth: self.depth,
            at_value: self.at_value.clone(),
            at_metadata: self.at_metadata.clone(),
            ttl: Some(ttl),
        }
    }

    /// [`AtNotificationBuilder::build_at`] at the system clock's now.
    pub fn build(&self) -> AtNotification {
        self.build_at(SystemClock.now())
    }
}
