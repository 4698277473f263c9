//! The sled consistency checker behind [`Bundle::verify`](crate::store::Bundle::verify).
//!
//! # What is checked
//!
//! * **keystore**: every record (`d`) decodes and its key is UTF-8; the expiry and
//!   availability indexes (`e`, `a`) hold exactly the entry `prefix + instant + key` for
//!   each record whose metadata has that field, with the same instant, and no entry
//!   without a matching record (format 2's creation index, `C`, which opening removes, is
//!   a key of no known kind); the stored key count (`key_count`: `mcounts`, or the
//!   counts the newest commit entry's index value carries, as opening reads them) equals
//!   the number of records.
//! * **commit log** (same tree): every entry (`c`) decodes and carries its own id; the
//!   latest-entry index (`k`) holds exactly one entry per atKey that has a commit entry and
//!   names that entry (a second entry for an atKey is a duplicate; an index entry naming a
//!   missing entry or another atKey's entry is stray); the stored entry count (`cl_count`,
//!   read the same way) equals the number of entries; the high-water mark is at least every id. A retained entry of a live
//!   operation whose key has no record is counted in
//!   [`orphan_commit_entries`](crate::store::VerifyReport::orphan_commit_entries), not
//!   reported as a violation.
//! * **access log**: every entry decodes; each tallied entry has its occurrence-index entry
//!   and each `pkam` entry its pkam-index entry; every occurrence and pkam index entry names
//!   an entry that carries it; each name's tally holds the number of its occurrences and its
//!   first retained id, and has exactly its rank-index entry; `entry_count` equals the number
//!   of entries and `next_id` is above every id.
//! * **notification keystore**: every notification decodes; its filed expiry (`y`) equals
//!   its effective expiry and its expiry-index entry (`x`) exists; no `x` or `y` entry
//!   without its notification or disagreeing with it; `entry_count` equals the number of
//!   notifications.
//! * In every tree: no key of an unknown prefix or of the wrong length, no counter that is
//!   not 8 bytes (`mcounts`: 24 bytes).
//!
//! # Memory
//!
//! Each tree is read once, in key order; each item is checked with point lookups of the
//! items it must agree with. Beyond the item in hand the checker keeps counts, the highest
//! id seen and one access-log occurrence group (a name, a count and an id): constant memory
//! per store, plus the report, whose kept violations are capped at
//! [`MAX_REPORTED_VIOLATIONS`](crate::store::MAX_REPORTED_VIOLATIONS).
//!
//! # Concurrent writes
//!
//! While a store is checked its writer is held: writes to that store wait until its check
//! ends (reads go on), so the check sees the store between two write groups, never half a
//! group. Stores are checked one after the other.
//!
//! # Damage
//!
//! Bad bytes are reported, never a panic. A read error of the engine (sled's checksum
//! catching a damaged page of the file, an I/O error) is reported as
//! [`Problem::Unreadable`] at the key being read, or at `(scan)` for the pass itself, which
//! goes on past the error and gives up after 16 of them; counters are compared only after
//! a pass that read everything. A panic inside the engine is contained and reported the
//! same way.

use super::access_log::{self as al, AlInner};
use super::db::panic_message;
use super::keystore::{self as ks, KsInner};
use super::layout::{self as lay, prefixed, timed};
use super::notifications::{self as nk, NkInner};
use crate::error::{PersistenceError, Result};
use crate::key;
use crate::model::{codec, AccessLogEntry, AtData, AtNotification, CommitEntry, CommitOp};
use crate::model::{AtMetaData, Timestamp};
use crate::store::{Problem, VerifyReport};
use serde::de::DeserializeOwned;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

const KEYSTORE: &str = ks::STORE;
const COMMIT_LOG: &str = ks::COMMIT_STORE;
const ACCESS_LOG: &str = al::STORE;
const NOTIFICATIONS: &str = nk::STORE;

/// A store a bundle can check.
#[derive(Clone)]
pub(crate) enum Target {
    /// The keystore and its commit log.
    Keystore(Arc<KsInner>),
    /// The access log.
    AccessLog(Arc<AlInner>),
    /// The notification keystore.
    Notifications(Arc<NkInner>),
}

fn hold<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Target {
    /// Checks this store into `report`. Fails only when the store is closed.
    pub(crate) fn verify(&self, report: &mut VerifyReport) -> Result<()> {
        match self {
            Target::Keystore(inner) => {
                let tree = inner.handle.tree()?;
                let writer = hold(&inner.counters);
                let live_hwm = writer.hwm();
                contained(report, KEYSTORE, |r| check_keystore(&tree, live_hwm, r));
            }
            Target::AccessLog(inner) => {
                let tree = inner.handle.tree()?;
                let _writer = hold(&inner.counters);
                contained(report, ACCESS_LOG, |r| check_access_log(&tree, r));
            }
            Target::Notifications(inner) => {
                let tree = inner.handle.tree()?;
                let _writer = hold(&inner.count);
                contained(report, NOTIFICATIONS, |r| check_notifications(&tree, r));
            }
        }
        Ok(())
    }
}

