//! The 5.x metadata builder (BEHAVIOR 1.3). STUB: replaced by the model work.
use super::{AssertedTimestamps, AtMetaData, Timestamp};

/// Builds the metadata a keystore write stores (BEHAVIOR 1.3).
pub fn build_metadata(
    at_sign: &str,
    new: Option<&AtMetaData>,
    existing: Option<&AtMetaData>,
    asserted: Option<&AssertedTimestamps>,
    now: Timestamp,
) -> AtMetaData {
    let mut r = new.or(existing).cloned().unwrap_or_default();
    let _ = asserted;
    r.created_at = existing.and_then(|e| e.created_at).or(Some(now));
    if r.created_by.is_none() {
        r.created_by = Some(at_sign.to_string());
    }
    r.updated_by = Some(at_sign.to_string());
    r.updated_at = Some(now);
    r.status = Some("active".into());
    r.version = Some(existing.and_then(|e| e.version).map(|v| v + 1).unwrap_or(0));
    if let Some(ttl) = r.ttl {
        if ttl == 0 {
            r.expires_at = None;
        } else if ttl > 0 {
            r.expires_at = Some(now.plus_millis(ttl + r.ttb.unwrap_or(0)));
        }
    }
    if let Some(ttb) = r.ttb {
        if ttb >= 0 {
            r.available_at = Some(now.plus_millis(ttb));
        }
    }
    r
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
