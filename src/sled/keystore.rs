//! The sled keystore and its commit log.
//!
//! Both live in one tree of the database at the keystore's storage path (layout in
//! [`super::layout`]). Every write — the record, its commit entry, the latest-entry index,
//! the expiry and availability indexes and the counters — is staged and applied as one
//! atomic sled batch by the group-commit writer ([`super::writer`]); reads go straight to
//! the tree.

use super::db::{backend, Durability, SledDb, Sweep};
use super::hooks::RemoveHooks;
use super::layout::{self as lay, prefixed, timed};
use super::record_cache::{Lookup, RecordCache};
use super::staging::Staging;
use super::store_core::{
    self, first_instant, found, lock, read_counter, regex_of, remove_in_chunks, run, Broadcast,
    GroupStore, Released, StoreHandle, TxnBuffer, WriteGroup,
};
use super::writer::WriteQueue;
use crate::error::{PersistenceError, Result};
use crate::key;
use crate::key::KeyPattern;
use crate::model::{
    build_metadata, codec, AtData, AtMetaData, Clock, CommitEntry, CommitOp, Timestamp,
};
use crate::store::{
    AtKeyValueStore, ChangeStream, CommitLog, Compactable, CompactedItem, IterateOptions, KeyEntry,
    KeyStoreChange, KeyStoreSnapshot, KeyStoreStats, KeyStoreTxn, KeyValueStore, OrderByKey,
    Predicate, RemoveHook, RemoveHookArgs, RemoveOptions, ResultStream, ScanOptions, WriteOptions,
};
use async_trait::async_trait;
use futures::StreamExt;
use sled::IVec;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) const STORE: &str = "keystore";
pub(crate) const COMMIT_STORE: &str = "commit log";
/// The tree holding the keystore and its commit log.
pub(crate) const TREE: &str = "keystore";
/// Keys per atomic batch when a clear, or the removal of format 2's creation index at
/// open, removes many keys (each batch is followed by a flush, see [`SledDb::flush`]).
const REMOVE_CHUNK: usize = 1024;

/// Settings of one keystore.
#[derive(Debug, Clone)]
pub(crate) struct KeyStoreSettings {
    pub at_sign: String,
    pub commit_log: bool,
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
    pub change_buffer: usize,
    /// Bytes of records kept in memory in front of sled (0: none).
    pub record_cache: u64,
}

/// The in-memory copy of the persisted counters. Only the writer changes them.
///
/// The high-water mark on disk is `max(mhwm, newest commit entry id)`: while the entry
/// with id `hwm` exists, it carries the mark and `mhwm` is not rewritten, so a commit
/// writes its record, its entry and the index and nothing else (one sled write fewer per
/// put, and no rewrite of the counters' page). `mhwm` is written in the same batch as
/// soon as the newest entry would no longer carry the mark (it is purged, or the mark is
/// raised without an entry).
///
/// The counts are persisted the same way (see the layout's "Where the counts live"): the
/// newest commit entry's latest-entry index value carries them when its group made that
/// entry; any other group that changes them writes `mcounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    hwm: i64,
    commit_count: u64,
    key_count: u64,
    /// The `mhwm` value on disk (at most `hwm`).
    stored_hwm: i64,
    /// Whether the commit entry with id `hwm` is on disk.
    hwm_entry_live: bool,
    /// Whether the counts on disk are those carried by the newest entry's index value
    /// (rather than `mcounts`).
    counts_carried: bool,
    /// Whether format 1's counter entries are still on disk (removed when `mcounts` is
    /// first written).
    legacy_counts: bool,
}

/// The keystore's counts as persisted, and where they were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredCounts {
    /// The counts in force.
    pub counts: lay::Counts,
    /// Whether the newest commit entry's index value carries them.
    pub carried: bool,
    /// Whether format 1's counter entries hold the stored counts.
    pub legacy: bool,
}

/// Reads the keystore's counts the way opening does: `mcounts` (or format 1's counters),
/// overridden by the counts the newest commit entry's index value carries when that entry
/// is newer than `mcounts`. `newest` is the newest commit entry (its key and value), if
/// any. A newest entry that does not decode carries nothing (verification reports it).
pub(crate) fn stored_counts(
    tree: &sled::Tree,
    newest: Option<&(IVec, IVec)>,
) -> Result<StoredCounts> {
    let corrupt = |key: &[u8], reason: &str| PersistenceError::CorruptRecord {
        store: STORE,
        key: lay::render(key),
        reason: reason.to_string(),
    };
    let (stored, legacy) = match tree
        .get(lay::COUNTS)
        .map_err(|e| backend("read counts", e))?
    {
        Some(v) => (
            lay::read_counts(&v).ok_or_else(|| corrupt(lay::COUNTS, "counts are not 24 bytes"))?,
            false,
        ),
        None => {
            let keys = read_counter(tree, STORE, lay::LEGACY_KEY_COUNT)?;
            let entries = read_counter(tree, STORE, lay::LEGACY_COMMIT_COUNT)?;
            let counts = lay::Counts {
                keys: keys.unwrap_or(0),
                entries: entries.unwrap_or(0),
            };
            ((counts, -1), keys.is_some() || entries.is_some())
        }
    };
    let carried = match newest {
        Some((k, v)) => carried_counts(tree, k, v)?,
        None => None,
    };
    let counts = lay::Counts::effective(stored, carried);
    Ok(StoredCounts {
        counts,
        carried: carried.is_some_and(|(id, _)| id > stored.1),
        legacy,
    })
}

/// The id of the commit entry `k` = `v` and the counts its latest-entry index value
/// carries, if that value names this entry and carries counts. An entry or index value
/// that does not decode carries nothing (verification reports it); a failed read is an
/// error, not a silent fallback to `mcounts`.
fn carried_counts(tree: &sled::Tree, k: &[u8], v: &[u8]) -> Result<Option<(i64, lay::Counts)>> {
    let (Some(id), Ok(entry)) = (lay::commit_id_of(k), decode_entry(v, k)) else {
        return Ok(None);
    };
    let index = tree
        .get(prefixed(lay::COMMIT_BY_KEY, entry.at_key.as_bytes()))
        .map_err(|e| backend("read counts", e))?;
    Ok(match index.as_deref().and_then(lay::read_latest) {
        Some((named, Some(counts))) if named == id => Some((id, counts)),
        _ => None,
    })
}

/// The newest commit entry of the keystore tree: its key and value.
pub(crate) fn newest_entry(tree: &sled::Tree) -> Result<Option<(IVec, IVec)>> {
    tree.range(vec![lay::COMMIT]..lay::prefix_end(lay::COMMIT))
        .next_back()
        .transpose()
        .map_err(|e| backend("reading the newest commit entry", e))
}

impl Counters {
    /// The high-water mark in use.
    pub(crate) fn hwm(&self) -> i64 {
        self.hwm
    }
}

/// How a write builds its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Put,
    Create,
    PutAll,
    PutMeta,
}

/// The arguments of a keystore write.
#[derive(Debug)]
pub(crate) struct WriteArgs {
    key: String,
    value: Option<AtData>,
    meta: Option<AtMetaData>,
    mode: WriteMode,
    options: WriteOptions,
}

/// One keystore operation.
pub(crate) enum KsOp {
    Write(Box<WriteArgs>),
    Remove {
        key: String,
        options: RemoveOptions,
    },
    RemoveMany {
        keys: Vec<String>,
        skip_commit: bool,
    },
    ExpireRemove {
        keys: Vec<String>,
        as_of: Timestamp,
    },
    Restore {
        key: String,
        value: Box<AtData>,
    },
    Commit {
        key: String,
        op: CommitOp,
        op_time: Option<Timestamp>,
    },
    RemoveEntryFor {
        key: String,
    },
    Replay {
        entry: CommitEntry,
    },
    RaiseHwm {
        id: i64,
    },
    RemoveSuperseded {
        ids: Vec<i64>,
    },
    #[cfg(feature = "test-support")]
    Plant {
        entry: CommitEntry,
    },
    Txn {
        ops: Vec<(String, Option<AtData>)>,
    },
    Clear,
}

/// What an operation returns.
#[derive(Debug)]
pub(crate) enum Outcome {
    Id(Option<i64>),
    Count(u64),
    Keys(Vec<String>),
    Ids(Vec<i64>),
    Unit,
}

type Queued = store_core::Queued<KsOp, Outcome>;

/// Shared state of one keystore (and its commit log).
pub(crate) struct KsInner {
    settings: KeyStoreSettings,
    pub(crate) handle: StoreHandle,
    queue: WriteQueue<Queued>,
    pub(crate) counters: Mutex<Counters>,
    events: Broadcast<KeyStoreChange>,
    hooks: RemoveHooks,
    /// Recently read records, in front of sled.
    cache: RecordCache,
    /// Records decoded while opening (a test-support probe: must stay a small constant).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    decoded_at_open: AtomicU64,
}

impl std::fmt::Debug for KsInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledKeyStore")
            .field("at_sign", &self.settings.at_sign)
            .field("commit_log", &self.settings.commit_log)
            .finish()
    }
}

fn decode_record(bytes: &[u8], key: &str) -> Result<AtData> {
    let mut data = AtData::default();
    decode_record_into(bytes, key, &mut data)?;
    Ok(data)
}

/// Decodes the record `bytes` (stored under `key`) into `out`, which is overwritten whole
/// (its `key` is left as it was). Decoding in place spares the moves of a record of about
/// 600 bytes through the layers of a read.
fn decode_record_into(bytes: &[u8], key: &str, out: &mut AtData) -> Result<()> {
    if !record_v1::decode_into(bytes, out) {
        // Anything the fast path does not take (another format byte, a damaged record)
        // goes through the codec, which decides and words the error.
        let key_field = out.key.take();
        *out = codec::decode::<AtData>(bytes, STORE, &|| key.to_string())?;
        out.key = key_field;
    }
    Ok(())
}

/// The metadata of the record `bytes` (stored under `key`). The value is checked but not
/// copied: no allocation for a value nobody sees.
fn record_meta(bytes: &[u8], key: &str) -> Result<Option<AtMetaData>> {
    let mut meta = None;
    if !record_v1::decode_meta_into(bytes, &mut meta) {
        meta = decode_record(bytes, key)?.meta_data;
    }
    Ok(meta)
}

/// The canonical form of `key` (see [`key::canonical_key`]), borrowed when `key` already
/// is canonical: printable ASCII without upper case or spaces, which trimming,
/// lower-casing and deleting spaces leave unchanged.
fn canonical(key: &str) -> Cow<'_, str> {
    if is_canonical_ascii(key.as_bytes()) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(key::canonical_key(key))
    }
}

