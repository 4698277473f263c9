//! Byte layouts of the sled trees. Frozen: golden-bytes tests pin every layout.
//!
//! Each store owns one sled tree; inside it, the first byte of a key says what the entry is.
//! Keeping a store's record, its commit entry, its indexes and its counters in one tree lets
//! every logical write (and every group of them) commit as one atomic sled batch.
//!
//! Keystore tree (`keystore`):
//!
//! | key | value |
//! |---|---|
//! | `d` + canonical key (UTF-8) | envelope(`AtData`) |
//! | `e` + instant + canonical key | empty: expiry index (`expires_at`) |
//! | `a` + instant + canonical key | empty: availability index (`available_at`) |
//! | `C` + instant + canonical key | empty: creation index (`created_at`) |
//! | `c` + commit id | envelope(`CommitEntry`) |
//! | `k` + atKey (UTF-8) | commit id: latest entry per atKey |
//! | `m` + counter name | big-endian counter (`mhwm` is written lazily, see [`HWM`]) |
//!
//! Instants are 8 bytes: the millisecond count with its sign bit flipped, big-endian, so
//! byte order is time order also before 1970. Commit ids are non-negative and stored as
//! 8-byte big-endian unsigned integers, so byte order is id order.

use crate::model::Timestamp;

/// Prefix of keystore records.
pub const RECORD: u8 = b'd';
/// Prefix of the expiry index.
pub const EXPIRY: u8 = b'e';
/// Prefix of the availability index.
pub const AVAILABLE: u8 = b'a';
/// Prefix of the creation-time index.
pub const CREATED: u8 = b'C';
/// Prefix of commit entries by id.
pub const COMMIT: u8 = b'c';
/// Prefix of the latest-commit-id-per-atKey index.
pub const COMMIT_BY_KEY: u8 = b'k';
/// Prefix of counters.
pub const COUNTER: u8 = b'm';

/// Counter: the commit-id high-water mark (i64), as last persisted. It is written lazily:
/// only when the newest commit entry stops carrying the mark (purge, raise, replay), so the
/// effective mark is `max(mhwm, newest commit id)`; an absent `mhwm` counts as -1.
pub const HWM: &[u8] = b"mhwm";
/// Counter: retained commit entries (u64).
pub const COMMIT_COUNT: &[u8] = b"mcl_count";
/// Counter: keystore records (u64).
pub const KEY_COUNT: &[u8] = b"mkey_count";

/// Keys of the database-wide format record (default tree).
pub const FORMAT_KEY: &[u8] = b"format_version";
/// Key of the atSign the database belongs to (default tree).
pub const AT_SIGN_KEY: &[u8] = b"at_sign";
/// The on-disk format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Encodes an instant so that byte order is time order.
pub fn instant_bytes(t: Timestamp) -> [u8; 8] {
    ((t.as_millis() as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Decodes [`instant_bytes`].
pub fn instant_from(bytes: [u8; 8]) -> Timestamp {
    Timestamp::from_millis((u64::from_be_bytes(bytes) ^ (1u64 << 63)) as i64)
}

/// `prefix` + `key`.
pub fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(prefix);
    v.extend_from_slice(key);
    v
}

/// `prefix` + instant + `key`: an entry of a time-ordered index.
pub fn timed(prefix: u8, t: Timestamp, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + key.len());
    v.push(prefix);
    v.extend_from_slice(&instant_bytes(t));
    v.extend_from_slice(key);
    v
}

/// Splits an index entry made by [`timed`] into its instant and key.
pub fn split_timed(entry: &[u8]) -> Option<(Timestamp, &[u8])> {
    if entry.len() < 9 {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&entry[1..9]);
    Some((instant_from(t), &entry[9..]))
}

/// `prefix` + instant: the start of the index range at `t`.
pub fn timed_bound(prefix: u8, t: Timestamp) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(prefix);
    v.extend_from_slice(&instant_bytes(t));
    v
}

/// Encodes a commit id (non-negative).
pub fn id_bytes(id: i64) -> [u8; 8] {
    (id.max(0) as u64).to_be_bytes()
}

/// `c` + id.
pub fn commit_key(id: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(COMMIT);
    v.extend_from_slice(&id_bytes(id));
    v
}

/// Reads an 8-byte big-endian integer.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// Reads an 8-byte big-endian signed integer.
pub fn read_i64(bytes: &[u8]) -> Option<i64> {
    read_u64(bytes).map(|v| v as i64)
}

/// The commit id of a `c` key.
pub fn commit_id_of(key: &[u8]) -> Option<i64> {
    if key.first() != Some(&COMMIT) {
        return None;
    }
    read_i64(&key[1..])
}

/// The exclusive end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: u8) -> Vec<u8> {
    vec![prefix + 1]
}

/// Renders a storage key for error messages.
pub fn render(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_order_matches_time_order() {
        let ts = [-5_000i64, -1, 0, 1, 1_700_000_000_000];
        for w in ts.windows(2) {
            let a = instant_bytes(Timestamp::from_millis(w[0]));
            let b = instant_bytes(Timestamp::from_millis(w[1]));
            assert!(a < b, "{} < {}", w[0], w[1]);
        }
        for t in ts {
            assert_eq!(
                instant_from(instant_bytes(Timestamp::from_millis(t))).as_millis(),
                t
            );
        }
    }

    #[test]
    fn golden_layouts() {
        // These bytes are the on-disk format; changing them breaks every existing store.
        assert_eq!(prefixed(RECORD, b"phone@alice"), b"dphone@alice".to_vec());
        assert_eq!(
            timed(EXPIRY, Timestamp::from_millis(1_704_067_200_000), b"k@a"),
            [
                &b"e"[..],
                &[0x80, 0, 0x01, 0x8c, 0xc2, 0x51, 0xf4, 0x00],
                b"k@a"
            ]
            .concat()
        );
        assert_eq!(
            timed(AVAILABLE, Timestamp::from_millis(-1), b"x"),
            [
                &b"a"[..],
                &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                b"x"
            ]
            .concat()
        );
        assert_eq!(
            timed(CREATED, Timestamp::from_millis(0), b"k"),
            [&b"C"[..], &[0x80, 0, 0, 0, 0, 0, 0, 0], b"k"].concat()
        );
        assert_eq!(commit_key(258), vec![b'c', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(prefixed(COMMIT_BY_KEY, b"k@a"), b"kk@a".to_vec());
        assert_eq!(HWM, b"mhwm");
        assert_eq!(COMMIT_COUNT, b"mcl_count");
        assert_eq!(KEY_COUNT, b"mkey_count");
        assert_eq!(FORMAT_KEY, b"format_version");
        assert_eq!(AT_SIGN_KEY, b"at_sign");
        assert_eq!(FORMAT_VERSION.to_be_bytes(), [0, 0, 0, 1]);
    }
}
