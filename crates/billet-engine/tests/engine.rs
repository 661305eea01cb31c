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
    let mut s = e
        .read_body(&v.manifest, 1_048_000, 2_100_000)
        .await
        .unwrap();
    while let Some(piece) = futures_util::StreamExt::next(&mut s).await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, &data[1_048_000..2_100_000]);
    mst_equals_index(&e, "b").await;
}

/// Every version of a bucket as the index holds it, for putting back.
async fn index_rows(e: &Engine, bucket: &str) -> Vec<billet_index::ObjectVersion> {
    let page = e
        .list_versions(
            bucket,
            &billet_index::VersionQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!page.truncated);
    let mut out = Vec::new();
    for v in page.versions {
        out.push(e.object(bucket, &v.key, Some(&v.version_id)).await.unwrap());
    }
    out
}

/// The index loses its last transactions (as after a power loss: it does
/// not fsync per commit); reopening rolls it forward from the log.
async fn index_lag_is_rolled_forward(dir: &std::path::Path, index: impl Fn() -> Arc<dyn Index>) {
    let open = || async { Engine::open(EngineConfig::new(dir), index()).await.unwrap() };
    let e = open().await;
    e.create_bucket("rf", "me").await.unwrap();
    put(&e, "rf", "a", b"a1", None).await.unwrap();
    put(&e, "rf", "b", b"b1", None).await.unwrap();
    e.advance_replay_point().await.unwrap();
    let before = e.bucket("rf").await.unwrap();
    let rows_before = index_rows(&e, "rf").await;

    // Commits after the checkpoint: a settings change, versions, a delete.
    let mut settings = before.settings.clone();
    settings.versioning = billet_records::Versioning::Enabled;
    e.set_settings("rf", settings).await.unwrap();
    put(&e, "rf", "a", b"a2", None).await.unwrap();
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    put(&e, "rf", "c", &big, None).await.unwrap();
    e.delete("rf", "b", None).await.unwrap();
    let after = e.bucket("rf").await.unwrap();
    let rows_after = index_rows(&e, "rf").await;
    assert!(after.seq > before.seq);

    // The index forgets all of it.
    e.index()
        .rebuild(
            "rf",
            before.head,
            before.seq,
            &before.settings,
            Box::new(rows_before.clone().into_iter().map(Ok)),
        )
        .await
        .unwrap();
    assert_eq!(e.bucket("rf").await.unwrap().seq, before.seq);
    drop(e);

    let e = open().await;
    let now = e.bucket("rf").await.unwrap();
    assert_eq!((now.head, now.seq), (after.head, after.seq));
    assert_eq!(now.settings, after.settings);
    let strip = |rows: Vec<billet_index::ObjectVersion>| {
        rows.into_iter()
            .map(|v| (v.key, v.version_id, v.is_latest, v.manifest_cid))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(index_rows(&e, "rf").await), strip(rows_after));
    let c = e.object("rf", "c", None).await.unwrap();
    assert_eq!(e.read_all(&c.manifest).await.unwrap(), big);
    // (With versioning on, the MST also holds b's delete marker; fsck
    // compares every version.)
    let report = e.fsck("rf", false).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // The commit MMR holds every commit once, the head last.
    let mmr_leaves = |e: Engine| async move {
        let size = e.index().mmr_size("rf").await.unwrap();
        let n = billet_mmr::leaf_count(size).unwrap();
        let last = e
            .index()
            .mmr_nodes("rf", &[billet_mmr::leaf_index(n - 1)])
            .await
            .unwrap()[0]
            .unwrap();
        (n, last)
    };
    let head_leaf = billet_mmr::leaf_hash(&after.head.to_bytes());
    assert_eq!(mmr_leaves(e.clone()).await, (after.seq + 1, head_leaf));
    // Nothing left to roll: a second reopen changes nothing.
    drop(e);
    let e = open().await;
    assert_eq!(e.bucket("rf").await.unwrap().head, after.head);
    assert_eq!(mmr_leaves(e.clone()).await, (after.seq + 1, head_leaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lag_is_rolled_forward_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    index_lag_is_rolled_forward(dir.path(), move || {
        Arc::new(SqliteIndex::open(SqliteConfig::new(path.join("index"))).unwrap())
            as Arc<dyn Index>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lag_is_rolled_forward_on_postgres() {
    let url = std::env::var("BILLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "billet_engine_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let config = billet_index::PgConfig {
        url: url.clone(),
        schema: schema.clone(),
        pool_size: 4,
    };
    let first = match billet_index::PgIndex::open(config.clone()).await {
        Ok(ix) => ix,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL at {url} is required under CI=true: {e}"
            );
            eprintln!("SKIPPED: PostgreSQL at {url} unreachable ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let opened = std::sync::Mutex::new(Some(first.clone()));
    let handle = tokio::runtime::Handle::current();
    index_lag_is_rolled_forward(dir.path(), || {
        // The first engine gets the index opened above; later ones reopen
        // the same schema, as a restarted node would.
        let ix = opened.lock().unwrap().take().unwrap_or_else(|| {
            let config = config.clone();
            std::thread::scope(|s| {
                s.spawn(|| {
                    handle
                        .block_on(billet_index::PgIndex::open(config))
                        .unwrap()
                })
                .join()
                .unwrap()
            })
        });
        Arc::new(ix) as Arc<dyn Index>
    })
    .await;
    first.drop_schema(&schema).await.unwrap();
}
