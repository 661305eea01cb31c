#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! The cold tier over a directory store behind a fault-injecting wrapper:
//! shipping, eviction, reads through the remote across restarts, faults,
//! the delete queue, the disk budget, and a rebuild from the remote.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use billet_engine::*;
use billet_index::{Index, ListQuery, RemoteSegment, RemoteState, SqliteConfig, SqliteIndex};
use billet_log::{LogConfig, PlaneConfig, PlaneKind, SegmentState};
use billet_records::{BucketSettings, Versioning};
use billet_remote::fault::FaultyRemote;
use billet_remote::{Remote, RemoteConfig, StoreKind};
use bytes::Bytes;

struct Node {
    engine: Engine,
    index: Arc<dyn Index>,
}

fn remote(dir: &Path) -> Arc<FaultyRemote> {
    let inner = billet_remote::open(&RemoteConfig::new(StoreKind::Filesystem {
        root: dir.to_path_buf(),
    }))
    .unwrap();
    Arc::new(FaultyRemote::new(inner))
}

fn small_log() -> LogConfig {
    LogConfig {
        data: PlaneConfig {
            seal_bytes: 512 << 10,
            seal_after: Duration::from_secs(3600),
        },
        catalog: PlaneConfig {
            seal_bytes: 32 << 10,
            seal_after: Duration::from_secs(3600),
        },
        ..LogConfig::default()
    }
}

fn cold_config(r: &Arc<FaultyRemote>, keep_local: Option<Duration>) -> ColdConfig {
    let mut c = ColdConfig::new(r.clone() as Arc<dyn Remote>, "test remote", "n1");
    c.data.keep_local = keep_local;
    c.catalog.keep_local = keep_local;
    c.read_timeout = Duration::from_millis(500);
    c.read_attempts = 2;
    c.cache_bytes = 4 << 20;
    c
}

async fn node(dir: &Path, cold: ColdConfig) -> Node {
    let index: Arc<dyn Index> =
        Arc::new(SqliteIndex::open(SqliteConfig::new(dir.join("index"))).unwrap());
    let mut config = EngineConfig::new(dir);
    config.log = small_log();
    config.cold = Some(cold);
    config.chunk_size = 256 << 10;
    let engine = Engine::open(config, index.clone()).await.unwrap();
    Node { engine, index }
}

async fn put(e: &Engine, bucket: &str, key: &str, data: &[u8]) -> Result<PutOutcome, EngineError> {
    let state = e.bucket(bucket).await?;
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let staged = e
        .stage_body(&state, futures_util::stream::iter(chunks), &[])
        .await?;
    e.put(bucket, key, staged, ObjectMeta::default(), None)
        .await
}

