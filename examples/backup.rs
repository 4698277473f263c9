//! Export, import and verify an atSign's sled stores from the command line.
//!
//! ```text
//! cargo run --release --example backup -- export <store-dir> <atSign> <file>
//! cargo run --release --example backup -- import <file> <store-dir> <atSign>
//! cargo run --release --example backup -- verify <file> [<store-dir> <atSign>]
//! cargo run --release --example backup -- demo   <store-dir> <atSign> [keys]
//! ```
//!
//! `<store-dir>` holds the stores in this example's layout: `keys/` (keystore and commit
//! log), `access_log/` and `notifications/`. A server with another layout changes
//! [`config`] below. The store must not be open in another process (sled locks it).
//!
//! * `export` writes a logical backup file (never overwriting one).
//! * `import` loads a file into an empty store (created if missing); the file is verified
//!   completely before anything is written.
//! * `verify <file>` checks a file's checksums, encodings and counts; with a store it
//!   also imports the file into a temporary store and compares it with the given one
//!   (this comparison holds both stores in memory).
//! * `demo` creates a store with sample data (`keys` keys, 10,000 by default) to try the
//!   other commands on.
//!
//! Progress goes to stderr every 50,000 records; the exit status is 0 on success, 1 on
//! any error (printed), 2 on a usage error.

use at_persistence_secondary_server::model::{
    AtData, AtMetaData, AtNotificationBuilder, NotificationType,
};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    Bundle, KeyValueStoreExt, LogicalBackup, Pass, PersistenceFactory, PersistenceSnapshot,
    Progress, WriteOptions,
};
use at_persistence_secondary_server::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage:
  backup export <store-dir> <atSign> <file>
  backup import <file> <store-dir> <atSign>
  backup verify <file> [<store-dir> <atSign>]
  backup demo   <store-dir> <atSign> [keys]";

/// The server configuration of a store directory in this example's layout.
fn config(dir: &Path) -> SledPersistenceConfig {
    SledPersistenceConfig::server_defaults(
        dir.join("keys"),
        dir.join("commit_log"),
        dir.join("access_log"),
        dir.join("notifications"),
    )
}

fn progress_printer() -> Arc<dyn Fn(Progress) + Send + Sync> {
    let start = Instant::now();
    Arc::new(move |p: Progress| {
        let pass = match p.pass {
            Pass::Migrate => "migrate",
            Pass::Export => "export",
            Pass::Verify => "verify",
            Pass::Import => "import",
        };
        let state = if p.finished { " (done)" } else { "" };
        eprintln!(
            "[{:>7.1}s] {pass:<7} {:<22} {:>10} records{state}",
            start.elapsed().as_secs_f64(),
            p.store.name(),
            p.records
        );
    })
}

fn backup() -> LogicalBackup {
    LogicalBackup::new().with_progress(50_000, progress_printer())
}

async fn open(factory: &SledPersistenceFactory, dir: &Path, at_sign: &str) -> Result<Arc<Bundle>> {
    factory.initialize(at_sign, &config(dir)).await
}

async fn export(dir: &Path, at_sign: &str, file: &Path) -> Result<()> {
    let factory = SledPersistenceFactory::new();
    let bundle = open(&factory, dir, at_sign).await?;
    let summary = backup().export_to_path(&bundle, file).await;
    factory.close().await;
    let s = summary?;
    println!(
        "exported {} keys, {} commit entries (last id {:?}), {} access entries, {} notifications \
         to {} ({} bytes, {} chunks)",
        s.keys,
        s.commit_entries,
        s.last_committed_sequence_number,
        s.access_entries,
        s.notifications,
        file.display(),
        s.bytes,
        s.chunks
    );
    Ok(())
}

async fn import(file: &Path, dir: &Path, at_sign: &str) -> Result<()> {
    let factory = SledPersistenceFactory::new();
    let bundle = open(&factory, dir, at_sign).await?;
    let report = backup().import_from_path(&bundle, file).await;
    factory.close().await;
    let r = report?;
    println!(
        "imported {} keys, {} commit entries ({} orphans dropped, last id {:?}), {} access \
         entries, {} notifications into {}",
        r.keys,
        r.commit_entries,
        r.orphaned_commit_entries,
        r.last_committed_sequence_number,
        r.access_entries,
        r.notifications,
        dir.display()
    );
    Ok(())
}