/// Runs `check`, turning a panic inside the engine into an `Unreadable` violation.
fn contained(
    report: &mut VerifyReport,
    store: &'static str,
    check: impl FnOnce(&mut VerifyReport),
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| check(report)));
    if let Err(panic) = outcome {
        let reason =
            panic_message(panic.as_ref()).unwrap_or_else(|| "the storage engine panicked".into());
        report.push(
            store,
            "(scan)",
            Problem::Unreadable {
                reason: format!("the storage engine panicked: {reason}"),
            },
        );
    }
}

/// Runs one engine read (a `kind` of read), reporting an engine error or panic as
/// [`Problem::Unreadable`] against `store` and `at`; `None` when it failed.
fn guarded<T, E: std::fmt::Display>(
    r: &mut VerifyReport,
    store: &'static str,
    at: &str,
    kind: &str,
    read: impl FnOnce() -> std::result::Result<T, E>,
) -> Option<T> {
    let reason = match catch_unwind(AssertUnwindSafe(read)) {
        Ok(Ok(v)) => return Some(v),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("the storage engine panicked on a {kind}"),
    };
    r.push(store, at, Problem::Unreadable { reason });
    None
}

/// Point lookups that report engine errors instead of returning them.
struct Reader<'a> {
    tree: &'a sled::Tree,
}

impl Reader<'_> {
    /// `Some(value)` (`None` when absent); `None` outer when the read failed, which has
    /// been reported against `store` and `at`.
    fn get(
        &self,
        r: &mut VerifyReport,
        store: &'static str,
        at: &str,
        key: &[u8],
    ) -> Option<Option<sled::IVec>> {
        guarded(r, store, at, "point read", || self.tree.get(key))
    }

    /// Whether `key` is present; `None` when the read failed (reported).
    fn has(&self, r: &mut VerifyReport, store: &'static str, at: &str, key: &[u8]) -> Option<bool> {
        self.get(r, store, at, key).map(|v| v.is_some())
    }

    /// The first key in `[from, to)`, `None` outer when the read failed (reported).
    fn first_in(
        &self,
        r: &mut VerifyReport,
        store: &'static str,
        at: &str,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> Option<Option<sled::IVec>> {
        guarded(r, store, at, "range read", || {
            self.tree.range(from..to).keys().next().transpose()
        })
    }

    /// A stored 8-byte counter (`default` when absent); `None` when unreadable or
    /// malformed (reported).
    fn counter(
        &self,
        r: &mut VerifyReport,
        store: &'static str,
        name: &str,
        key: &[u8],
        default: u64,
    ) -> Option<u64> {
        match self.get(r, store, name, key)? {
            None => Some(default),
            Some(v) => match lay::read_u64(&v) {
                Some(n) => Some(n),
                None => {
                    r.push(
                        store,
                        name,
                        Problem::Malformed {
                            reason: format!("counter is {} bytes, not 8", v.len()),
                        },
                    );
                    None
                }
            },
        }
    }
}

/// Engine errors one scan reports before it gives up on the rest of its tree.
const MAX_SCAN_ERRORS: u32 = 16;

/// The key-ordered pass over one tree. An engine error is reported and the pass goes on
/// (sled may step past the damaged page) until [`MAX_SCAN_ERRORS`] errors; counters are
/// compared only after a pass without errors.
struct Scan {
    store: &'static str,
    errors: u32,
    last_error: Option<String>,
}

impl Scan {
    fn new(store: &'static str) -> Self {
        Scan {
            store,
            errors: 0,
            last_error: None,
        }
    }

    /// The next item of `items` that reads, reporting those that do not; `None` at the end
    /// of the tree or once the pass has given up.
    fn next_in(
        &mut self,
        items: &mut sled::Iter,
        r: &mut VerifyReport,
    ) -> Option<(sled::IVec, sled::IVec)> {
        for item in items.by_ref() {
            if let Some(kv) = self.read(r, item) {
                return Some(kv);
            }
            if self.given_up() {
                return None;
            }
        }
        None
    }

