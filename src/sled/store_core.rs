//! The plumbing the three sled stores (keystore with commit log, access log, notification
//! keystore) share, written once: the handle on a store's database and tree, and the way
//! an operation reaches the group writer ([`super::writer`]) and is answered.
//!
//! What differs between the stores (their operations, layouts, counters and events) stays
//! in each store's module; this module holds only what is the same logic in all of them.

use super::db::{Durability, SledDb};
use super::writer::{self, GroupProcessor, WriteQueue};
use crate::error::{PersistenceError, Result};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::oneshot;

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
            .ok_or(PersistenceError::StoreClosed { store: self.store })
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

/// The part of a store the group writer drives: its operations and how a group of them is
/// applied. Every `GroupStore` is a [`GroupProcessor`]: a group is split into runs of
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
