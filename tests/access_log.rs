//! The sled access log through the public API (BEHAVIOR 5, API-5.0 5.2): ids and times,
//! the most-visited tallies and their tie rule, the last and last-pkam entries, replay,
//! percentage compaction (dry and real, in several batches), reopen, clear and close.

mod common;

use at_persistence_secondary_server::model::{AccessLogEntry, ManualClock, Timestamp};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    AccessLog, Bundle, CompactedItem, PersistenceFactory,
};
use at_persistence_secondary_server::PersistenceError;
use common::{collect_ok, edit_raw_tree, raw_entries, server, server_periodic, T0};
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A bundle over `dir` with a manual clock at T0.
async fn open_with(
    f: &SledPersistenceFactory,
    cfg: SledPersistenceConfig,
) -> (Arc<Bundle>, Arc<dyn AccessLog>) {
    let b = f.initialize("@alice", &cfg).await.expect("initialize");
    let log = Arc::clone(b.access_log().expect("server bundles have an access log"));
    (b, log)
}

fn entry(
    from: Option<&str>,
    t: Option<i64>,
    verb: Option<&str>,
    key: Option<&str>,
) -> AccessLogEntry {
    AccessLogEntry {
        from_at_sign: from.map(str::to_string),
        request_date_time: t.map(Timestamp::from_millis),
        verb_name: verb.map(str::to_string),
        lookup_key: key.map(str::to_string),
    }
}

async fn all_entries(log: &Arc<dyn AccessLog>) -> Vec<AccessLogEntry> {
    collect_ok(log.iterate().await.unwrap()).await
}

async fn compact_ids(log: &Arc<dyn AccessLog>, dry_run: bool) -> Vec<u64> {
    log.compact(dry_run)
        .await
        .unwrap()
        .map(|r| match r.unwrap() {
            CompactedItem::AccessLogId(id) => id,
            other => panic!("unexpected item {other:?}"),
        })
        .collect()
        .await
}

/// The most-visited answer recomputed from the entries themselves: descending count, ties
/// by first occurrence in insertion order.
fn recount(entries: &[AccessLogEntry], at_signs: bool) -> Vec<(String, u64)> {
    let mut tally: HashMap<String, (u64, usize)> = HashMap::new();
    for (pos, e) in entries.iter().enumerate() {
        let name = match (e.verb_name.as_deref(), at_signs) {
            (Some("pol"), true) => e.from_at_sign.clone(),
            (Some("lookup"), false) => e.lookup_key.clone(),
            _ => None,
        };
        if let Some(name) = name {
            tally.entry(name).or_insert((0, pos)).0 += 1;
        }
    }
    let mut v: Vec<(String, u64, usize)> = tally.into_iter().map(|(k, (c, p))| (k, c, p)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    v.into_iter().map(|(k, c, _)| (k, c)).collect()
}

/// The last pkam entry recomputed from the entries: greatest time, ties to the last one.
fn last_pkam(entries: &[AccessLogEntry]) -> Option<AccessLogEntry> {
    let mut best: Option<&AccessLogEntry> = None;
    for e in entries {
        let pkam = e.verb_name.as_deref() == Some("pkam") && e.request_date_time.is_some();
        if pkam && best.is_none_or(|b| e.request_date_time >= b.request_date_time) {
            best = Some(e);
        }
    }
    best.cloned()
}

async fn assert_tallies_match_recount(log: &Arc<dyn AccessLog>) {
    let entries = all_entries(log).await;
    assert_eq!(
        log.most_visited_at_signs(usize::MAX).await.unwrap(),
        recount(&entries, true),
        "most_visited_at_signs equals a recount over iterate()"
    );
    assert_eq!(
        log.most_visited_keys(usize::MAX).await.unwrap(),
        recount(&entries, false),
        "most_visited_keys equals a recount over iterate()"
    );
    assert_eq!(
        log.get_last_pkam_access_log_entry().await.unwrap(),
        last_pkam(&entries)
    );
    assert_eq!(
        log.get_last_access_log_entry().await.unwrap(),
        entries.last().cloned()
    );
    assert_eq!(log.entries_count().await.unwrap(), entries.len() as u64);
}

/// A deterministic mix of verbs and names (a small LCG; no external randomness).
fn mixed_entries(n: usize, seed: u64) -> Vec<AccessLogEntry> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        let name = format!("@user{}", r % 13);
        let key = format!("k{}.wavi@alice", (r >> 5) % 11);
        let t = 1_000 + ((r >> 9) % 50) as i64;
        let e = match r % 7 {
            0 | 1 => entry(Some(&name), Some(t), Some("pol"), None),
            2 | 3 => entry(Some(&name), Some(t), Some("lookup"), Some(&key)),
            4 => entry(Some(&name), Some(t), Some("plookup"), Some(&key)),
            5 => entry(Some(&name), Some(t), Some("pkam"), None),
            _ => entry(Some(&name), Some(t + i as i64), Some("from"), None),
        };
        out.push(e);
    }
    out
}

