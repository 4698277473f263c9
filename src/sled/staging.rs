//! A write overlay over one sled tree: the writes of a group of operations are staged here,
//! read back by later operations of the same group, and applied as one atomic batch.
//!
//! Each operation writes into its own layer first; [`Staging::commit_op`] merges the layer
//! into the group, [`Staging::rollback_op`] discards it, so one failing operation never
//! half-applies nor disturbs the others of its group.

use super::db::backend;
use crate::error::Result;
use std::collections::BTreeMap;

type Layer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

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

    /// The value under `key` as the group sees it so far.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.op.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.group.get(key) {
            return Ok(v.clone());
        }
        self.tree
            .get(key)
            .map(|o| o.map(|v| v.to_vec()))
            .map_err(|e| backend("read", e))
    }

    /// Stages an insert.
    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.op.insert(key, Some(value));
    }

    /// Stages a removal.
    pub(crate) fn remove(&mut self, key: Vec<u8>) {
        self.op.insert(key, None);
    }

    /// Keeps the current operation's writes.
    pub(crate) fn commit_op(&mut self) {
        let op = std::mem::take(&mut self.op);
        self.group.extend(op);
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
    pub(crate) fn apply(mut self) -> Result<()> {
        self.op.clear();
        if self.group.is_empty() {
            return Ok(());
        }
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
