use std::collections::HashMap;

use billet_block::{Block, BlockStore, Cid};
use bytes::Bytes;

use crate::error::MstError;
use crate::layer::layer_of;
use crate::node::{Position, Sub, decode_checked, decode_trusted};

/// The nodes on the path from a root to where a key is or would be, root
/// first. Enough, with the root CID, to show that the key maps to a value
/// or that it is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub nodes: Vec<Block>,
}

pub(crate) fn prove<S: BlockStore>(store: &S, root: &Cid, key: &[u8]) -> Result<Proof, MstError> {
    let key_layer = layer_of(key);
    let mut nodes = Vec::new();
    let mut cid = *root;
    let mut parent_layer: Option<u8> = None;
    loop {
        let bytes = store.get(&cid)?;
        let node = decode_trusted(&cid, &bytes)?;
        nodes.push(Block::verified(cid, bytes)?);
        let layer = node.layer().or(parent_layer.map(|l| l.saturating_sub(1)));
        // The same stopping rule as the verifier, so a proof holds exactly
        // the nodes it needs.
        let next = match (
            layer,
            node.entries.binary_search_by(|e| e.key.as_slice().cmp(key)),
        ) {
            (None, _) | (_, Ok(_)) => None,
            (Some(l), Err(_)) if key_layer >= l => None,
            (Some(_), Err(i)) => match node.kids[i] {
                Sub::Stored(c) => Some(c),
                _ => None,
            },
        };
        parent_layer = layer;
        match next {
            Some(c) => cid = c,
            None => return Ok(Proof { nodes }),
        }
    }
}

/// Checks `nodes` against `root` for `key`: `Ok(Some(value))` proves the key
/// maps to `value`, `Ok(None)` proves it is absent. Needs nothing else: each
/// node is hashed against the link that leads to it and checked against
/// every MST rule (key order, layers, prefix compression, the range its
/// parent allows), so neither a forged node nor a shortcut passes.
pub fn verify_proof(root: &Cid, key: &[u8], nodes: &[Block]) -> Result<Option<Cid>, MstError> {
    let by_cid: HashMap<Cid, &Bytes> = nodes.iter().map(|b| (*b.cid(), b.data())).collect();
    let key_layer = layer_of(key);
    let mut cid = *root;
    let mut parent_layer: Option<u8> = None;
    let mut lo: Option<Vec<u8>> = None;
    let mut hi: Option<Vec<u8>> = None;
    loop {
        let bytes = by_cid.get(&cid).ok_or(MstError::ProofIncomplete(cid))?;
        // A Block in `nodes` was hashed when it was made; check again in
        // case the caller built it from parts it did not verify.
        billet_block::verify(&cid, bytes)?;
        let at = Position {
            layer: parent_layer.map(|l| l.saturating_sub(1)),
            lo: lo.as_deref(),
            hi: hi.as_deref(),
        };
        if parent_layer == Some(0) {
            return Err(MstError::BadProof {
                cid,
                reason: "a subtree below layer 0".into(),
            });
        }
        let (node, layer) = decode_checked(&cid, bytes, at).map_err(|e| MstError::BadProof {
            cid,
            reason: e.to_string(),
        })?;
        let Some(layer) = layer else {
            // Only the empty tree's root has neither entries nor a layer.
            return Ok(None);
        };
        match node.entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
            Ok(i) => return Ok(Some(node.entries[i].value)),
            Err(i) => {
                // Below this node live only keys of lower layers.
                if key_layer >= layer {
                    return Ok(None);
                }
                match node.kids[i] {
                    Sub::Stored(next) => {
                        if i > 0 {
                            lo = Some(node.entries[i - 1].key.clone());
                        }
                        if let Some(e) = node.entries.get(i) {
                            hi = Some(e.key.clone());
                        }
                        parent_layer = Some(layer);
                        cid = next;
                    }
                    _ => return Ok(None),
                }
            }
        }
    }
}
