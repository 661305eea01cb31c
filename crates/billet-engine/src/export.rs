//! Export: a bucket as one CARv1 stream whose root is its head commit.
//!
//! Order lets a reader verify as it reads (every block comes after a block
//! that links it): the commit, then the MST in pre-order — each node, then
//! for each position its left subtree and then the entry's value: the
//! manifest, its body (file nodes before their children), and the older
//! versions its `prev` chain reaches. With history, each earlier commit the
//! bucket's retention keeps follows with whatever of its DAG was not
//! already written. Every link in the file resolves inside it: a commit
//! names its predecessor by CID bytes, not by link (a version-1 commit
//! links it, so the commits it links come too). Every block is written
//! once; memory holds the set of CIDs written, never block data beyond the
//! one being copied.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use billet_block::{BlockStore, Cid, Codec};
use billet_car::CarWriter;
use billet_mst::{Mst, MstError};
use billet_records::{Commit, Manifest};
use billet_unixfs::decode_file_node;
use bytes::Bytes;
use ipld_core::ipld::Ipld;

use crate::error::EngineError;

/// Which earlier commits an export holds besides the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportHistory {
    /// The head's DAG alone (for a version-1 head, with the commits its
    /// `prev` links reach).
    Head,
    /// Every earlier commit down to this sequence number (the oldest the
    /// bucket's retention keeps), each with its DAG.
    Down(u64),
}

/// Running totals, passed to the progress callback as blocks are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub blocks: u64,
    /// Bytes of CAR written so far.
    pub car_bytes: u64,
    /// Keys of the head's MST written.
    pub objects: u64,
    /// Manifests written (every version, delete markers included).
    pub versions: u64,
    pub commits: u64,
}

/// Blocks queued for the writer thread, and body chunks being read ahead
/// of it: reading, verifying and writing overlap, with at most this many
/// blocks (a chunk is at most 4 MiB) in flight each way.
const WRITE_AHEAD: usize = 32;
const READ_AHEAD: usize = 32;
/// Threads reading and verifying body chunks: more than the cores, so
/// that disk reads overlap too.
const READERS: usize = 4;

/// A block for the writer: its bytes, or a chunk a reader is fetching.
enum Pending {
    Ready(Cid, Bytes),
    Reading(Cid, Receiver<Result<Bytes, EngineError>>),
}

type ReadJob = (Cid, SyncSender<Result<Bytes, EngineError>>);

struct Exporter<'a, S> {
    store: &'a S,
    /// To the thread that writes the CAR, in order.
    tx: SyncSender<Pending>,
    /// To the threads that read body chunks.
    reads: SyncSender<ReadJob>,
    written: HashSet<Cid>,
    stats: ExportStats,
    /// Bytes the writer has written (progress only).
    car_bytes: &'a AtomicU64,
    progress: &'a mut dyn FnMut(&ExportStats),
}

fn writer_gone() -> EngineError {
    EngineError::Task("the CAR writer stopped".into())
}

