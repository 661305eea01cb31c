//! What a node keeps locally about a shipped segment, so that it can read
//! the segment back by byte range once the local file is gone: the remote
//! key, how it is encoded, and its frame table. Written beside the
//! segment as `{id:020}.remote` (layout: `docs/remote.md`):
//!
//! ```text
//! 0   8  magic "BLTRMTE1"
//! 8   1  encoding (0 identity, 1 zstd)
//! 9   1  1 if a SHA-256 of the stored object follows, else 0
//! 10  6  zero
//! 16  8  segment length in bytes, u64 LE
//! 24  8  stored object length in bytes, u64 LE
//! 32  32 SHA-256 of the stored object (zero when unknown)
//! 64  4  key length K, u32 LE; then K bytes of UTF-8 key
//! …   4  frame count N, u32 LE; then N × (raw length u32 LE, stored length u32 LE)
//! end-32 32  SHA-256 of every byte before it
//! ```

use sha2::{Digest, Sha256};

use crate::frames::{Encoding, FrameTable};

const MAGIC: &[u8; 8] = b"BLTRMTE1";

/// A shipped segment's remote copy, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCopy {
    /// Relative to the configured prefix.
    pub key: String,
    pub encoding: Encoding,
    pub segment_len: u64,
    /// Bytes of the stored object (frames and, for zstd, the seek table).
    pub stored_len: u64,
    /// Of the stored object, when known (recovery learns only the frames).
    pub sha256: Option<[u8; 32]>,
    pub frames: FrameTable,
}

impl RemoteCopy {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(110 + self.key.len() + self.frames.len() * 8);
        out.extend_from_slice(MAGIC);
        out.push(self.encoding.code());
        out.push(u8::from(self.sha256.is_some()));
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&self.segment_len.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.sha256.unwrap_or([0; 32]));
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        for (raw, stored) in self.frames.sizes() {
            out.extend_from_slice(&(raw as u32).to_le_bytes());
            out.extend_from_slice(&(stored as u32).to_le_bytes());
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RemoteCopy, String> {
        if bytes.len() < 64 + 8 + 32 {
            return Err(format!("{} bytes is too short", bytes.len()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err("checksum mismatch (short or damaged)".into());
        }
        if &body[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let encoding = Encoding::from_code(body[8]).ok_or("unknown encoding")?;
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |at: usize| -> Result<u32, String> {
            let b = body.get(at..at + 4).ok_or("truncated")?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&body[32..64]);
        let key_len = u32_at(64)? as usize;
        let key_end = 68 + key_len;
        let key = std::str::from_utf8(body.get(68..key_end).ok_or("truncated key")?)
            .map_err(|_| "the key is not UTF-8")?
            .to_string();
        let n = u32_at(key_end)? as usize;
        let frames_at = key_end + 4;
        if body.len() != frames_at + n * 8 {
            return Err("the frame count does not match the length".into());
        }
        let sizes = (0..n)
            .map(|i| {
                let at = frames_at + i * 8;
                Ok((u64::from(u32_at(at)?), u64::from(u32_at(at + 4)?)))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let frames = FrameTable::from_sizes(sizes).map_err(|e| e.to_string())?;
        let segment_len = u64_at(16);
        if frames.raw_len() != segment_len {
            return Err("the frames do not cover the segment".into());
        }
        Ok(RemoteCopy {
            key,
            encoding,
            segment_len,
            stored_len: u64_at(24),
            sha256: (body[9] == 1).then_some(sha),
            frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let copy = RemoteCopy {
            key: "billet/v1/n/data/00000000000000000003.car.zst".into(),
            encoding: Encoding::Zstd,
            segment_len: 35,
            stored_len: 60,
            sha256: Some([7; 32]),
            frames: FrameTable::from_sizes([(10, 4), (25, 20)]).unwrap(),
        };
        let bytes = copy.encode();
        assert_eq!(RemoteCopy::decode(&bytes).unwrap(), copy);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(RemoteCopy::decode(&b).is_err(), "flip at {i}");
        }
        assert!(RemoteCopy::decode(&bytes[..bytes.len() - 1]).is_err());
        let unknown = RemoteCopy {
            sha256: None,
            ..copy
        };
        assert_eq!(RemoteCopy::decode(&unknown.encode()).unwrap(), unknown);
    }
}
