//! Read-ahead for stores that fetch from afar: a cursor that walks the
//! same tree as a [`crate::RangeReader`], ahead of it, and announces the
//! leaves it will need ([`BlockStore::prefetch`]). It follows the tree, not
//! the store's layout, so the leaves of a multipart body, whose parts were
//! written concurrently and lie interleaved, are announced in reading
//! order, and the cursor crosses from one part into the next before the
//! reader gets there.

use billet_block::{BlockStore, Cid, Codec};

use crate::pb::{FileNode, decode_file_node};

/// Deepest tree the cursor follows (the reader enforces its own bound).
const MAX_DEPTH: usize = 32;

struct Node {
    children: Vec<(Cid, u64)>,
    next: usize,
    /// File offset of `children[next]`.
    offset: u64,
    /// Children before this index that are interior nodes have been
    /// announced (see `announce_nodes`).
    nodes_announced: usize,
}

pub(crate) struct Ahead {
    stack: Vec<Node>,
    /// File offset up to which leaves have been announced.
    pub(crate) announced: u64,
    start: u64,
    end: u64,
}

impl Ahead {
    /// A cursor over the children of `root` for the range `[start, end)`.
    pub(crate) fn new(root: &FileNode, start: u64, end: u64) -> Ahead {
        Ahead {
            stack: vec![Node {
                children: root.children.clone(),
                next: 0,
                offset: root.data.len() as u64,
                nodes_announced: 0,
            }],
            announced: 0,
            start,
            end,
        }
    }

    /// Announces the leaves up to file offset `limit`. Interior nodes on
    /// the way are read from `store` (the reader needs them next anyway);
    /// a node that cannot be read or decoded ends the read-ahead, and the
    /// reader reports it when it gets there.
    pub(crate) fn advance<S: BlockStore>(&mut self, store: &S, limit: u64) {
        let mut leaves = Vec::new();
        while self.announced < limit {
            let depth = self.stack.len();
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            if top.next == top.children.len() {
                self.stack.pop();
                continue;
            }
            let (cid, size) = top.children[top.next];
            let offset = top.offset;
            top.next += 1;
            top.offset += size;
            if offset >= self.end {
                self.stack.clear();
                break;
            }
            if offset + size <= self.start && size != 0 {
                continue;
            }
            match Codec::from_code(cid.codec()) {
                Some(Codec::Raw) => {
                    leaves.push(cid);
                    self.announced = offset + size;
                }
                Some(Codec::DagPb) if depth < MAX_DEPTH => {
                    // What is announced so far, and the interior siblings
                    // this advance will also descend into, are fetched
                    // while this node is read: one wait, not one per part.
                    announce_nodes(top, offset, limit.min(self.end), &mut leaves);
                    store.prefetch(&leaves);
                    leaves.clear();
                    let node = match store.get(&cid).map(|b| decode_file_node(&b)) {
                        Ok(Ok(node)) => node,
                        _ => {
                            self.stack.clear();
                            break;
                        }
                    };
                    self.stack.push(Node {
                        offset: offset + node.data.len() as u64,
                        children: node.children,
                        next: 0,
                        nodes_announced: 0,
                    });
                }
                _ => {
                    self.stack.clear();
                    break;
                }
            }
        }
        if self.stack.is_empty() {
            // Nothing more to announce, ever.
            self.announced = u64::MAX;
        }
        if !leaves.is_empty() {
            store.prefetch(&leaves);
        }
    }
}

/// Adds to `out` the interior-node children of `node` from the one just
/// taken (at file offset `offset`) up to file offset `limit` that have not
/// been announced yet.
fn announce_nodes(node: &mut Node, offset: u64, limit: u64, out: &mut Vec<Cid>) {
    let taken = node.next - 1;
    let mut at = offset;
    for (i, (cid, size)) in node.children.iter().enumerate().skip(taken) {
        if at >= limit {
            break;
        }
        if i >= node.nodes_announced && cid.codec() == Codec::DagPb.code() {
            out.push(*cid);
            node.nodes_announced = i + 1;
        }
        at += size;
    }
}
