//! The versioned record codec: golden bytes (the on-disk format must never drift),
//! corrupt input, and round-trip properties.

mod model_support;

use at_persistence_secondary_server::model::codec::{decode, encode, RECORD_FORMAT_V1};
use at_persistence_secondary_server::model::{
    AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification, AtNotificationBuilder,
    CommitEntry, CommitOp, CompactionStats, HashingAlgo, NotificationType, OperationType,
    PublicKeyHash,
};
use at_persistence_secondary_server::PersistenceError;
use model_support::{t, ts};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use std::cell::Cell;
use std::fmt::Debug;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key() -> String {
    "phone.wavi@alice".to_owned()
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PersistenceError> {
    decode(bytes, "keystore", &key)
}

/// Asserts the golden bytes both ways: today's encoding is exactly `golden`, and `golden`
/// decodes to the value.
fn assert_golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T, golden: &str) {
    let encoded = encode(value);
    assert_eq!(
        hex(&encoded),
        golden,
        "the on-disk encoding of {} has changed: a new format byte is required",
        std::any::type_name::<T>()
    );
    assert_eq!(&dec::<T>(&unhex(golden)).unwrap(), value);
}

fn full_metadata() -> AtMetaData {
    AtMetaData {
        created_by: Some("@alice".into()),
        updated_by: Some("@alice".into()),
        created_at: Some(ts("2023-06-01T12:00:00.001Z")),
        updated_at: Some(t()),
        expires_at: Some(ts("2024-01-01T00:01:10Z")),
        status: Some("active".into()),
        version: Some(4),
        available_at: Some(ts("2024-01-01T00:00:10Z")),
        ttb: Some(10_000),
        ttl: Some(60_000),
        ttr: Some(-1),
        refresh_at: Some(ts("2024-01-01T01:00:00Z")),
        is_cascade: Some(true),
        is_binary: Some(false),
        is_encrypted: Some(true),
        data_signature: Some("sig".into()),
        shared_key_enc: Some("ske".into()),
        pub_key_cs: Some("cs".into()),
        encoding: Some("base64".into()),
        enc_key_name: Some("ekn".into()),
        enc_algo: Some("AES".into()),
        iv_nonce: Some("iv".into()),
        ske_enc_key_name: Some("skn".into()),
        ske_enc_algo: Some("RSA".into()),
        pub_key_hash: Some(PublicKeyHash {
            hash: "h".into(),
            algo: HashingAlgo::Sha512,
        }),
        immutable: Some(false),
        app_metadata: Some(AppMetadata {
            provider_id: "acme".into(),
            additional: Some(r#"{"k":1}"#.into()),
        }),
    }
}

fn sample_notification() -> AtNotification {
    AtNotificationBuilder {
        id: "n-1".into(),
        from_at_sign: Some("@alice".into()),
        to_at_sign: Some("@bob".into()),
        notification: Some("@bob:phone.wavi@alice".into()),
        notification_type: Some(NotificationType::Sent),
        op_type: Some(OperationType::Update),
        at_value: Some("v".into()),
        at_metadata: Some(AtMetaData {
            created_at: Some(t()),
            ..Default::default()
        }),
        ..AtNotificationBuilder::new()
    }
    .build_at(t())
}

fn sample_stats() -> CompactionStats {
    CompactionStats {
        at_compaction_type: "AtAccessLog".into(),
        last_compaction_run: ts("2024-01-01T00:00:00.123Z"),
        compaction_duration_ms: 4,
        pre_compaction_entries_count: 4,
        post_compaction_entries_count: 1,
        deleted_keys_count: 3,
    }
}

fn sample_access() -> AccessLogEntry {
    AccessLogEntry {
        from_at_sign: Some("@bob".into()),
        request_date_time: Some(ts("2019-03-04T05:06:07.008Z")),
        verb_name: Some("lookup".into()),
        lookup_key: Some("phone@x".into()),
    }
}

fn sample_commit() -> CommitEntry {
    CommitEntry::new("phone.wavi@alice", CommitOp::UpdateAll, t(), 7)
}

// ---- golden bytes ---------------------------------------------------------------------------
//
// Format 1 as written by this crate. These strings are the on-disk format: they must never
// change. A failure here means a stored type or the bincode options changed; that needs a
// new format byte with a decoder for format 1 kept alongside (see `model::codec`).

const GOLDEN_METADATA_EMPTY: &str = "01000000000000000000000000000000000000000000000000000000";

const GOLDEN_METADATA_FULL: &str = concat!(
    "01",                             // format byte
    "010640616c696365",               // createdBy Some("@alice")
    "010640616c696365",               // updatedBy Some("@alice")
    "01fd0274a8ed10030000",           // createdAt Some(ms, zig-zag, u64 varint)
    "01fd00e8a38419030000",           // updatedAt
    "01fde00aa68419030000",           // expiresAt
    "0106616374697665",               // status Some("active")
    "0108",                           // version Some(4)
    "01fd2036a48419030000",           // availableAt
    "01fb204e",                       // ttb Some(10000)
    "01fcc0d40100",                   // ttl Some(60000)
    "0101",                           // ttr Some(-1) (zig-zag 1)
    "01fd00c5118519030000",           // refreshAt
    "0101",                           // isCascade Some(true)
    "0100",                           // isBinary Some(false)
    "0101",                           // isEncrypted Some(true)
    "0103736967",                     // dataSignature
    "0103736b65",                     // sharedKeyEnc
    "01026373",                       // pubKeyCS
    "0106626173653634",               // encoding
    "0103656b6e",                     // encKeyName
    "0103414553",                     // encAlgo
    "01026976",                       // ivNonce
    "0103736b6e",                     // skeEncKeyName
    "0103525341",                     // skeEncAlgo
    "01016801",                       // pubKeyHash Some{hash "h", algo Sha512}
    "0100",                           // immutable Some(false)
    "010461636d6501077b226b223a317d", // appMetadata Some{"acme", Some("{\"k\":1}")}
);

const GOLDEN_AT_DATA_FULL: &str = concat!(
    "01",         // format byte
    "0103313233", // data Some("123")
    "01",         // metaData Some(...)
    "010640616c696365010640616c69636501fd0274a8ed1003000001fd00e8a3841903000001fde00aa68419",
    "0300000106616374697665010801fd2036a4841903000001fb204e01fcc0d40100010101fd00c511851903",
    "000001010100010101037369670103736b650102637301066261736536340103656b6e0103414553010269",
    "760103736b6e0103525341010168010100010461636d6501077b226b223a317d",
);

const GOLDEN_COMMIT_ENTRY: &str = concat!(
    "01",                                 // format byte
    "1070686f6e652e7761766940616c696365", // atKey "phone.wavi@alice"
    "03",                                 // operation UpdateAll (index 3)
    "fd00e8a38419030000",                 // opTime
    "010e",                               // commitId Some(7)
);

const GOLDEN_ACCESS_LOG_ENTRY: &str =
    "01010440626f6201fd408c308ed202000001066c6f6f6b7570010770686f6e654078";

const GOLDEN_NOTIFICATION: &str = concat!(
    "01",                                               // format byte
    "036e2d31",                                         // id "n-1"
    "010640616c696365",                                 // fromAtSign Some("@alice")
    "01fd00e8a38419030000",                             // notificationDateTime Some(T)
    "010440626f62",                                     // toAtSign Some("@bob")
    "011540626f623a70686f6e652e7761766940616c696365", // notification Some("@bob:phone.wavi@alice")
    "0100",                                           // type Some(Sent)
    "0100",                                           // opType Some(Update)
    "0100",                                           // messageType Some(Key)
    "01fd405fbf8419030000",                           // expiresAt Some(T + 15 min)
    "0101",                                           // priority Some(Low)
    "0102",                                           // notificationStatus Some(Queued)
    "02",                                             // retryCount 1
    "0103616c6c",                                     // strategy Some("all")
    "010673797374656d",                               // notifier Some("system")
    "0102",                                           // depth Some(1)
    "010176",                                         // atValue Some("v")
    "01",                                             // atMetadata Some(AtMetaData {
    "0000",                                           //   createdBy None, updatedBy None
    "01fd00e8a38419030000",                           //   createdAt Some(T)
    "000000000000000000000000000000000000000000000000", //   the other 24 fields None })
    "01fc40771b00",                                   // ttl Some(900000)
);

const GOLDEN_COMPACTION_STATS: &str = "010b41744163636573734c6f67fdf6e8a3841903000008080206";

#[test]
fn golden_metadata_empty() {
    assert_golden(&AtMetaData::default(), GOLDEN_METADATA_EMPTY);
    assert_eq!(
        encode(&AtMetaData::default()).len(),
        1 + 27,
        "one None tag per field"
    );
}

#[test]
fn golden_metadata_full() {
    assert_golden(&full_metadata(), GOLDEN_METADATA_FULL);
}

#[test]
fn golden_at_data_with_full_metadata() {
    assert_golden(
        &AtData::with_meta("123", full_metadata()),
        GOLDEN_AT_DATA_FULL,
    );
}

#[test]
fn golden_commit_entry() {
    assert_golden(&sample_commit(), GOLDEN_COMMIT_ENTRY);
}

#[test]
fn golden_access_log_entry() {
    assert_golden(&sample_access(), GOLDEN_ACCESS_LOG_ENTRY);
}

#[test]
fn golden_notification() {
    assert_golden(&sample_notification(), GOLDEN_NOTIFICATION);
}

#[test]
fn golden_compaction_stats() {
    assert_golden(&sample_stats(), GOLDEN_COMPACTION_STATS);
}

#[test]
fn the_read_key_of_at_data_is_never_stored() {
    let mut d = AtData::with_meta("123", full_metadata());
    d.key = Some("phone.wavi@alice".into());
    assert_eq!(hex(&encode(&d)), GOLDEN_AT_DATA_FULL);
    let back: AtData = dec(&encode(&d)).unwrap();
    assert_eq!(back.key, None);
}

// ---- corrupt records -------------------------------------------------------------------------

/// Asserts a `CorruptRecord` naming the store and the key, and returns its reason.
fn corrupt<T: Debug>(r: Result<T, PersistenceError>) -> String {
    match r {
        Err(PersistenceError::CorruptRecord { store, key, reason }) => {
            assert_eq!(store, "keystore");
            assert_eq!(key, "phone.wavi@alice");
            assert!(!reason.is_empty());
            reason
        }
        other => panic!("expected CorruptRecord, got {other:?}"),
    }
}

#[test]
fn empty_record() {
    let reason = corrupt(dec::<AtData>(&[]));
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn unknown_format_bytes() {
    let payload = &unhex(GOLDEN_COMMIT_ENTRY)[1..];
    for byte in [0u8, 2, 3, 0x7f, 0xff] {
        let mut bytes = vec![byte];
        bytes.extend_from_slice(payload);
        let reason = corrupt(dec::<CommitEntry>(&bytes));
        assert!(reason.contains("format"), "{reason}");
    }
    assert_eq!(RECORD_FORMAT_V1, 1);
}

fn assert_every_prefix_is_corrupt<T: DeserializeOwned + Debug>(golden: &str) {
    let bytes = unhex(golden);
    for len in 0..bytes.len() {
        corrupt(dec::<T>(&bytes[..len]));
    }
}

#[test]
fn every_truncation_is_refused() {
    assert_every_prefix_is_corrupt::<AtData>(GOLDEN_AT_DATA_FULL);
    assert_every_prefix_is_corrupt::<AtMetaData>(GOLDEN_METADATA_EMPTY);
    assert_every_prefix_is_corrupt::<AtNotification>(GOLDEN_NOTIFICATION);
    assert_every_prefix_is_corrupt::<CommitEntry>(GOLDEN_COMMIT_ENTRY);
    assert_every_prefix_is_corrupt::<AccessLogEntry>(GOLDEN_ACCESS_LOG_ENTRY);
    assert_every_prefix_is_corrupt::<CompactionStats>(GOLDEN_COMPACTION_STATS);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = unhex(GOLDEN_COMMIT_ENTRY);
    bytes.push(0);
    corrupt(dec::<CommitEntry>(&bytes));
    let mut bytes = unhex(GOLDEN_METADATA_EMPTY);
    bytes.extend_from_slice(b"junk");
    corrupt(dec::<AtMetaData>(&bytes));
}

#[test]
fn garbage_is_refused() {
    corrupt(dec::<AtData>(&[1, 7, 7, 7, 7]));
    corrupt(dec::<CommitEntry>(b"\x01not a record at all"));
    // A bad Option tag, a bad enum index, invalid UTF-8.
    corrupt(dec::<AtData>(&[1, 2]));
    corrupt(dec::<CommitEntry>(&[1, 1, b'k', 9, 0, 0]));
    corrupt(dec::<AtData>(&[1, 1, 2, 0xff, 0xfe, 0]));
    // A record of another type.
    corrupt(dec::<CommitEntry>(&unhex(GOLDEN_ACCESS_LOG_ENTRY)));
}

#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    // AtData.data = Some(string of length 2^63 - 1), then nothing.
    let mut bytes = vec![RECORD_FORMAT_V1, 1, 0xfd];
    bytes.extend_from_slice(&i64::MAX.to_le_bytes());
    corrupt(dec::<AtData>(&bytes));
    // ... of length u64::MAX, with a few bytes following.
    let mut bytes = vec![RECORD_FORMAT_V1, 1, 0xfd];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(b"abc");
    corrupt(dec::<AtData>(&bytes));
    // A 4 GiB string in the commit entry's atKey.
    let mut bytes = vec![RECORD_FORMAT_V1, 0xfc];
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    corrupt(dec::<CommitEntry>(&bytes));
    // A u128 length marker.
    let mut bytes = vec![RECORD_FORMAT_V1, 1, 0xfe];
    bytes.extend_from_slice(&u128::MAX.to_le_bytes());
    corrupt(dec::<AtData>(&bytes));
}

#[test]
fn the_key_is_rendered_only_for_a_bad_record() {
    let calls = Cell::new(0);
    let render = || {
        calls.set(calls.get() + 1);
        key()
    };
    let ok: CommitEntry = decode(&unhex(GOLDEN_COMMIT_ENTRY), "commit_log", &render).unwrap();
    assert_eq!(ok, sample_commit());
    assert_eq!(calls.get(), 0);
    match decode::<CommitEntry>(&[9], "commit_log", &render) {
        Err(PersistenceError::CorruptRecord { store, key, .. }) => {
            assert_eq!((store, key.as_str()), ("commit_log", "phone.wavi@alice"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.get(), 1);
}

// ---- properties ----------------------------------------------------------------------------------

fn is_corrupt(e: &PersistenceError) -> bool {
    matches!(e, PersistenceError::CorruptRecord { .. })
}

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    value: &T,
) -> Result<(), TestCaseError> {
    let bytes = encode(value);
    prop_assert_eq!(bytes[0], RECORD_FORMAT_V1);
    prop_assert_eq!(&dec::<T>(&bytes).unwrap(), value);
    // Every strict prefix is refused.
    for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        if len < bytes.len() {
            prop_assert!(dec::<T>(&bytes[..len])
                .as_ref()
                .err()
                .is_some_and(is_corrupt));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_round_trips(m in model_support::any_metadata()) {
        round_trips(&m)?;
    }

    #[test]
    fn at_data_round_trips(d in model_support::at_data(model_support::any_metadata())) {
        round_trips(&d)?;
    }

    #[test]
    fn commit_entries_round_trip(e in model_support::commit_entry(model_support::any_timestamp)) {
        round_trips(&e)?;
    }

    #[test]
    fn access_log_entries_round_trip(e in model_support::access_log_entry(model_support::any_timestamp)) {
        round_trips(&e)?;
    }

    #[test]
    fn notifications_round_trip(
        n in model_support::notification(model_support::any_timestamp, model_support::any_metadata())
    ) {
        round_trips(&n)?;
    }

    #[test]
    fn compaction_stats_round_trip(s in model_support::compaction_stats(model_support::any_timestamp)) {
        round_trips(&s)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for r in [
            dec::<AtData>(&bytes).err(),
            dec::<AtMetaData>(&bytes).err(),
            dec::<CommitEntry>(&bytes).err(),
            dec::<AccessLogEntry>(&bytes).err(),
            dec::<AtNotification>(&bytes).err(),
            dec::<CompactionStats>(&bytes).err(),
        ].into_iter().flatten() {
            prop_assert!(is_corrupt(&r), "{:?}", r);
        }
    }

    #[test]
    fn format_one_payloads_of_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut record = vec![RECORD_FORMAT_V1];
        record.extend_from_slice(&bytes);
        let _ = dec::<AtData>(&record);
        let _ = dec::<AtNotification>(&record);
    }

    #[test]
    fn flipping_a_byte_of_a_record_never_panics(
        d in model_support::at_data(model_support::any_metadata()),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let mut bytes = encode(&d);
        let i = at.index(bytes.len());
        bytes[i] = to;
        match dec::<AtData>(&bytes) {
            Ok(_) => {}
            Err(e) => prop_assert!(is_corrupt(&e), "{:?}", e),
        }
    }
}