impl<S: BlockStore> Exporter<'_, S> {
    fn count(&mut self) {
        self.stats.blocks += 1;
        if self.stats.blocks.is_multiple_of(64) {
            self.stats.car_bytes = self.car_bytes.load(Ordering::Relaxed);
            (self.progress)(&self.stats);
        }
    }

    /// Writes `cid` unless it already was; returns its bytes when written.
    fn emit(&mut self, cid: &Cid) -> Result<Option<Bytes>, EngineError> {
        if self.written.contains(cid) {
            return Ok(None);
        }
        let data = self.store.get(cid)?;
        self.tx
            .send(Pending::Ready(*cid, data.clone()))
            .map_err(|_| writer_gone())?;
        self.written.insert(*cid);
        self.count();
        Ok(Some(data))
    }

    /// Writes a raw chunk unless it already was; a reader thread fetches
    /// and verifies it while the walk goes on.
    fn emit_chunk(&mut self, cid: &Cid) -> Result<(), EngineError> {
        if !self.written.insert(*cid) {
            return Ok(());
        }
        let (tx, rx) = sync_channel(1);
        self.reads.send((*cid, tx)).map_err(|_| writer_gone())?;
        self.tx
            .send(Pending::Reading(*cid, rx))
            .map_err(|_| writer_gone())?;
        self.count();
        Ok(())
    }

    /// A body: file nodes before their children, leaves in file order.
    fn body(&mut self, root: &Cid) -> Result<(), EngineError> {
        if root.codec() == Codec::Raw.code() {
            return self.emit_chunk(root);
        }
        let Some(data) = self.emit(root)? else {
            return Ok(());
        };
        if root.codec() == Codec::DagPb.code() {
            let node = decode_file_node(&data)
                .map_err(|e| EngineError::Invalid(format!("UnixFS node {root}: {e}")))?;
            for (child, _) in node.children {
                self.body(&child)?;
            }
        }
        Ok(())
    }

    /// A key's value: its manifest chain, newest first, each with its body.
    fn value(&mut self, head: &Cid) -> Result<(), EngineError> {
        let mut next = Some(*head);
        while let Some(cid) = next {
            let Some(data) = self.emit(&cid)? else {
                // Written before, with everything below it.
                return Ok(());
            };
            self.stats.versions += 1;
            let m = Manifest::decode(&data)?;
            if let Some(body) = m.body {
                self.body(&body)?;
            }
            next = m.prev;
        }
        Ok(())
    }

    /// Any DAG not written yet, in pre-order with links in field order
    /// (the parts of older commits the head does not share). Iterative:
    /// version chains and trees can be deeper than a thread's stack.
    fn dag(&mut self, root: &Cid) -> Result<(), EngineError> {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            if cid.codec() == Codec::Raw.code() {
                self.emit_chunk(&cid)?;
                continue;
            }
            let Some(data) = self.emit(&cid)? else {
                continue;
            };
            let mut links: Vec<Cid> = match Codec::from_code(cid.codec()) {
                Some(Codec::DagCbor) => {
                    let value: Ipld = billet_block::decode_dag_cbor(&data)
                        .map_err(|e| EngineError::Invalid(format!("block {cid}: {e}")))?;
                    let mut out = Vec::new();
                    collect_links(&value, &mut out);
                    out
                }
                Some(Codec::DagPb) => decode_file_node(&data)
                    .map_err(|e| EngineError::Invalid(format!("UnixFS node {cid}: {e}")))?
                    .children
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect(),
                _ => Vec::new(),
            };
            links.reverse();
            stack.extend(links);
        }
        Ok(())
    }
}

fn collect_links(v: &Ipld, out: &mut Vec<Cid>) {
    match v {
        Ipld::Link(c) => out.push(*c),
        Ipld::List(items) => items.iter().for_each(|i| collect_links(i, out)),
        Ipld::Map(m) => m.values().for_each(|i| collect_links(i, out)),
        _ => {}
    }
}

