//! Proptest strategies for the model types, and the instants the worked cases use, shared
//! by the `model_*` test files.
#![allow(dead_code)]

use at_persistence_secondary_server::model::{
    AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification, CommitEntry, CommitOp,
    CompactionStats, HashingAlgo, MessageType, NotificationPriority, NotificationStatus,
    NotificationType, OperationType, PublicKeyHash, Timestamp,
};
use proptest::prelude::*;

/// Dart's `DateTime` range: ±8.64e15 ms (±100 000 000 days around the epoch).
pub const DART_MAX_MS: i64 = 8_640_000_000_000_000;

/// The instant `s` names, in any form `Timestamp::parse` reads.
pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// T = 2024-01-01T00:00:00.000Z, the `now` of the worked cases.
pub fn t() -> Timestamp {
    ts("2024-01-01T00:00:00.000Z")
}

/// Any instant an i64 can hold (for the codec, which stores the raw milliseconds).
pub fn any_timestamp() -> BoxedStrategy<Timestamp> {
    any::<i64>().prop_map(Timestamp::from_millis).boxed()
}

/// Instants whose text form reads back (the JSON forms).
pub fn json_timestamp() -> BoxedStrategy<Timestamp> {
    (-DART_MAX_MS..=DART_MAX_MS)
        .prop_map(Timestamp::from_millis)
        .boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof!["[a-z0-9@._:-]{0,20}", any::<String>(),].boxed()
}

pub fn hashing_algo() -> BoxedStrategy<HashingAlgo> {
    prop_oneof![Just(HashingAlgo::Sha256), Just(HashingAlgo::Sha512)].boxed()
}

pub fn pub_key_hash() -> BoxedStrategy<PublicKeyHash> {
    (text(), hashing_algo())
        .prop_map(|(hash, algo)| PublicKeyHash { hash, algo })
        .boxed()
}

/// A JSON value without floats (whose text form may not round-trip exactly).
fn json_leaf() -> BoxedStrategy<serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::String),
    ]
    .boxed()
}

/// `additional` as the JSON reader produces it: `None`, or the compact text of a
/// non-empty object without a `providerId` key.
pub fn json_additional() -> BoxedStrategy<Option<String>> {
    let entry_value = json_leaf().prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..3)
                .prop_map(|m| { serde_json::Value::Object(m.into_iter().collect()) }),
        ]
    });
    opt(
        proptest::collection::btree_map("[a-zA-Z_]{1,10}", entry_value, 1..4)
            .prop_filter("providerId is the field", |m| !m.contains_key("providerId"))
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string()),
    )
}

/// AppMetadata whose JSON form reads back to the same value.
pub fn json_app_metadata() -> BoxedStrategy<AppMetadata> {
    (text(), json_additional())
        .prop_map(|(provider_id, additional)| AppMetadata {
            provider_id,
            additional,
        })
        .boxed()
}

/// Any AppMetadata (the codec stores `additional` as opaque text).
pub fn any_app_metadata() -> BoxedStrategy<AppMetadata> {
    (text(), opt(text()))
        .prop_map(|(provider_id, additional)| AppMetadata {
            provider_id,
            additional,
        })
        .boxed()
}

/// Metadata with every field drawn independently.
pub fn metadata_with(
    ts: fn() -> BoxedStrategy<Timestamp>,
    app: fn() -> BoxedStrategy<AppMetadata>,
) -> BoxedStrategy<AtMetaData> {
    let who = (opt(text()), opt(text()), opt(text()));
    let dates = (opt(ts()), opt(ts()), opt(ts()), opt(ts()), opt(ts()));
    let ints = (
        opt(any::<i64>()),
        opt(any::<i64>()),
        opt(any::<i64>()),
        opt(any::<i64>()),
    );
    let bools = (
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
    );
    let strings = (
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
    );
    let extra = (opt(pub_key_hash()), opt(app()));
    (who, dates, ints, bools, strings, extra)
        .prop_map(
            |(
                (created_by, updated_by, status),
                (created_at, updated_at, expires_at, available_at, refresh_at),
                (version, ttb, ttl, ttr),
                (is_cascade, is_binary, is_encrypted, immutable),
                (
                    data_signature,
                    shared_key_enc,
                    pub_key_cs,
                    encoding,
                    enc_key_name,
                    enc_algo,
                    iv_nonce,
                    ske_enc_key_name,
                    ske_enc_algo,
                ),
                (pub_key_hash, app_metadata),
            )| AtMetaData {
                created_by,
                updated_by,
                created_at,
                updated_at,
                expires_at,
                status,
                version,
                available_at,
                ttb,
                ttl,
                ttr,
                refresh_at,
                is_cascade,
                is_binary,
                is_encrypted,
                data_signature,
                shared_key_enc,
                pub_key_cs,
                encoding,
                enc_key_name,
                enc_algo,
                iv_nonce,
                ske_enc_key_name,
                ske_enc_algo,
                pub_key_hash,
                immutable,
                app_metadata,
            },
        )
        .boxed()
}

