//! Commit history cost at 1k, 100k and 1M commits in one bucket, on both
//! index backends: appending one commit's MMR nodes (inside a commit
//! transaction, from the cached peaks) and building an inclusion proof
//! (O(log n) node reads), p50 of each; against a naive design that
//! rebuilds the MMR from all its leaves for each operation, at 100k.
//! Run: `cargo bench -p billet-engine --bench mmr` (PostgreSQL on
//! BILLET_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test;
//! skipped if unreachable). Prints times; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billet_block::{Block, Cid, Codec};
use billet_index::{BucketState, CommitBatch, Index, PgConfig, PgIndex, SqliteConfig, SqliteIndex};
use billet_mmr::{
    Hash, append, inclusion_path, leaf_count, leaf_hash, leaf_index, peaks, peaks_after,
};
use billet_records::BucketSettings;

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];
const SAMPLES: usize = 200;

fn cid(tag: &str) -> Cid {
    *Block::new(Codec::DagCbor, tag.as_bytes().to_vec()).cid()
}

fn leaf(n: u64) -> Hash {
    leaf_hash(&n.to_be_bytes())
}

struct Mmr {
    size: u64,
    peaks: Vec<Hash>,
    leaves: u64,
}

impl Mmr {
    fn push(&mut self, out: &mut Vec<(u64, Hash)>) {
        let added = append(self.size, &self.peaks, leaf(self.leaves)).expect("append");
        self.peaks = peaks_after(self.size, &self.peaks, &added).expect("peaks");
        self.size += added.len() as u64;
        self.leaves += 1;
        out.extend(added);
    }
}

async fn commit(ix: &dyn Index, bucket: &str, head: Cid, nodes: Vec<(u64, Hash)>) {
    ix.commit(CommitBatch {
        bucket: bucket.into(),
        expected_head: head,
        head,
        seq: 0,
        settings: None,
        changes: Vec::new(),
        completed_uploads: Vec::new(),
        mmr: nodes,
        commits: Vec::new(),
    })
    .await
    .expect("commit");
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Naive: read every leaf back and recompute the whole MMR.
async fn naive(ix: &dyn Index, bucket: &str, size: u64) -> Vec<Hash> {
    let leaves = leaf_count(size).expect("size");
    let idx: Vec<u64> = (0..leaves).map(leaf_index).collect();
    let mut values = Vec::with_capacity(leaves as usize);
    for chunk in idx.chunks(10_000) {
        for v in ix.mmr_nodes(bucket, chunk).await.expect("read") {
            values.push(v.expect("leaf"));
        }
    }
    let mut m = Mmr {
        size: 0,
        peaks: Vec::new(),
        leaves: 0,
    };
    let mut all = Vec::new();
    for v in values {
        let added = append(m.size, &m.peaks, v).expect("append");
        m.peaks = peaks_after(m.size, &m.peaks, &added).expect("peaks");
        m.size += added.len() as u64;
        all.extend(added.into_iter().map(|(_, h)| h));
    }
    all
}

async fn bench(ix: Arc<dyn Index>, label: &str) {
    let bucket = "history";
    let head = cid(bucket);
    ix.create_bucket(&BucketState {
        name: bucket.into(),
        owner: "bench".into(),
        created_ms: 0,
        head,
        seq: 0,
        settings: BucketSettings::default(),
    })
    .await
    .expect("bucket");
    let mut m = Mmr {
        size: 0,
        peaks: Vec::new(),
        leaves: 0,
    };
    let mut first_p50 = None;
    for target in SIZES {
        // Fill in large transactions up to the target.
        let t = Instant::now();
        while m.leaves < target - SAMPLES as u64 {
            let mut nodes = Vec::new();
            let upto = (m.leaves + 20_000).min(target - SAMPLES as u64);
            while m.leaves < upto {
                m.push(&mut nodes);
            }
            commit(ix.as_ref(), bucket, head, nodes).await;
        }
        let fill = t.elapsed();
        // One commit's append, as the pipeline does it.
        let mut appends = Vec::new();
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let mut nodes = Vec::new();
            m.push(&mut nodes);
            commit(ix.as_ref(), bucket, head, nodes).await;
            appends.push(t.elapsed());
        }
        // An inclusion proof for a random leaf.
        let mut proofs = Vec::new();
        for s in 0..SAMPLES as u64 {
            let e = (s * 7_919_993) % m.leaves;
            let t = Instant::now();
            let path = inclusion_path(m.size, leaf_index(e)).expect("path");
            let mut want = path.clone();
            want.extend(peaks(m.size).expect("peaks"));
            let got = ix.mmr_nodes(bucket, &want).await.expect("nodes");
            assert!(got.iter().all(Option::is_some));
            proofs.push(t.elapsed());
        }
        let (a, p) = (p50(appends), p50(proofs));
        let base = *first_p50.get_or_insert((a, p));
        println!(
            "[{label}] {target:>9} commits ({} nodes, filled in {:.1} s): append p50 {:.1} us ({:.2}x the 1k p50), proof p50 {:.1} us ({:.2}x)",
            m.size,
            fill.as_secs_f64(),
            a.as_secs_f64() * 1e6,
            a.as_secs_f64() / base.0.as_secs_f64(),
            p.as_secs_f64() * 1e6,
            p.as_secs_f64() / base.1.as_secs_f64(),
        );
        if target == 100_000 {
            // Naive: each append and each proof rebuilds from all leaves.
            let runs = 3;
            let t = Instant::now();
            for _ in 0..runs {
                let all = naive(ix.as_ref(), bucket, m.size).await;
                assert_eq!(all.len() as u64, m.size);
            }
            let naive_op = t.elapsed() / runs;
            println!(
                "[{label}] naive rebuild at {} commits: {:.1} ms per operation = {:.0}x the append p50, {:.0}x the proof p50",
                m.leaves,
                naive_op.as_secs_f64() * 1e3,
                naive_op.as_secs_f64() / a.as_secs_f64(),
                naive_op.as_secs_f64() / p.as_secs_f64(),
            );
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteIndex::open(SqliteConfig::new(dir.path())).expect("sqlite");
    rt.block_on(bench(Arc::new(sqlite), "sqlite"));
    let url = std::env::var("BILLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("billet_mmr_bench_{}", std::process::id());
    rt.block_on(async {
        match PgIndex::open(PgConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 4,
        })
        .await
        {
            Ok(pg) => {
                bench(Arc::new(pg.clone()), "postgres").await;
                pg.drop_schema(&schema).await.expect("drop schema");
            }
            Err(e) => println!("[postgres] skipped: {url} unreachable ({e})"),
        }
    });
}
