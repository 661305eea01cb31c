//! The index sidecar written when a segment seals (layout: `docs/log.md`).
//!
//! ```text
//! 0   8  magic "BLTSIDE1"
//! 8   1  plane (0 data, 1 catalog)
//! 9   7  zero
//! 16  8  segment id, u64 LE
//! 24  8  segment length in bytes (the CAR this sidecar describes), u64 LE
//! 32  8  entry count N, u64 LE
//! 40  …  N entries: CID length (u8) ‖ CID bytes ‖ data offset (u64 LE) ‖ data length (u32 LE)
//! end-32 32  SHA-256 of every byte before it
//! ```

use billet_block::Cid;
use sha2::{Digest, Sha256};

use crate::segment::PlaneKind;

const MAGIC: &[u8; 8] = b"BLTSIDE1";

/// Where one block's bytes are in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub cid: Cid,
    pub offset: u64,
    pub len: u32,
}

pub(crate) fn encode(plane: PlaneKind, id: u64, segment_len: u64, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(72 + entries.len() * 50);
    out.extend_from_slice(MAGIC);
    out.push(plane.code());
    out.extend_from_slice(&[0; 7]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&segment_len.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        let cid = e.cid.to_bytes();
        out.push(cid.len() as u8);
        out.extend_from_slice(&cid);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Decodes a sidecar, checking it belongs to `(plane, id)` and describes a
/// segment of `segment_len` bytes. Any mismatch (a short or stale sidecar)
/// is an error; the caller rebuilds the sidecar from the segment.
pub(crate) fn decode(
    bytes: &[u8],
    plane: PlaneKind,
    id: u64,
    segment_len: u64,
) -> Result<Vec<Entry>, String> {
    decode_any_len(bytes, plane, id, Some(segment_len)).map(|(_, e)| e)
}

/// The segment length a sidecar records, from its first 40 bytes alone
/// (its checksum is not checked: for a sidecar already trusted once).
pub(crate) fn segment_len(head: &[u8], plane: PlaneKind, id: u64) -> Result<u64, String> {
    if head.len() < 40 || &head[..8] != MAGIC {
        return Err("not a sidecar".into());
    }
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(a)
    };
    if head[8] != plane.code() || u64_at(16) != id {
        return Err("belongs to another plane or segment".into());
    }
    Ok(u64_at(24))
}

/// Decodes a sidecar whose segment is not at hand (evicted to the cold
/// tier): returns the segment length it records, and its entries.
/// `expect_len`, when given, must match.
pub(crate) fn decode_any_len(
    bytes: &[u8],
    plane: PlaneKind,
    id: u64,
    expect_len: Option<u64>,
) -> Result<(u64, Vec<Entry>), String> {
    if bytes.len() < 72 {
        return Err(format!("{} bytes is too short", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch (short or damaged)".into());
    }
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&body[at..at + 8]);
        u64::from_le_bytes(a)
    };
    if &body[..8] != MAGIC {
        return Err("bad magic".into());
    }
    if body[8] != plane.code() || u64_at(16) != id {
        return Err("belongs to another plane or segment".into());
    }
    let segment_len = u64_at(24);
    if let Some(want) = expect_len
        && want != segment_len
    {
        return Err(format!(
            "describes {segment_len} bytes but the segment has {want}"
        ));
    }
    let count = u64_at(32);
    let mut at = 40;
    let mut entries = Vec::with_capacity(count.min(body.len() as u64 / 13) as usize);
    for i in 0..count {
        let bad = || format!("entry {i} is truncated");
        let len = *body.get(at).ok_or_else(bad)? as usize;
        let end = at + 1 + len + 12;
        if end > body.len() {
            return Err(bad());
        }
        let cid =
            Cid::try_from(&body[at + 1..at + 1 + len]).map_err(|e| format!("entry {i}: {e}"))?;
        let offset = u64_at(at + 1 + len);
        let mut l = [0u8; 4];
        l.copy_from_slice(&body[at + 9 + len..end]);
        let dlen = u32::from_le_bytes(l);
        if offset
            .checked_add(dlen as u64)
            .is_none_or(|e| e > segment_len)
        {
            return Err(format!("entry {i} points past the segment's end"));
        }
        entries.push(Entry {
            cid,
            offset,
            len: dlen,
        });
        at = end;
    }
    if at != body.len() {
        return Err("trailing bytes after the entries".into());
    }
    Ok((segment_len, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use billet_block::{Block, Codec};

    #[test]
    fn round_trip_and_damage() {
        let entries: Vec<Entry> = (0..5u8)
            .map(|i| Entry {
                cid: *Block::new(Codec::Raw, vec![i]).cid(),
                offset: 100 + i as u64 * 40,
                len: 1,
            })
            .collect();
        let bytes = encode(PlaneKind::Data, 3, 1000, &entries);
        assert_eq!(decode(&bytes, PlaneKind::Data, 3, 1000).unwrap(), entries);
        assert!(decode(&bytes, PlaneKind::Catalog, 3, 1000).is_err());
        assert!(decode(&bytes, PlaneKind::Data, 4, 1000).is_err());
        assert!(decode(&bytes, PlaneKind::Data, 3, 999).is_err());
        assert!(decode(&bytes[..bytes.len() - 1], PlaneKind::Data, 3, 1000).is_err());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b, PlaneKind::Data, 3, 1000).is_err(), "flip at {i}");
        }
    }
}
