#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use billet_block::{Block, BlockError, BlockStore, Codec, encode_dag_cbor};
use billet_log::{Log, LogConfig, LogError, PlaneConfig, PlaneKind, SegmentState};

fn raw(n: u64, len: usize) -> Block {
    let mut v = vec![(n % 251) as u8; len.max(8)];
    v[..8].copy_from_slice(&n.to_le_bytes());
    Block::new(Codec::Raw, v)
}

fn cat(n: u64) -> Block {
    encode_dag_cbor(&("catalog", n)).unwrap()
}

fn small_segments() -> LogConfig {
    LogConfig {
        data: PlaneConfig {
            seal_bytes: 64 << 10,
            seal_after: Duration::from_secs(3600),
        },
        catalog: PlaneConfig {
            seal_bytes: 4 << 10,
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

fn seg_path(dir: &Path, plane: &str, id: u64) -> std::path::PathBuf {
    dir.join(plane).join(format!("{id:020}.car"))
}

#[test]
fn appended_blocks_read_back_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let rt = rt();
    let data: Vec<Block> = (0..10).map(|i| raw(i, 3000)).collect();
    let catalog: Vec<Block> = (0..10).map(cat).collect();
    rt.block_on(log.append(&data, &catalog)).unwrap();
    for b in data.iter().chain(&catalog) {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
        assert!(log.has(b.cid()).unwrap());
    }
    let before: u64 = log.segments().iter().map(|s| s.bytes).sum();
    rt.block_on(log.append(&data, &catalog)).unwrap();
    let after: u64 = log.segments().iter().map(|s| s.bytes).sum();
    assert_eq!(
        before, after,
        "blocks already in the log are not written again"
    );
    let missing = raw(99, 10);
    assert!(matches!(log.get(missing.cid()), Err(BlockError::Missing(c)) if c == *missing.cid()));
}

#[test]
fn segments_seal_by_size_and_by_age_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut config = small_segments();
    config.catalog.seal_after = Duration::from_millis(50);
    let blocks: Vec<Block> = (0..40).map(|i| raw(i, 10_000)).collect();
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        for b in &blocks {
            rt.block_on(log.append(std::slice::from_ref(b), &[cat(1)]))
                .unwrap();
        }
        let sealed = log
            .segments()
            .iter()
            .filter(|s| s.plane == PlaneKind::Data && s.state == SegmentState::Sealed)
            .count();
        assert!(sealed >= 5, "400 KB in 64 KiB segments: {sealed} sealed");
        std::thread::sleep(Duration::from_millis(80));
        log.seal_due().unwrap();
        let open_catalog = log
            .segments()
            .into_iter()
            .find(|s| s.plane == PlaneKind::Catalog && s.state == SegmentState::Open)
            .unwrap();
        assert_eq!(
            open_catalog.blocks, 0,
            "the idle catalog segment sealed by age"
        );
        for s in log
            .segments()
            .iter()
            .filter(|s| s.state == SegmentState::Sealed)
        {
            assert!(
                s.path.with_extension("idx").exists(),
                "sidecar for {}",
                s.path.display()
            );
        }
    }
    let log = Log::open(dir.path(), config).unwrap();
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert_eq!(log.get(cat(1).cid()).unwrap(), cat(1).data());
}

#[test]
fn missing_or_short_sidecars_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..30).map(|i| raw(i, 10_000)).collect();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        for b in &blocks {
            rt.block_on(log.append(std::slice::from_ref(b), &[]))
                .unwrap();
        }
        log.seal_all().unwrap();
    }
    let idx0 = dir.path().join("data").join(format!("{:020}.idx", 0));
    let full = std::fs::read(&idx0).unwrap();
    std::fs::remove_file(&idx0).unwrap();
    let idx1 = dir.path().join("data").join(format!("{:020}.idx", 1));
    let bytes = std::fs::read(&idx1).unwrap();
    std::fs::write(&idx1, &bytes[..bytes.len() / 2]).unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for b in &blocks {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert_eq!(std::fs::read(&idx0).unwrap(), full, "rebuilt byte for byte");
    assert_eq!(std::fs::read(&idx1).unwrap().len(), bytes.len());
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let kept: Vec<Block> = (0..5).map(|i| raw(i, 2000)).collect();
    let len_before;
    {
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        rt.block_on(log.append(&kept, &[])).unwrap();
        len_before = std::fs::metadata(seg_path(dir.path(), "data", 0))
            .unwrap()
            .len();
    }
    // A crash mid-append: half a frame, then a frame whose block is cut.
    let seg = seg_path(dir.path(), "data", 0);
    let torn = raw(77, 5000);
    let mut frame = billet_car::frame_prefix(torn.cid(), torn.len());
    frame.extend_from_slice(&torn.data()[..1000]);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&frame);
    std::fs::write(&seg, &bytes).unwrap();

    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len_before,
        "torn tail cut"
    );
    for b in &kept {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert!(!log.has(torn.cid()).unwrap());
    rt.block_on(log.append(std::slice::from_ref(&torn), &[]))
        .unwrap();
    assert_eq!(log.get(torn.cid()).unwrap(), torn.data());
}