    /// The item, or `None` after reporting its error.
    fn read(
        &mut self,
        r: &mut VerifyReport,
        item: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Option<(sled::IVec, sled::IVec)> {
        match item {
            Ok(kv) => Some(kv),
            Err(e) => {
                let e = e.to_string();
                self.errors += 1;
                let reason = if self.last_error.as_deref() == Some(e.as_str()) {
                    // sled repeats the error of a page it cannot step past: stop there.
                    self.errors = MAX_SCAN_ERRORS;
                    "the pass cannot step past this error; the rest of the tree was not checked"
                        .to_string()
                } else if self.given_up() {
                    format!("{e}; giving up: the rest of the tree was not checked")
                } else {
                    e.clone()
                };
                self.last_error = Some(e);
                r.push(self.store, "(scan)", Problem::Unreadable { reason });
                None
            }
        }
    }

    fn given_up(&self) -> bool {
        self.errors >= MAX_SCAN_ERRORS
    }

    /// Whether every item was read (so counts are exact).
    fn complete(&self) -> bool {
        self.errors == 0
    }
}

/// The decoded `bytes` of the item `shown` of `store`, or `None` when they do not decode
/// (reported).
fn decoded<T: DeserializeOwned>(
    r: &mut VerifyReport,
    store: &'static str,
    shown: &str,
    bytes: &[u8],
) -> Option<T> {
    match codec::decode::<T>(bytes, store, &|| shown.to_string()) {
        Ok(t) => Some(t),
        Err(e) => {
            r.push(store, shown, undecodable(e));
            None
        }
    }
}

fn undecodable(e: crate::PersistenceError) -> Problem {
    Problem::Undecodable {
        reason: match e {
            crate::PersistenceError::CorruptRecord { reason, .. } => reason,
            other => other.to_string(),
        },
    }
}

fn malformed(reason: impl Into<String>) -> Problem {
    Problem::Malformed {
        reason: reason.into(),
    }
}

fn stray(entry: impl Into<String>, reason: impl Into<String>) -> Problem {
    Problem::StrayEntry {
        entry: entry.into(),
        reason: reason.into(),
    }
}

fn missing(entry: impl Into<String>) -> Problem {
    Problem::MissingEntry {
        entry: entry.into(),
    }
}

fn compare_counter(
    r: &mut VerifyReport,
    store: &'static str,
    name: &str,
    stored: Option<u64>,
    actual: u64,
) {
    if let Some(stored) = stored {
        if stored != actual {
            r.push(store, name, Problem::CounterMismatch { stored, actual });
        }
    }
}

// ------------------------------------------------------------------ keystore

/// The keystore's time indexes: prefix, name and the metadata field each mirrors.
const TIME_INDEXES: [(u8, &str); 2] = [
    (lay::EXPIRY, "expiry index entry"),
    (lay::AVAILABLE, "availability index entry"),
];

fn index_field(prefix: u8, meta: Option<&AtMetaData>) -> Option<Timestamp> {
    let meta = meta?;
    match prefix {
        lay::EXPIRY => meta.expires_at,
        lay::AVAILABLE => meta.available_at,
        _ => None,
    }
}

fn index_name(prefix: u8) -> &'static str {
    TIME_INDEXES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, n)| *n)
        .unwrap_or("index entry")
}

#[derive(Default)]
struct KsTally {
    records: u64,
    ks_entries: u64,
    commit_entries: u64,
    cl_entries: u64,
    highest_id: Option<i64>,
}

fn check_keystore(tree: &sled::Tree, live_hwm: i64, r: &mut VerifyReport) {
    let rd = Reader { tree };
    let mut t = KsTally::default();
    let mut scan = Scan::new(KEYSTORE);
    let mut items = tree.iter();
    while let Some((k, v)) = scan.next_in(&mut items, r) {
        match k.first().copied() {
            Some(lay::RECORD) => {
                t.records += 1;
                t.ks_entries += 1;
                check_record(&rd, r, &k[1..], &v);
            }
            Some(p @ (lay::EXPIRY | lay::AVAILABLE)) => {
                t.ks_entries += 1;
                check_time_index(&rd, r, p, &k, &v);
            }
            Some(lay::COMMIT) => {
                t.commit_entries += 1;
                t.cl_entries += 1;
                if let Some(id) = check_commit_entry(&rd, r, &k, &v) {
                    t.highest_id = Some(t.highest_id.map_or(id, |h| h.max(id)));
                }
            }
            Some(lay::COMMIT_BY_KEY) => {
                t.cl_entries += 1;
                check_latest_index(&rd, r, &k[1..], &v);
            }
            Some(lay::COUNTER)
                if k.as_ref() == lay::COUNTS || k.as_ref() == lay::LEGACY_KEY_COUNT =>
            {
                t.ks_entries += 1
            }
            Some(lay::COUNTER)
                if k.as_ref() == lay::HWM || k.as_ref() == lay::LEGACY_COMMIT_COUNT =>
            {
                t.cl_entries += 1
            }
            _ => {
                t.ks_entries += 1;
                r.push(
                    KEYSTORE,
                    lay::render(&k),
                    malformed("a key of no known kind in the keystore tree"),
                );
            }
        }
    }
    r.record_checked(KEYSTORE, t.records, t.ks_entries);
    r.record_checked(COMMIT_LOG, t.commit_entries, t.cl_entries);
    if !scan.complete() {
        return;
    }
    // The counts as opening reads them (`mcounts`, or the newest entry's index value).
    let counts = stored_counts(tree, r).map(|c| c.counts);
    compare_counter(r, KEYSTORE, "key_count", counts.map(|c| c.keys), t.records);
    compare_counter(
        r,
        COMMIT_LOG,
        "cl_count",
        counts.map(|c| c.entries),
        t.commit_entries,
    );
    // The high-water mark is persisted lazily: the newest retained entry carries it, and
    // `mhwm` is written when that entry goes (an absent `mhwm` reads as -1). What opening
    // would recover, max(mhwm, newest id), must equal the mark the store is using, and no
    // retained id may exceed it.
    if let Some(stored) = rd.counter(r, COMMIT_LOG, "hwm", lay::HWM, u64::MAX) {
        let stored = stored as i64;
        let highest = t.highest_id.unwrap_or(-1);
        if live_hwm < highest {
            r.push(
                COMMIT_LOG,
                "hwm",
                Problem::HighWaterMarkBelow {
                    hwm: live_hwm,
                    highest_id: highest,
                },
            );
        } else if stored.max(highest) != live_hwm {
            r.push(
                COMMIT_LOG,
                "hwm",
                Problem::CounterMismatch {
                    stored: stored.max(highest) as u64,
                    actual: live_hwm as u64,
                },
            );
        }
    }
}

