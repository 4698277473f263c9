//! JSON forms of the model types (BEHAVIOR 1.1 and 1.4-1.9).
//!
//! Every type has the same four entry points:
//!
//! * `to_json(&self) -> serde_json::Value`: the document as a value. Its keys are the ones
//!   the spec lists; **their order in the `Value` is serde_json's map order** (sorted,
//!   since this crate does not enable serde_json's `preserve_order` feature; with that
//!   feature it becomes the spec order, because the keys are inserted in that order).
//! * `to_json_string(&self) -> String`: compact JSON text with the keys **in the exact
//!   order of the spec** (for example the 27 metadata keys of BEHAVIOR 1.4).
//! * `from_json(&Value) -> Result<Self>` and `from_json_str(&str) -> Result<Self>`: the
//!   tolerant readers. They never panic; bad input gives
//!   [`PersistenceError::InvalidJson`] whose `field` names the offending key (nested keys
//!   are prefixed, e.g. `metaData.createdAt`).
//!
//! Instants are rendered `YYYY-MM-DD HH:MM:SS.mmmZ` and read in every form
//! [`Timestamp::parse`] accepts. Enumerations are written by their Dart names (`sent`,
//! `received`, `self`, `queued`, ...); the readers also accept Dart's `toString()` form
//! (`NotificationType.sent`).
//!
//! # `appMetadata`
//!
//! [`AppMetadata`] travels as at_commons does it: as a **flat** JSON object holding
//! `providerId` and, beside it, every entry of the provider's `additional` document
//! (`{"providerId":"acme","keyId":"k-123","epoch":42}`), or on the wire as the standard
//! base64 encoding of that object's JSON text. The readers accept both. Reading collects
//! every key other than `providerId` into `additional` (as compact JSON text, `None` when
//! there are none), so a stored document is returned verbatim. Since `additional` is
//! free text in the Rust type, [`AppMetadata::to_json`] documents what it does with text
//! that is not a JSON object.

use super::{
    AccessLogEntry, AppMetadata, AtData, AtMetaData, AtNotification, CommitEntry, CommitOp,
    CompactionStats, HashingAlgo, MessageType, NotificationPriority, NotificationStatus,
    NotificationType, OperationType, PublicKeyHash, Timestamp,
};
use crate::error::{PersistenceError, Result};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;

// ------------------------------------------------------------------------------------
// Writing: an ordered tree, rendered either as text (order kept) or as a Value.
// ------------------------------------------------------------------------------------

/// A JSON document whose object keys keep the order they were pushed in.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    Object(Vec<(Cow<'static, str>, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Node::Leaf(v) => v.serialize(serializer),
            Node::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v,
            Node::Object(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect(),
            ),
        }
    }

    fn to_text(&self) -> String {
        // Serialising strings, numbers and string-keyed maps into a String cannot fail;
        // should it ever, the unordered rendering still carries the same document.
        serde_json::to_string(self).unwrap_or_else(|_| self.clone().into_value().to_string())
    }
}

