//! Opening sled databases: directory checks, the lock retry, panic containment, the format
//! and atSign guard, and durable flushes.

use super::layout::{AT_SIGN_KEY, COUNTER, FORMAT_KEY, FORMAT_VERSION};
use crate::error::{PersistenceError, Result};
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A file beside sled's own, written once the database's identity record is durable.
pub(crate) const IDENTITY_MARKER: &str = "atps-identity";

/// Under [`Durability::Periodic`], a flush after this many atomic commits (see
/// [`SledDb::flush`]).
pub(crate) const MAX_UNFLUSHED_COMMITS: u32 = 2;

/// How an acknowledged write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A write is acknowledged only after sled has written it to the operating system and
    /// asked the kernel to write it out (`sync_file_range`). Survives a process crash.
    /// Concurrent writers share one flush (group commit). The server default.
    Durable,
    /// As [`Durability::Durable`], then an `fsync` of the database file, which also asks
    /// the drive to empty its cache: survives power loss, at a higher cost per group.
    DurableSync,
    /// Writes are acknowledged from memory and sled flushes every `interval_ms`
    /// milliseconds: a process crash loses at most about one interval of writes. The
    /// client default (its server holds the truth).
    ///
    /// The writer also waits for sled's log writes after every second atomic commit, so
    /// that at most a handful of them are ever outstanding: sled 0.34 can deadlock when
    /// more of one database's writes are queued on its I/O pool than the pool has idle
    /// threads. A sustained burst of writes therefore runs at the disk's pace.
    Periodic {
        /// Flush interval in milliseconds (at least 1).
        interval_ms: u64,
    },
}

impl Durability {
    /// Whether each acknowledged write is flushed first.
    pub fn flushes_each_write(self) -> bool {
        !matches!(self, Durability::Periodic { .. })
    }
}

/// Settings for opening one database.
#[derive(Debug, Clone)]
pub(crate) struct DbOptions {
    pub cache_capacity: u64,
    pub durability: Durability,
    /// How long to retry sled's lock error before reporting `AlreadyOpen`.
    pub lock_retry: Duration,
}

/// One open sled database and the facts needed to flush it.
pub(crate) struct SledDb {
    db: sled::Db,
    path: PathBuf,
    at_sign: String,
    /// The database's log file, for `fsync` under [`Durability::DurableSync`].
    sync_file: Mutex<Option<File>>,
    /// Atomic commits made since the last flush under [`Durability::Periodic`].
    unflushed: AtomicU32,
    /// Calls to [`SledDb::flush`] since opening: the atomic commits accounted for (a
    /// test-support probe of the write-backlog bound).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    flush_calls: AtomicU64,
    /// Test support: how many of the next flushes fail with an injected I/O error (a flush
    /// failure cannot be provoked on a healthy disk).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    failing_flushes: AtomicU32,
}

impl std::fmt::Debug for SledDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledDb").field("path", &self.path).finish()
    }
}

/// Maps a sled error to the crate's error.
pub(crate) fn backend(context: &str, e: sled::Error) -> PersistenceError {
    match e {
        sled::Error::Corruption { at, .. } => PersistenceError::CorruptStore {
            path: PathBuf::new(),
            reason: format!("sled reported corruption at {at:?} during {context}"),
        },
        sled::Error::Unsupported(msg) => PersistenceError::CorruptStore {
            path: PathBuf::new(),
            reason: format!("unsupported on-disk data during {context}: {msg}"),
        },
        other => PersistenceError::backend(context, other),
    }
}

/// The answer to a write whose atomic batch was applied but whose flush then failed: the
/// write is in the store and visible to readers; whether it reached the disk is unknown.
pub(crate) fn unflushed_error(msg: &str) -> PersistenceError {
    PersistenceError::Backend {
        context: "flushing a write group (the writes are applied and visible; whether they \
                  reached the disk is unknown)"
            .into(),
        source: msg.to_string().into(),
    }
}

/// The message of a caught panic, when it carried one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}

/// Which keys [`SledDb::sweep_tree`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Every key but the counters (keys starting with [`COUNTER`]).
    AllButCounters,
    /// Every key starting with this byte.
    Prefix(u8),
}

/// Checks a storage path before anything is created: it must be non-empty, and must be a
/// directory or not exist, with no file on the way to it.
pub(crate) fn check_dir_path(field: &str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(PersistenceError::InvalidConfig {
            field: field.to_string(),
            reason: "the path is empty".into(),
        });
    }
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(PersistenceError::InvalidConfig {
                    field: field.to_string(),
                    reason: if p == path {
                        format!("{} is a file, not a directory", path.display())
                    } else {
                        format!("{} lies under the file {}", path.display(), p.display())
                    },
                })
            }
            Err(_) => cur = p.parent(),
        }
    }
    Ok(())
}

