use std::io::{self, Read};

use billet_block::{Block, Cid};
use bytes::Bytes;

use crate::error::CarError;
use crate::header::decode_header;
use crate::varint::{VarintError, read_varint};

/// Size caps for untrusted input. A frame holds a CID (at most a few dozen
/// bytes for the CIDs billet accepts) and the block bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: u64,
    pub max_frame_bytes: u64,
}

impl Limits {
    /// Largest block billet writes or accepts: 4 MiB of data.
    pub const MAX_BLOCK_BYTES: u64 = 4 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 1 << 20,
            // Room for the CID on top of the largest block.
            max_frame_bytes: Limits::MAX_BLOCK_BYTES + 256,
        }
    }
}

/// One block read from a CAR, with where it was.
#[derive(Debug, Clone)]
pub struct CarBlock {
    pub block: Block,
    pub frame_offset: u64,
    pub data_offset: u64,
}

/// Reads a CARv1 stream frame by frame, verifying each block.
#[derive(Debug)]
pub struct CarReader<R: Read> {
    inner: R,
    roots: Vec<Cid>,
    offset: u64,
    limits: Limits,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(inner: R) -> Result<Self, CarError> {
        Self::with_limits(inner, Limits::default())
    }

    pub fn with_limits(mut inner: R, limits: Limits) -> Result<Self, CarError> {
        let (len, vlen) = match read_varint(&mut inner) {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(CarError::Truncated {
                    offset: 0,
                    what: "header length (the stream is empty)",
                });
            }
            Err(e) => return Err(varint_error(e, 0, "header length")),
        };
        if len > limits.max_header_bytes {
            return Err(CarError::HeaderTooLarge {
                offset: 0,
                len,
                max: limits.max_header_bytes,
            });
        }
        if len == 0 {
            return Err(CarError::BadHeader {
                offset: 0,
                reason: "header is empty".into(),
            });
        }
        let body = read_exact_bytes(&mut inner, len, 0, "header")?;
        let roots =
            decode_header(&body).map_err(|reason| CarError::BadHeader { offset: 0, reason })?;
        Ok(CarReader {
            inner,
            roots,
            offset: vlen as u64 + len,
            limits,
        })
    }

    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame's CID and bytes, parsed but not hashed, with the
    /// frame's offset and the data's: for callers that check hashes
    /// themselves (on other threads). The CID is checked to be one billet
    /// accepts.
    pub fn next_frame(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>, CarError> {
        let frame_offset = self.offset;
        let (len, vlen) = match read_varint(&mut self.inner) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(None),
            Err(e) => return Err(varint_error(e, frame_offset, "frame length")),
        };
        if len > self.limits.max_frame_bytes {
            return Err(CarError::FrameTooLarge {
                offset: frame_offset,
                len,
                max: self.limits.max_frame_bytes,
            });
        }
        let frame = read_exact_bytes(&mut self.inner, len, frame_offset, "frame")?;
        self.offset = frame_offset + vlen as u64 + len;
        let (cid, cid_len) = parse_cid(&frame).map_err(|reason| CarError::BadCid {
            offset: frame_offset,
            reason,
        })?;
        Ok(Some((
            cid,
            frame.slice(cid_len..),
            frame_offset,
            frame_offset + vlen as u64 + cid_len as u64,
        )))
    }

    /// The next block, or `None` at a clean end of stream. After a
    /// `BadBlock` error (hash mismatch, unsupported CID) the reader has
    /// consumed the frame and may continue; after any other error the
    /// stream position is undefined.
    pub fn next_block(&mut self) -> Result<Option<CarBlock>, CarError> {
        let Some((cid, data, frame_offset, data_offset)) = self.next_frame()? else {
            return Ok(None);
        };
        let block = Block::verified(cid, data).map_err(|e| CarError::BadBlock {
            offset: frame_offset,
            cid: Box::new(cid),
            reason: e.to_string(),
        })?;
        Ok(Some(CarBlock {
            block,
            frame_offset,
            data_offset,
        }))
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<CarBlock, CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// Parses the CID at the start of a frame, returning it and its length.
pub(crate) fn parse_cid(frame: &[u8]) -> Result<(Cid, usize), String> {
    let mut cur = frame;
    let cid = Cid::read_bytes(&mut cur).map_err(|e| e.to_string())?;
    Ok((cid, frame.len() - cur.len()))
}

fn read_exact_bytes<R: Read>(
    r: &mut R,
    len: u64,
    offset: u64,
    what: &'static str,
) -> Result<Bytes, CarError> {
    // `len` was checked against a limit, so this allocation is bounded.
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(CarError::Truncated { offset, what }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(CarError::Io { offset, source }),
        }
    }
    Ok(Bytes::from(buf))
}

