//! A sample bucket-shaped CAR for the CLI and interop tests: a commit whose
//! `data` is an MST of manifests, and the manifests' UnixFS bodies.

#![allow(dead_code)]

use std::path::Path;

use billet_block::{Block, Cid};
use billet_car::CarWriter;
use billet_mst::Builder;
use billet_records::{BucketSettings, Commit, Manifest};
use billet_unixfs::{IngestOptions, Ingested, ingest_bytes};

pub struct Body {
    pub data: Vec<u8>,
    pub ingested: Ingested,
}

pub struct Sample {
    pub commit: Cid,
    pub mst_root: Cid,
    /// (key, manifest CID) in key order.
    pub pairs: Vec<(String, Cid)>,
    pub bodies: Vec<Body>,
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// Writes the sample CAR to `path`. `keys` objects share a handful of bodies,
/// among them one deep enough for three levels of UnixFS nodes.
pub fn write_sample(path: &Path, keys: usize) -> Sample {
    let mut blocks: Vec<Block> = Vec::new();
    let mut bodies = Vec::new();
    let small = IngestOptions {
        chunk_size: 16,
        ..IngestOptions::default()
    };
    let specs: Vec<(Vec<u8>, IngestOptions)> = vec![
        (Vec::new(), IngestOptions::default()),
        (b"hello, billet".to_vec(), IngestOptions::default()),
        (pattern(16 * 174 * 174 + 100, 1), small.clone()),
        (pattern((5 << 20) / 2, 2), IngestOptions::default()),
        (pattern(1000, 3), small),
    ];
    for (data, opts) in specs {
        let (ingested, bl) = ingest_bytes(&data, &opts).expect("ingest");
        blocks.extend(bl);
        bodies.push(Body { data, ingested });
    }
    let mut names: Vec<String> = (0..keys)
        .map(|i| match i % 4 {
            0 => format!("photos/2026/{i:05}.jpg"),
            1 => format!("docs/ü ñ/{i} report.pdf"),
            2 => format!("logs/{i:x}"),
            _ => format!("a/b/c/{i}\twith tab"),
        })
        .collect();
    names.sort();
    let mut pairs = Vec::new();
    let mut mst = Builder::new();
    for (i, key) in names.iter().enumerate() {
        let body = &bodies[i % bodies.len()].ingested;
        let mut m = Manifest::new(
            key.clone(),
            body.root.cid,
            body.size(),
            body.etag(),
            body.sha256,
            1_763_000_000_000 + i as i64,
        );
        m.content_type = Some("application/octet-stream".into());
        let mb = m.to_block().expect("manifest");
        mst.push(key.as_bytes(), *mb.cid(), &mut |b| blocks.push(b))
            .expect("sorted keys");
        pairs.push((key.clone(), *mb.cid()));
        blocks.push(mb);
    }
    let mst_root = mst.finish(&mut |b| blocks.push(b));
    let commit = Commit::new(
        "sample",
        0,
        mst_root,
        None,
        1_763_000_000_000,
        BucketSettings::default(),
    )
    .to_block()
    .expect("commit");
    let commit_cid = *commit.cid();
    let file = std::fs::File::create(path).expect("create car");
    let mut w = CarWriter::new(std::io::BufWriter::new(file), &[commit_cid]).expect("header");
    w.write_block(&commit).expect("write");
    let mut seen = std::collections::HashSet::new();
    for b in &blocks {
        if seen.insert(*b.cid()) {
            w.write_block(b).expect("write");
        }
    }
    w.into_inner().expect("flush");
    Sample {
        commit: commit_cid,
        mst_root,
        pairs,
        bodies,
    }
}