/// Builds an object node from `(key, node)` pairs.
fn object(entries: Vec<(&'static str, Node)>) -> Node {
    Node::Object(
        entries
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

fn leaf_str(v: Option<&str>) -> Node {
    Node::Leaf(v.map_or(Value::Null, |s| Value::String(s.to_owned())))
}

fn leaf_i64(v: Option<i64>) -> Node {
    Node::Leaf(v.map_or(Value::Null, Value::from))
}

fn leaf_bool(v: Option<bool>) -> Node {
    Node::Leaf(v.map_or(Value::Null, Value::Bool))
}

fn leaf_date(v: Option<Timestamp>) -> Node {
    Node::Leaf(v.map_or(Value::Null, |t| Value::String(t.to_string())))
}

// ------------------------------------------------------------------------------------
// Reading: field access with typed errors.
// ------------------------------------------------------------------------------------

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PersistenceError {
    PersistenceError::InvalidJson {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses JSON text into a value; `doc` names the document in the error.
fn parse_text(text: &str, doc: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| invalid(doc, format!("not valid JSON: {e}")))
}

/// Reads the fields of one JSON object; `prefix` is prepended to field names in errors.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Reader<'a> {
    fn new(value: &'a Value, doc: &str, prefix: &'a str) -> Result<Self> {
        match value {
            Value::Object(obj) => Ok(Reader { obj, prefix }),
            other => Err(invalid(
                if prefix.is_empty() {
                    doc.to_owned()
                } else {
                    prefix.trim_end_matches('.').to_owned()
                },
                format!("expected a JSON object for {doc}, found {}", kind(other)),
            )),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn err(&self, field: &str, reason: impl Into<String>) -> PersistenceError {
        invalid(self.name(field), reason)
    }

    /// The value of `field`, `None` when absent or JSON null.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn date_from(&self, field: &str, s: &str) -> Result<Timestamp> {
        Timestamp::parse(s).map_err(|e| match e {
            PersistenceError::InvalidJson { reason, .. } => self.err(field, reason),
            other => other,
        })
    }

    /// A required date-time string.
    fn required_date(&self, field: &str) -> Result<Timestamp> {
        match self.get(field) {
            None => Err(self.err(field, "required date-time is missing or null")),
            Some(Value::String(s)) => self.date_from(field, s),
            Some(other) => Err(self.err(
                field,
                format!("expected a date-time string, found {}", kind(other)),
            )),
        }
    }

    /// An optional date-time string: absent, null and the string `"null"` are `None`.
    fn opt_date(&self, field: &str) -> Result<Option<Timestamp>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s == "null" => Ok(None),
            Some(Value::String(s)) => self.date_from(field, s).map(Some),
            Some(other) => Err(self.err(
                field,
                format!("expected a date-time string or null, found {}", kind(other)),
            )),
        }
    }

    /// An optional integer: a JSON integer, or a string holding a decimal integer.
    fn opt_int(&self, field: &str) -> Result<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                self.err(
                    field,
                    format!("{n} is not an integer in the 64-bit signed range"),
                )
            }),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
                self.err(
                    field,
                    format!("{s:?} is not a decimal integer in the 64-bit signed range"),
                )
            }),
            Some(other) => {
                Err(self.err(field, format!("expected an integer, found {}", kind(other))))
            }
        }
    }

    /// A required integer (same forms as [`Reader::opt_int`]).
    fn required_int(&self, field: &str) -> Result<i64> {
        self.opt_int(field)?
            .ok_or_else(|| self.err(field, "required integer is missing or null"))
    }

    /// An optional boolean (also the strings `"true"` and `"false"`).
    fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => {
                Err(self.err(field, format!("expected a boolean, found {}", kind(other))))
            }
        }
    }

    /// An optional string, taken as is.
    fn opt_string(&self, field: &str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.err(field, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    /// A required string.
    fn required_string(&self, field: &str) -> Result<String> {
        self.opt_string(field)?
            .ok_or_else(|| self.err(field, "required string is missing or null"))
    }

    /// An optional enum written by name.
    fn opt_enum<E>(
        &self,
        field: &str,
        from_name: fn(&str) -> Option<E>,
        names: &str,
    ) -> Result<Option<E>> {
        match self.opt_string(field)? {
            None => Ok(None),
            Some(s) => {
                // Dart's toString() form is `EnumName.value`.
                let bare = s.rsplit('.').next().unwrap_or(&s);
                from_name(bare)
                    .map(Some)
                    .ok_or_else(|| self.err(field, format!("{s:?} is not one of {names}")))
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Enumerations by name.
// ------------------------------------------------------------------------------------

impl NotificationType {
    /// The Dart name: `sent`, `received` or `self`.
    pub fn name(self) -> &'static str {
        match self {
            NotificationType::Sent => "sent",
            NotificationType::Received => "received",
            NotificationType::SelfNotification => "self",
        }
    }

    /// The value named `name` (see [`NotificationType::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sent" => Some(NotificationType::Sent),
            "received" => Some(NotificationType::Received),
            "self" => Some(NotificationType::SelfNotification),
            _ => None,
        }
    }
}

impl OperationType {
    /// The Dart name: `update` or `delete`.
    pub fn name(self) -> &'static str {
        match self {
            OperationType::Update => "update",
            OperationType::Delete => "delete",
        }
    }

    /// The value named `name` (see [`OperationType::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "update" => Some(OperationType::Update),
            "delete" => Some(OperationType::Delete),
            _ => None,
        }
    }
}

impl MessageType {
    /// The Dart name: `key` or `text`.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Key => "key",
            MessageType::Text => "text",
        }
    }

    /// The value named `name` (see [`MessageType::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "key" => Some(MessageType::Key),
            "text" => Some(MessageType::Text),
            _ => None,
        }
    }
}

