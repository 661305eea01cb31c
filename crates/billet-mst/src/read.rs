use billet_block::{BlockStore, Cid};

use crate::error::MstError;
use crate::node::{Node, Sub, decode_trusted};

fn load<S: BlockStore>(store: &S, cid: &Cid) -> Result<Node, MstError> {
    decode_trusted(cid, &store.get(cid)?)
}

pub(crate) fn get<S: BlockStore>(
    store: &S,
    root: &Cid,
    key: &[u8],
) -> Result<Option<Cid>, MstError> {
    let mut cid = *root;
    loop {
        let node = load(store, &cid)?;
        match node.entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
            Ok(i) => return Ok(Some(node.entries[i].value)),
            Err(i) => match node.kids[i] {
                Sub::Stored(next) => cid = next,
                _ => return Ok(None),
            },
        }
    }
}

struct Frame {
    node: Node,
    /// Position in the interleaving kid0, entry0, kid1, entry1, ..., kidN:
    /// even = kid `pos / 2`, odd = entry `pos / 2`.
    pos: usize,
}

/// In-order entries of a tree; see [`crate::Mst::iter`]. Holds one node
/// per layer.
pub struct Iter<'a, S> {
    store: &'a S,
    stack: Vec<Frame>,
    root: Option<Cid>,
    from: Vec<u8>,
    prefix: Option<Vec<u8>>,
    done: bool,
}

impl<S> std::fmt::Debug for Iter<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("depth", &self.stack.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<'a, S: BlockStore> Iter<'a, S> {
    pub(crate) fn new(store: &'a S, root: Cid, from: Option<&[u8]>, prefix: Option<&[u8]>) -> Self {
        let from = match (from, prefix) {
            (Some(f), Some(p)) => f.max(p).to_vec(),
            (Some(f), None) => f.to_vec(),
            (None, Some(p)) => p.to_vec(),
            (None, None) => Vec::new(),
        };
        Iter {
            store,
            stack: Vec::new(),
            root: Some(root),
            from,
            prefix: prefix.map(<[u8]>::to_vec),
            done: false,
        }
    }

    /// Descends from `cid` towards `self.from`, leaving every frame
    /// positioned at the first kid or entry that can hold a key `>= from`.
    fn seek(&mut self, mut cid: Cid) -> Result<(), MstError> {
        loop {
            let node = load(self.store, &cid)?;
            let i = node
                .entries
                .partition_point(|e| e.key.as_slice() < self.from.as_slice());
            let next = match &node.kids[i] {
                Sub::Stored(c) => Some(*c),
                _ => None,
            };
            // Resume after kid i (at entry i) once the descent is done.
            self.stack.push(Frame {
                node,
                pos: 2 * i + 1,
            });
            match next {
                Some(c) => cid = c,
                None => return Ok(()),
            }
        }
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Cid)>, MstError> {
        if let Some(root) = self.root.take() {
            self.seek(root)?;
        }
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            let n = frame.node.entries.len();
            if frame.pos > 2 * n {
                self.stack.pop();
                continue;
            }
            let pos = frame.pos;
            frame.pos += 1;
            if pos % 2 == 0 {
                if let Sub::Stored(c) = frame.node.kids[pos / 2] {
                    let node = load(self.store, &c)?;
                    self.stack.push(Frame { node, pos: 0 });
                }
                continue;
            }
            let e = &frame.node.entries[pos / 2];
            if let Some(p) = &self.prefix
                && !e.key.starts_with(p)
            {
                // Keys only grow from here, so none will match again.
                self.done = true;
                return Ok(None);
            }
            return Ok(Some((e.key.clone(), e.value)));
        }
    }
}

impl<S: BlockStore> Iterator for Iter<'_, S> {
    type Item = Result<(Vec<u8>, Cid), MstError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
