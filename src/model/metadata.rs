//! `AtData`, `AtMetaData` and the small value types they carry.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The hashing algorithm of a [`PublicKeyHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashingAlgo {
    /// SHA-256 (`"sha256"` in JSON).
    Sha256,
    /// SHA-512 (`"sha512"` in JSON).
    Sha512,
}

/// The hash of the recipient's public key a shared value was encrypted for (5.x field
/// `pubKeyHash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKeyHash {
    /// The hash, as the client computed it.
    pub hash: String,
    /// The algorithm used.
    pub algo: HashingAlgo,
}

/// Opaque provider metadata (5.x field `appMetadata`), stored and returned verbatim.
///
/// `additional` holds the provider's JSON document as text; it is parsed only at the JSON
/// boundary (bincode cannot carry a free-form JSON value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppMetadata {
    /// The provider that owns this metadata.
    pub provider_id: String,
    /// The provider's JSON document, as text (`None` when absent).
    pub additional: Option<String>,
}

/// The metadata of a keystore record: the 24 fields of the 3.x model plus the 5.x fields
/// `pub_key_hash`, `immutable` and `app_metadata` (BEHAVIOR 1.2).
///
/// Every field is optional. Writes through the keystore stamp the fields the metadata
/// builder owns ([`crate::model::build_metadata`]); the rest are the caller's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AtMetaData {
    /// Who created the record (JSON `createdBy`).
    pub created_by: Option<String>,
    /// Who last updated it (JSON `updatedBy`).
    pub updated_by: Option<String>,
    /// When it was created (JSON `createdAt`).
    pub created_at: Option<Timestamp>,
    /// When it was last updated (JSON `updatedAt`).
    pub updated_at: Option<Timestamp>,
    /// When it expires (JSON `expiresAt`).
    pub expires_at: Option<Timestamp>,
    /// Always `"active"` after a keystore write (JSON `status`).
    pub status: Option<String>,
    /// 0 for a new record, +1 per update (JSON `version`).
    pub version: Option<i64>,
    /// When it becomes visible (JSON `availableAt`).
    pub available_at: Option<Timestamp>,
    /// Time to birth in milliseconds (JSON `ttb`).
    pub ttb: Option<i64>,
    /// Time to live in milliseconds (JSON `ttl`).
    pub ttl: Option<i64>,
    /// Time to refresh in seconds; -1 caches forever (JSON `ttr`).
    pub ttr: Option<i64>,
    /// When a cached copy should be refreshed (JSON `refreshAt`).
    pub refresh_at: Option<Timestamp>,
    /// Cascade delete (JSON `ccd`).
    pub is_cascade: Option<bool>,
    /// The value is binary (JSON `isBinary`).
    pub is_binary: Option<bool>,
    /// The value is encrypted (JSON `isEncrypted`).
    pub is_encrypted: Option<bool>,
    /// Signature of public data (JSON `dataSignature`).
    pub data_signature: Option<String>,
    /// The shared key, encrypted (JSON `sharedKeyEnc`).
    pub shared_key_enc: Option<String>,
    /// Checksum of the recipient's public key (JSON `pubKeyCS`).
    pub pub_key_cs: Option<String>,
    /// Value encoding (JSON `encoding`).
    pub encoding: Option<String>,
    /// Name of the encrypting key (JSON `encKeyName`).
    pub enc_key_name: Option<String>,
    /// Encryption algorithm (JSON `encAlgo`).
    pub enc_algo: Option<String>,
    /// IV or nonce (JSON `ivNonce`).
    pub iv_nonce: Option<String>,
    /// Name of the key that encrypted the shared key (JSON `skeEncKeyName`).
    pub ske_enc_key_name: Option<String>,
    /// Algorithm that encrypted the shared key (JSON `skeEncAlgo`).
    pub ske_enc_algo: Option<String>,
    /// Hash of the recipient's public key (JSON `pubKeyHash`, 5.x).
    pub pub_key_hash: Option<PublicKeyHash>,
    /// Once true on a stored record it stays true (JSON `immutable`, 5.x).
    pub immutable: Option<bool>,
    /// Opaque provider metadata (JSON `appMetadata`, 5.x).
    pub app_metadata: Option<AppMetadata>,
}

/// A keystore value: the (usually end-to-end encrypted) data and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AtData {
    /// The value.
    pub data: Option<String>,
    /// Its metadata; always present on anything written through the keystore.
    pub meta_data: Option<AtMetaData>,
    /// The canonical key the value was read under. Set by reads, never stored.
    #[serde(skip)]
    pub key: Option<String>,
}

impl AtData {
    /// A value with `data` and no metadata.
    pub fn new(data: impl Into<String>) -> Self {
        AtData {
            data: Some(data.into()),
            meta_data: None,
            key: None,
        }
    }

    /// A value with `data` and `meta`.
    pub fn with_meta(data: impl Into<String>, meta: AtMetaData) -> Self {
        AtData {
            data: Some(data.into()),
            meta_data: Some(meta),
            key: None,
        }
    }
}

/// Timestamps a caller asserts for a write (API-5.0 3.4), e.g. from the `:cAt:`, `:uAt:`,
/// `:eAt:` and `:aAt:` wire fragments. They win over what the builder would compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssertedTimestamps {
    /// Asserted `createdAt` (wins even over an existing record's).
    pub created_at: Option<Timestamp>,
    /// Asserted `updatedAt` (also the commit entry's `opTime`).
    pub updated_at: Option<Timestamp>,
    /// Asserted `expiresAt` for this write.
    pub expires_at: Option<Timestamp>,
    /// Asserted `availableAt` for this write.
    pub available_at: Option<Timestamp>,
    /// Store the implied ttl (`expires_at` − base) instead of the carried one.
    pub derive_ttl: bool,
    /// Store the implied ttb (`available_at` − `updated_at`) instead of the carried one.
    pub derive_ttb: bool,
}

impl AssertedTimestamps {
    /// True when no timestamp is asserted.
    pub fn is_empty(&self) -> bool {
        self.created_at.is_none()
            && self.updated_at.is_none()
            && self.expires_at.is_none()
            && self.available_at.is_none()
    }
}
