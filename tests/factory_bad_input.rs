//! Bad input to the factory: each case is a typed error naming the input, and the
//! directory tree is exactly as it was before the call.

mod common;

use at_persistence_secondary_server::sled::{SledPersistenceConfig, SledPersistenceFactory};
use at_persistence_secondary_server::store::PersistenceFactory;
use at_persistence_secondary_server::PersistenceError;
use common::server_layout;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every path under `root`, sorted, with a marker for files.
fn listing(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(&p, root, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

async fn refused(root: &Path, at_sign: &str, config: &SledPersistenceConfig) -> PersistenceError {
    let before = listing(root);
    let f = SledPersistenceFactory::new();
    let err = f
        .initialize(at_sign, config)
        .await
        .expect_err("the call must be refused");
    assert_eq!(listing(root), before, "nothing created or changed ({err})");
    assert!(f.bundle_for(at_sign).is_none());
    err
}

#[tokio::test]
async fn malformed_at_signs_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("@{}", "a".repeat(56));
    for at_sign in ["", "alice", "@", "@al ice", "@al:ice", long.as_str()] {
        let err = refused(dir.path(), at_sign, &server_layout(dir.path())).await;
        match err {
            PersistenceError::InvalidConfig { field, reason } => {
                assert_eq!(field, "at_sign");
                assert!(reason.contains(at_sign), "{reason} names {at_sign:?}");
            }
            other => panic!("{at_sign:?}: {other}"),
        }
    }
}

#[tokio::test]
async fn empty_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(
        dir.path(),
        "@alice",
        &SledPersistenceConfig::server_defaults("", "c", "a", "n"),
    )
    .await;
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, .. } if field == "storage_path"),
        "{err}"
    );
    let cfg = SledPersistenceConfig::new(dir.path().join("keys")).with_access_log("");
    let err = refused(dir.path(), "@alice", &cfg).await;
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, .. } if field == "access_log_path"),
        "{err}"
    );
    let cfg = SledPersistenceConfig::new(dir.path().join("keys")).with_notification_keystore("");
    let err = refused(dir.path(), "@alice", &cfg).await;
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, .. } if field == "notification_storage_path"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_in_the_way_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();

    // The storage path is a file.
    let cfg = SledPersistenceConfig::server_defaults(
        &file,
        dir.path().join("c"),
        dir.path().join("a"),
        dir.path().join("n"),
    );
    let err = refused(dir.path(), "@alice", &cfg).await;
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, reason } if field == "storage_path" && reason.contains("plain-file")),
        "{err}"
    );

    // The notification path lies under a file; the keystore path is fine but must not be
    // created either.
    let cfg = SledPersistenceConfig::server_defaults(
        dir.path().join("keys"),
        dir.path().join("c"),
        dir.path().join("a"),
        file.join("below"),
    );
    let err = refused(dir.path(), "@alice", &cfg).await;
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, reason } if field == "notification_storage_path" && reason.contains("lies under")),
        "{err}"
    );
    assert!(!dir.path().join("keys").exists());
}

#[tokio::test]
async fn a_directory_held_by_another_factory_is_refused_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let holder = SledPersistenceFactory::new();
    let _b = holder
        .initialize(
            "@alice",
            &SledPersistenceConfig::new(dir.path().join("keys")),
        )
        .await
        .unwrap();
    // A second factory wants the same keystore plus new directories for the other stores.
    let cfg = server_layout(dir.path()).with_lock_retry(Duration::from_millis(100));
    let err = refused(dir.path(), "@alice", &cfg).await;
    assert!(
        matches!(&err, PersistenceError::AlreadyOpen { path } if path.ends_with("keys")),
        "{err}"
    );
}

#[tokio::test]
async fn another_backends_config_is_refused() {
    use at_persistence_secondary_server::store::{BackendId, PersistenceConfig};
    #[derive(Debug)]
    struct Foreign(PathBuf);
    impl PersistenceConfig for Foreign {
        fn backend(&self) -> BackendId {
            BackendId::Sled
        }
        fn storage_path(&self) -> &Path {
            &self.0
        }
        fn commit_log_path(&self) -> PathBuf {
            self.0.clone()
        }
        fn access_log_path(&self) -> PathBuf {
            self.0.clone()
        }
        fn notification_storage_path(&self) -> PathBuf {
            self.0.clone()
        }
        fn backend_marker_path(&self) -> PathBuf {
            self.0.clone()
        }
        fn enable_commit_log(&self) -> bool {
            true
        }
        fn enable_access_log(&self) -> bool {
            false
        }
        fn enable_notification_keystore(&self) -> bool {
            false
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let before = listing(dir.path());
    let f = SledPersistenceFactory::new();
    let err = f
        .initialize("@alice", &Foreign(dir.path().join("keys")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PersistenceError::InvalidConfig { field, .. } if field == "config"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), before);
}
