use billet_block::{BlockStore, Cid, Codec};
use bytes::Bytes;

use crate::ahead::Ahead;
use crate::error::UnixfsError;
use crate::pb::{FileNode, decode_file_node};

/// Deepest tree accepted. A balanced file of 1 MiB leaves reaches 174^6
/// MiB at depth 6; anything near this bound is hostile.
const MAX_DEPTH: usize = 32;

/// The file size a body's root declares (raw: its length; dag-pb: its data
/// plus `blocksizes`). Reads one block.
pub fn file_size<S: BlockStore>(store: &S, root: &Cid) -> Result<u64, UnixfsError> {
    let bytes = store.get(root)?;
    match Codec::from_code(root.codec()) {
        Some(Codec::Raw) => Ok(bytes.len() as u64),
        Some(Codec::DagPb) => Ok(decode(root, &bytes)?.content_len()),
        _ => Err(UnixfsError::BadNode {
            cid: *root,
            reason: "a body root must be raw or dag-pb".into(),
        }),
    }
}

/// Bytes `[start, end)` of the body under `root`, which must hold exactly
/// `size` bytes. See [`RangeReader`].
pub fn read_range<S: BlockStore>(
    store: S,
    root: Cid,
    size: u64,
    start: u64,
    end: u64,
) -> Result<RangeReader<S>, UnixfsError> {
    RangeReader::new(store, root, size, start, end)
}

struct Frame {
    cid: Cid,
    node: FileNode,
    /// Whether the node's own inline data was handled.
    inline_done: bool,
    next_child: usize,
    /// File offset of `node.children[next_child]`.
    child_offset: u64,
    /// File offset where the node's content starts.
    offset: u64,
}

/// Yields the bytes of a range, one leaf slice at a time, reading only the
/// blocks that cover it: O(depth) nodes plus the leaves themselves. Every
/// size a node declares is checked against what its child really holds, so
/// a damaged or lying tree ends in an error, never in short or shifted data.
pub struct RangeReader<S> {
    store: S,
    stack: Vec<Frame>,
    start: u64,
    end: u64,
    /// Set when the root itself is a raw leaf.
    pending: Option<(Cid, u64)>,
    failed: bool,
    /// [`BlockStore::prefetch_window`] of the store, and the cursor that
    /// announces leaves that far ahead (only with a window, for a dag-pb
    /// root).
    window: u64,
    ahead: Option<Ahead>,
    /// How far ahead the next announcement reaches.
    reach: u64,
}

impl<S> std::fmt::Debug for RangeReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReader")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("depth", &self.stack.len())
            .finish()
    }
}

impl<S: BlockStore> RangeReader<S> {
    pub fn new(store: S, root: Cid, size: u64, start: u64, end: u64) -> Result<Self, UnixfsError> {
        if start > end || end > size {
            return Err(UnixfsError::BadRange { start, end, size });
        }
        let mut r = RangeReader {
            store,
            stack: Vec::new(),
            start,
            end,
            pending: None,
            failed: false,
            window: 0,
            ahead: None,
            reach: 0,
        };
        r.window = r.store.prefetch_window();
        r.reach = (r.window / 8).max(1);
        if start == end && size != 0 {
            return Ok(r);
        }
        match Codec::from_code(root.codec()) {
            Some(Codec::Raw) => r.pending = Some((root, size)),
            Some(Codec::DagPb) => {
                let bytes = r.store.get(&root)?;
                let node = decode(&root, &bytes)?;
                check_len(&root, node.content_len(), size)?;
                if r.window > 0 {
                    r.ahead = Some(Ahead::new(&node, start, end));
                }
                r.stack.push(Frame {
                    cid: root,
                    node,
                    inline_done: false,
                    next_child: 0,
                    child_offset: 0,
                    offset: 0,
                });
            }
            _ => {
                return Err(UnixfsError::BadNode {
                    cid: root,
                    reason: "a body root must be raw or dag-pb".into(),
                });
            }
        }
        Ok(r)
    }