/// Asserts that `log` is empty: no entries, no tallies, no last entries.
async fn assert_empty(log: &Arc<dyn AccessLog>) {
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert!(all_entries(log).await.is_empty());
    assert!(log.most_visited_at_signs(10).await.unwrap().is_empty());
    assert!(log.most_visited_keys(10).await.unwrap().is_empty());
    assert_eq!(log.get_last_access_log_entry().await.unwrap(), None);
    assert_eq!(log.get_last_pkam_access_log_entry().await.unwrap(), None);
}

/// Asserts that a first insert into an emptied `log` takes id 0 and is the only tally.
async fn assert_starts_afresh(log: &Arc<dyn AccessLog>) {
    assert_eq!(log.insert("@bob", "pol", None).await.unwrap(), 0);
    assert_eq!(
        log.most_visited_at_signs(10).await.unwrap(),
        vec![("@bob".to_string(), 1)]
    );
}

/// Replays [`mixed_entries`]`(n, seed)` into `log`.
async fn replay_mixed(log: &Arc<dyn AccessLog>, n: usize, seed: u64) {
    for e in mixed_entries(n, seed) {
        log.replay(e).await.unwrap();
    }
}

#[tokio::test]
async fn insert_assigns_ascending_ids_stamps_the_clock_and_iterates_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path()).with_clock(clock.clone())).await;

    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(
        log.insert("@bob", "lookup", Some("phone@alice"))
            .await
            .unwrap(),
        0
    );
    clock.advance(7);
    assert_eq!(log.insert("@charlie", "plookup", None).await.unwrap(), 1);
    clock.advance(7);
    assert_eq!(log.insert("@dave", "pkam", None).await.unwrap(), 2);

    let all = all_entries(&log).await;
    let from: Vec<_> = all
        .iter()
        .map(|e| e.from_at_sign.clone().unwrap())
        .collect();
    assert_eq!(from, ["@bob", "@charlie", "@dave"]);
    assert_eq!(
        all[0],
        entry(
            Some("@bob"),
            Some(T0.as_millis()),
            Some("lookup"),
            Some("phone@alice")
        )
    );
    assert_eq!(all[2].request_date_time, Some(T0.plus_millis(14)));
    assert_eq!(log.entries_count().await.unwrap(), 3);
    assert!(log.size_bytes().await.unwrap() > 0);
}

