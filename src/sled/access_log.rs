//! The sled access log (BEHAVIOR 5, API-5.0 5.2).
//!
//! One tree, `access_log`, in the database at the configured access-log path. Every entry,
//! its index entries and the counters it changes are staged and applied as one atomic sled
//! batch by the group-commit writer ([`super::writer`]), so concurrent inserts share one
//! batch and one flush. Opening reads two counters; nothing is scanned.
//!
//! # Layout of the `access_log` tree
//!
//! | key | value |
//! |---|---|
//! | `e` + id (8 bytes, big-endian) | envelope(`AccessLogEntry`) |
//! | `c` + kind + name (UTF-8) | count (8 bytes BE) + first id (8 bytes BE): per-name tally |
//! | `r` + kind + (`u64::MAX` − count) (8 BE) + first id (8 BE) + name | empty: rank index |
//! | `o` + kind + name length (4 BE) + name + id (8 BE) | empty: occurrences of a name |
//! | `p` + instant + id (8 BE) | empty: `pkam` entries by request time |
//! | `mnext_id` | next id to issue (8 BE) |
//! | `mentry_count` | number of entries (8 BE) |
//!
//! `kind` is `a` for atSigns (entries whose verb is exactly `pol` and that have a
//! `from_at_sign`) and `k` for looked-up keys (verb exactly `lookup` with a `lookup_key`).
//! Other entries are not tallied. The rank index orders each kind by count descending,
//! then by the id of the name's first retained occurrence ascending, so
//! `most_visited_*(n)` is a prefix scan of `n` keys. The occurrence index exists so that
//! compaction, which drops the oldest entries, can find a name's new first occurrence with
//! one seek. Instants are encoded as in [`super::layout::instant_bytes`], so the last key
//! of the `p` range is the pkam entry with the latest request time, ties going to the
//! highest id (the last inserted).

use super::db::{backend, Durability, SledDb, Sweep};
use super::layout::{self as lay, instant_bytes, prefix_end, read_u64};
use super::staging::Staging;
use super::store_core::{
    self, chunked, lock, read_counter, run, GroupStore, StoreHandle, WriteGroup,
};
use super::writer::WriteQueue;
use crate::error::{PersistenceError, Result};
use crate::model::{codec, AccessLogEntry, Clock, Timestamp};
use crate::store::{AccessLog, Compactable, CompactedItem, ResultStream};
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub(crate) const STORE: &str = "access log";
/// The tree holding the access log.
pub(crate) const TREE: &str = "access_log";

/// Prefix of entries by id.
pub(crate) const ENTRY: u8 = b'e';
/// Prefix of per-name tallies.
pub(crate) const STAT: u8 = b'c';
/// Prefix of the rank index.
pub(crate) const RANK: u8 = b'r';
/// Prefix of the occurrence index.
pub(crate) const OCCURRENCE: u8 = b'o';
/// Prefix of the pkam index.
pub(crate) const PKAM: u8 = b'p';
/// Counter: the next id.
pub(crate) const NEXT_ID: &[u8] = b"mnext_id";
/// Counter: the number of entries.
pub(crate) const ENTRY_COUNT: &[u8] = b"mentry_count";
/// Tally kind: atSigns of `pol` entries.
pub(crate) const KIND_AT_SIGN: u8 = b'a';
/// Tally kind: keys of `lookup` entries.
pub(crate) const KIND_KEY: u8 = b'k';

/// How many entries one compaction (or clear) batch removes at most.
pub(crate) const COMPACTION_CHUNK: usize = 1024;

/// Settings of one access log.
#[derive(Debug, Clone)]
pub(crate) struct AccessLogSettings {
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
    /// Share of the entries compaction removes (0..=100).
    pub compaction_percentage: u8,
}

/// The in-memory copy of the persisted counters. Only the writer changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    next_id: u64,
    count: u64,
}