impl NotificationPriority {
    /// The Dart name: `dummy`, `low`, `medium` or `high`.
    pub fn name(self) -> &'static str {
        match self {
            NotificationPriority::Dummy => "dummy",
            NotificationPriority::Low => "low",
            NotificationPriority::Medium => "medium",
            NotificationPriority::High => "high",
        }
    }

    /// The value named `name` (see [`NotificationPriority::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "dummy" => Some(NotificationPriority::Dummy),
            "low" => Some(NotificationPriority::Low),
            "medium" => Some(NotificationPriority::Medium),
            "high" => Some(NotificationPriority::High),
            _ => None,
        }
    }
}

impl NotificationStatus {
    /// The Dart name: `delivered`, `errored`, `queued` or `expired`.
    pub fn name(self) -> &'static str {
        match self {
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Errored => "errored",
            NotificationStatus::Queued => "queued",
            NotificationStatus::Expired => "expired",
        }
    }

    /// The value named `name` (see [`NotificationStatus::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "delivered" => Some(NotificationStatus::Delivered),
            "errored" => Some(NotificationStatus::Errored),
            "queued" => Some(NotificationStatus::Queued),
            "expired" => Some(NotificationStatus::Expired),
            _ => None,
        }
    }
}

impl HashingAlgo {
    /// The at_commons name: `sha256` or `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgo::Sha256 => "sha256",
            HashingAlgo::Sha512 => "sha512",
        }
    }

    /// The value named `name` (see [`HashingAlgo::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashingAlgo::Sha256),
            "sha512" => Some(HashingAlgo::Sha512),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------------
// PublicKeyHash and AppMetadata.
// ------------------------------------------------------------------------------------

impl PublicKeyHash {
    fn node(&self) -> Node {
        object(vec![
            ("hash", Node::Leaf(Value::String(self.hash.clone()))),
            (
                "algo",
                Node::Leaf(Value::String(self.algo.name().to_owned())),
            ),
        ])
    }

    /// The at_commons JSON object `{"hash": ..., "algo": "sha256" | "sha512"}`.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Reads the object written by [`PublicKeyHash::to_json`]. Also accepts that object's
    /// JSON text as a string (the form the Dart server sends in `llookup:all` answers).
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming `pubKeyHash.hash` or `pubKeyHash.algo`
    /// (or `pubKeyHash` when the value is not an object).
    pub fn from_json(value: &Value) -> Result<PublicKeyHash> {
        read_pub_key_hash(value, "pubKeyHash")
    }
}

fn read_pub_key_hash(value: &Value, field: &str) -> Result<PublicKeyHash> {
    let parsed;
    let value = match value {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| invalid(field, format!("string is not a JSON object: {e}")))?;
            &parsed
        }
        other => other,
    };
    let prefix = format!("{field}.");
    let r = Reader::new(value, "PublicKeyHash", &prefix)?;
    let hash = r.required_string("hash")?;
    let algo_name = r.required_string("algo")?;
    let algo = HashingAlgo::from_name(&algo_name).ok_or_else(|| {
        r.err(
            "algo",
            format!("{algo_name:?} is not one of sha256, sha512"),
        )
    })?;
    Ok(PublicKeyHash { hash, algo })
}

