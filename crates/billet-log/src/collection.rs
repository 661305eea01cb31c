//! What the log does for the garbage collector (the engine's `gc`).
//!
//! Lock order: a plane's writer lock, then the collection lock; never the
//! other way round.
//!
//! The collector marks what is live from the index and the bucket DAGs,
//! then copies the live blocks out of sparse segments and drops them. The
//! log keeps that safe against writes running meanwhile with a **fence**:
//!
//! - `begin_collection` fixes, per plane, a segment id below which
//!   segments may be collected: the lowest of the open segment and the
//!   segment open when each body still being staged started (`Staging`),
//!   so no block written after the mark began, and no block of an
//!   upload in flight, is ever in a candidate.
//! - While a collection runs, a write that finds its block already in a
//!   candidate segment (a deduplication hit) records the block as a
//!   **hit**; the collector drains the hits into its live set before
//!   deciding what to copy. `touch` does the same for blocks an operation
//!   references without writing them (a copied object's body). Past
//!   `max_hits` undrained hits, writes stop deduplicating against
//!   candidates and write their own copy instead.
//! - `retire` marks segments the collector is about to copy from: from
//!   then on no write deduplicates against them (a write of one of their
//!   blocks stores a fresh copy), so the hits drained after `retire` are
//!   all the hits those segments will ever get.
//! - `drop_segments` removes retired segments once the live copies are
//!   durable: a `.retired` marker is made durable first, so a crash
//!   mid-way is finished at the next open.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use billet_block::{Block, BlockStore, Cid};

use crate::error::LogError;
use crate::fs::write_durable;
use crate::locations::{Key, key_of};
use crate::log::Log;
use crate::receipt::Receipt;
use crate::segment::{
    PlaneKind, remote_name, retired_name, retiring_name, segment_name, sidecar_name,
};

/// Per plane, the lowest segment a collection may take: every segment
/// from this id up is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub data: u64,
    pub catalog: u64,
}

impl Fence {
    pub fn of(&self, plane: PlaneKind) -> u64 {
        match plane {
            PlaneKind::Data => self.data,
            PlaneKind::Catalog => self.catalog,
        }
    }
}

#[derive(Debug)]
struct Active {
    fence: Fence,
    hits: HashSet<Key, foldhash::fast::RandomState>,
    max_hits: usize,
    overflowed: bool,
}

#[derive(Debug, Default)]
struct State {
    active: Option<Active>,
    retiring: HashSet<(PlaneKind, u64)>,
    /// Segments holding a block of which a newer copy was written (a
    /// write that would not deduplicate against them): the next
    /// collection takes them, so the older copy does not stay for ever.
    /// Segments a collection began copying from and did not drop (their
    /// `.retiring` marker outlived a crash) join them at open.
    superseded: HashSet<(PlaneKind, u64)>,
    /// Open segment of each plane when each staging still running began.
    staging: [BTreeMap<u64, usize>; 2],
}

/// The log's collection state, shared by both planes.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    state: Mutex<State>,
}

fn idx(plane: PlaneKind) -> usize {
    match plane {
        PlaneKind::Data => 0,
        PlaneKind::Catalog => 1,
    }
}

/// What a write does with a block the log already holds in a sealed
/// segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Skip it: the copy held stays.
    Dedup,
    /// Write a copy of its own into the open segment.
    Fresh,
}

impl Collection {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a deduplication against the copy at `(plane, seg)`; the
    /// caller holds the plane's writer lock, so a `retire` cannot slip
    /// between this decision and the write it leads to.
    pub(crate) fn reuse(&self, plane: PlaneKind, seg: u64, key: &Key) -> Reuse {
        let mut st = self.lock();
        let reuse = st.decide(plane, seg, key);
        if reuse == Reuse::Fresh {
            st.superseded.insert((plane, seg));
        }
        reuse
    }

    /// Segments found at open with a `.retiring` marker.
    pub(crate) fn unfinished(&self, ids: impl IntoIterator<Item = (PlaneKind, u64)>) {
        self.lock().superseded.extend(ids);
    }
}

