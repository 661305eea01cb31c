//! Inclusion and consistency proofs (MMRIVER sections "Inclusion Proof"
//! and "Consistency Proof"): a proof is the sibling values on the path from
//! a node up to its peak; the peaks are the accumulator it verifies against.

use crate::{Hash, MmrError, hash_pospair64, index_height, peaks};

/// Proof that node `index` is in the MMR of `size` nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub size: u64,
    pub index: u64,
    /// Sibling values from the node up to (not including) its peak.
    pub path: Vec<Hash>,
}

/// Proof that the MMR of `from` nodes is a prefix of the one of `to`
/// nodes: for each peak of the older, its path up to a peak of the newer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub paths: Vec<Vec<Hash>>,
}

/// Indices of the siblings on node `i`'s path to its peak in the MMR of
/// `size` nodes.
pub fn inclusion_path(size: u64, i: u64) -> Result<Vec<u64>, MmrError> {
    peaks(size)?;
    if i >= size {
        return Err(MmrError::OutOfRange { index: i, size });
    }
    let mut path = Vec::new();
    let mut i = i;
    let mut g = index_height(i);
    loop {
        let (sibling, parent) = if index_height(i + 1) > g {
            // i is a right child: the sibling is to the left.
            (i - ((2u64 << g) - 1), i + 1)
        } else {
            (i + ((2u64 << g) - 1), i + (2u64 << g))
        };
        if sibling >= size {
            // i is a peak.
            return Ok(path);
        }
        path.push(sibling);
        i = parent;
        g += 1;
    }
}

/// Walks `path` up from node `i` of value `value`: the index and value of
/// the peak it reaches.
pub fn included_root(i: u64, value: &Hash, path: &[Hash]) -> (u64, Hash) {
    let mut i = i;
    let mut root = *value;
    for (g, sibling) in (index_height(i)..).zip(path) {
        if index_height(i + 1) > g {
            i += 1;
            root = hash_pospair64(i + 1, sibling, &root);
        } else {
            i += 2u64 << g;
            root = hash_pospair64(i + 1, &root, sibling);
        }
    }
    (i, root)
}

/// Whether `proof` shows `value` at its node, against `peak_values`
/// (highest first) of an MMR of `proof.size` nodes.
pub fn verify_inclusion(proof: &InclusionProof, value: &Hash, peak_values: &[Hash]) -> bool {
    let Ok(peak_idx) = peaks(proof.size) else {
        return false;
    };
    if peak_idx.len() != peak_values.len() || proof.index >= proof.size {
        return false;
    }
    // The path must be exactly the one the size calls for: a longer one
    // would walk past a peak, a shorter one stop below it.
    match inclusion_path(proof.size, proof.index) {
        Ok(p) if p.len() == proof.path.len() => {}
        _ => return false,
    }
    let (top, root) = included_root(proof.index, value, &proof.path);
    peak_idx
        .iter()
        .position(|p| *p == top)
        .is_some_and(|k| peak_values[k] == root)
}

/// For each peak of the MMR of `from` nodes, the sibling indices of its
/// path in the MMR of `to` nodes.
pub fn consistency_paths(from: u64, to: u64) -> Result<Vec<Vec<u64>>, MmrError> {
    if from > to {
        return Err(MmrError::OutOfRange {
            index: from,
            size: to,
        });
    }
    peaks(to)?;
    peaks(from)?
        .into_iter()
        .map(|p| inclusion_path(to, p))
        .collect()
}

/// Whether `proof` shows the MMR with peaks `from_peaks` (of `proof.from`
/// nodes) is a prefix of the one with peaks `to_peaks` (of `proof.to`).
pub fn verify_consistency(
    proof: &ConsistencyProof,
    from_peaks: &[Hash],
    to_peaks: &[Hash],
) -> bool {
    let (Ok(from_idx), Ok(to_idx)) = (peaks(proof.from), peaks(proof.to)) else {
        return false;
    };
    if proof.from > proof.to
        || from_idx.len() != from_peaks.len()
        || to_idx.len() != to_peaks.len()
        || from_idx.len() != proof.paths.len()
    {
        return false;
    }
    from_idx
        .iter()
        .zip(from_peaks)
        .zip(&proof.paths)
        .all(|((i, v), path)| {
            verify_inclusion(
                &InclusionProof {
                    size: proof.to,
                    index: *i,
                    path: path.clone(),
                },
                v,
                to_peaks,
            )
        })
}
