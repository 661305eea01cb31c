use billet_block::{Block, BlockStore, Cid};

use crate::error::MstError;
use crate::node::{Position, Sub, decode_checked};

/// Called with each key and value of a checked walk, in key order; an error
/// stops the walk.
pub type EntryVisitor<'a> = dyn FnMut(&[u8], &Cid) -> Result<(), MstError> + 'a;

/// What a checked walk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub nodes: u64,
    pub entries: u64,
    /// Layer of the root (0 for the empty tree).
    pub height: u8,
}

pub(crate) fn check<S: BlockStore>(
    store: &S,
    root: &Cid,
    on_node: &mut dyn FnMut(&Block),
    on_entry: &mut EntryVisitor<'_>,
) -> Result<TreeStats, MstError> {
    let mut stats = TreeStats::default();
    let layer = visit(
        store,
        root,
        Position {
            layer: None,
            lo: None,
            hi: None,
        },
        &mut stats,
        on_node,
        on_entry,
    )?;
    stats.height = layer.unwrap_or(0);
    Ok(stats)
}

fn visit<S: BlockStore>(
    store: &S,
    cid: &Cid,
    at: Position<'_>,
    stats: &mut TreeStats,
    on_node: &mut dyn FnMut(&Block),
    on_entry: &mut EntryVisitor<'_>,
) -> Result<Option<u8>, MstError> {
    let bytes = store.get(cid)?;
    let (node, layer) = decode_checked(cid, &bytes, at)?;
    stats.nodes += 1;
    on_node(&Block::verified(*cid, bytes)?);
    // An entry-less root only exists for the empty tree; elsewhere the
    // parent gave the layer.
    let Some(layer) = layer else {
        return Ok(None);
    };
    for (i, kid) in node.kids.iter().enumerate() {
        if let Sub::Stored(child) = kid {
            if layer == 0 {
                return Err(MstError::BadNode {
                    cid: *cid,
                    reason: "a layer-0 node has subtrees".into(),
                });
            }
            let lo = if i == 0 {
                at.lo
            } else {
                Some(node.entries[i - 1].key.as_slice())
            };
            let hi = node.entries.get(i).map(|e| e.key.as_slice()).or(at.hi);
            visit(
                store,
                child,
                Position {
                    layer: Some(layer - 1),
                    lo,
                    hi,
                },
                stats,
                on_node,
                on_entry,
            )?;
        }
        if let Some(e) = node.entries.get(i) {
            stats.entries += 1;
            on_entry(&e.key, &e.value)?;
        }
    }
    Ok(Some(layer))
}
