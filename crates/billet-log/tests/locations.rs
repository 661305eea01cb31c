#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Block locations on disk (location runs) and what the log does for the
//! collector: hits, retiring, dropping segments.

use std::collections::HashMap;
use std::time::Duration;

use billet_block::{Block, BlockError, BlockStore, Codec, digest_key, encode_dag_cbor};
use billet_log::{Log, LogConfig, PlaneConfig, PlaneKind, SegmentState};
use rand::{Rng, SeedableRng};

fn raw(n: u64, len: usize) -> Block {
    let mut v = vec![(n % 251) as u8; len.max(8)];
    v[..8].copy_from_slice(&n.to_le_bytes());
    Block::new(Codec::Raw, v)
}

fn cat(n: u64) -> Block {
    encode_dag_cbor(&("catalog", n)).unwrap()
}

fn tiny_segments() -> LogConfig {
    LogConfig {
        data: PlaneConfig {
            seal_bytes: 16 << 10,
            seal_after: Duration::from_secs(3600),
        },
        catalog: PlaneConfig {
            seal_bytes: 2 << 10,
            seal_after: Duration::from_secs(3600),
        },
        ..LogConfig::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sealed(log: &Log, plane: PlaneKind) -> Vec<u64> {
    log.segments()
        .into_iter()
        .filter(|s| s.plane == plane && s.state != SegmentState::Open)
        .map(|s| s.id)
        .collect()
}

/// Blocks written over hundreds of seals stay findable through the
/// runs, the runs merge so few remain, memory holds only the open
/// segments' blocks, and a reopen finds everything again from the runs.
#[test]
fn locations_survive_seals_merges_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..6000u64)
        .map(|n| if n % 3 == 0 { cat(n) } else { raw(n, 200) })
        .collect();
    {
        let log = Log::open(dir.path(), tiny_segments()).unwrap();
        for chunk in blocks.chunks(37) {
            rt.block_on(
                log.append(
                    &chunk
                        .iter()
                        .filter(|b| b.codec() == Codec::Raw)
                        .cloned()
                        .collect::<Vec<_>>(),
                    &chunk
                        .iter()
                        .filter(|b| b.codec() != Codec::Raw)
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
            )
            .unwrap();
        }
        log.settle_locations();
        let (hot, runs, _) = log.location_shape();
        let segments = log.segments().len();
        assert!(segments > 80, "{segments} segments");
        assert!(runs < 16, "{runs} runs for {segments} segments");
        assert!(hot < 200, "{hot} blocks still in memory");
        for b in &blocks {
            assert_eq!(log.get(b.cid()).unwrap(), b.data());
        }
        assert!(!log.has(raw(99_999, 200).cid()).unwrap());
    }
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let (hot, runs, mem) = log.location_shape();
    assert!(hot < 200, "{hot} blocks in memory after reopening");
    assert!(runs < 16);
    assert!(mem > 0);
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

/// A run that fails its checksum is dropped and its segments' sidecars
/// are read again.
#[test]
fn a_damaged_run_is_rebuilt_from_the_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..500).map(|n| raw(n, 300)).collect();
    {
        let log = Log::open(dir.path(), tiny_segments()).unwrap();
        for chunk in blocks.chunks(10) {
            rt.block_on(log.append(chunk, &[])).unwrap();
        }
        log.seal_all().unwrap();
        log.settle_locations();
    }
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("locations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!runs.is_empty());
    for r in &runs {
        let mut b = std::fs::read(r).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        std::fs::write(r, b).unwrap();
    }
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

/// What the collector does, against a model: random blocks, some dead;
/// each pass retires the sealed segments, copies the live blocks (a
/// write of a block in a retiring segment stores a fresh copy), drops
/// the segments; live blocks always read back, dead ones are gone, and
/// the same holds after a reopen.
#[test]
fn collections_copy_what_is_live_and_drop_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut live: HashMap<billet_block::Cid, Block> = HashMap::new();
    let mut next = 0u64;
    let mut log = Log::open(dir.path(), tiny_segments()).unwrap();
    for round in 0..6 {
        let fresh: Vec<Block> = (0..300)
            .map(|_| {
                next += 1;
                raw(next, rng.random_range(50..900))
            })
            .collect();
        rt.block_on(log.append(&fresh, &[])).unwrap();
        for b in fresh {
            live.insert(*b.cid(), b);
        }
        // A third of what is live dies.
        let dead: Vec<_> = live
            .keys()
            .filter(|_| rng.random_bool(0.33))
            .copied()
            .collect();
        for c in &dead {
            live.remove(c);
        }
        log.seal_all().unwrap();
        let fence = log.begin_collection(1000).unwrap();
        let candidates: Vec<u64> = sealed(&log, PlaneKind::Data)
            .into_iter()
            .filter(|id| *id < fence.data)
            .collect();
        log.retire(PlaneKind::Data, &candidates).unwrap();
        let (hits, _) = log.take_hits();
        assert!(hits.is_empty(), "nothing wrote meanwhile");
        let copies: Vec<Block> = live.values().cloned().collect();
        rt.block_on(log.append(&copies, &[])).unwrap();
        log.drop_segments(PlaneKind::Data, &candidates).unwrap();
        log.end_collection();
        for b in live.values() {
            assert_eq!(log.get(b.cid()).unwrap(), b.data(), "round {round}");
        }
        for c in &dead {
            assert!(matches!(log.get(c), Err(BlockError::Missing(_))));
        }
        if round % 2 == 1 {
            drop(log);
            log = Log::open(dir.path(), tiny_segments()).unwrap();
            for b in live.values() {
                assert_eq!(log.get(b.cid()).unwrap(), b.data(), "reopened {round}");
            }
        }
    }
    // Only the live blocks' bytes are left, near enough.
    let on_disk: u64 = log.segments().iter().map(|s| s.bytes).sum();
    let live_bytes: u64 = live.values().map(|b| b.len() as u64 + 40).sum();
    assert!(
        on_disk < live_bytes * 2 + 8192,
        "{on_disk} on disk, {live_bytes} live"
    );
}

/// The dedup race, step by step: a block the collector's mark did not
/// reach is written again after the fence; the write deduplicates and
/// records a hit, so the collector keeps the block. Written after its
/// segment is retired, the write stores a fresh copy instead. Either way
/// the block survives the segment's removal.
#[test]
fn a_write_that_reuses_a_block_of_a_candidate_keeps_it_alive() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let (early, late) = (raw(1, 500), raw(2, 500));
    rt.block_on(log.append(&[early.clone(), late.clone()], &[]))
        .unwrap();
    log.seal_all().unwrap();
    let seg = sealed(&log, PlaneKind::Data)[0];
    let size_before: u64 = log.segments().iter().map(|s| s.bytes).sum();

    // The mark found neither block live.
    let fence = log.begin_collection(1000).unwrap();
    assert!(seg < fence.data);
    // A PUT reuses `early` before the segment retires: a hit, no copy.
    rt.block_on(log.append(std::slice::from_ref(&early), &[]))
        .unwrap();
    let size_after: u64 = log.segments().iter().map(|s| s.bytes).sum();
    assert_eq!(size_before, size_after, "deduplicated, not written");
    log.retire(PlaneKind::Data, &[seg]).unwrap();
    // ... and `late` after: it gets a copy of its own.
    rt.block_on(log.append(std::slice::from_ref(&late), &[]))
        .unwrap();
    let (hits, _) = log.take_hits();
    assert_eq!(hits, vec![digest_key(early.cid()).unwrap()]);
    // The collector copies what its mark and the hits call live.
    rt.block_on(log.append(std::slice::from_ref(&early), &[]))
        .unwrap();
    log.drop_segments(PlaneKind::Data, &[seg]).unwrap();
    log.end_collection();
    assert_eq!(log.get(early.cid()).unwrap(), early.data());
    assert_eq!(log.get(late.cid()).unwrap(), late.data());
    drop(log);
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    assert_eq!(log.get(early.cid()).unwrap(), early.data());
    assert_eq!(log.get(late.cid()).unwrap(), late.data());
}

