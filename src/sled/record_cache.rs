//! A bounded in-memory cache of the keystore's encoded records, in front of sled.
//!
//! A read that finds its record here costs a hash lookup instead of a descent of sled's
//! tree. The cache holds the value sled returned, which shares sled's buffer of that one
//! value (sled keeps each value in a buffer of its own, never a slice of a page), and a
//! read decodes it as it would a value read from sled.
//!
//! # Never stale
//!
//! The keystore's writer is the only thing that changes records, and it opens a
//! [`WriteFence`] around every batch it applies: the fence first drops the records the
//! batch writes (or every record, for a clear), then the batch is applied, then the fence
//! closes. A read that misses gets a [`Ticket`] before it reads sled and may store what it
//! read only if no fence was open when it got the ticket and none has opened or closed
//! since. So a stored value was read while no write was under way and before any later
//! write began, and every later write drops it before it changes sled: a read never
//! returns a record older than the one sled holds at that moment.
//!
//! # Bounded
//!
//! The cache is split into shards, each with a byte budget counted as key plus value plus
//! a fixed per-entry overhead. A shard evicts by the clock rule: entries queue in the order
//! they came in; the one at the head goes, unless it was read since it last reached the
//! head, in which case it goes to the back instead. So what is read often stays and what
//! is not read for a whole turn goes. A lookup is one probe of one hash map. Once a shard
//! has filled, it admits a missed record only when it missed the same record recently (a
//! small table of the hashes of recent misses, one slot per hash, remembers them): reads
//! spread over far more records than fit, where a cache cannot help, then store almost
//! nothing and cost about what they cost without the cache, and a record read again soon
//! gets in on its second miss.

use super::store_core::lock;
use sled::IVec;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Arc, Mutex};

/// Shards: enough that concurrent readers rarely meet on one lock.
const SHARDS: usize = 16;
/// Bytes counted for an entry beyond its key and value: its map slot (at the map's lowest
/// load), its queue item (at the queue's lowest load), the headers of the key's and the
/// value's shared buffers and the allocator's for each. The test
/// `entry_overhead_covers_the_entry_types` holds it to the types' sizes.
const ENTRY_OVERHEAD: usize = 272;
/// Slots of a shard's table of recent misses: at most this many, at least
/// [`MIN_RECENT`], about one per 512 bytes of the shard's budget.
const MAX_RECENT: usize = 1024;
const MIN_RECENT: usize = 16;
/// The fence state's count of open fences (low bits); the generation is above it.
const OPEN: u64 = 1;
const GENERATION: u64 = 1 << 32;

/// See the module documentation.
pub(crate) struct RecordCache {
    /// Empty when the cache is off.
    shards: Box<[Shard]>,
    /// Bytes each shard may hold.
    budget: usize,
    /// Open fences (low 32 bits) and a generation that changes whenever one opens or
    /// closes (high 32 bits).
    fence: AtomicU64,
}

struct Shard {
    clock: Mutex<Clock>,
    /// Whether the shard has evicted at least once.
    full: AtomicBool,
    /// Hashes of recent misses, each in the slot its hash picks.
    recent: Box<[AtomicU64]>,
}

/// One shard's entries and their eviction queue.
#[derive(Default)]
struct Clock {
    map: HashMap<Arc<[u8]>, Slot>,
    /// Keys in eviction order, each with the number its entry was stored with; a queued
    /// key whose entry is gone or was stored again since is skipped when it comes up.
    queue: VecDeque<(Arc<[u8]>, u64)>,
    bytes: usize,
    /// Numbers the stored entries.
    stored: u64,
}

struct Slot {
    value: IVec,
    /// Read since it last came up in the queue.
    read: bool,
    /// Its number in the queue.
    seq: u64,
}

/// Leave to store what a read found, if nothing was written meanwhile: the fence state
/// when the read missed, and the key's hash (so the offer does not hash it again).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    fence: u64,
    hash: u64,
}

/// What [`RecordCache::lookup`] found.
pub(crate) enum Lookup {
    /// The cached record.
    Hit(IVec),
    /// Not cached: read sled, then offer the value with the ticket, if any.
    Miss(Option<Ticket>),
}