/// Whether every byte is printable ASCII (0x21..=0x7e) and not upper case, tested eight
/// bytes at a time: a read's key check costs a few instructions instead of a few per byte.
fn is_canonical_ascii(bytes: &[u8]) -> bool {
    /// `b` in every byte.
    const fn lanes(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    const HIGH: u64 = lanes(0x80);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            return false;
        };
        let w = u64::from_ne_bytes(word);
        if w & HIGH != 0 {
            return false;
        }
        // Every byte is now below 0x80, so adding at most 0x5f carries into no other byte:
        // bit 7 of a byte of `w + lanes(0x80 - t)` says whether that byte is at least `t`.
        let at_least = |t: u8| (w + lanes(0x80 - t)) & HIGH;
        let upper = at_least(b'A') & !at_least(b'Z' + 1);
        if at_least(0x21) != HIGH || at_least(0x7f) != 0 || upper != 0 {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| matches!(b, 0x21..=0x7e) && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    fn byte_by_byte(bytes: &[u8]) -> bool {
        bytes
            .iter()
            .all(|&b| matches!(b, 0x21..=0x7e) && !b.is_ascii_uppercase())
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test_for_every_byte_anywhere() {
        // Fillers at the edges of each range the word test checks.
        for fill in [b'a', b'!', b'~', b'@', b'[', b'`', b'{'] {
            for len in 0..=17 {
                let base = vec![fill; len];
                assert!(is_canonical_ascii(&base), "{len} x {fill:#x}");
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut k = base.clone();
                        k[at] = b;
                        assert_eq!(
                            is_canonical_ascii(&k),
                            byte_by_byte(&k),
                            "byte {b:#x} at {at} of {len} x {fill:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn borrows_only_keys_that_are_already_canonical() {
        for k in [
            "@bob:phone.wavi@alice",
            "@bob:contact0000000001.app1@alice",
            "@Bob:phone.wavi@alice",
            "@bob:phone.wavi@aliCe",
            " public:x@alice",
            "public:x@alice\u{feff}",
            "a b@c",
            "café@x",
            "\tk@x",
            "ÀBC",
            "",
        ] {
            let c = canonical(k);
            assert_eq!(c, key::canonical_key(k), "{k:?}");
            assert_eq!(
                matches!(c, Cow::Borrowed(_)),
                byte_by_byte(k.as_bytes()),
                "{k:?}"
            );
        }
    }
}

/// The commit id the latest-entry index value `value` of `at_key` names; a value that is
/// not an 8-byte id with optional varint counts is a `CorruptRecord` naming the atKey.
fn latest_id_in(at_key: &str, value: &[u8]) -> Result<i64> {
    lay::latest_id_of(value).ok_or_else(|| PersistenceError::CorruptRecord {
        store: COMMIT_STORE,
        key: at_key.to_string(),
        reason: format!(
            "latest-entry index value of {} bytes is not an 8-byte id with optional varint counts",
            value.len()
        ),
    })
}

fn decode_entry(bytes: &[u8], id_key: &[u8]) -> Result<CommitEntry> {
    if let Some(entry) = record_v1::decode_entry(bytes) {
        return Ok(entry);
    }
    codec::decode::<CommitEntry>(bytes, COMMIT_STORE, &|| match lay::commit_id_of(id_key) {
        Some(id) => format!("commit id {id}"),
        None => lay::render(id_key),
    })
}

/// The effects of one operation, kept until its group is applied.
struct OpResult {
    outcome: Outcome,
    events: Vec<KeyStoreChange>,
}

impl KsInner {
    pub(crate) fn open(db: Arc<SledDb>, settings: KeyStoreSettings) -> Result<Arc<KsInner>> {
        let tree = db.tree(TREE)?;
        let stored_hwm = read_counter(&tree, STORE, lay::HWM)?.map_or(-1, |v| v as i64);
        // One seek: the newest entry, whose id may carry the mark and whose index value
        // may carry the counts (see `Counters`).
        let newest_entry = newest_entry(&tree)?;
        let newest = newest_entry
            .as_ref()
            .and_then(|(k, _)| lay::commit_id_of(k));
        let hwm = stored_hwm.max(newest.unwrap_or(-1));
        let counts = stored_counts(&tree, newest_entry.as_ref())?;
        // A store of format 1 or 2 (its format record already says 3, see
        // `SledDb::upgrade_format`) still holds its creation index, or part of it if the
        // open that upgraded it crashed: drop it. One seek when there is none.
        db.sweep_tree(
            &tree,
            Sweep::Prefix(lay::LEGACY_CREATED),
            Durability::Durable,
            REMOVE_CHUNK,
            "removing the creation index of format 2",
        )?;
        let events = Broadcast::new(settings.change_buffer);
        Ok(Arc::new(KsInner {
            cache: RecordCache::new(settings.record_cache),
            settings,
            handle: StoreHandle::new(STORE, db, tree),
            queue: WriteQueue::default(),
            counters: Mutex::new(Counters {
                hwm,
                commit_count: counts.counts.entries,
                key_count: counts.counts.keys,
                stored_hwm,
                hwm_entry_live: newest == Some(hwm),
                counts_carried: counts.carried,
                legacy_counts: counts.legacy,
            }),
            events,
            hooks: RemoveHooks::default(),
            decoded_at_open: AtomicU64::new(0),
        }))
    }

    /// The stored record bytes under the canonical key `canonical`: from the record cache,
    /// else one sled read (with neither a copy of the tree handle nor a heap-allocated
    /// storage key) whose result is offered to the cache.
    fn read_stored(&self, canonical: &str, context: &str) -> Result<Option<IVec>> {
        let k = canonical.as_bytes();
        let read = self.handle.with(|h| {
            let ticket = match self.cache.lookup(k) {
                Lookup::Hit(v) => return Ok(Some(v)),
                Lookup::Miss(ticket) => ticket,
            };
            let mut buf = [0u8; 96];
            let found = if k.len() < buf.len() {
                buf[0] = lay::RECORD;
                buf[1..=k.len()].copy_from_slice(k);
                h.tree.get(&buf[..=k.len()])
            } else {
                h.tree.get(prefixed(lay::RECORD, k))
            };
            if let (Some(t), Ok(Some(v))) = (ticket, &found) {
                self.cache.offer(t, k, v);
            }
            found
        })?;
        read.map_err(|e| backend(context, e))
    }

    fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    /// Records decoded while opening this store.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    pub(crate) fn decoded_at_open(&self) -> u64 {
        self.decoded_at_open.load(Ordering::Relaxed)
    }

    // ----- staged primitives (writer only) -----

    fn read_record(&self, s: &Staging<'_>, key: &str) -> Result<Option<AtData>> {
        match s.get_ivec(&prefixed(lay::RECORD, key.as_bytes()))? {
            Some(bytes) => decode_record(&bytes, key).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the record a write is about to replace or remove. A stored record that no
    /// longer decodes would otherwise block its key forever; it is dropped here instead,
    /// with every index entry that names it (found by scanning the two time indexes, a
    /// cost paid only on this damage path), and reported as `(None, true)`.
    fn read_replaceable(
        &self,
        s: &mut Staging<'_>,
        c: &mut Counters,
        key: &str,
    ) -> Result<(Option<AtData>, bool)> {
        match self.read_record(s, key) {
            Ok(r) => Ok((r, false)),
            Err(PersistenceError::CorruptRecord { .. }) => {
                let tree = self.handle.tree()?;
                for prefix in [lay::EXPIRY, lay::AVAILABLE] {
                    for k in tree.range(vec![prefix]..lay::prefix_end(prefix)).keys() {
                        let k = k.map_err(|e| backend("index scan", e))?;
                        if lay::split_timed(&k).is_some_and(|(_, named)| named == key.as_bytes()) {
                            s.remove(k.to_vec());
                        }
                    }
                }
                s.remove(prefixed(lay::RECORD, key.as_bytes()));
                c.key_count = c.key_count.saturating_sub(1);
                Ok((None, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The index entries (expiry, availability) a record with `meta` has.
    fn index_keys(key: &str, meta: Option<&AtMetaData>) -> [Option<Vec<u8>>; 2] {
        let entry = |prefix: u8, t: Option<Timestamp>| t.map(|t| timed(prefix, t, key.as_bytes()));
        match meta {
            Some(m) => [
                entry(lay::EXPIRY, m.expires_at),
                entry(lay::AVAILABLE, m.available_at),
            ],
            None => [None, None],
        }
    }

    fn unindex(s: &mut Staging<'_>, key: &str, old: &AtData) {
        for k in Self::index_keys(key, old.meta_data.as_ref())
            .into_iter()
            .flatten()
        {
            s.remove(k);
        }
    }

    /// Stages `new` under `key` and moves its index entries from those of `old`. An
    /// entry that stays the same (an overwrite keeps `created_at`, for one) is not
    /// rewritten: the batch carries only what changes.
    fn write_record(
        s: &mut Staging<'_>,
        c: &mut Counters,
        key: &str,
        old: Option<&AtData>,
        new: &AtData,
    ) {
        if old.is_none() {
            c.key_count += 1;
        }
        let before = Self::index_keys(key, old.and_then(|o| o.meta_data.as_ref()));
        let after = Self::index_keys(key, new.meta_data.as_ref());
        for (b, a) in before.into_iter().zip(after) {
            if b == a {
                continue;
            }
            if let Some(b) = b {
                s.remove(b);
            }
            if let Some(a) = a {
                s.insert(a, IVec::default());
            }
        }
        s.insert(prefixed(lay::RECORD, key.as_bytes()), codec::encode(new));
    }

    fn delete_record(s: &mut Staging<'_>, c: &mut Counters, key: &str, old: &AtData) {
        Self::unindex(s, key, old);
        s.remove(prefixed(lay::RECORD, key.as_bytes()));
        c.key_count = c.key_count.saturating_sub(1);
    }

    fn latest_id(s: &Staging<'_>, at_key: &str) -> Result<Option<i64>> {
        let k = prefixed(lay::COMMIT_BY_KEY, at_key.as_bytes());
        s.get_ivec(&k)?
            .map(|v| latest_id_in(at_key, &v))
            .transpose()
    }

    /// Writes `entry` (with its id) as the atKey's only entry.
    fn put_entry(
        s: &mut Staging<'_>,
        c: &mut Counters,
        entry: &CommitEntry,
        id: i64,
    ) -> Result<()> {
        match Self::latest_id(s, &entry.at_key)? {
            Some(old) if old != id => s.remove(lay::commit_key(old)),
            Some(_) => {}
            None => c.commit_count += 1,
        }
        s.insert(lay::commit_key(id), codec::encode(entry));
        s.insert(
            prefixed(lay::COMMIT_BY_KEY, entry.at_key.as_bytes()),
            lay::latest_value(id, None),
        );
        if id > c.hwm {
            c.hwm = id;
        }
        Ok(())
    }

    /// Commits `op` for `at_key`: `-1` for an elided key, else a fresh id.
    fn commit(
        &self,
        s: &mut Staging<'_>,
        c: &mut Counters,
        at_key: &str,
        op: CommitOp,
        op_time: Option<Timestamp>,
    ) -> Result<i64> {
        if key::is_commit_skipped(at_key) {
            return Ok(-1);
        }
        let id = c.hwm + 1;
        let entry = CommitEntry::new(at_key, op, op_time.unwrap_or_else(|| self.now()), id);
        Self::put_entry(s, c, &entry, id)?;
        Ok(id)
    }

    /// Deletes the atKey's entry, if any. The high-water mark is untouched.
    fn purge(s: &mut Staging<'_>, c: &mut Counters, at_key: &str) -> Result<()> {
        if let Some(old) = Self::latest_id(s, at_key)? {
            s.remove(lay::commit_key(old));
            s.remove(prefixed(lay::COMMIT_BY_KEY, at_key.as_bytes()));
            c.commit_count = c.commit_count.saturating_sub(1);
        }
        Ok(())
    }

    /// Commits or purges after a keystore write, per the write's options.
    fn record_commit(
        &self,
        s: &mut Staging<'_>,
        c: &mut Counters,
        key: &str,
        op: CommitOp,
        skip_commit: bool,
        op_time: Option<Timestamp>,
    ) -> Result<Option<i64>> {
        if skip_commit {
            if self.settings.commit_log {
                Self::purge(s, c, key)?;
            }
            return Ok(Some(-1));
        }
        if !self.settings.commit_log {
            return Ok(None);
        }
        self.commit(s, c, key, op, op_time).map(Some)
    }

    fn apply_op(&self, s: &mut Staging<'_>, c: &mut Counters, op: KsOp) -> Result<OpResult> {
        let mut events = Vec::new();
        let outcome = match op {
            KsOp::Write(args) => {
                let (id, event) = self.apply_write(s, c, *args)?;
                events.push(event);
                Outcome::Id(id)
            }
            KsOp::Remove { key, options } => {
                let id = self.apply_remove(s, c, &key, options)?;
                events.push(KeyStoreChange::KeyRemoved { key });
                Outcome::Id(id)
            }
            KsOp::Txn { ops } => {
                for (key, value) in ops {
                    match value {
                        Some(value) => {
                            let meta = value.meta_data.clone();
                            let (_, event) = self.apply_write(
                                s,
                                c,
                                WriteArgs {
                                    key,
                                    value: Some(value),
                                    meta,
                                    mode: WriteMode::PutAll,
                                    options: WriteOptions::default(),
                                },
                            )?;
                            events.push(event);
                        }
                        None => {
                            self.apply_remove(s, c, &key, RemoveOptions::default())?;
                            events.push(KeyStoreChange::KeyRemoved { key });
                        }
                    }
                }
                Outcome::Unit
            }
            KsOp::RemoveMany { keys, skip_commit } => {
                let mut n = 0;
                for key in keys {
                    let (old, dropped) = self.read_replaceable(s, c, &key)?;
                    if let Some(old) = &old {
                        Self::delete_record(s, c, &key, old);
                    }
                    if old.is_some() || dropped {
                        self.record_commit(s, c, &key, CommitOp::Delete, skip_commit, None)?;
                        events.push(KeyStoreChange::KeyRemoved { key });
                        n += 1;
                    }
                }
                Outcome::Count(n)
            }
            KsOp::ExpireRemove { keys, as_of } => {
                let mut removed = Vec::new();
                for key in keys {
                    // The key was listed by the expiry index at or before `as_of`; a record
                    // that no longer decodes is dropped with its index entries.
                    let (old, dropped) = self.read_replaceable(s, c, &key)?;
                    match old {
                        Some(old) => {
                            let expired = old
                                .meta_data
                                .as_ref()
                                .and_then(|m| m.expires_at)
                                .is_some_and(|t| t <= as_of);
                            if !expired {
                                continue;
                            }
                            Self::delete_record(s, c, &key, &old);
                        }
                        None if dropped => {}
                        None => continue,
                    }
                    if self.settings.commit_log {
                        Self::purge(s, c, &key)?;
                    }
                    events.push(KeyStoreChange::KeyRemoved { key: key.clone() });
                    removed.push(key);
                }
                Outcome::Keys(removed)
            }
            KsOp::Restore { key, value } => {
                let (existing, _) = self.read_replaceable(s, c, &key)?;
                let value = AtData {
                    key: None,
                    ..*value
                };
                Self::write_record(s, c, &key, existing.as_ref(), &value);
                Outcome::Unit
            }
            KsOp::Commit { key, op, op_time } => {
                Outcome::Id(Some(self.commit(s, c, &key, op, op_time)?))
            }
            KsOp::RemoveEntryFor { key } => {
                Self::purge(s, c, &key)?;
                Outcome::Unit
            }
            KsOp::Replay { entry } => {
                let id = entry.commit_id.unwrap_or(-1);
                if let Some(bytes) = s.get(&lay::commit_key(id))? {
                    let stored = decode_entry(&bytes, &lay::commit_key(id))?;
                    if stored.at_key == entry.at_key && stored.operation == entry.operation {
                        if id > c.hwm {
                            c.hwm = id;
                        }
                        return Ok(OpResult {
                            outcome: Outcome::Unit,
                            events,
                        });
                    }
                    return Err(PersistenceError::ReplayConflict {
                        commit_id: id,
                        stored: format!("{} {}", stored.at_key, stored.operation.symbol()),
                        replayed: format!("{} {}", entry.at_key, entry.operation.symbol()),
                    });
                }
                Self::put_entry(s, c, &entry, id)?;
                Outcome::Unit
            }
            KsOp::RaiseHwm { id } => {
                if id > c.hwm {
                    c.hwm = id;
                }
                Outcome::Unit
            }
            KsOp::RemoveSuperseded { ids } => {
                let mut removed = Vec::new();
                for id in ids {
                    let ck = lay::commit_key(id);
                    let Some(bytes) = s.get(&ck)? else { continue };
                    let entry = decode_entry(&bytes, &ck)?;
                    if Self::latest_id(s, &entry.at_key)? == Some(id) {
                        continue; // the latest entry of its key is never removed
                    }
                    s.remove(ck);
                    c.commit_count = c.commit_count.saturating_sub(1);
                    removed.push(id);
                }
                Outcome::Ids(removed)
            }
            #[cfg(feature = "test-support")]
            KsOp::Plant { entry } => {
                let id = entry.commit_id.unwrap_or(-1);
                s.insert(lay::commit_key(id), codec::encode(&entry));
                c.commit_count += 1;
                if id > c.hwm {
                    c.hwm = id;
                }
                Outcome::Unit
            }
            KsOp::Clear => unreachable_clear(),
        };
        Ok(OpResult { outcome, events })
    }

    fn apply_write(
        &self,
        s: &mut Staging<'_>,
        c: &mut Counters,
        args: WriteArgs,
    ) -> Result<(Option<i64>, KeyStoreChange)> {
        let WriteArgs {
            key,
            value,
            meta,
            mode,
            options,
        } = args;
        let (existing, _) = self.read_replaceable(s, c, &key)?;
        let asserted = options.asserted.as_ref();
        let now = self.now();
        let at_sign = self.settings.at_sign.as_str();
        let op_time = asserted.and_then(|a| a.updated_at);
        let (record, commit_op, event) = match mode {
            WriteMode::Create => Self::create_record(at_sign, value, asserted, now, &key),
            WriteMode::Put => match &existing {
                None => Self::create_record(at_sign, value, asserted, now, &key),
                Some(old) => {
                    let value = value.unwrap_or_default();
                    let meta = build_metadata(
                        at_sign,
                        value.meta_data.as_ref(),
                        old.meta_data.as_ref(),
                        asserted,
                        now,
                    );
                    (
                        AtData {
                            data: value.data,
                            meta_data: Some(meta),
                            key: None,
                        },
                        CommitOp::UpdateAll,
                        KeyStoreChange::KeyUpdated { key: key.clone() },
                    )
                }
            },
            WriteMode::PutAll | WriteMode::PutMeta => {
                let meta = build_metadata(
                    at_sign,
                    meta.as_ref(),
                    existing.as_ref().and_then(|e| e.meta_data.as_ref()),
                    asserted,
                    now,
                );
                let data = if mode == WriteMode::PutAll {
                    value.and_then(|v| v.data)
                } else {
                    existing.as_ref().and_then(|e| e.data.clone())
                };
                let event = if existing.is_some() {
                    KeyStoreChange::KeyUpdated { key: key.clone() }
                } else {
                    KeyStoreChange::KeyAdded { key: key.clone() }
                };
                let op = if mode == WriteMode::PutAll {
                    CommitOp::UpdateAll
                } else {
                    CommitOp::UpdateMeta
                };
                (
                    AtData {
                        data,
                        meta_data: Some(meta),
                        key: None,
                    },
                    op,
                    event,
                )
            }
        };
        Self::write_record(s, c, &key, existing.as_ref(), &record);
        let id = self.record_commit(s, c, &key, commit_op, options.skip_commit, op_time)?;
        Ok((id, event))
    }

    fn apply_remove(
        &self,
        s: &mut Staging<'_>,
        c: &mut Counters,
        key: &str,
        options: RemoveOptions,
    ) -> Result<Option<i64>> {
        if let (Some(old), _) = self.read_replaceable(s, c, key)? {
            Self::delete_record(s, c, key, &old);
        }
        self.record_commit(
            s,
            c,
            key,
            CommitOp::Delete,
            options.skip_commit,
            options.deleted_at,
        )
    }

    fn create_record(
        at_sign: &str,
        value: Option<AtData>,
        asserted: Option<&crate::model::AssertedTimestamps>,
        now: Timestamp,
        key: &str,
    ) -> (AtData, CommitOp, KeyStoreChange) {
        let value = value.unwrap_or_default();
        let op = if value
            .meta_data
            .as_ref()
            .is_some_and(|m| m.has_update_all_fields())
        {
            CommitOp::UpdateAll
        } else {
            CommitOp::Update
        };
        let meta = build_metadata(at_sign, value.meta_data.as_ref(), None, asserted, now);
        (
            AtData {
                data: value.data,
                meta_data: Some(meta),
                key: None,
            },
            op,
            KeyStoreChange::KeyAdded {
                key: key.to_string(),
            },
        )
    }

    /// Stages the counters that changed during the group: `mhwm` only when the newest
    /// entry does not carry the mark, and the counts on the index value of the newest
    /// entry when the group made it, else in `mcounts` when they changed (see
    /// [`Counters`]).
    fn stage_counters(s: &mut Staging<'_>, before: &Counters, after: &mut Counters) {
        let newest = s.staged(&lay::commit_key(after.hwm)).map(|v| v.cloned());
        let entry_live = match &newest {
            Some(staged) => staged.is_some() && after.hwm >= 0,
            None => after.hwm == before.hwm && before.hwm_entry_live,
        };
        if !entry_live && after.stored_hwm != after.hwm {
            s.insert(lay::HWM.to_vec(), after.hwm.to_be_bytes().to_vec());
            after.stored_hwm = after.hwm;
        }
        after.hwm_entry_live = entry_live;
        let counts = lay::Counts {
            keys: after.key_count,
            entries: after.commit_count,
        };
        let changed =
            before.commit_count != after.commit_count || before.key_count != after.key_count;
        let carrier = match newest {
            Some(Some(entry)) if after.hwm >= 0 => Self::carrier_index(s, &entry, after.hwm),
            _ => None,
        };
        if let Some(index) = carrier {
            s.insert(index, lay::latest_value(after.hwm, Some(counts)));
            after.counts_carried = true;
        } else if changed || (before.counts_carried && !entry_live) {
            s.insert(lay::COUNTS, &lay::counts_value(counts, after.hwm)[..]);
            if after.legacy_counts {
                s.remove(lay::LEGACY_KEY_COUNT);
                s.remove(lay::LEGACY_COMMIT_COUNT);
                after.legacy_counts = false;
            }
            after.counts_carried = false;
        }
        s.commit_op();
    }

    /// The latest-entry index key of the staged entry `entry` with id `id`, when this group
    /// staged that index pointing at it: the entry can then carry the counts.
    fn carrier_index(s: &Staging<'_>, entry: &[u8], id: i64) -> Option<Vec<u8>> {
        let at_key = decode_entry(entry, &lay::commit_key(id)).ok()?.at_key;
        let index = prefixed(lay::COMMIT_BY_KEY, at_key.as_bytes());
        match s.staged(&index) {
            Some(Some(v)) if lay::latest_id_of(v) == Some(id) => Some(index),
            _ => None,
        }
    }

    /// Empties the tree in bounded chunks. Each chunk is one atomic batch that removes
    /// whole logical units — a record with its index entries and its commit entry, then the
    /// remaining commit entries (tombstones) with their latest-entry pointers — and keeps
    /// the counters equal to what is left, so a crash part-way leaves a smaller, consistent
    /// store. The high-water mark is reset last, so ids are never reused unless the clear
    /// completed. Each chunk is followed by a flush at the store's durability, so sled's
    /// write backlog stays bounded however large the store is (see [`SledDb::flush`]).
    fn clear_tree(&self, db: &SledDb, tree: &sled::Tree, c: &mut Counters) -> Result<()> {
        // The chunks remove commit entries, the newest among them: the mark goes to disk
        // first, so a clear cut short keeps it.
        if c.stored_hwm != c.hwm {
            tree.insert(lay::HWM, &c.hwm.to_be_bytes()[..])
                .map_err(|e| backend("clear", e))?;
            c.stored_hwm = c.hwm;
        }
        let durability = self.settings.durability;
        // 1. Records, with their indexes and commit entries.
        let records = |s: &mut Staging<'_>, local: &mut Counters| {
            let mut n = 0;
            for item in tree
                .range(vec![lay::RECORD]..lay::prefix_end(lay::RECORD))
                .take(REMOVE_CHUNK)
            {
                let (k, v) = item.map_err(|e| backend("clear", e))?;
                let key = String::from_utf8_lossy(&k[1..]).into_owned();
                match decode_record(&v, &key) {
                    Ok(old) => Self::delete_record(s, local, &key, &old),
                    // An undecodable record goes alone; its index entries (if any) are
                    // swept in step 3.
                    Err(_) => {
                        s.remove(k.to_vec());
                        local.key_count = local.key_count.saturating_sub(1);
                    }
                }
                Self::purge(s, local, &key)?;
                n += 1;
            }
            Ok(n)
        };
        remove_in_chunks(db, tree, durability, c, records, Self::stage_counters)?;
        // 2. Commit entries without a record (tombstones), with their pointers.
        let tombstones = |s: &mut Staging<'_>, local: &mut Counters| {
            let mut n = 0;
            for item in tree
                .range(vec![lay::COMMIT_BY_KEY]..lay::prefix_end(lay::COMMIT_BY_KEY))
                .keys()
                .take(REMOVE_CHUNK)
            {
                let k = item.map_err(|e| backend("clear", e))?;
                let at_key = String::from_utf8_lossy(&k[1..]).into_owned();
                Self::purge(s, local, &at_key)?;
                n += 1;
            }
            Ok(n)
        };
        remove_in_chunks(db, tree, durability, c, tombstones, Self::stage_counters)?;
        // 3. Anything left (legacy duplicates, entries of undecodable records).
        db.sweep_tree(
            tree,
            Sweep::AllButCounters,
            durability,
            REMOVE_CHUNK,
            "clear",
        )?;
        let mut batch = sled::Batch::default();
        c.hwm = -1;
        c.stored_hwm = -1;
        c.hwm_entry_live = false;
        c.key_count = 0;
        c.commit_count = 0;
        c.counts_carried = false;
        c.legacy_counts = false;
        batch.insert(lay::HWM, &(-1i64).to_be_bytes()[..]);
        batch.insert(
            lay::COUNTS,
            &lay::counts_value(lay::Counts::default(), -1)[..],
        );
        batch.remove(lay::LEGACY_KEY_COUNT);
        batch.remove(lay::LEGACY_COMMIT_COUNT);
        tree.apply_batch(batch).map_err(|e| backend("clear", e))
    }
}

fn unreachable_clear() -> Outcome {
    // `Clear` is exclusive: `process_exclusive` applies it, `apply_op` never sees it.
    Outcome::Unit
}

impl GroupStore for KsInner {
    type Op = KsOp;
    type Answer = Outcome;
    const WRITE_GROUP: &'static str = "write group";
    /// Empties the keystore and its commit log and resets commit numbering.
    const CLEAR: KsOp = KsOp::Clear;

    fn handle(&self) -> &StoreHandle {
        &self.handle
    }

    fn write_queue(&self) -> &WriteQueue<Queued> {
        &self.queue
    }

    /// `Clear` scans the tree, so it runs alone.
    fn exclusive(op: &KsOp) -> bool {
        matches!(op, KsOp::Clear)
    }

    /// Applies one run of operations (no `Clear` among them) as one batch.
    fn process_run(&self, db: &SledDb, tree: &sled::Tree, run: Vec<Queued>) {
        let mut group = WriteGroup::stage(tree, &self.counters, run, |s, c, op| {
            self.apply_op(s, c, op)
        });
        group.stage_counters(Self::stage_counters);
        group.fence_records(&self.cache, lay::RECORD);
        group.finish(
            db,
            self.settings.durability,
            "applying a write group",
            |r| {
                // Readers already see the change, so subscribers hear of it too.
                self.events.send_all(r.events);
                r.outcome
            },
        );
    }

    /// Applies a `Clear`, the only exclusive operation.
    fn process_exclusive(&self, db: &SledDb, tree: &sled::Tree, q: Queued) {
        let mut counters = lock(&self.counters);
        let fence = self.cache.fence();
        fence.forget_all();
        let r = self.clear_tree(db, tree, &mut counters);
        drop(fence);
        let r = r.and_then(|_| db.flush(self.settings.durability));
        drop(counters);
        let _ = q.tx.send(r.map(|_| Outcome::Unit));
    }

    /// Releases the database. Later calls on any handle return `StoreClosed`; change
    /// streams end.
    fn close(&self) {
        self.handle.close();
        self.cache.clear();
        self.events.close();
    }
}

/// The sled keystore: [`AtKeyValueStore<AtData, AtMetaData>`], with or without a commit
/// log. Obtain it from a bundle ([`crate::store::Bundle::key_value_store`]).
#[derive(Clone, Debug)]
pub struct SledKeyStore {
    inner: Arc<KsInner>,
}

/// The commit log of a sled keystore. It shares the keystore's database and writer, so a
/// keystore write and its entry are one atomic unit.
#[derive(Clone, Debug)]
pub struct SledCommitLog {
    inner: Arc<KsInner>,
}

impl SledKeyStore {
    pub(crate) fn new(inner: Arc<KsInner>) -> Self {
        SledKeyStore { inner }
    }

    /// Validates `key` and writes through the group writer; the new commit id, if any.
    async fn write(
        &self,
        key: &str,
        value: Option<AtData>,
        meta: Option<AtMetaData>,
        mode: WriteMode,
        options: WriteOptions,
    ) -> Result<Option<i64>> {
        let key = validate_write_key(key)?;
        let args = WriteArgs {
            key,
            value,
            meta,
            mode,
            options,
        };
        run(&self.inner, KsOp::Write(Box::new(args)))
            .await
            .map(expect_id)
    }

    /// This keystore's commit log as its concrete type, for the crate's own tests.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn test_support_commit_log(&self) -> SledCommitLog {
        SledCommitLog {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The number of records decoded while this store was opened. Opening reads only
    /// counters, so this stays a small constant however large the store is.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn records_decoded_at_open(&self) -> u64 {
        self.inner.decoded_at_open()
    }
}

fn expect_id(o: Outcome) -> Option<i64> {
    match o {
        Outcome::Id(id) => id,
        _ => None,
    }
}

fn validate_write_key(key: &str) -> Result<String> {
    let canonical = key::validate_key(key)?;
    key::check_key_length(key, &canonical)?;
    Ok(canonical)
}

impl KsInner {
    /// Keys that are expired or not yet available at `now`, from the two indexes.
    fn unavailable(&self, tree: &sled::Tree, now: Timestamp) -> Result<HashSet<Vec<u8>>> {
        let mut out = HashSet::new();
        let expired =
            tree.range(vec![lay::EXPIRY]..lay::timed_bound(lay::EXPIRY, now.plus_millis(1)));
        for item in expired.keys() {
            let k = item.map_err(|e| backend("expiry index", e))?;
            if let Some((_, key)) = lay::split_timed(&k) {
                out.insert(key.to_vec());
            }
        }
        let unborn = tree.range(
            lay::timed_bound(lay::AVAILABLE, now.plus_millis(1))..lay::prefix_end(lay::AVAILABLE),
        );
        for item in unborn.keys() {
            let k = item.map_err(|e| backend("availability index", e))?;
            if let Some((_, key)) = lay::split_timed(&k) {
                out.insert(key.to_vec());
            }
        }
        Ok(out)
    }

    fn expired_keys(&self, tree: &sled::Tree, as_of: Timestamp) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in tree
            .range(vec![lay::EXPIRY]..lay::timed_bound(lay::EXPIRY, as_of.plus_millis(1)))
            .keys()
        {
            let k = item.map_err(|e| backend("expiry index", e))?;
            if let Some((_, key)) = lay::split_timed(&k) {
                out.push(String::from_utf8_lossy(key).into_owned());
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl KeyValueStore<AtData> for SledKeyStore {
    async fn get(&self, key: &str) -> Result<AtData> {
        let canonical = canonical(key);
        let Some(bytes) = self.inner.read_stored(&canonical, "get")? else {
            return Err(PersistenceError::KeyNotFound {
                key: canonical.into_owned(),
            });
        };
        // Built where it is returned from: no copy of the record between the layers.
        let mut data = AtData::default();
        decode_record_into(&bytes, &canonical, &mut data)?;
        data.key = Some(canonical.into_owned());
        Ok(data)
    }

    async fn put(&self, key: &str, value: AtData, options: WriteOptions) -> Result<Option<i64>> {
        self.write(key, Some(value), None, WriteMode::Put, options)
            .await
    }

    async fn create(&self, key: &str, value: AtData, options: WriteOptions) -> Result<Option<i64>> {
        self.write(key, Some(value), None, WriteMode::Create, options)
            .await
    }

    async fn remove(&self, key: &str, options: RemoveOptions) -> Result<Option<i64>> {
        let key = validate_write_key(key)?;
        self.inner.handle.ensure_open()?;
        let args = RemoveHookArgs {
            key: key.clone(),
            skip_commit: options.skip_commit,
        };
        let remove = run(&self.inner, KsOp::Remove { key, options });
        self.inner.hooks.around(&args, remove).await.map(expect_id)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let tree = self.inner.handle.tree()?;
        let canonical = canonical(key);
        tree.contains_key(prefixed(lay::RECORD, canonical.as_bytes()))
            .map_err(|e| backend("exists", e))
    }

    async fn get_keys(&self, regex: Option<&str>) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let re = regex_of(regex)?;
        let hidden = self.inner.unavailable(&tree, self.inner.now())?;
        let iter = tree
            .range(vec![lay::RECORD]..lay::prefix_end(lay::RECORD))
            .keys();
        let stream = futures::stream::iter(iter.filter_map(move |item| {
            let k = match item {
                Ok(k) => k,
                Err(e) => return Some(Err(backend("get_keys", e))),
            };
            let key = &k[1..];
            if hidden.contains(key) {
                return None;
            }
            let key = String::from_utf8_lossy(key).into_owned();
            match &re {
                Some(re) if !re.is_match(&key) => None,
                _ => Some(Ok(key)),
            }
        }));
        Ok(stream.boxed())
    }

    async fn get_expired_keys(&self) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let keys = self.inner.expired_keys(&tree, self.inner.now())?;
        Ok(futures::stream::iter(keys.into_iter().map(Ok)).boxed())
    }

    async fn delete_expired_keys(&self) -> Result<bool> {
        let tree = self.inner.handle.tree()?;
        let now = self.inner.now();
        let keys = self.inner.expired_keys(&tree, now)?;
        let inner = &self.inner;
        inner
            .hooks
            .sweep(keys, |keys| async move {
                match run(inner, KsOp::ExpireRemove { keys, as_of: now }).await? {
                    Outcome::Keys(k) => Ok(k),
                    _ => Ok(Vec::new()),
                }
            })
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<BTreeMap<String, AtData>> {
        self.inner.handle.ensure_open()?;
        let mut out = BTreeMap::new();
        for k in keys {
            let canonical = canonical(k);
            if out.contains_key(canonical.as_ref()) {
                continue;
            }
            if let Some(bytes) = self.inner.read_stored(&canonical, "get_many")? {
                let canonical = canonical.into_owned();
                let mut data = decode_record(&bytes, &canonical)?;
                data.key = Some(canonical.clone());
                out.insert(canonical, data);
            }
        }
        Ok(out)
    }

    async fn remove_many(&self, keys: &[&str], skip_commit: bool) -> Result<u64> {
        let tree = self.inner.handle.tree()?;
        let mut seen = HashSet::new();
        let mut canon = Vec::new();
        for k in keys {
            let c = validate_write_key(k)?;
            if seen.insert(c.clone()) {
                canon.push(c);
            }
        }
        // Hooks run for the keys present now; the writer re-checks presence.
        let present = |c: &str| {
            tree.contains_key(prefixed(lay::RECORD, c.as_bytes()))
                .map_err(|e| backend("remove_many", e))
        };
        let inner = &self.inner;
        inner
            .hooks
            .around_many(canon, skip_commit, present, |keys| async move {
                match run(inner, KsOp::RemoveMany { keys, skip_commit }).await? {
                    Outcome::Count(n) => Ok(n),
                    _ => Ok(0),
                }
            })
            .await
    }

    async fn next_expires_at(&self) -> Result<Option<Timestamp>> {
        let tree = self.inner.handle.tree()?;
        let (from, to) = (vec![lay::EXPIRY], lay::prefix_end(lay::EXPIRY));
        first_instant(&tree, from, to, "next_expires_at")
    }

    async fn peek_expired(
        &self,
        as_of: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let as_of = as_of.unwrap_or_else(|| self.inner.now());
        let to = lay::timed_bound(lay::EXPIRY, as_of.plus_millis(1));
        Ok(indexed_keys(
            &tree,
            vec![lay::EXPIRY],
            to,
            limit,
            "peek_expired",
        ))
    }

    fn supports_snapshots(&self) -> bool {
        false
    }

    async fn snapshot(&self) -> Result<Box<dyn KeyStoreSnapshot<AtData>>> {
        self.inner.handle.ensure_open()?;
        Ok(Box::new(SledSnapshot {
            store: self.clone(),
            released: Released::default(),
        }))
    }

    async fn begin_transaction(&self) -> Result<Arc<dyn KeyStoreTxn<AtData>>> {
        self.inner.handle.ensure_open()?;
        Ok(Arc::new(SledTxn {
            store: self.clone(),
            state: Mutex::new(TxnBuffer::default()),
        }))
    }

    async fn stats(&self) -> Result<KeyStoreStats> {
        let tree = self.inner.handle.tree()?;
        let db = self.inner.handle.db()?;
        let count = |prefix: u8| -> Result<u64> {
            let mut n = 0;
            for k in tree.range(vec![prefix]..lay::prefix_end(prefix)).keys() {
                k.map_err(|e| backend("stats", e))?;
                n += 1;
            }
            Ok(n)
        };
        // No index keeps creation times (layout: "No creation index"): read every record's.
        let (mut oldest, mut newest) = (None::<Timestamp>, None::<Timestamp>);
        for item in creation_times(&tree) {
            if let (_, Some(t)) = item? {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
        Ok(KeyStoreStats {
            total_keys: lock(&self.inner.counters).key_count,
            ttl_keys: count(lay::EXPIRY)?,
            ttb_keys: count(lay::AVAILABLE)?,
            size_bytes: db.size_on_disk()?,
            oldest_created_at: oldest,
            newest_created_at: newest,
        })
    }

    fn changes(&self) -> ChangeStream {
        self.inner
            .events
            .stream(|missed| KeyStoreChange::Lagged { missed })
    }

    fn add_pre_remove_hook(&self, hook: RemoveHook) {
        self.inner.hooks.add(true, hook);
    }

    fn add_post_remove_hook(&self, hook: RemoveHook) {
        self.inner.hooks.add(false, hook);
    }
}

#[async_trait]
impl AtKeyValueStore<AtData, AtMetaData> for SledKeyStore {
    fn commit_log(&self) -> Option<Arc<dyn CommitLog>> {
        if self.inner.settings.commit_log {
            Some(Arc::new(SledCommitLog {
                inner: Arc::clone(&self.inner),
            }))
        } else {
            None
        }
    }

    async fn put_meta(
        &self,
        key: &str,
        metadata: AtMetaData,
        options: WriteOptions,
    ) -> Result<Option<i64>> {
        self.write(key, None, Some(metadata), WriteMode::PutMeta, options)
            .await
    }

    async fn put_all(&self, key: &str, value: AtData, metadata: AtMetaData) -> Result<Option<i64>> {
        let options = WriteOptions::default();
        self.write(key, Some(value), Some(metadata), WriteMode::PutAll, options)
            .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<AtMetaData>> {
        let canonical = canonical(key);
        let Some(bytes) = self.inner.read_stored(&canonical, "get")? else {
            return Ok(None);
        };
        record_meta(&bytes, &canonical)
    }

    async fn restore(&self, key: &str, value: AtData) -> Result<()> {
        let key = validate_write_key(key)?;
        run(
            &self.inner,
            KsOp::Restore {
                key,
                value: Box::new(value),
            },
        )
        .await
        .map(|_| ())
    }

    async fn scan_keys(
        &self,
        pattern: &KeyPattern,
        options: ScanOptions,
    ) -> Result<ResultStream<String>> {
        let keys = self.scan_iter(pattern, options)?;
        let skip = options.skip.unwrap_or(0);
        let limit = options.limit.unwrap_or(usize::MAX);
        Ok(futures::stream::iter(keys.skip(skip).take(limit)).boxed())
    }

    fn supports_path_queries(&self) -> bool {
        true
    }

    async fn query_by_path(
        &self,
        pattern: &KeyPattern,
        predicate: &Predicate,
        options: ScanOptions,
    ) -> Result<ResultStream<KeyEntry<AtData, AtMetaData>>> {
        predicate.validate()?;
        let tree = self.inner.handle.tree()?;
        let keys = self.scan_iter(
            pattern,
            ScanOptions {
                include_expired: true,
                ..options
            },
        )?;
        let predicate = predicate.clone();
        let entries = keys.filter_map(move |k| {
            let key = match k {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            let bytes = match tree.get(prefixed(lay::RECORD, key.as_bytes())) {
                Ok(Some(b)) => b,
                Ok(None) => return None, // removed meanwhile
                Err(e) => return Some(Err(backend("query_by_path", e))),
            };
            match decode_record(&bytes, &key) {
                Ok(mut data) if predicate.matches_text(data.data.as_deref()) => {
                    data.key = Some(key.clone());
                    let metadata = data.meta_data.clone();
                    Some(Ok(KeyEntry {
                        key,
                        data,
                        metadata,
                    }))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
        let skip = options.skip.unwrap_or(0);
        let limit = options.limit.unwrap_or(usize::MAX);
        Ok(futures::stream::iter(entries.skip(skip).take(limit)).boxed())
    }

    async fn next_available_at(&self, as_of: Option<Timestamp>) -> Result<Option<Timestamp>> {
        let tree = self.inner.handle.tree()?;
        let as_of = as_of.unwrap_or_else(|| self.inner.now());
        let from = lay::timed_bound(lay::AVAILABLE, as_of.plus_millis(1));
        first_instant(
            &tree,
            from,
            lay::prefix_end(lay::AVAILABLE),
            "next_available_at",
        )
    }

    async fn peek_newly_available(
        &self,
        since: Timestamp,
        as_of: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<ResultStream<String>> {
        let tree = self.inner.handle.tree()?;
        let as_of = as_of.unwrap_or_else(|| self.inner.now());
        if as_of <= since {
            return Ok(futures::stream::empty().boxed());
        }
        let from = lay::timed_bound(lay::AVAILABLE, since.plus_millis(1));
        let to = lay::timed_bound(lay::AVAILABLE, as_of.plus_millis(1));
        Ok(indexed_keys(&tree, from, to, limit, "peek_newly_available"))
    }
}

/// The keys of the time-index entries in `[from, to)`, in time order, at most `limit`.
fn indexed_keys(
    tree: &sled::Tree,
    from: Vec<u8>,
    to: Vec<u8>,
    limit: Option<usize>,
    context: &'static str,
) -> ResultStream<String> {
    let iter = tree
        .range(from..to)
        .keys()
        .take(limit.unwrap_or(usize::MAX));
    futures::stream::iter(iter.map(move |item| {
        let k = item.map_err(|e| backend(context, e))?;
        Ok(lay::split_timed(&k)
            .map(|(_, key)| String::from_utf8_lossy(key).into_owned())
            .unwrap_or_default())
    }))
    .boxed()
}

type KeyIter = Box<dyn Iterator<Item = Result<String>> + Send>;

impl SledKeyStore {
    /// The keys `scan_keys` yields before skip and limit.
    fn scan_iter(&self, pattern: &KeyPattern, options: ScanOptions) -> Result<KeyIter> {
        let tree = self.inner.handle.tree()?;
        let hidden = if options.include_expired {
            None
        } else {
            Some(self.inner.unavailable(&tree, self.inner.now())?)
        };
        let ordered: KeyIter = match options.order_by {
            None | Some(OrderByKey::ByKey) => Box::new(record_keys(&tree)),
            Some(OrderByKey::ByCreatedAt) => by_creation(&tree)?,
            Some(OrderByKey::ByExpiresAt) => index_then_rest(&tree, lay::EXPIRY)?,
        };
        let pattern = pattern.clone();
        Ok(Box::new(ordered.filter(move |k| match k {
            Ok(k) => {
                hidden.as_ref().is_none_or(|h| !h.contains(k.as_bytes())) && pattern.matches(k)
            }
            Err(_) => true,
        })))
    }
}

/// Every record key, ascending.
fn record_keys(tree: &sled::Tree) -> impl Iterator<Item = Result<String>> + Send {
    tree.range(vec![lay::RECORD]..lay::prefix_end(lay::RECORD))
        .keys()
        .map(|k| {
            k.map(|k| String::from_utf8_lossy(&k[1..]).into_owned())
                .map_err(|e| backend("scan", e))
        })
}

/// Every record's key and `created_at`, in key order. A record that no longer decodes
/// counts as having none (a scan lists keys; reading the record reports the damage).
fn creation_times(
    tree: &sled::Tree,
) -> impl Iterator<Item = Result<(String, Option<Timestamp>)>> + '_ {
    tree.range(vec![lay::RECORD]..lay::prefix_end(lay::RECORD))
        .map(|item| {
            let (k, v) = item.map_err(|e| backend("reading creation times", e))?;
            let key = String::from_utf8_lossy(&k[1..]).into_owned();
            let created = record_meta(&v, &key)
                .ok()
                .flatten()
                .and_then(|m| m.created_at);
            Ok((key, created))
        })
}

/// Every record key by `created_at`, ascending, ties and records without one (last) in
/// key order. Reads and decodes every record: ordering by creation is a rare, diagnostic
/// scan, and keeps no index (layout: "No creation index").
fn by_creation(tree: &sled::Tree) -> Result<KeyIter> {
    let mut all = creation_times(tree).collect::<Result<Vec<_>>>()?;
    // Stable: equal keys of the sort keep the key order they were read in.
    all.sort_by_key(|(_, created)| (created.is_none(), *created));
    Ok(Box::new(all.into_iter().map(|(key, _)| Ok(key))))
}

/// The keys of a time index in time order, then every other record key (nulls last).
fn index_then_rest(tree: &sled::Tree, prefix: u8) -> Result<KeyIter> {
    let mut ordered = Vec::new();
    let mut seen = HashSet::new();
    for k in tree.range(vec![prefix]..lay::prefix_end(prefix)).keys() {
        let k = k.map_err(|e| backend("scan", e))?;
        if let Some((_, key)) = lay::split_timed(&k) {
            seen.insert(key.to_vec());
            ordered.push(Ok(String::from_utf8_lossy(key).into_owned()));
        }
    }
    let rest = record_keys(tree).filter(move |k| match k {
        Ok(k) => !seen.contains(k.as_bytes()),
        Err(_) => true,
    });
    Ok(Box::new(ordered.into_iter().chain(rest)))
}

/// A live-reading snapshot (sled 0.34 has no read snapshot).
struct SledSnapshot {
    store: SledKeyStore,
    released: Released,
}

#[async_trait]
impl KeyStoreSnapshot<AtData> for SledSnapshot {
    async fn get(&self, key: &str) -> Result<Option<AtData>> {
        self.released.check()?;
        found(self.store.get(key).await)
    }

    async fn scan_keys(&self, pattern: &KeyPattern) -> Result<ResultStream<String>> {
        self.released.check()?;
        self.store.scan_keys(pattern, ScanOptions::default()).await
    }

    async fn release(&self) {
        self.released.release();
    }
}

/// A keystore transaction: a buffer applied as one atomic write group.
struct SledTxn {
    store: SledKeyStore,
    state: Mutex<TxnBuffer<AtData>>,
}

#[async_trait]
impl KeyStoreTxn<AtData> for SledTxn {
    async fn put(&self, key: &str, value: AtData) -> Result<()> {
        let key = validate_write_key(key)?;
        lock(&self.state).buffer(key, Some(value))
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let key = validate_write_key(key)?;
        lock(&self.state).buffer(key, None)
    }

    async fn get(&self, key: &str) -> Result<Option<AtData>> {
        let canonical = key::canonical_key(key);
        let buffered = lock(&self.state).lookup(&canonical)?.cloned();
        match buffered {
            Some(Some(mut v)) => {
                v.key = Some(canonical);
                Ok(Some(v))
            }
            Some(None) => Ok(None),
            None => found(self.store.get(key).await),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    async fn commit(&self) -> Result<()> {
        let Some(ops) = lock(&self.state).commit()? else {
            return Ok(());
        };
        run(&self.store.inner, KsOp::Txn { ops }).await.map(|_| ())
    }
}

#[async_trait]
impl Compactable for SledKeyStore {
    async fn compact(&self, dry_run: bool) -> Result<ResultStream<CompactedItem>> {
        if !self.inner.settings.commit_log {
            self.inner.handle.ensure_open()?;
            return Ok(futures::stream::empty().boxed());
        }
        SledCommitLog {
            inner: Arc::clone(&self.inner),
        }
        .compact(dry_run)
        .await
    }
}

impl SledCommitLog {
    fn superseded(&self) -> Result<Vec<i64>> {
        let tree = self.inner.handle.tree()?;
        let mut out = Vec::new();
        for item in tree.range(vec![lay::COMMIT]..lay::prefix_end(lay::COMMIT)) {
            let (k, v) = item.map_err(|e| backend("compact", e))?;
            let Some(id) = lay::commit_id_of(&k) else {
                continue;
            };
            let entry = decode_entry(&v, &k)?;
            let latest = tree
                .get(prefixed(lay::COMMIT_BY_KEY, entry.at_key.as_bytes()))
                .map_err(|e| backend("compact", e))?
                .and_then(|v| lay::latest_id_of(&v));
            if latest != Some(id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Plants a commit entry without touching the latest-entry index, to build the legacy
    /// duplicate state compaction exists for. Test support only.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub async fn plant_superseded_entry(&self, entry: CommitEntry) -> Result<()> {
        run(&self.inner, KsOp::Plant { entry }).await.map(|_| ())
    }
}

#[async_trait]
impl Compactable for SledCommitLog {
    async fn compact(&self, dry_run: bool) -> Result<ResultStream<CompactedItem>> {
        let ids = self.superseded()?;
        let ids = if dry_run || ids.is_empty() {
            ids
        } else {
            match run(&self.inner, KsOp::RemoveSuperseded { ids }).await? {
                Outcome::Ids(ids) => ids,
                _ => Vec::new(),
            }
        };
        Ok(futures::stream::iter(ids.into_iter().map(|i| Ok(CompactedItem::CommitId(i)))).boxed())
    }
}

fn validate_commit_key(key: &str) -> Result<()> {
    if key::classify(&key.to_lowercase()) == key::KeyType::InvalidKey {
        return Err(PersistenceError::InvalidKey {
            key: key.to_string(),
            reason: "not a valid atKey".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl CommitLog for SledCommitLog {
    async fn commit(&self, key: &str, op: CommitOp, op_time: Option<Timestamp>) -> Result<i64> {
        self.inner.handle.ensure_open()?;
        if key::is_commit_skipped(key) {
            return Ok(-1);
        }
        validate_commit_key(key)?;
        match run(
            &self.inner,
            KsOp::Commit {
                key: key.to_string(),
                op,
                op_time,
            },
        )
        .await?
        {
            Outcome::Id(Some(id)) => Ok(id),
            _ => Ok(-1),
        }
    }

    async fn remove_entry_for(&self, key: &str) -> Result<()> {
        run(
            &self.inner,
            KsOp::RemoveEntryFor {
                key: key.to_string(),
            },
        )
        .await
        .map(|_| ())
    }

    async fn replay(&self, entry: CommitEntry) -> Result<()> {
        match entry.commit_id {
            None => {
                return Err(PersistenceError::invalid_argument(
                    "entry.commit_id",
                    "a replayed entry needs a commit id",
                ))
            }
            Some(id) if id < 0 => {
                return Err(PersistenceError::invalid_argument(
                    "entry.commit_id",
                    format!("commit ids are non-negative, got {id}"),
                ))
            }
            _ => {}
        }
        validate_commit_key(&entry.at_key)?;
        run(&self.inner, KsOp::Replay { entry }).await.map(|_| ())
    }

    async fn raise_last_committed_sequence_number(&self, commit_id: i64) -> Result<()> {
        run(&self.inner, KsOp::RaiseHwm { id: commit_id })
            .await
            .map(|_| ())
    }

    async fn iterate(&self, options: IterateOptions) -> Result<ResultStream<CommitEntry>> {
        let tree = self.inner.handle.tree()?;
        let start = lay::commit_key(options.from_commit_id.unwrap_or(0).max(0));
        let iter = tree.range(start..lay::prefix_end(lay::COMMIT));
        Ok(futures::stream::iter(iter.filter_map(move |item| {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return Some(Err(backend("iterate", e))),
            };
            match decode_entry(&v, &k) {
                Ok(e) if options.admits(&e) => Some(Ok(e)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }))
        .boxed())
    }

    async fn iterate_rev(&self, from_commit_id: Option<i64>) -> Result<ResultStream<CommitEntry>> {
        let tree = self.inner.handle.tree()?;
        let end = match from_commit_id {
            Some(id) if id < 0 => return Ok(futures::stream::empty().boxed()),
            Some(id) => lay::commit_key(id.saturating_add(1)),
            None => lay::prefix_end(lay::COMMIT),
        };
        let iter = tree.range(vec![lay::COMMIT]..end).rev();
        Ok(futures::stream::iter(iter.map(|item| {
            let (k, v) = item.map_err(|e| backend("iterate_rev", e))?;
            decode_entry(&v, &k)
        }))
        .boxed())
    }

    async fn last_committed_sequence_number(&self) -> Result<i64> {
        self.inner.handle.ensure_open()?;
        Ok(lock(&self.inner.counters).hwm)
    }

    async fn first_committed_sequence_number(&self) -> Result<Option<i64>> {
        let tree = self.inner.handle.tree()?;
        let first = tree
            .range(vec![lay::COMMIT]..lay::prefix_end(lay::COMMIT))
            .keys()
            .next()
            .transpose()
            .map_err(|e| backend("first_committed_sequence_number", e))?;
        Ok(first.and_then(|k| lay::commit_id_of(&k)))
    }

    async fn get_latest_commit_entry(&self, key: &str) -> Result<Option<CommitEntry>> {
        let tree = self.inner.handle.tree()?;
        let Some(id) = tree
            .get(prefixed(lay::COMMIT_BY_KEY, key.as_bytes()))
            .map_err(|e| backend("get_latest_commit_entry", e))?
        else {
            return Ok(None);
        };
        let ck = lay::commit_key(latest_id_in(key, &id)?);
        match tree
            .get(&ck)
            .map_err(|e| backend("get_latest_commit_entry", e))?
        {
            Some(v) => decode_entry(&v, &ck).map(Some),
            None => Ok(None),
        }
    }

    async fn entries_count(&self) -> Result<u64> {
        self.inner.handle.ensure_open()?;
        Ok(lock(&self.inner.counters).commit_count)
    }

    async fn size_bytes(&self) -> Result<u64> {
        self.inner.handle.db()?.size_on_disk()
    }
}

/// A direct decoder of format-1 keystore records and commit entries (the hottest reads:
/// `get`, and the sync query's pages), equivalent to [`codec::decode`] for `AtData` and
/// `CommitEntry`: the same bincode layout (varints, zig-zag `i64`, `0`/`1`
/// option tags and booleans, length-prefixed UTF-8 strings, fields in declaration order,
/// no trailing bytes), without serde's per-field dispatch. It returns `None` for anything
/// it does not decode completely (another format byte, a damaged record), and the caller
/// then asks the codec, so results and errors are exactly the codec's.
///
/// Records are decoded in place, into a target the caller owns, so a read moves no
/// ~600-byte record between layers, and an absent option costs one byte test.
///
/// Every struct is built or destructured with all its fields named, so a field added to the
/// model fails to compile here instead of decoding wrongly; the unit tests compare it with
/// the codec.
mod record_v1 {
    use crate::model::codec::RECORD_FORMAT_V1;
    use crate::model::{
        AppMetadata, AtData, AtMetaData, CommitEntry, CommitOp, HashingAlgo, PublicKeyHash,
        Timestamp,
    };

    struct Cursor<'a>(&'a [u8]);

    impl<'a> Cursor<'a> {
        #[inline(always)]
        fn byte(&mut self) -> Option<u8> {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(b)
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.0.len() {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        fn varint(&mut self) -> Option<u64> {
            match self.byte()? {
                b @ 0..=250 => Some(u64::from(b)),
                251 => Some(u64::from(u16::from_le_bytes(
                    self.take(2)?.try_into().ok()?,
                ))),
                252 => Some(u64::from(u32::from_le_bytes(
                    self.take(4)?.try_into().ok()?,
                ))),
                253 => Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?)),
                _ => None,
            }
        }

        fn i64(&mut self) -> Option<i64> {
            let n = self.varint()?;
            Some(if n.is_multiple_of(2) {
                (n / 2) as i64
            } else {
                !(n / 2) as i64
            })
        }

        #[inline(always)]
        fn bool(&mut self) -> Option<bool> {
            match self.byte()? {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            }
        }

        fn str(&mut self) -> Option<&'a str> {
            let len = usize::try_from(self.varint()?).ok()?;
            std::str::from_utf8(self.take(len)?).ok()
        }

        /// An owned string: copied, then checked in place (measured cheaper than checking
        /// the borrowed bytes, then copying them).
        fn string(&mut self) -> Option<String> {
            let len = usize::try_from(self.varint()?).ok()?;
            String::from_utf8(self.take(len)?.to_vec()).ok()
        }

        fn timestamp(&mut self) -> Option<Timestamp> {
            self.i64().map(Timestamp::from_millis)
        }

        fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
            if self.bool()? {
                read(self).map(Some)
            } else {
                Some(None)
            }
        }

        /// Reads an option into `slot`, which must be `None`: an absent value leaves it
        /// untouched. Always inlined, so an absent value costs a byte test, neither a call
        /// nor a store.
        #[inline(always)]
        fn opt_into<T>(
            &mut self,
            slot: &mut Option<T>,
            read: impl FnOnce(&mut Self) -> Option<T>,
        ) -> Option<()> {
            if self.bool()? {
                *slot = Some(read(self)?);
            }
            Some(())
        }
    }

    fn pub_key_hash(c: &mut Cursor<'_>) -> Option<PublicKeyHash> {
        Some(PublicKeyHash {
            hash: c.string()?,
            algo: match c.varint()? {
                0 => HashingAlgo::Sha256,
                1 => HashingAlgo::Sha512,
                _ => return None,
            },
        })
    }

    fn app_metadata(c: &mut Cursor<'_>) -> Option<AppMetadata> {
        Some(AppMetadata {
            provider_id: c.string()?,
            additional: c.opt(Cursor::string)?,
        })
    }

    /// The options after `version` in `AtMetaData` (`available_at` to `app_metadata`).
    const ABSENT_AFTER_VERSION: usize = 20;

    /// Reads a metadata into `m`, which must be `AtMetaData::default()`.
    #[inline(always)]
    fn metadata_into(c: &mut Cursor<'_>, m: &mut AtMetaData) -> Option<()> {
        // Every field is named (no `..`), so a field added to the model fails to compile
        // here; the reads below run in declaration order.
        let AtMetaData {
            created_by,
            updated_by,
            created_at,
            updated_at,
            expires_at,
            status,
            version,
            available_at,
            ttb,
            ttl,
            ttr,
            refresh_at,
            is_cascade,
            is_binary,
            is_encrypted,
            data_signature,
            shared_key_enc,
            pub_key_cs,
            encoding,
            enc_key_name,
            enc_algo,
            iv_nonce,
            ske_enc_key_name,
            ske_enc_algo,
            pub_key_hash: key_hash,
            immutable,
            app_metadata: app,
        } = m;
        c.opt_into(created_by, Cursor::string)?;
        c.opt_into(updated_by, Cursor::string)?;
        c.opt_into(created_at, Cursor::timestamp)?;
        c.opt_into(updated_at, Cursor::timestamp)?;
        c.opt_into(expires_at, Cursor::timestamp)?;
        c.opt_into(status, Cursor::string)?;
        c.opt_into(version, Cursor::i64)?;
        // The metadata builder sets only fields above this line; a record written without
        // caller metadata ends with the other 20 options absent, 20 zero bytes, and the
        // record ends there. One comparison replaces 20 tag tests; any other tail (a
        // present option, a damaged or longer record) is read field by field below.
        if c.0 == [0u8; ABSENT_AFTER_VERSION] {
            c.0 = &[];
            return Some(());
        }
        c.opt_into(available_at, Cursor::timestamp)?;
        c.opt_into(ttb, Cursor::i64)?;
        c.opt_into(ttl, Cursor::i64)?;
        c.opt_into(ttr, Cursor::i64)?;
        c.opt_into(refresh_at, Cursor::timestamp)?;
        c.opt_into(is_cascade, Cursor::bool)?;
        c.opt_into(is_binary, Cursor::bool)?;
        c.opt_into(is_encrypted, Cursor::bool)?;
        c.opt_into(data_signature, Cursor::string)?;
        c.opt_into(shared_key_enc, Cursor::string)?;
        c.opt_into(pub_key_cs, Cursor::string)?;
        c.opt_into(encoding, Cursor::string)?;
        c.opt_into(enc_key_name, Cursor::string)?;
        c.opt_into(enc_algo, Cursor::string)?;
        c.opt_into(iv_nonce, Cursor::string)?;
        c.opt_into(ske_enc_key_name, Cursor::string)?;
        c.opt_into(ske_enc_algo, Cursor::string)?;
        c.opt_into(key_hash, pub_key_hash)?;
        c.opt_into(immutable, Cursor::bool)?;
        c.opt_into(app, app_metadata)?;
        Some(())
    }

    /// The entry, or `None` when the bytes are not a complete format-1 `CommitEntry`.
    pub(super) fn decode_entry(bytes: &[u8]) -> Option<CommitEntry> {
        let (&format, payload) = bytes.split_first()?;
        if format != RECORD_FORMAT_V1 {
            return None;
        }
        let mut c = Cursor(payload);
        let entry = CommitEntry {
            at_key: c.string()?,
            // Variant indexes in declaration order.
            operation: match c.varint()? {
                0 => CommitOp::Update,
                1 => CommitOp::Delete,
                2 => CommitOp::UpdateMeta,
                3 => CommitOp::UpdateAll,
                _ => return None,
            },
            op_time: c.timestamp()?,
            commit_id: c.opt(Cursor::i64)?,
        };
        c.0.is_empty().then_some(entry)
    }

    /// Decodes the format-1 record `bytes` into `out`, overwriting its `data` and
    /// `meta_data` and leaving its `key`. False when the bytes are not a complete format-1
    /// `AtData`; `out` is then partly written and must be overwritten by the caller.
    pub(super) fn decode_into(bytes: &[u8], out: &mut AtData) -> bool {
        let AtData {
            data,
            meta_data,
            key: _,
        } = out;
        record_into(bytes, Some(data), meta_data).is_some()
    }

    /// Decodes the metadata of the format-1 record `bytes` into `meta`, overwriting it.
    /// Takes exactly the bytes [`decode_into`] takes (the value is checked as text, not
    /// copied); false otherwise, `meta` then partly written.
    pub(super) fn decode_meta_into(bytes: &[u8], meta: &mut Option<AtMetaData>) -> bool {
        record_into(bytes, None, meta).is_some()
    }

    /// Reads a record into `meta_data` and, when given, `data`.
    fn record_into(
        bytes: &[u8],
        data: Option<&mut Option<String>>,
        meta_data: &mut Option<AtMetaData>,
    ) -> Option<()> {
        let (&format, payload) = bytes.split_first()?;
        if format != RECORD_FORMAT_V1 {
            return None;
        }
        let mut c = Cursor(payload);
        match data {
            Some(data) => {
                *data = None;
                c.opt_into(data, Cursor::string)?;
            }
            None => {
                if c.bool()? {
                    c.str()?;
                }
            }
        }
        *meta_data = None;
        if c.bool()? {
            metadata_into(&mut c, meta_data.insert(AtMetaData::default()))?;
        }
        c.0.is_empty().then_some(())
    }

    /// The record, or `None` when the bytes are not a complete format-1 `AtData`.
    #[cfg(test)]
    pub(super) fn decode(bytes: &[u8]) -> Option<AtData> {
        let mut out = AtData::default();
        decode_into(bytes, &mut out).then_some(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::model::{build_metadata, codec};

        /// A small deterministic generator (xorshift).
        struct Gen(u64);

        impl Gen {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn some(&mut self) -> bool {
                !self.next().is_multiple_of(3)
            }
            fn int(&mut self) -> i64 {
                match self.next() % 6 {
                    0 => 0,
                    1 => -((self.next() % 300) as i64),
                    2 => (self.next() % 70_000) as i64,
                    3 => i64::MIN,
                    4 => i64::MAX,
                    _ => self.next() as i64,
                }
            }
            fn text(&mut self) -> String {
                let len = match self.next() % 4 {
                    0 => 0,
                    1 => (self.next() % 20) as usize,
                    2 => 250 + (self.next() % 10) as usize,
                    _ => (self.next() % 70_000) as usize,
                };
                let alphabet = ['a', 'Z', '0', ' ', '@', 'é', '日', '😀'];
                (0..len)
                    .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                    .collect()
            }
            fn opt_text(&mut self) -> Option<String> {
                self.some().then(|| self.text())
            }
            fn opt_int(&mut self) -> Option<i64> {
                self.some().then(|| self.int())
            }
            fn opt_time(&mut self) -> Option<Timestamp> {
                self.opt_int().map(Timestamp::from_millis)
            }
            fn opt_bool(&mut self) -> Option<bool> {
                self.some().then(|| self.next().is_multiple_of(2))
            }
            fn meta(&mut self) -> AtMetaData {
                AtMetaData {
                    created_by: self.opt_text(),
                    updated_by: self.opt_text(),
                    created_at: self.opt_time(),
                    updated_at: self.opt_time(),
                    expires_at: self.opt_time(),
                    status: self.opt_text(),
                    version: self.opt_int(),
                    available_at: self.opt_time(),
                    ttb: self.opt_int(),
                    ttl: self.opt_int(),
                    ttr: self.opt_int(),
                    refresh_at: self.opt_time(),
                    is_cascade: self.opt_bool(),
                    is_binary: self.opt_bool(),
                    is_encrypted: self.opt_bool(),
                    data_signature: self.opt_text(),
                    shared_key_enc: self.opt_text(),
                    pub_key_cs: self.opt_text(),
                    encoding: self.opt_text(),
                    enc_key_name: self.opt_text(),
                    enc_algo: self.opt_text(),
                    iv_nonce: self.opt_text(),
                    ske_enc_key_name: self.opt_text(),
                    ske_enc_algo: self.opt_text(),
                    pub_key_hash: self.some().then(|| PublicKeyHash {
                        hash: self.text(),
                        algo: if self.next().is_multiple_of(2) {
                            HashingAlgo::Sha256
                        } else {
                            HashingAlgo::Sha512
                        },
                    }),
                    immutable: self.opt_bool(),
                    app_metadata: self.some().then(|| AppMetadata {
                        provider_id: self.text(),
                        additional: self.opt_text(),
                    }),
                }
            }
            fn record(&mut self) -> AtData {
                AtData {
                    data: self.opt_text(),
                    meta_data: self.some().then(|| self.meta()),
                    key: None,
                }
            }
        }

        #[test]
        fn decodes_every_entry_as_the_codec_does() {
            let mut g = Gen(0x1234_5678_9abc_def1);
            let ops = [
                CommitOp::Update,
                CommitOp::Delete,
                CommitOp::UpdateMeta,
                CommitOp::UpdateAll,
            ];
            for i in 0..400 {
                let entry = CommitEntry {
                    at_key: g.text(),
                    operation: ops[i % 4],
                    op_time: Timestamp::from_millis(g.int()),
                    commit_id: g.opt_int(),
                };
                let mut bytes = codec::encode(&entry);
                assert_eq!(decode_entry(&bytes), Some(entry));
                match g.next() % 3 {
                    0 => {
                        let cut = (g.next() as usize) % bytes.len();
                        bytes.truncate(cut);
                    }
                    1 => bytes.push(0),
                    _ => {
                        let at = (g.next() as usize) % bytes.len();
                        bytes[at] = (g.next() % 256) as u8;
                    }
                }
                if let Some(fast) = decode_entry(&bytes) {
                    let slow = codec::decode::<CommitEntry>(&bytes, "test", &String::new).ok();
                    assert_eq!(slow, Some(fast), "bytes {bytes:?}");
                }
            }
            assert_eq!(decode_entry(&[1, 0, 4, 0, 0]), None, "no fifth op");
        }

        fn by_codec(bytes: &[u8]) -> Option<AtData> {
            codec::decode::<AtData>(bytes, "test", &String::new).ok()
        }

        #[test]
        fn decodes_every_record_as_the_codec_does() {
            let mut g = Gen(0x2545_f491_4f6c_dd1d);
            for _ in 0..400 {
                let record = g.record();
                let bytes = codec::encode(&record);
                assert_eq!(decode(&bytes), Some(record.clone()));
                assert_eq!(by_codec(&bytes), Some(record));
            }
            let full = AtData {
                data: Some("v".into()),
                meta_data: Some(g.meta()),
                key: None,
            };
            assert_eq!(decode(&codec::encode(&full)), Some(full));
            assert_eq!(
                decode(&codec::encode(&AtData::default())),
                Some(AtData::default())
            );
        }

        /// Cuts `bytes`, adds a byte or changes one.
        fn damage(g: &mut Gen, bytes: &mut Vec<u8>) {
            match g.next() % 4 {
                0 => {
                    let cut = (g.next() as usize) % bytes.len();
                    bytes.truncate(cut);
                }
                1 => bytes.push((g.next() % 256) as u8),
                _ => {
                    let at = (g.next() as usize) % bytes.len();
                    bytes[at] = (g.next() % 256) as u8;
                }
            }
        }

        /// `decode_meta_into` over a target holding a stale metadata.
        fn decode_meta(bytes: &[u8]) -> Option<Option<AtMetaData>> {
            let mut meta = Some(AtMetaData {
                status: Some("stale".into()),
                ttl: Some(7),
                ..AtMetaData::default()
            });
            decode_meta_into(bytes, &mut meta).then_some(meta)
        }

        #[test]
        fn reads_the_metadata_alone_from_exactly_the_bytes_a_whole_read_takes() {
            let mut g = Gen(0x6a09_e667_f3bc_c908);
            for i in 0..600 {
                let mut bytes = codec::encode(&g.record());
                if i % 2 == 1 {
                    damage(&mut g, &mut bytes);
                }
                let whole = decode(&bytes);
                assert_eq!(
                    decode_meta(&bytes),
                    whole.map(|d| d.meta_data),
                    "bytes {bytes:?}"
                );
            }
            // A value that is not UTF-8 is refused, though the metadata after it is whole.
            let mut bytes = codec::encode(&AtData {
                data: Some("ab".into()),
                meta_data: Some(AtMetaData::default()),
                key: None,
            });
            assert_eq!(&bytes[3..5], b"ab", "layout: format, tag, length, value");
            bytes[3] = 0xff;
            assert_eq!(by_codec(&bytes), None);
            assert_eq!(decode(&bytes), None);
            assert_eq!(decode_meta(&bytes), None);
        }

        #[test]
        fn overwrites_whatever_the_target_held_but_its_key() {
            let mut g = Gen(0xbb67_ae85_84ca_a73b);
            let mut out = AtData {
                key: Some("k".into()),
                ..g.record()
            };
            for _ in 0..300 {
                let record = g.record();
                assert!(decode_into(&codec::encode(&record), &mut out));
                assert_eq!(
                    out,
                    AtData {
                        key: Some("k".into()),
                        ..record
                    }
                );
            }
        }

        #[test]
        fn reads_records_without_caller_metadata_and_their_near_misses_as_the_codec_does() {
            let built = build_metadata("@alice", None, None, None, Timestamp::from_millis(7));
            // Each option after `version` set alone, to values that encode as zero bytes
            // where they can: the tail is then all zeros but one tag.
            let zero = Timestamp::from_millis(0);
            let setters: [fn(&mut AtMetaData); ABSENT_AFTER_VERSION] = [
                |m| m.available_at = Some(Timestamp::from_millis(0)),
                |m| m.ttb = Some(0),
                |m| m.ttl = Some(0),
                |m| m.ttr = Some(0),
                |m| m.refresh_at = Some(Timestamp::from_millis(0)),
                |m| m.is_cascade = Some(false),
                |m| m.is_binary = Some(false),
                |m| m.is_encrypted = Some(false),
                |m| m.data_signature = Some(String::new()),
                |m| m.shared_key_enc = Some(String::new()),
                |m| m.pub_key_cs = Some(String::new()),
                |m| m.encoding = Some(String::new()),
                |m| m.enc_key_name = Some(String::new()),
                |m| m.enc_algo = Some(String::new()),
                |m| m.iv_nonce = Some(String::new()),
                |m| m.ske_enc_key_name = Some(String::new()),
                |m| m.ske_enc_algo = Some(String::new()),
                |m| {
                    m.pub_key_hash = Some(PublicKeyHash {
                        hash: String::new(),
                        algo: HashingAlgo::Sha256,
                    })
                },
                |m| m.immutable = Some(false),
                |m| {
                    m.app_metadata = Some(AppMetadata {
                        provider_id: String::new(),
                        additional: None,
                    })
                },
            ];
            let mut metas = vec![built.clone(), AtMetaData::default()];
            for set in setters {
                let mut m = AtMetaData {
                    version: Some(0),
                    expires_at: Some(zero),
                    ..built.clone()
                };
                set(&mut m);
                metas.push(m);
            }
            for meta in metas {
                for data in [None, Some(String::new()), Some("v".repeat(300))] {
                    let record = AtData {
                        data,
                        meta_data: Some(meta.clone()),
                        key: None,
                    };
                    let bytes = codec::encode(&record);
                    assert_eq!(decode(&bytes), Some(record.clone()));
                    let mut near = vec![
                        bytes[..bytes.len() - 1].to_vec(),
                        [&bytes[..], &[0]].concat(),
                        [&bytes[..], &[1]].concat(),
                    ];
                    for back in 1..=ABSENT_AFTER_VERSION + 1 {
                        let mut b = bytes.clone();
                        let at = b.len() - back;
                        b[at] ^= 1;
                        near.push(b);
                    }
                    for b in near {
                        assert_eq!(decode(&b), by_codec(&b), "bytes {b:?}");
                        assert_eq!(decode_meta(&b), decode(&b).map(|d| d.meta_data));
                    }
                }
            }
        }

        #[test]
        fn takes_no_bytes_the_codec_refuses_and_leaves_the_rest_to_it() {
            let mut g = Gen(0x9e37_79b9_7f4a_7c15);
            for _ in 0..300 {
                let mut bytes = codec::encode(&g.record());
                damage(&mut g, &mut bytes);
                // Whatever the fast path decodes, the codec decodes identically.
                if let Some(fast) = decode(&bytes) {
                    assert_eq!(by_codec(&bytes), Some(fast), "bytes {bytes:?}");
                }
            }
            assert_eq!(decode(&[]), None);
            assert_eq!(decode(&[2, 0, 0]), None);
            assert_eq!(decode(&[1, 2]), None, "an option tag other than 0 or 1");
            assert_eq!(decode(&[1, 1, 254]), None, "a u128 length");
        }
    }
}
