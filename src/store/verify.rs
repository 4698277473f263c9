//! The result of a consistency check ([`Bundle::verify`](super::Bundle::verify)): what
//! was examined in each store and every broken invariant found, each naming its store and
//! key. Backend-neutral: a backend fills a [`VerifyReport`] with [`VerifyReport::push`] and
//! [`VerifyReport::record_checked`].

use std::fmt;

/// The most violations one report keeps. Further ones are counted in
/// [`VerifyReport::violations_omitted`], so a badly damaged store cannot make a report
/// grow without bound.
pub const MAX_REPORTED_VIOLATIONS: usize = 10_000;

/// What is wrong at one key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The stored bytes of a record or entry do not decode.
    Undecodable {
        /// What the decoder reported.
        reason: String,
    },
    /// A storage key or value does not have the shape its layout requires (wrong length,
    /// not UTF-8, unknown prefix, ...).
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The storage engine could not read here (an I/O error, damaged pages, a panic inside
    /// the engine). What lies beyond this point of the store may not have been checked.
    Unreadable {
        /// What the engine reported.
        reason: String,
    },
    /// A record lacks an entry that must accompany it (an index entry, a companion value).
    MissingEntry {
        /// The entry that is missing, e.g. `expiry index entry at 2024-01-01T00:00:00.000Z`.
        entry: String,
    },
    /// An index or companion entry names no record, or disagrees with the record it names.
    StrayEntry {
        /// The entry, e.g. `expiry index entry at 2024-01-01T00:00:00.000Z`.
        entry: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A second commit entry for an atKey that already has its retained entry (a store
    /// keeps one entry per atKey; compaction removes such duplicates).
    DuplicateEntry {
        /// The atKey.
        at_key: String,
        /// The id of the atKey's retained entry.
        retained: i64,
    },
    /// A counter or tally disagrees with what the store holds.
    CounterMismatch {
        /// The stored value (an absent counter reads as 0).
        stored: u64,
        /// What the store actually holds.
        actual: u64,
    },
    /// The commit-id high-water mark is below an id the log holds.
    HighWaterMarkBelow {
        /// The stored high-water mark (`-1` when absent).
        hwm: i64,
        /// The highest id found.
        highest_id: i64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Undecodable { reason } => write!(f, "does not decode: {reason}"),
            Problem::Malformed { reason } => write!(f, "malformed: {reason}"),
            Problem::Unreadable { reason } => write!(f, "unreadable: {reason}"),
            Problem::MissingEntry { entry } => write!(f, "missing {entry}"),
            Problem::StrayEntry { entry, reason } => write!(f, "stray {entry}: {reason}"),
            Problem::DuplicateEntry { at_key, retained } => write!(
                f,
                "second commit entry for {at_key:?} (its retained entry is commit id {retained})"
            ),
            Problem::CounterMismatch { stored, actual } => {
                write!(f, "counter says {stored}, the store holds {actual}")
            }
            Problem::HighWaterMarkBelow { hwm, highest_id } => write!(
                f,
                "high-water mark {hwm} is below the highest commit id {highest_id}"
            ),
        }
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The store: `keystore`, `commit log`, `access log` or `notification keystore`.
    pub store: &'static str,
    /// The key it concerns, rendered for humans: a record's key, a notification id,
    /// `commit id N`, `entry N` (access log), a tallied name, or a counter's name.
    pub key: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}: {}", self.store, self.key, self.problem)
    }
}

/// What the check examined in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreChecked {
    /// The store's name (as in [`Violation::store`]).
    pub store: &'static str,
    /// Primary items examined: keystore records, commit entries, access-log entries or
    /// notifications.
    pub records: u64,
    /// Every stored item examined, including index entries and counters.
    pub entries: u64,
}

/// The outcome of a consistency check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The broken invariants found, at most [`MAX_REPORTED_VIOLATIONS`], in the order
    /// they were found.
    pub violations: Vec<Violation>,
    /// Violations found beyond [`MAX_REPORTED_VIOLATIONS`] (counted, not kept).
    pub violations_omitted: u64,
    /// One item per store examined.
    pub checked: Vec<StoreChecked>,
    /// Retained commit entries of a live operation (not DELETE) whose key has no record.
    /// Not a violation: `remove_entry_for`, a direct `commit` of an absent key, an expiry
    /// sweep racing a sync, or a `restore` leave them legitimately.
    pub orphan_commit_entries: u64,
}

impl VerifyReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no invariant is broken (orphan commit entries do not count).
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty() && self.violations_omitted == 0
    }

    /// Every violation found, counting the omitted ones.
    pub fn violation_count(&self) -> u64 {
        self.violations.len() as u64 + self.violations_omitted
    }

    /// Records a violation (counts it only, once [`MAX_REPORTED_VIOLATIONS`] are kept).
    pub fn push(&mut self, store: &'static str, key: impl Into<String>, problem: Problem) {
        if self.violations.len() < MAX_REPORTED_VIOLATIONS {
            self.violations.push(Violation {
                store,
                key: key.into(),
                problem,
            });
        } else {
            self.violations_omitted += 1;
        }
    }

    /// Records what was examined in a store (adding to an earlier item of the same store).
    pub fn record_checked(&mut self, store: &'static str, records: u64, entries: u64) {
        match self.checked.iter_mut().find(|c| c.store == store) {
            Some(c) => {
                c.records += records;
                c.entries += entries;
            }
            None => self.checked.push(StoreChecked {
                store,
                records,
                entries,
            }),
        }
    }

    /// What was examined in `store`, if it was checked.
    pub fn checked_in(&self, store: &str) -> Option<&StoreChecked> {
        self.checked.iter().find(|c| c.store == store)
    }

    /// The kept violations of `store`.
    pub fn violations_in<'a>(&'a self, store: &'a str) -> impl Iterator<Item = &'a Violation> {
        self.violations.iter().filter(move |v| v.store == store)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checked {
            writeln!(
                f,
                "{}: {} records, {} entries checked",
                c.store, c.records, c.entries
            )?;
        }
        if self.orphan_commit_entries > 0 {
            writeln!(
                f,
                "{} commit entries name a key without a record (not a violation)",
                self.orphan_commit_entries
            )?;
        }
        for v in &self.violations {
            writeln!(f, "{v}")?;
        }
        if self.violations_omitted > 0 {
            writeln!(f, "... and {} more violations", self.violations_omitted)?;
        }
        if self.is_ok() {
            writeln!(f, "no violations")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_keeps_a_bounded_number_of_violations() {
        let mut r = VerifyReport::new();
        assert!(r.is_ok());
        for i in 0..MAX_REPORTED_VIOLATIONS + 5 {
            r.push(
                "keystore",
                format!("k{i}"),
                Problem::Malformed { reason: "x".into() },
            );
        }
        assert_eq!(r.violations.len(), MAX_REPORTED_VIOLATIONS);
        assert_eq!(r.violations_omitted, 5);
        assert_eq!(r.violation_count(), MAX_REPORTED_VIOLATIONS as u64 + 5);
        assert!(!r.is_ok());
    }

    #[test]
    fn checked_counts_add_up_per_store() {
        let mut r = VerifyReport::new();
        r.record_checked("keystore", 2, 5);
        r.record_checked("commit log", 1, 1);
        r.record_checked("keystore", 1, 1);
        assert_eq!(
            r.checked_in("keystore").map(|c| (c.records, c.entries)),
            Some((3, 6))
        );
        assert_eq!(r.checked.len(), 2);
        assert!(r.to_string().contains("no violations"));
    }
}