#[test]
fn a_block_failing_its_hash_at_the_tail_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..5).map(|i| raw(i, 2000)).collect();
    {
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        rt.block_on(log.append(&blocks, &[])).unwrap();
    }
    let seg = seg_path(dir.path(), "data", 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for b in &blocks[..4] {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert!(!log.has(blocks[4].cid()).unwrap());
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_caught_on_read_and_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..20).map(|i| raw(i, 10_000)).collect();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    rt.block_on(log.append(&blocks, &[])).unwrap();
    log.seal_all().unwrap();
    // Flip a byte inside the data of block 2 (in sealed segment 0).
    let seg = seg_path(dir.path(), "data", 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let needle = &blocks[2].data()[..16];
    let at = bytes.windows(16).position(|w| w == needle).unwrap() + 100;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    // On read: an error naming the CID, never the wrong bytes.
    match log.get(blocks[2].cid()) {
        Err(BlockError::HashMismatch { cid }) => assert_eq!(cid, *blocks[2].cid()),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert_eq!(log.get(blocks[3].cid()).unwrap(), blocks[3].data());
    drop(log);

    // On open: start-up stops, naming the file and the frame's offset.
    match Log::open(dir.path(), small_segments()) {
        Err(LogError::DamagedSegment {
            path,
            offset,
            reason,
        }) => {
            assert_eq!(path, seg);
            assert!(offset > 0 && offset < at as u64, "offset {offset}");
            assert!(reason.contains(&blocks[2].cid().to_string()), "{reason}");
        }
        other => panic!("expected DamagedSegment, got {other:?}"),
    }
    // With repair it opens, says what it dropped, and keeps the rest.
    let mut config = small_segments();
    config.repair = true;
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.repairs().len(), 1, "{:?}", log.repairs());
    assert!(!log.has(blocks[2].cid()).unwrap());
    assert_eq!(log.get(blocks[3].cid()).unwrap(), blocks[3].data());
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let rt = rt();
    let batches = 64 * 20;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20u64 {
                    log.append(&[raw(w * 1000 + i, 4096)], &[cat(w * 1000 + i)])
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let (d, c) = log.fsyncs();
    assert!(
        d + c < 2 * batches,
        "{d} + {c} fsyncs for {batches} batches"
    );
    for w in 0..64u64 {
        for i in 0..20u64 {
            assert!(log.has(raw(w * 1000 + i, 4096).cid()).unwrap());
        }
    }
}

#[test]
fn blocks_over_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let big = Block::new(Codec::Raw, vec![0u8; (4 << 20) + 1]);
    assert!(matches!(
        log.write_data(&[big]),
        Err(LogError::BlockTooLarge { .. })
    ));
}

#[test]
fn a_read_only_open_sees_everything_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let blocks: Vec<Block> = (0..30).map(|i| raw(i, 10_000)).collect();
    let writer = Log::open(dir.path(), small_segments()).unwrap();
    for b in &blocks {
        rt.block_on(writer.append(std::slice::from_ref(b), &[cat(7)]))
            .unwrap();
    }
    // A torn tail the writer has not yet seen must survive a read-only open.
    let seg = writer
        .segments()
        .into_iter()
        .find(|s| s.plane == PlaneKind::Data && s.state == SegmentState::Open)
        .unwrap()
        .path;
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0x80, 0x80]);
    std::fs::write(&seg, &bytes).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(d.join("data"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let ro = Log::open(
        dir.path(),
        LogConfig {
            read_only: true,
            ..small_segments()
        },
    )
    .unwrap();
    for b in blocks.iter().chain([&cat(7)]) {
        assert_eq!(ro.get(b.cid()).unwrap(), b.data());
    }
    assert!(ro.write_data(&[raw(99, 10)]).is_err());
    assert!(ro.seal_all().is_err());
    drop(ro);
    assert_eq!(
        listing(dir.path()),
        before,
        "a read-only open changed files"
    );
}
