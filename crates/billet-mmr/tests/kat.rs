#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Known answers from draft-bryce-cose-merkle-mountain-range-proofs:
//! the canonical MMR(39), whose leaf at node index `i` has value
//! SHA-256(u64_be(i)).

use billet_mmr::{
    Hash, InclusionProof, append, inclusion_path, index_height, leaf_index, peaks, peaks_after,
    verify_inclusion,
};
use sha2::{Digest, Sha256};

const NODES: [&str; 39] = [
    "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc",
    "cd2662154e6d76b2b2b92e70c0cac3ccf534f9b74eb5b89819ec509083d00a50",
    "ad104051c516812ea5874ca3ff06d0258303623d04307c41ec80a7a18b332ef8",
    "d5688a52d55a02ec4aea5ec1eadfffe1c9e0ee6a4ddbe2377f98326d42dfc975",
    "8005f02d43fa06e7d0585fb64c961d57e318b27a145c857bcd3a6bdb413ff7fc",
    "9a18d3bc0a7d505ef45f985992270914cc02b44c91ccabba448c546a4b70f0f0",
    "827f3213c1de0d4c6277caccc1eeca325e45dfe2c65adce1943774218db61f88",
    "a3eb8db89fc5123ccfd49585059f292bc40a1c0d550b860f24f84efb4760fbf2",
    "4c0e071832d527694adea57b50dd7b2164c2a47c02940dcf26fa07c44d6d222a",
    "b8faf5f748f149b04018491a51334499fd8b6060c42a835f361fa9665562d12d",
    "8d85f8467240628a94819b26bee26e3a9b2804334c63482deacec8d64ab4e1e7",
    "0b5000b73a53f0916c93c68f4b9b6ba8af5a10978634ae4f2237e1f3fbe324fa",
    "6f3360ad3e99ab4ba39f2cbaf13da56ead8c9e697b03b901532ced50f7030fea",
    "508326f17c5f2769338cb00105faba3bf7862ca1e5c9f63ba2287e1f3cf2807a",
    "78b2b4162eb2c58b229288bbcb5b7d97c7a1154eed3161905fb0f180eba6f112",
    "e66c57014a6156061ae669809ec5d735e484e8fcfd540e110c9b04f84c0b4504",
    "998e907bfbb34f71c66b6dc6c40fe98ca6d2d5a29755bc5a04824c36082a61d1",
    "f4a0db79de0fee128fbe95ecf3509646203909dc447ae911aa29416bf6fcba21",
    "5bc67471c189d78c76461dcab6141a733bdab3799d1d69e0c419119c92e82b3d",
    "1b8d0103e3a8d9ce8bda3bff71225be4b5bb18830466ae94f517321b7ecc6f94",
    "0a4d7e66c92de549b765d9e2191027ff2a4ea8a7bd3eb04b0ed8ee063bad1f70",
    "61b3ff808934301578c9ed7402e3dd7dfe98b630acdf26d1fd2698a3c4a22710",
    "7a42e3892368f826928202014a6ca95a3d8d846df25088da80018663edf96b1c",
    "aed2b8245fdc8acc45eda51abc7d07e612c25f05cadd1579f3474f0bf1f6bdc6",
    "dd7efba5f1824103f1fa820a5c9e6cd90a82cf123d88bd035c7e5da0aba8a9ae",
    "561f627b4213258dc8863498bb9b07c904c3c65a78c1a36bca329154d1ded213",
    "1209fe3bc3497e47376dfbd9df0600a17c63384c85f859671956d8289e5a0be8",
    "6b4a3bd095c63d1dffae1ac03eb8264fdce7d51d2ac26ad0ebf9847f5b9be230",
    "4459f4d6c764dbaa6ebad24b0a3df644d84c3527c961c64aab2e39c58e027eb1",
    "77651b3eec6774e62545ae04900c39a32841e2b4bac80e2ba93755115252aae1",
    "d4fb5649422ff2eaf7b1c0b851585a8cfd14fb08ce11addb30075a96309582a7",
    "1664a6e0ea12d234b4911d011800bb0f8c1101a0f9a49a91ee6e2493e34d8e7b",
    "707d56f1f282aee234577e650bea2e7b18bb6131a499582be18876aba99d4b60",
    "0c9f36783b5929d43c97fe4b170d12137e6950ef1b3a8bd254b15bbacbfdee7f",
    "4d75f61869104baa4ccff5be73311be9bdd6cc31779301dfc699479403c8a786",
    "0764c726a72f8e1d245f332a1d022fffdada0c4cb2a016886e4b33b66cb9a53f",
    "c861552e9e17c41447d375c37928f9fa5d387d1e8470678107781c20a97ebc8f",
    "6a169105dcc487dbbae5747a0fd9b1d33a40320cf91cf9a323579139e7ff72aa",
    "e9a5f5201eb3c3c856e0a224527af5ac7eb1767fb1aff9bd53ba41a60cde9785",
];