async fn verify(file: &Path, store: Option<(&Path, &str)>) -> Result<bool> {
    let s = backup().verify_path(file)?;
    println!(
        "{}: format {}, {} from {} at {}; {} keys, {} commit entries, {} access entries, {} \
         notifications; checksums and counts OK",
        file.display(),
        s.format_version,
        s.at_sign,
        s.backend,
        s.created_at,
        s.keys,
        s.commit_entries,
        s.access_entries,
        s.notifications
    );
    let Some((dir, at_sign)) = store else {
        return Ok(true);
    };
    let scratch = tempfile_dir(dir)?;
    let result = compare_with(file, dir, at_sign, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A scratch directory next to the store (same file system, no extra dependency).
fn tempfile_dir(dir: &Path) -> Result<std::path::PathBuf> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = format!(
        ".verify-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let scratch = parent.join(name);
    std::fs::create_dir_all(&scratch).map_err(|source| {
        at_persistence_secondary_server::PersistenceError::Io {
            path: scratch.clone(),
            source,
        }
    })?;
    Ok(scratch)
}

async fn compare_with(file: &Path, dir: &Path, at_sign: &str, scratch: &Path) -> Result<bool> {
    let store_factory = SledPersistenceFactory::new();
    let store = open(&store_factory, dir, at_sign).await?;
    let scratch_factory = SledPersistenceFactory::new();
    let copy = open(&scratch_factory, scratch, at_sign).await?;
    backup().import_from_path(&copy, file).await?;
    let a = PersistenceSnapshot::capture(&store).await?;
    let b = PersistenceSnapshot::capture(&copy).await?;
    store_factory.close().await;
    scratch_factory.close().await;
    let differences = a.differences_from(&b);
    if differences.is_empty() {
        println!("{} matches the backup: {:?}", dir.display(), a.counts());
        return Ok(true);
    }
    println!(
        "{} differs from the backup in {} places (A = store, B = backup):",
        dir.display(),
        differences.len()
    );
    for d in differences.iter().take(20) {
        println!("  {d}");
    }
    Ok(false)
}

async fn demo(dir: &Path, at_sign: &str, keys: usize) -> Result<()> {
    let factory = SledPersistenceFactory::new();
    let bundle = open(&factory, dir, at_sign).await?;
    let ks = bundle.key_value_store();
    let mut i = 0;
    while i < keys {
        let end = (i + 1_000).min(keys);
        let at = at_sign.to_string();
        ks.transaction(|txn| async move {
            for j in i..end {
                let meta = AtMetaData {
                    ttl: (j % 10 == 1).then_some(3_600_000),
                    ..Default::default()
                };
                txn.put(
                    &format!("key{j}.demo{at}"),
                    AtData::with_meta(format!("value {j} 😀"), meta),
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        i = end;
        if i % 50_000 == 0 {
            eprintln!("demo: {i} keys written");
        }
    }
    for j in 0..keys / 100 {
        ks.remove(&format!("key{j}.demo{at_sign}"), Default::default())
            .await?;
    }
    let log = bundle
        .access_log()
        .expect("the server configuration has an access log");
    for j in 0..(keys / 10).min(10_000) {
        log.insert("@visitor", "lookup", Some(&format!("key{j}.demo{at_sign}")))
            .await?;
    }
    let notes = bundle
        .notification_keystore()
        .expect("the server configuration has a notification keystore");
    for j in 0..(keys / 100).min(1_000) {
        let mut b = AtNotificationBuilder::new();
        b.id = format!("demo-{j}");
        b.from_at_sign = Some("@bob".into());
        b.to_at_sign = Some(at_sign.into());
        b.notification_type = Some(NotificationType::Received);
        b.notification = Some(format!("key{j}.demo{at_sign}"));
        notes
            .put(&b.id.clone(), b.build(), WriteOptions::default())
            .await?;
    }
    factory.close().await;
    println!(
        "demo store of {at_sign} with {keys} keys in {}",
        dir.display()
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["export", dir, at_sign, file] => export(dir.as_ref(), at_sign, file.as_ref())
            .await
            .map(|_| true),
        ["import", file, dir, at_sign] => import(file.as_ref(), dir.as_ref(), at_sign)
            .await
            .map(|_| true),
        ["verify", file] => verify(file.as_ref(), None).await,
        ["verify", file, dir, at_sign] => {
            verify(file.as_ref(), Some((dir.as_ref(), at_sign))).await
        }
        ["demo", dir, at_sign] => demo(dir.as_ref(), at_sign, 10_000).await.map(|_| true),
        ["demo", dir, at_sign, keys] => match keys.parse() {
            Ok(n) => demo(dir.as_ref(), at_sign, n).await.map(|_| true),
            Err(_) => {
                eprintln!("keys must be a number, got {keys:?}\n{USAGE}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
