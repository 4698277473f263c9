//! A write overlay over one sled tree: the writes of a group of operations are staged here,
//! read back by later operations of the same group, and applied as one atomic batch.
//!
//! Each operation writes into its own layer first; [`Staging::commit_op`] merges the layer
//! into the group, [`Staging::rollback_op`] discards it, so one failing operation never
//! half-applies nor disturbs the others of its group.
//!
//! Keys and values are held as [`sled::IVec`], the form sled's batch takes, so a staged
//! write is copied once (when it is staged) and moved into the batch.

use super::db::backend;
use super::record_cache::RecordCache;
use crate::error::Result;
use sled::IVec;
use std::collections::BTreeMap;

type Layer = BTreeMap<IVec, Option<IVec>>;

pub(crate) struct Staging<'t> {
    tree: &'t sled::Tree,
    group: Layer,
    op: Layer,
}

impl<'t> Staging<'t> {
    pub(crate) fn new(tree: &'t sled::Tree) -> Self {
        Staging {
            tree,
            group: Layer::new(),
            op: Layer::new(),
        }
    }

    /// What this group has staged under `key`: `None` when nothing, `Some(None)` for a
    /// staged removal.
    pub(crate) fn staged(&self, key: &[u8]) -> Option<Option<&IVec>> {
        self.op
            .get(key)
            .or_else(|| self.group.get(key))
            .map(Option::as_ref)
    }

    /// The value under `key` as the group sees it so far, without copying it.
    pub(crate) fn get_ivec(&self, key: &[u8]) -> Result<Option<IVec>> {
        if let Some(v) = self.staged(key) {
            return Ok(v.cloned());
        }
        self.tree.get(key).map_err(|e| backend("read", e))
    }

    /// The value under `key` as the group sees it so far.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_ivec(key).map(|v| v.map(|v| v.to_vec()))
    }

    /// Stages an insert.
    pub(crate) fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.op.insert(key.into(), Some(value.into()));
    }

    /// Stages a removal.
    pub(crate) fn remove(&mut self, key: impl Into<IVec>) {
        self.op.insert(key.into(), None);
    }

    /// Keeps the current operation's writes.
    pub(crate) fn commit_op(&mut self) {
        if self.group.is_empty() {
            std::mem::swap(&mut self.group, &mut self.op);
        } else {
            let op = std::mem::take(&mut self.op);
            self.group.extend(op);
        }
    }

    /// Discards the current operation's writes.
    pub(crate) fn rollback_op(&mut self) {
        self.op.clear();
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.group.is_empty() && self.op.is_empty()
    }

    /// Applies every kept write as one atomic batch.
    pub(crate) fn apply(self) -> Result<()> {
        self.apply_fenced(None)
    }

    /// [`apply`](Self::apply), with the cached records this batch writes (the keys under
    /// `prefix`, cached without it) dropped inside a write fence that stays open until the
    /// batch is applied.
    pub(crate) fn apply_fenced(mut self, records: Option<(&RecordCache, u8)>) -> Result<()> {
        self.op.clear();
        if self.group.is_empty() {
            return Ok(());
        }
        let _fence = records.map(|(cache, prefix)| {
            let fence = cache.fence();
            for k in self.group.keys() {
                if let Some((&p, key)) = k.split_first() {
                    if p == prefix {
                        fence.forget(key);
                    }
                }
            }
            fence
        });
        let mut batch = sled::Batch::default();
        for (k, v) in std::mem::take(&mut self.group) {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| backend("apply batch", e))
    }
}
