#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Evicted segments: their files gone, their blocks read through a cold
//! store and checked against their CIDs, across reopening.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use billet_block::{Block, BlockError, BlockStore, Codec};
use billet_log::{ColdStore, Log, LogConfig, PlaneKind, SegmentState};
use bytes::Bytes;

/// Serves segments from copies taken before eviction; can flip a byte.
#[derive(Debug, Default)]
struct Copies {
    files: Mutex<HashMap<(PlaneKind, u64), Vec<u8>>>,
    flip: Mutex<Option<u64>>,
    reads: Mutex<u64>,
}

impl Copies {
    fn keep(&self, plane: PlaneKind, id: u64, path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        self.files.lock().unwrap().insert((plane, id), bytes);
    }
}

impl ColdStore for Copies {
    fn read(&self, plane: PlaneKind, seg: u64, offset: u64, len: u64) -> std::io::Result<Bytes> {
        *self.reads.lock().unwrap() += 1;
        let files = self.files.lock().unwrap();
        let f = files
            .get(&(plane, seg))
            .ok_or_else(|| std::io::Error::other("not on the remote"))?;
        let mut out = f[offset as usize..(offset + len) as usize].to_vec();
        if let Some(at) = *self.flip.lock().unwrap()
            && at >= offset
            && at < offset + len
        {
            out[(at - offset) as usize] ^= 1;
        }
        Ok(Bytes::from(out))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn blocks(n: u64) -> (Vec<Block>, Vec<Block>) {
    let data = (0..n)
        .map(|i| {
            Block::new(
                Codec::Raw,
                format!("data block {i} ").repeat(50).into_bytes(),
            )
        })
        .collect();
    let cat = (0..n)
        .map(|i| billet_block::encode_dag_cbor(&("catalog", i)).unwrap())
        .collect();
    (data, cat)
}

/// Writes, seals, notes and evicts every sealed segment; returns the
/// blocks and the evicted segments' paths.
fn evicted_log(dir: &Path, copies: &Arc<Copies>) -> (Log, Vec<Block>, Vec<PathBuf>) {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    let (data, cat) = blocks(20);
    rt().block_on(log.append(&data, &cat)).unwrap();
    log.seal_all().unwrap();
    let mut gone = Vec::new();
    for s in log.segments() {
        if s.state != SegmentState::Sealed {
            continue;
        }
        assert!(
            log.evict(s.plane, s.id).is_err(),
            "evicted without a remote note"
        );
        copies.keep(s.plane, s.id, &s.path);
        log.note_remote(s.plane, s.id, b"opaque note").unwrap();
        assert_eq!(log.evict(s.plane, s.id).unwrap(), s.bytes);
        assert!(!s.path.exists());
        gone.push(s.path);
    }
    let all = data.into_iter().chain(cat).collect();
    (log, all, gone)
}

#[test]
fn evicted_blocks_read_through_the_cold_store_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let copies = Arc::new(Copies::default());
    let (log, all, gone) = evicted_log(dir.path(), &copies);
    assert_eq!(gone.len(), 2);
    // No cold store yet: a clear error naming the block.
    let first = all[0].cid();
    match log.get(first) {
        Err(BlockError::Io { cid, source }) => {
            assert_eq!(cid, *first);
            assert!(source.to_string().contains("evicted"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!log.is_local(first));
    log.attach_cold(copies.clone());
    for b in &all {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    let states: Vec<SegmentState> = log.segments().iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            SegmentState::Evicted,
            SegmentState::Open,
            SegmentState::Evicted,
            SegmentState::Open
        ]
    );
    assert!(log.segments().iter().filter(|s| s.noted).count() == 2);
    assert!(log.segments()[0].last_read_s > 0);
    drop(log);

    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.attach_cold(copies.clone());
    for b in &all {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert_eq!(
        log.segments()
            .iter()
            .filter(|s| s.state == SegmentState::Evicted && s.noted)
            .count(),
        2
    );
    assert_eq!(
        log.remote_note(PlaneKind::Data, 0).unwrap().unwrap(),
        b"opaque note"
    );
    // New writes land in a fresh open segment and stay local.
    let fresh = Block::new(Codec::Raw, b"after reopening".to_vec());
    rt().block_on(log.append(std::slice::from_ref(&fresh), &[]))
        .unwrap();
    assert!(log.is_local(fresh.cid()));
    // Roll-forward reads an evicted catalog segment whole.
    let mut seen = 0;
    log.scan_from(PlaneKind::Catalog, 0, &mut |_| seen += 1)
        .unwrap();
    assert_eq!(seen, 20);
}

#[test]
fn an_altered_remote_byte_fails_that_block_only() {
    let dir = tempfile::tempdir().unwrap();
    let copies = Arc::new(Copies::default());
    let (log, all, _) = evicted_log(dir.path(), &copies);
    log.attach_cold(copies.clone());
    // Flip a byte inside the third data block's bytes.
    let victim = &all[2];
    let copy = copies.files.lock().unwrap()[&(PlaneKind::Data, 0)].clone();
    let at = copy
        .windows(victim.len())
        .position(|w| w == victim.data())
        .unwrap() as u64;
    *copies.flip.lock().unwrap() = Some(at + 3);
    match log.get(victim.cid()) {
        Err(e) => assert!(e.to_string().contains(&victim.cid().to_string()), "{e}"),
        Ok(_) => panic!("altered bytes were returned"),
    }
    for b in all.iter().filter(|b| b.cid() != victim.cid()) {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
}

#[test]
fn installed_segments_open_as_evicted_and_new_ids_start_above() {
    let src = tempfile::tempdir().unwrap();
    let copies = Arc::new(Copies::default());
    let (log, all, _) = evicted_log(src.path(), &copies);
    drop(log);
    let dst = tempfile::tempdir().unwrap();
    for plane in [PlaneKind::Data, PlaneKind::Catalog] {
        let sidecar = std::fs::read(
            src.path()
                .join(plane.name())
                .join("00000000000000000000.idx"),
        )
        .unwrap();
        billet_log::install_evicted(dst.path(), plane, 0, &sidecar, b"note").unwrap();
        assert!(
            billet_log::install_evicted(dst.path(), plane, 1, &sidecar, b"note").is_err(),
            "a sidecar installed under another id"
        );
        billet_log::start_segment(dst.path(), plane, 9).unwrap();
    }
    let log = Log::open(dst.path(), LogConfig::default()).unwrap();
    log.attach_cold(copies);
    for b in &all {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    assert_eq!(log.open_segment(PlaneKind::Data), 9);
    assert_eq!(log.open_segment(PlaneKind::Catalog), 9);
}
