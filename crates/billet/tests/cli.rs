#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! The inspection commands, run as a user would run them.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn billet(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_billet"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const CID1: &str = "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454";

#[test]
fn mst_root_of_the_atproto_simple_map() {
    let lines: String = [
        "3jqfcqzm4fc2j",
        "3jqfcqzm3fp2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3fr2j",
    ]
    .iter()
    .map(|k| format!("{{\"key\": \"com.example.record/{k}\", \"cid\": \"{CID1}\"}}\n"))
    .collect();
    let out = billet(&["mst", "root"], &lines);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m"
    );
    let empty = billet(&["mst", "root"], "");
    assert_eq!(text(&empty.stdout).trim(), billet_mst::EMPTY_ROOT);
}

#[test]
fn mst_root_names_the_bad_line() {
    let good = format!("{{\"key\": \"a\", \"cid\": \"{CID1}\"}}\n");
    for (input, want) in [
        (
            format!("{good}{good}"),
            "line 2: key \"a\" already given on line 1",
        ),
        (format!("{good}\nnot json\n"), "line 3"),
        (
            format!("{good}{{\"key\": \"\", \"cid\": \"{CID1}\"}}\n"),
            "line 2: key \"\": key is empty",
        ),
        (
            "{\"key\": \"b\", \"cid\": \"nope\"}\n".to_string(),
            "line 1: \"nope\" is not a CID",
        ),
        (
            format!(
                "{{\"key\": \"{}\", \"cid\": \"{CID1}\"}}\n",
                "k".repeat(1025)
            ),
            "above the 1024-byte limit",
        ),
    ] {
        let out = billet(&["mst", "root"], &input);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(want),
            "want {want:?} in {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn mst_keys_walks_a_bucket_car() {
    let tmp = tempfile::tempdir().unwrap();
    let car = tmp.path().join("b.car");
    let sample = common::write_sample(&car, 120);
    let car = car.to_str().unwrap();

    let out = billet(&["mst", "keys", car, "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_string(),
                v["cid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = sample
        .pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(text(&out.stderr).contains("120 keys"));

    // The plain form, and an explicit root, agree.
    let root = sample.mst_root.to_string();
    let plain = billet(&["mst", "keys", car, "--root", &root], "");
    assert!(plain.status.success());
    assert_eq!(
        text(&plain.stdout).lines().count(),
        120 + sample
            .pairs
            .iter()
            .filter(|(k, _)| k.contains('\n'))
            .count()
    );
    assert!(text(&plain.stdout).starts_with(&format!("{}\t{}", want[0].0, want[0].1)));

    // A root that is not in the file is named.
    let missing = sample.bodies[1].ingested.root.cid.to_string();
    let out = billet(&["mst", "keys", car, "--root", &missing], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&missing),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn car_ls_lists_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("b.car");
    let sample = common::write_sample(&path, 10);
    let car = path.to_str().unwrap();
    let out = billet(&["car", "ls", car], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.starts_with(&format!("root\t{}", sample.commit)));
    assert!(listing.contains(&format!("{}\tdag-cbor\t", sample.commit)));
    assert!(listing.contains("\traw\t"));
    assert!(listing.contains("\tdag-pb\t"));

    // Flip a byte of the last block: the error names its CID and offset.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = listing
        .lines()
        .last()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let at = bytes.len() - 1;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let out = billet(&["car", "ls", car], "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&last) && err.contains("at byte"), "{err}");

    // Truncation is reported with an offset.
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let out = billet(&["car", "ls", car], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("truncated CAR"),
        "{}",
        text(&out.stderr)
    );
}
