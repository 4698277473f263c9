//! The consumer-side maintenance schedule of a secondary server: a periodic expiry sweep
//! and a periodic compaction of each store, each on its own tokio interval with an overlap
//! guard, and compaction statistics stored under the reserved keys the Dart server used.
//!
//! The persistence layer schedules nothing itself. Intervals here are shortened so the
//! example finishes in a few seconds; a server would use minutes (the Dart defaults were:
//! expiry sweep every 10 min, commit log every 18 min, access log every 15 min,
//! notifications every 5 min).
//!
//! Run it with `cargo run --example server_maintenance`.

use at_persistence_secondary_server::model::{
    AtData, AtMetaData, AtNotificationBuilder, Clock, SystemClock,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    compact_and_report, CompactionReport, PersistenceFactory, ServerStores, WriteOptions,
};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs `job` every `period` unless the previous run is still going (overlap guard).
fn every<F, Fut>(name: &'static str, period: Duration, job: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(false));
    let job = Arc::new(job);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if running.swap(true, Ordering::SeqCst) {
                println!("[{name}] previous run still going; skipping this tick");
                continue;
            }
            let (running, job) = (Arc::clone(&running), Arc::clone(&job));
            tokio::spawn(async move {
                job().await;
                running.store(false, Ordering::SeqCst);
            });
        }
    })
}

/// Stores a compaction report under its reserved key (never committed: `privatekey:`).
async fn store_stats(stores: &ServerStores, report: &CompactionReport) {
    let Some(key) = report.stats_key() else {
        return;
    };
    let json = report.to_stats().to_json_string();
    if let Err(e) = stores
        .key_value_store
        .put(key, AtData::new(json), WriteOptions::default())
        .await
    {
        eprintln!("could not store compaction stats: {e}");
    }
}

fn print_report(name: &str, r: &CompactionReport) {
    println!(
        "[{name}] compacted: {} -> {} entries, removed {}, took {:?}",
        r.entries_before, r.entries_after, r.removed, r.duration
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let factory = SledPersistenceFactory::new();
    let config = SledPersistenceConfig::server_defaults(
        root.path().join("keys"),
        root.path().join("commit_log"),
        root.path().join("access_log"),
        root.path().join("notifications"),
    )
    .with_access_log_compaction_percentage(30);
    let bundle = factory.initialize("@alice", &config).await?;
    let stores = bundle.server_stores()?;

    // Some traffic: short-lived keys, access-log entries, short-lived notifications.
    for i in 0..20 {
        let meta = AtMetaData {
            ttl: Some(200 + i * 50),
            ..Default::default()
        };
        stores
            .key_value_store
            .put(
                &format!("otp{i}.wavi@alice"),
                AtData::with_meta("x", meta),
                WriteOptions::default(),
            )
            .await?;
        stores.access_log.insert("@bob", "pol", None).await?;
        let mut b = AtNotificationBuilder::new();
        b.to_at_sign = Some("@bob".into());
        b.ttl = Some(300);
        let n = b.build();
        stores
            .notification_keystore
            .put(&n.id.clone(), n, WriteOptions::default())
            .await?;
    }
    println!("seeded 20 keys with ttls, 20 access-log entries, 20 notifications");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let s = stores.clone();
    let sweep = every("expiry sweep", Duration::from_millis(400), move || {
        let s = s.clone();
        async move {
            match s.key_value_store.delete_expired_keys().await {
                Ok(_) => println!("[expiry sweep] done"),
                Err(e) => eprintln!("[expiry sweep] failed: {e}"),
            }
        }
    });
    let (s, c) = (stores.clone(), Arc::clone(&clock));
    let commit_log = every("commit log", Duration::from_millis(700), move || {
        let (s, c) = (s.clone(), Arc::clone(&c));
        async move {
            match compact_and_report(s.key_value_store.as_ref(), false, c.as_ref()).await {
                Ok(r) => {
                    print_report("commit log", &r);
                    store_stats(&s, &r).await;
                }
                Err(e) => eprintln!("[commit log] failed: {e}"),
            }
        }
    });
    let (s, c) = (stores.clone(), Arc::clone(&clock));
    let access = every("access log", Duration::from_millis(600), move || {
        let (s, c) = (s.clone(), Arc::clone(&c));
        async move {
            match compact_and_report(s.access_log.as_ref(), false, c.as_ref()).await {
                Ok(r) => {
                    print_report("access log", &r);
                    store_stats(&s, &r).await;
                }
                Err(e) => eprintln!("[access log] failed: {e}"),
            }
        }
    });
    let (s, c) = (stores.clone(), Arc::clone(&clock));
    let notifications = every("notifications", Duration::from_millis(500), move || {
        let (s, c) = (s.clone(), Arc::clone(&c));
        async move {
            match compact_and_report(s.notification_keystore.as_ref(), false, c.as_ref()).await {
                Ok(r) => {
                    print_report("notifications", &r);
                    store_stats(&s, &r).await;
                }
                Err(e) => eprintln!("[notifications] failed: {e}"),
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(2)).await;
    for task in [sweep, commit_log, access, notifications] {
        task.abort();
    }
    let live = stores.key_value_store.get_keys(None).await?;
    println!(
        "after 2 s: {} keys visible, {} access-log entries, {} notifications",
        live.count().await,
        stores.access_log.entries_count().await?,
        stores.notification_keystore.entries_count().await?
    );
    let stats = stores
        .key_value_store
        .get("privatekey:accessLogCompactionStats")
        .await?;
    println!(
        "stored access-log compaction stats: {}",
        stats.data.unwrap_or_default()
    );
    factory.close().await;
    Ok(())
}
