#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Every proof over every MMR up to 2,000 leaves verifies; any change to a
//! proof, a value or a size makes it fail.

use billet_mmr::{
    ConsistencyProof, Hash, InclusionProof, append, consistency_paths, inclusion_path, leaf_hash,
    leaf_index, peaks, peaks_after, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

const LEAVES: u64 = 2000;

struct Built {
    nodes: Vec<Hash>,
    /// Node count after each leaf: sizes[e] = size with e + 1 leaves.
    sizes: Vec<u64>,
}

fn build() -> Built {
    let mut nodes = Vec::new();
    let mut sizes = Vec::new();
    let mut peak_values: Vec<Hash> = Vec::new();
    for e in 0..LEAVES {
        let size = nodes.len() as u64;
        let added = append(size, &peak_values, leaf_hash(&e.to_le_bytes())).unwrap();
        peak_values = peaks_after(size, &peak_values, &added).unwrap();
        nodes.extend(added.into_iter().map(|(_, v)| v));
        sizes.push(nodes.len() as u64);
    }
    Built { nodes, sizes }
}

fn accumulator(b: &Built, size: u64) -> Vec<Hash> {
    peaks(size)
        .unwrap()
        .iter()
        .map(|p| b.nodes[*p as usize])
        .collect()
}

fn proof(b: &Built, size: u64, i: u64) -> InclusionProof {
    InclusionProof {
        size,
        index: i,
        path: inclusion_path(size, i)
            .unwrap()
            .iter()
            .map(|s| b.nodes[*s as usize])
            .collect(),
    }
}

fn consistency(b: &Built, from: u64, to: u64) -> ConsistencyProof {
    ConsistencyProof {
        from,
        to,
        paths: consistency_paths(from, to)
            .unwrap()
            .iter()
            .map(|p| p.iter().map(|s| b.nodes[*s as usize]).collect())
            .collect(),
    }
}

#[test]
fn every_leaf_at_every_size_and_every_prefix_verify() {
    let b = build();
    let last = *b.sizes.last().unwrap();
    let last_acc = accumulator(&b, last);
    for (n, &size) in b.sizes.iter().enumerate() {
        let acc = accumulator(&b, size);
        for e in 0..=n as u64 {
            let i = leaf_index(e);
            assert!(
                verify_inclusion(&proof(&b, size, i), &b.nodes[i as usize], &acc),
                "leaf {e} in MMR({size})"
            );
        }
        // Consistency with the next size and with the largest one.
        assert!(verify_consistency(
            &consistency(&b, size, last),
            &acc,
            &last_acc
        ));
        if let Some(&next) = b.sizes.get(n + 1) {
            assert!(verify_consistency(
                &consistency(&b, size, next),
                &acc,
                &accumulator(&b, next)
            ));
        }
    }
}

#[test]
fn consistency_between_every_pair_of_sizes_up_to_400_leaves() {
    let b = build_cached();
    let sizes = &b.sizes[..400];
    let accs: Vec<Vec<Hash>> = sizes.iter().map(|s| accumulator(b, *s)).collect();
    for (i, &from) in sizes.iter().enumerate() {
        for (j, &to) in sizes.iter().enumerate().skip(i) {
            let p = consistency(b, from, to);
            assert!(verify_consistency(&p, &accs[i], &accs[j]), "{from} -> {to}");
            // Claiming the older MMR is larger than it is fails.
            if i > 0 {
                assert!(
                    !verify_consistency(&p, &accs[i - 1], &accs[j]),
                    "{from} -> {to}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn consistency_between_any_two_sizes(a in 0usize..LEAVES as usize, c in 0usize..LEAVES as usize) {
        let b = build_cached();
        let (from, to) = (b.sizes[a.min(c)], b.sizes[a.max(c)]);
        let p = consistency(b, from, to);
        prop_assert!(verify_consistency(&p, &accumulator(b, from), &accumulator(b, to)));
        // A wrong older accumulator fails.
        if let Some(first) = p.paths.iter().position(|x| !x.is_empty()) {
            let mut bad = p.clone();
            bad.paths[first][0][0] ^= 1;
            prop_assert!(!verify_consistency(&bad, &accumulator(b, from), &accumulator(b, to)));
        }
        let mut acc = accumulator(b, from);
        acc[0][31] ^= 0x80;
        prop_assert!(!verify_consistency(&p, &acc, &accumulator(b, to)));
    }

    #[test]
    fn altered_proofs_values_and_sizes_fail(n in 1usize..LEAVES as usize, pick in any::<u64>(), byte in 0usize..32, bit in 0u8..8) {
        let b = build_cached();
        let size = b.sizes[n];
        let e = pick % (n as u64 + 1);
        let i = leaf_index(e);
        let acc = accumulator(b, size);
        let good = proof(b, size, i);
        let value = b.nodes[i as usize];
        prop_assert!(verify_inclusion(&good, &value, &acc));
        // A flipped bit in the value.
        let mut v = value;
        v[byte] ^= 1 << bit;
        prop_assert!(!verify_inclusion(&good, &v, &acc));
        // A flipped bit anywhere in the path.
        if !good.path.is_empty() {
            let mut bad = good.clone();
            let k = (pick as usize / 7) % bad.path.len();
            bad.path[k][byte] ^= 1 << bit;
            prop_assert!(!verify_inclusion(&bad, &value, &acc));
        }
        // Another leaf's value at this index.
        let other = leaf_index((e + 1) % (n as u64 + 1));
        if other != i {
            prop_assert!(!verify_inclusion(&good, &b.nodes[other as usize], &acc));
        }
        // A size that is not a complete MMR, or one whose accumulator has
        // another shape, fails against these peaks. (A complete size whose
        // peaks keep this leaf's peak in place proves the same inclusion:
        // the signed checkpoint, not the proof, fixes the size.)
        for wrong in [size + 1, size.saturating_sub(1), size + 2, b.sizes[(n + 1).min(LEAVES as usize - 1)]] {
            let same_shape = peaks(wrong).is_ok_and(|p| p.len() == acc.len());
            if wrong != size && !same_shape {
                let bad = InclusionProof { size: wrong, ..good.clone() };
                prop_assert!(!verify_inclusion(&bad, &value, &acc));
            }
        }
        // A flipped bit in a peak.
        let mut bad_acc = acc.clone();
        let k = (pick as usize) % bad_acc.len();
        bad_acc[k][byte] ^= 1 << bit;
        let touched = peaks(size).unwrap()[k];
        let (top, _) = billet_mmr::included_root(i, &value, &good.path);
        prop_assert_eq!(verify_inclusion(&good, &value, &bad_acc), top != touched);
    }
}

fn build_cached() -> &'static Built {
    static B: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    B.get_or_init(build)
}
