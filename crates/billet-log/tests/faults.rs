#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Fault injection: a file system that fails the N-th write or fsync.

use std::sync::Arc;

use billet_block::{Block, BlockStore, Codec, encode_dag_cbor};
use billet_log::fault::FaultyFs;
use billet_log::{Log, LogConfig, LogError, Receipt};

fn raw(n: u64, len: usize) -> Block {
    let mut v = vec![7u8; len.max(8)];
    v[..8].copy_from_slice(&n.to_le_bytes());
    Block::new(Codec::Raw, v)
}

fn cat(n: u64) -> Block {
    encode_dag_cbor(&("c", n)).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_failed_fsync_fails_every_batch_it_covered_and_no_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = Log::open_with(dir.path(), LogConfig::default(), Arc::new(fs.clone())).unwrap();
    let rt = rt();
    rt.block_on(log.append(&[raw(1, 100)], &[cat(1)])).unwrap();

    // Three batches written, none synced yet: one fsync will cover them all.
    let batches: Vec<(Block, Block)> = (10..13).map(|i| (raw(i, 5000), cat(i))).collect();
    let receipts: Vec<Receipt> = batches
        .iter()
        .map(|(d, c)| {
            log.write_data(std::slice::from_ref(d))
                .unwrap()
                .merge(log.write_catalog(std::slice::from_ref(c)).unwrap())
        })
        .collect();
    fs.fail_nth_sync(1);
    for r in &receipts {
        match rt.block_on(log.sync(*r)) {
            Err(LogError::SyncFailed { reason, .. }) => {
                assert!(reason.contains("fsync"), "{reason}")
            }
            other => panic!("expected SyncFailed, got {other:?}"),
        }
    }
    // Their unsynced bytes were cut off and forgotten.
    for (d, _) in &batches {
        assert!(!log.has(d.cid()).unwrap());
    }
    assert_eq!(log.get(raw(1, 100).cid()).unwrap(), raw(1, 100).data());

    // A batch written after the failure is acknowledged on its own bytes,
    // even when it repeats a failed batch's block.
    fs.heal();
    rt.block_on(log.append(&[batches[0].0.clone(), raw(20, 5000)], &[cat(20)]))
        .unwrap();
    assert!(log.has(batches[0].0.cid()).unwrap());
    drop(log);

    // Reopening with a healthy disk: acknowledged blocks are all there; the
    // failed batches' data blocks are not. (Their catalog blocks were never
    // synced for them, but a later catalog fsync may have carried them to
    // disk: unreferenced, unacknowledged and harmless.)
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for b in [
        raw(1, 100),
        cat(1),
        batches[0].0.clone(),
        raw(20, 5000),
        cat(20),
    ] {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    for (d, _) in &batches[1..] {
        assert!(!log.has(d.cid()).unwrap());
    }
}

#[test]
fn a_failed_write_fails_that_batch_and_leaves_no_partial_frame() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = Log::open_with(dir.path(), LogConfig::default(), Arc::new(fs.clone())).unwrap();
    let rt = rt();
    rt.block_on(log.append(&[raw(1, 100)], &[])).unwrap();
    let before: u64 = log.segments().iter().map(|s| s.bytes).sum();
    // Large blocks are written one by one: fail the second write (ENOSPC
    // after a short write).
    let big = [raw(2, 200_000), raw(3, 200_000)];
    fs.fail_nth_write(2);
    match rt.block_on(log.append(&big, &[])) {
        Err(LogError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    fs.heal();
    let after: u64 = log.segments().iter().map(|s| s.bytes).sum();
    assert_eq!(before, after, "the partial frames were cut off");
    assert!(!log.has(big[0].cid()).unwrap());
    rt.block_on(log.append(&big, &[])).unwrap();
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for b in big.iter().chain([&raw(1, 100)]) {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

#[test]
fn a_disk_that_stays_broken_poisons_the_plane_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = Log::open_with(dir.path(), LogConfig::default(), Arc::new(fs.clone())).unwrap();
    let rt = rt();
    rt.block_on(log.append(&[raw(1, 100)], &[])).unwrap();
    fs.set_sticky(true);
    fs.fail_nth_sync(1);
    assert!(rt.block_on(log.append(&[raw(2, 100)], &[])).is_err());
    // Cutting the tail needed an fsync too, which failed: nothing more is
    // accepted on this plane.
    assert!(matches!(
        rt.block_on(log.append(&[raw(3, 100)], &[])),
        Err(LogError::Poisoned { .. })
    ));
    drop(log);
    fs.heal();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.get(raw(1, 100).cid()).unwrap(), raw(1, 100).data());
    rt.block_on(log.append(&[raw(3, 100)], &[])).unwrap();
    assert!(log.has(raw(3, 100).cid()).unwrap());
}

#[test]
fn a_data_fsync_failure_keeps_the_catalog_from_being_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = Log::open_with(dir.path(), LogConfig::default(), Arc::new(fs.clone())).unwrap();
    let rt = rt();
    fs.fail_nth_sync(1);
    let err = rt
        .block_on(log.append(&[raw(5, 1000)], &[cat(5)]))
        .unwrap_err();
    assert!(
        matches!(err, LogError::SyncFailed { plane, .. } if plane == billet_log::PlaneKind::Data)
    );
    // The catalog fsync never ran for this batch.
    assert_eq!(log.fsyncs().1, 0);
}