/// Base64 with the standard alphabet, padding optional on input.
const BASE64_STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 with the URL-safe alphabet, padding optional on input.
const BASE64_URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl AppMetadata {
    fn node(&self) -> Node {
        let mut entries: Vec<(Cow<'static, str>, Node)> = vec![(
            Cow::Borrowed("providerId"),
            Node::Leaf(Value::String(self.provider_id.clone())),
        )];
        if let Some(text) = &self.additional {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => {
                    for (k, v) in map {
                        if k != "providerId" {
                            entries.push((Cow::Owned(k), Node::Leaf(v)));
                        }
                    }
                }
                Ok(other) => entries.push((Cow::Borrowed("additional"), Node::Leaf(other))),
                Err(_) => entries.push((
                    Cow::Borrowed("additional"),
                    Node::Leaf(Value::String(text.clone())),
                )),
            }
        }
        Node::Object(entries)
    }

    /// The flat at_commons JSON object: `providerId` plus every entry of `additional`.
    ///
    /// `additional` is expected to hold a JSON object (which is what
    /// [`AppMetadata::from_json`] produces); its entries are placed beside `providerId`
    /// (an entry named `providerId` inside it is dropped: the field wins). `Some("{}")`
    /// therefore renders like `None`. Text that is some other JSON value, or not JSON at
    /// all, cannot be spread and is emitted under an `additional` key (as the value, or as
    /// a string), so nothing is lost.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// The wire form: the standard base64 encoding of [`AppMetadata::to_json`]'s text
    /// (API-5.0 3.5).
    pub fn to_wire(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.node().to_text())
    }

    /// Reads an `appMetadata` value: a flat JSON object, or the base64 wire form of one.
    /// Every key other than `providerId` is collected into `additional` as compact JSON
    /// text (`None` when there is none).
    ///
    /// Callers that allow the field to be absent map JSON null and `"null"` to `None`
    /// before calling this (as [`AtMetaData::from_json`] does).
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] with field `appMetadata` for anything else, for a
    /// string that is not base64 of a UTF-8 JSON object, and for a missing or non-string
    /// `providerId`.
    pub fn from_json(value: &Value) -> Result<AppMetadata> {
        read_app_metadata(value, "appMetadata")
    }

    /// Reads the base64 wire form written by [`AppMetadata::to_wire`].
    ///
    /// # Errors
    ///
    /// As [`AppMetadata::from_json`].
    pub fn from_wire(wire: &str) -> Result<AppMetadata> {
        read_app_metadata(&Value::String(wire.to_owned()), "appMetadata")
    }
}

fn read_app_metadata(value: &Value, field: &str) -> Result<AppMetadata> {
    match value {
        Value::Object(map) => app_metadata_from_map(map, field),
        Value::String(s) => {
            let trimmed = s.trim();
            let bytes = BASE64_STANDARD_LENIENT
                .decode(trimmed)
                .or_else(|_| BASE64_URL_LENIENT.decode(trimmed))
                .map_err(|e| {
                    invalid(
                        field,
                        format!("string is neither a JSON object nor base64: {e}"),
                    )
                })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid(field, "base64 does not decode to UTF-8 text"))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => app_metadata_from_map(&map, field),
                Ok(other) => Err(invalid(
                    field,
                    format!("base64 decodes to {}, not a JSON object", kind(&other)),
                )),
                Err(e) => Err(invalid(
                    field,
                    format!("base64 does not decode to JSON: {e}"),
                )),
            }
        }
        other => Err(invalid(
            field,
            format!(
                "expected a JSON object or its base64 form, found {}",
                kind(other)
            ),
        )),
    }
}

fn app_metadata_from_map(map: &Map<String, Value>, field: &str) -> Result<AppMetadata> {
    let provider_id = match map.get("providerId") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                format!("{field}.providerId"),
                format!("expected a string, found {}", kind(other)),
            ))
        }
        None => {
            return Err(invalid(
                format!("{field}.providerId"),
                "required string is missing",
            ))
        }
    };
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "providerId")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let additional = (!rest.is_empty()).then(|| Value::Object(rest).to_string());
    Ok(AppMetadata {
        provider_id,
        additional,
    })
}

// ------------------------------------------------------------------------------------
// AtMetaData (BEHAVIOR 1.4).
// ------------------------------------------------------------------------------------

impl AtMetaData {
    fn node(&self) -> Node {
        object(vec![
            ("createdBy", leaf_str(self.created_by.as_deref())),
            ("updatedBy", leaf_str(self.updated_by.as_deref())),
            ("createdAt", leaf_date(self.created_at)),
            ("updatedAt", leaf_date(self.updated_at)),
            ("availableAt", leaf_date(self.available_at)),
            ("expiresAt", leaf_date(self.expires_at)),
            ("refreshAt", leaf_date(self.refresh_at)),
            ("status", leaf_str(self.status.as_deref())),
            ("version", leaf_i64(self.version)),
            ("ttl", leaf_i64(self.ttl)),
            ("ttb", leaf_i64(self.ttb)),
            ("ttr", leaf_i64(self.ttr)),
            ("ccd", leaf_bool(self.is_cascade)),
            ("isBinary", leaf_bool(self.is_binary)),
            ("isEncrypted", leaf_bool(self.is_encrypted)),
            ("dataSignature", leaf_str(self.data_signature.as_deref())),
            ("sharedKeyEnc", leaf_str(self.shared_key_enc.as_deref())),
            ("pubKeyCS", leaf_str(self.pub_key_cs.as_deref())),
            ("encoding", leaf_str(self.encoding.as_deref())),
            ("encKeyName", leaf_str(self.enc_key_name.as_deref())),
            ("encAlgo", leaf_str(self.enc_algo.as_deref())),
            ("ivNonce", leaf_str(self.iv_nonce.as_deref())),
            ("skeEncKeyName", leaf_str(self.ske_enc_key_name.as_deref())),
            ("skeEncAlgo", leaf_str(self.ske_enc_algo.as_deref())),
            (
                "pubKeyHash",
                self.pub_key_hash
                    .as_ref()
                    .map_or(Node::Leaf(Value::Null), PublicKeyHash::node),
            ),
            ("immutable", leaf_bool(self.immutable)),
            (
                "appMetadata",
                self.app_metadata
                    .as_ref()
                    .map_or(Node::Leaf(Value::Null), AppMetadata::node),
            ),
        ])
    }

