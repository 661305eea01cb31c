//! MST throughput on a 1M-key tree: bulk build, a batch of 1,000 random
//! puts, and a single put. Run: `cargo bench -p billet-mst`.
//! Goals on the 2-core box: build >= 500k keys/s, batch >= 100k keys/s.

use std::time::Instant;

use billet_block::{Block, Cid, Codec, MemoryBlockStore};
use billet_mst::{Builder, Mst, Op};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;

const N: usize = 1_000_000;
const BATCH: usize = 1_000;

fn random_key(rng: &mut impl Rng) -> Vec<u8> {
    // Shaped like real object keys: a few prefixes, then a unique name.
    let dir = rng.random_range(0..64u32);
    let id: u64 = rng.random();
    format!("logs/{dir:02}/{id:016x}.json.gz").into_bytes()
}

fn value() -> Cid {
    *Block::new(Codec::DagCbor, &b"\xa1\x61a\x01"[..]).cid()
}

fn sorted_keys(n: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    let mut keys: Vec<Vec<u8>> = (0..n).map(|_| random_key(&mut rng)).collect();
    keys.sort();
    keys.dedup();
    keys
}

fn build(keys: &[Vec<u8>], v: Cid) -> (Cid, Vec<Block>) {
    let mut blocks = Vec::with_capacity(keys.len() / 2);
    let mut b = Builder::new();
    for k in keys {
        b.push(k, v, &mut |blk| blocks.push(blk))
            .expect("sorted valid keys");
    }
    let root = b.finish(&mut |blk| blocks.push(blk));
    (root, blocks)
}

fn bench(c: &mut Criterion) {
    let v = value();
    let keys = sorted_keys(N);
    let n = keys.len();

    let mut g = c.benchmark_group("mst_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("bulk_build", |b| b.iter(|| build(&keys, v)));
    g.finish();

    let (root, blocks) = build(&keys, v);
    let node_count = blocks.len();
    let store = MemoryBlockStore::new();
    store.put_all(blocks);
    let mst = Mst::new(&store);
    let other = *Block::new(Codec::DagCbor, &b"\xa1\x61a\x02"[..]).cid();

    let mut g = c.benchmark_group("mst_1M");
    g.sample_size(20);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("apply_1000_random_puts", |b| {
        b.iter_batched(
            || {
                let mut rng = rand::rng();
                (0..BATCH)
                    .map(|_| Op::put(random_key(&mut rng), other))
                    .collect::<Vec<_>>()
            },
            |ops| mst.apply(&root, ops).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_one_put", |b| {
        b.iter_batched(
            || vec![Op::put(random_key(&mut rand::rng()), other)],
            |ops| mst.apply(&root, ops).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // A plain summary in the units the issue asks for.
    let t = Instant::now();
    let (root2, _) = build(&keys, v);
    let build_s = t.elapsed().as_secs_f64();
    assert_eq!(root, root2);
    let mut rng = rand::rng();
    let mut written = 0usize;
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        let ops = (0..BATCH)
            .map(|_| Op::put(random_key(&mut rng), other))
            .collect();
        written += mst.apply(&root, ops).expect("apply").blocks.len();
    }
    let batch_s = t.elapsed().as_secs_f64() / rounds as f64;
    let t = Instant::now();
    let singles = 200;
    for _ in 0..singles {
        let ops = vec![Op::put(random_key(&mut rng), other)];
        std::hint::black_box(mst.apply(&root, ops).expect("apply"));
    }
    let one_us = t.elapsed().as_secs_f64() * 1e6 / singles as f64;
    println!(
        "{n} keys, {node_count} nodes: bulk build {:.0} keys/s; batch of {BATCH} puts {:.0} keys/s, {:.2} nodes written per key; one put {:.1} us",
        n as f64 / build_s,
        BATCH as f64 / batch_s,
        written as f64 / (rounds * BATCH) as f64,
        one_us
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
