//! The mark: every block something live reaches goes into a Bloom filter.
//!
//! Roots, read in this order (a Complete between reading the uploads and
//! reading the heads then finds its parts in the one or its body in the
//! other): every open multipart upload's parts; every bucket's head and
//! the commits its retention keeps (each older commit walked only where
//! its tree differs from the next newer one's, so a week of history
//! costs the changes it made, not a week of full trees); the commit
//! blocks of every recorded commit (no tree); the heads the cold tier has
//! named or may yet name as shipped; bodies pinned by copies in flight.
//!
//! Memory is the filter (about ten bits per live block, capped) and the
//! walks' stacks (tree height, version chain); nothing keeps a set of
//! blocks. A false positive keeps a dead block until a later collection.

use billet_block::{BlockError, BlockStore, Cid, Codec, DigestFilter, digest_key};
use billet_mst::{Mst, MstError};
use billet_records::{Commit, Manifest};
use billet_unixfs::decode_file_node;

use super::retention::{RetainedHistory, block_on};
use crate::Inner;
use crate::error::EngineError;
use crate::store::CachedStore;

/// Uploads and parts listed per index query.
const PAGE: usize = 1000;

/// What the mark found live.
#[derive(Debug)]
pub(crate) struct Live {
    filter: DigestFilter,
    pub marked: u64,
}

impl Live {
    pub fn new(expected: u64, bits: u64, max_bytes: u64, seed: u64) -> Live {
        Live {
            filter: DigestFilter::new(expected.max(1024), bits, max_bytes, seed),
            marked: 0,
        }
    }

    pub fn mark(&mut self, cid: &Cid) {
        if let Some(k) = digest_key(cid) {
            self.filter.insert(&k);
            self.marked += 1;
        }
    }

    pub fn mark_key(&mut self, key: &billet_block::DigestKey) {
        self.filter.insert(key);
        self.marked += 1;
    }

    /// False only for a block nothing live reaches.
    pub fn contains(&self, cid: &Cid) -> bool {
        digest_key(cid).is_none_or(|k| self.filter.contains(&k))
    }

    pub fn bytes(&self) -> u64 {
        self.filter.bytes()
    }
}

/// Marks a body: file nodes read for their children, leaves only named.
pub(crate) fn body(store: &CachedStore, live: &mut Live, root: &Cid) -> Result<(), EngineError> {
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        live.mark(&cid);
        if cid.codec() == Codec::DagPb.code() {
            let node = decode_file_node(&store.get(&cid)?)
                .map_err(|e| EngineError::Corrupt(format!("UnixFS node {cid}: {e}")))?;
            stack.extend(node.children.into_iter().map(|(c, _)| c));
        }
    }
    Ok(())
}

/// Marks a key's value: its manifest, the manifests its `prev` chain
/// reaches, and their bodies.
fn chain(store: &CachedStore, live: &mut Live, top: &Cid) -> Result<(), EngineError> {
    let mut next = Some(*top);
    while let Some(cid) = next {
        live.mark(&cid);
        let m = Manifest::decode(&store.get(&cid)?)?;
        if let Some(b) = m.body {
            body(store, live, &b)?;
        }
        next = m.prev;
    }
    Ok(())
}

/// Marks what the tree at `new` has beyond the one at `old` (all of it
/// with `None`): its nodes and the values that differ, with what they
/// reach.
pub(crate) fn tree(
    store: &CachedStore,
    live: &mut Live,
    old: Option<&Cid>,
    new: &Cid,
) -> Result<(), EngineError> {
    let mut failed: Option<EngineError> = None;
    let nodes = std::cell::RefCell::new(Vec::new());
    let walked = Mst::new(store).diff_visit(
        old,
        new,
        &mut |n| nodes.borrow_mut().push(*n),
        &mut |change| {
            for n in nodes.borrow_mut().drain(..) {
                live.mark(&n);
            }
            if let Some(v) = change.new
                && let Err(e) = chain(store, live, &v)
            {
                let msg = e.to_string();
                failed = Some(e);
                return Err(MstError::Stopped(msg));
            }
            Ok(())
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    walked?;
    for n in nodes.into_inner() {
        live.mark(&n);
    }
    Ok(())
}

/// Marks what a bucket's retention keeps: the head's whole tree, then each
/// kept older commit where it differs from the next newer one.
pub(crate) fn history(
    store: &CachedStore,
    live: &mut Live,
    kept: &RetainedHistory,
) -> Result<(), EngineError> {
    live.mark(&kept.head);
    let mut newer = Commit::decode(&store.get(&kept.head)?)?;
    tree(store, live, None, &newer.data)?;
    while newer.seq > kept.floor {
        let Some(p) = newer.prev else { break };
        let bytes = match store.get(&p) {
            Ok(b) => b,
            // History the node never had (imported from an export of the
            // head alone): nothing of it to keep.
            Err(BlockError::Missing(_)) => break,
            Err(e) => return Err(e.into()),
        };
        live.mark(&p);
        let older = Commit::decode(&bytes)?;
        tree(store, live, Some(&newer.data), &older.data)?;
        newer = older;
    }
    Ok(())
}

/// Marks a head that is not a bucket's current one (the cold tier's
/// shipped heads): where its tree differs from `current`'s.
pub(crate) fn other_head(
    store: &CachedStore,
    live: &mut Live,
    head: &Cid,
    current: Option<&Cid>,
) -> Result<(), EngineError> {
    live.mark(head);
    let c = Commit::decode(&store.get(head)?)?;
    let base = match current {
        Some(cur) => Some(Commit::decode(&store.get(cur)?)?.data),
        None => None,
    };
    tree(store, live, base.as_ref(), &c.data)
}

/// Marks the parts of every open multipart upload of `bucket`; returns
/// how many parts.
pub(crate) fn uploads(inner: &Inner, live: &mut Live, bucket: &str) -> Result<u64, EngineError> {
    let mut parts = 0u64;
    let mut q = billet_index::UploadQuery {
        max_uploads: PAGE,
        ..Default::default()
    };
    loop {
        let page = match block_on(inner.index.list_uploads(bucket, &q)) {
            Ok(p) => p,
            // Deleted meanwhile: nothing of it is live.
            Err(billet_index::IndexError::NoSuchBucket(_)) => return Ok(parts),
            Err(e) => return Err(e.into()),
        };
        for u in &page.uploads {
            let mut after = 0;
            loop {
                let ps = match block_on(inner.index.parts(bucket, &u.upload_id, after, PAGE)) {
                    Ok(p) => p,
                    Err(billet_index::IndexError::NoSuchUpload(_)) => break,
                    Err(e) => return Err(e.into()),
                };
                for p in &ps.parts {
                    body(&inner.store, live, &p.root)?;
                    parts += 1;
                    after = p.number;
                }
                if !ps.truncated {
                    break;
                }
            }
        }
        if !page.truncated {
            return Ok(parts);
        }
        q.key_marker = page.next_key_marker;
        q.upload_id_marker = page.next_upload_id_marker;
    }
}

/// Marks a pinned body; a body that is already gone is skipped (its copy
/// fails on its own).
pub(crate) fn pinned(store: &CachedStore, live: &mut Live, root: &Cid) -> Result<(), EngineError> {
    match body(store, live, root) {
        Err(EngineError::Block(BlockError::Missing(_))) => Ok(()),
        r => r,
    }
}
