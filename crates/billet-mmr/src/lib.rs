//! A Merkle Mountain Range as the IETF draft "Merkle Mountain Range for
//! Immediately Verifiable and Replicable Commitments"
//! (draft-bryce-cose-merkle-mountain-range-proofs, MMRIVER) defines it:
//!
//! - nodes are numbered by zero-based post-order index `i`; the node's
//!   position is `i + 1`;
//! - a leaf's value is given (billet: SHA-256 of the commit CID's bytes);
//! - an interior node is `SHA-256(u64_be(position) ‖ left ‖ right)`;
//! - there is no bagging: the accumulator is the list of peaks, highest
//!   first; an MMR is only ever "complete" (no pair of equal-height peaks).
//!
//! Everything here is arithmetic on indices plus hashing: appending needs
//! only the current peaks, a proof names O(log n) node indices, and
//! verification needs the proof and the peaks. Storage is the caller's.

mod proof;

pub use proof::{
    ConsistencyProof, InclusionProof, consistency_paths, included_root, inclusion_path,
    verify_consistency, verify_inclusion,
};

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MmrError {
    #[error("{0} nodes is not the size of a complete MMR")]
    BadSize(u64),
    #[error("node {index} is outside an MMR of {size} nodes")]
    OutOfRange { index: u64, size: u64 },
    #[error("{got} peak values given, an MMR of {size} nodes has {want}")]
    PeakCount { size: u64, got: usize, want: usize },
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

fn all_ones(x: u64) -> bool {
    x != 0 && x.count_ones() == bit_length(x)
}

/// Zero-based height of node `i` (leaves are 0).
pub fn index_height(i: u64) -> u32 {
    let mut pos = i + 1;
    while !all_ones(pos) {
        // Jump to the node of the same height in the leftmost perfect tree.
        pos -= (1u64 << (bit_length(pos) - 1)) - 1;
    }
    bit_length(pos) - 1
}

/// `SHA-256(u64_be(pos) ‖ left ‖ right)`: an interior node at `pos`.
pub fn hash_pospair64(pos: u64, left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(pos.to_be_bytes());
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The value billet stores for a leaf: SHA-256 over the bytes given (a
/// commit CID's binary form).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// Peak indices of a complete MMR of `size` nodes, highest first.
pub fn peaks(size: u64) -> Result<Vec<u64>, MmrError> {
    let mut out = Vec::new();
    let mut remaining = size;
    let mut start = 0u64;
    let mut last_tree = u64::MAX;
    while remaining > 0 {
        // The largest perfect tree (2^k - 1 nodes) that still fits.
        let tree = (1u64 << (bit_length(remaining + 1) - 1)) - 1;
        if tree >= last_tree {
            return Err(MmrError::BadSize(size));
        }
        out.push(start + tree - 1);
        start += tree;
        remaining -= tree;
        last_tree = tree;
    }
    Ok(out)
}

/// Whether `size` nodes form a complete MMR.
pub fn is_complete(size: u64) -> bool {
    peaks(size).is_ok()
}

/// Leaves in a complete MMR of `size` nodes.
pub fn leaf_count(size: u64) -> Result<u64, MmrError> {
    Ok(peaks(size)?.iter().map(|p| 1u64 << index_height(*p)).sum())
}

/// Node index of leaf number `e` (zero-based).
pub fn leaf_index(e: u64) -> u64 {
    // Each set bit of e stands for a perfect tree of 2^h leaves
    // (2^(h+1) - 1 nodes) to the left of the leaf.
    let mut sum = 0;
    let mut rest = e;
    while rest > 0 {
        let h = bit_length(rest);
        sum += (1u64 << h) - 1;
        rest -= 1u64 << (h - 1);
    }
    sum
}

/// The nodes appending leaf value `leaf` to a complete MMR of `size` nodes
/// adds, as `(index, value)` in index order: the leaf and each parent it
/// completes. `peak_values` are the current peaks' values, highest first;
/// a merge only ever needs a peak as its left child.
pub fn append(size: u64, peak_values: &[Hash], leaf: Hash) -> Result<Vec<(u64, Hash)>, MmrError> {
    let peak_idx = peaks(size)?;
    if peak_idx.len() != peak_values.len() {
        return Err(MmrError::PeakCount {
            size,
            got: peak_values.len(),
            want: peak_idx.len(),
        });
    }
    let mut out = vec![(size, leaf)];
    let mut i = size;
    let mut g = 0u32;
    let mut value = leaf;
    let mut left_peak = peak_values.len();
    while index_height(i + 1) > g {
        // The left sibling is the peak just left of what we are building.
        left_peak -= 1;
        let left = &peak_values[left_peak];
        let parent = i + 1;
        value = hash_pospair64(parent + 1, left, &value);
        out.push((parent, value));
        i = parent;
        g += 1;
    }
    Ok(out)
}

/// The peaks' values after appending, given the nodes `append` returned.
pub fn peaks_after(
    size: u64,
    peak_values: &[Hash],
    appended: &[(u64, Hash)],
) -> Result<Vec<Hash>, MmrError> {
    let new_size = size + appended.len() as u64;
    let want = peaks(new_size)?;
    let merged = appended.len() - 1;
    let mut out: Vec<Hash> = peak_values[..peak_values.len() - merged].to_vec();
    let last = appended
        .last()
        .map(|(_, v)| *v)
        .ok_or(MmrError::BadSize(size))?;
    out.push(last);
    if out.len() != want.len() {
        return Err(MmrError::PeakCount {
            size: new_size,
            got: out.len(),
            want: want.len(),
        });
    }
    Ok(out)
}