fn varint_error(e: VarintError, offset: u64, what: &'static str) -> CarError {
    match e {
        VarintError::Truncated => CarError::Truncated { offset, what },
        VarintError::Invalid(reason) => CarError::BadVarint { offset, reason },
        VarintError::Io(source) => CarError::Io { offset, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::CarWriter;
    use billet_block::{Codec, encode_dag_cbor};
    use proptest::prelude::*;

    fn sample() -> (Vec<u8>, Vec<Block>) {
        let blocks = vec![
            Block::new(Codec::Raw, &b"hello"[..]),
            Block::new(Codec::Raw, Bytes::new()),
            encode_dag_cbor(&vec!["a", "b"]).unwrap(),
        ];
        let mut w = CarWriter::new(Vec::new(), &[*blocks[2].cid()]).unwrap();
        for b in &blocks {
            w.write_block(b).unwrap();
        }
        (w.into_inner().unwrap(), blocks)
    }

    #[test]
    fn round_trip_with_offsets() {
        let (bytes, blocks) = sample();
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert_eq!(r.roots(), &[*blocks[2].cid()]);
        let mut got = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            let start = b.data_offset as usize;
            assert_eq!(
                &bytes[start..start + b.block.len()],
                b.block.data().as_ref()
            );
            got.push(b.block);
        }
        assert_eq!(got, blocks);
    }

    #[test]
    fn every_truncation_is_reported_with_an_offset() {
        let (bytes, _) = sample();
        for cut in 0..bytes.len() {
            let res = CarReader::new(&bytes[..cut]).and_then(|r| {
                let mut n = 0;
                for b in r {
                    b?;
                    n += 1;
                }
                Ok(n)
            });
            // A cut exactly at a frame boundary is a valid shorter CAR.
            if let Err(e) = res {
                assert!(e.offset() <= cut as u64, "{e}");
            }
        }
    }

    #[test]
    fn flipped_byte_in_a_block_names_cid_and_offset() {
        let (mut bytes, blocks) = sample();
        let loc = {
            let mut r = CarReader::new(&bytes[..]).unwrap();
            r.next_block().unwrap().unwrap()
        };
        bytes[loc.data_offset as usize] ^= 1;
        let mut r = CarReader::new(&bytes[..]).unwrap();
        match r.next_block() {
            Err(CarError::BadBlock { offset, cid, .. }) => {
                assert_eq!(offset, loc.frame_offset);
                assert_eq!(*cid, *blocks[0].cid());
            }
            other => panic!("expected BadBlock, got {other:?}"),
        }
        // The reader can go on past a bad block.
        assert_eq!(r.next_block().unwrap().unwrap().block, blocks[1]);
    }

    #[test]
    fn oversized_header_and_frame_are_refused_before_allocation() {
        let mut huge = Vec::new();
        crate::varint::encode_varint(u64::MAX >> 1, &mut huge);
        assert!(matches!(
            CarReader::new(&huge[..]),
            Err(CarError::HeaderTooLarge { .. })
        ));
        let mut bytes = crate::header::encode_header(&[]);
        let at = bytes.len() as u64;
        crate::varint::encode_varint(1 << 40, &mut bytes);
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert!(matches!(
            r.next_block(),
            Err(CarError::FrameTooLarge { offset, .. }) if offset == at
        ));
    }

    #[test]
    fn carv2_is_refused_by_name() {
        #[derive(serde::Serialize)]
        struct H {
            version: u64,
        }
        let body = serde_ipld_dagcbor::to_vec(&H { version: 2 }).unwrap();
        let mut bytes = Vec::new();
        crate::varint::encode_varint(body.len() as u64, &mut bytes);
        bytes.extend_from_slice(&body);
        let err = CarReader::new(&bytes[..]).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    proptest! {
        // Mutated and random input never panics and never yields a block
        // that does not match its CID.
        #[test]
        fn mutated_input_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let (mut bytes, _) = sample();
            for (i, v) in flips {
                let at = i.index(bytes.len());
                bytes[at] = v;
            }
            let cut = cut.index(bytes.len() + 1);
            if let Ok(r) = CarReader::new(&bytes[..cut]) {
                for b in r.take(100).flatten() {
                    prop_assert!(billet_block::verify(b.block.cid(), b.block.data()).is_ok());
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = CarReader::new(&bytes[..]) {
                for b in r.take(100) {
                    let _ = b;
                }
            }
        }
    }
}
