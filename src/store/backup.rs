//! Logical backup: one bundle as a single versioned, checksummed stream (a file), written
//! and read through the abstract store traits, so it moves an atSign's data between
//! machines, between backends and across on-disk format changes of a backend (sled
//! refuses to open a database written by another page-cache version; a logical backup
//! does not depend on it).
//!
//! # Format (version 1)
//!
//! All integers are little endian.
//!
//! ```text
//! file     := magic version frame(H) frame(K)* frame(C)* frame(A)* frame(N)* frame(T)
//! magic    := "ATPSBKUP"                        8 bytes
//! version  := u32                               1 for this format
//! frame    := tag:u8 len:u32 payload[len] crc:u32
//!             crc = CRC-32 (IEEE 802.3) of tag, len and payload
//! H        := header, JSON: {"format", "atSign", "createdAt" (epoch ms), "backend",
//!             "crateVersion", "stores": {"keyStore", "commitLog", "accessLog",
//!             "notificationKeystore"}}
//! K C A N  := a chunk of records: count:u32, then count × (len:u32 record[len]);
//!             K: (canonical key, AtData), C: CommitEntry, A: AccessLogEntry,
//!             N: AtNotification, each record in the crate's versioned record codec
//!             (`model::codec`, the same envelope the sled stores use)
//! T        := trailer, JSON: {"keys", "commitEntries", "accessEntries", "notifications",
//!             "lastCommittedSequenceNumber" (null without a commit log), "chunks",
//!             "bodyCrc32"}; bodyCrc32 is the CRC-32 of every byte before the trailer frame
//! ```
//!
//! Nothing may follow the trailer. A chunk holds at most about
//! [`DEFAULT_CHUNK_BYTES`] of records (a single larger record gets a chunk of its own).
//! Records use the binary record codec rather than JSON because it is the format the
//! crate already pins byte for byte (`tests/model_codec.rs`) and keeps reading forever
//! (its format byte); header and trailer are JSON so a person can read them.
//!
//! # Guarantees
//!
//! * Export and import stream: memory does not grow with the store (one chunk and the
//!   writes in flight).
//! * Import reads the whole stream once to verify it (every frame checksum, the record
//!   encodings, the section order, the trailer's counts and body checksum, nothing after
//!   the trailer) and writes nothing until that pass succeeds. A truncated, damaged or
//!   newer-format stream is [`InvalidBackup`](PersistenceError::InvalidBackup) and the
//!   target is untouched. The second pass writes; if it fails (a write error, or a file
//!   changed between the passes) the target is cleared before the error is returned.
//! * Import applies the migration rules of [`PersistenceMigrator`](super::PersistenceMigrator)
//!   (orphaned commit entries dropped, tombstones kept, the high-water mark carried), so
//!   the imported bundle matches the exported one under
//!   [`PersistenceSnapshot`](super::PersistenceSnapshot).
//! * The source should be quiescent during an export: stores are read one after another,
//!   not from one point-in-time snapshot.

use super::bundle::Bundle;
use super::migrate::{
    check_same_at_sign, copy_bundle, ensure_empty, BulkSettings, BundleSink, MigrationReport, Pass,
    ProgressFn, StoreKind, TargetWriter,
};
use crate::error::{PersistenceError, Result};
use crate::model::codec;
use crate::model::{AccessLogEntry, AtData, AtNotification, CommitEntry, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The first eight bytes of every backup stream.
pub const BACKUP_MAGIC: [u8; 8] = *b"ATPSBKUP";
/// The format version this build writes and the newest it reads.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// The default target size of one chunk of records (1 MiB).
pub const DEFAULT_CHUNK_BYTES: usize = 1024 * 1024;
/// The largest frame payload a reader accepts (256 MiB); larger is a damaged length.
pub const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;

const TAG_HEADER: u8 = b'H';
const TAG_KEYS: u8 = b'K';
const TAG_COMMIT: u8 = b'C';
const TAG_ACCESS: u8 = b'A';
const TAG_NOTIFICATIONS: u8 = b'N';
const TAG_TRAILER: u8 = b'T';

/// Which stores a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStores {
    /// Always true: every bundle has a keystore.
    pub key_store: bool,
    /// The source had a commit log.
    pub commit_log: bool,
    /// The source had an access log.
    pub access_log: bool,
    /// The source had a notification keystore.
    pub notification_keystore: bool,
}

