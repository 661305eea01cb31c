#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! billet's CAR output read by the reference JavaScript implementations
//! (`@ipld/car`, `@ipld/dag-cbor`, `@ipld/dag-pb`, `ipfs-unixfs-exporter`).
//! The README's test command installs them (pinned by
//! `tests/interop/package-lock.json`).

mod common;

use std::path::PathBuf;
use std::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

#[test]
fn reference_implementations_accept_our_car() {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/ipfs-unixfs-exporter").is_dir(),
        "npm packages missing in {}: run the README's test command (scripts/test), \
         which installs them with `npm ci`",
        dir.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let car = tmp.path().join("sample.car");
    let sample = common::write_sample(&car, 1000);

    let mut bodies = Vec::new();
    for (i, b) in sample.bodies.iter().enumerate() {
        let f = tmp.path().join(format!("body{i}"));
        std::fs::write(&f, &b.data).unwrap();
        bodies.push(serde_json::json!({
            "cid": b.ingested.root.cid.to_string(),
            "file": f,
            "md5": b.ingested.etag(),
            "sha256": hex(&b.ingested.sha256),
        }));
    }
    let pairs: Vec<_> = sample
        .pairs
        .iter()
        .map(|(k, v)| serde_json::json!([k, v.to_string()]))
        .collect();
    let expect = serde_json::json!({
        "bodies": bodies,
        "mst": {"root": sample.mst_root.to_string(), "pairs": pairs},
    });
    let expect_file = tmp.path().join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).unwrap();

    let out = Command::new("node")
        .arg(dir.join("check-car.mjs"))
        .arg(&car)
        .arg(&expect_file)
        .output()
        .expect("running node (Node.js >= 18 is required)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "JS checker failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("5 bodies, 1000 MST keys, 0 objects checked; 0 problems"),
        "{stdout}"
    );
}

#[test]
fn the_js_checker_catches_a_damaged_car() {
    // The checker must be able to fail: flip a byte inside a block.
    let dir = interop_dir();
    if !dir.join("node_modules/@ipld/car").is_dir() {
        panic!("npm packages missing: run scripts/test");
    }
    let tmp = tempfile::tempdir().unwrap();
    let car = tmp.path().join("sample.car");
    common::write_sample(&car, 50);
    let mut bytes = std::fs::read(&car).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    std::fs::write(&car, bytes).unwrap();
    let out = Command::new("node")
        .arg(dir.join("check-car.mjs"))
        .arg(&car)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not hash to the CID"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
