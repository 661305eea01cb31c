//! Export: a bucket as one CARv1 stream whose root is its head commit.
//!
//! Order lets a reader verify as it reads (every block comes after a block
//! that links it): the commit, then the MST in pre-order — each node, then
//! for each position its left subtree and then the entry's value: the
//! manifest, its body (file nodes before their children), and the older
//! versions its `prev` chain reaches. With history, each earlier commit
//! follows with whatever of its DAG was not already written. Every block is
//! written once; memory holds the set of CIDs written, never block data
//! beyond the one being copied.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;

use billet_block::{BlockStore, Cid, Codec};
use billet_car::CarWriter;
use billet_mst::{Mst, MstError};
use billet_records::{Commit, Manifest};
use billet_unixfs::decode_file_node;
use ipld_core::ipld::Ipld;

use crate::error::EngineError;

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

struct Exporter<'a, S, W: Write> {
    store: &'a S,
    car: CarWriter<W>,
    written: HashSet<Cid>,
    stats: ExportStats,
    progress: &'a mut dyn FnMut(&ExportStats),
}

impl<S: BlockStore, W: Write> Exporter<'_, S, W> {
    /// Writes `cid` unless it already was; returns its bytes when written.
    fn emit(&mut self, cid: &Cid) -> Result<Option<bytes::Bytes>, EngineError> {
        if self.written.contains(cid) {
            return Ok(None);
        }
        let data = self.store.get(cid)?;
        self.car
            .write_raw(cid, &data)
            .map_err(|e| EngineError::Internal(format!("writing the CAR: {e}")))?;
        self.written.insert(*cid);
        self.stats.blocks += 1;
        self.stats.car_bytes = self.car.offset();
        if self.stats.blocks.is_multiple_of(64) {
            (self.progress)(&self.stats);
        }
        Ok(Some(data))
    }

    /// A body: file nodes before their children, leaves in file order.
    fn body(&mut self, root: &Cid) -> Result<(), EngineError> {
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
/// docs for the order). `history` adds every earlier commit and what it
/// reaches.
pub fn export_car<S: BlockStore, W: Write>(
    store: &S,
    head: &Cid,
    history: bool,
    out: W,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<(ExportStats, W), EngineError> {
    let car = CarWriter::new(out, &[*head])
        .map_err(|e| EngineError::Internal(format!("writing the CAR: {e}")))?;
    let mut ex = Exporter {
        store,
        car,
        written: HashSet::new(),
        stats: ExportStats::default(),
        progress,
    };
    let data = ex
        .emit(head)?
        .ok_or_else(|| EngineError::Internal("the head was written twice".into()))?;
    let commit = Commit::decode(&data)?;
    ex.stats.commits = 1;

    // The head's MST through the checked walk, so an export never carries
    // a tree that breaks the MST rules. Both visitors need the exporter.
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
    let mut ex = cell.into_inner();

    if history {
        let mut prev = commit.prev;
        while let Some(p) = prev {
            let Some(data) = ex.emit(&p)? else {
                break;
            };
            let older = Commit::decode(&data)?;
            ex.stats.commits += 1;
            // The commit's tree; its `prev` is the next turn of this loop.
            ex.dag(&older.data)?;
            prev = older.prev;
        }
    }
    ex.car
        .flush()
        .map_err(|e| EngineError::Internal(format!("writing the CAR: {e}")))?;
    ex.stats.car_bytes = ex.car.offset();
    (ex.progress)(&ex.stats);
    let out = ex
        .car
        .into_inner()
        .map_err(|e| EngineError::Internal(format!("writing the CAR: {e}")))?;
    Ok((ex.stats, out))
}
