use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::sync::RwLock;

use bytes::Bytes;
use cid::Cid;

use crate::block::Block;
use crate::error::BlockError;

/// Where blocks are read from. Implementations must check what they return
/// against the CID asked for (a stale cache, a bit flip on disk or a lying
/// remote all surface as [`BlockError`], never as wrong bytes). Reads are
/// synchronous: the pure cores (MST, UnixFS layout) call this from blocking
/// contexts and each read is a short positioned read or a map lookup.
pub trait BlockStore: Send + Sync {
    /// The bytes of `cid`; a missing block is [`BlockError::Missing`].
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError>;

    fn has(&self, cid: &Cid) -> Result<bool, BlockError>;

    /// How many bytes of blocks a sequential reader should announce ahead
    /// of itself with [`BlockStore::prefetch`]; 0 (the default): the store
    /// gains nothing from hints.
    fn prefetch_window(&self) -> u64 {
        0
    }

    /// A hint that `cids` will be read soon, in this order; the store may
    /// start fetching them. Never fails: a real read reports problems.
    fn prefetch(&self, _cids: &[Cid]) {}
}

impl<S: BlockStore + ?Sized> BlockStore for &S {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        (**self).get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        (**self).has(cid)
    }
    fn prefetch_window(&self) -> u64 {
        (**self).prefetch_window()
    }
    fn prefetch(&self, cids: &[Cid]) {
        (**self).prefetch(cids)
    }
}

impl<S: BlockStore + ?Sized> BlockStore for std::sync::Arc<S> {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        (**self).get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        (**self).has(cid)
    }
    fn prefetch_window(&self) -> u64 {
        (**self).prefetch_window()
    }
    fn prefetch(&self, cids: &[Cid]) {
        (**self).prefetch(cids)
    }
}

/// An in-memory store for tests, tools and proofs. Blocks enter it only as
/// [`Block`]s, which are verified by construction, so reads need no rehash.
#[derive(Debug, Default)]
pub struct MemoryBlockStore {
    blocks: RwLock<HashMap<Cid, Bytes, RandomState>>,
}

impl MemoryBlockStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&self, block: Block) {
        let (cid, data) = block.into_parts();
        self.write().insert(cid, data);
    }

    pub fn put_all(&self, blocks: impl IntoIterator<Item = Block>) {
        let mut map = self.write();
        for b in blocks {
            let (cid, data) = b.into_parts();
            map.insert(cid, data);
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn remove(&self, cid: &Cid) -> Option<Bytes> {
        self.write().remove(cid)
    }

    /// Every block, in no particular order.
    pub fn blocks(&self) -> Vec<Block> {
        self.read()
            .iter()
            .map(|(cid, data)| Block::verified(*cid, data.clone()))
            .collect::<Result<_, _>>()
            .expect("blocks in a MemoryBlockStore were verified on the way in")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Cid, Bytes, RandomState>> {
        // A panic while holding the lock cannot leave the map half-written
        // (every mutation is one insert or remove), so poisoning is ignored.
        self.blocks.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Cid, Bytes, RandomState>> {
        self.blocks.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlockStore for MemoryBlockStore {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        self.read()
            .get(cid)
            .cloned()
            .ok_or(BlockError::Missing(*cid))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        Ok(self.read().contains_key(cid))
    }
}
