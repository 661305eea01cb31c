//! Where every block in the log is: digest key → (plane, segment, offset,
//! len), with memory that does not grow with the blocks.
//!
//! Two layers:
//!
//! - **hot**: a hash map of the blocks of the open segments and of sealed
//!   segments whose run is not written yet. Bounded by the open segments'
//!   size and the run builder's backlog.
//! - **runs** (`run.rs`): immutable files under `log/locations/`, each the
//!   sorted locations of the blocks of some sealed segments, with a Bloom
//!   filter and every 64th key in memory (about 1.4 bytes per block). A
//!   background thread (`builder.rs`) writes a run for each segment that
//!   seals and merges runs of similar size, so a lookup probes a few
//!   filters and reads at most one stretch of 64 entries per run that
//!   says "perhaps".
//!
//! Runs are derived data: the sidecars are the truth. A run that fails its
//! checksum is dropped and its segments' sidecars read again. A run entry
//! whose segment no longer exists (the collector retired it) is ignored,
//! and dropped when its run is next merged.
//!
//! Keys are the first 16 bytes of the sha2-256 digest (a collision among
//! even 10^12 blocks has probability about 10^-15, far below undetected
//! disk errors; and every read is still checked against the full CID
//! asked for, so a collision could only fail a read, never return wrong
//! bytes).

mod builder;
pub(crate) mod run;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use billet_block::{Cid, DigestKey, digest_key};
use foldhash::fast::RandomState;

use crate::error::LogError;
use crate::fs::LogFs;
use crate::residency::Residency;
use crate::segment::PlaneKind;
use crate::sidecar::Entry;
use run::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub plane: PlaneKind,
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// The digest prefix a block is known by.
pub(crate) type Key = DigestKey;

pub(crate) fn key_of(cid: &Cid) -> Option<Key> {
    digest_key(cid)
}

/// A segment's sidecar entries as keys and locations.
fn located(
    plane: PlaneKind,
    seg: u64,
    entries: &[Entry],
) -> impl Iterator<Item = (Key, Location)> + '_ {
    entries.iter().filter_map(move |e| {
        Some((
            key_of(&e.cid)?,
            Location {
                plane,
                segment: seg,
                offset: e.offset,
                len: e.len,
            },
        ))
    })
}

/// Entries gathered at open from segments no run covers, written as one
/// run once this many are waiting (so a log opened for the first time
/// with millions of blocks never holds them all in memory).
const OPEN_BATCH: usize = 1 << 20;

pub(crate) struct BlockLocations {
    hot: RwLock<HashMap<Key, Location, RandomState>>,
    /// Oldest first.
    runs: RwLock<Arc<Vec<Arc<Run>>>>,
    /// Which sealed segments exist: a run entry pointing elsewhere is stale.
    residency: Arc<Residency>,
    dir: PathBuf,
    fs: Arc<dyn LogFs>,
    read_only: bool,
    next_run: Mutex<u64>,
    /// Sealed segments waiting for their run, sent to the builder thread.
    builder: Mutex<Option<builder::Handle>>,
    /// At open: entries of uncovered segments not yet in a run.
    opening: Mutex<Vec<(Key, Location)>>,
    opening_covers: Mutex<Vec<((PlaneKind, u64), u64)>>,
}

