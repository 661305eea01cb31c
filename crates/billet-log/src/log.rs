use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use billet_block::{Block, BlockError, BlockStore, Cid, Codec};
use bytes::Bytes;

use crate::collection::Collection;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fs::{LogFile, LogFs, StdFs};
use crate::locations::{BlockLocations, Location};
use crate::plane::Plane;
use crate::receipt::Receipt;
use crate::recovery::{Opening, list_plane, recover_plane};
use crate::residency::{ColdStore, Residency};
use crate::segment::{PlaneKind, remote_name, segment_name};

/// Whether a segment still takes appends, and where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    Open,
    /// Sealed, its file on local disk.
    Sealed,
    /// Sealed, its file removed: its bytes are only on the remote.
    Evicted,
}

/// One segment, as listed for the cold tier and for operators.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub plane: PlaneKind,
    pub id: u64,
    pub state: SegmentState,
    pub bytes: u64,
    pub blocks: u64,
    pub path: PathBuf,
    /// The cold tier left a note of a remote copy ([`Log::note_remote`]).
    pub noted: bool,
    /// Seconds since the Unix epoch of the last block read from it since
    /// the log opened; 0 if none.
    pub last_read_s: u64,
}

/// Read handles to segment files, at most `cap` kept open.
#[derive(Debug)]
pub(crate) struct Files {
    pub(crate) fs: Arc<dyn LogFs>,
    root: PathBuf,
    cap: usize,
    open: Mutex<HashMap<(PlaneKind, u64), Arc<dyn LogFile>>>,
}

impl Files {
    fn get(&self, plane: PlaneKind, seg: u64) -> std::io::Result<Arc<dyn LogFile>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(&(plane, seg)) {
            return Ok(f.clone());
        }
        let f = self
            .fs
            .open(&self.root.join(plane.name()).join(segment_name(seg)), false)?;
        if open.len() >= self.cap
            && let Some(k) = open.keys().next().copied()
        {
            open.remove(&k);
        }
        open.insert((plane, seg), f.clone());
        Ok(f)
    }

    pub(crate) fn forget(&self, plane: PlaneKind, seg: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(plane, seg));
    }
}

/// The two-plane journal. See the crate documentation.
pub struct Log {
    pub(crate) root: PathBuf,
    data: Arc<Plane>,
    catalog: Arc<Plane>,
    pub(crate) block_locations: Arc<BlockLocations>,
    pub(crate) residency: Arc<Residency>,
    /// A garbage collection in progress (see `collection`).
    pub(crate) collection: Arc<Collection>,
    /// Where reads of evicted segments go (the cold tier attaches it).
    pub(crate) cold: OnceLock<Arc<dyn ColdStore>>,
    pub(crate) files: Files,
    /// What opening had to repair or drop (only with `repair`).
    repairs: Vec<String>,
    /// Held while this process may write: a log has one writer.
    _lock: Option<std::fs::File>,
}

impl Drop for Log {
    fn drop(&mut self) {
        self.block_locations.stop_builder();
    }
}

