#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! The MST against a BTreeMap model.

use std::collections::{BTreeMap, HashSet};

use billet_block::{Block, Cid, Codec, MemoryBlockStore};
use billet_mst::{Builder, Change, Mst, MstError, Op, empty_root, verify_proof};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, Cid>;

fn val(n: u8) -> Cid {
    *Block::new(Codec::DagCbor, vec![0x18, n]).cid()
}

/// Keys from a small pool so puts overwrite and deletes hit; the pool mixes
/// shared prefixes, multi-byte UTF-8 and enough keys to reach layer 2+.
fn key_pool() -> Vec<Vec<u8>> {
    let mut pool = Vec::new();
    for i in 0..300u32 {
        pool.push(format!("k/{i:03}").into_bytes());
    }
    for i in 0..40u32 {
        pool.push(format!("ü/é/{i}").into_bytes());
        pool.push(format!("a{}", "a".repeat(i as usize)).into_bytes());
    }
    pool
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put(usize, u8),
    Del(usize),
}

fn ops_strategy() -> impl Strategy<Value = Vec<ModelOp>> {
    let n = key_pool().len();
    prop::collection::vec(
        prop_oneof![
            3 => (0..n, any::<u8>()).prop_map(|(k, v)| ModelOp::Put(k, v)),
            1 => (0..n).prop_map(ModelOp::Del),
        ],
        0..400,
    )
}

fn to_op(pool: &[Vec<u8>], op: &ModelOp) -> Op {
    match op {
        ModelOp::Put(k, v) => Op::put(pool[*k].clone(), val(*v)),
        ModelOp::Del(k) => Op::delete(pool[*k].clone()),
    }
}

fn apply_model(model: &mut Model, pool: &[Vec<u8>], op: &ModelOp) {
    match op {
        ModelOp::Put(k, v) => {
            model.insert(pool[*k].clone(), val(*v));
        }
        ModelOp::Del(k) => {
            model.remove(&pool[*k]);
        }
    }
}

fn bulk_root(model: &Model) -> (Cid, Vec<Block>) {
    let mut blocks = Vec::new();
    let mut b = Builder::new();
    for (k, v) in model {
        b.push(k, *v, &mut |blk| blocks.push(blk)).unwrap();
    }
    let root = b.finish(&mut |blk| blocks.push(blk));
    (root, blocks)
}

/// Every node CID reachable from `root`.
fn reachable(store: &MemoryBlockStore, root: &Cid) -> HashSet<Cid> {
    let mut seen = HashSet::new();
    Mst::new(store)
        .check(
            root,
            &mut |b| {
                seen.insert(*b.cid());
            },
            &mut |_, _| Ok(()),
        )
        .unwrap();
    seen
}

struct Fixture {
    store: MemoryBlockStore,
    root: Cid,
}

impl Fixture {
    fn new() -> Self {
        let store = MemoryBlockStore::new();
        let e = empty_root();
        let root = *e.cid();
        store.put(e);
        Fixture { store, root }
    }

    /// Applies a batch and checks that the returned blocks are exactly the
    /// nodes of the new tree that the old one lacked, children first.
    fn apply(&mut self, ops: Vec<Op>) {
        let before = reachable(&self.store, &self.root);
        let applied = Mst::new(&self.store).apply(&self.root, ops).unwrap();
        let mut written = HashSet::new();
        for b in &applied.blocks {
            assert!(!before.contains(b.cid()), "an old node was returned as new");
            assert!(written.insert(*b.cid()), "a node was returned twice");
        }
        // Children first: every link of a new node is old or already written.
        for b in &applied.blocks {
            self.store.put(b.clone());
        }
        let after = reachable(&self.store, &applied.root);
        let new: HashSet<Cid> = after.difference(&before).copied().collect();
        assert_eq!(new, written, "returned blocks != new nodes");
        self.root = applied.root;
    }
}

