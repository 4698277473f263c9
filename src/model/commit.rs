//! Commit-log entries.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What a commit entry records (BEHAVIOR 1.5). The declaration order is the storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CommitOp {
    /// A value (and maybe metadata) was written: symbol `+`.
    Update,
    /// The key was removed: symbol `-`.
    Delete,
    /// Only the metadata was written: symbol `#`.
    UpdateMeta,
    /// Value and metadata were written: symbol `*`.
    UpdateAll,
}

impl CommitOp {
    /// The wire/storage symbol: `+`, `-`, `#` or `*`.
    pub fn symbol(self) -> &'static str {
        match self {
            CommitOp::Update => "+",
            CommitOp::Delete => "-",
            CommitOp::UpdateMeta => "#",
            CommitOp::UpdateAll => "*",
        }
    }

    /// The op for a symbol; `None` for anything else.
    pub fn from_symbol(s: &str) -> Option<CommitOp> {
        match s {
            "+" => Some(CommitOp::Update),
            "-" => Some(CommitOp::Delete),
            "#" => Some(CommitOp::UpdateMeta),
            "*" => Some(CommitOp::UpdateAll),
            _ => None,
        }
    }
}

/// One retained commit-log entry: the latest change of one atKey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The canonical atKey.
    pub at_key: String,
    /// What happened.
    pub operation: CommitOp,
    /// When (informational; ordering is by `commit_id`).
    pub op_time: Timestamp,
    /// The commit id; `None` only for an entry built for `replay` without one (refused).
    pub commit_id: Option<i64>,
}

impl CommitEntry {
    /// An entry with all four fields.
    pub fn new(
        at_key: impl Into<String>,
        operation: CommitOp,
        op_time: Timestamp,
        commit_id: i64,
    ) -> Self {
        CommitEntry {
            at_key: at_key.into(),
            operation,
            op_time,
            commit_id: Some(commit_id),
        }
    }
}