fn cost(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

/// A multiply-and-fold over the 8-byte words of `key`: cheap and well spread. It picks
/// the shard and the slot among recent misses; the maps hash with std's keyed hasher.
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ key.len() as u64;
    for chunk in key.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
        h ^= h >> 29;
    }
    h
}

fn shard_of(hash: u64) -> usize {
    (hash % SHARDS as u64) as usize
}

impl Clock {
    /// The entry under `key`, marked read.
    fn get(&mut self, key: &[u8]) -> Option<IVec> {
        let slot = self.map.get_mut(key)?;
        slot.read = true;
        Some(slot.value.clone())
    }

    /// Stores `value` under `key`, first evicting until it fits in `budget`. True when
    /// anything was evicted.
    fn insert(&mut self, key: &[u8], value: IVec, budget: usize) -> bool {
        // Two reads that missed together may store one key twice: the later one replaces.
        self.forget(key);
        let c = cost(key, &value);
        let mut evicted = false;
        while self.bytes + c > budget {
            let Some((k, seq)) = self.queue.pop_front() else {
                break;
            };
            match self.map.get_mut(&k) {
                Some(slot) if slot.seq == seq => {
                    if slot.read {
                        slot.read = false;
                        self.queue.push_back((k, seq));
                    } else if let Some(slot) = self.map.remove(&k) {
                        self.bytes -= cost(&k, &slot.value);
                        evicted = true;
                    }
                }
                _ => {}
            }
        }
        let key: Arc<[u8]> = Arc::from(key);
        self.stored += 1;
        let seq = self.stored;
        self.queue.push_back((Arc::clone(&key), seq));
        self.map.insert(
            key,
            Slot {
                value,
                read: false,
                seq,
            },
        );
        self.bytes += c;
        evicted
    }

    fn forget(&mut self, key: &[u8]) {
        if let Some(slot) = self.map.remove(key) {
            self.bytes -= cost(key, &slot.value);
        }
        // Keys forgotten without an eviction to skip them leave stale queue items behind:
        // drop those before they outnumber the entries.
        if self.queue.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.queue
                .retain(|(k, seq)| map.get(k).is_some_and(|s| s.seq == *seq));
        }
    }
}

impl RecordCache {
    /// A cache of at most about `capacity` bytes; 0 turns it off.
    pub(crate) fn new(capacity: u64) -> RecordCache {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        let budget = capacity / SHARDS;
        let shards = if budget == 0 {
            Box::default()
        } else {
            let recent = (budget / 512)
                .next_power_of_two()
                .clamp(MIN_RECENT, MAX_RECENT);
            (0..SHARDS)
                .map(|_| Shard {
                    clock: Mutex::default(),
                    full: AtomicBool::new(false),
                    recent: (0..recent).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect()
        };
        RecordCache {
            shards,
            budget,
            fence: AtomicU64::new(0),
        }
    }

    fn shard(&self, hash: u64) -> Option<&Shard> {
        if self.shards.is_empty() {
            return None;
        }
        Some(&self.shards[shard_of(hash)])
    }

    /// The cached record under `key`, or a ticket to offer what sled holds.
    pub(crate) fn lookup(&self, key: &[u8]) -> Lookup {
        let hash = key_hash(key);
        let Some(shard) = self.shard(hash) else {
            return Lookup::Miss(None);
        };
        if let Some(v) = lock(&shard.clock).get(key) {
            return Lookup::Hit(v);
        }
        let state = self.fence.load(SeqCst);
        let open_fences = state & (GENERATION - 1);
        Lookup::Miss((open_fences == 0).then_some(Ticket { fence: state, hash }))
    }

    /// Stores `value`, read under `key` after `ticket` was given, unless a write fence
    /// opened or closed since (or the shard is full and `key` did not miss recently).
    pub(crate) fn offer(&self, ticket: Ticket, key: &[u8], value: &IVec) {
        let hash = ticket.hash;
        let Some(shard) = self.shard(hash) else {
            return;
        };
        if cost(key, value) > self.budget {
            return;
        }
        if shard.full.load(SeqCst) {
            // The slot after the shard's bits; a hash of 0 never counts as remembered.
            let slot = (hash / SHARDS as u64) as usize % shard.recent.len();
            let tag = hash | 1;
            if shard.recent[slot].swap(tag, Relaxed) != tag {
                return;
            }
        }
        let mut clock = lock(&shard.clock);
        // Checked under the shard's lock: a fence that opens after this check drops the
        // entry (it takes this lock to do so) before its batch is applied.
        if self.fence.load(SeqCst) != ticket.fence {
            return;
        }
        if clock.insert(key, value.clone(), self.budget) {
            shard.full.store(true, SeqCst);
        }
    }

    /// Opens a write fence: no read stores anything until it closes (on drop), and reads
    /// that missed before it store nothing.
    pub(crate) fn fence(&self) -> WriteFence<'_> {
        self.fence.fetch_add(GENERATION + OPEN, SeqCst);
        WriteFence { cache: self }
    }

    /// Drops every entry (the store is closing, or a fence drops everything).
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            *lock(&s.clock) = Clock::default();
            s.full.store(false, SeqCst);
        }
    }
}

