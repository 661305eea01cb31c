#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use billet_block::Cid;
use billet_engine::*;
use billet_index::{Index, ListQuery, SqliteConfig, SqliteIndex};
use bytes::Bytes;

async fn engine(dir: &std::path::Path) -> Engine {
    let index = SqliteIndex::open(SqliteConfig::new(dir.join("index"))).unwrap();
    Engine::open(EngineConfig::new(dir), Arc::new(index) as Arc<dyn Index>)
        .await
        .unwrap()
}

async fn put(
    e: &Engine,
    bucket: &str,
    key: &str,
    data: &[u8],
    cond: Option<Condition>,
) -> Result<PutOutcome, EngineError> {
    let state = e.bucket(bucket).await?;
    let body =
        futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    let staged = e.stage_body(&state, body, &[]).await?;
    e.put(bucket, key, staged, ObjectMeta::default(), cond)
        .await
}

/// The MST at the bucket's head holds exactly the index's current objects.
async fn mst_equals_index(e: &Engine, bucket: &str) {
    let root = e.mst_root(bucket).await.unwrap();
    let store = e.store().clone();
    let from_mst: Vec<(String, Cid)> = tokio::task::spawn_blocking(move || {
        billet_mst::Mst::new(store.as_ref())
            .iter(&root, None, None)
            .map(|r| r.map(|(k, v)| (String::from_utf8(k).unwrap(), v)))
            .collect::<Result<_, _>>()
            .unwrap()
    })
    .await
    .unwrap();
    let page = e
        .list_objects(
            bucket,
            &ListQuery {
                max_keys: 100_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut from_index = Vec::new();
    for o in page.objects {
        let v = e.object(bucket, &o.key, None).await.unwrap();
        from_index.push((o.key, v.manifest_cid));
    }
    assert_eq!(from_mst, from_index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_batch_and_everything_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.create_bucket("b", "me").await.unwrap();
    assert!(matches!(
        e.create_bucket("b", "me").await,
        Err(EngineError::BucketExists(_))
    ));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let data = vec![i as u8; 100 + i * 1000];
            let out = put(&e, "b", &format!("k/{i:03}"), &data, None)
                .await
                .unwrap();
            (i, data, out)
        }));
    }
    for t in tasks {
        let (i, data, out) = t.await.unwrap();
        let got = e.object("b", &format!("k/{i:03}"), None).await.unwrap();
        assert_eq!(got.manifest_cid, out.manifest_cid);
        assert_eq!(e.read_all(&got.manifest).await.unwrap(), data);
    }
    let stats = e.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    assert!(batches < 64, "64 concurrent puts took {batches} commits");
    mst_equals_index(&e, "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_deletes_and_copies() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.create_bucket("b", "me").await.unwrap();
    let first = put(&e, "b", "x", b"one", Some(Condition::IfNoneMatch))
        .await
        .unwrap();
    assert!(matches!(
        put(&e, "b", "x", b"two", Some(Condition::IfNoneMatch)).await,
        Err(EngineError::PreconditionFailed(_))
    ));
    assert!(matches!(
        put(
            &e,
            "b",
            "x",
            b"two",
            Some(Condition::IfMatch("nope".into()))
        )
        .await,
        Err(EngineError::PreconditionFailed(_))
    ));
    put(
        &e,
        "b",
        "x",
        b"two",
        Some(Condition::IfMatch(first.manifest.etag.clone())),
    )
    .await
    .unwrap();
    let copied = e.copy("b", "x", None, "b", "y", None, None).await.unwrap();
    let x = e.object("b", "x", None).await.unwrap();
    assert_eq!(
        copied.manifest.body, x.manifest.body,
        "a copy shares the body"
    );
    e.create_bucket("c", "me").await.unwrap();
    e.copy("b", "x", None, "c", "z", None, None).await.unwrap();
    assert_eq!(
        e.read_all(&e.object("c", "z", None).await.unwrap().manifest)
            .await
            .unwrap(),
        b"two"
    );
    e.delete("b", "x", None).await.unwrap();
    assert!(matches!(
        e.object("b", "x", None).await,
        Err(EngineError::NoSuchKey(_))
    ));
    // Deleting an absent key succeeds, as in S3.
    e.delete("b", "x", None).await.unwrap();
    assert!(matches!(
        e.delete_bucket("b").await,
        Err(EngineError::BucketNotEmpty(_))
    ));
    mst_equals_index(&e, "b").await;
    e.delete("b", "y", None).await.unwrap();
    e.delete_bucket("b").await.unwrap();
    assert!(matches!(
        e.bucket("b").await,
        Err(EngineError::NoSuchBucket(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    {
        let e = engine(dir.path()).await;
        e.create_bucket("b", "me").await.unwrap();
        put(&e, "b", "big", &data, None).await.unwrap();
    }
    let e = engine(dir.path()).await;
    let v = e.object("b", "big", None).await.unwrap();
    assert_eq!(e.read_all(&v.manifest).await.unwrap(), data);
    // Ranged reads cross chunk boundaries.
    let mut got = Vec::new();
    let mut s = e.read_body(&v.manifest, 1_048_000, 2_100_000).unwrap();
    while let Some(piece) = futures_util::StreamExt::next(&mut s).await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, &data[1_048_000..2_100_000]);
    mst_equals_index(&e, "b").await;
}
