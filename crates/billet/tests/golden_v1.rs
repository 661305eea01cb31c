#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Exports written before version-2 commits (`tests/golden/`) still
//! import, verify, export and survive a garbage collection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use billet_block::{Cid, Codec};
use bytes::Bytes;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

fn billet(args: &[&str], data: &Path, config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_billet"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "billet {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CIDs a CAR holds, and the links its blocks make.
fn blocks_and_links(path: &Path) -> (HashSet<Cid>, Vec<Cid>, u64) {
    let bytes = std::fs::read(path).unwrap();
    let mut r = billet_car::CarReader::new(&bytes[..]).unwrap();
    let (mut have, mut links, mut commits) = (HashSet::new(), Vec::new(), 0);
    while let Some(b) = r.next_block().unwrap() {
        let cid = *b.block.cid();
        have.insert(cid);
        let data: &Bytes = b.block.data();
        match Codec::from_code(cid.codec()) {
            Some(Codec::DagCbor) => {
                if billet_records::Commit::decode(data).is_ok() {
                    commits += 1;
                }
                let v: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(data).unwrap();
                collect(&v, &mut links);
            }
            Some(Codec::DagPb) => links.extend(
                billet_unixfs::decode_file_node(data)
                    .unwrap()
                    .children
                    .into_iter()
                    .map(|(c, _)| c),
            ),
            _ => {}
        }
    }
    (have, links, commits)
}

fn collect(v: &ipld_core::ipld::Ipld, out: &mut Vec<Cid>) {
    use ipld_core::ipld::Ipld;
    match v {
        Ipld::Link(c) => out.push(*c),
        Ipld::List(l) => l.iter().for_each(|x| collect(x, out)),
        Ipld::Map(m) => m.values().for_each(|x| collect(x, out)),
        _ => {}
    }
}

fn closed(path: &Path) -> bool {
    let (have, links, _) = blocks_and_links(path);
    links.iter().all(|l| have.contains(l))
}

#[test]
fn a_version_1_export_with_history_imports_exports_closed_and_survives_a_collection() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("billet.toml");
    std::fs::write(&config, "[gc]\ninterval_secs = 0\nkeep_secs = 0\n").unwrap();
    let data = dir.path().join("data");
    let file = golden("v1-history.car");
    assert!(closed(&file));
    let (_, _, commits) = blocks_and_links(&file);
    assert_eq!(commits, 8);

    let out = billet(&["import", file.to_str().unwrap()], &data, &config);
    assert!(text(&out.stdout).contains("imported as bucket golden-v1"));
    let v = billet(&["verify", "golden-v1"], &data, &config);
    assert!(
        text(&v.stdout).contains(" 0 problems"),
        "{}",
        text(&v.stdout)
    );

    // Its head links its predecessor: every export carries the history.
    for args in [&["--history"][..], &[][..]] {
        let car = dir.path().join(format!("out{}.car", args.len()));
        let mut a = vec!["export", "golden-v1", "-o", car.to_str().unwrap()];
        a.extend(args);
        billet(&a, &data, &config);
        assert!(closed(&car), "{args:?}");
        assert_eq!(blocks_and_links(&car).2, 8, "{args:?}");
    }
    // A collection keeps all of it (a kept version-1 commit keeps what
    // it links).
    let gc = billet(&["gc", "--json"], &data, &config);
    let report: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(report["buckets"][0]["floor"], 0, "{report}");
    billet(&["verify", "golden-v1"], &data, &config);
    let car = dir.path().join("after-gc.car");
    billet(
        &["export", "golden-v1", "-o", car.to_str().unwrap()],
        &data,
        &config,
    );
    assert!(closed(&car));
    assert_eq!(blocks_and_links(&car).2, 8);
}

#[test]
fn a_version_1_export_of_a_head_alone_still_imports_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("billet.toml");
    std::fs::write(&config, "[gc]\ninterval_secs = 0\nkeep_secs = 0\n").unwrap();
    let data = dir.path().join("data");
    let file = golden("v1-head.car");
    // What version 1 wrote: the head's `prev` link points outside it.
    assert!(!closed(&file));
    billet(&["import", file.to_str().unwrap()], &data, &config);
    billet(&["verify", "golden-v1"], &data, &config);
    billet(&["gc"], &data, &config);
    let car = dir.path().join("again.car");
    billet(
        &["export", "golden-v1", "-o", car.to_str().unwrap()],
        &data,
        &config,
    );
    let v = billet(&["verify", car.to_str().unwrap()], &data, &config);
    assert!(
        text(&v.stdout).contains(" 0 problems"),
        "{}",
        text(&v.stdout)
    );
    assert_eq!(
        std::fs::read(&car).unwrap(),
        std::fs::read(&file).unwrap(),
        "the same blocks in the same order"
    );
}