    fn leaf(&self, cid: &Cid, offset: u64, expect: u64) -> Result<Option<Bytes>, UnixfsError> {
        let data = self.store.get(cid)?;
        check_len(cid, data.len() as u64, expect)?;
        Ok(self.clip(data, offset))
    }

    /// The part of `data` (at file offset `offset`) inside the range.
    fn clip(&self, data: Bytes, offset: u64) -> Option<Bytes> {
        let len = data.len() as u64;
        let from = self.start.saturating_sub(offset).min(len);
        let to = self.end.saturating_sub(offset).min(len);
        (from < to).then(|| data.slice(from as usize..to as usize))
    }

    fn step(&mut self) -> Result<Option<Bytes>, UnixfsError> {
        if let Some((cid, size)) = self.pending.take() {
            return self.leaf(&cid, 0, size);
        }
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            if !frame.inline_done {
                frame.inline_done = true;
                let data = frame.node.data.clone();
                let offset = frame.offset;
                frame.child_offset = offset + data.len() as u64;
                if let Some(slice) = self.clip(data, offset) {
                    return Ok(Some(slice));
                }
                continue;
            }
            if frame.next_child == frame.node.children.len() {
                self.stack.pop();
                continue;
            }
            let (cid, size) = frame.node.children[frame.next_child];
            let offset = frame.child_offset;
            frame.next_child += 1;
            frame.child_offset += size;
            if offset >= self.end {
                // Everything after this is past the range.
                self.stack.clear();
                return Ok(None);
            }
            if offset + size <= self.start && size != 0 {
                continue;
            }
            match Codec::from_code(cid.codec()) {
                Some(Codec::Raw) => {
                    // Renewed once half the distance has been read (and
                    // always before a leaf not yet announced); the
                    // distance starts at an eighth of the window and
                    // doubles, so the first leaves do not wait behind a
                    // whole window of fetches.
                    if let Some(ahead) = &mut self.ahead
                        && ahead.announced < offset.saturating_add(size.max(self.reach / 2))
                    {
                        ahead.advance(&self.store, offset.saturating_add(size.max(self.reach)));
                        self.reach = self.reach.saturating_mul(2).min(self.window);
                    }
                    if let Some(slice) = self.leaf(&cid, offset, size)? {
                        return Ok(Some(slice));
                    }
                }
                Some(Codec::DagPb) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(UnixfsError::TooDeep {
                            cid,
                            max: MAX_DEPTH,
                        });
                    }
                    let bytes = self.store.get(&cid)?;
                    let node = decode(&cid, &bytes)?;
                    check_len(&cid, node.content_len(), size)?;
                    self.stack.push(Frame {
                        cid,
                        node,
                        inline_done: false,
                        next_child: 0,
                        child_offset: offset,
                        offset,
                    });
                }
                _ => {
                    let parent = frame_cid(&self.stack);
                    return Err(UnixfsError::BadNode {
                        cid: parent,
                        reason: format!("child {cid} is neither raw nor dag-pb"),
                    });
                }
            }
        }
    }
}

fn frame_cid(stack: &[Frame]) -> Cid {
    stack.last().map(|f| f.cid).unwrap_or_default()
}

impl<S: BlockStore> Iterator for RangeReader<S> {
    type Item = Result<Bytes, UnixfsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn decode(cid: &Cid, bytes: &Bytes) -> Result<FileNode, UnixfsError> {
    decode_file_node(bytes).map_err(|reason| UnixfsError::BadNode { cid: *cid, reason })
}

fn check_len(cid: &Cid, got: u64, expect: u64) -> Result<(), UnixfsError> {
    if got != expect {
        return Err(UnixfsError::SizeMismatch {
            cid: *cid,
            reason: format!("holds {got} bytes where {expect} were declared"),
        });
    }
    Ok(())
}
