//! Quick start: bootstrap a server bundle in a temporary directory, write and read keys,
//! answer a sync query, dry-run a compaction and close.
//!
//! Run it with `cargo run --example quickstart`.

use at_persistence_secondary_server::key::SyncRule;
use at_persistence_secondary_server::model::{AtData, AtMetaData};
use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::{
    last_commit_id_for, IterateOptions, PersistenceFactory, RemoveOptions, WriteOptions,
};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    println!("storage under {}", root.path().display());

    // One factory per process; one bundle per atSign.
    let factory = SledPersistenceFactory::new();
    let config = SledPersistenceConfig::server_defaults(
        root.path().join("keys"),
        root.path().join("commit_log"),
        root.path().join("access_log"),
        root.path().join("notifications"),
    );
    let bundle = factory.initialize("@alice", &config).await?;
    // A server asserts its capabilities once and keeps non-optional handles.
    let stores = bundle.server_stores()?;
    let keystore = &stores.key_value_store;

    // Writes return the commit id clients will sync by.
    let id = keystore
        .put(
            "phone.wavi@alice",
            AtData::new("+1 555 0100"),
            WriteOptions::default(),
        )
        .await?;
    println!("put phone.wavi@alice           -> commit id {id:?}");
    let ttl = AtMetaData {
        ttl: Some(60_000),
        ..Default::default()
    };
    let id = keystore
        .put(
            "@bob:otp.wavi@alice",
            AtData::with_meta("4711", ttl),
            WriteOptions::default(),
        )
        .await?;
    println!("put @bob:otp.wavi@alice (ttl)  -> commit id {id:?}");
    let id = keystore
        .put(
            "public:email.buzz@alice",
            AtData::new("alice@example.com"),
            WriteOptions::default(),
        )
        .await?;
    println!("put public:email.buzz@alice    -> commit id {id:?}");
    let id = keystore
        .put(
            "privatekey:at_secret",
            AtData::new("s3cret"),
            WriteOptions::default(),
        )
        .await?;
    println!("put privatekey:at_secret       -> {id:?} (private keys are never synced)");
    let id = keystore
        .remove("public:email.buzz@alice", RemoveOptions::default())
        .await?;
    println!("remove public:email.buzz@alice -> commit id {id:?} (a tombstone)");

    let value = keystore.get("Phone.Wavi@Alice").await?; // reads fold case
    let meta = value.meta_data.unwrap_or_default();
    println!(
        "get phone.wavi@alice           -> {:?} (version {:?}, created by {:?})",
        value.data, meta.version, meta.created_by
    );

    // A client that syncs only the `wavi` namespace asks for everything after id 0.
    let rule = SyncRule::new(Some(r"\.wavi@"), None)?;
    let log = &stores.commit_log;
    let mut page = log
        .iterate(IterateOptions::for_sync(0, rule.clone()))
        .await?
        .take(25);
    println!("sync page from id 0 for regex \\.wavi@:");
    while let Some(entry) = page.next().await {
        let e = entry?;
        println!(
            "  {:>3} {} {}",
            e.commit_id.unwrap_or(-1),
            e.operation.symbol(),
            e.at_key
        );
    }
    println!(
        "last commit id for that client: {:?}; high-water mark: {}",
        last_commit_id_for(log.as_ref(), &rule).await?,
        log.last_committed_sequence_number().await?
    );

    // Compaction is a primitive; scheduling it is the consumer's job.
    let would_remove = keystore.compact(true).await?.count().await;
    println!("commit-log compaction dry run would remove {would_remove} entries");

    factory.close().await;
    println!("closed");
    Ok(())
}