fn entries(
    mst: &Mst<&MemoryBlockStore>,
    root: &Cid,
    from: Option<&[u8]>,
    prefix: Option<&[u8]>,
) -> Vec<(Vec<u8>, Cid)> {
    mst.iter(root, from, prefix)
        .collect::<Result<_, _>>()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batches_match_the_model_and_the_bulk_build(ops in ops_strategy(), batch in 1usize..60) {
        let pool = key_pool();
        let mut model = Model::new();
        let mut fx = Fixture::new();
        for chunk in ops.chunks(batch) {
            for op in chunk {
                apply_model(&mut model, &pool, op);
            }
            fx.apply(chunk.iter().map(|o| to_op(&pool, o)).collect());
        }
        let (want, blocks) = bulk_root(&model);
        prop_assert_eq!(fx.root, want);
        // The bulk builder's blocks are exactly the tree's nodes.
        let nodes = reachable(&fx.store, &fx.root);
        let built: HashSet<Cid> = blocks.iter().map(|b| *b.cid()).collect();
        prop_assert_eq!(nodes, built);
        let mst = Mst::new(&fx.store);
        let got = entries(&mst, &fx.root, None, None);
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(got, want);
        for (k, v) in &model {
            prop_assert_eq!(mst.get(&fx.root, k).unwrap(), Some(*v));
        }
    }

    #[test]
    fn root_does_not_depend_on_operation_order(
        ops in ops_strategy(),
        seed in any::<u64>(),
        batch in 1usize..40,
    ) {
        let pool = key_pool();
        // The final map of a sequence of puts and deletes, then the same
        // final map reached by a shuffled sequence of puts of its pairs after
        // deleting everything else.
        let mut model = Model::new();
        let mut fx = Fixture::new();
        for op in &ops {
            apply_model(&mut model, &pool, op);
        }
        fx.apply(ops.iter().map(|o| to_op(&pool, o)).collect());
        let mut pairs: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut x = seed | 1;
        for i in (1..pairs.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            pairs.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut other = Fixture::new();
        for chunk in pairs.chunks(batch) {
            other.apply(chunk.iter().map(|(k, v)| Op::put(k.clone(), *v)).collect());
        }
        prop_assert_eq!(fx.root, other.root);
    }

    #[test]
    fn seek_and_prefix_iteration_match_the_model(
        ops in ops_strategy(),
        from in proptest::option::of(0usize..380),
        prefix in proptest::option::of(prop_oneof![Just("k/1"), Just("k/"), Just("ü/"), Just("aaa"), Just("zz"), Just("k/29")]),
    ) {
        let pool = key_pool();
        let mut model = Model::new();
        let mut fx = Fixture::new();
        for op in &ops {
            apply_model(&mut model, &pool, op);
        }
        fx.apply(ops.iter().map(|o| to_op(&pool, o)).collect());
        let mst = Mst::new(&fx.store);
        let from_key = from.map(|i| pool[i].clone());
        let p = prefix.map(|p| p.as_bytes().to_vec());
        let got = entries(&mst, &fx.root, from_key.as_deref(), p.as_deref());
        let want: Vec<_> = model
            .iter()
            .filter(|(k, _)| from_key.as_ref().is_none_or(|f| *k >= f))
            .filter(|(k, _)| p.as_ref().is_none_or(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn diff_matches_the_model(a in ops_strategy(), b in ops_strategy()) {
        let pool = key_pool();
        let mut ma = Model::new();
        let mut fx = Fixture::new();
        for op in &a {
            apply_model(&mut ma, &pool, op);
        }
        fx.apply(a.iter().map(|o| to_op(&pool, o)).collect());
        let root_a = fx.root;
        let mut mb = ma.clone();
        for op in &b {
            apply_model(&mut mb, &pool, op);
        }
        fx.apply(b.iter().map(|o| to_op(&pool, o)).collect());
        let mst = Mst::new(&fx.store);
        let got = mst.diff(&root_a, &fx.root).unwrap();
        let mut keys: Vec<&Vec<u8>> = ma.keys().chain(mb.keys()).collect();
        keys.sort();
        keys.dedup();
        let want: Vec<Change> = keys
            .into_iter()
            .filter(|k| ma.get(*k) != mb.get(*k))
            .map(|k| Change { key: k.clone(), old: ma.get(k).copied(), new: mb.get(k).copied() })
            .collect();
        prop_assert_eq!(got, want);
    }

    /// What the collector relies on: visiting `b` against `a` reaches
    /// every node of `b` that `a` lacks (and no node `b` lacks) and every
    /// value that differs; against nothing, all of `b`.
    #[test]
    fn diff_visit_reaches_every_node_and_value_the_other_tree_lacks(a in ops_strategy(), b in ops_strategy()) {
        let pool = key_pool();
        let mut fx = Fixture::new();
        fx.apply(a.iter().map(|o| to_op(&pool, o)).collect());
        let root_a = fx.root;
        fx.apply(b.iter().map(|o| to_op(&pool, o)).collect());
        let root_b = fx.root;
        let mst = Mst::new(&fx.store);
        let (nodes_a, nodes_b) = (reachable(&fx.store, &root_a), reachable(&fx.store, &root_b));
        for old in [Some(&root_a), None] {
            let mut nodes = HashSet::new();
            let mut changed = Vec::new();
            mst.diff_visit(old, &root_b, &mut |c| { nodes.insert(*c); }, &mut |c| {
                changed.push(c);
                Ok(())
            }).unwrap();
            let lacking: HashSet<Cid> = match old {
                Some(_) => nodes_b.difference(&nodes_a).copied().collect(),
                None => nodes_b.clone(),
            };
            prop_assert!(nodes.is_superset(&lacking));
            prop_assert!(nodes.is_subset(&nodes_b));
            let want: Vec<Change> = match old {
                Some(o) => mst.diff(o, &root_b).unwrap(),
                None => mst.iter(&root_b, None, None).map(|e| {
                    let (key, value) = e.unwrap();
                    Change { key, old: None, new: Some(value) }
                }).collect(),
            };
            prop_assert_eq!(changed, want);
        }
    }

    #[test]
    fn proofs_verify_and_tampering_fails(ops in ops_strategy(), probe in 0usize..380, flip in any::<prop::sample::Index>()) {
        let pool = key_pool();
        let mut model = Model::new();
        let mut fx = Fixture::new();
        for op in &ops {
            apply_model(&mut model, &pool, op);
        }
        fx.apply(ops.iter().map(|o| to_op(&pool, o)).collect());
        let mst = Mst::new(&fx.store);
        let key = &pool[probe];
        let proof = mst.prove(&fx.root, key).unwrap();
        prop_assert_eq!(verify_proof(&fx.root, key, &proof.nodes).unwrap(), model.get(key).copied());

        // Against another root, or with a node missing, it cannot pass.
        let wrong_root = val(7);
        prop_assert!(verify_proof(&wrong_root, key, &proof.nodes).is_err());
        if proof.nodes.len() > 1 {
            let mut short = proof.nodes.clone();
            short.pop();
            prop_assert!(matches!(verify_proof(&fx.root, key, &short), Err(MstError::ProofIncomplete(_))));
        }
        // A node with one byte changed is a different block: its CID no
        // longer matches the link, so the proof is incomplete or rejected.
        let mut tampered = proof.nodes.clone();
        let i = flip.index(tampered.len());
        let mut bytes = tampered[i].data().to_vec();
        let at = flip.index(bytes.len());
        bytes[at] ^= 0x01;
        tampered[i] = Block::new(Codec::DagCbor, bytes);
        prop_assert!(verify_proof(&fx.root, key, &tampered).is_err());
    }
}

#[test]
fn check_rejects_each_broken_rule() {
    use serde::Serialize;
    #[derive(Serialize)]
    struct N {
        l: Option<Cid>,
        e: Vec<E>,
    }
    #[derive(Serialize)]
    struct E {
        p: u64,
        #[serde(with = "serde_bytes")]
        k: Vec<u8>,
        v: Cid,
        t: Option<Cid>,
    }
    let enc = |n: &N| billet_block::encode_dag_cbor(n).unwrap();
    // "2653ae71" and "asdf" are layer 0, "blue" layer 1.
    let cases: Vec<(&str, N)> = vec![
        (
            "out of order",
            N {
                l: None,
                e: vec![
                    E {
                        p: 0,
                        k: b"asdf".to_vec(),
                        v: val(1),
                        t: None,
                    },
                    E {
                        p: 0,
                        k: b"2653ae71".to_vec(),
                        v: val(1),
                        t: None,
                    },
                ],
            },
        ),
        (
            "mixed layers",
            N {
                l: None,
                e: vec![
                    E {
                        p: 0,
                        k: b"asdf".to_vec(),
                        v: val(1),
                        t: None,
                    },
                    E {
                        p: 0,
                        k: b"blue".to_vec(),
                        v: val(1),
                        t: None,
                    },
                ],
            },
        ),
        (
            "prefix not longest",
            N {
                l: None,
                e: vec![
                    E {
                        p: 0,
                        k: b"k/000".to_vec(),
                        v: val(1),
                        t: None,
                    },
                    E {
                        p: 1,
                        k: b"/001".to_vec(),
                        v: val(1),
                        t: None,
                    },
                ],
            },
        ),
        (
            "prefix too long",
            N {
                l: None,
                e: vec![E {
                    p: 9,
                    k: b"x".to_vec(),
                    v: val(1),
                    t: None,
                }],
            },
        ),
        (
            "invalid key",
            N {
                l: None,
                e: vec![E {
                    p: 0,
                    k: vec![0xff],
                    v: val(1),
                    t: None,
                }],
            },
        ),
        (
            "subtree under layer 0",
            N {
                l: Some(val(3)),
                e: vec![E {
                    p: 0,
                    k: b"asdf".to_vec(),
                    v: val(1),
                    t: None,
                }],
            },
        ),
        (
            "untrimmed root",
            N {
                l: Some(val(3)),
                e: vec![],
            },
        ),
    ];
    for (what, node) in cases {
        let store = MemoryBlockStore::new();
        let b = enc(&node);
        let root = *b.cid();
        store.put(b);
        let res = Mst::new(&store).check(&root, &mut |_| {}, &mut |_, _| Ok(()));
        assert!(
            matches!(res, Err(MstError::BadNode { .. })),
            "{what}: {res:?}"
        );
    }
    // An empty node below the root.
    let store = MemoryBlockStore::new();
    let empty = enc(&N { l: None, e: vec![] });
    let root = enc(&N {
        l: None,
        e: vec![E {
            p: 0,
            k: b"blue".to_vec(),
            v: val(1),
            t: Some(*empty.cid()),
        }],
    });
    let root_cid = *root.cid();
    store.put(empty);
    store.put(root);
    let res = Mst::new(&store).check(&root_cid, &mut |_| {}, &mut |_, _| Ok(()));
    assert!(matches!(res, Err(MstError::BadNode { .. })), "{res:?}");
}

#[test]
fn keys_outside_s3_rules_are_typed_errors() {
    let fx = Fixture::new();
    let mst = Mst::new(&fx.store);
    for bad in [vec![], vec![b'a'; 1025], b"a\0".to_vec(), vec![0xc3]] {
        assert!(matches!(
            mst.apply(&fx.root, vec![Op::put(bad.clone(), val(1))]),
            Err(MstError::Key { .. })
        ));
        assert!(matches!(
            Builder::new().push(&bad, val(1), &mut |_| {}),
            Err(MstError::Key { .. })
        ));
    }
    let mut b = Builder::new();
    b.push(b"b", val(1), &mut |_| {}).unwrap();
    assert!(matches!(
        b.push(b"a", val(1), &mut |_| {}),
        Err(MstError::Unsorted { .. })
    ));
    assert!(matches!(
        b.push(b"b", val(1), &mut |_| {}),
        Err(MstError::Unsorted { .. })
    ));
}

#[test]
fn mutated_nodes_never_panic_the_checker() {
    let mut blocks = Vec::new();
    let mut b = Builder::new();
    let pool = key_pool();
    let mut keys = pool.clone();
    keys.sort();
    for k in &keys {
        b.push(k, val(1), &mut |x| blocks.push(x)).unwrap();
    }
    b.finish(&mut |x| blocks.push(x));
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..4000 {
        let src = &blocks[(next() % blocks.len() as u64) as usize];
        let mut bytes = src.data().to_vec();
        for _ in 0..(1 + next() % 4) {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 5 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        let store = MemoryBlockStore::new();
        let blk = Block::new(Codec::DagCbor, bytes);
        let root = *blk.cid();
        store.put(blk);
        let _ = Mst::new(&store).check(&root, &mut |_| {}, &mut |_, _| Ok(()));
        let _ = Mst::new(&store).get(&root, b"k/001");
        let _ = verify_proof(&root, b"k/001", &[store.blocks().remove(0)]);
    }
}