#[tokio::test]
async fn most_visited_counts_only_pol_by_at_sign_and_keyed_lookups_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;

    // BEHAVIOR 5's example, plus entries that must not count.
    for _ in 0..3 {
        log.insert("@bob", "pol", None).await.unwrap();
    }
    log.insert("@carol", "pol", None).await.unwrap();
    for _ in 0..2 {
        log.insert("@dan", "lookup", Some("phone@alice"))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        log.insert("@erin", "lookup", None).await.unwrap();
    }
    for _ in 0..4 {
        log.insert("@erin", "plookup", Some("email@alice"))
            .await
            .unwrap();
        log.insert("@erin", "POL", None).await.unwrap();
        log.insert("@erin", "from", None).await.unwrap();
    }
    log.replay(entry(None, Some(1), Some("pol"), None))
        .await
        .unwrap();
    log.replay(entry(Some("@zed"), Some(1), None, Some("x@alice")))
        .await
        .unwrap();
    log.replay(entry(None, None, Some("lookup"), Some("phone@alice")))
        .await
        .unwrap();

    assert_eq!(
        log.most_visited_at_signs(5).await.unwrap(),
        vec![("@bob".to_string(), 3), ("@carol".to_string(), 1)]
    );
    // A keyed lookup counts whatever its fromAtSign (BEHAVIOR 5).
    assert_eq!(
        log.most_visited_keys(1).await.unwrap(),
        vec![("phone@alice".to_string(), 3)]
    );
    assert_eq!(
        log.most_visited_keys(5).await.unwrap(),
        vec![("phone@alice".to_string(), 3)],
        "plookup is not counted"
    );
    assert!(log.most_visited_at_signs(0).await.unwrap().is_empty());
    assert!(log.most_visited_keys(0).await.unwrap().is_empty());
    assert_tallies_match_recount(&log).await;
}

#[tokio::test]
async fn most_visited_ties_go_to_the_first_occurrence_and_follow_new_counts() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;

    // First occurrences: @zoe, @amy, @max. Every name ends with 2 visits.
    for name in ["@zoe", "@amy", "@max", "@max", "@amy", "@zoe"] {
        log.insert(name, "pol", None).await.unwrap();
    }
    let names = |v: Vec<(String, u64)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(
        names(log.most_visited_at_signs(10).await.unwrap()),
        ["@zoe", "@amy", "@max"],
        "ties by first occurrence, not by name or by latest visit"
    );
    assert_eq!(
        names(log.most_visited_at_signs(2).await.unwrap()),
        ["@zoe", "@amy"]
    );
    log.insert("@max", "pol", None).await.unwrap();
    assert_eq!(
        log.most_visited_at_signs(10).await.unwrap(),
        vec![
            ("@max".to_string(), 3),
            ("@zoe".to_string(), 2),
            ("@amy".to_string(), 2)
        ]
    );
    for key in ["b@x", "a@x", "b@x", "a@x", "c@x"] {
        log.insert("@bob", "lookup", Some(key)).await.unwrap();
    }
    assert_eq!(
        log.most_visited_keys(usize::MAX).await.unwrap(),
        vec![
            ("b@x".to_string(), 2),
            ("a@x".to_string(), 2),
            ("c@x".to_string(), 1)
        ]
    );
    assert_tallies_match_recount(&log).await;
}

#[tokio::test]
async fn last_entry_is_none_on_an_empty_log_then_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;
    assert_eq!(log.get_last_access_log_entry().await.unwrap(), None);
    assert_eq!(log.get_last_pkam_access_log_entry().await.unwrap(), None);
    log.insert("@bob", "from", None).await.unwrap();
    log.insert("@carol", "scan", None).await.unwrap();
    let last = log.get_last_access_log_entry().await.unwrap().unwrap();
    assert_eq!(last.from_at_sign.as_deref(), Some("@carol"));
    assert_eq!(last.verb_name.as_deref(), Some("scan"));
    assert_eq!(log.get_last_pkam_access_log_entry().await.unwrap(), None);
}

#[tokio::test]
async fn last_pkam_entry_has_the_latest_request_time_ties_to_the_last_inserted() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;

    for (from, t, verb) in [
        ("@a", Some(10), "pkam"),
        ("@b", Some(30), "pkam"),
        ("@c", Some(20), "pkam"),
        ("@d", Some(30), "pkam"),
        ("@e", Some(25), "pkam"),
        // Not pkam, or no time: ignored.
        ("@f", Some(99), "from"),
        ("@g", None, "pkam"),
        ("@h", Some(99), "PKAM"),
    ] {
        log.replay(entry(Some(from), t, Some(verb), None))
            .await
            .unwrap();
    }

    let last = log.get_last_pkam_access_log_entry().await.unwrap().unwrap();
    assert_eq!(last.from_at_sign.as_deref(), Some("@d"));
    assert_eq!(last.request_date_time, Some(Timestamp::from_millis(30)));
    assert_eq!(
        log.get_last_access_log_entry()
            .await
            .unwrap()
            .unwrap()
            .from_at_sign
            .as_deref(),
        Some("@h")
    );
}

