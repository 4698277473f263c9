use at_persistence_secondary_server::model::*;
use at_persistence_secondary_server::sled::*;
use at_persistence_secondary_server::store::*;
use futures::StreamExt;

#[tokio::test]
async fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let f = SledPersistenceFactory::new();
    let cfg = SledPersistenceConfig::server_defaults(
        dir.path().join("k"),
        dir.path().join("c"),
        dir.path().join("a"),
        dir.path().join("n"),
    );
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let ks = b.key_value_store();
    let cl = ks.commit_log().unwrap();
    assert_eq!(cl.last_committed_sequence_number().await.unwrap(), -1);
    assert_eq!(
        ks.create("a@alice", AtData::new("1"), WriteOptions::default())
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        ks.put("a@alice", AtData::new("2"), WriteOptions::default())
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        ks.create("b@alice", AtData::new("1"), WriteOptions::default())
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        ks.remove("a@alice", RemoveOptions::default())
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(cl.entries_count().await.unwrap(), 2);
    let all: Vec<_> = cl
        .iterate(IterateOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(all.len(), 2);
    let v = ks.get("b@alice").await.unwrap();
    assert_eq!(v.data.as_deref(), Some("1"));
    f.close().await;
    let b = f.initialize("@alice", &cfg).await.unwrap();
    let cl = b.commit_log().unwrap();
    assert_eq!(cl.last_committed_sequence_number().await.unwrap(), 3);
    assert_eq!(cl.entries_count().await.unwrap(), 2);
    let mut hs = Vec::new();
    for i in 0..20 {
        let ks = b.key_value_store().clone();
        hs.push(tokio::spawn(async move {
            ks.create(
                &format!("k{i}@alice"),
                AtData::new("x"),
                WriteOptions::default(),
            )
            .await
            .unwrap()
            .unwrap()
        }));
    }
    let mut ids: Vec<i64> = Vec::new();
    for h in hs {
        ids.push(h.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (4..24).collect::<Vec<_>>());
    b.clear().await.unwrap();
    assert_eq!(cl.last_committed_sequence_number().await.unwrap(), -1);
}
