//! Value types shared by the store traits: write options, change events, compaction items,
//! commit-log query options and hooks.

use crate::error::{BoxError, Result};
use crate::model::{AssertedTimestamps, CommitEntry, Timestamp};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::fmt;
use std::sync::Arc;

/// A lazily produced sequence of results. Setup errors (closed store, bad regex) are
/// reported before the stream is returned; an item that cannot be read (a corrupt record)
/// is an `Err` item naming its key, and the stream goes on.
pub type ResultStream<T> = BoxStream<'static, Result<T>>;

/// Options of a keystore write (`put`, `create`, `put_meta`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Write without a commit entry, and purge the key's existing entry (API-5.0 3.2).
    /// The call returns `Some(-1)`, also on a commit-log-free store.
    pub skip_commit: bool,
    /// Caller-asserted timestamps (API-5.0 3.4).
    pub asserted: Option<AssertedTimestamps>,
}

impl WriteOptions {
    /// Options with `skip_commit` set.
    pub fn skip_commit() -> Self {
        WriteOptions {
            skip_commit: true,
            asserted: None,
        }
    }

    /// Options carrying asserted timestamps.
    pub fn asserted(asserted: AssertedTimestamps) -> Self {
        WriteOptions {
            skip_commit: false,
            asserted: Some(asserted),
        }
    }
}

/// Options of a keystore `remove`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Remove without a DELETE entry, and purge the key's existing entry.
    pub skip_commit: bool,
    /// The DELETE entry's `op_time` (ignored with `skip_commit`).
    pub deleted_at: Option<Timestamp>,
}

impl RemoveOptions {
    /// Options with `skip_commit` set.
    pub fn skip_commit() -> Self {
        RemoveOptions {
            skip_commit: true,
            deleted_at: None,
        }
    }
}

/// One item of a store's [`changes`](crate::store::KeyValueStore::changes) stream.
///
/// Keys are canonical. Events are sent only after the write they report has been committed.
/// Each subscriber has a bounded buffer; a subscriber that falls behind receives one
/// [`KeyStoreChange::Lagged`] telling how many events it missed, then goes on with the
/// newest ones. Writers never wait for subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyStoreChange {
    /// A key was created (`create`, `put` of an absent key, ...).
    KeyAdded {
        /// The canonical key.
        key: String,
    },
    /// A present key was written.
    KeyUpdated {
        /// The canonical key.
        key: String,
    },
    /// A key was removed.
    KeyRemoved {
        /// The canonical key.
        key: String,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// How many events were dropped for this subscriber.
        missed: u64,
    },
}

impl KeyStoreChange {
    /// The key of a key event; `None` for [`KeyStoreChange::Lagged`].
    pub fn key(&self) -> Option<&str> {
        match self {
            KeyStoreChange::KeyAdded { key }
            | KeyStoreChange::KeyUpdated { key }
            | KeyStoreChange::KeyRemoved { key } => Some(key),
            KeyStoreChange::Lagged { .. } => None,
        }
    }
}

impl fmt::Display for KeyStoreChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStoreChange::KeyAdded { key } => write!(f, "KeyAdded({key})"),
            KeyStoreChange::KeyUpdated { key } => write!(f, "KeyUpdated({key})"),
            KeyStoreChange::KeyRemoved { key } => write!(f, "KeyRemoved({key})"),
            KeyStoreChange::Lagged { missed } => write!(f, "Lagged({missed})"),
        }
    }
}

/// A stream of change events (see [`KeyStoreChange`]). It ends when the store is closed.
pub type ChangeStream = BoxStream<'static, KeyStoreChange>;

/// What a compaction removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompactedItem {
    /// A commit-log entry, by commit id.
    CommitId(i64),
    /// An access-log entry, by id.
    AccessLogId(u64),
    /// A notification, by id.
    NotificationId(String),
}

/// The arguments a remove hook receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveHookArgs {
    /// The canonical key being removed.
    pub key: String,
    /// Whether the remove skips the commit log.
    pub skip_commit: bool,
}

/// An async hook run around each single-key remove (API-5.0 2.1). A pre-remove hook that
/// fails aborts the remove; a post-remove hook's failure is reported after the remove has
/// happened.
pub type RemoveHook =
    Arc<dyn Fn(RemoveHookArgs) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// A caller-side filter for [`CommitLog::iterate`](crate::store::CommitLog::iterate).
pub type CommitFilter = Arc<dyn Fn(&CommitEntry) -> bool + Send + Sync>;

/// Options of [`CommitLog::iterate`](crate::store::CommitLog::iterate) (API-5.0 4.6).
#[derive(Clone, Default)]
pub struct IterateOptions {
    /// Yield only entries with `commit_id >= from_commit_id`.
    pub from_commit_id: Option<i64>,
    /// Yield only entries this filter admits (the sync rule, for example).
    pub filter: Option<CommitFilter>,
    /// Skip DELETE entries with `commit_id <= skip_deletes_until`, except the one whose id
    /// is `latest_commit_id`. Applied before `filter`; gives exactly the results of the
    /// equivalent filter.
    pub skip_deletes_until: Option<i64>,
    /// The id exempt from `skip_deletes_until` (normally the high-water mark).
    pub latest_commit_id: Option<i64>,
}

impl fmt::Debug for IterateOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterateOptions")
            .field("from_commit_id", &self.from_commit_id)
            .field("filter", &self.filter.as_ref().map(|_| "<fn>"))
            .field("skip_deletes_until", &self.skip_deletes_until)
            .field("latest_commit_id", &self.latest_commit_id)
            .finish()
    }
}

impl IterateOptions {
    /// Everything from `from_commit_id` on.
    pub fn from(from_commit_id: i64) -> Self {
        IterateOptions {
            from_commit_id: Some(from_commit_id),
            ..Default::default()
        }
    }

    /// Adds a caller filter.
    pub fn with_filter(mut self, f: impl Fn(&CommitEntry) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }

    /// Adds the skip-deletes hint.
    pub fn with_skip_deletes(mut self, until: i64, latest_commit_id: Option<i64>) -> Self {
        self.skip_deletes_until = Some(until);
        self.latest_commit_id = latest_commit_id;
        self
    }

    /// Whether `entry` passes the skip-deletes hint and the filter.
    pub fn admits(&self, entry: &CommitEntry) -> bool {
        if let Some(until) = self.skip_deletes_until {
            if entry.operation == crate::model::CommitOp::Delete {
                let id = entry.commit_id.unwrap_or(i64::MIN);
                if id <= until && Some(id) != self.latest_commit_id {
                    return false;
                }
            }
        }
        match &self.filter {
            Some(f) => f(entry),
            None => true,
        }
    }
}
