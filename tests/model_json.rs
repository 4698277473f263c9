//! JSON forms of the model types (BEHAVIOR 1.1, 1.4-1.9; API-5.0 3.5 and the
//! app_metadata_persistence_test entries).

mod model_support;

use at_persistence_secondary_server::model::{
    build_metadata, AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification,
    AtNotificationBuilder, CommitEntry, CommitOp, CompactionStats, HashingAlgo, MessageType,
    NotificationPriority, NotificationStatus, NotificationType, OperationType, PublicKeyHash,
};
use at_persistence_secondary_server::PersistenceError;
use base64::Engine as _;
use model_support::{t, ts};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The field named by an `InvalidJson` error (panics on anything else).
fn invalid_field<T: std::fmt::Debug>(r: Result<T, PersistenceError>) -> String {
    match r {
        Err(PersistenceError::InvalidJson { field, reason }) => {
            assert!(!reason.is_empty(), "empty reason for {field}");
            field
        }
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

const METADATA_KEYS: [&str; 27] = [
    "createdBy",
    "updatedBy",
    "createdAt",
    "updatedAt",
    "availableAt",
    "expiresAt",
    "refreshAt",
    "status",
    "version",
    "ttl",
    "ttb",
    "ttr",
    "ccd",
    "isBinary",
    "isEncrypted",
    "dataSignature",
    "sharedKeyEnc",
    "pubKeyCS",
    "encoding",
    "encKeyName",
    "encAlgo",
    "ivNonce",
    "skeEncKeyName",
    "skeEncAlgo",
    "pubKeyHash",
    "immutable",
    "appMetadata",
];

/// The sample of app_metadata_persistence_test.
fn sample_app_metadata() -> AppMetadata {
    AppMetadata {
        provider_id: "acme_provider".into(),
        additional: Some(json!({"keyId": "k-123", "epoch": 42, "rotated": true}).to_string()),
    }
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
        ttr: Some(3_600),
        refresh_at: Some(ts("2024-01-01T01:00:00Z")),
        is_cascade: Some(true),
        is_binary: Some(false),
        is_encrypted: Some(true),
        data_signature: Some("sig==".into()),
        shared_key_enc: Some("ske==".into()),
        pub_key_cs: Some("cs123".into()),
        encoding: Some("base64".into()),
        enc_key_name: Some("key_1.__shared_keys.wavi".into()),
        enc_algo: Some("AES/SIC/PKCS7Padding".into()),
        iv_nonce: Some("iv==".into()),
        ske_enc_key_name: Some("pk_1.__public_keys.wavi".into()),
        ske_enc_algo: Some("RSA".into()),
        pub_key_hash: Some(PublicKeyHash {
            hash: "abc123".into(),
            algo: HashingAlgo::Sha512,
        }),
        immutable: Some(true),
        app_metadata: Some(sample_app_metadata()),
    }
}

/// The metadata document with every key present (the minimal valid document when the
/// values are null except the two required dates).
fn minimal_doc() -> Value {
    json!({"createdAt": "2024-01-01 00:00:00.000Z", "updatedAt": "2024-01-01 00:00:00.000Z"})
}

fn with(mut doc: Value, key: &str, value: Value) -> Value {
    doc[key] = value;
    doc
}

// ---- AtMetaData: writing -----------------------------------------------------------------

#[test]
fn the_behavior_1_4_example_document_exactly() {
    let new = AtMetaData {
        ttl: Some(60_000),
        ..Default::default()
    };
    let meta = build_metadata("@alice", Some(&new), None, None, t());
    let expected = concat!(
        r#"{"createdBy":"@alice","updatedBy":"@alice","createdAt":"2024-01-01 00:00:00.000Z","#,
        r#""updatedAt":"2024-01-01 00:00:00.000Z","availableAt":null,"#,
        r#""expiresAt":"2024-01-01 00:01:00.000Z","refreshAt":null,"status":"active","version":0,"#,
        r#""ttl":60000,"ttb":null,"ttr":null,"ccd":null,"isBinary":null,"isEncrypted":null,"#,
        r#""dataSignature":null,"sharedKeyEnc":null,"pubKeyCS":null,"encoding":null,"#,
        r#""encKeyName":null,"encAlgo":null,"ivNonce":null,"skeEncKeyName":null,"skeEncAlgo":null,"#,
        r#""pubKeyHash":null,"immutable":null,"appMetadata":null}"#
    );
    assert_eq!(meta.to_json_string(), expected);
    assert_eq!(
        meta.to_json(),
        serde_json::from_str::<Value>(expected).unwrap()
    );
    assert_eq!(AtMetaData::from_json_str(expected).unwrap(), meta);
}

#[test]
fn all_27_keys_in_order_with_every_field_set() {
    let text = full_metadata().to_json_string();
    let mut last = 0;
    for key in METADATA_KEYS {
        let at = text
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} missing in {text}"));
        assert!(at >= last, "{key} out of order in {text}");
        last = at;
    }
    let value = full_metadata().to_json();
    assert_eq!(value.as_object().unwrap().len(), 27);
    assert_eq!(value["ccd"], json!(true));
    assert_eq!(value["isBinary"], json!(false));
    assert_eq!(value["version"], json!(4));
    assert_eq!(value["ttr"], json!(3600));
    assert_eq!(value["createdAt"], json!("2023-06-01 12:00:00.001Z"));
    assert_eq!(
        value["pubKeyHash"],
        json!({"hash": "abc123", "algo": "sha512"})
    );
    assert!(text.contains(r#""pubKeyHash":{"hash":"abc123","algo":"sha512"}"#));
    assert_eq!(value["immutable"], json!(true));
}

#[test]
fn empty_metadata_emits_27_nulls() {
    let value = AtMetaData::default().to_json();
    let obj = value.as_object().unwrap();
    assert_eq!(obj.len(), 27);
    assert!(obj.values().all(Value::is_null));
}

#[test]
fn app_metadata_is_the_flat_at_commons_object() {
    let value = full_metadata().to_json();
    assert_eq!(
        value["appMetadata"],
        json!({"providerId": "acme_provider", "keyId": "k-123", "epoch": 42, "rotated": true})
    );
    let text = full_metadata().to_json_string();
    assert!(
        text.contains(r#""appMetadata":{"providerId":"acme_provider","#),
        "{text}"
    );
    // Without additional entries the object is just the provider.
    let bare = AppMetadata {
        provider_id: "p".into(),
        additional: None,
    };
    assert_eq!(bare.to_json(), json!({"providerId": "p"}));
}

#[test]
fn app_metadata_additional_that_is_not_an_object_is_not_lost() {
    let array = AppMetadata {
        provider_id: "p".into(),
        additional: Some("[1,2]".into()),
    };
    assert_eq!(
        array.to_json(),
        json!({"providerId": "p", "additional": [1, 2]})
    );
    let garbage = AppMetadata {
        provider_id: "p".into(),
        additional: Some("{not json".into()),
    };
    assert_eq!(
        garbage.to_json(),
        json!({"providerId": "p", "additional": "{not json"})
    );
    // An entry named providerId inside additional cannot override the field.
    let clash = AppMetadata {
        provider_id: "p".into(),
        additional: Some(r#"{"providerId":"q","x":1}"#.into()),
    };
    assert_eq!(clash.to_json(), json!({"providerId": "p", "x": 1}));
}

// ---- AtMetaData: round trips -------------------------------------------------------------

#[test]
fn round_trip_all_fields_set() {
    let m = full_metadata();
    assert_eq!(AtMetaData::from_json(&m.to_json()).unwrap(), m);
    assert_eq!(AtMetaData::from_json_str(&m.to_json_string()).unwrap(), m);
}

#[test]
fn round_trip_all_optional_fields_null() {
    let m = build_metadata("@alice", None, None, None, t());
    assert_eq!(AtMetaData::from_json(&m.to_json()).unwrap(), m);
}

#[test]
fn round_trip_zero_durations() {
    let new = AtMetaData {
        ttl: Some(0),
        ttb: Some(0),
        ttr: Some(0),
        ..Default::default()
    };
    let m = build_metadata("@alice", Some(&new), None, None, t());
    assert_eq!(m.available_at, Some(t()));
    let back = AtMetaData::from_json(&m.to_json()).unwrap();
    assert_eq!(back, m);
    assert_eq!((back.ttl, back.ttb, back.ttr), (Some(0), Some(0), Some(0)));
}

#[test]
fn round_trip_app_metadata_and_its_absence() {
    let new = AtMetaData {
        app_metadata: Some(sample_app_metadata()),
        ttl: Some(1_000),
        ..Default::default()
    };
    let m = build_metadata("@alice", Some(&new), None, None, t());
    let back = AtMetaData::from_json(&m.to_json()).unwrap();
    assert_eq!(back.app_metadata, Some(sample_app_metadata()));
    assert_eq!(back, m);
    let none = build_metadata("@alice", None, None, None, t());
    assert_eq!(
        AtMetaData::from_json(&none.to_json()).unwrap().app_metadata,
        None
    );
}

#[test]
fn app_metadata_base64_wire_form_is_accepted() {
    let flat =
        json!({"providerId": "acme_provider", "keyId": "k-123", "epoch": 42, "rotated": true});
    let std_b64 = base64::engine::general_purpose::STANDARD.encode(flat.to_string());
    let url_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(flat.to_string());
    for wire in [std_b64.clone(), url_b64] {
        let doc = with(minimal_doc(), "appMetadata", json!(wire));
        let m = AtMetaData::from_json(&doc).unwrap();
        assert_eq!(m.app_metadata, Some(sample_app_metadata()));
    }
    assert_eq!(
        AppMetadata::from_wire(&std_b64).unwrap(),
        sample_app_metadata()
    );
    let wire = sample_app_metadata().to_wire();
    assert_eq!(
        AppMetadata::from_wire(&wire).unwrap(),
        sample_app_metadata()
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&wire)
        .unwrap();
    let decoded: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(decoded, flat);
    // The object form and the wire form read the same.
    assert_eq!(
        AppMetadata::from_json(&flat).unwrap(),
        sample_app_metadata()
    );
}

#[test]
fn app_metadata_absent_null_or_null_string_is_none() {
    let doc = minimal_doc();
    assert_eq!(AtMetaData::from_json(&doc).unwrap().app_metadata, None);
    for v in [Value::Null, json!("null")] {
        let doc = with(minimal_doc(), "appMetadata", v);
        assert_eq!(AtMetaData::from_json(&doc).unwrap().app_metadata, None);
    }
}

#[test]
fn a_nested_additional_document_is_returned_verbatim() {
    let doc = json!({"providerId": "p", "additional": {"a": 1}});
    let app = AppMetadata::from_json(&doc).unwrap();
    assert_eq!(app.to_json(), doc);
}

// ---- AtMetaData: the tolerant reader ------------------------------------------------------

#[test]
fn null_strings_for_optional_dates_read_as_none() {
    let mut doc = minimal_doc();
    for key in ["expiresAt", "refreshAt", "availableAt"] {
        doc = with(doc, key, json!("null"));
    }
    let m = AtMetaData::from_json(&doc).unwrap();
    assert_eq!(
        (m.expires_at, m.refresh_at, m.available_at),
        (None, None, None)
    );
}

#[test]
fn integers_may_be_strings_and_version_defaults_to_zero() {
    let doc = json!({
        "createdAt": "2024-01-01 00:00:00.000Z",
        "updatedAt": "2024-01-01 00:00:00.000Z",
        "version": "3", "ttl": "60000", "ttb": " -5 ", "ttr": "-1",
    });
    let m = AtMetaData::from_json(&doc).unwrap();
    assert_eq!(
        (m.version, m.ttl, m.ttb, m.ttr),
        (Some(3), Some(60_000), Some(-5), Some(-1))
    );

    let m = AtMetaData::from_json(&minimal_doc()).unwrap();
    assert_eq!(m.version, Some(0), "absent version reads as 0");
    assert_eq!(
        (m.ttl, m.ttb, m.ttr),
        (None, None, None),
        "absent durations read as None"
    );
    let doc = with(
        with(minimal_doc(), "version", Value::Null),
        "ttl",
        Value::Null,
    );
    let m = AtMetaData::from_json(&doc).unwrap();
    assert_eq!((m.version, m.ttl), (Some(0), None));
}

#[test]
fn dates_in_every_dart_form_are_read() {
    for (s, expected) in [
        ("2024-01-01 00:00:00.000Z", t()),
        ("2024-01-01T00:00:00.000Z", t()),
        ("2024-01-01T05:30:00.000+05:30", t()),
        ("2024-01-01T00:00:00.000123Z", t()),
        ("2024-01-01T00:00:00", t()),
        ("2024-01-01T00:00:00.5Z", t().plus_millis(500)),
    ] {
        let doc = with(minimal_doc(), "createdAt", json!(s));
        let doc = with(doc, "expiresAt", json!(s));
        let m = AtMetaData::from_json(&doc).unwrap();
        assert_eq!(m.created_at, Some(expected), "{s}");
        assert_eq!(m.expires_at, Some(expected), "{s}");
    }
}

#[test]
fn booleans_strings_and_pub_key_hash_forms() {
    let doc = json!({
        "createdAt": "2024-01-01 00:00:00.000Z",
        "updatedAt": "2024-01-01 00:00:00.000Z",
        "ccd": "true", "isBinary": false, "isEncrypted": "false", "immutable": true,
        "sharedKeyEnc": "null", "status": "active",
        "pubKeyHash": "{\"hash\":\"h\",\"algo\":\"sha256\"}",
        "someFutureKey": [1, 2, 3],
    });
    let m = AtMetaData::from_json(&doc).unwrap();
    assert_eq!(
        (m.is_cascade, m.is_binary, m.is_encrypted, m.immutable),
        (Some(true), Some(false), Some(false), Some(true))
    );
    assert_eq!(
        m.shared_key_enc.as_deref(),
        Some("null"),
        "strings are taken as is"
    );
    assert_eq!(
        m.pub_key_hash,
        Some(PublicKeyHash {
            hash: "h".into(),
            algo: HashingAlgo::Sha256
        })
    );
    let doc = with(
        minimal_doc(),
        "pubKeyHash",
        json!({"hash": "h2", "algo": "sha512"}),
    );
    let m = AtMetaData::from_json(&doc).unwrap();
    assert_eq!(m.pub_key_hash.unwrap().algo, HashingAlgo::Sha512);
    let doc = with(minimal_doc(), "pubKeyHash", Value::Null);
    assert_eq!(AtMetaData::from_json(&doc).unwrap().pub_key_hash, None);
}

// ---- AtMetaData: typed errors naming the field ---------------------------------------------

#[test]
fn missing_or_null_required_dates_name_the_field() {
    let no_created = json!({"updatedAt": "2024-01-01 00:00:00.000Z"});
    assert_eq!(
        invalid_field(AtMetaData::from_json(&no_created)),
        "createdAt"
    );
    let no_updated = json!({"createdAt": "2024-01-01 00:00:00.000Z"});
    assert_eq!(
        invalid_field(AtMetaData::from_json(&no_updated)),
        "updatedAt"
    );
    let null_created = with(minimal_doc(), "createdAt", Value::Null);
    assert_eq!(
        invalid_field(AtMetaData::from_json(&null_created)),
        "createdAt"
    );
    let null_string = with(minimal_doc(), "updatedAt", json!("null"));
    assert_eq!(
        invalid_field(AtMetaData::from_json(&null_string)),
        "updatedAt"
    );
}

#[test]
fn bad_values_name_the_field() {
    let cases: Vec<(&str, Value)> = vec![
        ("createdAt", json!("yesterday")),
        ("createdAt", json!(1_704_067_200_000i64)),
        ("updatedAt", json!("2024-13-01 00:00:00.000Z")),
        ("expiresAt", json!("2024-02-30T00:00:00Z")),
        ("refreshAt", json!(true)),
        ("availableAt", json!("not a date")),
        ("ttl", json!(1.5)),
        ("ttl", json!("abc")),
        ("ttl", json!(true)),
        ("ttl", json!(18_446_744_073_709_551_615u64)),
        ("ttb", json!("9223372036854775808")),
        ("ttr", json!([1])),
        ("version", json!("x")),
        ("version", json!(2.0)),
        ("ccd", json!(1)),
        ("isBinary", json!("yes")),
        ("isEncrypted", json!({})),
        ("immutable", json!("null")),
        ("dataSignature", json!(5)),
        ("createdBy", json!(["@alice"])),
        ("skeEncAlgo", json!(false)),
    ];
    for (key, bad) in cases {
        let doc = with(minimal_doc(), key, bad.clone());
        assert_eq!(
            invalid_field(AtMetaData::from_json(&doc)),
            key,
            "{key} = {bad}"
        );
    }
}

#[test]
fn bad_nested_values_name_the_nested_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "pubKeyHash",
            json!({"hash": "h", "algo": "md5"}),
            "pubKeyHash.algo",
        ),
        ("pubKeyHash", json!({"algo": "sha256"}), "pubKeyHash.hash"),
        ("pubKeyHash", json!(7), "pubKeyHash"),
        ("pubKeyHash", json!("not json"), "pubKeyHash"),
        ("appMetadata", json!(42), "appMetadata"),
        ("appMetadata", json!("!!! not base64 !!!"), "appMetadata"),
        ("appMetadata", json!(""), "appMetadata"),
        (
            "appMetadata",
            json!({"keyId": "k"}),
            "appMetadata.providerId",
        ),
        (
            "appMetadata",
            json!({"providerId": 3}),
            "appMetadata.providerId",
        ),
        (
            "appMetadata",
            json!(base64::engine::general_purpose::STANDARD.encode("[1,2]")),
            "appMetadata",
        ),
        (
            "appMetadata",
            json!(base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])),
            "appMetadata",
        ),
    ];
    for (key, bad, field) in cases {
        let doc = with(minimal_doc(), key, bad.clone());
        assert_eq!(
            invalid_field(AtMetaData::from_json(&doc)),
            field,
            "{key} = {bad}"
        );
    }
}

