//! One plane: its open segment, its sealed segments, and group commit.
//!
//! Every byte ever appended to a plane has a log sequence number (LSN): the
//! plane's running byte count, never reused (when an unsynced tail is cut
//! off after an fsync failure, numbering resumes above everything that was
//! written). A write returns the LSN its bytes end at; durability is one
//! number per plane, `durable`, plus the ranges that failed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use billet_block::Block;
use billet_car::{Limits, frame_prefix};

use crate::collection::{Collection, Reuse};
use crate::config::PlaneConfig;
use crate::error::LogError;
use crate::fs::{LogFile, LogFs, write_durable};
use crate::locations::{BlockLocations, Location, key_of};
use crate::residency::Residency;
use crate::segment::{PlaneKind, segment_name, sidecar_name};
use crate::segment_file::{NewSegment, create_segment, open_sync_files};
use crate::sidecar::{self, Entry};

/// A sealed segment, as listed for the cold tier.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub id: u64,
    pub len: u64,
    pub blocks: u64,
    pub path: PathBuf,
    /// Its file is gone; its bytes are only on the remote.
    pub evicted: bool,
}

pub(crate) struct Writer {
    pub seg_id: u64,
    /// The handle appends go through.
    pub file: Arc<dyn LogFile>,
    /// Separate handles for fsync, one per sync slot (see `SYNC_SLOTS`).
    pub sync_files: Vec<Arc<dyn LogFile>>,
    /// Bytes in the open segment.
    pub len: u64,
    /// Bytes of CAR header and descriptor at the segment's start.
    pub start_len: u64,
    /// LSN of offset 0 of the open segment.
    pub base_lsn: u64,
    /// Blocks in the open segment, in file order.
    pub entries: Vec<Entry>,
    pub first_write: Option<Instant>,
    pub created: SystemTime,
    pub sealed: Vec<Sealed>,
}