/// An open write fence; see [`RecordCache::fence`].
pub(crate) struct WriteFence<'c> {
    cache: &'c RecordCache,
}

impl WriteFence<'_> {
    /// Drops the record under `key`: call before the write that changes it is applied.
    pub(crate) fn forget(&self, key: &[u8]) {
        if let Some(s) = self.cache.shard(key_hash(key)) {
            lock(&s.clock).forget(key);
        }
    }

    /// Drops every record.
    pub(crate) fn forget_all(&self) {
        self.cache.clear();
    }
}

impl Drop for WriteFence<'_> {
    fn drop(&mut self) {
        // One generation on, one fence fewer.
        self.cache.fence.fetch_add(GENERATION - OPEN, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("public:k{i}.app@alice").into_bytes()
    }

    fn value(i: usize) -> IVec {
        IVec::from(format!("{i:0>200}").as_bytes())
    }

    /// Offers `value(i)` under `key(i)` as a read that just missed would.
    fn read_into(c: &RecordCache, i: usize) -> bool {
        match c.lookup(&key(i)) {
            Lookup::Hit(_) => true,
            Lookup::Miss(ticket) => {
                if let Some(t) = ticket {
                    c.offer(t, &key(i), &value(i));
                }
                false
            }
        }
    }

    fn hit(c: &RecordCache, i: usize) -> Option<IVec> {
        match c.lookup(&key(i)) {
            Lookup::Hit(v) => Some(v),
            Lookup::Miss(_) => None,
        }
    }

    fn usage(c: &RecordCache) -> (usize, usize) {
        c.shards.iter().fold((0, 0), |(n, b), s| {
            let c = lock(&s.clock);
            let counted: usize = c.map.iter().map(|(k, s)| cost(k, &s.value)).sum();
            assert_eq!(counted, c.bytes, "the running count matches the entries");
            (n + c.map.len(), b + c.bytes)
        })
    }

    #[test]
    fn a_missed_read_is_stored_and_then_hits() {
        let c = RecordCache::new(1 << 20);
        assert!(!read_into(&c, 1));
        assert_eq!(hit(&c, 1).as_deref(), Some(&value(1)[..]));
        assert_eq!(hit(&c, 2), None);
    }

    #[test]
    fn capacity_zero_stores_nothing() {
        let c = RecordCache::new(0);
        assert!(matches!(c.lookup(&key(1)), Lookup::Miss(None)));
        read_into(&c, 1);
        assert_eq!(hit(&c, 1), None);
        drop(c.fence());
    }

    #[test]
    fn a_read_that_missed_before_a_fence_stores_nothing() {
        let c = RecordCache::new(1 << 20);
        let Lookup::Miss(Some(t)) = c.lookup(&key(1)) else {
            panic!("a first read misses with a ticket");
        };
        // A write opens and closes its fence while the read is at sled.
        drop(c.fence());
        c.offer(t, &key(1), &value(1));
        assert_eq!(hit(&c, 1), None);
    }

    #[test]
    fn no_ticket_while_a_fence_is_open() {
        let c = RecordCache::new(1 << 20);
        let fence = c.fence();
        assert!(matches!(c.lookup(&key(1)), Lookup::Miss(None)));
        drop(fence);
        assert!(matches!(c.lookup(&key(1)), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_fence_forgets_the_keys_it_is_told_and_all_on_request() {
        let c = RecordCache::new(1 << 20);
        for i in 0..3 {
            read_into(&c, i);
        }
        let fence = c.fence();
        fence.forget(&key(1));
        // Hits on untouched keys go on while the fence is open.
        assert!(hit(&c, 0).is_some());
        assert_eq!(hit(&c, 1), None);
        fence.forget_all();
        assert_eq!(hit(&c, 0), None);
        assert_eq!(hit(&c, 2), None);
        drop(fence);
        assert_eq!(usage(&c), (0, 0));
    }

    #[test]
    fn the_bytes_held_stay_within_capacity() {
        let capacity = 64 * 1024;
        let c = RecordCache::new(capacity);
        for round in 0..20 {
            for i in 0..2_000 {
                read_into(&c, i + round);
            }
            let (entries, bytes) = usage(&c);
            assert!(entries > 0);
            assert!(bytes <= capacity as usize, "{bytes} bytes held");
        }
    }

    #[test]
    fn records_read_again_and_again_stay_while_others_pass_through() {
        let c = RecordCache::new(64 * 1024);
        // 50 hot records read between each of 20,000 one-off reads.
        for cold in 0..20_000 {
            read_into(&c, 1_000_000 + cold);
            read_into(&c, cold % 50);
        }
        let hot = (0..50).filter(|&i| hit(&c, i).is_some()).count();
        assert!(hot >= 45, "only {hot} of 50 hot records cached");
    }

    #[test]
    fn rewrites_of_cached_records_leave_a_bounded_queue() {
        let c = RecordCache::new(1 << 20);
        for _ in 0..10_000 {
            for i in 0..3 {
                read_into(&c, i);
            }
            let fence = c.fence();
            fence.forget(&key(1));
            drop(fence);
        }
        let queued: usize = c.shards.iter().map(|s| lock(&s.clock).queue.len()).sum();
        assert!(queued <= 3 * 65, "{queued} queue items for 2 entries");
        assert_eq!(usage(&c).0, 2);
        assert_eq!(hit(&c, 1), None);
    }

    #[test]
    fn entry_overhead_covers_the_entry_types() {
        use std::mem::size_of;
        // hashbrown keeps its load at 7/8 or below and doubles: at worst 16/7 slots (and
        // control bytes) per entry; the queue doubles too, 2 items per entry at worst.
        let map_slot = (size_of::<(Arc<[u8]>, Slot)>() + 1) * 16 / 7;
        let queue_item = size_of::<(Arc<[u8]>, u64)>() * 2;
        // An `Arc<[u8]>` buffer's two counters, and malloc's header, for key and value.
        let buffers = 2 * (16 + 8);
        let needed = map_slot + queue_item + buffers;
        assert!(ENTRY_OVERHEAD >= needed, "{ENTRY_OVERHEAD} < {needed}");
    }

    #[test]
    fn a_walk_over_far_more_records_than_fit_stores_almost_nothing_once_full() {
        let c = RecordCache::new(64 * 1024);
        let stored =
            |c: &RecordCache| -> u64 { c.shards.iter().map(|s| lock(&s.clock).stored).sum() };
        // Fill, then walk 10,000 records round and round.
        for i in 0..1_000 {
            read_into(&c, i);
        }
        assert!(c.shards.iter().all(|s| s.full.load(SeqCst)));
        let before = stored(&c);
        for _ in 0..3 {
            for i in 0..10_000 {
                read_into(&c, 100_000 + i);
            }
        }
        let during = stored(&c) - before;
        assert!(during < 300, "{during} of 30,000 misses stored");
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut per_shard = [0usize; SHARDS];
        for i in 0..16_000 {
            per_shard[shard_of(key_hash(&key(i)))] += 1;
        }
        for n in per_shard {
            assert!((800..1200).contains(&n), "{per_shard:?}");
        }
    }

    #[test]
    fn a_record_larger_than_a_shard_is_not_stored() {
        let c = RecordCache::new(32 * 1024);
        let Lookup::Miss(Some(t)) = c.lookup(b"big") else {
            panic!("a first read misses with a ticket");
        };
        c.offer(t, b"big", &IVec::from(vec![7u8; 4096]));
        assert!(matches!(c.lookup(b"big"), Lookup::Miss(_)));
    }
}
