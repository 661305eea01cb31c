use billet_block::{Block, Cid, validate_key};

use crate::error::{MstError, key_error, show_key};
use crate::layer::layer_of;
use crate::node::{Entry, encode};

/// A node still receiving entries: its entries and the CIDs of the
/// subtrees left of each entry plus the trailing one.
#[derive(Default)]
struct Open {
    entries: Vec<Entry>,
    kids: Vec<Option<Cid>>,
}

impl Open {
    /// Sets the subtree right of the last entry (or left of none).
    fn set_trailing(&mut self, cid: Cid) {
        if self.kids.len() == self.entries.len() {
            self.kids.push(Some(cid));
        } else if let Some(last) = self.kids.last_mut() {
            *last = Some(cid);
        }
    }

    fn push(&mut self, entry: Entry) {
        if self.kids.len() == self.entries.len() {
            self.kids.push(None);
        }
        self.entries.push(entry);
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.kids.iter().all(Option::is_none)
    }
}

/// Builds a tree from pairs in strictly increasing key order in one pass,
/// emitting every node as soon as it is complete (children before
/// parents). Holds one open node per layer: O(height × fanout) memory.
///
/// Each node is closed exactly when a key of a higher layer arrives (or at
/// the end), which is when its contents are final in the canonical tree.
#[derive(Default)]
pub struct Builder {
    open: Vec<Open>,
    last: Option<Vec<u8>>,
    count: u64,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("layers", &self.open.len())
            .field("count", &self.count)
            .finish()
    }
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn push(
        &mut self,
        key: &[u8],
        value: Cid,
        emit: &mut dyn FnMut(Block),
    ) -> Result<(), MstError> {
        validate_key(key).map_err(|e| key_error(key, e))?;
        if let Some(last) = &self.last
            && last.as_slice() >= key
        {
            return Err(MstError::Unsorted {
                prev: show_key(last),
                key: show_key(key),
            });
        }
        let layer = layer_of(key) as usize;
        while self.open.len() <= layer {
            self.open.push(Open::default());
        }
        for j in 0..layer {
            if let Some(cid) = self.close(j, emit) {
                self.open[j + 1].set_trailing(cid);
            }
        }
        self.open[layer].push(Entry {
            key: key.to_vec(),
            value,
        });
        self.last = Some(key.to_vec());
        self.count += 1;
        Ok(())
    }

    /// Closes every open node; returns the root CID (the empty tree's when
    /// nothing was pushed, whose block is emitted too).
    pub fn finish(mut self, emit: &mut dyn FnMut(Block)) -> Cid {
        if self.count == 0 {
            let b = crate::empty_root();
            let cid = *b.cid();
            emit(b);
            return cid;
        }
        let top = self.open.len() - 1;
        for j in 0..top {
            if let Some(cid) = self.close(j, emit) {
                self.open[j + 1].set_trailing(cid);
            }
        }
        self.close(top, emit)
            .expect("the top layer holds the highest-layer key")
    }

    fn close(&mut self, layer: usize, emit: &mut dyn FnMut(Block)) -> Option<Cid> {
        let open = std::mem::take(&mut self.open[layer]);
        if open.is_empty() {
            return None;
        }
        let mut kids = open.kids;
        kids.resize(open.entries.len() + 1, None);
        let block = encode(&open.entries, &kids);
        let cid = *block.cid();
        emit(block);
        Some(cid)
    }
}