/// The keystore's counts as opening reads them; `None` when they cannot be read
/// (reported: a malformed counts value as malformed at its key, anything else as
/// unreadable).
fn stored_counts(tree: &sled::Tree, r: &mut VerifyReport) -> Option<ks::StoredCounts> {
    let read = || match ks::newest_entry(tree).and_then(|n| ks::stored_counts(tree, n.as_ref())) {
        Ok(c) => Ok(Ok(c)),
        Err(PersistenceError::CorruptRecord { key, reason, .. }) => Ok(Err((key, reason))),
        Err(e) => Err(e),
    };
    match guarded(r, KEYSTORE, "counts", "read of the counts", read)? {
        Ok(c) => Some(c),
        Err((key, reason)) => {
            r.push(KEYSTORE, &key, malformed(reason));
            None
        }
    }
}

fn check_record(rd: &Reader<'_>, r: &mut VerifyReport, key: &[u8], value: &[u8]) {
    let shown = lay::render(key);
    if std::str::from_utf8(key).is_err() {
        r.push(KEYSTORE, &shown, malformed("the record key is not UTF-8"));
    }
    let Some(data) = decoded::<AtData>(r, KEYSTORE, &shown, value) else {
        return;
    };
    for (prefix, name) in TIME_INDEXES {
        if let Some(t) = index_field(prefix, data.meta_data.as_ref()) {
            if rd.has(r, KEYSTORE, &shown, &timed(prefix, t, key)) == Some(false) {
                r.push(KEYSTORE, &shown, missing(format!("{name} at {t}")));
            }
        }
    }
}

fn check_time_index(rd: &Reader<'_>, r: &mut VerifyReport, prefix: u8, k: &[u8], v: &[u8]) {
    let name = index_name(prefix);
    let Some((t, key)) = lay::split_timed(k) else {
        r.push(
            KEYSTORE,
            lay::render(k),
            malformed(format!("{name} shorter than 9 bytes")),
        );
        return;
    };
    let shown = lay::render(key);
    let entry = format!("{name} at {t}");
    if !v.is_empty() {
        r.push(
            KEYSTORE,
            &shown,
            malformed(format!("{entry} has a {}-byte value", v.len())),
        );
    }
    let Some(record) = rd.get(r, KEYSTORE, &shown, &prefixed(lay::RECORD, key)) else {
        return;
    };
    let Some(record) = record else {
        r.push(KEYSTORE, &shown, stray(entry, "no record has this key"));
        return;
    };
    // An undecodable record is reported where it is met.
    let Ok(data) = codec::decode::<AtData>(&record, KEYSTORE, &String::new) else {
        return;
    };
    match index_field(prefix, data.meta_data.as_ref()) {
        Some(f) if f == t => {}
        Some(f) => r.push(
            KEYSTORE,
            &shown,
            stray(entry, format!("the record's instant is {f}")),
        ),
        None => r.push(
            KEYSTORE,
            &shown,
            stray(entry, "the record's metadata has no such instant"),
        ),
    }
}

