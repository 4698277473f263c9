//! The versioned on-disk codec. STUB: replaced by the model work.
use crate::error::{PersistenceError, Result};
use serde::{de::DeserializeOwned, Serialize};

/// Format byte of every record this build writes.
pub const RECORD_FORMAT_V1: u8 = 1;

/// Encodes `value` as a versioned envelope.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT_V1];
    out.extend(bincode::serialize(value).unwrap_or_default());
    out
}

/// Decodes an envelope written by [`encode`].
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    store: &'static str,
    key: &dyn Fn() -> String,
) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT_V1, rest)) => {
            bincode::deserialize(rest).map_err(|e| PersistenceError::CorruptRecord {
                store,
                key: key(),
                reason: e.to_string(),
            })
        }
        _ => Err(PersistenceError::CorruptRecord {
            store,
            key: key(),
            reason: "unknown format byte".into(),
        }),
    }
}
