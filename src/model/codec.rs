//! The versioned on-disk record codec used by every store.
//!
//! # Envelope
//!
//! Every stored record is `[format byte][payload]`:
//!
//! | format byte | payload |
//! |---|---|
//! | `0x00` | never written; reserved so that a zero-filled record is always refused |
//! | `0x01` ([`RECORD_FORMAT_V1`]) | the value in bincode 1.3.3 with the frozen options below |
//! | anything else | unknown: refused with [`PersistenceError::CorruptRecord`] |
//!
//! # The frozen bincode options (format 1)
//!
//! Format 1 is `bincode::DefaultOptions::new()` with, spelled out so that a change of
//! bincode's defaults cannot slip through: **varint** integer encoding (`i64` zig-zag,
//! lengths and enum tags unsigned LEB-style varints), **little endian**, and **reject
//! trailing bytes**. Structs are their fields in declaration order, `Option` is a `0`/`1`
//! tag then the value, enums are the variant index then the fields, strings are a varint
//! length then UTF-8 bytes. [`Timestamp`](super::Timestamp) is its `i64` milliseconds.
//!
//! **These options never change.** The tests in `tests/model_codec.rs` pin the exact
//! bytes of every stored type; if they fail, the on-disk format has drifted and old
//! databases would no longer read.
//!
//! Decoding adds one guard that does not affect the bytes: a size limit equal to the
//! payload length, so a damaged length prefix can never make bincode reserve more memory
//! than the record itself holds.
//!
//! # Evolving the format (append-only)
//!
//! The format byte exists so that the format can evolve without a migration:
//!
//! 1. A change to any stored type's layout (a field added, removed, reordered or retyped,
//!    an enum variant inserted anywhere but at the end) gets a **new** format byte (`0x02`,
//!    then `0x03`, ...). [`encode`] writes only the newest byte.
//! 2. [`decode`] keeps reading **every** byte it ever knew: for an old byte it decodes into
//!    a frozen copy of the old layout and converts it to the current type (for example a
//!    new optional field becomes `None`).
//! 3. A byte is never reused and never given a second meaning.
//!
//! So records of all formats may coexist in one database, and a database is readable by
//! every later build. A database written by a newer build is detected by the store's
//! format marker before any record is read; an individual record with an unknown byte is a
//! [`PersistenceError::CorruptRecord`].

use crate::error::{PersistenceError, Result};
use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// Format byte of every record this build writes (see the module documentation).
pub const RECORD_FORMAT_V1: u8 = 1;

/// The frozen bincode options of format 1. Never change them: see the module docs.
fn format_v1_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// Encodes `value` as a format-1 envelope: [`RECORD_FORMAT_V1`] then its bincode payload.
///
/// This is infallible for every model type of this crate. Bincode serialisation into a
/// `Vec` can fail only (a) when a size limit is exceeded (encoding sets none), (b) for a
/// sequence or map whose length is not known up front (derived `Serialize` impls of
/// strings, options, integers, structs and enums never produce one), or (c) when a
/// hand-written `Serialize` impl reports an error (the model types have none). The
/// property tests encode and decode every model type to keep this true.
///
/// # Panics
///
/// Only for a type whose `Serialize` impl bincode cannot represent (case (b) or (c)
/// above): a programming error in the type, independent of the value, never caused by data
/// from a caller or from disk.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let payload = match format_v1_options().serialize(value) {
        Ok(payload) => payload,
        Err(e) => panic!(
            "codec::encode: {} cannot be encoded with bincode (a type error, not a data error): {e}",
            std::any::type_name::<T>()
        ),
    };
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(RECORD_FORMAT_V1);
    out.extend_from_slice(&payload);
    out
}

/// Decodes an envelope written by [`encode`] (by this build or an earlier one).
///
/// `store` names the store (or tree) and `key` renders the storage key; `key` is called
/// only when the record is bad, so the happy path does not pay for formatting it.
///
/// # Errors
///
/// [`PersistenceError::CorruptRecord`] naming `store` and `key` when the slice is empty,
/// the format byte is unknown, or the payload is truncated, malformed, longer than its
/// content (trailing bytes) or claims more bytes than it has. Never panics, and never
/// allocates more than the record's own size because of a damaged length prefix.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    store: &'static str,
    key: &dyn Fn() -> String,
) -> Result<T> {
    let corrupt = |reason: String| PersistenceError::CorruptRecord {
        store,
        key: key(),
        reason,
    };
    match bytes.split_first() {
        None => Err(corrupt("empty record (no format byte)".into())),
        Some((&RECORD_FORMAT_V1, payload)) => format_v1_options()
            .with_limit(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| {
                corrupt(format!(
                    "format {RECORD_FORMAT_V1} payload of {} bytes does not decode as {}: {e}",
                    payload.len(),
                    short_type_name::<T>()
                ))
            }),
        Some((&other, _)) => Err(corrupt(format!(
            "unknown record format byte 0x{other:02x} (this build reads 0x{RECORD_FORMAT_V1:02x})"
        ))),
    }
}

/// The last path segment of `T`'s name, e.g. `AtData`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}
