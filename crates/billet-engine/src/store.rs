//! The block store reads go through: the log, behind a byte-bounded cache
//! of verified blocks (hot MST nodes and small bodies).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use billet_block::{BlockError, BlockStore, Cid};
use billet_log::Log;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

#[derive(Clone)]
struct ByteWeight;

/// What one cached entry costs beyond its bytes: the key, the `Bytes`
/// handle, the allocation header and the cache's slab and table slots
/// (measured with heaptrack: about 120 bytes).
const ENTRY_OVERHEAD: u64 = 128;

impl Weighter<Digest, Bytes> for ByteWeight {
    fn weight(&self, _key: &Digest, value: &Bytes) -> u64 {
        value.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Cached blocks are keyed by their sha2-256 digest: a `Cid` value is
/// 80-odd bytes, and equal digests mean equal bytes whatever the codec.
type Digest = [u8; 32];

fn digest_of(cid: &Cid) -> Option<Digest> {
    cid.hash().digest().try_into().ok()
}

/// Blocks larger than this skip the cache: streaming a big body through it
/// would evict everything hot for bytes read once.
const CACHE_MAX_BLOCK: usize = 256 << 10;

pub struct CachedStore {
    log: Arc<Log>,
    cache: Cache<Digest, Bytes, ByteWeight>,
    /// Bytes read from the log (cache misses), for metrics.
    read_bytes: AtomicU64,
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
        // Catalog blocks (MST nodes, manifests) are a few hundred bytes.
        let items = (cache_bytes / 1024).max(16) as usize;
        CachedStore {
            log,
            cache: Cache::with_weighter(items, cache_bytes.max(1 << 20), ByteWeight),
            read_bytes: AtomicU64::new(0),
        }
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Block bytes read from the log since start (cache hits excluded).
    pub fn log_read_bytes(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }

    /// Whether reading `cid` needs no remote fetch (cached, or on local
    /// disk).
    pub fn is_local(&self, cid: &Cid) -> bool {
        digest_of(cid).is_some_and(|d| self.cache.get(&d).is_some()) || self.log.is_local(cid)
    }

    /// Remembers a block just written (it is verified: it was built here).
    pub fn remember(&self, cid: &Cid, data: &Bytes) {
        if data.len() <= CACHE_MAX_BLOCK
            && let Some(d) = digest_of(cid)
        {
            self.cache.insert(d, data.clone());
        }
    }
}

impl BlockStore for CachedStore {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        // Same digest, same bytes: they verify against any CID with this
        // digest, whatever its codec.
        if let Some(b) = digest_of(cid).and_then(|d| self.cache.get(&d)) {
            return Ok(b);
        }
        let data = self.log.get(cid)?;
        self.read_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.remember(cid, &data);
        Ok(data)
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        Ok(digest_of(cid).is_some_and(|d| self.cache.get(&d).is_some()) || self.log.has(cid)?)
    }

    fn prefetch_window(&self) -> u64 {
        self.log.prefetch_window()
    }

    fn prefetch(&self, cids: &[Cid]) {
        let cold: Vec<Cid> = cids
            .iter()
            .filter(|c| digest_of(c).is_none_or(|d| self.cache.get(&d).is_none()))
            .copied()
            .collect();
        BlockStore::prefetch(self.log.as_ref(), &cold);
    }
}
