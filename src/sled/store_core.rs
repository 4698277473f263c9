//! The plumbing the three sled stores (keystore with commit log, access log, notification
//! keystore) share, written once:
//!
//! * [`StoreHandle`]: a store's database and tree until it is closed;
//! * [`GroupStore`], [`run`] and [`WriteGroup`]: how an operation reaches the group writer
//!   ([`super::writer`]), how a group is split into batched runs and exclusive operations,
//!   and how a run is staged, applied, flushed and answered;
//! * [`Broadcast`]: a store's events to its subscribers;
//! * [`remove_in_chunks`] and [`chunked`]: bounded removals for clears and compactions;
//! * small readers ([`read_counter`], [`first_instant`], [`regex_of`]);
//! * what live-reading snapshots and buffered transactions share ([`found`], [`Released`],
//!   [`TxnBuffer`]).
//!
//! What differs between the stores (their operations, layouts, counters and events) stays
//! in each store's module; this module holds only what is the same logic in all of them.

use super::db::{backend, unflushed_error, Durability, SledDb};
use super::layout as lay;
use super::record_cache::RecordCache;
use super::staging::Staging;
use super::writer::{self, GroupProcessor, WriteQueue};
use crate::error::{PersistenceError, Result};
use crate::model::Timestamp;
use futures::stream::{BoxStream, Stream, StreamExt};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::{broadcast, oneshot};

/// Locks `m`, taking the value over from a holder that panicked (the stores keep their
/// counters consistent at every step, so a poisoned lock holds a usable value).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An open store's database and tree.
pub(crate) struct Handle {
    pub(crate) db: Arc<SledDb>,
    pub(crate) tree: sled::Tree,
}

/// A store's [`Handle`] until the store is closed; after that every access is
/// [`PersistenceError::StoreClosed`] naming the store.
pub(crate) struct StoreHandle {
    store: &'static str,
    slot: RwLock<Option<Handle>>,
}

impl StoreHandle {
    /// The open handle of `store` (its name in errors) on `tree` of `db`.
    pub(crate) fn new(store: &'static str, db: Arc<SledDb>, tree: sled::Tree) -> Self {
        StoreHandle {
            store,
            slot: RwLock::new(Some(Handle { db, tree })),
        }
    }

    /// Calls `f` with the handle, under the read lock: no copy of the tree handle.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Handle) -> R) -> Result<R> {
        self.slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(f)
            .ok_or_else(|| PersistenceError::StoreClosed { store: self.store })
    }

    /// `StoreClosed` once the store is closed.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        self.with(|_| ())
    }

    /// The store's tree.
    pub(crate) fn tree(&self) -> Result<sled::Tree> {
        self.with(|h| h.tree.clone())
    }

    /// The store's database.
    pub(crate) fn db(&self) -> Result<Arc<SledDb>> {
        self.with(|h| Arc::clone(&h.db))
    }

    /// Releases the database (later accesses are `StoreClosed`), flushing it first as a
    /// best effort: a close should leave nothing in sled's buffers.
    pub(crate) fn close(&self) {
        let handle = self.slot.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.db.flush(Durability::Durable);
        }
    }
}

/// One queued operation and the channel its answer goes to.
pub(crate) struct Queued<Op, A> {
    pub(crate) op: Op,
    pub(crate) tx: oneshot::Sender<Result<A>>,
}

/// The part of a store the group writer and the bundle's lifecycle drive: its operations,
/// how a group of them is applied, how it is emptied and closed. Every `GroupStore` is a
/// [`GroupProcessor`]: a group is split into runs of
/// batched operations, each applied as one atomic batch by
/// [`process_run`](GroupStore::process_run), and exclusive operations, each applied alone
/// by [`process_exclusive`](GroupStore::process_exclusive), in queue order.
pub(crate) trait GroupStore: Send + Sync + 'static {
    /// One operation of this store.
    type Op: Send + 'static;
    /// What an operation answers.
    type Answer: Send + 'static;
    /// Names the write group in the error a caller gets when the writer stops before
    /// answering.
    const WRITE_GROUP: &'static str;
    /// The operation that empties the store (bundle `clear`).
    const CLEAR: Self::Op;

    /// The store's database and tree.
    fn handle(&self) -> &StoreHandle;
    /// The store's write queue.
    fn write_queue(&self) -> &WriteQueue<Queued<Self::Op, Self::Answer>>;
    /// Whether `op` needs the tree to be current (it scans), so it runs alone.
    fn exclusive(op: &Self::Op) -> bool;
    /// Applies a run of non-exclusive operations as one atomic batch and answers each.
    fn process_run(&self, db: &SledDb, tree: &sled::Tree, run: Vec<Queued<Self::Op, Self::Answer>>);
    /// Applies one exclusive operation and answers it.
    fn process_exclusive(&self, db: &SledDb, tree: &sled::Tree, q: Queued<Self::Op, Self::Answer>);

    /// Releases the database; later calls return `StoreClosed`.
    fn close(&self) {
        self.handle().close();
    }
}