    /// The metadata JSON document of BEHAVIOR 1.4: all 27 keys, absent values as JSON
    /// null, instants as `YYYY-MM-DD HH:MM:SS.mmmZ` strings, `pubKeyHash` and
    /// `appMetadata` as objects. See the module docs about key order in a `Value`.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the 27 keys in the order of BEHAVIOR 1.4.
    ///
    /// ```
    /// use at_persistence_secondary_server::model::AtMetaData;
    /// let text = AtMetaData::default().to_json_string();
    /// assert!(text.starts_with(r#"{"createdBy":null,"updatedBy":null,"createdAt":null"#));
    /// assert!(text.ends_with(r#""immutable":null,"appMetadata":null}"#));
    /// ```
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads a metadata document, tolerantly (BEHAVIOR 1.4):
    ///
    /// * `createdAt` and `updatedAt` are required date-times;
    /// * `expiresAt`, `refreshAt`, `availableAt`: null, absent or `"null"` → `None`;
    /// * `version`: an integer or a string holding one; null or absent → `0`;
    /// * `ttl`, `ttb`, `ttr`: an integer or a string holding one; null or absent → `None`;
    /// * `ccd`, `isBinary`, `isEncrypted`, `immutable`: booleans (also `"true"`/`"false"`);
    /// * the nine string fields, `createdBy`, `updatedBy` and `status`: strings, as is;
    /// * `pubKeyHash`: null or a PublicKeyHash object (or its JSON text);
    /// * `appMetadata`: null, absent or `"null"` → `None`; else a flat object or its base64
    ///   wire form (see the module docs).
    ///
    /// Unknown keys are ignored.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming the field: a missing required date, a date
    /// that does not parse, a non-integer count, a value of the wrong JSON type. Never
    /// panics.
    pub fn from_json(value: &Value) -> Result<AtMetaData> {
        read_metadata(value, "")
    }

    /// [`AtMetaData::to_json_string`]'s counterpart: parses `text` and reads it with
    /// [`AtMetaData::from_json`].
    ///
    /// # Errors
    ///
    /// As [`AtMetaData::from_json`]; text that is not JSON gives field `AtMetaData`.
    pub fn from_json_str(text: &str) -> Result<AtMetaData> {
        Self::from_json(&parse_text(text, "AtMetaData")?)
    }
}

fn read_metadata(value: &Value, prefix: &str) -> Result<AtMetaData> {
    let r = Reader::new(value, "AtMetaData", prefix)?;
    let pub_key_hash = match r.get("pubKeyHash") {
        None => None,
        Some(Value::String(s)) if s == "null" => None,
        Some(v) => Some(read_pub_key_hash(v, &r.name("pubKeyHash"))?),
    };
    let app_metadata = match r.get("appMetadata") {
        None => None,
        Some(Value::String(s)) if s == "null" => None,
        Some(v) => Some(read_app_metadata(v, &r.name("appMetadata"))?),
    };
    Ok(AtMetaData {
        created_by: r.opt_string("createdBy")?,
        updated_by: r.opt_string("updatedBy")?,
        created_at: Some(r.required_date("createdAt")?),
        updated_at: Some(r.required_date("updatedAt")?),
        expires_at: r.opt_date("expiresAt")?,
        status: r.opt_string("status")?,
        version: Some(r.opt_int("version")?.unwrap_or(0)),
        available_at: r.opt_date("availableAt")?,
        ttb: r.opt_int("ttb")?,
        ttl: r.opt_int("ttl")?,
        ttr: r.opt_int("ttr")?,
        refresh_at: r.opt_date("refreshAt")?,
        is_cascade: r.opt_bool("ccd")?,
        is_binary: r.opt_bool("isBinary")?,
        is_encrypted: r.opt_bool("isEncrypted")?,
        data_signature: r.opt_string("dataSignature")?,
        shared_key_enc: r.opt_string("sharedKeyEnc")?,
        pub_key_cs: r.opt_string("pubKeyCS")?,
        encoding: r.opt_string("encoding")?,
        enc_key_name: r.opt_string("encKeyName")?,
        enc_algo: r.opt_string("encAlgo")?,
        iv_nonce: r.opt_string("ivNonce")?,
        ske_enc_key_name: r.opt_string("skeEncKeyName")?,
        ske_enc_algo: r.opt_string("skeEncAlgo")?,
        pub_key_hash,
        immutable: r.opt_bool("immutable")?,
        app_metadata,
    })
}