fn h(e: u64) -> Hash {
    Sha256::digest(e.to_be_bytes()).into()
}

/// MMR(39) built leaf by leaf with `append`, from the peaks alone.
fn build(leaves: u64) -> Vec<Hash> {
    let mut nodes: Vec<Hash> = Vec::new();
    let mut peak_values: Vec<Hash> = Vec::new();
    for e in 0..leaves {
        let size = nodes.len() as u64;
        let added = append(size, &peak_values, h(leaf_index(e))).unwrap();
        peak_values = peaks_after(size, &peak_values, &added).unwrap();
        for (i, v) in added {
            assert_eq!(i, nodes.len() as u64);
            nodes.push(v);
        }
    }
    nodes
}

#[test]
fn node_values_of_mmr39() {
    let nodes = build(21);
    assert_eq!(nodes.len(), 39);
    for (i, want) in NODES.iter().enumerate() {
        assert_eq!(hex::encode(nodes[i]), *want, "node {i}");
    }
}

#[test]
fn heights_leaf_indices_and_peaks() {
    let heights = [
        0, 0, 1, 0, 0, 1, 2, 0, 0, 1, 0, 0, 1, 2, 3, 0, 0, 1, 0, 0, 1, 2, 0, 0, 1, 0, 0, 1, 2, 3,
        4, 0, 0, 1, 0, 0, 1, 2, 0,
    ];
    for (i, g) in heights.iter().enumerate() {
        assert_eq!(index_height(i as u64), *g, "height of {i}");
    }
    let leaves = [
        0, 1, 3, 4, 7, 8, 10, 11, 15, 16, 18, 19, 22, 23, 25, 26, 31, 32, 34, 35, 38,
    ];
    for (e, i) in leaves.iter().enumerate() {
        assert_eq!(leaf_index(e as u64), *i);
    }
    // (last node index, accumulator peaks) from the draft's table.
    let table: [(u64, &[u64]); 21] = [
        (0, &[0]),
        (2, &[2]),
        (3, &[2, 3]),
        (6, &[6]),
        (7, &[6, 7]),
        (9, &[6, 9]),
        (10, &[6, 9, 10]),
        (14, &[14]),
        (15, &[14, 15]),
        (17, &[14, 17]),
        (18, &[14, 17, 18]),
        (21, &[14, 21]),
        (22, &[14, 21, 22]),
        (24, &[14, 21, 24]),
        (25, &[14, 21, 24, 25]),
        (30, &[30]),
        (31, &[30, 31]),
        (33, &[30, 33]),
        (34, &[30, 33, 34]),
        (37, &[30, 37]),
        (38, &[30, 37, 38]),
    ];
    for (last, want) in table {
        assert_eq!(peaks(last + 1).unwrap(), want, "MMR({})", last + 1);
    }
    for bad in [2, 5, 6, 9, 12, 13, 14] {
        assert!(peaks(bad).is_err(), "{bad} is not a complete size");
    }
}

#[test]
fn inclusion_paths_of_the_draft() {
    let cases: [(u64, u64, &[u64]); 12] = [
        (3, 0, &[1]),
        (39, 0, &[1, 5, 13, 29]),
        (7, 1, &[0, 5]),
        (4, 2, &[]),
        (39, 2, &[5, 13, 29]),
        (4, 3, &[]),
        (11, 3, &[4, 2]),
        (15, 4, &[3, 2, 13]),
        (15, 6, &[13]),
        (15, 7, &[8, 12, 6]),
        (10, 8, &[7]),
        (16, 9, &[12, 6]),
    ];
    let nodes = build(21);
    for (size, i, want) in cases {
        assert_eq!(inclusion_path(size, i).unwrap(), want, "{i} in MMR({size})");
        let proof = InclusionProof {
            size,
            index: i,
            path: want.iter().map(|s| nodes[*s as usize]).collect(),
        };
        let acc: Vec<Hash> = peaks(size)
            .unwrap()
            .iter()
            .map(|p| nodes[*p as usize])
            .collect();
        assert!(
            verify_inclusion(&proof, &nodes[i as usize], &acc),
            "{i} in MMR({size})"
        );
    }
}
