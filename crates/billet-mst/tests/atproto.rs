#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! atproto conformance: the empty tree's CID and the known maps and edge
//! cases that Bluesky's implementations test against each other
//! (indigo's mst_interop_test.go, mirrored by the TypeScript and other
//! implementations).

use billet_block::{Cid, MemoryBlockStore};
use billet_mst::{Builder, EMPTY_ROOT, Mst, Op, empty_root};

const CID1: &str = "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454";

fn cid(s: &str) -> Cid {
    Cid::try_from(s).unwrap()
}

fn key(rkey: &str) -> Vec<u8> {
    format!("com.example.record/{rkey}").into_bytes()
}

/// Applies ops one at a time (as the reference tests do) and returns roots.
struct Tree {
    store: MemoryBlockStore,
    root: Cid,
}

impl Tree {
    fn new() -> Self {
        let store = MemoryBlockStore::new();
        let e = empty_root();
        let root = *e.cid();
        store.put(e);
        Tree { store, root }
    }
    fn apply(&mut self, op: Op) -> String {
        let applied = Mst::new(&self.store).apply(&self.root, vec![op]).unwrap();
        self.store.put_all(applied.blocks);
        self.root = applied.root;
        self.root.to_string()
    }
    fn put(&mut self, rkey: &str) -> String {
        self.apply(Op::put(key(rkey), cid(CID1)))
    }
    fn delete(&mut self, rkey: &str) -> String {
        self.apply(Op::delete(key(rkey)))
    }
}

fn bulk(rkeys: &[&str]) -> String {
    let mut keys: Vec<Vec<u8>> = rkeys.iter().map(|k| key(k)).collect();
    keys.sort();
    let mut b = Builder::new();
    for k in &keys {
        b.push(k, cid(CID1), &mut |_| {}).unwrap();
    }
    b.finish(&mut |_| {}).to_string()
}

#[test]
fn empty_tree() {
    assert_eq!(empty_root().cid().to_string(), EMPTY_ROOT);
    assert_eq!(Builder::new().finish(&mut |_| {}).to_string(), EMPTY_ROOT);
    assert_eq!(
        EMPTY_ROOT,
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    );
}

#[test]
fn known_maps() {
    let mut t = Tree::new();
    assert_eq!(
        t.put("3jqfcqzm3fo2j"),
        "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu"
    );
    assert_eq!(
        bulk(&["3jqfcqzm3fo2j"]),
        "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu"
    );

    let mut t = Tree::new();
    assert_eq!(
        t.put("3jqfcqzm3fx2j"),
        "bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai"
    );

    let simple = [
        "3jqfcqzm3fp2j",
        "3jqfcqzm3fr2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm4fc2j",
    ];
    let mut t = Tree::new();
    let mut last = String::new();
    for k in simple {
        last = t.put(k);
    }
    let want = "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m";
    assert_eq!(last, want);
    assert_eq!(bulk(&simple), want);
}

#[test]
fn edge_case_trim_top_on_delete() {
    let l1root = "bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4";
    let l0root = "bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi";
    let keys = [
        "3jqfcqzm3fn2j",
        "3jqfcqzm3fo2j",
        "3jqfcqzm3fp2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm3fu2j",
    ];
    let mut t = Tree::new();
    let mut last = String::new();
    for k in keys {
        last = t.put(k);
    }
    assert_eq!(last, l1root);
    assert_eq!(t.delete("3jqfcqzm3fs2j"), l0root);
}

#[test]
fn edge_case_insertion_splits_and_deletion_merges() {
    let l1root = "bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem";
    let l2root = "bafyreid2x5eqs4w4qxvc5jiwda4cien3gw2q6cshofxwnvv7iucrmfohpm";
    let keys = [
        "3jqfcqzm3fo2j",
        "3jqfcqzm3fp2j",
        "3jqfcqzm3fr2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm3fz2j",
        "3jqfcqzm4fc2j",
        "3jqfcqzm4fd2j",
        "3jqfcqzm4ff2j",
        "3jqfcqzm4fg2j",
        "3jqfcqzm4fh2j",
    ];
    let mut t = Tree::new();
    let mut last = String::new();
    for k in keys {
        last = t.put(k);
    }
    assert_eq!(last, l1root);
    assert_eq!(t.put("3jqfcqzm3fx2j"), l2root);
    assert_eq!(t.delete("3jqfcqzm3fx2j"), l1root);
}

#[test]
fn edge_case_higher_layers_appear_and_vanish() {
    let l0root = "bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky";
    let l2root = "bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy";
    let mut t = Tree::new();
    t.put("3jqfcqzm3ft2j");
    assert_eq!(t.put("3jqfcqzm3fz2j"), l0root);
    assert_eq!(t.put("3jqfcqzm3fx2j"), l2root);
    assert_eq!(t.delete("3jqfcqzm3fx2j"), l0root);
    assert_eq!(
        bulk(&["3jqfcqzm3ft2j", "3jqfcqzm3fz2j", "3jqfcqzm3fx2j"]),
        l2root
    );
}