#[derive(Debug)]
pub(crate) enum Op {
    Append(AccessLogEntry),
    /// Removes up to `limit` of the oldest entries, none with an id above `boundary`.
    CompactChunk {
        boundary: u64,
        limit: usize,
    },
    Clear,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Id(u64),
    Ids(Vec<u64>),
    Unit,
}

type Queued = store_core::Queued<Op, Outcome>;

/// Shared state of one access log.
pub(crate) struct AlInner {
    settings: AccessLogSettings,
    pub(crate) handle: StoreHandle,
    queue: WriteQueue<Queued>,
    pub(crate) counters: Mutex<Counters>,
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> PersistenceError {
    PersistenceError::CorruptRecord {
        store: STORE,
        key: render_key(key),
        reason: reason.into(),
    }
}

/// Renders a storage key of this tree for error messages.
fn render_key(key: &[u8]) -> String {
    match key.first() {
        Some(&ENTRY) => match read_u64(&key[1..]) {
            Some(id) => format!("entry {id}"),
            None => lay::render(key),
        },
        _ => lay::render(key),
    }
}

pub(crate) fn entry_key(id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(ENTRY);
    v.extend_from_slice(&id.to_be_bytes());
    v
}

pub(crate) fn entry_id(key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&ENTRY, rest)) => read_u64(rest),
        _ => None,
    }
}

pub(crate) fn stat_key(kind: u8, name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + name.len());
    v.push(STAT);
    v.push(kind);
    v.extend_from_slice(name.as_bytes());
    v
}

