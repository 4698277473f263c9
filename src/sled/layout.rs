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
//! | `c` + commit id | envelope(`CommitEntry`) |
//! | `k` + atKey (UTF-8) | commit id: latest entry per atKey, optionally followed by the store's counts (see below) |
//! | `m` + counter name | big-endian counter (`mhwm` is written lazily, see [`HWM`]) |
//!
//! Instants are 8 bytes: the millisecond count with its sign bit flipped, big-endian, so
//! byte order is time order also before 1970. Commit ids are non-negative and stored as
//! 8-byte big-endian unsigned integers, so byte order is id order.
//!
//! # Where the counts live (formats 2 and 3)
//!
//! The keystore's two counts, records and retained commit entries, change with most
//! writes. Writing a counter entry with each of them would add a sled write per put, so
//! the counts ride on an entry the write makes anyway: the latest-entry index value of the
//! group's newest commit entry is the commit id followed by the two counts as varints
//! ([`latest_value`]; at most 22 bytes for counts below 2^35, so sled keeps it inline in
//! its node like the plain 8-byte value). A group that changes the counts without making
//! the newest entry (a commit-skipped key, compaction, a purge, a store without commit
//! entries) writes them to [`COUNTS`] instead, with the high-water mark they are valid as
//! of. At open the counts are those of the newest commit entry's index value if it
//! carries them and that entry is newer than the `as of` of [`COUNTS`]; otherwise those of
//! [`COUNTS`] (see [`Counts::effective`]). Format 1 kept the counts in
//! [`LEGACY_COMMIT_COUNT`] and [`LEGACY_KEY_COUNT`], written with every change; a format-1
//! store is read as if they were a [`COUNTS`] valid as of -1, and they are removed when
//! [`COUNTS`] is first written.
//!
//! # No creation index (format 3)
//!
//! Formats 1 and 2 also kept a creation index, `C` + instant + canonical key
//! ([`LEGACY_CREATED`]), for `scan_keys` ordered by creation and the oldest and newest
//! creation time of `stats`. Both are rare, diagnostic reads, while the index cost every
//! new key a fourth entry and every store an entry per key held in sled's cache (about
//! 17 MB of heap at 100k keys, measured with heaptrack). Format 3 reads `created_at` from
//! the records instead. Opening an older store removes its creation index, in batches,
//! after the format record says 3 (so a crash in between leaves a format-3 store that the
//! next open finishes, never an older store missing index entries).

use crate::model::Timestamp;

/// Prefix of keystore records.
pub const RECORD: u8 = b'd';
/// Prefix of the expiry index.
pub const EXPIRY: u8 = b'e';
/// Prefix of the availability index.
pub const AVAILABLE: u8 = b'a';
/// Prefix of the creation-time index of formats 1 and 2, which format 3 removes at open
/// and never writes (see "No creation index" above).
pub const LEGACY_CREATED: u8 = b'C';
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
/// Format 1's counter of retained commit entries (u64); read, never written, since format 2.
pub const LEGACY_COMMIT_COUNT: &[u8] = b"mcl_count";
/// Format 1's counter of keystore records (u64); read, never written, since format 2.
pub const LEGACY_KEY_COUNT: &[u8] = b"mkey_count";
/// The counts when no commit entry carries them: records (u64), retained commit entries
/// (u64), then the high-water mark (i64) they are valid as of; 24 bytes big-endian.
pub const COUNTS: &[u8] = b"mcounts";

/// Keys of the database-wide format record (default tree).
pub const FORMAT_KEY: &[u8] = b"format_version";
/// Key of the atSign the database belongs to (default tree).
pub const AT_SIGN_KEY: &[u8] = b"at_sign";
/// The on-disk format this build writes and the newest it reads. Format 1 differs from 2
/// only in where the keystore's counts live, and 2 from 3 only in the creation index
/// (see the module documentation). Opening an older database upgrades its format record
/// in place (and the keystore then drops the creation index), after which older builds
/// refuse it.
pub const FORMAT_VERSION: u32 = 3;

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

/// The keystore's counts: records and retained commit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Keystore records.
    pub keys: u64,
    /// Retained commit entries.
    pub entries: u64,
}

impl Counts {
    fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.keys.to_be_bytes());
        out[8..].copy_from_slice(&self.entries.to_be_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Counts> {
        Some(Counts {
            keys: read_u64(bytes.get(..8)?)?,
            entries: read_u64(bytes.get(8..16)?)?,
        })
    }

    /// The counts in force: `carried` (the newest commit entry's id and the counts its
    /// index value carries, if it carries any) when that entry is newer than what
    /// `stored` (the [`COUNTS`] value and its `as of` mark) is valid as of, else `stored`.
    pub fn effective(stored: (Counts, i64), carried: Option<(i64, Counts)>) -> Counts {
        match carried {
            Some((id, counts)) if id > stored.1 => counts,
            _ => stored.0,
        }
    }
}

/// A [`COUNTS`] value: `counts` valid as of the high-water mark `as_of`.
pub fn counts_value(counts: Counts, as_of: i64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&counts.to_bytes());
    out[16..].copy_from_slice(&as_of.to_be_bytes());
    out
}