/// Streams the bucket DAG under `head` to `out` as a CARv1 (see the module
/// docs for the order). `history` says which earlier commits come too,
/// each with what it reaches. Blocks are read and verified on the calling
/// thread and written on a second one, so the two overlap.
pub fn export_car<S: BlockStore, W: Write + Send>(
    store: &S,
    head: &Cid,
    history: ExportHistory,
    out: W,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<(ExportStats, W), EngineError> {
    let io = |source: std::io::Error| EngineError::Io {
        what: "writing the CAR".into(),
        source,
    };
    let car = CarWriter::new(out, &[*head]).map_err(io)?;
    let header = car.offset();
    let car_bytes = AtomicU64::new(header);
    let (reads, jobs) = sync_channel::<ReadJob>(READ_AHEAD);
    let jobs = std::sync::Mutex::new(jobs);
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Pending>(WRITE_AHEAD);
        let car_bytes = &car_bytes;
        let writer = scope.spawn(move || -> Result<CarWriter<W>, EngineError> {
            let mut car = car;
            for item in rx {
                let (cid, data) = match item {
                    Pending::Ready(cid, data) => (cid, data),
                    Pending::Reading(cid, rx) => (cid, rx.recv().map_err(|_| writer_gone())??),
                };
                car.write_raw(&cid, &data).map_err(io)?;
                car_bytes.store(car.offset(), Ordering::Relaxed);
            }
            car.flush().map_err(io)?;
            Ok(car)
        });
        for _ in 0..READERS {
            let jobs = &jobs;
            scope.spawn(move || {
                loop {
                    let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((cid, reply)) = job else { return };
                    let _ = reply.send(store.get(&cid).map_err(EngineError::from));
                }
            });
        }
        let mut ex = Exporter {
            store,
            tx,
            reads,
            written: HashSet::new(),
            stats: ExportStats::default(),
            car_bytes,
            progress,
        };
        let walked = walk(&mut ex, head, history);
        let Exporter {
            tx,
            reads,
            mut stats,
            progress,
            ..
        } = ex;
        // Closing the channels lets the readers and the writer finish.
        drop(reads);
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| EngineError::Task("the CAR writer panicked".into()))?;
        // A writer error (a full disk, a closed pipe, a damaged chunk)
        // explains a walk that stopped because the writer went away.
        let car = written?;
        walked?;
        stats.car_bytes = car.offset();
        progress(&stats);
        let out = car.into_inner().map_err(io)?;
        Ok((stats, out))
    })
}

/// The export order: the commit, its MST with values, then history.
fn walk<S: BlockStore>(
    ex: &mut Exporter<'_, S>,
    head: &Cid,
    history: ExportHistory,
) -> Result<(), EngineError> {
    let data = ex
        .emit(head)?
        .ok_or_else(|| EngineError::Internal("the head was written twice".into()))?;
    let commit = Commit::decode(&data)?;
    ex.stats.commits = 1;

    // The head's MST through the checked walk, so an export never carries
    // a tree that breaks the MST rules. Both visitors need the exporter.
    let store = ex.store;
    let cell = RefCell::new(ex);
    let failed: RefCell<Option<EngineError>> = RefCell::new(None);
    let stop = |e: EngineError, failed: &RefCell<Option<EngineError>>| {
        let msg = e.to_string();
        *failed.borrow_mut() = Some(e);
        MstError::Stopped(msg)
    };
    let walked = Mst::new(store).check(
        &commit.data,
        &mut |node| {
            let ok = failed.borrow().is_none();
            if ok {
                let result = cell.borrow_mut().emit(node.cid());
                if let Err(e) = result {
                    *failed.borrow_mut() = Some(e);
                }
            }
        },
        &mut |_key, value| {
            let pending = failed.borrow_mut().take();
            if let Some(e) = pending {
                return Err(stop(e, &failed));
            }
            let mut ex = cell.borrow_mut();
            ex.stats.objects += 1;
            ex.value(value).map_err(|e| stop(e, &failed))
        },
    );
    let pending = failed.borrow_mut().take();
    if let Some(e) = pending {
        return Err(e);
    }
    walked?;
    let ex = cell.into_inner();

    let mut at = commit;
    loop {
        let wanted = match history {
            ExportHistory::Head => false,
            ExportHistory::Down(floor) => at.seq > floor,
        };
        // A version-1 commit links its predecessor: leaving it out would
        // leave the link dangling (unless the node never had it: a bucket
        // imported from a version-1 export of its head alone).
        let Some(p) = at
            .prev
            .filter(|p| wanted || (at.links_prev() && ex.store.has(p).unwrap_or(false)))
        else {
            break;
        };
        let Some(data) = ex.emit(&p)? else {
            break;
        };
        let older = Commit::decode(&data)?;
        ex.stats.commits += 1;
        // The commit's tree; its `prev` is the next turn of this loop.
        ex.dag(&older.data)?;
        at = older;
    }
    Ok(())
}