impl std::fmt::Debug for BlockLocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockLocations")
            .field("dir", &self.dir)
            .finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Every mutation is a single insert, remove or swap: a panic elsewhere
    // cannot leave the state half-updated.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlockLocations {
    /// Opens the runs under `dir` (`log/locations`), keeping those that
    /// cover at least one of `alive` that no newer run covers and
    /// removing the rest (what a merge cut short by a crash left behind).
    pub fn open(
        fs: Arc<dyn LogFs>,
        dir: PathBuf,
        residency: Arc<Residency>,
        alive: &HashSet<(PlaneKind, u64)>,
        read_only: bool,
    ) -> Result<BlockLocations, LogError> {
        let mut runs: Vec<Arc<Run>> = Vec::new();
        let mut next = 0u64;
        if !read_only {
            fs.create_dir_all(&dir)
                .map_err(|e| LogError::io("creating", &dir, e))?;
        }
        let names = match fs.list(&dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LogError::io("listing", &dir, e)),
        };
        let mut ids: Vec<u64> = Vec::new();
        for name in &names {
            if name.ends_with(".tmp") {
                if !read_only {
                    let _ = fs.remove(&dir.join(name));
                }
            } else if let Some(id) = run::parse_run_name(name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        next = next.max(ids.last().map_or(0, |l| l + 1));
        let mut covered: HashSet<(PlaneKind, u64)> = HashSet::new();
        for id in ids.into_iter().rev() {
            let path = dir.join(run::run_name(id));
            let keep = match Run::open(fs.as_ref(), &path) {
                Ok(r) => {
                    let fresh = r
                        .covers
                        .iter()
                        .any(|(s, _)| alive.contains(s) && !covered.contains(s));
                    fresh.then_some(r)
                }
                // Derived data: the segments' sidecars are read again.
                Err(_) => None,
            };
            match keep {
                Some(r) => {
                    covered.extend(r.covers.iter().map(|(s, _)| *s));
                    runs.push(Arc::new(r));
                }
                None if !read_only => {
                    let _ = fs.remove(&path);
                }
                None => {}
            }
        }
        runs.reverse();
        Ok(BlockLocations {
            hot: RwLock::new(HashMap::default()),
            runs: RwLock::new(Arc::new(runs)),
            residency,
            dir,
            fs,
            read_only,
            next_run: Mutex::new(next),
            builder: Mutex::new(None),
            opening: Mutex::new(Vec::new()),
            opening_covers: Mutex::new(Vec::new()),
        })
    }

    /// The sealed segments some run covers (they need no sidecar read).
    pub fn covered(&self) -> HashMap<(PlaneKind, u64), u64> {
        let mut out = HashMap::new();
        for r in read(&self.runs).iter() {
            for (s, n) in &r.covers {
                *out.entry(*s).or_default() += n;
            }
        }
        out
    }

    /// A sealed segment no run covers, found while opening: its entries
    /// go into a run (or, read-only, into memory).
    pub fn load_sealed(
        &self,
        plane: PlaneKind,
        seg: u64,
        entries: &[Entry],
    ) -> Result<(), LogError> {
        let items = located(plane, seg, entries);
        if self.read_only {
            let mut hot = write(&self.hot);
            for (k, l) in items {
                hot.insert(k, l);
            }
            return Ok(());
        }
        let full = {
            let mut batch = lock(&self.opening);
            batch.extend(items);
            lock(&self.opening_covers).push(((plane, seg), entries.len() as u64));
            batch.len() >= OPEN_BATCH
        };
        if full {
            self.flush_opening()?;
        }
        Ok(())
    }

    /// Writes the entries gathered at open as one run.
    fn flush_opening(&self) -> Result<(), LogError> {
        let mut batch = std::mem::take(&mut *lock(&self.opening));
        let covers = std::mem::take(&mut *lock(&self.opening_covers));
        if covers.is_empty() {
            return Ok(());
        }
        batch.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.segment.cmp(&a.1.segment)));
        batch.dedup_by(|a, b| a.0 == b.0);
        let run = self.write_run(&covers, batch.len() as u64, &mut batch.into_iter().map(Ok))?;
        let mut runs = write(&self.runs);
        let mut next: Vec<Arc<Run>> = runs.as_ref().clone();
        next.push(Arc::new(run));
        *runs = Arc::new(next);
        Ok(())
    }

    fn write_run(
        &self,
        covers: &[((PlaneKind, u64), u64)],
        size_hint: u64,
        entries: &mut dyn Iterator<Item = std::io::Result<(Key, Location)>>,
    ) -> Result<Run, LogError> {
        let id = {
            let mut n = lock(&self.next_run);
            let id = *n;
            *n += 1;
            id
        };
        run::write_run(self.fs.as_ref(), &self.dir, id, covers, size_hint, entries).map_err(|e| {
            LogError::io(
                "writing the location run",
                self.dir.join(run::run_name(id)),
                e,
            )
        })
    }

    /// Opening is done: what was gathered is written, and the thread
    /// that writes runs for segments as they seal starts.
    pub fn finish_open(self: &Arc<Self>) -> Result<(), LogError> {
        if self.read_only {
            return Ok(());
        }
        self.flush_opening()?;
        *lock(&self.builder) = Some(builder::Handle::start(Arc::downgrade(self)));
        Ok(())
    }

    /// Where `cid`'s block is, if the log holds it.
    pub fn get(&self, cid: &Cid) -> std::io::Result<Option<Location>> {
        let Some(key) = key_of(cid) else {
            return Ok(None);
        };
        if let Some(l) = read(&self.hot).get(&key) {
            return Ok(Some(*l));
        }
        let runs = read(&self.runs).clone();
        for r in runs.iter().rev() {
            if let Some(l) = r.get(&key)?
                && self.residency.get(l.plane, l.segment).is_some()
            {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Another copy of `cid`'s block than the one in `(plane, seg)`, if
    /// the log holds one (a write that may not reuse a copy in a segment
    /// being collected may reuse another).
    pub fn get_other(
        &self,
        cid: &Cid,
        plane: PlaneKind,
        seg: u64,
    ) -> std::io::Result<Option<Location>> {
        let Some(key) = key_of(cid) else {
            return Ok(None);
        };
        let other = |l: &Location| l.plane != plane || l.segment != seg;
        if let Some(l) = read(&self.hot).get(&key).filter(|l| other(l)) {
            return Ok(Some(*l));
        }
        let runs = read(&self.runs).clone();
        for r in runs.iter().rev() {
            if let Some(l) = r.get(&key)?
                && other(&l)
                && self.residency.get(l.plane, l.segment).is_some()
            {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Where `cid`'s block is, looking only at the open segments and the
    /// sealed ones whose run is not written yet (no disk read).
    pub fn get_hot(&self, cid: &Cid) -> Option<Location> {
        read(&self.hot).get(&key_of(cid)?).copied()
    }

    pub fn insert_hot(&self, items: impl IntoIterator<Item = (Cid, Location)>) {
        let mut hot = write(&self.hot);
        for (cid, loc) in items {
            if let Some(key) = key_of(&cid) {
                hot.insert(key, loc);
            }
        }
    }

    /// Forgets `cid` if its hot entry still points at `loc`.
    pub fn remove_hot_if(&self, cid: &Cid, loc: Location) {
        if let Some(key) = key_of(cid) {
            let mut hot = write(&self.hot);
            if hot.get(&key) == Some(&loc) {
                hot.remove(&key);
            }
        }
    }

    /// Forgets the hot entries that point into segment `seg` (its run is
    /// written). The map gives back memory a backlog made it take.
    pub fn remove_hot_segment(&self, plane: PlaneKind, seg: u64, keys: &[Key]) {
        let mut hot = write(&self.hot);
        for key in keys {
            if hot
                .get(key)
                .is_some_and(|l| l.plane == plane && l.segment == seg)
            {
                hot.remove(key);
            }
        }
        if hot.capacity() > 4 * hot.len() + (64 << 10) {
            let len = hot.len();
            hot.shrink_to(len + len / 4);
        }
    }

    /// Forgets the hot entries `drop` picks (those of segments removed).
    pub fn remove_hot_where(&self, drop: impl Fn(&Location) -> bool) {
        write(&self.hot).retain(|_, l| !drop(l));
    }

    /// A segment sealed: its run is written in the background (its blocks
    /// stay hot meanwhile).
    pub fn sealed(&self, plane: PlaneKind, seg: u64, entries: &[Entry]) {
        let guard = lock(&self.builder);
        let Some(b) = guard.as_ref() else { return };
        b.build(plane, seg, located(plane, seg, entries).collect());
    }

    /// Segments went away: runs that now list many stale entries are
    /// rewritten without them, in the background.
    pub fn segments_dropped(&self) {
        if let Some(b) = lock(&self.builder).as_ref() {
            b.compact(true);
        }
    }

    /// Waits until every run asked for so far is written and merged
    /// (tests, tools).
    pub fn settle(&self) {
        let done = lock(&self.builder).as_ref().map(|b| b.barrier());
        if let Some(rx) = done {
            let _ = rx.recv();
        }
    }

    /// Blocks known (those in runs counted once per run that lists them).
    pub fn len(&self) -> usize {
        let runs: u64 = read(&self.runs).iter().map(|r| r.count).sum();
        read(&self.hot).len() + runs as usize
    }

    /// (hot entries, runs, bytes of memory the runs keep).
    pub fn shape(&self) -> (usize, usize, u64) {
        let runs = read(&self.runs);
        (
            read(&self.hot).len(),
            runs.len(),
            runs.iter().map(|r| r.memory()).sum(),
        )
    }

    fn alive(&self, plane: PlaneKind, seg: u64) -> bool {
        self.residency.get(plane, seg).is_some()
    }
}

impl BlockLocations {
    /// Lets the builder and merger threads finish what they were sent and
    /// waits for them. Called when the log closes: a build in flight holds
    /// a reference of its own, so waiting for the last reference to go
    /// would let a log reopened on the same directory race that build.
    pub(crate) fn stop_builder(&self) {
        let handle = lock(&self.builder).take();
        if let Some(b) = handle {
            b.stop();
        }
    }
}

impl Drop for BlockLocations {
    fn drop(&mut self) {
        self.stop_builder();
    }
}