/// Checks one commit entry; returns its id when the key is well formed.
fn check_commit_entry(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8], v: &[u8]) -> Option<i64> {
    let Some(id) = lay::commit_id_of(k) else {
        r.push(
            COMMIT_LOG,
            lay::render(k),
            malformed(format!("commit entry key is {} bytes, not 9", k.len())),
        );
        return None;
    };
    let shown = format!("commit id {id}");
    let Some(entry) = decoded::<CommitEntry>(r, COMMIT_LOG, &shown, v) else {
        return Some(id);
    };
    if entry.commit_id != Some(id) {
        r.push(
            COMMIT_LOG,
            &shown,
            malformed(format!(
                "the entry for {:?} carries commit id {:?}",
                entry.at_key, entry.commit_id
            )),
        );
    }
    let latest = rd.get(
        r,
        COMMIT_LOG,
        &shown,
        &prefixed(lay::COMMIT_BY_KEY, entry.at_key.as_bytes()),
    )?;
    match latest.as_deref().map(lay::latest_id_of) {
        None => r.push(
            COMMIT_LOG,
            &shown,
            missing(format!("latest-entry index entry for {:?}", entry.at_key)),
        ),
        // A malformed index value is reported where the index entry is met.
        Some(None) => {}
        Some(Some(retained)) if retained != id => r.push(
            COMMIT_LOG,
            &shown,
            Problem::DuplicateEntry {
                at_key: entry.at_key.clone(),
                retained,
            },
        ),
        Some(Some(_)) => {
            if entry.operation != CommitOp::Delete {
                let record = prefixed(lay::RECORD, key::canonical_key(&entry.at_key).as_bytes());
                if rd.has(r, COMMIT_LOG, &shown, &record) == Some(false) {
                    r.orphan_commit_entries += 1;
                }
            }
        }
    }
    Some(id)
}

fn check_latest_index(rd: &Reader<'_>, r: &mut VerifyReport, at_key: &[u8], v: &[u8]) {
    let shown = lay::render(at_key);
    let entry = "latest-entry index entry";
    let Some(id) = lay::latest_id_of(v) else {
        r.push(
            COMMIT_LOG,
            &shown,
            malformed(format!(
                "{entry} value of {} bytes is not an 8-byte id with optional varint counts",
                v.len()
            )),
        );
        return;
    };
    let ck = lay::commit_key(id);
    let Some(stored) = rd.get(r, COMMIT_LOG, &shown, &ck) else {
        return;
    };
    let Some(stored) = stored else {
        r.push(
            COMMIT_LOG,
            &shown,
            stray(entry, format!("names commit id {id}, which does not exist")),
        );
        return;
    };
    // An undecodable entry is reported where it is met.
    if let Ok(e) = codec::decode::<CommitEntry>(&stored, COMMIT_LOG, &String::new) {
        if e.at_key.as_bytes() != at_key {
            r.push(
                COMMIT_LOG,
                &shown,
                stray(
                    entry,
                    format!("names commit id {id}, which is the entry of {:?}", e.at_key),
                ),
            );
        }
    }
}

// ------------------------------------------------------------------ access log

/// The occurrence group being read: kind, name, occurrences and the first id.
struct Group {
    kind: u8,
    name: String,
    count: u64,
    first: u64,
}

#[derive(Default)]
struct AlTally {
    records: u64,
    entries: u64,
    highest_id: Option<u64>,
}

fn entry_shown(id: u64) -> String {
    format!("entry {id}")
}

fn check_access_log(tree: &sled::Tree, r: &mut VerifyReport) {
    let rd = Reader { tree };
    let mut t = AlTally::default();
    let mut group: Option<Group> = None;
    let mut scan = Scan::new(ACCESS_LOG);
    let mut items = tree.iter();
    while let Some((k, v)) = scan.next_in(&mut items, r) {
        t.entries += 1;
        match k.first().copied() {
            Some(al::ENTRY) => {
                t.records += 1;
                if let Some(id) = check_al_entry(&rd, r, &k, &v) {
                    t.highest_id = Some(t.highest_id.map_or(id, |h| h.max(id)));
                }
            }
            Some(al::STAT) => check_tally(&rd, r, &k, &v),
            Some(al::RANK) => check_rank(&rd, r, &k),
            Some(al::OCCURRENCE) => {
                if let Some((kind, name, id)) = check_occurrence(&rd, r, &k) {
                    match &mut group {
                        Some(g) if g.kind == kind && g.name == name => {
                            g.count += 1;
                            g.first = g.first.min(id);
                        }
                        _ => {
                            if let Some(done) = group.take() {
                                finish_group(&rd, r, &done);
                            }
                            group = Some(Group {
                                kind,
                                name,
                                count: 1,
                                first: id,
                            });
                        }
                    }
                }
            }
            Some(al::PKAM) => check_pkam(&rd, r, &k),
            Some(lay::COUNTER) if k.as_ref() == al::NEXT_ID || k.as_ref() == al::ENTRY_COUNT => {}
            _ => r.push(
                ACCESS_LOG,
                lay::render(&k),
                malformed("a key of no known kind in the access-log tree"),
            ),
        }
    }
    r.record_checked(ACCESS_LOG, t.records, t.entries);
    if !scan.complete() {
        return;
    }
    if let Some(done) = group.take() {
        finish_group(&rd, r, &done);
    }
    let count = rd.counter(r, ACCESS_LOG, "entry_count", al::ENTRY_COUNT, 0);
    compare_counter(r, ACCESS_LOG, "entry_count", count, t.records);
    if let (Some(next), Some(highest)) = (
        rd.counter(r, ACCESS_LOG, "next_id", al::NEXT_ID, 0),
        t.highest_id,
    ) {
        if next <= highest {
            r.push(
                ACCESS_LOG,
                "next_id",
                Problem::HighWaterMarkBelow {
                    hwm: next as i64,
                    highest_id: highest as i64,
                },
            );
        }
    }
}

