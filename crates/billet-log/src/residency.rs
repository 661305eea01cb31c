//! Where each sealed segment's bytes are: in its local file, or only on
//! the remote once the cold tier evicted it (its sidecar stays, so every
//! block's location is still known). Reads of an evicted segment go to a
//! [`ColdStore`]; every read stamps the segment's last-read time, which
//! eviction under a disk budget orders by.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::segment::PlaneKind;

/// Reads byte ranges of segments that are no longer on local disk.
pub trait ColdStore: Send + Sync + std::fmt::Debug {
    /// Bytes `[offset, offset + len)` of sealed segment `segment` of
    /// `plane`, exactly (the log checks them against the block's CID).
    fn read(&self, plane: PlaneKind, segment: u64, offset: u64, len: u64)
    -> std::io::Result<Bytes>;

    /// Bytes a reader should announce ahead of itself (see
    /// [`ColdStore::prefetch`]).
    fn prefetch_window(&self) -> u64 {
        0
    }

    /// A hint that these `(plane, segment, offset, len)` ranges of
    /// evicted segments will be read soon, in this order.
    fn prefetch(&self, _ranges: &[(PlaneKind, u64, u64, u64)]) {}
}

#[derive(Debug, Default)]
pub(crate) struct Resident {
    evicted: AtomicBool,
    /// A `.remote` note (the cold tier's record of a shipped copy) exists.
    noted: AtomicBool,
    /// Seconds since the Unix epoch of the last read; 0 if never read
    /// since opening.
    last_read: AtomicU64,
}

impl Resident {
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    pub fn set_evicted(&self) {
        self.evicted.store(true, Ordering::Release);
    }

    pub fn is_noted(&self) -> bool {
        self.noted.load(Ordering::Acquire)
    }

    pub fn set_noted(&self) {
        self.noted.store(true, Ordering::Release);
    }

    pub fn last_read(&self) -> u64 {
        self.last_read.load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Once a second is enough for least-recently-read ordering, and
        // keeps the cache line shared on hot segments.
        if self.last_read.load(Ordering::Relaxed) != now {
            self.last_read.store(now, Ordering::Relaxed);
        }
    }
}

/// The sealed segments of both planes and where their bytes are.
#[derive(Debug, Default)]
pub(crate) struct Residency {
    map: RwLock<HashMap<(PlaneKind, u64), Arc<Resident>>>,
}

impl Residency {
    pub fn insert(&self, plane: PlaneKind, id: u64, evicted: bool, noted: bool) {
        let r = Resident::default();
        if evicted {
            r.set_evicted();
        }
        if noted {
            r.set_noted();
        }
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((plane, id), Arc::new(r));
    }

    /// Forgets a segment the collector removed.
    pub fn remove(&self, plane: PlaneKind, id: u64) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(plane, id));
    }

    /// `None` for the open segment (and for unknown ones).
    pub fn get(&self, plane: PlaneKind, id: u64) -> Option<Arc<Resident>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(plane, id))
            .cloned()
    }
}