#[tokio::test]
async fn replay_appends_verbatim_and_counts_like_an_insert() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;
    log.insert("@bob", "from", None).await.unwrap();
    // 2019-03-04T05:06:07.008Z
    let e = entry(
        Some("@verbatim"),
        Some(1_551_675_967_008),
        Some("lookup"),
        Some("phone@x"),
    );
    assert_eq!(log.replay(e.clone()).await.unwrap(), 1);
    assert_eq!(log.get_last_access_log_entry().await.unwrap(), Some(e));
    assert_eq!(
        log.most_visited_keys(5).await.unwrap(),
        vec![("phone@x".to_string(), 1)]
    );
    // An entry with every field absent is kept as it is.
    let empty = AccessLogEntry::default();
    assert_eq!(log.replay(empty.clone()).await.unwrap(), 2);
    assert_eq!(log.get_last_access_log_entry().await.unwrap(), Some(empty));
    assert_eq!(log.entries_count().await.unwrap(), 3);
}

#[tokio::test]
async fn compaction_removes_exactly_the_oldest_percentage() {
    // BEHAVIOR 5's example at 99 %: floor(4 * 99 / 100) = 3.
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server(dir.path()).with_access_log_compaction_percentage(99);
    let (_b, log) = open_with(&f, cfg).await;
    log.insert("@alice", "from", None).await.unwrap();
    log.insert("@alice", "pol", None).await.unwrap();
    log.insert("@alice", "scan", None).await.unwrap();
    log.insert("@alice", "lookup", Some("@alice:phone@bob"))
        .await
        .unwrap();
    assert_eq!(compact_ids(&log, false).await, vec![0, 1, 2]);
    assert_eq!(log.entries_count().await.unwrap(), 1);
    let left = all_entries(&log).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].from_at_sign.as_deref(), Some("@alice"));
    assert_eq!(left[0].lookup_key.as_deref(), Some("@alice:phone@bob"));
    assert!(log.most_visited_at_signs(5).await.unwrap().is_empty());
    assert_tallies_match_recount(&log).await;
    f.close().await;

    // 3 entries at the default 30 %: floor(0.9) = 0.
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;
    for v in ["from", "pol", "scan"] {
        log.insert("@alice", v, None).await.unwrap();
    }
    assert!(compact_ids(&log, false).await.is_empty());
    assert!(compact_ids(&log, true).await.is_empty());
    assert_eq!(log.entries_count().await.unwrap(), 3);
    f.close().await;

    // Exact integer arithmetic: 100 entries at 29 % is 29 (floating point gives 28).
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path()).with_access_log_compaction_percentage(29);
    let (_b, log) = open_with(&f, cfg).await;
    for i in 0..100 {
        log.insert(&format!("@u{}", i % 7), "pol", None)
            .await
            .unwrap();
    }
    assert_eq!(compact_ids(&log, false).await, (0..29).collect::<Vec<_>>());
    assert_eq!(log.entries_count().await.unwrap(), 71);
    assert_tallies_match_recount(&log).await;
    // The next run takes 29 % of what is left: floor(71 * 29 / 100) = 20.
    assert_eq!(compact_ids(&log, false).await, (29..49).collect::<Vec<_>>());
    f.close().await;
}

#[tokio::test]
async fn percentage_comes_from_the_config_and_bounds_hold() {
    for (pct, expected) in [(None, 3usize), (Some(0), 0), (Some(50), 5), (Some(100), 10)] {
        let dir = tempfile::tempdir().unwrap();
        let f = SledPersistenceFactory::new();
        let mut cfg = server_periodic(dir.path());
        if let Some(p) = pct {
            cfg = cfg.with_access_log_compaction_percentage(p);
        }
        let (_b, log) = open_with(&f, cfg).await;
        for i in 0..10 {
            log.insert(&format!("@u{i}"), "pol", None).await.unwrap();
        }
        let ids = compact_ids(&log, false).await;
        assert_eq!(ids, (0..expected as u64).collect::<Vec<_>>(), "{pct:?}");
        assert_eq!(log.entries_count().await.unwrap(), 10 - expected as u64);
        assert_tallies_match_recount(&log).await;
        f.close().await;
    }
}

