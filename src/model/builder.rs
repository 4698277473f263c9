//! The 5.x metadata builder (BEHAVIOR 1.3, API-5.0 3.4 and 3.5): what every keystore
//! write does to the metadata it stores.
//!
//! **A write's metadata replaces the stored metadata wholesale.** When a write carries
//! metadata, the result starts from that metadata alone; only `createdAt`, `version` and a
//! `true` `immutable` are carried over from the stored record (so, for example, writing
//! `{isBinary: true}` over a record with a ttl removes the ttl and its expiry). A write
//! without metadata keeps the stored metadata whole. Either way expiry, availability and
//! refresh restart from `now` (BEHAVIOR open points 8 and 9).

use super::{AssertedTimestamps, AtMetaData, Timestamp};

/// Builds the metadata a keystore write stores (BEHAVIOR 1.3 rules 1-11).
///
/// * `at_sign`: the store's atSign (stamped into `updatedBy`, and into `createdBy` when
///   the metadata has none).
/// * `new`: the metadata the write carries, if any.
/// * `existing`: the stored record's metadata, if the key exists and has metadata.
/// * `asserted`: caller-asserted timestamps (API-5.0 3.4), which win over what would be
///   computed; with `derive_ttl`/`derive_ttb` they also replace ttl/ttb with the relative
///   values they imply (a non-positive implied value stores `None`).
/// * `now`: the one instant (UTC, ms) used for every field this write stamps.
///
/// The inputs are never modified; the result is a new value. The function is total: it
/// never panics, whatever the inputs (date arithmetic saturates).
///
/// ```
/// use at_persistence_secondary_server::model::{build_metadata, AtMetaData, Timestamp};
/// let now = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
/// let new = AtMetaData { ttl: Some(60_000), ..Default::default() };
/// let built = build_metadata("@alice", Some(&new), None, None, now);
/// assert_eq!(built.expires_at, Some(now.plus_millis(60_000)));
/// assert_eq!(built.version, Some(0));
/// assert_eq!(built.status.as_deref(), Some("active"));
/// ```
pub fn build_metadata(
    at_sign: &str,
    new: Option<&AtMetaData>,
    existing: Option<&AtMetaData>,
    asserted: Option<&AssertedTimestamps>,
    now: Timestamp,
) -> AtMetaData {
    let none = AssertedTimestamps::default();
    let a = asserted.unwrap_or(&none);

    // Rule 1: the write's metadata, else the stored one, else empty. Nothing else is
    // merged from the stored record except what the rules below name.
    let mut r = new.or(existing).cloned().unwrap_or_default();

    // Rule 2: createdAt.
    r.created_at = a
        .created_at
        .or_else(|| existing.and_then(|e| e.created_at))
        .or(Some(now));

    // Rule 3: createdBy / updatedBy.
    if r.created_by.is_none() {
        r.created_by = Some(at_sign.to_owned());
    }
    r.updated_by = Some(at_sign.to_owned());

    // Rule 4: updatedAt and status.
    let updated_at = a.updated_at.unwrap_or(now);
    r.updated_at = Some(updated_at);
    r.status = Some("active".to_owned());

    // Rule 5: version.
    r.version = Some(
        existing
            .and_then(|e| e.version)
            .map_or(0, |v| v.saturating_add(1)),
    );

    // Rule 6: immutable is sticky once stored as true.
    if existing.and_then(|e| e.immutable) == Some(true) {
        r.immutable = Some(true);
    }

    // Rule 7: expiresAt.
    if let Some(expires_at) = a.expires_at {
        r.expires_at = Some(expires_at);
    } else if let Some(ttl) = r.ttl.filter(|&ttl| ttl >= 0) {
        r.expires_at = if ttl == 0 {
            None
        } else {
            // A ttb is added even when negative (BEHAVIOR open point 10).
            Some(now.plus_millis(ttl).plus_millis(r.ttb.unwrap_or(0)))
        };
    }

    // Rule 8: availableAt (ttb 0 gives availableAt = now, not None).
    if let Some(available_at) = a.available_at {
        r.available_at = Some(available_at);
    } else if let Some(ttb) = r.ttb.filter(|&ttb| ttb >= 0) {
        r.available_at = Some(now.plus_millis(ttb));
    }

    // Rule 9: relatives derived from asserted absolutes, only on request. The base of the
    // ttl is the asserted availableAt when that is derived too, else updatedAt; an
    // availableAt manufactured by rule 8 from ttb is never the base.
    if let (Some(expires_at), true) = (a.expires_at, a.derive_ttl) {
        let base = match (a.available_at, a.derive_ttb) {
            (Some(available_at), true) => available_at,
            _ => updated_at,
        };
        r.ttl = positive(expires_at.millis_since(base));
    }
    if let (Some(available_at), true) = (a.available_at, a.derive_ttb) {
        r.ttb = positive(available_at.millis_since(updated_at));
    }

    // Rule 10: refreshAt from ttr (seconds); -1 caches forever; 0 and < -1 change nothing.
    match r.ttr {
        Some(ttr) if ttr > 0 => r.refresh_at = Some(now.plus_millis(ttr.saturating_mul(1_000))),
        Some(-1) => r.refresh_at = None,
        _ => {}
    }

    // Rule 11: every other field is exactly what R started with.
    r
}

/// `Some(ms)` for a positive duration, `None` otherwise (a derived ttl of 0 would mean
/// "never expires", contradicting the asserted absolute).
fn positive(ms: i64) -> Option<i64> {
    (ms > 0).then_some(ms)
}

impl AtMetaData {
    /// True when any of the 17 caller-owned properties that make a create commit
    /// `UPDATE_ALL` is set (BEHAVIOR 3.2 step 5).
    pub fn has_update_all_fields(&self) -> bool {
        self.ttl.is_some()
            || self.ttb.is_some()
            || self.ttr.is_some()
            || self.is_cascade.is_some()
            || self.is_binary.is_some()
            || self.is_encrypted.is_some()
            || self.data_signature.is_some()
            || self.shared_key_enc.is_some()
            || self.pub_key_cs.is_some()
            || self.encoding.is_some()
            || self.enc_key_name.is_some()
            || self.enc_algo.is_some()
            || self.iv_nonce.is_some()
            || self.ske_enc_key_name.is_some()
            || self.ske_enc_algo.is_some()
            || self.pub_key_hash.is_some()
            || self.immutable.is_some()
    }
}
