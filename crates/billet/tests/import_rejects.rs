#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! `billet import` and `billet verify` against damaged exports: each is
//! refused with a message naming its problem, and the data directory is
//! left exactly as it was (no bucket, no new block in the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use billet_block::{Block, BlockStore, Cid, Codec, MemoryBlockStore};
use billet_car::CarWriter;
use billet_mst::{Mst, Op};
use billet_records::{BucketSettings, Commit, Manifest};
use billet_unixfs::{IngestOptions, ingest_bytes};
use ipld_core::ipld::Ipld;

fn billet(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_billet"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("BILLET_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bucket's DAG built by hand: blocks by CID, and its head commit.
struct Dag {
    blocks: Vec<Block>,
    head: Cid,
    manifest: Cid,
    leaf: Cid,
}

fn manifest_for(key: &str, body: &[u8], store: &MemoryBlockStore) -> (Manifest, Cid) {
    let opts = IngestOptions {
        chunk_size: 1024,
        ..IngestOptions::default()
    };
    let (ing, blocks) = ingest_bytes(body, &opts).unwrap();
    store.put_all(blocks);
    let m = Manifest::new(key, ing.root.cid, ing.size(), ing.etag(), ing.sha256, 1_000);
    (m, ing.root.cid)
}

fn commit(name: &str, root: Cid, store: &MemoryBlockStore) -> Cid {
    let c = Commit::new(name, 0, root, None, 2_000, BucketSettings::default())
        .to_block()
        .unwrap();
    let cid = *c.cid();
    store.put(c);
    cid
}

/// A valid bucket `name` of three small objects; `tweak` may alter the
/// manifest of `b.txt` before it is linked.
fn bucket(name: &str, mut tweak: impl FnMut(&mut Manifest)) -> Dag {
    let store = MemoryBlockStore::new();
    let mut ops = Vec::new();
    let mut special = None;
    for (key, body) in [
        ("a.txt", b"alpha".repeat(500)),
        ("b.txt", b"bravo".repeat(700)),
        ("c.txt", b"charlie".to_vec()),
    ] {
        let (mut m, root) = manifest_for(key, &body, &store);
        if key == "b.txt" {
            tweak(&mut m);
        }
        let block = m.to_block().unwrap();
        if key == "b.txt" {
            special = Some((*block.cid(), root));
        }
        ops.push(Op::put(key.as_bytes(), *block.cid()));
        store.put(block);
    }
    let empty = billet_mst::empty_root();
    store.put(empty.clone());
    let applied = Mst::new(&store).apply(empty.cid(), ops).unwrap();
    store.put_all(applied.blocks);
    let head = commit(name, applied.root, &store);
    let (manifest, body_root) = special.unwrap();
    // The first leaf of b.txt's body (a file node over 1 KiB leaves).
    let leaf = match Codec::from_code(body_root.codec()) {
        Some(Codec::DagPb) => {
            let node = billet_unixfs::decode_file_node(&store.get(&body_root).unwrap()).unwrap();
            node.children[0].0
        }
        _ => body_root,
    };
    Dag {
        blocks: store.blocks(),
        head,
        manifest,
        leaf,
    }
}

fn write_car(path: &Path, roots: &[Cid], blocks: &[Block], skip: Option<&Cid>) {
    let mut w = CarWriter::new(std::fs::File::create(path).unwrap(), roots).unwrap();
    for b in blocks {
        if Some(b.cid()) != skip {
            w.write_block(b).unwrap();
        }
    }
    w.flush().unwrap();
}

/// An MST root node whose two layer-0 keys are out of order.
fn unsorted_mst(name: &str) -> (Vec<Block>, Cid) {
    let store = MemoryBlockStore::new();
    let keys: Vec<String> = (0..100)
        .map(|i| format!("key-{i:03}"))
        .filter(|k| billet_mst::layer_of(k.as_bytes()) == 0)
        .take(2)
        .collect();
    let (hi, lo) = (keys[1].clone(), keys[0].clone());
    let mut entries = Vec::new();
    let mut prev: &[u8] = b"";
    for key in [&hi, &lo] {
        let (m, _) = manifest_for(key, key.as_bytes(), &store);
        let block = m.to_block().unwrap();
        // Prefix compression done right: only the order is wrong.
        let p = prev
            .iter()
            .zip(key.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        prev = key.as_bytes();
        let mut e = BTreeMap::new();
        e.insert("k".to_string(), Ipld::Bytes(key.as_bytes()[p..].to_vec()));
        e.insert("p".to_string(), Ipld::Integer(p as i128));
        e.insert("t".to_string(), Ipld::Null);
        e.insert("v".to_string(), Ipld::Link(*block.cid()));
        entries.push(Ipld::Map(e));
        store.put(block);
    }
    let mut node = BTreeMap::new();
    node.insert("e".to_string(), Ipld::List(entries));
    node.insert("l".to_string(), Ipld::Null);
    let node = billet_block::encode_dag_cbor(&Ipld::Map(node)).unwrap();
    let root = *node.cid();
    store.put(node);
    let head = commit(name, root, &store);
    (store.blocks(), head)
}

fn dir_bytes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), meta.len());
            }
        }
    }
    out
}

