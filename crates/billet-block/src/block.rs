use bytes::Bytes;
use cid::Cid;
use cid::multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::codec::{Codec, SHA2_256};
use crate::error::BlockError;

/// Bytes together with the CID they hash to. The constructors are the only
/// way to make one, and both establish that invariant.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl Block {
    /// Hashes `data` and wraps it under a CIDv1 of `codec`.
    pub fn new(codec: Codec, data: impl Into<Bytes>) -> Block {
        let data = data.into();
        let cid = cid_of(codec, &data);
        Block { cid, data }
    }

    /// Checks `data` against `cid` (the read path of every store).
    pub fn verified(cid: Cid, data: impl Into<Bytes>) -> Result<Block, BlockError> {
        let data = data.into();
        verify(&cid, &data)?;
        Ok(Block { cid, data })
    }

    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    pub fn data(&self) -> &Bytes {
        &self.data
    }

    pub fn codec(&self) -> Codec {
        // A Block's CID passed `verify`, which only admits known codecs.
        Codec::from_code(self.cid.codec()).unwrap_or(Codec::Raw)
    }

    pub fn into_parts(self) -> (Cid, Bytes) {
        (self.cid, self.data)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("cid", &self.cid.to_string())
            .field("len", &self.data.len())
            .finish()
    }
}

/// The CIDv1 (sha2-256) of `data` under `codec`.
pub fn cid_of(codec: Codec, data: &[u8]) -> Cid {
    let digest = Sha256::digest(data);
    let mh = Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a 32-byte digest always fits a 64-byte multihash");
    Cid::new_v1(codec.code(), mh)
}

/// Checks that `data` hashes to `cid` and that `cid` is of a kind billet can
/// read: sha2-256, and a raw / dag-pb / dag-cbor codec (CIDv0 is dag-pb).
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), BlockError> {
    let mh = cid.hash();
    if mh.code() != SHA2_256 {
        return Err(BlockError::Unsupported {
            cid: *cid,
            reason: "multihash is not sha2-256",
        });
    }
    if mh.size() != 32 {
        return Err(BlockError::Unsupported {
            cid: *cid,
            reason: "sha2-256 digest is not 32 bytes",
        });
    }
    if Codec::from_code(cid.codec()).is_none() {
        return Err(BlockError::Unsupported {
            cid: *cid,
            reason: "codec is not raw, dag-pb or dag-cbor",
        });
    }
    if Sha256::digest(data).as_slice() != mh.digest() {
        return Err(BlockError::HashMismatch { cid: *cid });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_empty_block_has_the_well_known_cid() {
        // The CID every IPFS implementation gives an empty raw leaf.
        let b = Block::new(Codec::Raw, Bytes::new());
        assert_eq!(
            b.cid().to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn verified_rejects_altered_bytes_and_names_the_cid() {
        let b = Block::new(Codec::Raw, &b"hello"[..]);
        let err = Block::verified(*b.cid(), &b"hellp"[..]).unwrap_err();
        assert!(matches!(err, BlockError::HashMismatch { cid } if cid == *b.cid()));
        assert!(err.to_string().contains(&b.cid().to_string()));
    }

    #[test]
    fn verified_rejects_other_hashes_and_codecs() {
        let mh = Multihash::<64>::wrap(0x13, &[0u8; 64]).unwrap();
        let cid = Cid::new_v1(0x55, mh);
        assert!(matches!(
            Block::verified(cid, Bytes::new()),
            Err(BlockError::Unsupported { .. })
        ));
        let b = Block::new(Codec::Raw, &b"x"[..]);
        let other = Cid::new_v1(0x0129, *b.cid().hash());
        assert!(matches!(
            Block::verified(other, &b"x"[..]),
            Err(BlockError::Unsupported { .. })
        ));
    }
}