pub(crate) fn rank_key(kind: u8, count: u64, first: u64, name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(18 + name.len());
    v.push(RANK);
    v.push(kind);
    v.extend_from_slice(&(u64::MAX - count).to_be_bytes());
    v.extend_from_slice(&first.to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

/// The name and count of a rank key.
pub(crate) fn split_rank(key: &[u8]) -> Option<(&[u8], u64)> {
    if key.len() < 18 {
        return None;
    }
    let inverted = read_u64(&key[2..10])?;
    Some((&key[18..], u64::MAX - inverted))
}

pub(crate) fn occurrence_prefix(kind: u8, name: &str) -> Vec<u8> {
    let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
    let mut v = Vec::with_capacity(14 + name.len());
    v.push(OCCURRENCE);
    v.push(kind);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

pub(crate) fn occurrence_key(kind: u8, name: &str, id: u64) -> Vec<u8> {
    let mut v = occurrence_prefix(kind, name);
    v.extend_from_slice(&id.to_be_bytes());
    v
}

pub(crate) fn pkam_key(t: Timestamp, id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.push(PKAM);
    v.extend_from_slice(&instant_bytes(t));
    v.extend_from_slice(&id.to_be_bytes());
    v
}

/// The tally an entry counts in, if any: `pol` by atSign, `lookup` by key.
pub(crate) fn tally_of(entry: &AccessLogEntry) -> Option<(u8, &str)> {
    match entry.verb_name.as_deref() {
        Some("pol") => entry.from_at_sign.as_deref().map(|a| (KIND_AT_SIGN, a)),
        Some("lookup") => entry.lookup_key.as_deref().map(|k| (KIND_KEY, k)),
        _ => None,
    }
}

/// The request time of a `pkam` entry that has one.
pub(crate) fn pkam_time(entry: &AccessLogEntry) -> Option<Timestamp> {
    match entry.verb_name.as_deref() {
        Some("pkam") => entry.request_date_time,
        _ => None,
    }
}

fn encode_stat(count: u64, first: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&count.to_be_bytes());
    v.extend_from_slice(&first.to_be_bytes());
    v
}

fn read_stat(s: &Staging<'_>, key: &[u8]) -> Result<Option<(u64, u64)>> {
    match s.get(key)? {
        Some(v) if v.len() == 16 => match (read_u64(&v[..8]), read_u64(&v[8..])) {
            (Some(c), Some(f)) => Ok(Some((c, f))),
            _ => Err(corrupt(key, "tally is not 16 bytes")),
        },
        Some(_) => Err(corrupt(key, "tally is not 16 bytes")),
        None => Ok(None),
    }
}

fn decode_entry(bytes: &[u8], key: &[u8]) -> Result<AccessLogEntry> {
    codec::decode::<AccessLogEntry>(bytes, STORE, &|| render_key(key))
}

impl AlInner {
    pub(crate) fn open(db: Arc<SledDb>, settings: AccessLogSettings) -> Result<Arc<AlInner>> {
        let tree = db.tree(TREE)?;
        let next_id = read_counter(&tree, STORE, NEXT_ID)?.unwrap_or(0);
        let count = read_counter(&tree, STORE, ENTRY_COUNT)?.unwrap_or(0);
        Ok(Arc::new(AlInner {
            settings,
            handle: StoreHandle::new(STORE, db, tree),
            queue: WriteQueue::default(),
            counters: Mutex::new(Counters { next_id, count }),
        }))
    }

    // ----- staged primitives (writer only) -----

    fn append(s: &mut Staging<'_>, c: &mut Counters, entry: &AccessLogEntry) -> Result<u64> {
        let id = c.next_id;
        if let Some((kind, name)) = tally_of(entry) {
            let sk = stat_key(kind, name);
            let (count, first) = match read_stat(s, &sk)? {
                Some((count, first)) => {
                    s.remove(rank_key(kind, count, first, name));
                    (count.saturating_add(1), first)
                }
                None => (1, id),
            };
            s.insert(sk, encode_stat(count, first));
            s.insert(rank_key(kind, count, first, name), Vec::new());
            s.insert(occurrence_key(kind, name, id), Vec::new());
        }
        if let Some(t) = pkam_time(entry) {
            s.insert(pkam_key(t, id), Vec::new());
        }
        s.insert(entry_key(id), codec::encode(entry));
        c.next_id = id.saturating_add(1);
        c.count = c.count.saturating_add(1);
        Ok(id)
    }

    fn stage_counters(s: &mut Staging<'_>, before: &Counters, after: &Counters) {
        if before.next_id != after.next_id {
            s.insert(NEXT_ID.to_vec(), after.next_id.to_be_bytes().to_vec());
        }
        if before.count != after.count {
            s.insert(ENTRY_COUNT.to_vec(), after.count.to_be_bytes().to_vec());
        }
        s.commit_op();
    }

    /// Removes up to `limit` of the oldest entries with ids `<= boundary` as one atomic
    /// batch, keeping tallies, ranks, occurrences, the pkam index and the entry count
    /// consistent. Runs alone (the tree is current). Returns the removed ids.
    ///
    /// An entry that cannot be decoded is removed too, but the tallies it may have
    /// contributed to cannot be adjusted.
    fn compact_chunk(
        &self,
        tree: &sled::Tree,
        counters: &mut Counters,
        boundary: u64,
        limit: usize,
    ) -> Result<Vec<u64>> {
        // Work on a copy; the counters change only once the batch is applied.
        let before = *counters;
        let mut local = before;
        let c = &mut local;
        let mut s = Staging::new(tree);
        let mut removed = Vec::new();
        let mut decrements: BTreeMap<(u8, String), u64> = BTreeMap::new();
        for item in tree.range(vec![ENTRY]..prefix_end(ENTRY)).take(limit) {
            let (k, v) = item.map_err(|e| backend("compact access log", e))?;
            let Some(id) = entry_id(&k) else {
                return Err(corrupt(&k, "entry key is not 9 bytes"));
            };
            if id > boundary {
                break;
            }
            if let Ok(entry) = decode_entry(&v, &k) {
                if let Some((kind, name)) = tally_of(&entry) {
                    s.remove(occurrence_key(kind, name, id));
                    *decrements.entry((kind, name.to_string())).or_insert(0) += 1;
                }
                if let Some(t) = pkam_time(&entry) {
                    s.remove(pkam_key(t, id));
                }
            }
            s.remove(k.to_vec());
            c.count = c.count.saturating_sub(1);
            removed.push(id);
        }
        let Some(&last) = removed.last() else {
            return Ok(removed);
        };
        let c_after = *c;
        for ((kind, name), d) in decrements {
            let sk = stat_key(kind, &name);
            let Some((count, first)) = read_stat(&s, &sk)? else {
                continue;
            };
            s.remove(rank_key(kind, count, first, &name));
            let left = count.saturating_sub(d);
            if left == 0 {
                s.remove(sk);
                continue;
            }
            // Every entry up to `last` is gone, so the name's first retained occurrence is
            // its first occurrence after `last`.
            let prefix = occurrence_prefix(kind, &name);
            let mut from = prefix.clone();
            from.extend_from_slice(&last.saturating_add(1).to_be_bytes());
            let mut to = prefix.clone();
            to.extend_from_slice(&u64::MAX.to_be_bytes());
            let next = tree
                .range(from..=to)
                .keys()
                .next()
                .transpose()
                .map_err(|e| backend("compact access log", e))?;
            let new_first = next
                .and_then(|k| read_u64(&k[prefix.len()..]))
                .unwrap_or(first);
            s.insert(sk, encode_stat(left, new_first));
            s.insert(rank_key(kind, left, new_first, &name), Vec::new());
        }
        s.commit_op();
        Self::stage_counters(&mut s, &before, &c_after);
        s.apply()?;
        *counters = c_after;
        Ok(removed)
    }

    /// Empties the tree in bounded atomic chunks (each keeping the tallies and the count
    /// consistent with what is left), then resets the counters. Each chunk is followed by
    /// a flush at the log's durability, so sled's write backlog stays bounded however
    /// large the log is (see [`SledDb::flush`]); the caller flushes the final reset.
    fn clear_tree(&self, db: &SledDb, tree: &sled::Tree, c: &mut Counters) -> Result<()> {
        let level = self.settings.durability;
        loop {
            let removed = self.compact_chunk(tree, c, u64::MAX, COMPACTION_CHUNK)?;
            if removed.is_empty() {
                break;
            }
            db.flush(level)?;
            if removed.len() < COMPACTION_CHUNK {
                break;
            }
        }
        // Anything left (tallies of undecodable entries) goes in plain chunks.
        db.sweep_tree(
            tree,
            Sweep::AllButCounters,
            level,
            COMPACTION_CHUNK,
            "clear access log",
        )?;
        let mut batch = sled::Batch::default();
        batch.insert(NEXT_ID, &0u64.to_be_bytes()[..]);
        batch.insert(ENTRY_COUNT, &0u64.to_be_bytes()[..]);
        tree.apply_batch(batch)
            .map_err(|e| backend("clear access log", e))?;
        *c = Counters {
            next_id: 0,
            count: 0,
        };
        Ok(())
    }
}

impl GroupStore for AlInner {
    type Op = Op;
    type Answer = Outcome;
    const WRITE_GROUP: &'static str = "access log write group";
    /// Empties the log; ids restart at 0.
    const CLEAR: Op = Op::Clear;

    fn handle(&self) -> &StoreHandle {
        &self.handle
    }

    fn write_queue(&self) -> &WriteQueue<Queued> {
        &self.queue
    }

    /// Compaction chunks and clears scan the tree, so they run alone.
    fn exclusive(op: &Op) -> bool {
        !matches!(op, Op::Append(_))
    }

    /// Applies a run of appends as one batch.
    fn process_run(&self, db: &SledDb, tree: &sled::Tree, run: Vec<Queued>) {
        let mut group = WriteGroup::stage(tree, &self.counters, run, |s, c, op| match op {
            Op::Append(entry) => Self::append(s, c, &entry).map(Outcome::Id),
            // Exclusive ops never reach a run.
            _ => Err(PersistenceError::invalid_argument(
                "op",
                "not a batched access-log operation",
            )),
        });
        group.stage_counters(|s, before, after| Self::stage_counters(s, before, after));
        group.finish(db, self.settings.durability, "adding to access log", |o| o);
    }

    fn process_exclusive(&self, db: &SledDb, tree: &sled::Tree, q: Queued) {
        let mut counters = lock(&self.counters);
        let r = match q.op {
            Op::CompactChunk { boundary, limit } => self
                .compact_chunk(tree, &mut counters, boundary, limit)
                .map(Outcome::Ids),
            Op::Clear => self
                .clear_tree(db, tree, &mut counters)
                .map(|_| Outcome::Unit),
            Op::Append(_) => Err(PersistenceError::invalid_argument(
                "op",
                "an append is not exclusive",
            )),
        };
        drop(counters);
        let r = r.and_then(|o| db.flush(self.settings.durability).map(|_| o));
        let _ = q.tx.send(r);
    }
}

/// The sled access log ([`AccessLog`]). Obtain it from a server bundle
/// ([`crate::store::Bundle::access_log`]).
///
/// Entries get ids 0, 1, 2, … in insertion order (also for [`AccessLog::replay`]); ids are
/// never reused, except that a bundle `clear` starts again at 0. Request times are UTC with
/// millisecond precision, taken from the configured clock.
///
/// `most_visited_at_signs` tallies entries whose verb is exactly `pol` and that have a
/// `from_at_sign`; `most_visited_keys` tallies entries whose verb is exactly `lookup` and
/// that have a `lookup_key` (whatever their `from_at_sign`). Both answer from persistent
/// per-name counters and a rank index, so their cost depends on `n`, not on the size of
/// the log; ties go to the name whose first retained entry is oldest.
///
/// Compaction ([`Compactable::compact`]) removes the oldest
/// `floor(entries × percentage / 100)` entries (integer arithmetic; the percentage comes
/// from the configuration, default 30), counted when `compact` is called. With
/// `dry_run = false` the removal advances as the returned stream is polled, in atomic
/// batches of at most 1024 entries, each keeping the counters and indexes consistent;
/// dropping the stream early stops after the current batch. Drain the stream (or use
/// [`crate::store::compact_and_report`]) to compact fully.
#[derive(Clone, Debug)]
pub struct SledAccessLog {
    inner: Arc<AlInner>,
}

impl std::fmt::Debug for AlInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlInner")
            .field(
                "compaction_percentage",
                &self.settings.compaction_percentage,
            )
            .finish_non_exhaustive()
    }
}