// ------------------------------------------------------------------------------------
// AtData (BEHAVIOR 1.1).
// ------------------------------------------------------------------------------------

impl AtData {
    fn node(&self) -> Node {
        let mut entries = Vec::with_capacity(3);
        if let Some(key) = &self.key {
            entries.push(("key", Node::Leaf(Value::String(key.clone()))));
        }
        entries.push(("data", leaf_str(self.data.as_deref())));
        entries.push((
            "metaData",
            self.meta_data
                .as_ref()
                .map_or(Node::Leaf(Value::Null), AtMetaData::node),
        ));
        object(entries)
    }

    /// `{"key"?, "data", "metaData"}`: `key` only when the value was read from a store
    /// (`self.key` is set); `metaData` is the document of [`AtMetaData::to_json`], or JSON
    /// null when absent.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the keys in the order `key`, `data`, `metaData`.
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads `data` (a string or null) and `metaData` (null/absent → `None`, else read by
    /// [`AtMetaData::from_json`]). Any `key` in the document is ignored: a value made from
    /// JSON has no key.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`]; metadata fields are named `metaData.<field>`.
    pub fn from_json(value: &Value) -> Result<AtData> {
        let r = Reader::new(value, "AtData", "")?;
        let meta_data = match r.get("metaData") {
            None => None,
            Some(v) => Some(read_metadata(v, "metaData.")?),
        };
        Ok(AtData {
            data: r.opt_string("data")?,
            meta_data,
            key: None,
        })
    }

    /// Parses `text` and reads it with [`AtData::from_json`].
    ///
    /// # Errors
    ///
    /// As [`AtData::from_json`]; text that is not JSON gives field `AtData`.
    pub fn from_json_str(text: &str) -> Result<AtData> {
        Self::from_json(&parse_text(text, "AtData")?)
    }
}

// ------------------------------------------------------------------------------------
// CommitEntry (BEHAVIOR 1.5).
// ------------------------------------------------------------------------------------

impl CommitEntry {
    fn node(&self) -> Node {
        object(vec![
            ("atKey", Node::Leaf(Value::String(self.at_key.clone()))),
            (
                "operation",
                Node::Leaf(Value::String(self.operation.symbol().to_owned())),
            ),
            (
                "opTime",
                Node::Leaf(Value::String(self.op_time.to_string())),
            ),
            ("commitId", leaf_i64(self.commit_id)),
        ])
    }

    /// `{"atKey": ..., "operation": "+", "opTime": "2024-01-01 00:00:00.000Z",
    /// "commitId": 7}`: the operation by its symbol, `commitId` null when absent. (Dart
    /// renders a missing opTime as the string `"null"`; here `op_time` is always set.)
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the keys in the order `atKey`, `operation`, `opTime`,
    /// `commitId`.
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads the document of [`CommitEntry::to_json`]. `atKey`, `operation` (one of `+`,
    /// `-`, `#`, `*`) and `opTime` are required; `commitId` may be null or a string
    /// holding an integer.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming the field.
    pub fn from_json(value: &Value) -> Result<CommitEntry> {
        let r = Reader::new(value, "CommitEntry", "")?;
        let symbol = r.required_string("operation")?;
        let operation = CommitOp::from_symbol(&symbol).ok_or_else(|| {
            r.err(
                "operation",
                format!("{symbol:?} is not one of \"+\", \"-\", \"#\", \"*\""),
            )
        })?;
        Ok(CommitEntry {
            at_key: r.required_string("atKey")?,
            operation,
            op_time: r.required_date("opTime")?,
            commit_id: r.opt_int("commitId")?,
        })
    }

    /// Parses `text` and reads it with [`CommitEntry::from_json`].
    ///
    /// # Errors
    ///
    /// As [`CommitEntry::from_json`]; text that is not JSON gives field `CommitEntry`.
    pub fn from_json_str(text: &str) -> Result<CommitEntry> {
        Self::from_json(&parse_text(text, "CommitEntry")?)
    }
}

// ------------------------------------------------------------------------------------
// AccessLogEntry (BEHAVIOR 1.6).
// ------------------------------------------------------------------------------------

impl AccessLogEntry {
    fn node(&self) -> Node {
        object(vec![
            ("fromAtSign", leaf_str(self.from_at_sign.as_deref())),
            ("requestDateTime", leaf_date(self.request_date_time)),
            ("verbName", leaf_str(self.verb_name.as_deref())),
            ("lookupKey", leaf_str(self.lookup_key.as_deref())),
        ])
    }