/// A collection that stops after retiring a segment (a crash) leaves its
/// `.retiring` marker: the reopened log names it for the next collection,
/// and a segment whose block was written afresh is named too.
#[test]
fn segments_with_newer_copies_are_named_for_the_next_collection() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..3).map(|n| raw(n, 400)).collect();
    {
        let log = Log::open(dir.path(), tiny_segments()).unwrap();
        rt.block_on(log.append(&blocks, &[])).unwrap();
        log.seal_all().unwrap();
        assert!(log.superseded().is_empty());
        let seg = sealed(&log, PlaneKind::Data)[0];
        log.begin_collection(10).unwrap();
        log.retire(PlaneKind::Data, &[seg]).unwrap();
        // A write of one of its blocks stores a copy of its own.
        rt.block_on(log.append(&blocks[..1], &[])).unwrap();
        assert_eq!(log.superseded(), vec![(PlaneKind::Data, seg)]);
        // The collection stops here: no drop.
    }
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let seg = sealed(&log, PlaneKind::Data)[0];
    assert_eq!(log.superseded(), vec![(PlaneKind::Data, seg)]);
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    log.begin_collection(10).unwrap();
    log.retire(PlaneKind::Data, &[seg]).unwrap();
    rt.block_on(log.append(&blocks, &[])).unwrap();
    log.drop_segments(PlaneKind::Data, &[seg]).unwrap();
    log.end_collection();
    assert!(log.superseded().is_empty());
    drop(log);
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    assert!(
        log.superseded().is_empty(),
        "the marker went with the segment"
    );
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