#[tokio::test]
async fn a_dry_run_yields_what_compaction_removes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = server_periodic(dir.path()).with_access_log_compaction_percentage(40);
    let (_b, log) = open_with(&f, cfg).await;
    replay_mixed(&log, 200, 7).await;
    let before_entries = all_entries(&log).await;
    let before_sites = log.most_visited_at_signs(usize::MAX).await.unwrap();
    let before_keys = log.most_visited_keys(usize::MAX).await.unwrap();
    let before_pkam = log.get_last_pkam_access_log_entry().await.unwrap();

    let dry = compact_ids(&log, true).await;
    assert_eq!(dry, (0..80).collect::<Vec<_>>());
    let again = compact_ids(&log, true).await;
    assert_eq!(again, dry, "a dry run is repeatable");
    assert_eq!(log.entries_count().await.unwrap(), 200);
    assert_eq!(all_entries(&log).await, before_entries);
    assert_eq!(
        log.most_visited_at_signs(usize::MAX).await.unwrap(),
        before_sites
    );
    assert_eq!(
        log.most_visited_keys(usize::MAX).await.unwrap(),
        before_keys
    );
    assert_eq!(
        log.get_last_pkam_access_log_entry().await.unwrap(),
        before_pkam
    );

    let wet = compact_ids(&log, false).await;
    assert_eq!(
        wet, dry,
        "compact(false) removes exactly what the dry run yielded"
    );
    assert_eq!(all_entries(&log).await, before_entries[80..].to_vec());
    assert_tallies_match_recount(&log).await;
}

#[tokio::test]
async fn tallies_equal_a_recount_after_compaction_in_several_batches_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_periodic(dir.path()).with_access_log_compaction_percentage(90);
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, cfg.clone()).await;
    // 3000 entries: 90 % is 2700, more than two compaction batches.
    replay_mixed(&log, 3000, 42).await;
    assert_tallies_match_recount(&log).await;
    let ids = compact_ids(&log, false).await;
    assert_eq!(ids, (0..2700).collect::<Vec<_>>());
    assert_tallies_match_recount(&log).await;
    let sites = log.most_visited_at_signs(usize::MAX).await.unwrap();
    let keys = log.most_visited_keys(3).await.unwrap();
    f.close().await;
    drop(log);

    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, cfg).await;
    assert_eq!(log.entries_count().await.unwrap(), 300);
    assert_eq!(log.most_visited_at_signs(usize::MAX).await.unwrap(), sites);
    assert_eq!(log.most_visited_keys(3).await.unwrap(), keys);
    assert_tallies_match_recount(&log).await;
    // Ids go on from where they were.
    assert_eq!(log.insert("@new", "pol", None).await.unwrap(), 3000);
    assert_tallies_match_recount(&log).await;
}

#[tokio::test]
async fn dropping_the_compaction_stream_early_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_periodic(dir.path()).with_access_log_compaction_percentage(80);
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, cfg).await;
    replay_mixed(&log, 2500, 3).await;
    let mut stream = log.compact(false).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, CompactedItem::AccessLogId(0));
    drop(stream);
    let left = log.entries_count().await.unwrap();
    assert!(
        left < 2500 && left > 500,
        "one batch was applied, not all: {left}"
    );
    assert_tallies_match_recount(&log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_get_a_dense_id_range_and_exact_tallies() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                let from = format!("@t{t}");
                let id = if i % 2 == 0 {
                    log.insert(&from, "pol", None).await.unwrap()
                } else {
                    log.insert(&from, "lookup", Some("shared@alice"))
                        .await
                        .unwrap()
                };
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..800).collect::<Vec<_>>());
    assert_eq!(
        log.most_visited_keys(5).await.unwrap(),
        vec![("shared@alice".to_string(), 400)]
    );
    let sites = log.most_visited_at_signs(100).await.unwrap();
    assert_eq!(sites.len(), 8);
    assert!(sites.iter().all(|(_, c)| *c == 50));
    assert_tallies_match_recount(&log).await;
}

