//! The plumbing the three sled stores (keystore with commit log, access log, notification
//! keystore) share, written once: the handle on a store's database and tree.
//!
//! What differs between the stores (their operations, layouts, counters and events) stays
//! in each store's module; this module holds only what is the same logic in all of them.

use super::db::{Durability, SledDb};
use crate::error::{PersistenceError, Result};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

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