/// An exclusive lock on `<dir>/LOCK` for as long as the log is open for
/// writing: a second writer (a server and an `import`, say) would
/// interleave frames in the open segments.
fn take_lock(root: &Path) -> Result<std::fs::File, LogError> {
    std::fs::create_dir_all(root).map_err(|e| LogError::io("creating", root, e))?;
    let path = root.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io("opening", &path, e))?;
    // A holder that is going away (a log being dropped in this process,
    // its last background task finishing) gets a moment to let go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Layout {
                    path,
                    reason: "another process is writing this log (a running `billet serve`?); stop it first".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io("locking", &path, e)),
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("root", &self.root)
            .field("blocks", &self.block_locations.len())
            .finish()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering both planes.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log, LogError> {
        Self::open_with(dir, config, Arc::new(StdFs))
    }

    pub fn open_with(
        dir: impl AsRef<Path>,
        config: LogConfig,
        fs: Arc<dyn LogFs>,
    ) -> Result<Log, LogError> {
        let root = dir.as_ref().to_path_buf();
        let lock = if config.read_only {
            None
        } else {
            Some(take_lock(&root)?)
        };
        let residency = Arc::new(Residency::default());
        let collection = Arc::new(Collection::default());
        let mut repairs = Vec::new();
        let mut listed = Vec::new();
        for kind in [PlaneKind::Data, PlaneKind::Catalog] {
            let pdir = root.join(kind.name());
            if config.read_only {
                if !pdir.is_dir() {
                    return Err(LogError::Layout {
                        path: pdir,
                        reason: "no such plane directory (is this a billet log?)".into(),
                    });
                }
            } else {
                fs.create_dir_all(&pdir)
                    .map_err(|e| LogError::io("creating", &pdir, e))?;
            }
            listed.push((kind, pdir.clone(), list_plane(fs.as_ref(), &pdir, &config)?));
        }
        collection.unfinished(listed.iter().flat_map(|(kind, _, ids)| {
            ids.iter()
                .filter(|(_, f)| f.retiring)
                .map(move |(id, _)| (*kind, *id))
        }));
        let alive: HashSet<(PlaneKind, u64)> = listed
            .iter()
            .flat_map(|(kind, _, ids)| ids.iter().map(move |(id, _)| (*kind, *id)))
            .collect();
        // Repair re-reads every sidecar: a run may list blocks it drops.
        let none = HashSet::new();
        let block_locations = Arc::new(BlockLocations::open(
            fs.clone(),
            root.join("locations"),
            residency.clone(),
            if config.repair { &none } else { &alive },
            config.read_only,
        )?);
        let covered = block_locations.covered();
        let mut planes = Vec::new();
        for ((kind, pdir, ids), pc) in listed.into_iter().zip([&config.data, &config.catalog]) {
            let opening = Opening {
                fs: fs.as_ref(),
                dir: &pdir,
                kind,
                config: &config,
                block_locations: &block_locations,
                covered: &covered,
            };
            let (writer, noted) = recover_plane(&opening, ids, &mut repairs)?;
            for s in &writer.sealed {
                residency.insert(kind, s.id, s.evicted, noted.contains(&s.id));
            }
            planes.push(Arc::new(Plane::new(
                kind,
                pdir,
                fs.clone(),
                pc.clone(),
                block_locations.clone(),
                residency.clone(),
                collection.clone(),
                writer,
                config.read_only,
            )));
        }
        block_locations.finish_open()?;
        let catalog = planes.pop().expect("two planes");
        let data = planes.pop().expect("two planes");
        Ok(Log {
            files: Files {
                fs,
                root: root.clone(),
                cap: config.max_open_files.max(2),
                open: Mutex::new(HashMap::new()),
            },
            root,
            data,
            catalog,
            block_locations,
            residency,
            collection,
            cold: OnceLock::new(),
            repairs,
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads a plane's segment files once, front to back, so the page
    /// cache holds them: a walk that then reads their blocks in tree order
    /// (the catalog plane during an export: small, but read in random
    /// order) does no small random disk reads. Returns the bytes read.
    pub fn prefetch(&self, plane: PlaneKind) -> Result<u64, LogError> {
        use std::io::Read;
        let dir = self.root.join(plane.name());
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let entries = std::fs::read_dir(&dir).map_err(|e| LogError::io("listing", &dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| LogError::io("listing", &dir, e))?.path();
            if path.extension().is_none_or(|x| x != "car") {
                continue;
            }
            let mut f =
                std::fs::File::open(&path).map_err(|e| LogError::io("opening", &path, e))?;
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| LogError::io("reading", &path, e))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        Ok(total)
    }

    /// What opening with `repair` dropped, one line per problem.
    pub fn repairs(&self) -> &[String] {
        &self.repairs
    }

    pub(crate) fn plane(&self, kind: PlaneKind) -> &Arc<Plane> {
        match kind {
            PlaneKind::Data => &self.data,
            PlaneKind::Catalog => &self.catalog,
        }
    }

    /// Writes blocks to the data plane (not yet durable).
    pub fn write_data(&self, blocks: &[Block]) -> Result<Receipt, LogError> {
        self.write_to(PlaneKind::Data, blocks)
    }

    /// Writes blocks to the catalog plane (not yet durable).
    pub fn write_catalog(&self, blocks: &[Block]) -> Result<Receipt, LogError> {
        self.write_to(PlaneKind::Catalog, blocks)
    }

    /// Writes each block to its plane: raw blocks to data, the rest to
    /// catalog.
    pub fn write(&self, blocks: &[Block]) -> Result<Receipt, LogError> {
        let (data, catalog): (Vec<Block>, Vec<Block>) = blocks
            .iter()
            .cloned()
            .partition(|b| b.codec() == Codec::Raw);
        let mut r = Receipt::default();
        if !data.is_empty() {
            r = r.merge(self.write_data(&data)?);
        }
        if !catalog.is_empty() {
            r = r.merge(self.write_catalog(&catalog)?);
        }
        Ok(r)
    }

    fn write_to(&self, kind: PlaneKind, blocks: &[Block]) -> Result<Receipt, LogError> {
        let plane = self.plane(kind);
        let lsn = plane.write(blocks)?;
        if plane.seal_due() {
            // The blocks are written either way; a failed seal fsync has
            // already failed their LSNs, which `sync` will report.
            let _ = plane.seal(false);
        }
        Ok(Receipt::for_plane(kind, lsn))
    }

    /// Waits until everything `receipt` covers is durable: data plane
    /// first, then catalog plane.
    pub async fn sync(&self, receipt: Receipt) -> Result<(), LogError> {
        self.data.wait_durable(receipt.data).await?;
        self.catalog.wait_durable(receipt.catalog).await
    }

    /// Writes a batch and returns once it is durable.
    pub async fn append(&self, data: &[Block], catalog: &[Block]) -> Result<(), LogError> {
        let mut r = Receipt::default();
        if !data.is_empty() {
            r = r.merge(self.write_data(data)?);
        }
        if !catalog.is_empty() {
            r = r.merge(self.write_catalog(catalog)?);
        }
        self.sync(r).await
    }

    /// Seals every open segment that is due by size or age (call it
    /// periodically so idle segments seal and can ship).
    pub fn seal_due(&self) -> Result<(), LogError> {
        self.data.seal(false)?;
        self.catalog.seal(false)
    }

    /// Seals both open segments now if they hold any block.
    pub fn seal_all(&self) -> Result<(), LogError> {
        self.data.seal(true)?;
        self.catalog.seal(true)
    }

    /// Segments of both planes, oldest first per plane.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut out = Vec::new();
        for plane in [&self.data, &self.catalog] {
            let w = plane.writer();
            for s in &w.sealed {
                let r = self.residency.get(plane.kind(), s.id);
                let evicted = s.evicted || r.as_ref().is_some_and(|r| r.is_evicted());
                out.push(SegmentInfo {
                    plane: plane.kind(),
                    id: s.id,
                    state: if evicted {
                        SegmentState::Evicted
                    } else {
                        SegmentState::Sealed
                    },
                    bytes: s.len,
                    blocks: s.blocks,
                    path: s.path.clone(),
                    noted: r.as_ref().is_some_and(|r| r.is_noted()),
                    last_read_s: r.as_ref().map_or(0, |r| r.last_read()),
                });
            }
            out.push(SegmentInfo {
                plane: plane.kind(),
                id: w.seg_id,
                state: SegmentState::Open,
                bytes: w.len,
                blocks: w.entries.len() as u64,
                path: plane.dir().join(segment_name(w.seg_id)),
                noted: false,
                last_read_s: 0,
            });
        }
        out
    }

    /// The id of `plane`'s open segment. Every block written from now on
    /// lands in it or a later one.
    pub fn open_segment(&self, plane: PlaneKind) -> u64 {
        self.plane(plane).writer().seg_id
    }

    /// The newest segment of `plane` holding a block: every block written
    /// so far is in it or an earlier one. `None` if the plane holds none.
    pub fn last_written_segment(&self, plane: PlaneKind) -> Option<u64> {
        let w = self.plane(plane).writer();
        if w.len > w.start_len {
            Some(w.seg_id)
        } else {
            w.seg_id.checked_sub(1)
        }
    }

    /// Calls `f` with every block of `plane`'s segments numbered `from` and
    /// up, sealed and open, in the order they were written. Roll-forward
    /// reads the catalog plane's tail with it at start-up.
    pub fn scan_from(
        &self,
        plane: PlaneKind,
        from: u64,
        f: &mut dyn FnMut(Block),
    ) -> Result<(), LogError> {
        let segments: Vec<SegmentInfo> = self
            .segments()
            .into_iter()
            .filter(|s| s.plane == plane && s.id >= from)
            .collect();
        for s in segments {
            let damaged = |e: billet_car::CarError| LogError::DamagedSegment {
                path: s.path.clone(),
                offset: e.offset(),
                reason: e.to_string(),
            };
            if s.state == SegmentState::Evicted {
                let bytes = self
                    .read_cold(plane, s.id, 0, s.bytes)
                    .map_err(|e| LogError::io("reading the remote copy of", &s.path, e))?;
                crate::recovery::blocks_in(&bytes[..], f).map_err(damaged)?;
                continue;
            }
            let file = self
                .files
                .get(plane, s.id)
                .map_err(|e| LogError::io("opening", &s.path, e))?;
            crate::recovery::blocks(file.as_ref(), s.bytes, f).map_err(damaged)?;
        }
        Ok(())
    }

    pub(crate) fn plane_dir(&self, plane: PlaneKind) -> PathBuf {
        self.root.join(plane.name())
    }

    /// fsyncs issued by the data and catalog planes since opening.
    pub fn fsyncs(&self) -> (u64, u64) {
        (self.data.fsyncs(), self.catalog.fsyncs())
    }

    /// Blocks known to the log (a block listed by two location runs
    /// counts twice until they merge).
    pub fn len(&self) -> usize {
        self.block_locations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.block_locations.len() == 0
    }

    /// Where the block locations are kept: entries in memory, location
    /// runs on disk, and the bytes of memory the runs keep (filters and
    /// sparse keys).
    pub fn location_shape(&self) -> (usize, usize, u64) {
        self.block_locations.shape()
    }

    /// Waits until every sealed segment's locations are written to a run
    /// (the background writer has caught up).
    pub fn settle_locations(&self) {
        self.block_locations.settle();
    }

    /// Whether the segment a location names is still there (sealed, or
    /// the plane's open segment).
    fn segment_exists(&self, loc: Location) -> bool {
        self.residency.get(loc.plane, loc.segment).is_some()
            || self.open_segment(loc.plane) == loc.segment
    }

    fn read(&self, cid: &Cid, loc: Location) -> Result<Bytes, BlockError> {
        let io = |source| BlockError::Io { cid: *cid, source };
        let resident = self.residency.get(loc.plane, loc.segment);
        if let Some(r) = &resident {
            r.touch();
        }
        let cold = || -> Result<Bytes, BlockError> {
            let data = self
                .read_cold(loc.plane, loc.segment, loc.offset, u64::from(loc.len))
                .map_err(io)?;
            Ok(Block::verified(*cid, data)?.into_parts().1)
        };
        if resident.as_ref().is_some_and(|r| r.is_evicted()) {
            return cold();
        }
        let file = match self.files.get(loc.plane, loc.segment) {
            Ok(f) => f,
            // Evicted between the check and the open, here or by the
            // server beside a read-only open (which then left its note).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && resident.as_ref().is_some_and(|r| {
                        r.is_evicted()
                            || self
                                .plane_dir(loc.plane)
                                .join(remote_name(loc.segment))
                                .exists()
                    }) =>
            {
                if let Some(r) = &resident {
                    r.set_noted();
                    r.set_evicted();
                }
                return cold();
            }
            Err(e) => return Err(io(e)),
        };
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(io)?;
        Ok(Block::verified(*cid, buf)?.into_parts().1)
    }
}

impl BlockStore for Log {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        let locate = || {
            self.block_locations
                .get(cid)
                .map_err(|source| BlockError::Io { cid: *cid, source })?
                .ok_or(BlockError::Missing(*cid))
        };
        let loc = locate()?;
        match self.read(cid, loc) {
            // The collector may have moved the block and dropped the
            // segment between the lookup and the read: look again.
            Err(BlockError::Io { .. }) if !self.segment_exists(loc) => self.read(cid, locate()?),
            r => r,
        }
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        Ok(self
            .block_locations
            .get(cid)
            .map_err(|source| BlockError::Io { cid: *cid, source })?
            .is_some())
    }

    fn prefetch_window(&self) -> u64 {
        self.cold.get().map_or(0, |c| c.prefetch_window())
    }

    fn prefetch(&self, cids: &[Cid]) {
        self.prefetch_evicted(cids);
    }
}
