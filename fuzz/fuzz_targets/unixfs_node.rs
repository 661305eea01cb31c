//! An untrusted UnixFS node as a body root: size lookup and range reads
//! return or fail, never panic or return bytes the tree does not hold.
#![no_main]

use billet_block::{Block, Codec, MemoryBlockStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = MemoryBlockStore::new();
    let block = Block::new(Codec::DagPb, data.to_vec());
    let root = *block.cid();
    store.put(block);
    if let Ok(size) = billet_unixfs::file_size(&store, &root) {
        if let Ok(r) = billet_unixfs::read_range(&store, root, size, 0, size.min(1 << 20)) {
            let _ = r.take(100).count();
        }
    }
});
