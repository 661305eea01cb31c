//! A Bloom filter over block digests: "certainly absent" or "perhaps
//! present", in about ten bits per block.
//!
//! Two users: the log finds which of its on-disk location runs may hold a
//! block without reading them, and the collector marks live blocks in
//! memory bounded by the block count rather than by digest size. Both only
//! ever act on "absent" with certainty: a false positive costs the log one
//! read, and keeps one dead block for the collector until a later pass
//! (each pass seeds its filter afresh, so the same block is not a false
//! positive twice running, but for chance).
//!
//! Blocked layout: a key's bits all fall in one 512-bit block (one cache
//! line), chosen by the first half of the key, so a lookup touches one
//! line. The keys are digest prefixes, already uniform, so they need no
//! further hashing; the seed is mixed in to vary false positives.

/// The 16-byte digest prefix blocks are known by (see `key_of`).
pub type DigestKey = [u8; 16];

/// The key of a CID: the first 16 bytes of its sha2-256 digest. `None` for
/// a digest shorter than that (never a CID billet accepts).
pub fn digest_key(cid: &crate::Cid) -> Option<DigestKey> {
    cid.hash().digest().get(..16)?.try_into().ok()
}

const WORDS: usize = 8;
/// Bits set per key. With ten bits per key a blocked filter's false
/// positive rate is about 1 %.
const HASHES: u32 = 7;

#[derive(Clone, PartialEq, Eq)]
pub struct DigestFilter {
    blocks: Vec<[u64; WORDS]>,
    seed: u64,
    inserted: u64,
}

impl std::fmt::Debug for DigestFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestFilter")
            .field("bytes", &self.bytes())
            .field("inserted", &self.inserted)
            .finish()
    }
}

/// The 64-bit finaliser of MurmurHash3: a seed XORed into an already
/// uniform key only permutes it, and would keep the same collisions from
/// one seed to the next; mixed afterwards, they differ.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn halves(key: &DigestKey, seed: u64) -> (u64, u64) {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&key[..8]);
    b.copy_from_slice(&key[8..]);
    let a = u64::from_le_bytes(a);
    let b = u64::from_le_bytes(b);
    if seed == 0 {
        // The log's runs: the key is uniform already.
        return (a, b);
    }
    (mix(a ^ seed), mix(b ^ seed.rotate_left(29) ^ a))
}

impl DigestFilter {
    /// A filter sized for `keys` keys at `bits_per_key` bits each (at
    /// least one block), never above `max_bytes`: beyond it the false
    /// positive rate rises instead of the memory.
    pub fn new(keys: u64, bits_per_key: u64, max_bytes: u64, seed: u64) -> Self {
        let want_bits = keys.saturating_mul(bits_per_key.max(1));
        let block_bits = (WORDS * 64) as u64;
        let max_blocks = (max_bytes / (WORDS as u64 * 8)).max(1);
        let n = want_bits.div_ceil(block_bits).clamp(1, max_blocks) as usize;
        DigestFilter {
            blocks: vec![[0; WORDS]; n],
            seed,
            inserted: 0,
        }
    }

    fn slot(&self, key: &DigestKey) -> (usize, u64) {
        let (h1, h2) = halves(key, self.seed);
        // Multiply-shift maps h1 onto 0..len without a division.
        let block = ((u128::from(h1) * self.blocks.len() as u128) >> 64) as usize;
        (block, h2)
    }

    pub fn insert(&mut self, key: &DigestKey) {
        let (b, mut h) = self.slot(key);
        let block = &mut self.blocks[b];
        for _ in 0..HASHES {
            let bit = (h & 511) as usize;
            block[bit / 64] |= 1 << (bit % 64);
            h = h.rotate_right(9);
        }
        self.inserted += 1;
    }

    /// False only if `key` was never inserted.
    pub fn contains(&self, key: &DigestKey) -> bool {
        let (b, mut h) = self.slot(key);
        let block = &self.blocks[b];
        for _ in 0..HASHES {
            let bit = (h & 511) as usize;
            if block[bit / 64] & (1 << (bit % 64)) == 0 {
                return false;
            }
            h = h.rotate_right(9);
        }
        true
    }

    /// Keys inserted (counting repeats).
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// Memory the bits take.
    pub fn bytes(&self) -> u64 {
        (self.blocks.len() * WORDS * 8) as u64
    }

    /// The bits and seed, little-endian: `seed u64 ‖ inserted u64 ‖
    /// blocks × 8 u64`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.bytes() as usize);
        out.extend_from_slice(&self.seed.to_le_bytes());
        out.extend_from_slice(&self.inserted.to_le_bytes());
        for block in &self.blocks {
            for w in block {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes); `None` for a length
    /// that is not 16 plus whole blocks.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let block_bytes = WORDS * 8;
        if bytes.len() < 16 + block_bytes || !(bytes.len() - 16).is_multiple_of(block_bytes) {
            return None;
        }
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let blocks = bytes[16..]
            .chunks_exact(block_bytes)
            .map(|c| {
                let mut b = [0u64; WORDS];
                for (i, w) in b.iter_mut().enumerate() {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&c[i * 8..i * 8 + 8]);
                    *w = u64::from_le_bytes(a);
                }
                b
            })
            .collect();
        Some(DigestFilter {
            blocks,
            seed: u64_at(0),
            inserted: u64_at(8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, cid_of};

    fn key(n: u64) -> DigestKey {
        digest_key(&cid_of(Codec::Raw, &n.to_le_bytes())).unwrap()
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut f = DigestFilter::new(100_000, 10, u64::MAX, 0);
        for n in 0..100_000 {
            f.insert(&key(n));
        }
        assert!((0..100_000).all(|n| f.contains(&key(n))));
        let fp = (100_000..200_000).filter(|n| f.contains(&key(*n))).count();
        assert!(fp < 2_500, "{fp} false positives in 100k");
        // Another seed makes other mistakes.
        let mut g = DigestFilter::new(100_000, 10, u64::MAX, 43);
        for n in 0..100_000 {
            g.insert(&key(n));
        }
        let both = (100_000..200_000)
            .filter(|n| f.contains(&key(*n)) && g.contains(&key(*n)))
            .count();
        assert!(both * 10 < fp.max(10), "{both} shared of {fp}");
    }

    #[test]
    fn a_capped_filter_stays_small_and_still_never_forgets() {
        let mut f = DigestFilter::new(1_000_000, 10, 4096, 1);
        assert_eq!(f.bytes(), 4096);
        for n in 0..10_000 {
            f.insert(&key(n));
        }
        assert!((0..10_000).all(|n| f.contains(&key(n))));
    }

    #[test]
    fn bytes_round_trip() {
        let mut f = DigestFilter::new(1000, 10, u64::MAX, 7);
        for n in 0..1000 {
            f.insert(&key(n));
        }
        let back = DigestFilter::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(back, f);
        assert!(DigestFilter::from_bytes(&f.to_bytes()[..100]).is_none());
    }
}