async fn get(e: &Engine, bucket: &str, key: &str) -> Result<Vec<u8>, EngineError> {
    use futures_util::StreamExt;
    let v = e.object(bucket, key, None).await?;
    let mut body = e.read_body(&v.manifest, 0, v.manifest.size).await?;
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

/// Bytes that do not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Objects of every size class, a versioned overwrite among them.
async fn write_objects(e: &Engine) -> Vec<(String, Vec<u8>)> {
    e.create_bucket("b", "owner-1").await.unwrap();
    e.set_settings(
        "b",
        BucketSettings {
            versioning: Versioning::Enabled,
            chunk_size: 256 << 10,
            ..BucketSettings::default()
        },
    )
    .await
    .unwrap();
    let mut objects = Vec::new();
    for (i, len) in [0usize, 1, 4096, 100_000, 300_000, 1_500_000, 3_000_000]
        .into_iter()
        .enumerate()
    {
        let data = if i % 2 == 0 {
            noise(i as u64, len)
        } else {
            vec![b'a' + i as u8; len]
        };
        let key = format!("obj/{i}");
        put(e, "b", &key, &data).await.unwrap();
        objects.push((key, data));
    }
    // An overwrite: the newest version is what reads return.
    let newer = noise(99, 200_000);
    put(e, "b", "obj/3", &newer).await.unwrap();
    objects[3].1 = newer;
    objects
}

async fn ship_everything(e: &Engine) {
    e.log().seal_all().unwrap();
    e.cold_round().await.unwrap();
}

fn states(e: &Engine) -> Vec<(PlaneKind, SegmentState)> {
    e.log()
        .segments()
        .into_iter()
        .map(|s| (s.plane, s.state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_segments_evict_and_read_back_through_the_remote_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    let n = node(dir.path(), cold_config(&r, Some(Duration::ZERO))).await;
    let objects = write_objects(&n.engine).await;
    ship_everything(&n.engine).await;
    let st = states(&n.engine);
    assert!(st.iter().all(|(_, s)| *s != SegmentState::Sealed), "{st:?}");
    assert!(
        st.iter()
            .filter(|(_, s)| *s == SegmentState::Evicted)
            .count()
            >= 4
    );
    let status = n.engine.status().await.unwrap();
    for p in &status.planes {
        assert_eq!(p.sealed.segments, 0, "{p:?}");
        assert_eq!(p.backlog.segments, 0);
        assert!(p.evicted.segments > 0);
    }
    let b = &status.buckets[0];
    assert_eq!(b.shipped_seq, Some(b.head_seq), "{b:?}");
    // Catalog segments are compressed, random data is not.
    let rows = n.index.segments("n1").await.unwrap();
    assert!(
        rows.iter()
            .filter(|s| s.plane == "catalog")
            .all(|s| s.encoding == "zstd")
    );
    assert!(
        rows.iter()
            .any(|s| s.plane == "data" && s.encoding == "identity")
    );
    assert!(rows.iter().all(|s| s.state == RemoteState::Evicted));
    for (key, data) in &objects {
        assert_eq!(&get(&n.engine, "b", key).await.unwrap(), data, "{key}");
    }
    assert!(
        r.calls
            .ranged_gets
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "nothing was read from the remote"
    );
    drop(n);

    // A restart reads everything back from the remote alone.
    let n = node(dir.path(), cold_config(&r, Some(Duration::ZERO))).await;
    for (key, data) in &objects {
        assert_eq!(&get(&n.engine, "b", key).await.unwrap(), data, "{key}");
    }
    let listed = n
        .engine
        .list_objects(
            "b",
            &ListQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), objects.len());
    let versions = n
        .engine
        .list_versions(
            "b",
            &billet_index::VersionQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(versions.versions.len(), objects.len() + 1);
    // The bucket verifies from the remote.
    let report = n.engine.fsck("b", false).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_remote_loses_no_write_and_shipping_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    let n = node(dir.path(), cold_config(&r, None)).await;
    r.set_down(true);
    let objects = write_objects(&n.engine).await;
    n.engine.log().seal_all().unwrap();
    assert!(n.engine.cold_round().await.is_err());
    let status = n.engine.status().await.unwrap();
    assert!(status.planes.iter().all(|p| p.backlog.segments > 0));
    assert_eq!(status.buckets[0].shipped_seq, None);
    // Writes still land while the remote is away.
    put(
        &n.engine,
        "b",
        "during",
        b"written while the remote is down",
    )
    .await
    .unwrap();
    // 500s, then success: the round fails, the next one ships.
    r.set_down(false);
    r.fail_next(1);
    let _ = n.engine.cold_round().await;
    ship_everything(&n.engine).await;
    let status = n.engine.status().await.unwrap();
    assert!(
        status.planes.iter().all(|p| p.backlog.segments == 0),
        "{status:?}"
    );
    let b = &status.buckets[0];
    assert_eq!(b.shipped_seq, Some(b.head_seq));
    for (key, data) in &objects {
        assert_eq!(&get(&n.engine, "b", key).await.unwrap(), data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_remote_reads_fail_the_block_naming_it_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    // Data stored as is, so the test can find a block's bytes remotely.
    let config = || {
        let mut c = cold_config(&r, Some(Duration::ZERO));
        c.data.compression = Compression::Never;
        c
    };
    let n = node(dir.path(), config()).await;
    let objects = write_objects(&n.engine).await;
    ship_everything(&n.engine).await;

    // A short ranged read: the block fails, naming its CID.
    r.truncate_reads(true);
    let (key, _) = &objects[2];
    let err = get(&n.engine, "b", key).await.unwrap_err();
    let cid = err
        .unreadable_block()
        .map(|b| *b.cid())
        .expect("a block error");
    let v = n.engine.object("b", key, None).await.unwrap();
    assert_eq!(Some(cid), v.manifest.body, "{err}");
    r.heal();

    // A slow remote: reads time out, then work again.
    r.set_delay(Some(Duration::from_secs(2)));
    let (key6, data6) = &objects[6];
    let err = get(&n.engine, "b", key6).await.unwrap_err();
    assert!(err.unreadable_block().is_some(), "{err}");
    r.heal();
    assert_eq!(&get(&n.engine, "b", key6).await.unwrap(), data6);

    // One altered byte in the remote copy of object 4's block.
    let (key4, data4) = &objects[4];
    let seg = n
        .index
        .segments("n1")
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.plane == "data")
        .find(|s| {
            let stored = std::fs::read(rdir.path().join(&s.remote_key)).unwrap();
            stored.windows(64).any(|w| w == &data4[1000..1064])
        })
        .expect("the segment holding object 4");
    let stored = std::fs::read(rdir.path().join(&seg.remote_key)).unwrap();
    let at = stored
        .windows(64)
        .position(|w| w == &data4[1000..1064])
        .unwrap();
    r.alter(&seg.remote_key, at as u64 + 10);
    // Fresh engine: nothing of it is in a cache.
    drop(n);
    let n = node(dir.path(), config()).await;
    let err = get(&n.engine, "b", key4).await.unwrap_err();
    let bad = err
        .unreadable_block()
        .map(|b| *b.cid())
        .expect("a block error");
    assert!(err.to_string().contains(&bad.to_string()), "{err}");
    for (key, data) in objects.iter().filter(|(k, _)| k != key4) {
        assert_eq!(&get(&n.engine, "b", key).await.unwrap(), data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_remote_deletes_are_retried_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    let n = node(dir.path(), cold_config(&r, None)).await;
    let keys = ["billet/v1/n1/data/junk.car", "billet/v1/n1/data/junk.idx"];
    for k in keys {
        r.put(
            k,
            billet_remote::Body::Bytes(Bytes::from_static(b"x")),
            Default::default(),
        )
        .await
        .unwrap();
    }
    n.index
        .put_segment(&RemoteSegment {
            node: "n1".into(),
            plane: "data".into(),
            id: 999_999,
            state: RemoteState::Shipped,
            bytes: 1,
            stored_bytes: 1,
            encoding: "identity".into(),
            remote_key: keys[0].into(),
            sidecar_key: keys[1].into(),
            sha256: None,
            shipped_ms: 0,
        })
        .await
        .unwrap();
    n.index
        .forget_segments("n1", &[("data".into(), 999_999)], now_ms())
        .await
        .unwrap();
    assert_eq!(n.index.pending_deletes().await.unwrap(), 2);
    r.set_down(true);
    let _ = n.engine.cold_round().await;
    assert_eq!(n.index.pending_deletes().await.unwrap(), 2);
    let waiting = n.index.due_deletes(i64::MAX, 10).await.unwrap();
    assert!(
        waiting
            .iter()
            .all(|d| d.attempts == 1 && d.last_error.is_some())
    );
    assert!(
        n.index.due_deletes(now_ms(), 10).await.unwrap().is_empty(),
        "a failed delete waits before its next try"
    );
    r.set_down(false);
    // Due now (the test does not wait out the backoff).
    for d in &waiting {
        n.index
            .retry_delete(d.id, 0, "test: due now")
            .await
            .unwrap();
    }
    n.engine.cold_round().await.unwrap();
    assert_eq!(n.index.pending_deletes().await.unwrap(), 0);
    for k in keys {
        assert_eq!(r.size(k).await.unwrap(), None, "{k} still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_disk_budget_with_nothing_to_evict_refuses_writes_until_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    let mut c = cold_config(&r, None);
    c.data.disk_budget = Some(256 << 10);
    let n = node(dir.path(), c).await;
    n.engine.create_bucket("b", "o").await.unwrap();
    r.set_down(true);
    for i in 0..4 {
        put(&n.engine, "b", &format!("k{i}"), &noise(i, 300_000))
            .await
            .unwrap();
    }
    n.engine.log().seal_all().unwrap();
    let _ = n.engine.cold_round().await;
    assert!(n.engine.status().await.unwrap().planes[0].over_budget);
    match put(&n.engine, "b", "refused", b"x").await {
        Err(EngineError::SlowDown(why)) => assert!(why.contains("budget"), "{why}"),
        other => panic!("{other:?}"),
    }
    r.set_down(false);
    n.engine.cold_round().await.unwrap();
    let status = n.engine.status().await.unwrap();
    assert!(!status.planes[0].over_budget, "{status:?}");
    assert!(status.planes[0].local_bytes <= 256 << 10 || status.planes[0].evicted.segments > 0);
    put(&n.engine, "b", "accepted", b"x").await.unwrap();
    for i in 0..4 {
        assert_eq!(
            get(&n.engine, "b", &format!("k{i}")).await.unwrap(),
            noise(i, 300_000)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_rebuilt_from_the_remote_up_to_its_shipped_heads() {
    let dir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let r = remote(rdir.path());
    let n = node(dir.path(), cold_config(&r, None)).await;
    let objects = write_objects(&n.engine).await;
    n.engine.create_bucket("second", "owner-2").await.unwrap();
    put(&n.engine, "second", "x", b"in the second bucket")
        .await
        .unwrap();
    ship_everything(&n.engine).await;
    let head = n.engine.bucket("b").await.unwrap();
    let mmr = n.index.mmr_size("b").await.unwrap();
    // Acknowledged after the last shipping: not claimed by the rebuild.
    put(&n.engine, "b", "late", b"after the shipped head")
        .await
        .unwrap();
    drop(n);

    let fresh = tempfile::tempdir().unwrap();
    let index: Arc<dyn Index> =
        Arc::new(SqliteIndex::open(SqliteConfig::new(fresh.path().join("index"))).unwrap());
    let cold = cold_config(&r, None);
    let plan = prepare_recovery(&cold, &fresh.path().join("log"), index.as_ref())
        .await
        .unwrap();
    assert_eq!(plan.heads.buckets.len(), 2);
    let mut config = EngineConfig::new(fresh.path());
    config.log = small_log();
    config.cold = Some(cold.clone());
    let e = Engine::open(config, index.clone()).await.unwrap();
    for b in &plan.heads.buckets {
        let progress = Arc::new(RestoreProgress::default());
        let report = e.restore_bucket(b, progress.clone()).await.unwrap();
        assert!(report.problems.is_empty());
        assert!(progress.blocks.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
    let got = e.bucket("b").await.unwrap();
    assert_eq!(
        (got.head, got.seq, got.owner.as_str()),
        (head.head, head.seq, "owner-1")
    );
    assert_eq!(
        index.mmr_size("b").await.unwrap(),
        mmr,
        "the MMR is rebuilt as it was"
    );
    for (key, data) in &objects {
        assert_eq!(&get(&e, "b", key).await.unwrap(), data, "{key}");
    }
    assert!(matches!(
        e.object("b", "late", None).await,
        Err(EngineError::NoSuchKey(_))
    ));
    assert_eq!(
        get(&e, "second", "x").await.unwrap(),
        b"in the second bucket"
    );
    let report = e.fsck("b", false).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // New writes land in fresh segments above every remote id, and ship.
    put(&e, "b", "after recovery", b"new").await.unwrap();
    ship_everything(&e).await;
    let status = e.status().await.unwrap();
    assert!(status.planes.iter().all(|p| p.backlog.segments == 0));
    let b = status.buckets.iter().find(|b| b.bucket == "b").unwrap();
    assert_eq!(b.shipped_seq, Some(b.head_seq));
    // Recovery wants an empty directory.
    assert!(
        prepare_recovery(&cold, &fresh.path().join("log"), index.as_ref())
            .await
            .is_err()
    );
}
