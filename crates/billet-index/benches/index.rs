//! Index throughput on both backends. Run: `cargo bench -p billet-index`
//! (PostgreSQL on BILLET_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/test; skipped if unreachable).
//!
//! 1. commits of 256 new object rows: rows/s;
//! 2. ListObjectsV2 pages of 1000 over a 1M-key bucket: keys/s;
//! 3. delimiter listing over 10,000 folders of 100 keys: time per page of
//!    1000 common prefixes against a no-delimiter page of 1000 keys.
//!    Goal: <= 3x on both backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billet_block::{Block, Cid, Codec};
use billet_index::*;
use billet_records::{BucketSettings, Manifest};

const FOLDERS: usize = 10_000;
const PER_FOLDER: usize = 100;

fn cid(tag: &str) -> Cid {
    *Block::new(Codec::DagCbor, tag.as_bytes().to_vec()).cid()
}

fn version(key: String, body: Cid) -> ObjectVersion {
    let m = Manifest::new(
        key.clone(),
        body,
        4096,
        "0123456789abcdef0123456789abcdef",
        [3; 32],
        1_763_000_000_000,
    );
    ObjectVersion {
        manifest_cid: *m.to_block().expect("manifest").cid(),
        key,
        version_id: NULL_VERSION.into(),
        is_latest: true,
        manifest: m,
        order: 0,
    }
}

fn state(name: &str) -> BucketState {
    BucketState {
        name: name.into(),
        owner: "bench".into(),
        created_ms: 0,
        head: cid(name),
        seq: 0,
        settings: BucketSettings::default(),
    }
}

type Prepare = Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

/// `prepare` runs after the bulk load (PostgreSQL: VACUUM ANALYZE, which
/// autovacuum would do in production, so index-only scans can skip the heap).
async fn bench(ix: Arc<dyn Index>, label: &str, prepare: Option<Prepare>) {
    let body = *Block::new(Codec::Raw, vec![0u8; 16]).cid();

    // 1. Commits of 256 new rows.
    ix.create_bucket(&state("commits")).await.expect("bucket");
    let mut head = cid("commits");
    let batches = 200;
    let start = Instant::now();
    for b in 0..batches {
        let changes = (0..256)
            .map(|i| {
                let v = version(format!("obj/{b:05}/{i:03}"), body);
                RowChange::Put {
                    key: v.key,
                    version_id: v.version_id,
                    manifest_cid: v.manifest_cid,
                    manifest: v.manifest,
                }
            })
            .collect();
        let next = cid(&format!("commits-{b}"));
        ix.commit(CommitBatch {
            bucket: "commits".into(),
            expected_head: head,
            head: next,
            seq: b + 1,
            settings: None,
            changes,
            completed_uploads: vec![],
            mmr: vec![],
            commits: vec![],
        })
        .await
        .expect("commit");
        head = next;
    }
    let rows_s = (batches * 256) as f64 / start.elapsed().as_secs_f64();
    println!("[{label}] commit batches of 256 rows: {rows_s:.0} rows/s");

    // The 1M-key bucket: 10,000 folders of 100 keys.
    ix.create_bucket(&state("big")).await.expect("bucket");
    let start = Instant::now();
    let rows = (0..FOLDERS).flat_map(move |f| {
        (0..PER_FOLDER).map(move |k| Ok(version(format!("dir{f:05}/file{k:03}"), body)))
    });
    let n = ix
        .rebuild(
            "big",
            cid("big-1"),
            1,
            &BucketSettings::default(),
            Box::new(rows),
        )
        .await
        .expect("load");
    println!(
        "[{label}] loaded {n} keys in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if let Some(prepare) = &prepare {
        prepare().await;
    }

    // 2. Pages of 1000 over the whole bucket.
    let start = Instant::now();
    let mut after = None;
    let mut keys = 0;
    let mut pages = 0;
    let mut page_times = Vec::new();
    loop {
        let t = Instant::now();
        let page = ix
            .list_objects(
                "big",
                &ListQuery {
                    after: after.clone(),
                    max_keys: 1000,
                    ..Default::default()
                },
            )
            .await
            .expect("list");
        page_times.push(t.elapsed());
        keys += page.objects.len();
        pages += 1;
        if !page.truncated {
            break;
        }
        after = page.next_after;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "[{label}] ListObjectsV2 x1000 over {keys} keys: {:.0} keys/s ({pages} pages)",
        keys as f64 / secs
    );

    // 3. Delimiter pages (1000 common prefixes) against plain pages.
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let plain = median(page_times);
    let mut delim_times = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let t = Instant::now();
        let page = ix
            .list_objects(
                "big",
                &ListQuery {
                    delimiter: Some("/".into()),
                    after: after.clone(),
                    max_keys: 1000,
                    ..Default::default()
                },
            )
            .await
            .expect("list");
        delim_times.push(t.elapsed());
        assert_eq!(page.prefixes.len(), 1000);
        after = page.next_after;
    }
    let delim = median(delim_times);
    println!(
        "[{label}] page of 1000: plain {:.2} ms, delimiter (1000 folders) {:.2} ms, ratio {:.2}x",
        plain.as_secs_f64() * 1e3,
        delim.as_secs_f64() * 1e3,
        delim.as_secs_f64() / plain.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteIndex::open(SqliteConfig::new(dir.path())).expect("sqlite");
    rt.block_on(bench(Arc::new(sqlite), "sqlite", None));

    let url = std::env::var("BILLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("billet_bench_{}", std::process::id());
    rt.block_on(async {
        match PgIndex::open(PgConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 4,
        })
        .await
        {
            Ok(pg) => {
                let (url2, schema2) = (url.clone(), schema.clone());
                let prepare: Prepare = Box::new(move || {
                    let (url, schema) = (url2.clone(), schema2.clone());
                    Box::pin(async move {
                        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                            .await
                            .expect("connect");
                        tokio::spawn(conn);
                        client
                            .batch_execute(&format!("VACUUM ANALYZE {schema}.versions"))
                            .await
                            .expect("vacuum");
                    })
                });
                bench(Arc::new(pg.clone()), "postgres", Some(prepare)).await;
                pg.drop_schema(&schema).await.expect("drop schema");
            }
            Err(e) => println!("[postgres] skipped: {url} unreachable ({e})"),
        }
    });
}