impl Writer {
    fn lsn(&self) -> u64 {
        self.base_lsn + self.len
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Durability bookkeeping of a plane, behind one mutex.
#[derive(Default)]
struct SyncState {
    /// Every LSN up to here is durable.
    durable: u64,
    /// LSN ranges `(lo, hi]` whose bytes were lost to a failed fsync.
    failed: Vec<(u64, u64, String)>,
    /// The highest LSN an fsync in flight is known to cover.
    covering: u64,
    /// Sync slots not in use (see `SYNC_SLOTS`).
    free: Vec<usize>,
    /// Waiters by the LSN they need durable.
    waiters: BTreeMap<u64, Vec<Reply>>,
}

impl SyncState {
    fn failure(&self, target: u64) -> Option<&str> {
        self.failed
            .iter()
            .find(|(lo, hi, _)| target > *lo && target <= *hi)
            .map(|(_, _, why)| why.as_str())
    }

    /// Waiters now settled (durable, or inside a failed range) with their
    /// answers; sent by the caller after releasing the lock.
    fn settle(&mut self) -> Vec<(Reply, Result<(), String>)> {
        let mut out = Vec::new();
        let pending = self.waiters.split_off(&(self.durable + 1));
        for (_, replies) in std::mem::replace(&mut self.waiters, pending) {
            out.extend(replies.into_iter().map(|r| (r, Ok(()))));
        }
        if !self.failed.is_empty() {
            let failed: Vec<u64> = self
                .waiters
                .keys()
                .copied()
                .filter(|t| self.failure(*t).is_some())
                .collect();
            for t in failed {
                let why = self.failure(t).unwrap_or_default().to_string();
                for r in self.waiters.remove(&t).unwrap_or_default() {
                    out.push((r, Err(why.clone())));
                }
            }
        }
        out
    }
}

fn send_all(replies: Vec<(Reply, Result<(), String>)>) {
    for (r, v) in replies {
        // A waiter that went away no longer needs its answer.
        let _ = r.send(v);
    }
}

pub struct Plane {
    kind: PlaneKind,
    dir: PathBuf,
    fs: Arc<dyn LogFs>,
    config: PlaneConfig,
    /// Where every block of the log is, shared by both planes.
    block_locations: Arc<BlockLocations>,
    /// Where each sealed segment's bytes are, shared by both planes.
    residency: Arc<Residency>,
    /// A garbage collection in progress, shared by both planes.
    collection: Arc<Collection>,
    writer: Mutex<Writer>,
    /// fsyncs hold it shared (several may be in flight); cutting a tail and
    /// sealing hold it exclusively, so neither overlaps an fsync.
    gate: RwLock<()>,
    sync: Mutex<SyncState>,
    poisoned: AtomicBool,
    read_only: bool,
    fsyncs: AtomicU64,
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plane").field("kind", &self.kind).finish()
    }
}

const BIG_BLOCK: usize = 64 << 10;

/// fsyncs one plane may have in flight at once. Overlapping fsyncs let the
/// device work on several flushes together, and each still covers every
/// write made before it started. Measured with 64 writers of 4 KiB: 1 or 2
/// slots ~65k blocks/s, 4 slots ~47k (groups get too small).
pub(crate) const SYNC_SLOTS: usize = 2;

/// Longest an fsync waits for the writers the previous one released.
/// Measured with 64 writers: no wait ~43k blocks/s, 300 µs ~65k, 1 ms ~58k.
const GROUP_WAIT: Duration = Duration::from_micros(300);

impl Plane {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: PlaneKind,
        dir: PathBuf,
        fs: Arc<dyn LogFs>,
        config: PlaneConfig,
        block_locations: Arc<BlockLocations>,
        residency: Arc<Residency>,
        collection: Arc<Collection>,
        writer: Writer,
        read_only: bool,
    ) -> Plane {
        let sync = SyncState {
            durable: writer.lsn(),
            free: (0..SYNC_SLOTS).collect(),
            ..SyncState::default()
        };
        Plane {
            kind,
            dir,
            fs,
            config,
            block_locations,
            residency,
            collection,
            writer: Mutex::new(writer),
            gate: RwLock::new(()),
            sync: Mutex::new(sync),
            poisoned: AtomicBool::new(false),
            read_only,
            fsyncs: AtomicU64::new(0),
        }
    }

    pub fn kind(&self) -> PlaneKind {
        self.kind
    }