impl State {
    fn decide(&mut self, plane: PlaneKind, seg: u64, key: &Key) -> Reuse {
        if self.retiring.contains(&(plane, seg)) {
            return Reuse::Fresh;
        }
        let Some(a) = self.active.as_mut() else {
            return Reuse::Dedup;
        };
        if seg >= a.fence.of(plane) {
            return Reuse::Dedup;
        }
        if a.overflowed {
            return Reuse::Fresh;
        }
        if a.hits.len() >= a.max_hits && !a.hits.contains(key) {
            a.overflowed = true;
            return Reuse::Fresh;
        }
        a.hits.insert(*key);
        Reuse::Dedup
    }
}

/// A body being staged: until it is dropped (its commit or part row
/// written, or the request failed), no collection may take a segment it
/// may have written to.
#[derive(Debug)]
pub struct Staging {
    log: Arc<Collection>,
    at: [u64; 2],
}

impl Drop for Staging {
    fn drop(&mut self) {
        let mut st = self.log.lock();
        for (i, seg) in self.at.iter().enumerate() {
            if let Some(n) = st.staging[i].get_mut(seg) {
                *n -= 1;
                if *n == 0 {
                    st.staging[i].remove(seg);
                }
            }
        }
    }
}

impl Log {
    /// Registers a body about to be staged (see [`Staging`]).
    pub fn staging(&self) -> Staging {
        // Read before the collection lock (a plane's writer lock is taken
        // before the collection lock, never after). A segment opened in
        // between only puts the blocks higher than recorded.
        let at = [
            self.open_segment(PlaneKind::Data),
            self.open_segment(PlaneKind::Catalog),
        ];
        let mut st = self.collection.lock();
        for (i, seg) in at.iter().enumerate() {
            *st.staging[i].entry(*seg).or_default() += 1;
        }
        Staging {
            log: self.collection.clone(),
            at,
        }
    }

    /// Starts a collection: fixes the fence (see the module docs) and
    /// starts recording hits. Fails if one is running.
    pub fn begin_collection(&self, max_hits: usize) -> Result<Fence, LogError> {
        // Read before the collection lock, as in `staging`: a segment
        // opened in between only lowers the fence.
        let open = [
            self.open_segment(PlaneKind::Data),
            self.open_segment(PlaneKind::Catalog),
        ];
        let mut st = self.collection.lock();
        if st.active.is_some() {
            return Err(LogError::Layout {
                path: self.root.clone(),
                reason: "a collection is already running".into(),
            });
        }
        let low = |plane: PlaneKind| {
            let open = open[idx(plane)];
            st.staging[idx(plane)]
                .keys()
                .next()
                .map_or(open, |s| (*s).min(open))
        };
        let fence = Fence {
            data: low(PlaneKind::Data),
            catalog: low(PlaneKind::Catalog),
        };
        st.active = Some(Active {
            fence,
            hits: HashSet::default(),
            max_hits: max_hits.max(1),
            overflowed: false,
        });
        Ok(fence)
    }

    /// Ends the collection: hits are no longer recorded, no segment is
    /// retiring.
    pub fn end_collection(&self) {
        let mut st = self.collection.lock();
        st.active = None;
        st.retiring.clear();
    }

    /// The blocks hit since the last call (they are live), and whether
    /// the cap was reached meanwhile (writes then stored copies instead).
    pub fn take_hits(&self) -> (Vec<Key>, bool) {
        let mut st = self.collection.lock();
        match st.active.as_mut() {
            Some(a) => {
                let hits = a.hits.drain().collect();
                let over = std::mem::take(&mut a.overflowed);
                (hits, over)
            }
            None => (Vec::new(), false),
        }
    }

