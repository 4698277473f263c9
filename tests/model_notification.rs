//! The notification builder and effective expiry (BEHAVIOR 1.7, API-5.0 5.3-5.4,
//! min_max_first_class_test).

mod model_support;

use at_persistence_secondary_server::model::{
    AtNotification, AtNotificationBuilder, Clock, MessageType, NotificationPriority,
    NotificationStatus, SystemClock, Timestamp,
};
use proptest::prelude::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn now() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00.000Z").unwrap()
}

fn builder() -> AtNotificationBuilder {
    AtNotificationBuilder::new()
}

#[test]
fn constants() {
    assert_eq!(AtNotification::MAX_TTL_MS, 691_200_000);
    assert_eq!(AtNotification::MAX_TTL_MS, 8 * DAY);
    assert_eq!(AtNotification::DEFAULT_TTL_MS, 900_000);
    assert_eq!(AtNotification::DEFAULT_TTL_MS, 15 * MINUTE);
}

#[test]
fn builder_defaults() {
    let b = builder();
    let id = uuid::Uuid::parse_str(&b.id).expect("the id is a UUID");
    assert_eq!(id.get_version(), Some(uuid::Version::Random));
    assert_ne!(b.id, builder().id, "every builder gets a fresh id");
    assert_eq!(b.message_type, Some(MessageType::Key));
    assert_eq!(b.priority, Some(NotificationPriority::Low));
    assert_eq!(b.notification_status, Some(NotificationStatus::Queued));
    assert_eq!(b.retry_count, 1);
    assert_eq!(b.strategy.as_deref(), Some("all"));
    assert_eq!(b.notifier.as_deref(), Some("system"));
    assert_eq!(b.depth, Some(1));
    assert_eq!(b.ttl, Some(900_000));
    assert_eq!(
        (
            &b.from_at_sign,
            &b.to_at_sign,
            &b.notification,
            &b.at_value,
            &b.at_metadata
        ),
        (&None, &None, &None, &None, &None)
    );
    assert_eq!((b.notification_type, b.op_type), (None, None));
    assert_eq!((b.expires_at, b.notification_date_time), (None, None));
    assert_eq!(AtNotificationBuilder::default().ttl, Some(900_000));
}

#[test]
fn default_build_expires_fifteen_minutes_after_now() {
    let b = builder();
    let n = b.build_at(now());
    assert_eq!(n.id, b.id);
    assert_eq!(n.notification_date_time, Some(now()));
    assert_eq!(n.ttl, Some(900_000));
    assert_eq!(n.expires_at, Some(now().plus_millis(15 * MINUTE)));
    assert_eq!(n.message_type, Some(MessageType::Key));
    assert_eq!(n.priority, Some(NotificationPriority::Low));
    assert_eq!(n.notification_status, Some(NotificationStatus::Queued));
    assert_eq!(n.retry_count, 1);
    assert_eq!(n.strategy.as_deref(), Some("all"));
    assert_eq!(n.notifier.as_deref(), Some("system"));
    assert_eq!(n.depth, Some(1));
}

#[test]
fn build_with_the_system_clock() {
    let before = SystemClock.now();
    let n = builder().build();
    let after = SystemClock.now();
    let made = n.notification_date_time.unwrap();
    assert!(before <= made && made <= after);
    assert_eq!(n.expires_at, Some(made.plus_millis(15 * MINUTE)));
    assert!(!n.is_expired());
}

#[test]
fn zero_negative_or_missing_ttl_becomes_the_default() {
    for ttl in [Some(0), Some(-1), Some(i64::MIN), None] {
        let n = AtNotificationBuilder { ttl, ..builder() }.build_at(now());
        assert_eq!(n.ttl, Some(900_000), "ttl {ttl:?}");
        assert_eq!(
            n.expires_at,
            Some(now().plus_millis(900_000)),
            "ttl {ttl:?}"
        );
    }
}

#[test]
fn ttl_is_clamped_to_eight_days() {
    let n = AtNotificationBuilder {
        ttl: Some(10 * DAY),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.ttl, Some(691_200_000));
    assert_eq!(n.expires_at, Some(now().plus_millis(8 * DAY)));
    let n = AtNotificationBuilder {
        ttl: Some(i64::MAX),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.ttl, Some(AtNotification::MAX_TTL_MS));
    // Exactly the maximum is kept.
    let n = AtNotificationBuilder {
        ttl: Some(8 * DAY),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.ttl, Some(8 * DAY));
}

#[test]
fn supplied_expires_at_is_clamped_to_now_plus_eight_days() {
    let far = AtNotificationBuilder {
        expires_at: Some(now().plus_millis(30 * DAY)),
        ..builder()
    }
    .build_at(now());
    assert_eq!(far.expires_at, Some(now().plus_millis(8 * DAY)));
    let near = AtNotificationBuilder {
        expires_at: Some(now().plus_millis(HOUR)),
        ttl: Some(MINUTE),
        ..builder()
    }
    .build_at(now());
    assert_eq!(
        near.expires_at,
        Some(now().plus_millis(HOUR)),
        "a supplied expiresAt wins over ttl"
    );
    assert_eq!(near.ttl, Some(MINUTE));
    let past = AtNotificationBuilder {
        expires_at: Some(now().minus_millis(HOUR)),
        ..builder()
    }
    .build_at(now());
    assert_eq!(past.expires_at, Some(now().minus_millis(HOUR)));
    assert!(past.is_expired_at(now()));
}