#[test]
fn documents_that_are_not_objects_or_not_json() {
    assert_eq!(
        invalid_field(AtMetaData::from_json(&json!([]))),
        "AtMetaData"
    );
    assert_eq!(
        invalid_field(AtMetaData::from_json(&Value::Null)),
        "AtMetaData"
    );
    assert_eq!(
        invalid_field(AtMetaData::from_json_str("{not json")),
        "AtMetaData"
    );
    assert_eq!(invalid_field(AtMetaData::from_json_str("")), "AtMetaData");
    // Deep nesting is refused by the parser, not by a stack overflow.
    let deep = "[".repeat(100_000);
    assert_eq!(
        invalid_field(AtMetaData::from_json_str(&deep)),
        "AtMetaData"
    );
}

// ---- AtData ----------------------------------------------------------------------------------

#[test]
fn at_data_emits_key_only_when_read_from_a_store() {
    let meta = build_metadata("@alice", None, None, None, t());
    let mut d = AtData::with_meta("123", meta.clone());
    let text = d.to_json_string();
    assert!(
        text.starts_with(r#"{"data":"123","metaData":{"createdBy":"@alice""#),
        "{text}"
    );
    assert!(d.to_json().get("key").is_none());
    d.key = Some("phone.wavi@alice".into());
    let text = d.to_json_string();
    assert!(
        text.starts_with(r#"{"key":"phone.wavi@alice","data":"123","metaData":{"#),
        "{text}"
    );
    assert_eq!(d.to_json()["key"], json!("phone.wavi@alice"));
    // from_json never sets a key.
    let back = AtData::from_json(&d.to_json()).unwrap();
    assert_eq!(back.key, None);
    assert_eq!(back.data.as_deref(), Some("123"));
    assert_eq!(back.meta_data, Some(meta));
}

#[test]
fn at_data_without_metadata_emits_null() {
    let d = AtData::new("v");
    assert_eq!(d.to_json_string(), r#"{"data":"v","metaData":null}"#);
    assert_eq!(AtData::from_json(&d.to_json()).unwrap(), d);
    let empty = AtData::default();
    assert_eq!(empty.to_json_string(), r#"{"data":null,"metaData":null}"#);
    assert_eq!(AtData::from_json_str(r#"{}"#).unwrap(), empty);
}

#[test]
fn at_data_errors_name_the_nested_field() {
    let doc = json!({"data": "v", "metaData": {"updatedAt": "2024-01-01 00:00:00.000Z"}});
    assert_eq!(invalid_field(AtData::from_json(&doc)), "metaData.createdAt");
    let doc = json!({"data": "v", "metaData": [1]});
    assert_eq!(invalid_field(AtData::from_json(&doc)), "metaData");
    let doc = json!({"data": 5});
    assert_eq!(invalid_field(AtData::from_json(&doc)), "data");
    assert_eq!(invalid_field(AtData::from_json_str("nope")), "AtData");
}

// ---- CommitEntry -------------------------------------------------------------------------------

#[test]
fn commit_entry_json_form() {
    let e = CommitEntry::new("phone.wavi@alice", CommitOp::Update, t(), 7);
    assert_eq!(
        e.to_json_string(),
        r#"{"atKey":"phone.wavi@alice","operation":"+","opTime":"2024-01-01 00:00:00.000Z","commitId":7}"#
    );
    assert_eq!(CommitEntry::from_json(&e.to_json()).unwrap(), e);
    for (op, symbol) in [
        (CommitOp::Update, "+"),
        (CommitOp::Delete, "-"),
        (CommitOp::UpdateMeta, "#"),
        (CommitOp::UpdateAll, "*"),
    ] {
        let e = CommitEntry::new("k@alice", op, t(), 1);
        assert_eq!(e.to_json()["operation"], json!(symbol));
        assert_eq!(CommitEntry::from_json(&e.to_json()).unwrap().operation, op);
    }
    let no_id = CommitEntry {
        commit_id: None,
        ..e
    };
    assert_eq!(no_id.to_json()["commitId"], Value::Null);
    assert_eq!(CommitEntry::from_json(&no_id.to_json()).unwrap(), no_id);
}

#[test]
fn commit_entry_errors_name_the_field() {
    let good = CommitEntry::new("k@alice", CommitOp::Delete, t(), 3).to_json();
    assert_eq!(
        invalid_field(CommitEntry::from_json(&with(
            good.clone(),
            "operation",
            json!("?")
        ))),
        "operation"
    );
    assert_eq!(
        invalid_field(CommitEntry::from_json(&with(
            good.clone(),
            "opTime",
            json!("null")
        ))),
        "opTime"
    );
    assert_eq!(
        invalid_field(CommitEntry::from_json(&with(
            good.clone(),
            "atKey",
            Value::Null
        ))),
        "atKey"
    );
    assert_eq!(
        invalid_field(CommitEntry::from_json(&with(
            good.clone(),
            "commitId",
            json!("x")
        ))),
        "commitId"
    );
    assert_eq!(
        CommitEntry::from_json(&with(good, "commitId", json!("12")))
            .unwrap()
            .commit_id,
        Some(12)
    );
}

// ---- AccessLogEntry --------------------------------------------------------------------------

#[test]
fn access_log_entry_json_form() {
    let e = AccessLogEntry {
        from_at_sign: Some("@bob".into()),
        request_date_time: Some(ts("2019-03-04T05:06:07.008Z")),
        verb_name: Some("lookup".into()),
        lookup_key: Some("phone@x".into()),
    };
    assert_eq!(
        e.to_json_string(),
        r#"{"fromAtSign":"@bob","requestDateTime":"2019-03-04 05:06:07.008Z","verbName":"lookup","lookupKey":"phone@x"}"#
    );
    assert_eq!(AccessLogEntry::from_json(&e.to_json()).unwrap(), e);
    let empty = AccessLogEntry::default();
    assert_eq!(
        empty.to_json_string(),
        r#"{"fromAtSign":null,"requestDateTime":null,"verbName":null,"lookupKey":null}"#
    );
    assert_eq!(AccessLogEntry::from_json_str("{}").unwrap(), empty);
    let doc = with(e.to_json(), "requestDateTime", json!("soon"));
    assert_eq!(
        invalid_field(AccessLogEntry::from_json(&doc)),
        "requestDateTime"
    );
}

// ---- AtNotification -------------------------------------------------------------------------

fn sample_notification() -> AtNotification {
    AtNotificationBuilder {
        id: "n-1".into(),
        from_at_sign: Some("@alice".into()),
        to_at_sign: Some("@bob".into()),
        notification: Some("@bob:phone.wavi@alice".into()),
        notification_type: Some(NotificationType::SelfNotification),
        op_type: Some(OperationType::Delete),
        at_value: Some("v".into()),
        at_metadata: Some(build_metadata("@alice", None, None, None, t())),
        ..AtNotificationBuilder::new()
    }
    .build_at(t())
}

#[test]
fn notification_json_keys_in_order_with_enums_by_name() {
    let n = sample_notification();
    let text = n.to_json_string();
    let keys = [
        "id",
        "fromAtSign",
        "notificationDateTime",
        "toAtSign",
        "notification",
        "type",
        "opType",
        "messageType",
        "priority",
        "notificationStatus",
        "retryCount",
        "strategy",
        "depth",
        "notifier",
        "expiresAt",
        "atValue",
        "atMetadata",
        "ttl",
    ];
    let mut last = 0;
    for key in keys {
        let at = text
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {text}"));
        assert!(at >= last, "{key} out of order in {text}");
        last = at;
    }
    assert!(text.starts_with(
        r#"{"id":"n-1","fromAtSign":"@alice","notificationDateTime":"2024-01-01 00:00:00.000Z","toAtSign":"@bob","notification":"@bob:phone.wavi@alice","type":"self","opType":"delete","messageType":"key","priority":"low","notificationStatus":"queued","retryCount":1,"strategy":"all","depth":1,"notifier":"system","expiresAt":"2024-01-01 00:15:00.000Z","atValue":"v","atMetadata":{"createdBy":"@alice""#
    ), "{text}");
    assert!(
        text.ends_with(r#""appMetadata":null},"ttl":900000}"#),
        "{text}"
    );
    let v = n.to_json();
    assert_eq!(v.as_object().unwrap().len(), 18);
}

#[test]
fn notification_round_trip_reads_as_stored() {
    let n = sample_notification();
    assert_eq!(AtNotification::from_json(&n.to_json()).unwrap(), n);
    assert_eq!(
        AtNotification::from_json_str(&n.to_json_string()).unwrap(),
        n
    );
    // A stored notification without expiresAt or ttl is read as is (open point 39).
    let bare = json!({"id": "x", "retryCount": 0});
    let read = AtNotification::from_json(&bare).unwrap();
    assert_eq!(
        (read.expires_at, read.ttl, read.notification_date_time),
        (None, None, None)
    );
    assert_eq!((read.priority, read.notification_status), (None, None));
}

#[test]
fn notification_enum_names_in_every_variant_and_dart_to_string_form() {
    for (ty, name) in [
        (NotificationType::Sent, "sent"),
        (NotificationType::Received, "received"),
        (NotificationType::SelfNotification, "self"),
    ] {
        assert_eq!(ty.name(), name);
        assert_eq!(NotificationType::from_name(name), Some(ty));
    }
    for (s, name) in [
        (NotificationStatus::Delivered, "delivered"),
        (NotificationStatus::Errored, "errored"),
        (NotificationStatus::Queued, "queued"),
        (NotificationStatus::Expired, "expired"),
    ] {
        assert_eq!(s.name(), name);
        assert_eq!(NotificationStatus::from_name(name), Some(s));
    }
    for (p, name) in [
        (NotificationPriority::Dummy, "dummy"),
        (NotificationPriority::Low, "low"),
        (NotificationPriority::Medium, "medium"),
        (NotificationPriority::High, "high"),
    ] {
        assert_eq!(p.name(), name);
        assert_eq!(NotificationPriority::from_name(name), Some(p));
    }
    assert_eq!(MessageType::from_name("text"), Some(MessageType::Text));
    assert_eq!(
        OperationType::from_name("update"),
        Some(OperationType::Update)
    );
    let doc = with(
        sample_notification().to_json(),
        "type",
        json!("NotificationType.received"),
    );
    let n = AtNotification::from_json(&doc).unwrap();
    assert_eq!(n.notification_type, Some(NotificationType::Received));
}

#[test]
fn notification_errors_name_the_field() {
    let good = sample_notification().to_json();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("type", json!("broadcast"), "type"),
        ("opType", json!("append"), "opType"),
        ("messageType", json!(1), "messageType"),
        ("priority", json!("urgent"), "priority"),
        ("notificationStatus", json!("lost"), "notificationStatus"),
        ("retryCount", Value::Null, "retryCount"),
        ("retryCount", json!(1.5), "retryCount"),
        ("id", Value::Null, "id"),
        ("expiresAt", json!("later"), "expiresAt"),
        ("notificationDateTime", json!(12), "notificationDateTime"),
        ("ttl", json!("forever"), "ttl"),
        (
            "atMetadata",
            json!({"createdAt": "2024-01-01Z"}),
            "atMetadata.createdAt",
        ),
        (
            "atMetadata",
            json!({"createdAt": "2024-01-01 00:00:00.000Z"}),
            "atMetadata.updatedAt",
        ),
    ];
    for (key, bad, field) in cases {
        let doc = with(good.clone(), key, bad.clone());
        assert_eq!(
            invalid_field(AtNotification::from_json(&doc)),
            field,
            "{key} = {bad}"
        );
    }
    assert_eq!(
        invalid_field(AtNotification::from_json(&json!("x"))),
        "AtNotification"
    );
}

// ---- CompactionStats ---------------------------------------------------------------------------

#[test]
fn compaction_stats_json_form_of_behavior_1_9() {
    let s = CompactionStats {
        at_compaction_type: "AtAccessLog".into(),
        last_compaction_run: ts("2024-01-01T00:00:00.123Z"),
        compaction_duration_ms: 4,
        pre_compaction_entries_count: 4,
        post_compaction_entries_count: 1,
        deleted_keys_count: 3,
    };
    let expected = concat!(
        r#"{"atCompactionType":"AtAccessLog","lastCompactionRun":"2024-01-01 00:00:00.123Z","#,
        r#""compactionDurationInMills":"4","preCompactionEntriesCount":"4","#,
        r#""postCompactionEntriesCount":"1","deletedKeysCount":"3"}"#
    );
    assert_eq!(s.to_json_string(), expected);
    assert!(s
        .to_json()
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_string));
    assert_eq!(CompactionStats::from_json_str(expected).unwrap(), s);
    // Numbers are read too.
    let doc = with(s.to_json(), "deletedKeysCount", json!(3));
    assert_eq!(CompactionStats::from_json(&doc).unwrap(), s);
    let mut doc = s.to_json();
    doc.as_object_mut()
        .unwrap()
        .remove("preCompactionEntriesCount");
    assert_eq!(
        invalid_field(CompactionStats::from_json(&doc)),
        "preCompactionEntriesCount"
    );
    let doc = with(s.to_json(), "lastCompactionRun", json!("x"));
    assert_eq!(
        invalid_field(CompactionStats::from_json(&doc)),
        "lastCompactionRun"
    );
}

#[test]
fn reserved_stats_keys_and_their_stored_forms() {
    use at_persistence_secondary_server::model::*;
    for (key, stored) in [
        (COMMIT_LOG_COMPACTION_KEY, COMMIT_LOG_COMPACTION_KEY_STORED),
        (ACCESS_LOG_COMPACTION_KEY, ACCESS_LOG_COMPACTION_KEY_STORED),
        (
            NOTIFICATION_COMPACTION_KEY,
            NOTIFICATION_COMPACTION_KEY_STORED,
        ),
    ] {
        assert!(key.starts_with("privatekey:"));
        assert_eq!(key.to_lowercase(), stored);
    }
    assert_eq!(
        COMMIT_LOG_COMPACTION_KEY,
        "privatekey:commitLogCompactionStats"
    );
    assert_eq!(
        ACCESS_LOG_COMPACTION_KEY,
        "privatekey:accessLogCompactionStats"
    );
    assert_eq!(
        NOTIFICATION_COMPACTION_KEY,
        "privatekey:notificationCompactionStats"
    );
    assert_eq!(
        [
            COMPACTION_TYPE_COMMIT_LOG,
            COMPACTION_TYPE_ACCESS_LOG,
            COMPACTION_TYPE_NOTIFICATION_KEYSTORE
        ],
        ["AtCommitLog", "AtAccessLog", "AtNotificationKeystore"]
    );
}

// ---- properties ----------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_json_round_trips(m in model_support::json_metadata()) {
        prop_assert_eq!(&AtMetaData::from_json(&m.to_json()).unwrap(), &m);
        prop_assert_eq!(&AtMetaData::from_json_str(&m.to_json_string()).unwrap(), &m);
        // The text and the value carry the same document.
        let reparsed: Value = serde_json::from_str(&m.to_json_string()).unwrap();
        prop_assert_eq!(reparsed, m.to_json());
    }

    #[test]
    fn app_metadata_wire_round_trips(app in model_support::json_app_metadata()) {
        prop_assert_eq!(&AppMetadata::from_wire(&app.to_wire()).unwrap(), &app);
        prop_assert_eq!(&AppMetadata::from_json(&app.to_json()).unwrap(), &app);
    }

    #[test]
    fn at_data_json_round_trips(d in model_support::at_data(model_support::json_metadata())) {
        prop_assert_eq!(&AtData::from_json_str(&d.to_json_string()).unwrap(), &d);
    }

    #[test]
    fn notification_json_round_trips(
        n in model_support::notification(model_support::json_timestamp, model_support::json_metadata())
    ) {
        prop_assert_eq!(&AtNotification::from_json_str(&n.to_json_string()).unwrap(), &n);
    }

    #[test]
    fn entries_and_stats_json_round_trip(
        c in model_support::commit_entry(model_support::json_timestamp),
        a in model_support::access_log_entry(model_support::json_timestamp),
        s in model_support::compaction_stats(model_support::json_timestamp),
    ) {
        prop_assert_eq!(&CommitEntry::from_json_str(&c.to_json_string()).unwrap(), &c);
        prop_assert_eq!(&AccessLogEntry::from_json_str(&a.to_json_string()).unwrap(), &a);
        prop_assert_eq!(&CompactionStats::from_json_str(&s.to_json_string()).unwrap(), &s);
    }

    #[test]
    fn readers_never_panic_on_arbitrary_text(s in any::<String>()) {
        let _ = AtMetaData::from_json_str(&s);
        let _ = AtData::from_json_str(&s);
        let _ = AtNotification::from_json_str(&s);
        let _ = AppMetadata::from_wire(&s);
    }

    #[test]
    fn readers_never_panic_on_arbitrary_field_values(
        key in proptest::sample::select(METADATA_KEYS.to_vec()),
        v in prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            Just(json!([])),
            Just(json!({})),
        ],
    ) {
        let doc = with(minimal_doc(), key, v);
        match AtMetaData::from_json(&doc) {
            Ok(_) => {}
            Err(PersistenceError::InvalidJson { field, .. }) => prop_assert!(field.starts_with(key)),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}
