use billet_block::{Block, Cid};
use bytes::{Bytes, BytesMut};

use crate::MAX_LINKS;
use crate::pb::encode_file_node;

/// A child as its parent records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub cid: Cid,
    /// File bytes under the child (its `blocksizes` entry).
    pub file_size: u64,
    /// Encoded bytes of the child's whole DAG (dag-pb `Tsize`).
    pub tsize: u64,
}

impl Link {
    /// The link to a raw leaf.
    pub fn leaf(block: &Block) -> Link {
        Link {
            cid: *block.cid(),
            file_size: block.len() as u64,
            tsize: block.len() as u64,
        }
    }
}

/// Builds a balanced tree over a stream of links, emitting each node as
/// soon as it is complete. Memory: at most `max_links` links per level.
///
/// The shape is the one js-ipfs and kubo call "balanced": children are cut
/// into groups of `max_links` left to right, each group becomes a parent,
/// and the parents are grouped again until one node remains. Every leaf
/// sits at the same depth.
#[derive(Debug)]
pub struct FileLayout {
    max_links: usize,
    levels: Vec<Vec<Link>>,
}

impl Default for FileLayout {
    fn default() -> Self {
        FileLayout::new()
    }
}

impl FileLayout {
    pub fn new() -> Self {
        Self::with_max_links(MAX_LINKS)
    }

    /// `max_links` below 2 would never converge, so it is raised to 2.
    pub fn with_max_links(max_links: usize) -> Self {
        FileLayout {
            max_links: max_links.max(2),
            levels: vec![Vec::new()],
        }
    }

    pub fn push(&mut self, link: Link, emit: &mut impl FnMut(Block)) {
        self.levels[0].push(link);
        let mut i = 0;
        while self.levels[i].len() == self.max_links {
            let node = self.seal(i, emit);
            if self.levels.len() == i + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[i + 1].push(node);
            i += 1;
        }
    }

    /// The root, or `None` if nothing was pushed.
    pub fn finish(mut self, emit: &mut impl FnMut(Block)) -> Option<Link> {
        let mut i = 0;
        while i < self.levels.len() {
            let top = i + 1 == self.levels.len();
            match self.levels[i].len() {
                0 => {}
                1 if top => return self.levels[i].pop(),
                _ => {
                    let node = self.seal(i, emit);
                    if top {
                        self.levels.push(Vec::new());
                    }
                    self.levels[i + 1].push(node);
                }
            }
            i += 1;
        }
        None
    }

    fn seal(&mut self, level: usize, emit: &mut impl FnMut(Block)) -> Link {
        let children = std::mem::take(&mut self.levels[level]);
        let block = encode_file_node(&children);
        let link = Link {
            cid: *block.cid(),
            file_size: children.iter().map(|l| l.file_size).sum(),
            tsize: block.len() as u64 + children.iter().map(|l| l.tsize).sum::<u64>(),
        };
        emit(block);
        link
    }
}

/// Cuts a byte stream into fixed-size chunks (the last may be short).
#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    buf: BytesMut,
}

impl Chunker {
    pub fn new(chunk_size: usize) -> Self {
        let chunk_size = chunk_size.max(1);
        Chunker {
            chunk_size,
            buf: BytesMut::new(),
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(Bytes)) {
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve(self.chunk_size);
            }
            let room = self.chunk_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk_size {
                emit(self.buf.split().freeze());
            }
        }
    }

    /// The partial last chunk, if any bytes are left.
    pub fn finish(self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.freeze())
    }
}