fn kind_name(kind: u8) -> &'static str {
    if kind == al::KIND_AT_SIGN {
        "atSign"
    } else {
        "key"
    }
}

/// Reads entry `id` for an index check: `None` when unreadable or already reported
/// (undecodable entries are reported where they are met); `Some(None)` when absent.
fn al_entry(
    rd: &Reader<'_>,
    r: &mut VerifyReport,
    at: &str,
    id: u64,
) -> Option<Option<AccessLogEntry>> {
    match rd.get(r, ACCESS_LOG, at, &al::entry_key(id))? {
        None => Some(None),
        Some(bytes) => codec::decode::<AccessLogEntry>(&bytes, ACCESS_LOG, &String::new)
            .ok()
            .map(Some),
    }
}

fn check_al_entry(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8], v: &[u8]) -> Option<u64> {
    let Some(id) = al::entry_id(k) else {
        r.push(
            ACCESS_LOG,
            lay::render(k),
            malformed(format!("entry key is {} bytes, not 9", k.len())),
        );
        return None;
    };
    let shown = entry_shown(id);
    let Some(entry) = decoded::<AccessLogEntry>(r, ACCESS_LOG, &shown, v) else {
        return Some(id);
    };
    if let Some((kind, name)) = al::tally_of(&entry) {
        if rd.has(r, ACCESS_LOG, &shown, &al::occurrence_key(kind, name, id)) == Some(false) {
            r.push(
                ACCESS_LOG,
                &shown,
                missing(format!(
                    "occurrence index entry for {} {name:?}",
                    kind_name(kind)
                )),
            );
        }
    }
    if let Some(t) = al::pkam_time(&entry) {
        if rd.has(r, ACCESS_LOG, &shown, &al::pkam_key(t, id)) == Some(false) {
            r.push(
                ACCESS_LOG,
                &shown,
                missing(format!("pkam index entry at {t}")),
            );
        }
    }
    Some(id)
}

/// Splits `c` + kind + name into kind and name.
fn split_kind_name(k: &[u8]) -> Option<(u8, &str)> {
    let kind = *k.get(1)?;
    if kind != al::KIND_AT_SIGN && kind != al::KIND_KEY {
        return None;
    }
    Some((kind, std::str::from_utf8(&k[2..]).ok()?))
}

fn read_tally(v: &[u8]) -> Option<(u64, u64)> {
    if v.len() != 16 {
        return None;
    }
    Some((lay::read_u64(&v[..8])?, lay::read_u64(&v[8..])?))
}

fn check_tally(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8], v: &[u8]) {
    let Some((kind, name)) = split_kind_name(k) else {
        r.push(
            ACCESS_LOG,
            lay::render(k),
            malformed("tally key has no known kind or its name is not UTF-8"),
        );
        return;
    };
    let Some((count, first)) = read_tally(v) else {
        r.push(
            ACCESS_LOG,
            name,
            malformed(format!("tally value is {} bytes, not 16", v.len())),
        );
        return;
    };
    if rd.has(r, ACCESS_LOG, name, &al::rank_key(kind, count, first, name)) == Some(false) {
        r.push(
            ACCESS_LOG,
            name,
            missing(format!(
                "rank index entry for {} with count {count}",
                kind_name(kind)
            )),
        );
    }
    // A tally with occurrences is compared when its occurrence group ends; here only a
    // tally without any.
    let prefix = al::occurrence_prefix(kind, name);
    let mut end = prefix.clone();
    end.extend_from_slice(&[0xff; 9]);
    if let Some(None) = rd.first_in(r, ACCESS_LOG, name, prefix, end) {
        r.push(
            ACCESS_LOG,
            name,
            stray(
                format!("tally of {} (count {count})", kind_name(kind)),
                "no entry of this name is retained",
            ),
        );
    }
}