/// Reads a [`COUNTS`] value; `None` unless it is 24 bytes.
pub fn read_counts(bytes: &[u8]) -> Option<(Counts, i64)> {
    if bytes.len() != 24 {
        return None;
    }
    Some((Counts::from_bytes(&bytes[..16])?, read_i64(&bytes[16..])?))
}

/// A latest-entry index value: the 8-byte commit id, followed, when this entry carries the
/// store's counts, by the record count and the entry count as LEB128 varints (7 bits per
/// byte, low group first, high bit set on all but the last byte).
pub fn latest_value(id: i64, counts: Option<Counts>) -> Vec<u8> {
    let mut v = Vec::with_capacity(28);
    v.extend_from_slice(&id_bytes(id));
    if let Some(c) = counts {
        for mut n in [c.keys, c.entries] {
            while n >= 0x80 {
                v.push((n as u8) | 0x80);
                n >>= 7;
            }
            v.push(n as u8);
        }
    }
    v
}

/// Reads one LEB128 varint written by [`latest_value`] off the front of `bytes`.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        let low = u64::from(b & 0x7f);
        if shift == 63 && low > 1 {
            return None; // more than 64 bits
        }
        n |= low << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Reads a latest-entry index value: the commit id and the counts it carries, if any.
/// `None` unless it is 8 bytes, or 8 bytes and exactly two varints.
pub fn read_latest(bytes: &[u8]) -> Option<(i64, Option<Counts>)> {
    let id = read_i64(bytes.get(..8)?)?;
    let mut rest = &bytes[8..];
    if rest.is_empty() {
        return Some((id, None));
    }
    let keys = take_varint(&mut rest)?;
    let entries = take_varint(&mut rest)?;
    rest.is_empty()
        .then_some((id, Some(Counts { keys, entries })))
}

/// The commit id of a latest-entry index value.
pub fn latest_id_of(bytes: &[u8]) -> Option<i64> {
    read_latest(bytes).map(|(id, _)| id)
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
    fn counts_round_trip_and_the_newer_source_wins() {
        let a = Counts {
            keys: 7,
            entries: 9,
        };
        let b = Counts {
            keys: 1,
            entries: 2,
        };
        assert_eq!(read_counts(&counts_value(a, 41)), Some((a, 41)));
        assert_eq!(read_counts(&counts_value(a, 41)[..23]), None);
        assert_eq!(read_latest(&latest_value(42, Some(b))), Some((42, Some(b))));
        assert_eq!(read_latest(&latest_value(42, None)), Some((42, None)));
        assert_eq!(read_latest(&[0; 7]), None);
        assert_eq!(read_latest(&[0; 9]), None, "one varint");
        assert_eq!(read_latest(&[0; 11]), None, "trailing byte");
        assert_eq!(
            read_latest(&[[0; 8], [0x80; 8]].concat()),
            None,
            "unterminated"
        );
        let big = Counts {
            keys: u64::MAX,
            entries: 1 << 35,
        };
        assert_eq!(
            read_latest(&latest_value(1, Some(big))),
            Some((1, Some(big)))
        );
        let mut too_big = latest_value(1, Some(big));
        too_big[17] = 0x7f; // the tenth byte of u64::MAX may carry only one bit
        assert_eq!(read_latest(&too_big), None);
        // Counts below 2^35 keep the value within sled's 22-byte inline limit.
        let typical = Counts {
            keys: (1 << 35) - 1,
            entries: (1 << 35) - 1,
        };
        assert!(latest_value(i64::MAX, Some(typical)).len() <= 22);
        assert_eq!(latest_id_of(&latest_value(42, Some(b))), Some(42));
        // The carrier wins only when it is newer than the stored counts' mark.
        assert_eq!(Counts::effective((a, 41), Some((42, b))), b);
        assert_eq!(Counts::effective((a, 42), Some((42, b))), a);
        assert_eq!(Counts::effective((a, 41), None), a);
    }

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
            timed(LEGACY_CREATED, Timestamp::from_millis(0), b"k"),
            [&b"C"[..], &[0x80, 0, 0, 0, 0, 0, 0, 0], b"k"].concat()
        );
        assert_eq!(commit_key(258), vec![b'c', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(prefixed(COMMIT_BY_KEY, b"k@a"), b"kk@a".to_vec());
        assert_eq!(HWM, b"mhwm");
        assert_eq!(LEGACY_COMMIT_COUNT, b"mcl_count");
        assert_eq!(LEGACY_KEY_COUNT, b"mkey_count");
        assert_eq!(COUNTS, b"mcounts");
        let c = Counts {
            keys: 3,
            entries: 258,
        };
        assert_eq!(
            counts_value(c, -1),
            [
                [0, 0, 0, 0, 0, 0, 0, 3],
                [0, 0, 0, 0, 0, 0, 1, 2],
                [0xff; 8]
            ]
            .concat()[..]
        );
        assert_eq!(latest_value(258, None), vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            latest_value(5, Some(c)),
            vec![0, 0, 0, 0, 0, 0, 0, 5, 3, 0x82, 0x02]
        );
        assert_eq!(FORMAT_KEY, b"format_version");
        assert_eq!(AT_SIGN_KEY, b"at_sign");
        assert_eq!(FORMAT_VERSION.to_be_bytes(), [0, 0, 0, 3]);
    }
}