#[tokio::test]
async fn clear_empties_the_log_and_ids_restart() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, server(dir.path())).await;
    replay_mixed(&log, 50, 1).await;
    assert!(log.entries_count().await.unwrap() > 0);
    b.clear().await.unwrap();
    assert_empty(&log).await;
    assert_starts_afresh(&log).await;
}

#[tokio::test]
async fn a_closed_log_refuses_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, server(dir.path())).await;
    log.insert("@bob", "pol", None).await.unwrap();
    f.close().await;
    let closed = |r: Result<(), PersistenceError>| {
        assert!(
            matches!(r, Err(PersistenceError::StoreClosed { .. })),
            "{r:?}"
        )
    };
    closed(log.insert("@bob", "pol", None).await.map(|_| ()));
    closed(log.replay(AccessLogEntry::default()).await.map(|_| ()));
    closed(log.most_visited_at_signs(3).await.map(|_| ()));
    closed(log.most_visited_keys(3).await.map(|_| ()));
    closed(log.get_last_access_log_entry().await.map(|_| ()));
    closed(log.get_last_pkam_access_log_entry().await.map(|_| ()));
    closed(log.iterate().await.map(|_| ()));
    closed(log.entries_count().await.map(|_| ()));
    closed(log.size_bytes().await.map(|_| ()));
    closed(log.compact(false).await.map(|_| ()));
    closed(log.compact(true).await.map(|_| ()));
}

#[tokio::test]
async fn client_bundles_have_no_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let b = f
        .initialize(
            "@alice",
            &SledPersistenceConfig::client_defaults(dir.path().join("k")),
        )
        .await
        .unwrap();
    assert!(b.access_log().is_none());
    assert!(b.notification_keystore().is_none());
}

#[tokio::test]
async fn stores_sharing_one_directory_keep_their_data_apart() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("all");
    let cfg = SledPersistenceConfig::server_defaults(&one, &one, &one, &one);
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg.clone()).await;
    let n = Arc::clone(b.notification_keystore().unwrap());
    log.insert("@bob", "pol", None).await.unwrap();
    let v = at_persistence_secondary_server::model::AtNotificationBuilder {
        id: "n1".into(),
        ..Default::default()
    }
    .build_at(T0);
    n.put("n1", v, Default::default()).await.unwrap();
    b.key_value_store()
        .put(
            "phone.wavi@alice",
            at_persistence_secondary_server::model::AtData::new("1"),
            Default::default(),
        )
        .await
        .unwrap();
    f.close().await;
    drop((b, log, n));

    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg).await;
    let n = b.notification_keystore().unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 1);
    assert_eq!(n.entries_count().await.unwrap(), 1);
    assert_eq!(b.commit_log().unwrap().entries_count().await.unwrap(), 1);
    assert_eq!(
        log.most_visited_at_signs(3).await.unwrap(),
        vec![("@bob".to_string(), 1)]
    );
    // Clearing the bundle empties every tree of the shared database.
    b.clear().await.unwrap();
    assert_eq!(log.entries_count().await.unwrap(), 0);
    assert_eq!(n.entries_count().await.unwrap(), 0);
}

/// How many entries, or planted keys, make a clear take three batches of at most 1024.
const THREE_BATCHES: usize = 2_100;

/// Asserts, with raw sled on the closed database, that the log's tree holds nothing but
/// its two counters, both 0.
fn assert_only_zero_counters(path: &Path) {
    assert_eq!(
        raw_entries(path, "access_log"),
        vec![
            (b"mentry_count".to_vec(), 0u64.to_be_bytes().to_vec()),
            (b"mnext_id".to_vec(), 0u64.to_be_bytes().to_vec()),
        ]
    );
}

/// After a clear: reopened, the log is empty, consistent, and ids restart at 0.
async fn assert_cleared_after_reopen(dir: &Path, cfg: SledPersistenceConfig) {
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg.clone()).await;
    assert_empty(&log).await;
    let report = b.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.violations);
    f.close().await;
    drop((b, log));
    assert_only_zero_counters(&dir.join("access_log"));
    let f = SledPersistenceFactory::new();
    let (_b, log) = open_with(&f, cfg).await;
    assert_starts_afresh(&log).await;
}