#[test]
fn supplied_notification_date_time_is_kept() {
    let made = now().minus_millis(HOUR);
    let n = AtNotificationBuilder {
        notification_date_time: Some(made),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.notification_date_time, Some(made));
    // Expiry is computed from the build instant, not from notificationDateTime.
    assert_eq!(n.expires_at, Some(now().plus_millis(15 * MINUTE)));
}

#[test]
fn expiry_examples_of_behavior_1_7() {
    let short = AtNotificationBuilder {
        ttl: Some(100),
        ..builder()
    }
    .build_at(now());
    assert!(short.is_expired_at(now().plus_millis(200)));
    let longer = AtNotificationBuilder {
        ttl: Some(500),
        ..builder()
    }
    .build_at(now());
    assert!(!longer.is_expired_at(now().plus_millis(50)));
}

#[test]
fn expired_status_is_expired_whatever_expires_at_says() {
    let n = AtNotificationBuilder {
        notification_status: Some(NotificationStatus::Expired),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.effective_expiry(), Timestamp::EPOCH);
    assert!(n.is_expired_at(now()));
    assert!(n.is_expired());
}

#[test]
fn notification_older_than_eight_days_is_expired() {
    let n = AtNotificationBuilder {
        notification_date_time: Some(now().minus_millis(9 * DAY)),
        expires_at: Some(now().plus_millis(HOUR)),
        ..builder()
    }
    .build_at(now());
    assert_eq!(n.effective_expiry(), now().minus_millis(DAY));
    assert!(n.is_expired_at(now()));
}

#[test]
fn missing_dates_make_the_effective_expiry_the_epoch() {
    let built = builder().build_at(now());
    let no_expiry = AtNotification {
        expires_at: None,
        ..built.clone()
    };
    assert_eq!(no_expiry.effective_expiry(), Timestamp::EPOCH);
    assert!(no_expiry.is_expired_at(now()));
    let no_date = AtNotification {
        notification_date_time: None,
        ..built.clone()
    };
    assert_eq!(no_date.effective_expiry(), Timestamp::EPOCH);
    // The epoch itself is expired at the epoch (the boundary rule), and so before it is not.
    assert!(no_date.is_expired_at(Timestamp::EPOCH));
    assert!(!no_date.is_expired_at(Timestamp::EPOCH.minus_millis(1)));
}

#[test]
fn effective_expiry_is_the_earlier_of_the_two_limits() {
    let built = builder().build_at(now());
    assert_eq!(built.effective_expiry(), now().plus_millis(15 * MINUTE));
    let capped = AtNotification {
        expires_at: Some(now().plus_millis(20 * DAY)),
        ..built
    };
    assert_eq!(capped.effective_expiry(), now().plus_millis(8 * DAY));
}

#[test]
fn expiry_boundary_equal_to_now_is_expired() {
    let n = builder().build_at(now());
    let e = n.effective_expiry();
    assert!(n.is_expired_at(e), "effective expiry == now is expired");
    assert!(!n.is_expired_at(e.minus_millis(1)));
    assert!(n.is_expired_at(e.plus_millis(1)));
}

#[test]
fn building_does_not_change_the_builder_and_reset_restores_defaults() {
    let mut b = AtNotificationBuilder {
        ttl: Some(0),
        from_at_sign: Some("@alice".into()),
        notification_status: Some(NotificationStatus::Delivered),
        retry_count: 5,
        ..builder()
    };
    let copy = b.clone();
    let first = b.build_at(now());
    assert_eq!(b, copy, "build_at takes &self and changes nothing");
    let second = b.build_at(now());
    assert_eq!(first, second);
    let old_id = b.id.clone();
    b.reset();
    let fresh = builder();
    assert_ne!(b.id, old_id, "reset makes a fresh id");
    assert_eq!(
        AtNotificationBuilder {
            id: fresh.id.clone(),
            ..b
        },
        fresh
    );
}

proptest! {
    #[test]
    fn every_built_notification_has_a_positive_clamped_ttl_and_an_expiry(
        ttl in proptest::option::of(any::<i64>()),
        expires_at in proptest::option::of(model_support::any_timestamp()),
        now in -DAY * 365 * 10_000..DAY * 365 * 10_000,
    ) {
        let now = Timestamp::from_millis(now);
        let n = AtNotificationBuilder { ttl, expires_at, ..AtNotificationBuilder::new() }.build_at(now);
        let built_ttl = n.ttl.unwrap();
        prop_assert!(built_ttl > 0 && built_ttl <= AtNotification::MAX_TTL_MS);
        let e = n.expires_at.unwrap();
        prop_assert!(e <= now.plus_millis(AtNotification::MAX_TTL_MS));
        if expires_at.is_none() {
            prop_assert_eq!(e, now.plus_millis(built_ttl));
        }
        prop_assert!(n.effective_expiry() <= now.plus_millis(AtNotification::MAX_TTL_MS));
        prop_assert_eq!(n.is_expired_at(now), n.effective_expiry() <= now);
    }
}
