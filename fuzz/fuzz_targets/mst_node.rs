//! An untrusted MST node as a tree's root: the checked walk, a lookup and
//! proof verification must return, never panic.
#![no_main]

use billet_block::{Block, Codec, MemoryBlockStore};
use billet_mst::{Mst, verify_proof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = MemoryBlockStore::new();
    let block = Block::new(Codec::DagCbor, data.to_vec());
    let root = *block.cid();
    store.put(block.clone());
    let mst = Mst::new(&store);
    let _ = mst.check(&root, &mut |_| {}, &mut |_, _| Ok(()));
    let _ = mst.get(&root, b"some/key");
    let _ = mst.iter(&root, None, None).take(100).count();
    let _ = verify_proof(&root, b"some/key", &[block]);
});