/// A write of a block whose copy is in a retiring segment reuses another
/// copy when the log holds one, rather than adding a third.
#[test]
fn a_write_reuses_another_copy_of_a_block_being_collected() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let b = raw(9, 700);
    rt.block_on(log.append(std::slice::from_ref(&b), &[]))
        .unwrap();
    log.seal_all().unwrap();
    let first = sealed(&log, PlaneKind::Data)[0];
    // A collection that stops after retiring it leaves two copies.
    log.begin_collection(10).unwrap();
    log.retire(PlaneKind::Data, &[first]).unwrap();
    rt.block_on(log.append(std::slice::from_ref(&b), &[]))
        .unwrap();
    log.seal_all().unwrap();
    log.end_collection();
    log.settle_locations();
    drop(log);
    // The first segment's run is lost and written again at open, newer
    // than the second's: a lookup now finds the first copy first.
    let mut runs: Vec<_> = std::fs::read_dir(dir.path().join("locations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    std::fs::remove_file(&runs[0]).unwrap();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let size = |log: &Log| -> u64 { log.segments().iter().map(|s| s.bytes).sum() };
    let before = size(&log);
    // The next collection takes the first again: the write finds the
    // second copy.
    log.begin_collection(10).unwrap();
    log.retire(PlaneKind::Data, &[first]).unwrap();
    rt.block_on(log.append(std::slice::from_ref(&b), &[]))
        .unwrap();
    assert_eq!(size(&log), before, "no third copy");
    log.drop_segments(PlaneKind::Data, &[first]).unwrap();
    log.end_collection();
    assert_eq!(log.get(b.cid()).unwrap(), b.data());
}

/// Past the cap, hits stop being recorded and writes store copies.
#[test]
fn past_the_hit_cap_writes_store_copies() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let blocks: Vec<Block> = (0..5).map(|n| raw(n, 100)).collect();
    rt.block_on(log.append(&blocks, &[])).unwrap();
    log.seal_all().unwrap();
    let seg = sealed(&log, PlaneKind::Data)[0];
    log.begin_collection(2).unwrap();
    rt.block_on(log.append(&blocks, &[])).unwrap();
    log.retire(PlaneKind::Data, &[seg]).unwrap();
    let (hits, overflowed) = log.take_hits();
    assert_eq!(hits.len(), 2);
    assert!(overflowed);
    // Nothing but the hits is copied; the rest were written afresh.
    let keep: Vec<Block> = blocks
        .iter()
        .filter(|b| hits.contains(&digest_key(b.cid()).unwrap()))
        .cloned()
        .collect();
    rt.block_on(log.append(&keep, &[])).unwrap();
    log.drop_segments(PlaneKind::Data, &[seg]).unwrap();
    log.end_collection();
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

/// A body being staged holds the fence below the segment it started in.
#[test]
fn a_staging_body_holds_the_fence() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    let staging = log.staging();
    let started = log.open_segment(PlaneKind::Data);
    rt.block_on(log.append(&[raw(1, 1000)], &[])).unwrap();
    log.seal_all().unwrap();
    rt.block_on(log.append(&[raw(2, 1000)], &[])).unwrap();
    log.seal_all().unwrap();
    let fence = log.begin_collection(10).unwrap();
    assert_eq!(fence.data, started);
    log.end_collection();
    drop(staging);
    let fence = log.begin_collection(10).unwrap();
    assert_eq!(fence.data, log.open_segment(PlaneKind::Data));
    assert!(log.begin_collection(10).is_err(), "one at a time");
    log.end_collection();
}

/// A crash after a segment's `.retired` marker is durable: the next open
/// finishes removing it.
#[test]
fn a_retired_marker_is_honoured_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let b = raw(5, 700);
    {
        let log = Log::open(dir.path(), tiny_segments()).unwrap();
        rt.block_on(log.append(std::slice::from_ref(&b), &[]))
            .unwrap();
        log.seal_all().unwrap();
    }
    let seg = dir.path().join("data").join(format!("{:020}.car", 0));
    assert!(seg.exists());
    std::fs::write(
        dir.path().join("data").join(format!("{:020}.retired", 0)),
        b"",
    )
    .unwrap();
    let log = Log::open(dir.path(), tiny_segments()).unwrap();
    assert!(!seg.exists());
    assert!(!log.has(b.cid()).unwrap());
    let names: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("00000000000000000000.")),
        "{names:?}"
    );
}