fn check_rank(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8]) {
    let parsed = al::split_rank(k).and_then(|(name, count)| {
        let kind = k[1];
        let first = lay::read_u64(&k[10..18])?;
        let name = std::str::from_utf8(name).ok()?;
        (kind == al::KIND_AT_SIGN || kind == al::KIND_KEY).then_some((kind, name, count, first))
    });
    let Some((kind, name, count, first)) = parsed else {
        r.push(
            ACCESS_LOG,
            lay::render(k),
            malformed("rank index key is short, of no known kind, or its name is not UTF-8"),
        );
        return;
    };
    let entry = format!(
        "rank index entry for {} (count {count}, first {first})",
        kind_name(kind)
    );
    let Some(stat) = rd.get(r, ACCESS_LOG, name, &al::stat_key(kind, name)) else {
        return;
    };
    match stat.as_deref().map(read_tally) {
        None => r.push(ACCESS_LOG, name, stray(entry, "the name has no tally")),
        Some(None) => {} // reported with the tally
        Some(Some((c, f))) if (c, f) != (count, first) => r.push(
            ACCESS_LOG,
            name,
            stray(entry, format!("the tally says count {c}, first {f}")),
        ),
        Some(Some(_)) => {}
    }
}

/// Checks one occurrence entry; returns its kind, name and id when well formed.
fn check_occurrence(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8]) -> Option<(u8, String, u64)> {
    let parsed = (|| {
        let kind = *k.get(1)?;
        let len = u32::from_be_bytes(k.get(2..6)?.try_into().ok()?) as usize;
        let name_end = 6usize.checked_add(len)?;
        if k.len() != name_end.checked_add(8)? {
            return None;
        }
        let name = std::str::from_utf8(&k[6..name_end]).ok()?;
        let id = lay::read_u64(&k[name_end..])?;
        (kind == al::KIND_AT_SIGN || kind == al::KIND_KEY).then(|| (kind, name.to_string(), id))
    })();
    let Some((kind, name, id)) = parsed else {
        r.push(
            ACCESS_LOG,
            lay::render(k),
            malformed("occurrence index key does not parse"),
        );
        return None;
    };
    let what = format!("occurrence index entry for {} {name:?}", kind_name(kind));
    match al_entry(rd, r, &entry_shown(id), id) {
        None => {}
        Some(None) => r.push(
            ACCESS_LOG,
            entry_shown(id),
            stray(what, "the entry does not exist"),
        ),
        Some(Some(e)) if al::tally_of(&e) != Some((kind, name.as_str())) => r.push(
            ACCESS_LOG,
            entry_shown(id),
            stray(what, "the entry is not tallied under this name"),
        ),
        Some(Some(_)) => {}
    }
    Some((kind, name, id))
}

/// Compares a finished occurrence group with its name's tally.
fn finish_group(rd: &Reader<'_>, r: &mut VerifyReport, g: &Group) {
    let Some(stat) = rd.get(r, ACCESS_LOG, &g.name, &al::stat_key(g.kind, &g.name)) else {
        return;
    };
    match stat.as_deref().map(read_tally) {
        None => r.push(
            ACCESS_LOG,
            &g.name,
            missing(format!(
                "tally of {} ({} occurrences)",
                kind_name(g.kind),
                g.count
            )),
        ),
        Some(None) => {} // reported with the tally
        Some(Some((count, first))) => {
            if count != g.count {
                r.push(
                    ACCESS_LOG,
                    &g.name,
                    Problem::CounterMismatch {
                        stored: count,
                        actual: g.count,
                    },
                );
            }
            if first != g.first {
                r.push(
                    ACCESS_LOG,
                    &g.name,
                    stray(
                        format!("tally of {}", kind_name(g.kind)),
                        format!("its first id is {first}, the first retained is {}", g.first),
                    ),
                );
            }
        }
    }
}

fn check_pkam(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8]) {
    let parsed = (k.len() == 17)
        .then(|| lay::split_timed(k))
        .flatten()
        .and_then(|(t, id)| Some((t, lay::read_u64(id)?)));
    let Some((t, id)) = parsed else {
        r.push(
            ACCESS_LOG,
            lay::render(k),
            malformed(format!("pkam index key is {} bytes, not 17", k.len())),
        );
        return;
    };
    let shown = entry_shown(id);
    let what = format!("pkam index entry at {t}");
    match al_entry(rd, r, &shown, id) {
        None => {}
        Some(None) => r.push(ACCESS_LOG, shown, stray(what, "the entry does not exist")),
        Some(Some(e)) => match al::pkam_time(&e) {
            Some(et) if et == t => {}
            Some(et) => r.push(
                ACCESS_LOG,
                shown,
                stray(what, format!("the entry's request time is {et}")),
            ),
            None => r.push(
                ACCESS_LOG,
                shown,
                stray(what, "the entry is not a pkam entry with a request time"),
            ),
        },
    }
}