impl SledAccessLog {
    pub(crate) fn new(inner: Arc<AlInner>) -> Self {
        SledAccessLog { inner }
    }

    /// The share of the entries a compaction removes (0..=100).
    pub fn compaction_percentage(&self) -> u8 {
        self.inner.settings.compaction_percentage
    }

    fn most_visited(&self, kind: u8, n: usize) -> Result<Vec<(String, u64)>> {
        let tree = self.inner.handle.tree()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let start = vec![RANK, kind];
        let end = vec![RANK, kind.saturating_add(1)];
        let mut out = Vec::with_capacity(n.min(64));
        for item in tree.range(start..end).keys().take(n) {
            let k = item.map_err(|e| backend("most visited", e))?;
            let (name, count) = split_rank(&k).ok_or_else(|| corrupt(&k, "short rank key"))?;
            let name = std::str::from_utf8(name)
                .map_err(|_| corrupt(&k, "name is not UTF-8"))?
                .to_string();
            out.push((name, count));
        }
        Ok(out)
    }
}

#[async_trait]
impl AccessLog for SledAccessLog {
    async fn insert(
        &self,
        from_at_sign: &str,
        verb_name: &str,
        lookup_key: Option<&str>,
    ) -> Result<u64> {
        let entry = AccessLogEntry {
            from_at_sign: Some(from_at_sign.to_string()),
            request_date_time: Some(self.inner.settings.clock.now()),
            verb_name: Some(verb_name.to_string()),
            lookup_key: lookup_key.map(str::to_string),
        };
        self.replay(entry).await
    }