#[test]
fn damaged_exports_are_refused_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A node that already holds one imported bucket.
    let good = bucket("good", |_| {});
    let good_car = tmp.path().join("good.car");
    write_car(&good_car, &[good.head], &good.blocks, None);
    let out = billet(&["import", good_car.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let dag = bucket("victim", |_| {});
    let bad_size = bucket("victim", |m| m.size += 1);
    let (unsorted, unsorted_head) = unsorted_mst("victim");
    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    let path = |n: &str| tmp.path().join(format!("{n}.car"));

    // A flipped byte in b.txt's first leaf.
    let p = path("flipped");
    write_car(&p, &[dag.head], &dag.blocks, None);
    let mut bytes = std::fs::read(&p).unwrap();
    let leaf = dag.blocks.iter().find(|b| b.cid() == &dag.leaf).unwrap();
    let at = bytes
        .windows(leaf.len())
        .position(|w| w == leaf.data().as_ref())
        .unwrap();
    bytes[at + 3] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    cases.push(("flipped byte", p, "does not hash to its CID"));

    let p = path("truncated");
    write_car(&p, &[dag.head], &dag.blocks, None);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    cases.push(("truncated", p, "truncated CAR"));

    let p = path("missing");
    write_car(&p, &[dag.head], &dag.blocks, Some(&dag.leaf));
    let missing = format!("block {} is missing", dag.leaf);
    cases.push(("missing block", p, missing.as_str()));

    let p = path("wrong-root");
    write_car(&p, &[dag.manifest], &dag.blocks, None);
    cases.push(("wrong root", p, "is not a bucket commit"));

    let p = path("two-roots");
    write_car(&p, &[dag.head, dag.manifest], &dag.blocks, None);
    cases.push(("two roots", p, "the CAR has 2 roots"));

    let p = path("unsorted");
    write_car(&p, &[unsorted_head], &unsorted, None);
    cases.push(("unsorted MST", p, "is out of order"));

    let p = path("bad-size");
    write_car(&p, &[bad_size.head], &bad_size.blocks, None);
    cases.push((
        "size disagrees with body",
        p,
        "the UnixFS tree holds 3500 bytes, the manifest says 3501",
    ));

    let before = dir_bytes(&data.join("log"));
    for (what, car, want) in &cases {
        let car = car.to_str().unwrap();
        let out = billet(&["import", car], &data);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: import succeeded");
        assert!(err.contains(want), "{what}: {err}");
        let v = billet(&["verify", car], &data);
        let said = text(&v.stdout) + &text(&v.stderr);
        assert!(!v.status.success(), "{what}: verify passed: {said}");
        assert!(said.contains(want), "{what}: verify said {said}");
        // Nothing left behind: no bucket, not one byte more in the log.
        let v = billet(&["verify", "victim"], &data);
        assert!(text(&v.stderr).contains("no file and no bucket"), "{what}");
        assert_eq!(
            dir_bytes(&data.join("log")),
            before,
            "{what}: the log changed"
        );
    }
    let out = billet(&["fsck", "good"], &data);
    assert!(
        text(&out.stdout).contains(" 0 problems"),
        "{}",
        text(&out.stdout)
    );
    // And the undamaged export of the same bucket imports fine.
    let p = path("victim");
    write_car(&p, &[dag.head], &dag.blocks, None);
    let out = billet(&["import", p.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