    /// `{"fromAtSign", "requestDateTime", "verbName", "lookupKey"}`, absent values null.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the keys in the order above.
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads the document of [`AccessLogEntry::to_json`]; every field may be null or
    /// absent (`requestDateTime` also `"null"`).
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming the field.
    pub fn from_json(value: &Value) -> Result<AccessLogEntry> {
        let r = Reader::new(value, "AccessLogEntry", "")?;
        Ok(AccessLogEntry {
            from_at_sign: r.opt_string("fromAtSign")?,
            request_date_time: r.opt_date("requestDateTime")?,
            verb_name: r.opt_string("verbName")?,
            lookup_key: r.opt_string("lookupKey")?,
        })
    }

    /// Parses `text` and reads it with [`AccessLogEntry::from_json`].
    ///
    /// # Errors
    ///
    /// As [`AccessLogEntry::from_json`]; text that is not JSON gives field
    /// `AccessLogEntry`.
    pub fn from_json_str(text: &str) -> Result<AccessLogEntry> {
        Self::from_json(&parse_text(text, "AccessLogEntry")?)
    }
}

// ------------------------------------------------------------------------------------
// AtNotification (BEHAVIOR 1.7).
// ------------------------------------------------------------------------------------

impl AtNotification {
    fn node(&self) -> Node {
        let name = |n: Option<&'static str>| leaf_str(n);
        object(vec![
            ("id", Node::Leaf(Value::String(self.id.clone()))),
            ("fromAtSign", leaf_str(self.from_at_sign.as_deref())),
            (
                "notificationDateTime",
                leaf_date(self.notification_date_time),
            ),
            ("toAtSign", leaf_str(self.to_at_sign.as_deref())),
            ("notification", leaf_str(self.notification.as_deref())),
            (
                "type",
                name(self.notification_type.map(NotificationType::name)),
            ),
            ("opType", name(self.op_type.map(OperationType::name))),
            (
                "messageType",
                name(self.message_type.map(MessageType::name)),
            ),
            (
                "priority",
                name(self.priority.map(NotificationPriority::name)),
            ),
            (
                "notificationStatus",
                name(self.notification_status.map(NotificationStatus::name)),
            ),
            ("retryCount", leaf_i64(Some(self.retry_count))),
            ("strategy", leaf_str(self.strategy.as_deref())),
            ("depth", leaf_i64(self.depth)),
            ("notifier", leaf_str(self.notifier.as_deref())),
            ("expiresAt", leaf_date(self.expires_at)),
            ("atValue", leaf_str(self.at_value.as_deref())),
            (
                "atMetadata",
                self.at_metadata
                    .as_ref()
                    .map_or(Node::Leaf(Value::Null), AtMetaData::node),
            ),
            ("ttl", leaf_i64(self.ttl)),
        ])
    }