    async fn most_visited_at_signs(&self, n: usize) -> Result<Vec<(String, u64)>> {
        self.most_visited(KIND_AT_SIGN, n)
    }

    async fn most_visited_keys(&self, n: usize) -> Result<Vec<(String, u64)>> {
        self.most_visited(KIND_KEY, n)
    }

    async fn get_last_access_log_entry(&self) -> Result<Option<AccessLogEntry>> {
        let tree = self.inner.handle.tree()?;
        let last = tree
            .range(vec![ENTRY]..prefix_end(ENTRY))
            .next_back()
            .transpose()
            .map_err(|e| backend("last access log entry", e))?;
        match last {
            Some((k, v)) => decode_entry(&v, &k).map(Some),
            None => Ok(None),
        }
    }

    async fn get_last_pkam_access_log_entry(&self) -> Result<Option<AccessLogEntry>> {
        let tree = self.inner.handle.tree()?;
        let last = tree
            .range(vec![PKAM]..prefix_end(PKAM))
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| backend("last pkam entry", e))?;
        let Some(k) = last else {
            return Ok(None);
        };
        let id = k
            .len()
            .checked_sub(8)
            .and_then(|at| read_u64(&k[at..]))
            .ok_or_else(|| corrupt(&k, "pkam index key is not 17 bytes"))?;
        let ek = entry_key(id);
        match tree.get(&ek).map_err(|e| backend("last pkam entry", e))? {
            Some(v) => decode_entry(&v, &ek).map(Some),
            None => Err(corrupt(&k, "pkam index names a missing entry")),
        }
    }

    async fn iterate(&self) -> Result<ResultStream<AccessLogEntry>> {
        let tree = self.inner.handle.tree()?;
        let iter = tree.range(vec![ENTRY]..prefix_end(ENTRY));
        Ok(futures::stream::iter(iter.map(|item| {
            let (k, v) = item.map_err(|e| backend("iterate access log", e))?;
            decode_entry(&v, &k)
        }))
        .boxed())
    }

    async fn replay(&self, entry: AccessLogEntry) -> Result<u64> {
        match run(&self.inner, Op::Append(entry)).await? {
            Outcome::Id(id) => Ok(id),
            _ => Err(PersistenceError::Backend {
                context: "adding to access log".into(),
                source: "the writer returned no id".into(),
            }),
        }
    }

    async fn entries_count(&self) -> Result<u64> {
        self.inner.handle.ensure_open()?;
        Ok(lock(&self.inner.counters).count)
    }

    async fn size_bytes(&self) -> Result<u64> {
        self.inner.handle.db()?.size_on_disk()
    }
}

