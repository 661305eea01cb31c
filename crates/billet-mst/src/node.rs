//! MST nodes in memory, and their checks.
//!
//! A node is `entries` and `kids`, with `kids[i]` the subtree left of
//! `entries[i]` and `kids[len]` the rightmost. A kid may be a stored node (a
//! CID), a node being rebuilt (dirty, not yet hashed) or nothing. The byte
//! format lives in [`crate::codec`].

use billet_block::{Block, Cid, Codec, validate_key};
use bytes::Bytes;

use crate::codec;
use crate::error::MstError;
use crate::layer::{common_prefix_len, layer_of};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: Vec<u8>,
    pub value: Cid,
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Sub {
    #[default]
    Empty,
    Stored(Cid),
    Dirty(Box<Node>),
}

impl Sub {
    pub fn is_empty(&self) -> bool {
        matches!(self, Sub::Empty)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub entries: Vec<Entry>,
    /// Always `entries.len() + 1` long.
    pub kids: Vec<Sub>,
}

impl Node {
    pub fn empty() -> Node {
        Node {
            entries: Vec::new(),
            kids: vec![Sub::Empty],
        }
    }

    /// A node with no entries over one subtree (a skipped layer).
    pub fn over(kid: Sub) -> Node {
        Node {
            entries: Vec::new(),
            kids: vec![kid],
        }
    }

    /// The node's layer, when it has entries.
    pub fn layer(&self) -> Option<u8> {
        self.entries.first().map(|e| layer_of(&e.key))
    }

    /// Back to a subtree: a node with nothing in it is no subtree at all.
    pub fn into_sub(self) -> Sub {
        if self.entries.is_empty() && self.kids[0].is_empty() {
            Sub::Empty
        } else {
            Sub::Dirty(Box::new(self))
        }
    }
}

/// Encodes entries with their subtrees' CIDs (`kid_cids[i]` left of entry i).
pub(crate) fn encode(entries: &[Entry], kid_cids: &[Option<Cid>]) -> Block {
    Block::new(Codec::DagCbor, codec::encode(entries, kid_cids))
}

fn to_node(parsed: codec::Parsed) -> Node {
    Node {
        entries: parsed.entries,
        kids: parsed
            .kids
            .into_iter()
            .map(|k| k.map_or(Sub::Empty, Sub::Stored))
            .collect(),
    }
}

/// Decodes a node from our own store: format only, no layer checks.
pub(crate) fn decode_trusted(cid: &Cid, bytes: &Bytes) -> Result<Node, MstError> {
    codec::parse(bytes)
        .map(to_node)
        .map_err(|reason| bad(cid, format!("not an MST node: {reason}")))
}

/// Where a node sits, for [`decode_checked`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position<'a> {
    /// The layer the parent implies; `None` at the root.
    pub layer: Option<u8>,
    /// Every key must be strictly inside (lo, hi).
    pub lo: Option<&'a [u8]>,
    pub hi: Option<&'a [u8]>,
}

/// Decodes an untrusted node and checks every rule that can be checked from
/// the node and its position: canonical DAG-CBOR, key validity and order,
/// longest-prefix compression, one layer for all keys (the one the parent
/// implies), and no empty non-root node. Returns the node and its layer.
pub(crate) fn decode_checked(
    cid: &Cid,
    bytes: &Bytes,
    at: Position<'_>,
) -> Result<(Node, Option<u8>), MstError> {
    if cid.codec() != Codec::DagCbor.code() {
        return Err(bad(cid, "an MST node must be dag-cbor".into()));
    }
    let parsed = codec::parse(bytes).map_err(|r| bad(cid, format!("not an MST node: {r}")))?;
    let mut prev: &[u8] = &[];
    for (i, (e, p)) in parsed.entries.iter().zip(&parsed.prefixes).enumerate() {
        if common_prefix_len(prev, &e.key) != *p {
            return Err(bad(
                cid,
                format!("entry {i}: prefix length {p} is not the longest common prefix"),
            ));
        }
        prev = &e.key;
    }
    let node = to_node(parsed);
    let is_root = at.layer.is_none();
    if node.entries.is_empty() && node.kids[0].is_empty() && !is_root {
        return Err(bad(cid, "empty node below the root".into()));
    }
    if is_root && node.entries.is_empty() && !node.kids[0].is_empty() {
        return Err(bad(
            cid,
            "root has no entries, only a left subtree (the top was not trimmed)".into(),
        ));
    }
    let mut layer = at.layer;
    let mut last: Option<&[u8]> = at.lo;
    for e in &node.entries {
        let shown = || String::from_utf8_lossy(&e.key).into_owned();
        validate_key(&e.key).map_err(|err| bad(cid, format!("key {:?}: {err}", shown())))?;
        if let Some(l) = last
            && l >= e.key.as_slice()
        {
            return Err(bad(cid, format!("key {:?} is out of order", shown())));
        }
        last = Some(&e.key);
        let h = layer_of(&e.key);
        match layer {
            None => layer = Some(h),
            Some(want) if want != h => {
                return Err(bad(
                    cid,
                    format!("key {:?} has layer {h} in a node of layer {want}", shown()),
                ));
            }
            Some(_) => {}
        }
    }
    if let (Some(l), Some(hi)) = (last, at.hi)
        && l >= hi
    {
        return Err(bad(
            cid,
            "a key lies outside the range its parent gives this subtree".into(),
        ));
    }
    if layer == Some(0) && node.kids.iter().any(|k| !k.is_empty()) {
        return Err(bad(cid, "a layer-0 node has subtrees".into()));
    }
    Ok((node, layer))
}

fn bad(cid: &Cid, reason: String) -> MstError {
    MstError::BadNode { cid: *cid, reason }
}