    /// The 18 keys of BEHAVIOR 1.7 (`id`, `fromAtSign`, `notificationDateTime`,
    /// `toAtSign`, `notification`, `type`, `opType`, `messageType`, `priority`,
    /// `notificationStatus`, `retryCount`, `strategy`, `depth`, `notifier`, `expiresAt`,
    /// `atValue`, `atMetadata`, `ttl`); instants rendered as in BEHAVIOR 1.4, enums by
    /// name, `atMetadata` the metadata document or null.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the keys in the order above.
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads the document of [`AtNotification::to_json`] **as stored**: no default is
    /// applied and nothing is recomputed (BEHAVIOR open point 39). `id` (a string) and
    /// `retryCount` (an integer) are required; everything else may be null or absent.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming the field (`atMetadata.<field>` inside the
    /// metadata); an unknown enum name is an error.
    pub fn from_json(value: &Value) -> Result<AtNotification> {
        let r = Reader::new(value, "AtNotification", "")?;
        let at_metadata = match r.get("atMetadata") {
            None => None,
            Some(v) => Some(read_metadata(v, "atMetadata.")?),
        };
        Ok(AtNotification {
            id: r.required_string("id")?,
            from_at_sign: r.opt_string("fromAtSign")?,
            notification_date_time: r.opt_date("notificationDateTime")?,
            to_at_sign: r.opt_string("toAtSign")?,
            notification: r.opt_string("notification")?,
            notification_type: r.opt_enum(
                "type",
                NotificationType::from_name,
                "sent, received, self",
            )?,
            op_type: r.opt_enum("opType", OperationType::from_name, "update, delete")?,
            message_type: r.opt_enum("messageType", MessageType::from_name, "key, text")?,
            expires_at: r.opt_date("expiresAt")?,
            priority: r.opt_enum(
                "priority",
                NotificationPriority::from_name,
                "dummy, low, medium, high",
            )?,
            notification_status: r.opt_enum(
                "notificationStatus",
                NotificationStatus::from_name,
                "delivered, errored, queued, expired",
            )?,
            retry_count: r.required_int("retryCount")?,
            strategy: r.opt_string("strategy")?,
            notifier: r.opt_string("notifier")?,
            depth: r.opt_int("depth")?,
            at_value: r.opt_string("atValue")?,
            at_metadata,
            ttl: r.opt_int("ttl")?,
        })
    }

    /// Parses `text` and reads it with [`AtNotification::from_json`].
    ///
    /// # Errors
    ///
    /// As [`AtNotification::from_json`]; text that is not JSON gives field
    /// `AtNotification`.
    pub fn from_json_str(text: &str) -> Result<AtNotification> {
        Self::from_json(&parse_text(text, "AtNotification")?)
    }
}

// ------------------------------------------------------------------------------------
// CompactionStats (BEHAVIOR 1.9).
// ------------------------------------------------------------------------------------

impl CompactionStats {
    fn node(&self) -> Node {
        let s = |v: String| Node::Leaf(Value::String(v));
        object(vec![
            ("atCompactionType", s(self.at_compaction_type.clone())),
            ("lastCompactionRun", s(self.last_compaction_run.to_string())),
            (
                "compactionDurationInMills",
                s(self.compaction_duration_ms.to_string()),
            ),
            (
                "preCompactionEntriesCount",
                s(self.pre_compaction_entries_count.to_string()),
            ),
            (
                "postCompactionEntriesCount",
                s(self.post_compaction_entries_count.to_string()),
            ),
            ("deletedKeysCount", s(self.deleted_keys_count.to_string())),
        ])
    }

    /// The six-key document of BEHAVIOR 1.9, every value a string.
    pub fn to_json(&self) -> Value {
        self.node().into_value()
    }

    /// Compact JSON text with the six keys in the order of BEHAVIOR 1.9.
    pub fn to_json_string(&self) -> String {
        self.node().to_text()
    }

    /// Reads the document of [`CompactionStats::to_json`]. All six keys are required; the
    /// counts may also be JSON integers.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] naming the field.
    pub fn from_json(value: &Value) -> Result<CompactionStats> {
        let r = Reader::new(value, "CompactionStats", "")?;
        Ok(CompactionStats {
            at_compaction_type: r.required_string("atCompactionType")?,
            last_compaction_run: r.required_date("lastCompactionRun")?,
            compaction_duration_ms: r.required_int("compactionDurationInMills")?,
            pre_compaction_entries_count: r.required_int("preCompactionEntriesCount")?,
            post_compaction_entries_count: r.required_int("postCompactionEntriesCount")?,
            deleted_keys_count: r.required_int("deletedKeysCount")?,
        })
    }

    /// Parses `text` and reads it with [`CompactionStats::from_json`].
    ///
    /// # Errors
    ///
    /// As [`CompactionStats::from_json`]; text that is not JSON gives field
    /// `CompactionStats`.
    pub fn from_json_str(text: &str) -> Result<CompactionStats> {
        Self::from_json(&parse_text(text, "CompactionStats")?)
    }
}
