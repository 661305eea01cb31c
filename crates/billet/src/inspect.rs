//! `billet mst …` and `billet car …`: tools for checking trees and CAR
//! files by hand, with errors that name the line, key, CID or byte offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use billet_block::{Cid, Codec, MemoryBlockStore, validate_key};
use billet_car::CarReader;
use billet_mst::{Builder, Mst};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    key: String,
    cid: String,
}

pub fn mst_root(file: Option<&Path>) -> Result<()> {
    let input: Box<dyn BufRead> = match file {
        Some(p) => Box::new(BufReader::new(
            File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(io::stdin().lock()),
    };
    let mut pairs: BTreeMap<Vec<u8>, (Cid, usize)> = BTreeMap::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).with_context(|| {
            format!("line {n}: expected {{\"key\": \"...\", \"cid\": \"...\"}}")
        })?;
        validate_key(pair.key.as_bytes())
            .map_err(|e| anyhow!("line {n}: key {:?}: {e}", pair.key))?;
        let cid = Cid::try_from(pair.cid.as_str())
            .map_err(|e| anyhow!("line {n}: {:?} is not a CID: {e}", pair.cid))?;
        if let Some((_, first)) = pairs.insert(pair.key.clone().into_bytes(), (cid, n)) {
            bail!("line {n}: key {:?} already given on line {first}", pair.key);
        }
    }
    let mut b = Builder::new();
    for (key, (cid, _)) in &pairs {
        b.push(key, *cid, &mut |_| {})?;
    }
    println!("{}", b.finish(&mut |_| {}));
    Ok(())
}

/// Reads the dag-cbor blocks of a CAR (bodies are skipped: an MST walk
/// never needs them) and returns them with the CAR's roots.
fn load_catalog(path: &Path) -> Result<(MemoryBlockStore, Vec<Cid>)> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader =
        CarReader::new(BufReader::new(f)).with_context(|| format!("reading {}", path.display()))?;
    let roots = reader.roots().to_vec();
    let store = MemoryBlockStore::new();
    while let Some(b) = reader
        .next_block()
        .with_context(|| format!("reading {}", path.display()))?
    {
        if b.block.codec() == Codec::DagCbor {
            store.put(b.block);
        }
    }
    Ok((store, roots))
}

pub fn mst_keys(path: &Path, root: Option<&str>, json: bool) -> Result<()> {
    let (store, roots) = load_catalog(path)?;
    let root = match root {
        Some(r) => Cid::try_from(r).map_err(|e| anyhow!("--root {r:?} is not a CID: {e}"))?,
        None => {
            let top = *roots
                .first()
                .ok_or_else(|| anyhow!("{} has no root; pass --root", path.display()))?;
            commit_data(&store, &top).unwrap_or(top)
        }
    };
    let mst = Mst::new(&store);
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut write_err: Option<io::Error> = None;
    let stats = mst
        .check(&root, &mut |_| {}, &mut |key, cid| {
            let key = String::from_utf8_lossy(key);
            let r = if json {
                let line = serde_json::json!({"key": key, "cid": cid.to_string()});
                writeln!(out, "{line}")
            } else {
                writeln!(out, "{key}\t{cid}")
            };
            if let Err(e) = r {
                write_err.get_or_insert(e);
            }
            Ok(())
        })
        .with_context(|| format!("MST at {root} in {}", path.display()))?;
    if let Some(e) = write_err {
        return Err(e).context("writing to standard output");
    }
    out.flush()?;
    eprintln!(
        "{} keys in {} nodes, root {root} at layer {}",
        stats.entries, stats.nodes, stats.height
    );
    Ok(())
}

/// The `data` link of a commit-shaped block, if `cid` is one.
fn commit_data(store: &MemoryBlockStore, cid: &Cid) -> Option<Cid> {
    #[derive(serde::Deserialize)]
    struct WithData {
        data: Cid,
    }
    use billet_block::BlockStore;
    let bytes = store.get(cid).ok()?;
    serde_ipld_dagcbor::from_slice::<WithData>(&bytes)
        .ok()
        .map(|w| w.data)
}

pub fn car_ls(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader =
        CarReader::new(BufReader::new(f)).with_context(|| format!("reading {}", path.display()))?;
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    for r in reader.roots() {
        writeln!(out, "root\t{r}")?;
    }
    let (mut blocks, mut bytes, mut bad) = (0u64, 0u64, 0u64);
    loop {
        match reader.next_block() {
            Ok(Some(b)) => {
                blocks += 1;
                bytes += b.block.len() as u64;
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    b.block.cid(),
                    b.block.codec(),
                    b.block.len()
                )?;
            }
            Ok(None) => break,
            Err(e @ billet_car::CarError::BadBlock { .. }) => {
                bad += 1;
                out.flush()?;
                eprintln!("billet: {}: {e}", path.display());
            }
            Err(e) => {
                out.flush()?;
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    out.flush()?;
    eprintln!("{blocks} blocks verified, {bytes} bytes");
    if bad > 0 {
        bail!("{bad} blocks failed verification");
    }
    Ok(())
}