// ------------------------------------------------------------------ notifications

fn check_notifications(tree: &sled::Tree, r: &mut VerifyReport) {
    let rd = Reader { tree };
    let mut records = 0u64;
    let mut entries = 0u64;
    let mut scan = Scan::new(NOTIFICATIONS);
    let mut items = tree.iter();
    while let Some((k, v)) = scan.next_in(&mut items, r) {
        entries += 1;
        match k.first().copied() {
            Some(nk::RECORD) => {
                records += 1;
                check_notification(&rd, r, &k[1..], &v);
            }
            Some(nk::EXPIRY) => check_nk_index(&rd, r, &k),
            Some(nk::FILED) => check_filed(&rd, r, &k[1..], &v),
            Some(lay::COUNTER) if k.as_ref() == nk::ENTRY_COUNT => {}
            _ => r.push(
                NOTIFICATIONS,
                lay::render(&k),
                malformed("a key of no known kind in the notifications tree"),
            ),
        }
    }
    r.record_checked(NOTIFICATIONS, records, entries);
    if !scan.complete() {
        return;
    }
    let count = rd.counter(r, NOTIFICATIONS, "entry_count", nk::ENTRY_COUNT, 0);
    compare_counter(r, NOTIFICATIONS, "entry_count", count, records);
}

/// The filed expiry of `id`: `None` when unreadable (reported); `Some(None)` when absent
/// or malformed (a malformed one is reported where it is met).
fn filed_expiry(rd: &Reader<'_>, r: &mut VerifyReport, id: &[u8]) -> Option<Option<Timestamp>> {
    let v = rd.get(r, NOTIFICATIONS, &lay::render(id), &prefixed(nk::FILED, id))?;
    Some(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok().map(lay::instant_from)))
}

fn check_notification(rd: &Reader<'_>, r: &mut VerifyReport, id: &[u8], v: &[u8]) {
    let shown = lay::render(id);
    if std::str::from_utf8(id).is_err() {
        r.push(NOTIFICATIONS, &shown, malformed("the id is not UTF-8"));
    }
    let Some(n) = decoded::<AtNotification>(r, NOTIFICATIONS, &shown, v) else {
        return;
    };
    let eff = n.effective_expiry();
    match rd.get(r, NOTIFICATIONS, &shown, &prefixed(nk::FILED, id)) {
        None => {}
        Some(None) => r.push(NOTIFICATIONS, &shown, missing("filed expiry")),
        Some(Some(f)) => match <[u8; 8]>::try_from(f.as_ref()).map(lay::instant_from) {
            Err(_) => {} // reported where the filed entry is met
            Ok(filed) if filed != eff => r.push(
                NOTIFICATIONS,
                &shown,
                stray(
                    format!("filed expiry {filed}"),
                    format!("the effective expiry is {eff}"),
                ),
            ),
            Ok(_) => {}
        },
    }
    if rd.has(r, NOTIFICATIONS, &shown, &timed(nk::EXPIRY, eff, id)) == Some(false) {
        r.push(
            NOTIFICATIONS,
            &shown,
            missing(format!("expiry index entry at {eff}")),
        );
    }
}

fn check_nk_index(rd: &Reader<'_>, r: &mut VerifyReport, k: &[u8]) {
    let Some((t, id)) = lay::split_timed(k) else {
        r.push(
            NOTIFICATIONS,
            lay::render(k),
            malformed("expiry index key shorter than 9 bytes"),
        );
        return;
    };
    let shown = lay::render(id);
    let what = format!("expiry index entry at {t}");
    match rd.has(r, NOTIFICATIONS, &shown, &prefixed(nk::RECORD, id)) {
        None => return,
        Some(false) => {
            r.push(
                NOTIFICATIONS,
                &shown,
                stray(what, "no notification has this id"),
            );
            return;
        }
        Some(true) => {}
    }
    match filed_expiry(rd, r, id) {
        Some(Some(f)) if f != t => r.push(
            NOTIFICATIONS,
            &shown,
            stray(what, format!("the notification is filed under {f}")),
        ),
        // A missing or malformed filed expiry is reported with the notification.
        _ => {}
    }
}

fn check_filed(rd: &Reader<'_>, r: &mut VerifyReport, id: &[u8], v: &[u8]) {
    let shown = lay::render(id);
    if v.len() != 8 {
        r.push(
            NOTIFICATIONS,
            &shown,
            malformed(format!("filed expiry is {} bytes, not 8", v.len())),
        );
    }
    if rd.has(r, NOTIFICATIONS, &shown, &prefixed(nk::RECORD, id)) == Some(false) {
        r.push(
            NOTIFICATIONS,
            &shown,
            stray("filed expiry", "no notification has this id"),
        );
    }
}