impl BackupStores {
    fn of(bundle: &Bundle) -> Self {
        BackupStores {
            key_store: true,
            commit_log: bundle.commit_log().is_some(),
            access_log: bundle.access_log().is_some(),
            notification_keystore: bundle.notification_keystore().is_some(),
        }
    }

    fn has(&self, kind: StoreKind) -> bool {
        match kind {
            StoreKind::KeyStore => self.key_store,
            StoreKind::CommitLog => self.commit_log,
            StoreKind::AccessLog => self.access_log,
            StoreKind::NotificationKeystore => self.notification_keystore,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    format: u32,
    at_sign: String,
    created_at: i64,
    backend: String,
    crate_version: String,
    stores: BackupStores,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trailer {
    keys: u64,
    commit_entries: u64,
    access_entries: u64,
    notifications: u64,
    last_committed_sequence_number: Option<i64>,
    chunks: u64,
    body_crc32: u32,
}

/// What a backup stream holds, as written by an export or read by a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The stream's format version.
    pub format_version: u32,
    /// The atSign whose data it holds.
    pub at_sign: String,
    /// When the export started.
    pub created_at: Timestamp,
    /// The backend the data was exported from (informational), e.g. `sled`.
    pub backend: String,
    /// Which stores it holds.
    pub stores: BackupStores,
    /// Keystore records.
    pub keys: u64,
    /// Commit entries (as exported; an import drops orphans among them).
    pub commit_entries: u64,
    /// Access-log entries.
    pub access_entries: u64,
    /// Notifications.
    pub notifications: u64,
    /// The source's high-water mark, or `None` without a commit log.
    pub last_committed_sequence_number: Option<i64>,
    /// Chunks of records.
    pub chunks: u64,
    /// The stream's length in bytes.
    pub bytes: u64,
}

/// Exports bundles to, and imports them from, logical backup streams (see the module
/// documentation for the format and the guarantees).
///
/// Reading and writing the stream is blocking I/O done on the calling task (as the sled
/// stores' own reads are); run a large export or import where blocking a runtime worker
/// for its duration is acceptable (a command-line tool, a maintenance task), or on a
/// runtime of its own.
///
/// ```no_run
/// # async fn demo(source: &at_persistence_secondary_server::store::Bundle,
/// #               fresh: &at_persistence_secondary_server::store::Bundle)
/// #               -> at_persistence_secondary_server::Result<()> {
/// use at_persistence_secondary_server::store::LogicalBackup;
/// let backup = LogicalBackup::new();
/// let written = backup.export_to_path(source, "alice.atbackup".as_ref()).await?;
/// let report = backup.import_from_path(fresh, "alice.atbackup".as_ref()).await?;
/// assert_eq!(report.keys, written.keys);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LogicalBackup {
    settings: BulkSettings,
    chunk_bytes: usize,
}

impl Default for LogicalBackup {
    fn default() -> Self {
        LogicalBackup {
            settings: BulkSettings::default(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

fn invalid(reason: impl Into<String>) -> PersistenceError {
    PersistenceError::InvalidBackup {
        reason: reason.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> PersistenceError {
    PersistenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The pseudo path named by I/O errors on a caller-supplied stream.
const STREAM: &str = "<backup stream>";

fn stream_err(source: std::io::Error) -> PersistenceError {
    io_err(Path::new(STREAM), source)
}

impl LogicalBackup {
    /// Default settings: 1 MiB chunks, 64 writes in flight on import, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `n` writes in flight during an import (at least 1); see
    /// [`PersistenceMigrator::with_parallelism`](super::PersistenceMigrator::with_parallelism).
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.settings.parallelism = n.max(1);
        self
    }

    /// Calls `progress` every `every` records of each store (and at each store's end)
    /// during export, verification and import.
    pub fn with_progress(mut self, every: u64, progress: ProgressFn) -> Self {
        self.settings.progress = Some(progress);
        self.settings.progress_every = every;
        self
    }

    /// Sets the target size of a chunk of records (at least 1 byte: every record then gets
    /// a chunk of its own). Smaller chunks localise damage; larger ones cost fewer frames.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// Writes every store of `bundle` to `out` and returns what was written. `out` is
    /// written through a buffer and flushed at the end. An I/O failure is
    /// [`Io`](PersistenceError::Io); the partial stream is then unusable (an import
    /// refuses it).
    pub async fn export<W: Write + Send>(&self, bundle: &Bundle, out: W) -> Result<BackupSummary> {
        if bundle.is_closed() {
            return Err(PersistenceError::StoreClosed { store: "bundle" });
        }
        let stores = BackupStores::of(bundle);
        let created_at = Timestamp::from_system_time(SystemTime::now());
        let header = Header {
            format: BACKUP_FORMAT_VERSION,
            at_sign: bundle.at_sign().to_string(),
            created_at: created_at.as_millis(),
            backend: format!("{:?}", bundle.backend_id()).to_lowercase(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            stores,
        };
        let mut sink = ExportSink {
            out: FrameWriter::new(BufWriter::with_capacity(256 * 1024, out)),
            stores,
            settings: self.settings.clone(),
            chunk_bytes: self.chunk_bytes,
            chunk: Vec::new(),
            chunk_records: 0,
            chunk_tag: TAG_KEYS,
            counts: [0; 4],
            last: None,
        };
        sink.out.write_raw(&BACKUP_MAGIC)?;
        sink.out.write_raw(&BACKUP_FORMAT_VERSION.to_le_bytes())?;
        sink.out.write_frame(TAG_HEADER, &to_json(&header)?)?;
        copy_bundle(bundle, &mut sink).await?;
        let trailer = Trailer {
            keys: sink.counts[0],
            commit_entries: sink.counts[1],
            access_entries: sink.counts[2],
            notifications: sink.counts[3],
            last_committed_sequence_number: sink.last,
            chunks: sink.out.chunks,
            body_crc32: sink.out.crc.finish(),
        };
        sink.out.write_frame(TAG_TRAILER, &to_json(&trailer)?)?;
        sink.out.out.flush().map_err(stream_err)?;
        Ok(summary(&header, &trailer, sink.out.bytes))
    }

    /// Exports `bundle` to a new file at `path`. The stream is written to
    /// `<path>.partial`, synced to disk and then renamed, so `path` only ever holds a
    /// complete backup. An existing `path` (or a leftover `.partial`) is refused with
    /// [`InvalidArgument`](PersistenceError::InvalidArgument): a backup is never
    /// overwritten.
    pub async fn export_to_path(&self, bundle: &Bundle, path: &Path) -> Result<BackupSummary> {
        if path.exists() {
            return Err(PersistenceError::invalid_argument(
                "path",
                format!(
                    "{} already exists; a backup is never overwritten (remove it or choose another name)",
                    path.display()
                ),
            ));
        }
        let partial = partial_path(path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    PersistenceError::invalid_argument(
                        "path",
                        format!(
                            "{} exists (left by an interrupted export?); remove it first",
                            partial.display()
                        ),
                    )
                } else {
                    io_err(&partial, e)
                }
            })?;
        let result = async {
            let summary = self
                .export(bundle, &file)
                .await
                .map_err(|e| rename_stream_errors(e, &partial))?;
            file.sync_all().map_err(|e| io_err(&partial, e))?;
            std::fs::rename(&partial, path).map_err(|e| io_err(path, e))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Make the rename durable; not every platform can sync a directory.
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(summary)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Reads a whole backup stream and checks it (the first pass of an import) without
    /// writing anywhere; returns what it holds.
    pub fn verify<R: Read>(&self, input: R) -> Result<BackupSummary> {
        let mut reader = BackupReader::open(input)?;
        let mut records = [0u64; 4];
        // The next store whose end has not been reported.
        let mut open = 0;
        let stores = reader.header.stores;
        let end_before = |open: &mut usize, until: usize, records: &[u64; 4]| {
            while *open < until {
                let kind = ALL_KINDS[*open];
                if stores.has(kind) {
                    self.settings
                        .report(Pass::Verify, kind, records[*open], true);
                }
                *open += 1;
            }
        };
        while let Some(item) = reader.next_item()? {
            let kind = item.kind();
            let i = kind_index(kind);
            end_before(&mut open, i, &records);
            records[i] += 1;
            self.settings.report(Pass::Verify, kind, records[i], false);
        }
        end_before(&mut open, ALL_KINDS.len(), &records);
        reader.summary()
    }

    /// [`verify`](Self::verify) of the file at `path`.
    pub fn verify_path(&self, path: &Path) -> Result<BackupSummary> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        self.verify(BufReader::with_capacity(256 * 1024, file))
            .map_err(|e| rename_stream_errors(e, path))
    }

    /// Imports a backup stream into `target`, which must be empty
    /// ([`TargetNotEmpty`](PersistenceError::TargetNotEmpty) otherwise, before anything
    /// is read or written) and belong to the backup's atSign
    /// ([`InvalidArgument`](PersistenceError::InvalidArgument) otherwise).
    ///
    /// The stream is read twice from its current position: a first pass verifies all of
    /// it and writes nothing (a damaged, truncated or newer-format stream is
    /// [`InvalidBackup`](PersistenceError::InvalidBackup) and the target stays empty); the
    /// second writes with the migration rules. If the second pass fails the target is
    /// cleared before the error is returned. A store the backup has and the target lacks
    /// is skipped (its count stays 0).
    pub async fn import<R: Read + Seek + Send>(
        &self,
        target: &Bundle,
        mut input: R,
    ) -> Result<MigrationReport> {
        ensure_empty(target).await?;
        let start = input.stream_position().map_err(stream_err)?;
        let verified = self.verify(BufReader::with_capacity(256 * 1024, &mut input))?;
        check_same_at_sign(&verified.at_sign, target)?;
        input.seek(SeekFrom::Start(start)).map_err(stream_err)?;
        // Nothing was written yet: refuse a target someone wrote to during the first pass.
        ensure_empty(target).await?;
        let mut sink = TargetWriter::new(target, self.settings.clone(), Pass::Import);
        let reader = BufReader::with_capacity(256 * 1024, input);
        match write_pass(reader, &verified, &mut sink).await {
            Ok(()) => sink.finish().await,
            Err(e) => Err(sink.abort(e).await),
        }
    }

    /// [`import`](Self::import) of the file at `path`.
    pub async fn import_from_path(&self, target: &Bundle, path: &Path) -> Result<MigrationReport> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        self.import(target, file)
            .await
            .map_err(|e| rename_stream_errors(e, path))
    }
}

/// Names `path` instead of the stream placeholder in I/O errors.
fn rename_stream_errors(e: PersistenceError, path: &Path) -> PersistenceError {
    match e {
        PersistenceError::Io { path: p, source } if p.as_os_str() == STREAM => io_err(path, source),
        other => other,
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| PersistenceError::InvalidJson {
        field: "backup header".into(),
        reason: e.to_string(),
    })
}

fn summary(header: &Header, trailer: &Trailer, bytes: u64) -> BackupSummary {
    BackupSummary {
        format_version: header.format,
        at_sign: header.at_sign.clone(),
        created_at: Timestamp::from_millis(header.created_at),
        backend: header.backend.clone(),
        stores: header.stores,
        keys: trailer.keys,
        commit_entries: trailer.commit_entries,
        access_entries: trailer.access_entries,
        notifications: trailer.notifications,
        last_committed_sequence_number: trailer.last_committed_sequence_number,
        chunks: trailer.chunks,
        bytes,
    }
}

const ALL_KINDS: [StoreKind; 4] = [
    StoreKind::KeyStore,
    StoreKind::CommitLog,
    StoreKind::AccessLog,
    StoreKind::NotificationKeystore,
];

fn kind_index(kind: StoreKind) -> usize {
    match kind {
        StoreKind::KeyStore => 0,
        StoreKind::CommitLog => 1,
        StoreKind::AccessLog => 2,
        StoreKind::NotificationKeystore => 3,
    }
}

fn kind_tag(kind: StoreKind) -> u8 {
    [TAG_KEYS, TAG_COMMIT, TAG_ACCESS, TAG_NOTIFICATIONS][kind_index(kind)]
}

fn tag_kind(tag: u8) -> Option<StoreKind> {
    match tag {
        TAG_KEYS => Some(StoreKind::KeyStore),
        TAG_COMMIT => Some(StoreKind::CommitLog),
        TAG_ACCESS => Some(StoreKind::AccessLog),
        TAG_NOTIFICATIONS => Some(StoreKind::NotificationKeystore),
        _ => None,
    }
}

/// The second pass of an import: replays the verified stream into `sink`.
async fn write_pass<R: Read + Send>(
    input: R,
    verified: &BackupSummary,
    sink: &mut TargetWriter,
) -> Result<()> {
    let mut reader = BackupReader::open(input)?;
    // The next store whose end has not been signalled.
    let mut open = 0usize;
    while let Some(item) = reader.next_item()? {
        let i = kind_index(item.kind());
        end_stores_before(sink, &mut open, i, verified).await?;
        match item {
            Item::Key(k, v) => sink.key(k, v).await?,
            Item::Commit(e) => sink.commit_entry(e).await?,
            Item::Access(e) => sink.access_entry(e).await?,
            Item::Notification(n) => sink.notification(n).await?,
        }
    }
    end_stores_before(sink, &mut open, ALL_KINDS.len(), verified).await?;
    let second = reader.summary()?;
    if second != *verified {
        return Err(invalid(
            "the stream changed between the verification pass and the write pass",
        ));
    }
    Ok(())
}

/// Signals the end of every store before position `until` (in store order) that the
/// backup holds and whose end was not signalled yet.
async fn end_stores_before(
    sink: &mut TargetWriter,
    open: &mut usize,
    until: usize,
    verified: &BackupSummary,
) -> Result<()> {
    while *open < until {
        let kind = ALL_KINDS[*open];
        if verified.stores.has(kind) {
            match kind {
                StoreKind::KeyStore => sink.end_keys().await?,
                StoreKind::CommitLog => {
                    sink.end_commit_log(verified.last_committed_sequence_number)
                        .await?
                }
                StoreKind::AccessLog => sink.end_access_log().await?,
                StoreKind::NotificationKeystore => sink.end_notifications().await?,
            }
        }
        *open += 1;
    }
    Ok(())
}

/// The export side: buffers records into chunks and writes frames.
struct ExportSink<W: Write> {
    out: FrameWriter<W>,
    stores: BackupStores,
    settings: BulkSettings,
    chunk_bytes: usize,
    chunk: Vec<u8>,
    chunk_records: u32,
    chunk_tag: u8,
    counts: [u64; 4],
    last: Option<i64>,
}

impl<W: Write> ExportSink<W> {
    fn record(&mut self, kind: StoreKind, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME_BYTES - 8)
            .ok_or_else(|| {
                PersistenceError::invalid_argument(
                    "record",
                    format!(
                        "a {} record of {} bytes exceeds the backup frame limit of {MAX_FRAME_BYTES} bytes",
                        kind.name(),
                        bytes.len()
                    ),
                )
            })?;
        let tag = kind_tag(kind);
        if self.chunk_records > 0
            && (tag != self.chunk_tag
                || self.chunk.len() + 4 + bytes.len() > self.chunk_bytes
                || self.chunk.len() + 4 + bytes.len() > MAX_FRAME_BYTES as usize - 4)
        {
            self.flush_chunk()?;
        }
        self.chunk_tag = tag;
        self.chunk.extend_from_slice(&len.to_le_bytes());
        self.chunk.extend_from_slice(bytes);
        self.chunk_records += 1;
        let i = kind_index(kind);
        self.counts[i] += 1;
        self.settings
            .report(Pass::Export, kind, self.counts[i], false);
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        if self.chunk_records == 0 {
            return Ok(());
        }
        let mut payload = Vec::with_capacity(4 + self.chunk.len());
        payload.extend_from_slice(&self.chunk_records.to_le_bytes());
        payload.extend_from_slice(&self.chunk);
        self.out.write_frame(self.chunk_tag, &payload)?;
        self.out.chunks += 1;
        self.chunk.clear();
        if self.chunk.capacity() > 4 * self.chunk_bytes {
            self.chunk.shrink_to(self.chunk_bytes);
        }
        self.chunk_records = 0;
        Ok(())
    }

    fn end(&mut self, kind: StoreKind) -> Result<()> {
        self.flush_chunk()?;
        self.settings
            .report(Pass::Export, kind, self.counts[kind_index(kind)], true);
        Ok(())
    }
}

#[async_trait]
impl<W: Write + Send> BundleSink for ExportSink<W> {
    fn has(&self, kind: StoreKind) -> bool {
        self.stores.has(kind)
    }

    async fn key(&mut self, key: String, value: AtData) -> Result<()> {
        let value = AtData { key: None, ..value };
        self.record(StoreKind::KeyStore, &codec::encode(&(key, value)))
    }

    async fn end_keys(&mut self) -> Result<()> {
        self.end(StoreKind::KeyStore)
    }

    async fn commit_entry(&mut self, entry: CommitEntry) -> Result<()> {
        self.record(StoreKind::CommitLog, &codec::encode(&entry))
    }

    async fn end_commit_log(&mut self, last: Option<i64>) -> Result<()> {
        self.last = last;
        self.end(StoreKind::CommitLog)
    }

    async fn access_entry(&mut self, entry: AccessLogEntry) -> Result<()> {
        self.record(StoreKind::AccessLog, &codec::encode(&entry))
    }

    async fn end_access_log(&mut self) -> Result<()> {
        self.end(StoreKind::AccessLog)
    }

    async fn notification(&mut self, n: AtNotification) -> Result<()> {
        self.record(StoreKind::NotificationKeystore, &codec::encode(&n))
    }

    async fn end_notifications(&mut self) -> Result<()> {
        self.end(StoreKind::NotificationKeystore)
    }
}

/// Writes raw bytes and frames, keeping the running checksum of everything written.
struct FrameWriter<W: Write> {
    out: W,
    crc: Crc32,
    bytes: u64,
    chunks: u64,
}

impl<W: Write> FrameWriter<W> {
    fn new(out: W) -> Self {
        FrameWriter {
            out,
            crc: Crc32::new(),
            bytes: 0,
            chunks: 0,
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(stream_err)?;
        self.crc.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn write_frame(&mut self, tag: u8, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME_BYTES)
            .ok_or_else(|| {
                PersistenceError::invalid_argument(
                    "frame",
                    format!("{} bytes exceed the frame limit", payload.len()),
                )
            })?;
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_le_bytes());
        let mut frame_crc = Crc32::new();
        frame_crc.update(&head);
        frame_crc.update(payload);
        self.write_raw(&head)?;
        self.write_raw(payload)?;
        self.write_raw(&frame_crc.finish().to_le_bytes())
    }
}

/// One record read from a backup.
enum Item {
    Key(String, AtData),
    Commit(CommitEntry),
    Access(AccessLogEntry),
    Notification(AtNotification),
}

impl Item {
    fn kind(&self) -> StoreKind {
        match self {
            Item::Key(..) => StoreKind::KeyStore,
            Item::Commit(_) => StoreKind::CommitLog,
            Item::Access(_) => StoreKind::AccessLog,
            Item::Notification(_) => StoreKind::NotificationKeystore,
        }
    }
}

/// Reads and checks a backup stream record by record. Memory: one chunk.
struct BackupReader<R: Read> {
    input: R,
    crc: Crc32,
    bytes: u64,
    header: Header,
    /// The store of the last chunk read (chunks must come in store order).
    section: usize,
    pending: VecDeque<Item>,
    counts: [u64; 4],
    chunks: u64,
    trailer: Option<Trailer>,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the magic, the version and the header.
    fn open(mut input: R) -> Result<Self> {
        let mut crc = Crc32::new();
        let mut preamble = [0u8; 12];
        let got = read_up_to(&mut input, &mut preamble)?;
        if got < BACKUP_MAGIC.len() || preamble[..8] != BACKUP_MAGIC {
            return Err(invalid(format!(
                "not a backup stream: it does not start with the magic bytes {:?}",
                String::from_utf8_lossy(&BACKUP_MAGIC)
            )));
        }
        if got < preamble.len() {
            return Err(invalid(
                "truncated: the stream ends inside the format version",
            ));
        }
        let version = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
        if version > BACKUP_FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {version} is newer than this build reads (up to \
                 {BACKUP_FORMAT_VERSION}); import it with a newer build"
            )));
        }
        if version == 0 {
            return Err(invalid("format version 0 does not exist (damaged stream)"));
        }
        crc.update(&preamble);
        let mut reader = BackupReader {
            input,
            crc,
            bytes: preamble.len() as u64,
            header: Header {
                format: version,
                at_sign: String::new(),
                created_at: 0,
                backend: String::new(),
                crate_version: String::new(),
                stores: BackupStores::default(),
            },
            section: 0,
            pending: VecDeque::new(),
            counts: [0; 4],
            chunks: 0,
            trailer: None,
        };
        let (tag, payload) = reader
            .read_frame()?
            .ok_or_else(|| invalid("truncated: the stream ends before the header"))?;
        if tag != TAG_HEADER {
            return Err(invalid(format!(
                "the first frame has tag {:?}, expected the header {:?}",
                tag as char, TAG_HEADER as char
            )));
        }
        let header: Header = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("the header is not valid JSON: {e}")))?;
        if header.format != version {
            return Err(invalid(format!(
                "the header says format {} but the stream says {version}",
                header.format
            )));
        }
        if !header.stores.key_store {
            return Err(invalid("the header says the backup has no keystore"));
        }
        reader.header = header;
        Ok(reader)
    }

    /// Reads one frame: `None` at a clean end of stream (no byte left).
    fn read_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 5];
        let got = read_up_to(&mut self.input, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(invalid(format!(
                "truncated: the stream ends inside a frame header at byte {}",
                self.bytes + got as u64
            )));
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_FRAME_BYTES {
            return Err(invalid(format!(
                "the frame at byte {} claims {len} bytes, more than the limit of \
                 {MAX_FRAME_BYTES} (damaged length)",
                self.bytes
            )));
        }
        let mut payload = Vec::new();
        let read = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut payload)
            .map_err(stream_err)?;
        if read < len as usize {
            return Err(invalid(format!(
                "truncated: the frame at byte {} claims {len} bytes, the stream has {read}",
                self.bytes
            )));
        }
        let mut crc_bytes = [0u8; 4];
        if read_up_to(&mut self.input, &mut crc_bytes)? < 4 {
            return Err(invalid(format!(
                "truncated: the stream ends inside the checksum of the frame at byte {}",
                self.bytes
            )));
        }
        let mut frame_crc = Crc32::new();
        frame_crc.update(&head);
        frame_crc.update(&payload);
        let stored = u32::from_le_bytes(crc_bytes);
        if frame_crc.finish() != stored {
            return Err(invalid(format!(
                "checksum mismatch in the frame at byte {} ({} bytes): the stream is damaged",
                self.bytes, len
            )));
        }
        self.crc.update(&head);
        self.crc.update(&payload);
        self.crc.update(&crc_bytes);
        self.bytes += 9 + u64::from(len);
        Ok(Some((head[0], payload)))
    }

    /// The next record; `None` after a valid trailer (and nothing after it).
    fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.trailer.is_some() {
                return Ok(None);
            }
            let at = self.bytes;
            let body_crc = self.crc.finish();
            let (tag, payload) = self
                .read_frame()?
                .ok_or_else(|| invalid("truncated: the stream ends before the trailer"))?;
            if tag == TAG_TRAILER {
                self.finish_trailer(&payload, body_crc)?;
                continue;
            }
            let kind = tag_kind(tag).ok_or_else(|| {
                invalid(format!(
                    "unknown frame tag {:?} at byte {at}",
                    char::from(tag)
                ))
            })?;
            let i = kind_index(kind);
            if !self.header.stores.has(kind) {
                return Err(invalid(format!(
                    "a {} chunk at byte {at}, but the header lists no {}",
                    kind.name(),
                    kind.name()
                )));
            }
            if i < self.section {
                return Err(invalid(format!(
                    "a {} chunk at byte {at} after the {} section",
                    kind.name(),
                    ALL_KINDS[self.section].name()
                )));
            }
            self.section = i;
            self.chunks += 1;
            self.decode_chunk(kind, &payload, at)?;
        }
    }

    fn decode_chunk(&mut self, kind: StoreKind, payload: &[u8], at: u64) -> Result<()> {
        let bad = |what: String| invalid(format!("{} chunk at byte {at}: {what}", kind.name()));
        let (count, mut rest) = take_u32(payload).ok_or_else(|| bad("no record count".into()))?;
        if count == 0 {
            return Err(bad("an empty chunk".into()));
        }
        for n in 0..count {
            let (len, after) =
                take_u32(rest).ok_or_else(|| bad(format!("record {n} has no length")))?;
            let len = len as usize;
            if after.len() < len {
                return Err(bad(format!(
                    "record {n} claims {len} bytes, {} remain",
                    after.len()
                )));
            }
            let (bytes, after) = after.split_at(len);
            rest = after;
            let name = || format!("record {n}");
            let decoded = match kind {
                StoreKind::KeyStore => codec::decode::<(String, AtData)>(bytes, "backup", &name)
                    .map(|(k, v)| Item::Key(k, v)),
                StoreKind::CommitLog => {
                    codec::decode::<CommitEntry>(bytes, "backup", &name).map(Item::Commit)
                }
                StoreKind::AccessLog => {
                    codec::decode::<AccessLogEntry>(bytes, "backup", &name).map(Item::Access)
                }
                StoreKind::NotificationKeystore => {
                    codec::decode::<AtNotification>(bytes, "backup", &name).map(Item::Notification)
                }
            };
            let item = decoded.map_err(|e| bad(format!("record {n} does not decode: {e}")))?;
            self.pending.push_back(item);
        }
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes follow the last of its {count} records",
                rest.len()
            )));
        }
        self.counts[kind_index(kind)] += u64::from(count);
        Ok(())
    }

    fn finish_trailer(&mut self, payload: &[u8], body_crc: u32) -> Result<()> {
        let t: Trailer = serde_json::from_slice(payload)
            .map_err(|e| invalid(format!("the trailer is not valid JSON: {e}")))?;
        let found = [t.keys, t.commit_entries, t.access_entries, t.notifications];
        for kind in ALL_KINDS {
            let i = kind_index(kind);
            if found[i] != self.counts[i] {
                return Err(invalid(format!(
                    "the trailer counts {} {} records, the stream holds {}",
                    found[i],
                    kind.name(),
                    self.counts[i]
                )));
            }
        }
        if t.chunks != self.chunks {
            return Err(invalid(format!(
                "the trailer counts {} chunks, the stream holds {}",
                t.chunks, self.chunks
            )));
        }
        if t.body_crc32 != body_crc {
            return Err(invalid(
                "the whole-stream checksum in the trailer does not match (frames missing, \
                 reordered or damaged)",
            ));
        }
        if self.header.stores.commit_log != t.last_committed_sequence_number.is_some() {
            return Err(invalid(
                "the trailer's high-water mark does not agree with the header's commit-log flag",
            ));
        }
        let mut extra = [0u8; 1];
        if read_up_to(&mut self.input, &mut extra)? > 0 {
            return Err(invalid(format!(
                "bytes follow the trailer at byte {}",
                self.bytes
            )));
        }
        self.trailer = Some(t);
        Ok(())
    }

    /// The summary; only after `next_item` returned `None`.
    fn summary(&self) -> Result<BackupSummary> {
        match &self.trailer {
            Some(t) => Ok(summary(&self.header, t, self.bytes)),
            None => Err(invalid("the stream was not read to its trailer")),
        }
    }
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    if bytes.len() < 4 {
        return None;
    }
    let (n, rest) = bytes.split_at(4);
    Some((u32::from_le_bytes([n[0], n[1], n[2], n[3]]), rest))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_err(e)),
        }
    }
    Ok(got)
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as in zip and PNG.
#[derive(Debug, Clone, Copy)]
struct Crc32(u32);

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

impl Crc32 {
    fn new() -> Self {
        Crc32(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        let mut split = Crc32::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.finish(), 0xCBF4_3926);
        assert_eq!(Crc32::new().finish(), 0);
    }

    #[test]
    fn partial_path_appends_a_suffix() {
        assert_eq!(
            partial_path(Path::new("/tmp/a.atbackup")),
            PathBuf::from("/tmp/a.atbackup.partial")
        );
    }

    #[test]
    fn garbage_and_short_streams_are_invalid_backups() {
        let b = LogicalBackup::new();
        for bytes in [
            &b""[..],
            &b"ATPS"[..],
            &b"not a backup at all"[..],
            &b"ATPSBKUP\x01\x00"[..],
            &b"ATPSBKUP\x01\x00\x00\x00"[..],
            &b"ATPSBKUP\x00\x00\x00\x00"[..],
            &b"ATPSBKUP\x02\x00\x00\x00"[..],
        ] {
            match b.verify(bytes) {
                Err(PersistenceError::InvalidBackup { .. }) => {}
                other => panic!("{bytes:?}: expected InvalidBackup, got {other:?}"),
            }
        }
    }
}