    /// Marks sealed segments as being copied from: no write deduplicates
    /// against them any more, and each gets a durable `.retiring` marker
    /// (a collection that stops before dropping them leaves it, and the
    /// next takes them). Call [`Log::take_hits`] after it.
    pub fn retire(&self, plane: PlaneKind, ids: &[u64]) -> Result<(), LogError> {
        let dir = self.plane_dir(plane);
        let fs = self.files.fs.as_ref();
        for id in ids {
            match fs.create(&dir.join(retiring_name(*id))) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(LogError::io("writing", dir.join(retiring_name(*id)), e)),
            }
        }
        // Empty files: their names are all there is to make durable.
        fs.sync_dir(&dir)
            .map_err(|e| LogError::io("syncing", dir.clone(), e))?;
        // The writer lock orders this after every write that already
        // decided to deduplicate against them.
        let _w = self.plane(plane).writer();
        let mut st = self.collection.lock();
        st.retiring.extend(ids.iter().map(|id| (plane, *id)));
        Ok(())
    }

    /// Segments the next collection should take whatever their live
    /// share: they hold blocks of which a newer copy exists.
    pub fn superseded(&self) -> Vec<(PlaneKind, u64)> {
        let mut v: Vec<_> = self.collection.lock().superseded.iter().copied().collect();
        v.sort();
        v
    }

    /// Declares that an operation now refers to these blocks without
    /// writing them (a copy of an object's body): each must be in the
    /// log (else `Missing`); while a collection runs each counts as a
    /// hit, and one in a retiring segment is copied afresh (the receipt
    /// covers those copies).
    pub fn touch(&self, cids: &[Cid]) -> Result<Receipt, LogError> {
        let mut receipt = Receipt::default();
        for cid in cids {
            let loc = self
                .block_locations
                .get(cid)
                .map_err(|e| LogError::io("looking up", self.root.clone(), e))?
                .ok_or(billet_block::BlockError::Missing(*cid))?;
            let Some(key) = key_of(cid) else { continue };
            let plane = self.plane(loc.plane);
            let w = plane.writer();
            let reusable = loc.segment == w.seg_id || plane.reusable(cid, loc, &key);
            drop(w);
            if !reusable {
                let block = Block::verified(*cid, BlockStore::get(self, cid)?)?;
                receipt = receipt.merge(self.write(std::slice::from_ref(&block))?);
            }
        }
        Ok(receipt)
    }

    /// Removes retired segments of `plane` whose live blocks have been
    /// copied and made durable elsewhere: a durable `.retired` marker
    /// each, then the files (segment, sidecar, remote note), then the
    /// markers. Reads that still find a dropped segment look again.
    pub fn drop_segments(&self, plane: PlaneKind, ids: &[u64]) -> Result<(), LogError> {
        let dir = self.plane_dir(plane);
        let fs = self.files.fs.clone();
        for id in ids {
            write_durable(fs.as_ref(), &dir, &retired_name(*id), b"")
                .map_err(|e| LogError::io("writing", dir.join(retired_name(*id)), e))?;
        }
        let gone: HashSet<u64> = ids.iter().copied().collect();
        {
            let p = self.plane(plane);
            let mut w = p.writer();
            w.sealed.retain(|s| !gone.contains(&s.id));
            for id in ids {
                self.residency.remove(plane, *id);
            }
        }
        self.block_locations
            .remove_hot_where(|l| l.plane == plane && gone.contains(&l.segment));
        {
            let mut st = self.collection.lock();
            st.retiring
                .retain(|(p, s)| *p != plane || !gone.contains(s));
            st.superseded
                .retain(|(p, s)| *p != plane || !gone.contains(s));
        }
        for id in ids {
            self.files.forget(plane, *id);
            remove_segment_files(fs.as_ref(), &dir, *id)?;
        }
        fs.sync_dir(&dir)
            .map_err(|e| LogError::io("syncing", dir.clone(), e))?;
        for id in ids {
            let _ = fs.remove(&dir.join(retiring_name(*id)));
            let _ = fs.remove(&dir.join(retired_name(*id)));
        }
        self.block_locations.segments_dropped();
        Ok(())
    }
}

/// Removes the files of a retired segment that exist.
pub(crate) fn remove_segment_files(
    fs: &dyn crate::fs::LogFs,
    dir: &std::path::Path,
    id: u64,
) -> Result<(), LogError> {
    for name in [segment_name(id), sidecar_name(id), remote_name(id)] {
        match fs.remove(&dir.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("removing", dir.join(name), e)),
        }
    }
    Ok(())
}
