use std::io::{self, Write};

use billet_block::{Block, Cid};

use crate::header::encode_header;
use crate::varint::encode_varint;

/// Where a block landed in a CAR stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLocation {
    /// Offset of the frame's length varint.
    pub frame_offset: u64,
    /// Offset of the block bytes (after the CID).
    pub data_offset: u64,
    /// Length of the block bytes.
    pub data_len: u64,
}

impl BlockLocation {
    pub fn frame_end(&self) -> u64 {
        self.data_offset + self.data_len
    }
}

/// The bytes that precede a block's data in a frame: `varint(len) | CID`.
pub fn frame_prefix(cid: &Cid, data_len: usize) -> Vec<u8> {
    let cid_bytes = cid.to_bytes();
    let mut out = Vec::with_capacity(cid_bytes.len() + 10);
    encode_varint((cid_bytes.len() + data_len) as u64, &mut out);
    out.extend_from_slice(&cid_bytes);
    out
}

/// Writes a CARv1 stream, one block at a time, tracking byte offsets.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    inner: W,
    offset: u64,
}

impl<W: Write> CarWriter<W> {
    /// Starts a CAR with the given roots.
    pub fn new(mut inner: W, roots: &[Cid]) -> io::Result<Self> {
        let header = encode_header(roots);
        inner.write_all(&header)?;
        Ok(CarWriter {
            inner,
            offset: header.len() as u64,
        })
    }

    /// Continues a CAR whose first `offset` bytes are already written (the
    /// log reopening a segment).
    pub fn resume(inner: W, offset: u64) -> Self {
        CarWriter { inner, offset }
    }

    pub fn write_block(&mut self, block: &Block) -> io::Result<BlockLocation> {
        self.write_raw(block.cid(), block.data())
    }

    /// Writes a frame without checking that `data` matches `cid`; for callers
    /// that hold bytes already verified by other means.
    pub fn write_raw(&mut self, cid: &Cid, data: &[u8]) -> io::Result<BlockLocation> {
        let prefix = frame_prefix(cid, data.len());
        self.inner.write_all(&prefix)?;
        self.inner.write_all(data)?;
        let loc = BlockLocation {
            frame_offset: self.offset,
            data_offset: self.offset + prefix.len() as u64,
            data_len: data.len() as u64,
        };
        self.offset = loc.frame_end();
        Ok(loc)
    }

    /// Bytes written so far, header included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}
