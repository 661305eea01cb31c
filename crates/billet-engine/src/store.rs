//! The block store reads go through: the log, behind a byte-bounded cache
//! of verified blocks (hot MST nodes and small bodies).

use std::sync::Arc;

use billet_block::{BlockError, BlockStore, Cid};
use billet_log::Log;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

#[derive(Clone)]
struct ByteWeight;

impl Weighter<Cid, Bytes> for ByteWeight {
    fn weight(&self, _key: &Cid, value: &Bytes) -> u64 {
        // Entry overhead counts too, so empty blocks are not free.
        value.len() as u64 + 64
    }
}

/// Blocks larger than this skip the cache: streaming a big body through it
/// would evict everything hot for bytes read once.
const CACHE_MAX_BLOCK: usize = 256 << 10;

pub struct CachedStore {
    log: Arc<Log>,
    cache: Cache<Cid, Bytes, ByteWeight>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl CachedStore {
    pub fn new(log: Arc<Log>, cache_bytes: u64) -> Self {
        let items = (cache_bytes / 4096).max(16) as usize;
        CachedStore {
            log,
            cache: Cache::with_weighter(items, cache_bytes.max(1 << 20), ByteWeight),
        }
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Remembers a block just written (it is verified: it was built here).
    pub fn remember(&self, cid: &Cid, data: &Bytes) {
        if data.len() <= CACHE_MAX_BLOCK {
            self.cache.insert(*cid, data.clone());
        }
    }
}

impl BlockStore for CachedStore {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        if let Some(b) = self.cache.get(cid) {
            return Ok(b);
        }
        let data = self.log.get(cid)?;
        self.remember(cid, &data);
        Ok(data)
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        Ok(self.cache.get(cid).is_some() || self.log.has(cid)?)
    }
}