impl<S: GroupStore> GroupProcessor for S {
    type Op = Queued<S::Op, S::Answer>;

    fn queue(&self) -> &WriteQueue<Self::Op> {
        self.write_queue()
    }

    fn process_group(&self, ops: Vec<Self::Op>) {
        let Ok((db, tree)) = self.handle().with(|h| (Arc::clone(&h.db), h.tree.clone())) else {
            for q in ops {
                let _ = q.tx.send(Err(PersistenceError::StoreClosed {
                    store: self.handle().store,
                }));
            }
            return;
        };
        let mut run = Vec::new();
        for q in ops {
            if S::exclusive(&q.op) {
                if !run.is_empty() {
                    self.process_run(&db, &tree, std::mem::take(&mut run));
                }
                self.process_exclusive(&db, &tree, q);
            } else {
                run.push(q);
            }
        }
        if !run.is_empty() {
            self.process_run(&db, &tree, run);
        }
    }
}

/// Submits `op` to the store's group writer and waits for its answer. A closed store
/// fails fast, without queueing.
pub(crate) async fn run<S: GroupStore>(store: &Arc<S>, op: S::Op) -> Result<S::Answer> {
    store.handle().ensure_open()?;
    let (tx, rx) = oneshot::channel();
    writer::submit(store, Queued { op, tx });
    rx.await.map_err(|_| PersistenceError::Backend {
        context: S::WRITE_GROUP.into(),
        source: "the writer stopped before answering".into(),
    })?
}

/// A run of operations staged for one atomic batch: the staging, the store's counters
/// (locked from the first operation until the batch is applied), their value before the
/// run, and each operation's answer channel with the effects it staged (`R`) or its error.
pub(crate) struct WriteGroup<'a, C: Copy, A, R> {
    staging: Staging<'a>,
    /// The store's record cache and the prefix of its record keys, when it has one.
    records: Option<(&'a RecordCache, u8)>,
    counters: MutexGuard<'a, C>,
    before: C,
    results: Vec<(oneshot::Sender<Result<A>>, Result<R>)>,
}

impl<'a, C: Copy, A, R> WriteGroup<'a, C, A, R> {
    /// Stages every operation of `run` over `tree` with `apply`, each in its own layer: an
    /// operation that fails leaves neither writes nor counter changes behind, so it never
    /// half-applies nor disturbs the others of its group.
    pub(crate) fn stage<Op>(
        tree: &'a sled::Tree,
        counters: &'a Mutex<C>,
        run: Vec<Queued<Op, A>>,
        mut apply: impl FnMut(&mut Staging<'a>, &mut C, Op) -> Result<R>,
    ) -> Self {
        let mut counters = lock(counters);
        let before = *counters;
        let mut staging = Staging::new(tree);
        let mut results = Vec::with_capacity(run.len());
        for q in run {
            let snapshot = *counters;
            match apply(&mut staging, &mut counters, q.op) {
                Ok(r) => {
                    staging.commit_op();
                    results.push((q.tx, Ok(r)));
                }
                Err(e) => {
                    staging.rollback_op();
                    *counters = snapshot;
                    results.push((q.tx, Err(e)));
                }
            }
        }
        WriteGroup {
            staging,
            records: None,
            counters,
            before,
            results,
        }
    }

    /// Lets `stage` add the persisted counters to the batch, given the counters before the
    /// run and now (which it may update, as the keystore's high-water mark bookkeeping
    /// does).
    pub(crate) fn stage_counters(&mut self, stage: impl FnOnce(&mut Staging<'a>, &C, &mut C)) {
        stage(&mut self.staging, &self.before, &mut self.counters);
    }

    /// Keeps `cache` true to the batch: the records it writes (keys under `prefix`) are
    /// dropped from the cache inside a write fence around the apply.
    pub(crate) fn fence_records(&mut self, cache: &'a RecordCache, prefix: u8) {
        self.records = Some((cache, prefix));
    }

    /// Applies the staged batch and answers every operation.
    ///
    /// If the batch fails, nothing was written: the counters go back to their value before
    /// the run and every operation is answered with a `Backend` error under `context`.
    /// Otherwise the counters stay, whatever the flush says, so no id is handed out twice;
    /// the counters' lock is released and the database flushed at `durability` (when
    /// anything was written). Each successful operation's effects then become its answer
    /// through `answer` (which may publish them: readers already see the change), or, when
    /// the flush failed, [`unflushed_error`].
    pub(crate) fn finish(
        self,
        db: &SledDb,
        durability: Durability,
        context: &str,
        mut answer: impl FnMut(R) -> A,
    ) {
        let WriteGroup {
            staging,
            records,
            mut counters,
            before,
            results,
        } = self;
        let wrote = !staging.is_empty();
        if wrote {
            if let Err(e) = staging.apply_fenced(records) {
                *counters = before;
                let msg = e.to_string();
                for (tx, _) in results {
                    let _ = tx.send(Err(PersistenceError::Backend {
                        context: context.into(),
                        source: msg.clone().into(),
                    }));
                }
                return;
            }
        }
        drop(counters);
        let flushed = if wrote { db.flush(durability) } else { Ok(()) };
        let flush_error = flushed.err().map(|e| e.to_string());
        for (tx, r) in results {
            let reply = r.map(&mut answer).and_then(|a| match &flush_error {
                None => Ok(a),
                Some(msg) => Err(unflushed_error(msg)),
            });
            let _ = tx.send(reply);
        }
    }
}

/// A store's broadcast of events to its subscribers, until the store is closed.
pub(crate) struct Broadcast<T> {
    tx: RwLock<Option<broadcast::Sender<T>>>,
}

impl<T: Clone + Send + 'static> Broadcast<T> {
    /// A broadcast that keeps up to `capacity` (at least 1) events for a slow subscriber.
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Broadcast {
            tx: RwLock::new(Some(tx)),
        }
    }