#[tokio::test]
async fn a_clear_in_several_batches_flushes_after_each_and_is_complete_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_periodic(dir.path());
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg.clone()).await;
    replay_mixed(&log, THREE_BATCHES, 9).await;
    assert_tallies_match_recount(&log).await;
    let path = dir.path().join("access_log");
    let before = f.test_support_flush_calls(&path).unwrap();
    b.clear().await.unwrap();
    let flushes = f.test_support_flush_calls(&path).unwrap() - before;
    // Three batches of entries, each followed by a flush (plus the one after the reset),
    // so sled never holds more than a bounded number of unflushed commits.
    assert!(flushes >= 3, "{flushes} flushes for three batches");
    assert_eq!(log.entries_count().await.unwrap(), 0);
    f.close().await;
    drop((b, log));
    assert_cleared_after_reopen(dir.path(), cfg).await;
}

#[tokio::test]
async fn a_clear_sweeps_many_leftover_keys_in_flushed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_periodic(dir.path());
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg.clone()).await;
    replay_mixed(&log, 20, 3).await;
    f.close().await;
    drop((b, log));
    // Tallies and rank entries no entry accounts for (left by undecodable entries): only
    // the clear's final sweep removes them.
    edit_raw_tree(&dir.path().join("access_log"), "access_log", |tree| {
        for i in 0..THREE_BATCHES / 2 {
            let name = format!("@ghost{i:05}");
            let mut stat = vec![b'c', b'a'];
            stat.extend_from_slice(name.as_bytes());
            let mut value = 1u64.to_be_bytes().to_vec();
            value.extend_from_slice(&(1_000_000 + i as u64).to_be_bytes());
            tree.insert(stat, value).unwrap();
            let mut rank = vec![b'r', b'a'];
            rank.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
            rank.extend_from_slice(&(1_000_000 + i as u64).to_be_bytes());
            rank.extend_from_slice(name.as_bytes());
            tree.insert(rank, &b""[..]).unwrap();
        }
    });
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, cfg.clone()).await;
    let path = dir.path().join("access_log");
    let before = f.test_support_flush_calls(&path).unwrap();
    b.clear().await.unwrap();
    let flushes = f.test_support_flush_calls(&path).unwrap() - before;
    // One batch of entries, then three of leftovers: each followed by a flush.
    assert!(flushes >= 4, "{flushes} flushes for four batches");
    f.close().await;
    drop((b, log));
    assert_cleared_after_reopen(dir.path(), cfg).await;
}

#[tokio::test]
async fn a_failed_flush_after_an_applied_insert_reports_the_error_and_never_reuses_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, server(dir.path())).await;
    assert_eq!(log.insert("@bob", "pol", None).await.unwrap(), 0);
    assert!(f.test_support_fail_next_flushes(&dir.path().join("access_log"), 1));
    let err = log.insert("@carol", "pol", None).await.unwrap_err();
    assert!(
        matches!(&err, PersistenceError::Backend { context, .. } if context.contains("flush")),
        "{err:?}"
    );
    // The entry was applied before the flush failed: it is there, counted, and its id is
    // taken.
    assert_eq!(log.entries_count().await.unwrap(), 2);
    assert_eq!(log.insert("@dave", "pol", None).await.unwrap(), 2);
    f.close().await;
    drop((b, log));

    let f = SledPersistenceFactory::new();
    let (b, log) = open_with(&f, server(dir.path())).await;
    let from: Vec<Option<String>> = log
        .iterate()
        .await
        .unwrap()
        .map(|e| e.unwrap().from_at_sign)
        .collect()
        .await;
    assert_eq!(
        from,
        vec![
            Some("@bob".to_string()),
            Some("@carol".to_string()),
            Some("@dave".to_string())
        ]
    );
    assert_eq!(log.entries_count().await.unwrap(), 3);
    assert!(b.verify().await.unwrap().is_ok());
}