    /// fsyncs this plane has issued (segment data, not directories).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer> {
        // The writer's fields are restored before any early return, so a
        // panic cannot leave them inconsistent with the file.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate_shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    fn gate_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    fn sync_state(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_poison(&self) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::Layout {
                path: self.dir.clone(),
                reason: "the log was opened read-only".into(),
            });
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(LogError::Poisoned { plane: self.kind });
        }
        Ok(())
    }

    /// Appends blocks to the open segment (page cache, not yet durable);
    /// blocks already in this plane are not written again (unless a
    /// collection asks for a fresh copy: see `collection`). Returns the
    /// LSN to wait for.
    pub(crate) fn write(&self, blocks: &[Block]) -> Result<u64, LogError> {
        let block_locations = &self.block_locations;
        let max = Limits::MAX_BLOCK_BYTES;
        if let Some(b) = blocks.iter().find(|b| b.len() as u64 > max) {
            return Err(LogError::BlockTooLarge {
                cid: *b.cid(),
                len: b.len(),
                max,
            });
        }
        self.check_poison()?;
        // Looked up before the writer lock is taken: a lookup may read a
        // location run from disk. Under the lock only the in-memory part
        // is looked at again (another writer may just have written one).
        let known: Vec<Option<Location>> = blocks
            .iter()
            .map(|b| block_locations.get(b.cid()))
            .collect::<Result<_, _>>()
            .map_err(|e| LogError::io("looking up blocks in", self.dir.clone(), e))?;
        let mut w = self.writer();
        let start = w.len;
        let mut target = 0;
        let mut pending: Vec<Entry> = Vec::new();
        let mut seen: HashSet<crate::locations::Key, foldhash::fast::RandomState> =
            HashSet::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut at = start;
        let result = (|| -> std::io::Result<()> {
            for (b, known) in blocks.iter().zip(known) {
                let Some(key) = key_of(b.cid()) else { continue };
                if !seen.insert(key) {
                    continue;
                }
                if let Some(loc) = block_locations.get_hot(b.cid()).or(known)
                    && loc.plane == self.kind
                {
                    if loc.segment == w.seg_id {
                        target = target.max(w.base_lsn + loc.offset + loc.len as u64);
                        continue;
                    }
                    // In a sealed segment, durable already: kept unless
                    // the collector is taking that segment, in which case
                    // another copy may do.
                    if self.reusable(b.cid(), loc, &key) {
                        continue;
                    }
                }
                let prefix = frame_prefix(b.cid(), b.len());
                let data_offset = at + buf.len() as u64 + prefix.len() as u64;
                if b.len() >= BIG_BLOCK {
                    // Large blocks go straight from their buffer.
                    buf.extend_from_slice(&prefix);
                    w.file.write_all_at(&buf, at)?;
                    at += buf.len() as u64;
                    buf.clear();
                    w.file.write_all_at(b.data(), at)?;
                    at += b.len() as u64;
                } else {
                    buf.extend_from_slice(&prefix);
                    buf.extend_from_slice(b.data());
                }
                pending.push(Entry {
                    cid: *b.cid(),
                    offset: data_offset,
                    len: b.len() as u32,
                });
            }
            if !buf.is_empty() {
                w.file.write_all_at(&buf, at)?;
                at += buf.len() as u64;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Cut whatever part of this call reached the file.
            if w.file.set_len(start).is_err() {
                self.poisoned.store(true, Ordering::SeqCst);
            }
            return Err(LogError::io(
                "appending to",
                self.dir.join(segment_name(w.seg_id)),
                e,
            ));
        }
        if !pending.is_empty() {
            w.len = at;
            let seg = w.seg_id;
            let kind = self.kind;
            block_locations.insert_hot(pending.iter().map(|e| {
                (
                    e.cid,
                    Location {
                        plane: kind,
                        segment: seg,
                        offset: e.offset,
                        len: e.len,
                    },
                )
            }));
            w.first_write.get_or_insert_with(Instant::now);
            w.entries.extend(pending);
            target = target.max(w.lsn());
        }
        Ok(target)
    }

    /// Whether a write of `b` may skip writing it, reusing the copy at
    /// `loc` in a sealed segment or, when the collector is taking that
    /// one, another copy the log holds (a second copy would stay for
    /// ever). Caller holds the writer lock.
    pub(crate) fn reusable(
        &self,
        cid: &billet_block::Cid,
        loc: Location,
        key: &crate::locations::Key,
    ) -> bool {
        if self.residency.get(self.kind, loc.segment).is_none() {
            return false;
        }
        if self.collection.reuse(self.kind, loc.segment, key) == Reuse::Dedup {
            return true;
        }
        matches!(
            self.block_locations.get_other(cid, self.kind, loc.segment),
            Ok(Some(other)) if other.plane == self.kind
                && self.residency.get(self.kind, other.segment).is_some()
                && self.collection.reuse(self.kind, other.segment, key) == Reuse::Dedup
        )
    }

    /// Whether the open segment should seal now.
    pub(crate) fn seal_due(&self) -> bool {
        let w = self.writer();
        w.len > w.start_len
            && (w.len >= self.config.seal_bytes
                || w.first_write
                    .is_some_and(|t| t.elapsed() >= self.config.seal_after))
    }

    /// Waits until every byte up to `target` is durable. If no fsync in
    /// flight will cover it, starts one (group commit: that fsync releases
    /// every waiter whose bytes it covered).
    pub(crate) async fn wait_durable(self: &Arc<Self>, target: u64) -> Result<(), LogError> {
        if target == 0 {
            return Ok(());
        }
        self.check_poison()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot = {
            let mut st = self.sync_state();
            if let Some(why) = st.failure(target) {
                return Err(self.sync_failed(why.to_string()));
            }
            if st.durable >= target {
                return Ok(());
            }
            st.waiters.entry(target).or_default().push(tx);
            self.claim_slot(&mut st, target)
        };
        if let Some(slot) = slot {
            let me = self.clone();
            // Detached: the loop runs until no waiter is left uncovered.
            drop(tokio::task::spawn_blocking(move || me.sync_loop(slot)));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(self.sync_failed(why)),
            Err(_) => Err(LogError::Poisoned { plane: self.kind }),
        }
    }

    /// Before an fsync, waits (at most `GROUP_WAIT`) until as many writers
    /// are waiting as the last fsync released: with many concurrent writers
    /// the released ones are busy appending their next bytes, and an fsync
    /// started a moment later covers all of them instead of a few.
    fn gather(&self, expected: usize) {
        let deadline = Instant::now() + GROUP_WAIT;
        while Instant::now() < deadline {
            let waiting: usize = self.sync_state().waiters.values().map(Vec::len).sum();
            if waiting >= expected {
                return;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    fn sync_failed(&self, reason: String) -> LogError {
        LogError::SyncFailed {
            plane: self.kind,
            reason,
        }
    }

    /// A free slot, if an fsync is needed for `target` and one is free.
    fn claim_slot(&self, st: &mut SyncState, target: u64) -> Option<usize> {
        if st.covering >= target {
            return None;
        }
        let slot = st.free.pop()?;
        st.covering = st.covering.max(self.writer().lsn());
        Some(slot)
    }

    /// Group fsyncs on sync slot `slot`, repeated while waiters remain that
    /// no fsync in flight covers. Each fsync covers everything written when
    /// it starts. Up to `SYNC_SLOTS` loops run at once, each on its own file
    /// handle, because Linux reports a writeback error once per open file:
    /// with distinct handles every fsync in flight during a failure sees it,
    /// so none can claim success for bytes that were lost.
    fn sync_loop(&self, slot: usize) {
        let mut last_group = 0usize;
        loop {
            if last_group > 1 {
                self.gather(last_group);
            }
            let gate = self.gate_shared();
            let (file, upto, seg) = {
                let w = self.writer();
                (w.sync_files[slot].clone(), w.lsn(), w.seg_id)
            };
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            let replies = match file.sync_data() {
                Ok(()) => {
                    // Recorded before the gate is released: a cut that
                    // follows must see these bytes as durable and keep them.
                    let mut st = self.sync_state();
                    st.durable = st.durable.max(upto);
                    let r = st.settle();
                    drop(st);
                    drop(gate);
                    r
                }
                Err(e) => {
                    drop(gate);
                    let gate = self.gate_exclusive();
                    let range = self.cut_unsynced(seg, &e);
                    drop(gate);
                    let mut st = self.sync_state();
                    st.failed.push(range);
                    st.settle()
                }
            };
            last_group = replies.len();
            send_all(replies);
            let mut st = self.sync_state();
            let highest = st.waiters.last_key_value().map(|(t, _)| *t);
            match highest {
                Some(t) if t > st.covering && !self.poisoned.load(Ordering::SeqCst) => {
                    st.covering = st.covering.max(self.writer().lsn());
                }
                _ => {
                    st.free.push(slot);
                    if self.poisoned.load(Ordering::SeqCst) {
                        let all = std::mem::take(&mut st.waiters);
                        drop(st);
                        for r in all.into_values().flatten() {
                            let _ = r.send(Err("the plane is poisoned".into()));
                        }
                    }
                    return;
                }
            }
        }
    }

    /// After a failed fsync the unsynced tail may or may not be on disk, and
    /// Linux may report the next fsync as a success anyway: cut the tail
    /// off, forget its blocks, and fail every LSN in it. Fresh file handles
    /// replace the sync handles so the old error is not reported again.
    /// Returns the failed range. Caller holds the gate exclusively.
    fn cut_unsynced(&self, seg: u64, err: &std::io::Error) -> (u64, u64, String) {
        let durable = self.sync_state().durable;
        let mut w = self.writer();
        let written = w.lsn();
        let why = format!("fsync of {} failed: {err}", segment_name(seg));
        if w.seg_id != seg {
            // Sealed meanwhile by a successful fsync of everything: nothing
            // of the failed range is left unsynced in the open segment.
            return (durable, written, why);
        }
        let keep = durable
            .saturating_sub(w.base_lsn)
            .max(w.start_len)
            .min(w.len);
        let cut: Vec<Entry> = w
            .entries
            .iter()
            .filter(|e| e.offset >= keep)
            .copied()
            .collect();
        w.entries.retain(|e| e.offset < keep);
        for e in &cut {
            self.block_locations.remove_hot_if(
                &e.cid,
                Location {
                    plane: self.kind,
                    segment: seg,
                    offset: e.offset,
                    len: e.len,
                },
            );
        }
        let path = self.dir.join(segment_name(seg));
        let cut_ok = w
            .file
            .set_len(keep)
            .and_then(|()| open_sync_files(self.fs.as_ref(), &path))
            .and_then(|files| {
                files[0].sync_data()?;
                Ok(files)
            });
        match cut_ok {
            Ok(files) => w.sync_files = files,
            Err(_) => {
                self.poisoned.store(true, Ordering::SeqCst);
                return (durable, u64::MAX, why);
            }
        }
        w.len = keep;
        // Numbering resumes above everything written: new bytes can never
        // be mistaken for the lost ones.
        w.base_lsn = written + 1 - keep;
        (durable, written, why)
    }

    /// Seals the open segment if it is due (or `force` and non-empty):
    /// fsync it, start the next segment, then write its sidecar.
    pub(crate) fn seal(&self, force: bool) -> Result<(), LogError> {
        self.check_poison()?;
        let gate = self.gate_exclusive();
        let mut w = self.writer();
        let due = w.len >= self.config.seal_bytes
            || w.first_write
                .is_some_and(|t| t.elapsed() >= self.config.seal_after);
        if w.len <= w.start_len || !(force || due) {
            return Ok(());
        }
        let seg = w.seg_id;
        let path = self.dir.join(segment_name(seg));
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = w.sync_files[0].sync_data() {
            drop(w);
            let range = self.cut_unsynced(seg, &e);
            drop(gate);
            let replies = {
                let mut st = self.sync_state();
                st.failed.push(range);
                st.settle()
            };
            send_all(replies);
            return Err(LogError::io("syncing", path, e));
        }
        let end = w.lsn();
        // The next segment exists (durably) before the sidecar is written:
        // a crash in between leaves a sealed segment without a sidecar,
        // which opening rebuilds, never two open segments.
        let next = seg + 1;
        let NewSegment {
            file,
            sync_files,
            start_len,
        } = create_segment(self.fs.as_ref(), &self.dir, self.kind, next)?;
        let sidecar = sidecar::encode(self.kind, seg, w.len, &w.entries);
        let sidecar_result =
            write_durable(self.fs.as_ref(), &self.dir, &sidecar_name(seg), &sidecar)
                .map_err(|e| LogError::io("writing sidecar for", path.clone(), e));
        let sealed = Sealed {
            id: seg,
            len: w.len,
            blocks: w.entries.len() as u64,
            path,
            evicted: false,
        };
        w.sealed.push(sealed);
        self.residency.insert(self.kind, seg, false, false);
        w.seg_id = next;
        w.file = file;
        w.sync_files = sync_files;
        w.base_lsn = end;
        w.len = start_len;
        w.start_len = start_len;
        let entries = std::mem::take(&mut w.entries);
        w.first_write = None;
        w.created = SystemTime::now();
        let now_durable = w.lsn();
        drop(w);
        // Its blocks stay in memory until their run is written.
        self.block_locations.sealed(self.kind, seg, &entries);
        drop(entries);
        let replies = {
            let mut st = self.sync_state();
            st.durable = st.durable.max(now_durable);
            st.settle()
        };
        drop(gate);
        send_all(replies);
        sidecar_result
    }
}