    /// Sends each of `events` (nothing once closed); no subscriber is not an error.
    pub(crate) fn send_all<I>(&self, events: I)
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
    {
        let events = events.into_iter();
        if events.len() == 0 {
            return;
        }
        if let Some(tx) = self.tx.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            for e in events {
                let _ = tx.send(e);
            }
        }
    }

    /// Whether anyone listens.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// The events sent from now on. A subscriber that falls more than the capacity behind
    /// gets `lagged(missed)` in place of the events it missed, and goes on. The stream ends
    /// when the store is closed (at once if it is closed already).
    pub(crate) fn stream(
        &self,
        lagged: impl Fn(u64) -> T + Copy + Send + 'static,
    ) -> BoxStream<'static, T> {
        let rx = self
            .tx
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|tx| tx.subscribe());
        match rx {
            None => futures::stream::empty().boxed(),
            Some(rx) => futures::stream::unfold(rx, move |mut rx| async move {
                match rx.recv().await {
                    Ok(ev) => Some((ev, rx)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Some((lagged(missed), rx)),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            })
            .boxed(),
        }
    }

    /// Ends every stream; later events go nowhere.
    pub(crate) fn close(&self) {
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Removes what `fill` stages (answering how many units it staged) in bounded chunks,
/// until a chunk stages nothing. Each chunk is one atomic batch, with the counters that
/// `stage_counters` adds given the counters before the chunk and after it, so a crash
/// part-way leaves a smaller, consistent store. The counters follow each applied chunk,
/// even if its flush then fails; each chunk is flushed at `durability`, so sled's write
/// backlog stays bounded however large the store is (see [`SledDb::flush`]).
pub(crate) fn remove_in_chunks<C: Copy>(
    db: &SledDb,
    tree: &sled::Tree,
    durability: Durability,
    counters: &mut C,
    mut fill: impl FnMut(&mut Staging<'_>, &mut C) -> Result<usize>,
    mut stage_counters: impl FnMut(&mut Staging<'_>, &C, &mut C),
) -> Result<()> {
    loop {
        let mut local = *counters;
        let mut s = Staging::new(tree);
        if fill(&mut s, &mut local)? == 0 {
            return Ok(());
        }
        stage_counters(&mut s, counters, &mut local);
        s.apply()?;
        *counters = local;
        db.flush(durability)?;
    }
}

/// The items a compaction removes, removed as the stream is polled: whenever the items
/// of the last chunk are used up, `next_chunk` removes the next chunk (one write group)
/// and answers its items and whether more may be left. An error is yielded once and ends
/// the stream; dropping the stream stops after the current chunk.
pub(crate) fn chunked<T, Fut>(
    next_chunk: impl FnMut() -> Fut + Send + 'static,
) -> impl Stream<Item = Result<T>> + Send + 'static
where
    T: Send + 'static,
    Fut: Future<Output = Result<(Vec<T>, bool)>> + Send,
{
    let state = (next_chunk, Vec::new().into_iter(), false);
    futures::stream::unfold(state, |(mut next_chunk, mut items, mut done)| async move {
        loop {
            if let Some(item) = items.next() {
                return Some((Ok(item), (next_chunk, items, done)));
            }
            if done {
                return None;
            }
            match next_chunk().await {
                Ok((chunk, more)) => {
                    done = !more;
                    items = chunk.into_iter();
                }
                Err(e) => return Some((Err(e), (next_chunk, items, true))),
            }
        }
    })
}

/// The stored 8-byte big-endian counter under `key` of `store`'s `tree`, `None` when
/// absent.
pub(crate) fn read_counter(
    tree: &sled::Tree,
    store: &'static str,
    key: &[u8],
) -> Result<Option<u64>> {
    match tree.get(key).map_err(|e| backend("read counter", e))? {
        Some(v) => lay::read_u64(&v)
            .map(Some)
            .ok_or_else(|| PersistenceError::CorruptRecord {
                store,
                key: lay::render(key),
                reason: "counter is not 8 bytes".into(),
            }),
        None => Ok(None),
    }
}

/// The instant of the first time-index key (see [`lay::timed`]) in `[from, to)`, `None`
/// when there is none.
pub(crate) fn first_instant(
    tree: &sled::Tree,
    from: Vec<u8>,
    to: Vec<u8>,
    context: &str,
) -> Result<Option<Timestamp>> {
    let first = tree
        .range(from..to)
        .keys()
        .next()
        .transpose()
        .map_err(|e| backend(context, e))?;
    Ok(first.and_then(|k| lay::split_timed(&k).map(|(t, _)| t)))
}

/// The regex of a `get_keys` filter: none, or an empty pattern, matches every key.
pub(crate) fn regex_of(pattern: Option<&str>) -> Result<Option<regex::Regex>> {
    match pattern {
        None | Some("") => Ok(None),
        Some(p) => regex::Regex::new(p)
            .map(Some)
            .map_err(|e| PersistenceError::InvalidRegex {
                pattern: p.to_string(),
                reason: e.to_string(),
            }),
    }
}

/// A read of one key as an option: [`PersistenceError::KeyNotFound`] is `None`.
pub(crate) fn found<T>(read: Result<T>) -> Result<Option<T>> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(PersistenceError::KeyNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a live-reading snapshot (sled 0.34 has no read snapshot) has been released.
#[derive(Default)]
pub(crate) struct Released(AtomicBool);

impl Released {
    /// [`PersistenceError::SnapshotReleased`] once released.
    pub(crate) fn check(&self) -> Result<()> {
        if self.0.load(Ordering::SeqCst) {
            return Err(PersistenceError::SnapshotReleased);
        }
        Ok(())
    }

    /// Releases the snapshot.
    pub(crate) fn release(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A transaction's operations: each key with its write (`Some`) or removal (`None`).
pub(crate) type TxnOps<V> = Vec<(String, Option<V>)>;

/// The buffer of a transaction: the latest write (`Some`) or removal (`None`) of each key,
/// in the order of each key's last operation, until the transaction is committed (then
/// every use is an error).
pub(crate) struct TxnBuffer<V> {
    ops: TxnOps<V>,
    committed: bool,
}

impl<V> Default for TxnBuffer<V> {
    fn default() -> Self {
        TxnBuffer {
            ops: Vec::new(),
            committed: false,
        }
    }
}

fn txn_used() -> PersistenceError {
    PersistenceError::invalid_argument("transaction", "the transaction has already been committed")
}

impl<V> TxnBuffer<V> {
    /// Buffers `value` (`None`: a removal) as the latest operation on `key`.
    pub(crate) fn buffer(&mut self, key: String, value: Option<V>) -> Result<()> {
        if self.committed {
            return Err(txn_used());
        }
        self.ops.retain(|(k, _)| *k != key);
        self.ops.push((key, value));
        Ok(())
    }

    /// The buffered operation on `key`, if any.
    pub(crate) fn lookup(&self, key: &str) -> Result<Option<&Option<V>>> {
        if self.committed {
            return Err(txn_used());
        }
        Ok(self.ops.iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// Marks the transaction committed and hands over its operations; `None` when nothing
    /// was buffered (there is nothing to write).
    pub(crate) fn commit(&mut self) -> Result<Option<TxnOps<V>>> {
        if self.committed {
            return Err(txn_used());
        }
        self.committed = true;
        let ops = std::mem::take(&mut self.ops);
        Ok((!ops.is_empty()).then_some(ops))
    }
}
