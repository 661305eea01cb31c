//! Group commit and sequential throughput of the log, each against a
//! baseline measured in the same run on the same disk.
//!
//! 1. 64 concurrent writers, each appending 4 KiB blocks and waiting for
//!    durability, against 64 writers that each write + fsync under a lock.
//!    Goal: >= 20x the baseline's acknowledged blocks/s.
//! 2. One writer streaming 1 MiB blocks (as a PUT does) with a durable sync
//!    every 64 MiB, against writing the same bytes to a plain file with the
//!    same fsyncs. Goal: >= 0.8x.
//!
//! Run: `cargo bench -p billet-log` (set BILLET_BENCH_DIR to pick the disk;
//! default: the system temp dir). BENCH_SECS sets the duration of part 1.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_block::{Block, Codec};
use billet_log::{Log, LogConfig};

const WRITERS: usize = 64;

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("BILLET_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn block(writer: usize, n: u64, size: usize) -> Block {
    let mut data = vec![0u8; size];
    data[..8].copy_from_slice(&(writer as u64).to_le_bytes());
    data[8..16].copy_from_slice(&n.to_le_bytes());
    data[16..24].copy_from_slice(&rand::random::<u64>().to_le_bytes());
    Block::new(Codec::Raw, data)
}

async fn group_commit(secs: u64) -> (f64, f64) {
    let dir = tempdir();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).expect("open"));
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let (fs0, _) = log.fsyncs();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let b = block(w, n, 4096);
                log.append(&[b], &[]).await.expect("append");
                acked.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let secs = start.elapsed().as_secs_f64();
    let (fs1, _) = log.fsyncs();
    (
        acked.load(Ordering::Relaxed) as f64 / secs,
        (fs1 - fs0) as f64 / secs,
    )
}

async fn fsync_each(secs: u64) -> f64 {
    let dir = tempdir();
    let file = Arc::new(Mutex::new((
        File::create(dir.path().join("plain")).expect("create"),
        0u64,
    )));
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let file = file.clone();
        let acked = acked.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut n = 0;
            while Instant::now() < deadline {
                let b = block(w, n, 4096);
                let mut f = file.lock().expect("lock");
                let at = f.1;
                f.0.write_all_at(b.data(), at).expect("write");
                f.0.sync_data().expect("fsync");
                f.1 += b.len() as u64;
                drop(f);
                acked.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    acked.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

const MIB: usize = 1 << 20;
const OBJECT: usize = 64;
const TOTAL: usize = 1024;

async fn log_sequential(blocks: &[Block]) -> f64 {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let start = Instant::now();
    for chunk in blocks.chunks(OBJECT) {
        let mut receipt = billet_log::Receipt::default();
        for b in chunk {
            receipt = receipt.merge(log.write_data(std::slice::from_ref(b)).expect("write"));
        }
        log.sync(receipt).await.expect("sync");
    }
    (TOTAL * MIB) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn plain_sequential(blocks: &[Block]) -> f64 {
    let dir = tempdir();
    let f = File::create(dir.path().join("plain")).expect("create");
    let start = Instant::now();
    let mut at = 0u64;
    for chunk in blocks.chunks(OBJECT) {
        for b in chunk {
            f.write_all_at(b.data(), at).expect("write");
            at += b.len() as u64;
        }
        f.sync_data().expect("fsync");
    }
    (TOTAL * MIB) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let (blocks_s, fsyncs_s) = rt.block_on(group_commit(secs));
    let base = if std::env::var("BENCH_PART").as_deref() == Ok("1") {
        1.0
    } else {
        rt.block_on(fsync_each(secs))
    };
    println!(
        "64 writers x 4 KiB: log {blocks_s:.0} blocks/s with {fsyncs_s:.0} fsyncs/s; fsync-per-append baseline {base:.0} blocks/s; ratio {:.1}x",
        blocks_s / base
    );

    if std::env::var("BENCH_PART").as_deref() == Ok("1") {
        return;
    }
    let blocks: Vec<Block> = (0..TOTAL).map(|i| block(0, i as u64, MIB)).collect();
    let mut best_log = 0f64;
    let mut best_plain = 0f64;
    for _ in 0..3 {
        best_plain = best_plain.max(plain_sequential(&blocks));
        best_log = best_log.max(rt.block_on(log_sequential(&blocks)));
    }
    println!(
        "1 writer x 1 MiB blocks, fsync per {OBJECT} MiB, {TOTAL} MiB: log {best_log:.0} MB/s; plain file {best_plain:.0} MB/s; ratio {:.2}x",
        best_log / best_plain
    );
}