/// Any metadata (codec, builder).
pub fn any_metadata() -> BoxedStrategy<AtMetaData> {
    metadata_with(any_timestamp, any_app_metadata)
}

/// Metadata as the builder leaves it, so that the JSON form reads back equal:
/// createdAt, updatedAt and version are always set.
pub fn json_metadata() -> BoxedStrategy<AtMetaData> {
    (
        metadata_with(json_timestamp, json_app_metadata),
        json_timestamp(),
        json_timestamp(),
        any::<i64>(),
    )
        .prop_map(|(mut m, created_at, updated_at, version)| {
            m.created_at = Some(created_at);
            m.updated_at = Some(updated_at);
            m.version = Some(version);
            m
        })
        .boxed()
}

/// AtData as stored (no key: the key is never part of the record).
pub fn at_data(meta: BoxedStrategy<AtMetaData>) -> BoxedStrategy<AtData> {
    (opt(text()), opt(meta))
        .prop_map(|(data, meta_data)| AtData {
            data,
            meta_data,
            key: None,
        })
        .boxed()
}

pub fn commit_op() -> BoxedStrategy<CommitOp> {
    prop_oneof![
        Just(CommitOp::Update),
        Just(CommitOp::Delete),
        Just(CommitOp::UpdateMeta),
        Just(CommitOp::UpdateAll),
    ]
    .boxed()
}

pub fn commit_entry(ts: fn() -> BoxedStrategy<Timestamp>) -> BoxedStrategy<CommitEntry> {
    (text(), commit_op(), ts(), opt(any::<i64>()))
        .prop_map(|(at_key, operation, op_time, commit_id)| CommitEntry {
            at_key,
            operation,
            op_time,
            commit_id,
        })
        .boxed()
}

pub fn access_log_entry(ts: fn() -> BoxedStrategy<Timestamp>) -> BoxedStrategy<AccessLogEntry> {
    (opt(text()), opt(ts()), opt(text()), opt(text()))
        .prop_map(
            |(from_at_sign, request_date_time, verb_name, lookup_key)| AccessLogEntry {
                from_at_sign,
                request_date_time,
                verb_name,
                lookup_key,
            },
        )
        .boxed()
}

pub fn notification(
    ts: fn() -> BoxedStrategy<Timestamp>,
    meta: BoxedStrategy<AtMetaData>,
) -> BoxedStrategy<AtNotification> {
    let ntype = prop_oneof![
        Just(NotificationType::Sent),
        Just(NotificationType::Received),
        Just(NotificationType::SelfNotification),
    ];
    let op = prop_oneof![Just(OperationType::Update), Just(OperationType::Delete)];
    let mtype = prop_oneof![Just(MessageType::Key), Just(MessageType::Text)];
    let prio = prop_oneof![
        Just(NotificationPriority::Dummy),
        Just(NotificationPriority::Low),
        Just(NotificationPriority::Medium),
        Just(NotificationPriority::High),
    ];
    let status = prop_oneof![
        Just(NotificationStatus::Delivered),
        Just(NotificationStatus::Errored),
        Just(NotificationStatus::Queued),
        Just(NotificationStatus::Expired),
    ];
    let a = (text(), opt(text()), opt(ts()), opt(text()), opt(text()));
    let b = (
        opt(ntype),
        opt(op),
        opt(mtype),
        opt(ts()),
        opt(prio),
        opt(status),
    );
    let c = (
        any::<i64>(),
        opt(text()),
        opt(text()),
        opt(any::<i64>()),
        opt(text()),
        opt(meta),
        opt(any::<i64>()),
    );
    (a, b, c)
        .prop_map(
            |(
                (id, from_at_sign, notification_date_time, to_at_sign, notification),
                (
                    notification_type,
                    op_type,
                    message_type,
                    expires_at,
                    priority,
                    notification_status,
                ),
                (retry_count, strategy, notifier, depth, at_value, at_metadata, ttl),
            )| AtNotification {
                id,
                from_at_sign,
                notification_date_time,
                to_at_sign,
                notification,
                notification_type,
                op_type,
                message_type,
                expires_at,
                priority,
                notification_status,
                retry_count,
                strategy,
                notifier,
                depth,
                at_value,
                at_metadata,
                ttl,
            },
        )
        .boxed()
}

pub fn compaction_stats(ts: fn() -> BoxedStrategy<Timestamp>) -> BoxedStrategy<CompactionStats> {
    (
        text(),
        ts(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(t, run, d, pre, post, del)| CompactionStats {
            at_compaction_type: t,
            last_compaction_run: run,
            compaction_duration_ms: d,
            pre_compaction_entries_count: pre,
            post_compaction_entries_count: post,
            deleted_keys_count: del,
        })
        .boxed()
}
