#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use billet_block::{Block, BlockStore, Codec, MemoryBlockStore};
use billet_unixfs::{
    ChecksumAlgorithm, IngestOptions, Ingested, MAX_LINKS, decode_file_node, file_size, ingest,
    ingest_bytes, read_range,
};
use bytes::Bytes;
use md5::{Digest, Md5};
use proptest::prelude::*;
use sha2::Sha256;

fn opts(chunk: usize) -> IngestOptions {
    IngestOptions {
        chunk_size: chunk,
        checksums: ChecksumAlgorithm::ALL.to_vec(),
        ..IngestOptions::default()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn store_of(blocks: Vec<Block>) -> MemoryBlockStore {
    let s = MemoryBlockStore::new();
    s.put_all(blocks);
    s
}

fn read_all(store: &MemoryBlockStore, got: &Ingested, start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in read_range(store, got.root.cid, got.size(), start, end).unwrap() {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

/// Depth of the tree under `cid` (a raw leaf is depth 0).
fn depth(store: &MemoryBlockStore, cid: &billet_block::Cid) -> usize {
    if cid.codec() == Codec::Raw.code() {
        return 0;
    }
    let node = decode_file_node(&store.get(cid).unwrap()).unwrap();
    1 + depth(store, &node.children[0].0)
}

#[test]
fn boundary_sizes_round_trip_with_exact_digests() {
    let chunk = 64;
    let three_levels = chunk * MAX_LINKS * MAX_LINKS + 1;
    for len in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        5 * chunk + 3,
        three_levels,
    ] {
        let data = pattern(len);
        let (got, blocks) = ingest_bytes(&data, &opts(chunk)).unwrap();
        let store = store_of(blocks);
        assert_eq!(got.size(), len as u64);
        assert_eq!(got.md5, <[u8; 16]>::from(Md5::digest(&data)), "len {len}");
        assert_eq!(got.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(file_size(&store, &got.root.cid).unwrap(), len as u64);
        assert_eq!(read_all(&store, &got, 0, len as u64), data, "len {len}");
        let want_depth = match len {
            0..=64 => 0,
            n if n <= chunk * MAX_LINKS => 1,
            n if n <= chunk * MAX_LINKS * MAX_LINKS => 2,
            _ => 3,
        };
        assert_eq!(depth(&store, &got.root.cid), want_depth, "len {len}");
        if len <= chunk {
            assert_eq!(got.root.cid.codec(), Codec::Raw.code());
        }
    }
}

#[test]
fn empty_body_is_the_empty_raw_block() {
    let (got, blocks) = ingest_bytes(&[], &IngestOptions::default()).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        got.root.cid.to_string(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    assert_eq!(got.etag(), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn identical_chunks_share_a_cid() {
    let data = vec![42u8; 10 * 64];
    let (_, blocks) = ingest_bytes(&data, &opts(64)).unwrap();
    let leaves: Vec<_> = blocks
        .iter()
        .filter(|b| b.codec() == Codec::Raw)
        .map(|b| *b.cid())
        .collect();
    assert_eq!(leaves.len(), 10);
    assert!(leaves.iter().all(|c| *c == leaves[0]));
}

#[test]
fn nodes_follow_the_blocks_they_link() {
    let data = pattern(64 * 400);
    let (got, blocks) = ingest_bytes(&data, &opts(64)).unwrap();
    let mut seen = std::collections::HashSet::new();
    for b in &blocks {
        if b.codec() == Codec::DagPb {
            for (child, _) in decode_file_node(b.data()).unwrap().children {
                assert!(seen.contains(&child), "node before its child");
            }
        }
        seen.insert(*b.cid());
    }
    assert_eq!(*blocks.last().unwrap().cid(), got.root.cid);
}

#[test]
fn damaged_trees_fail_loudly() {
    let data = pattern(64 * 10);
    let (got, blocks) = ingest_bytes(&data, &opts(64)).unwrap();
    let store = store_of(blocks.clone());
    // A missing leaf is an error naming it, not a short body.
    let leaf = *blocks[3].cid();
    store.remove(&leaf);
    let err = read_range(&store, got.root.cid, got.size(), 0, got.size())
        .unwrap()
        .find_map(Result::err)
        .unwrap();
    assert!(err.to_string().contains(&leaf.to_string()), "{err}");
    // A declared size that disagrees with the tree is refused up front.
    let store = store_of(blocks);
    assert!(read_range(&store, got.root.cid, got.size() + 1, 0, 1).is_err());
    // So is a range outside the body.
    assert!(read_range(&store, got.root.cid, got.size(), 5, got.size() + 1).is_err());
}

#[test]
fn streaming_ingest_uses_the_md5_thread_and_agrees_with_one_shot() {
    let data = pattern(3 << 20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(70_001)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut sink = Vec::new();
    let mut o = opts(256 << 10);
    o.md5_thread_after = 100_000;
    let got = rt
        .block_on(ingest(futures_util::stream::iter(pieces), &o, &mut sink))
        .unwrap();
    let (want, want_blocks) = ingest_bytes(&data, &o).unwrap();
    assert_eq!(got, want);
    assert_eq!(sink, want_blocks);
}

#[test]
fn size_limit_is_enforced_while_streaming() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        (0..10).map(|_| Ok(Bytes::from(vec![1u8; 1000]))).collect();
    let mut o = opts(512);
    o.max_size = Some(5_000);
    let err = rt
        .block_on(ingest(
            futures_util::stream::iter(pieces),
            &o,
            &mut Vec::new(),
        ))
        .unwrap_err();
    assert!(matches!(
        err,
        billet_unixfs::IngestError::TooLarge { max: 5000 }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_ranges_equal_the_input(
        len in 0usize..5000,
        chunk in 1usize..200,
        ranges in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..10),
    ) {
        let data = pattern(len);
        let (got, blocks) = ingest_bytes(&data, &opts(chunk)).unwrap();
        let store = store_of(blocks);
        for (a, b) in ranges {
            let (a, b) = (a.index(len + 1), b.index(len + 1));
            let (start, end) = (a.min(b), a.max(b));
            prop_assert_eq!(read_all(&store, &got, start as u64, end as u64), &data[start..end]);
        }
    }

    #[test]
    fn piece_boundaries_do_not_matter(len in 0usize..3000, cuts in proptest::collection::vec(1usize..500, 0..20)) {
        let data = pattern(len);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts {
            if at >= len { break; }
            let end = (at + c).min(len);
            pieces.push(Ok::<_, std::io::Error>(Bytes::copy_from_slice(&data[at..end])));
            at = end;
        }
        if at < len {
            pieces.push(Ok(Bytes::copy_from_slice(&data[at..])));
        }
        let mut o = opts(97);
        o.md5_thread_after = 512;
        let got = rt.block_on(ingest(futures_util::stream::iter(pieces), &o, &mut Vec::new())).unwrap();
        let (want, _) = ingest_bytes(&data, &o).unwrap();
        prop_assert_eq!(got, want);
    }
}

/// A store that records reads and prefetch hints, in order.
struct Hinted {
    inner: MemoryBlockStore,
    window: u64,
    log: std::sync::Mutex<Vec<(bool, billet_block::Cid)>>,
}

impl BlockStore for Hinted {
    fn get(&self, cid: &billet_block::Cid) -> Result<Bytes, billet_block::BlockError> {
        self.log.lock().unwrap().push((false, *cid));
        self.inner.get(cid)
    }
    fn has(&self, cid: &billet_block::Cid) -> Result<bool, billet_block::BlockError> {
        self.inner.has(cid)
    }
    fn prefetch_window(&self) -> u64 {
        self.window
    }
    fn prefetch(&self, cids: &[billet_block::Cid]) {
        self.log
            .lock()
            .unwrap()
            .extend(cids.iter().map(|c| (true, *c)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The hints of a range read, against the model "with a window, every
    /// leaf is announced before it is read, once per place in the tree, and
    /// only blocks the read needs are announced; without one, nothing is"
    /// (interior nodes on the way to the first leaf are read before the
    /// cursor starts).
    #[test]
    fn a_range_read_hints_each_block_once_before_reading_it(
        len in 0usize..20_000,
        chunk in 1usize..300,
        window in 0u64..4000,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let data = pattern(len);
        let (got, blocks) = ingest_bytes(&data, &opts(chunk)).unwrap();
        let store = Hinted { inner: store_of(blocks), window, log: Default::default() };
        let (a, b) = (a.index(len + 1), b.index(len + 1));
        let (start, end) = (a.min(b), a.max(b));
        let mut out = Vec::new();
        for piece in read_range(&store, got.root.cid, got.size(), start as u64, end as u64).unwrap() {
            out.extend_from_slice(&piece.unwrap());
        }
        prop_assert_eq!(&out, &data[start..end]);
        let log = store.log.into_inner().unwrap();
        let mut hinted = std::collections::HashMap::new();
        for (i, (hint, cid)) in log.iter().enumerate() {
            if *hint {
                prop_assert!(window > 0, "hints without a window");
                let leaf = cid.codec() == Codec::Raw.code();
                prop_assert!(hinted.insert(*cid, i).is_none() || !leaf || chunk_dup(&data, chunk), "a leaf hinted twice");
            } else if cid.codec() == Codec::Raw.code() && *cid != got.root.cid && window > 0 {
                prop_assert!(hinted.contains_key(cid), "a leaf read before its hint");
            }
        }
        // Nothing hinted that the read never needed.
        let read: std::collections::HashSet<_> = log.iter().filter(|(h, _)| !h).map(|(_, c)| *c).collect();
        for cid in hinted.keys() {
            prop_assert!(read.contains(cid), "hinted a block outside the range");
        }
    }
}

/// Whether equal chunks occur (the same CID then appears as several
/// children, and is rightly announced once per position).
fn chunk_dup(data: &[u8], chunk: usize) -> bool {
    let mut seen = std::collections::HashSet::new();
    data.chunks(chunk).any(|c| !seen.insert(c))
}