#[async_trait]
impl Compactable for SledAccessLog {
    async fn compact(&self, dry_run: bool) -> Result<ResultStream<CompactedItem>> {
        let tree = self.inner.handle.tree()?;
        let count = lock(&self.inner.counters).count;
        let pct = u64::from(self.inner.settings.compaction_percentage.min(100));
        // Exact integer arithmetic: floor(count * pct / 100), without overflow.
        let k = (u128::from(count) * u128::from(pct) / 100) as u64;
        let k = usize::try_from(k).unwrap_or(usize::MAX);
        if k == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let oldest = tree.range(vec![ENTRY]..prefix_end(ENTRY)).keys().take(k);
        if dry_run {
            return Ok(futures::stream::iter(oldest.map(|item| {
                let k = item.map_err(|e| backend("compact access log", e))?;
                entry_id(&k)
                    .map(CompactedItem::AccessLogId)
                    .ok_or_else(|| corrupt(&k, "entry key is not 9 bytes"))
            }))
            .boxed());
        }
        // The newest id to remove, fixed now, so that the target does not move with
        // concurrent inserts or a concurrent compaction.
        let mut boundary = None;
        for item in oldest {
            let key = item.map_err(|e| backend("compact access log", e))?;
            boundary = entry_id(&key);
        }
        let Some(boundary) = boundary else {
            return Ok(futures::stream::empty().boxed());
        };
        let inner = Arc::clone(&self.inner);
        let chunks = chunked(move || {
            let inner = Arc::clone(&inner);
            async move {
                let op = Op::CompactChunk {
                    boundary,
                    limit: COMPACTION_CHUNK,
                };
                match run(&inner, op).await? {
                    Outcome::Ids(ids) => {
                        let done = ids.len() < COMPACTION_CHUNK
                            || ids.last().is_some_and(|&l| l >= boundary);
                        Ok((ids, !done))
                    }
                    _ => Ok((Vec::new(), false)),
                }
            }
        });
        Ok(chunks.map(|r| r.map(CompactedItem::AccessLogId)).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_layouts() {
        // These bytes are the on-disk format of the access_log tree; changing them breaks
        // every existing log.
        assert_eq!(TREE, "access_log");
        assert_eq!(entry_key(258), vec![b'e', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(entry_id(&entry_key(258)), Some(258));
        assert_eq!(stat_key(KIND_AT_SIGN, "@bob"), b"ca@bob".to_vec());
        assert_eq!(stat_key(KIND_KEY, "phone@x"), b"ckphone@x".to_vec());
        assert_eq!(
            encode_stat(3, 5),
            [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 5]
        );
        let rank = rank_key(KIND_AT_SIGN, 3, 5, "@b");
        assert_eq!(
            rank,
            [
                &b"ra"[..],
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc],
                &[0, 0, 0, 0, 0, 0, 0, 5],
                b"@b"
            ]
            .concat()
        );
        assert_eq!(split_rank(&rank), Some((&b"@b"[..], 3)));
        assert_eq!(
            occurrence_key(KIND_KEY, "k@x", 9),
            [&b"ok"[..], &[0, 0, 0, 3], b"k@x", &[0, 0, 0, 0, 0, 0, 0, 9]].concat()
        );
        assert_eq!(
            pkam_key(Timestamp::from_millis(1_704_067_200_000), 1),
            [
                &b"p"[..],
                &[0x80, 0, 0x01, 0x8c, 0xc2, 0x51, 0xf4, 0x00],
                &[0, 0, 0, 0, 0, 0, 0, 1]
            ]
            .concat()
        );
        assert_eq!(NEXT_ID, b"mnext_id");
        assert_eq!(ENTRY_COUNT, b"mentry_count");
    }

    #[test]
    fn rank_order_is_count_descending_then_first_occurrence() {
        let mut keys = [
            rank_key(KIND_AT_SIGN, 2, 9, "@late"),
            rank_key(KIND_AT_SIGN, 5, 20, "@top"),
            rank_key(KIND_AT_SIGN, 2, 1, "@early"),
            rank_key(KIND_AT_SIGN, 1, 0, "@once"),
        ];
        keys.sort();
        let names: Vec<&[u8]> = keys
            .iter()
            .filter_map(|k| split_rank(k))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, [&b"@top"[..], b"@early", b"@late", b"@once"]);
    }

    #[test]
    fn tallies_count_exact_verbs_only() {
        let e = |verb: Option<&str>, from: Option<&str>, key: Option<&str>| AccessLogEntry {
            from_at_sign: from.map(str::to_string),
            request_date_time: None,
            verb_name: verb.map(str::to_string),
            lookup_key: key.map(str::to_string),
        };
        assert_eq!(
            tally_of(&e(Some("pol"), Some("@a"), None)),
            Some((KIND_AT_SIGN, "@a"))
        );
        assert_eq!(tally_of(&e(Some("pol"), None, None)), None);
        assert_eq!(
            tally_of(&e(Some("lookup"), None, Some("k"))),
            Some((KIND_KEY, "k"))
        );
        assert_eq!(tally_of(&e(Some("lookup"), Some("@a"), None)), None);
        assert_eq!(tally_of(&e(Some("plookup"), Some("@a"), Some("k"))), None);
        assert_eq!(tally_of(&e(Some("Pol"), Some("@a"), None)), None);
        assert_eq!(tally_of(&e(None, Some("@a"), Some("k"))), None);
    }
}