/// Creates `path` (and missing parents) with owner-only permissions on Unix.
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| PersistenceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl SledDb {
    /// Opens (creating if needed) the database at `path` for `at_sign`.
    ///
    /// sled 0.34 panics on some damaged files; the panic is contained and reported as
    /// [`PersistenceError::CorruptStore`]. A newer format or another atSign's database is
    /// refused before anything is written to it.
    pub(crate) fn open(path: &Path, at_sign: &str, options: &DbOptions) -> Result<SledDb> {
        check_dir_path("storage path", path)?;
        create_private_dir(path)?;
        let flush_every = match options.durability {
            Durability::Periodic { interval_ms } => Some(interval_ms.max(1)),
            // Durable modes flush on every acknowledged write; the background flusher
            // only bounds the work left for a clean shutdown.
            _ => Some(500),
        };
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(flush_every);
        let deadline = Instant::now() + options.lock_retry;
        let db = loop {
            let opened = catch_unwind(AssertUnwindSafe(|| config.open()));
            match opened {
                Ok(Ok(db)) => break db,
                Ok(Err(e)) if is_lock_error(&e) => {
                    if Instant::now() >= deadline {
                        return Err(PersistenceError::AlreadyOpen {
                            path: path.to_path_buf(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(Err(e)) => {
                    return Err(match backend("open", e) {
                        PersistenceError::CorruptStore { reason, .. } => {
                            PersistenceError::CorruptStore {
                                path: path.to_path_buf(),
                                reason,
                            }
                        }
                        other => other,
                    })
                }
                Err(panic) => {
                    let reason = panic_message(panic.as_ref())
                        .unwrap_or_else(|| "sled panicked while opening".into());
                    return Err(PersistenceError::CorruptStore {
                        path: path.to_path_buf(),
                        reason: format!("sled could not open the database: {reason}"),
                    });
                }
            }
        };
        let this = SledDb {
            db,
            path: path.to_path_buf(),
            at_sign: at_sign.to_string(),
            sync_file: Mutex::new(None),
            unflushed: AtomicU32::new(0),
            flush_calls: AtomicU64::new(0),
            failing_flushes: AtomicU32::new(0),
        };
        this.check_identity(at_sign)?;
        Ok(this)
    }

    /// Marks a database of an older format as this build's. Every older format is read as
    /// it is (format 1 keeps the keystore's counts in counter entries that later formats
    /// read and replace on their first write of them, see the layout's "Where the counts
    /// live"; formats 1 and 2 keep a creation index that the keystore removes when it
    /// opens, see "No creation index"), so only the format record changes here, and it
    /// goes to disk before any write of the new format: from then on older builds refuse
    /// the database instead of misreading it.
    fn upgrade_format(&self, found: u32) -> Result<()> {
        let context = format!("upgrading the format record from {found} to {FORMAT_VERSION}");
        self.db
            .insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()[..])
            .map_err(|e| backend(&context, e))?;
        self.db.flush().map_err(|e| backend(&context, e))?;
        Ok(())
    }

    /// Checks (or, on a new database, records) the format version and the atSign.
    fn check_identity(&self, at_sign: &str) -> Result<()> {
        let format = self
            .db
            .get(FORMAT_KEY)
            .map_err(|e| backend("reading the format record", e))?;
        let stored_at_sign = self
            .db
            .get(AT_SIGN_KEY)
            .map_err(|e| backend("reading the atSign record", e))?;
        match (format, stored_at_sign) {
            (Some(f), Some(a)) => {
                let found = <[u8; 4]>::try_from(f.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| PersistenceError::CorruptStore {
                        path: self.path.clone(),
                        reason: "the format record is not 4 bytes".into(),
                    })?;
                if found > FORMAT_VERSION || found == 0 {
                    return Err(PersistenceError::FormatMismatch {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                let stored = String::from_utf8_lossy(&a).into_owned();
                if stored != at_sign {
                    return Err(PersistenceError::AtSignMismatch {
                        path: self.path.clone(),
                        stored,
                        requested: at_sign.to_string(),
                    });
                }
                if found < FORMAT_VERSION {
                    self.upgrade_format(found)?;
                }
                if !self.path.join(IDENTITY_MARKER).exists() {
                    self.write_marker(at_sign)?;
                }
                Ok(())
            }
            (None, None) if self.path.join(IDENTITY_MARKER).exists() => {
                // The directory held one of our databases, but sled came back without its
                // records: its files were lost or damaged. Refuse rather than start over.
                Err(PersistenceError::CorruptStore {
                    path: self.path.clone(),
                    reason: format!(
                        "the database was initialised before ({IDENTITY_MARKER} is present) but \
                         its identity record is gone: sled's files were lost or damaged; \
                         restore the store from a logical backup"
                    ),
                })
            }
            (None, None) => {
                // A new database (or a first open that crashed before its identity was
                // written: nothing else can be in it yet).
                let mut batch = sled::Batch::default();
                batch.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()[..]);
                batch.insert(AT_SIGN_KEY, at_sign.as_bytes());
                self.db
                    .apply_batch(batch)
                    .map_err(|e| backend("writing the format record", e))?;
                self.db
                    .flush()
                    .map_err(|e| backend("flushing the format record", e))?;
                self.write_marker(at_sign)
            }
            _ => Err(PersistenceError::CorruptStore {
                path: self.path.clone(),
                reason: "the format record is incomplete".into(),
            }),
        }
    }

    /// Records, outside sled's files, that this directory holds an initialised database,
    /// so that a later open can tell a lost database from a new one.
    fn write_marker(&self, at_sign: &str) -> Result<()> {
        let path = self.path.join(IDENTITY_MARKER);
        let io = |source| PersistenceError::Io {
            path: path.clone(),
            source,
        };
        let mut f = File::create(&path).map_err(io)?;
        std::io::Write::write_all(&mut f, at_sign.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The atSign this database belongs to.
    pub(crate) fn at_sign(&self) -> &str {
        &self.at_sign
    }

    /// Opens (or creates) a named tree.
    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db
            .open_tree(name)
            .map_err(|e| backend(&format!("opening tree {name}"), e))
    }

    /// Makes everything written so far durable at `level`; called after every atomic
    /// commit.
    ///
    /// Under [`Durability::Periodic`] it flushes after every [`MAX_UNFLUSHED_COMMITS`]
    /// commits. sled 0.34 writes its log buffer out on its process-wide I/O thread pool
    /// twice per atomic commit (`pwrite` plus `sync_file_range`) and does not wait for
    /// those writes unless asked. When commits outpace the disk the writes queue up
    /// without bound (and memory with them), and when every pool thread holds one of this
    /// database's writes, each waiting for the segment accountant, while the accountant's
    /// holder waits for a file truncation queued on the same pool, nothing moves again
    /// (observed in this crate's benchmarks: every `sled-io` thread parked in
    /// `IoBufs::write_to_log`, the writer in `SegmentAccountant::next` waiting for the
    /// truncation). The pool keeps seven idle threads; two commits (four writes) plus one
    /// flush stay below that, so the truncation always finds a thread.
    ///
    /// An operation that applies several atomic batches in a row (a clear, a sweep) calls
    /// this after each of them, like the writer does after each group: otherwise all of
    /// its batches' writes would be queued at once.
    pub(crate) fn flush(&self, level: Durability) -> Result<()> {
        self.flush_calls.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "test-support")]
        if self
            .failing_flushes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PersistenceError::backend(
                "flush",
                std::io::Error::other("injected flush failure (test support)"),
            ));
        }
        match level {
            Durability::Periodic { .. } => {
                if self.unflushed.fetch_add(1, Ordering::Relaxed) + 1 < MAX_UNFLUSHED_COMMITS {
                    return Ok(());
                }
                self.unflushed.store(0, Ordering::Relaxed);
                self.db.flush().map(|_| ()).map_err(|e| backend("flush", e))
            }
            Durability::Durable => self.db.flush().map(|_| ()).map_err(|e| backend("flush", e)),
            Durability::DurableSync => {
                self.db.flush().map_err(|e| backend("flush", e))?;
                self.fsync()
            }
        }
    }

    /// Calls to [`SledDb::flush`] since this database was opened.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    pub(crate) fn flush_calls(&self) -> u64 {
        self.flush_calls.load(Ordering::Relaxed)
    }

    /// Makes the next `n` calls of [`SledDb::flush`] fail with an injected I/O error.
    #[cfg(feature = "test-support")]
    pub(crate) fn fail_next_flushes(&self, n: u32) {
        self.failing_flushes.store(n, Ordering::Relaxed);
    }

    /// Removes every key of `tree` in `scope`, in atomic batches of at most `chunk` keys.
    /// Each batch is followed by [`SledDb::flush`] at `level`, so sled's write backlog
    /// stays bounded however many keys there are. A crash part-way leaves some of the keys
    /// (and, for [`Sweep::AllButCounters`], every counter); errors name `context`.
    pub(crate) fn sweep_tree(
        &self,
        tree: &sled::Tree,
        scope: Sweep,
        level: Durability,
        chunk: usize,
        context: &str,
    ) -> Result<()> {
        let chunk = chunk.max(1);
        loop {
            let keys = match scope {
                Sweep::AllButCounters => tree.iter(),
                Sweep::Prefix(p) => tree.range(vec![p]..super::layout::prefix_end(p)),
            };
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in keys.keys() {
                let k = item.map_err(|e| backend(context, e))?;
                if scope == Sweep::AllButCounters && k.first() == Some(&COUNTER) {
                    continue;
                }
                batch.remove(k);
                n += 1;
                if n == chunk {
                    break;
                }
            }
            if n == 0 {
                return Ok(());
            }
            tree.apply_batch(batch).map_err(|e| backend(context, e))?;
            self.flush(level)?;
        }
    }

    fn fsync(&self) -> Result<()> {
        let mut guard = self.sync_file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let file_path = self.path.join("db");
            let f = File::open(&file_path).map_err(|source| PersistenceError::Io {
                path: file_path.clone(),
                source,
            })?;
            *guard = Some(f);
        }
        if let Some(f) = guard.as_ref() {
            f.sync_all().map_err(|source| PersistenceError::Io {
                path: self.path.join("db"),
                source,
            })?;
        }
        Ok(())
    }

    /// Bytes the database occupies on disk, as sled reports it.
    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        self.db
            .size_on_disk()
            .map_err(|e| backend("size_on_disk", e))
    }
}
