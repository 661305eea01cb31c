//! `billet prove …` (proofs from this node's data directory, signed with
//! its identity) and `billet verify-proof` (offline, nothing but the file
//! and the node's `did:key`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use billet_proof::Proof;
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum ProveCommand {
    /// A signed checkpoint of the bucket's head and commit MMR.
    Checkpoint { bucket: String },
    /// That KEY is in the bucket at its head (with its manifest), or absent.
    Object { bucket: String, key: String },
    /// That a commit is a leaf of the bucket's MMR (default: the head).
    Commit {
        bucket: String,
        /// Sequence number of the commit.
        #[arg(long, requires = "commit")]
        seq: Option<u64>,
        /// CID of the commit.
        #[arg(long, requires = "seq")]
        commit: Option<String>,
    },
    /// That the MMR of an earlier checkpoint (by its MMR size) is a prefix
    /// of the current one.
    Consistency {
        bucket: String,
        #[arg(long)]
        from: u64,
    },
    /// Answer a storage challenge: chunk N of KEY, with the challenger's
    /// nonce (hex) in a signed response.
    Challenge {
        bucket: String,
        key: String,
        #[arg(long)]
        chunk: u64,
        #[arg(long)]
        nonce: String,
    },
}

fn write_out(proof: &Proof, output: Option<&Path>, json: bool) -> Result<()> {
    let bytes = proof.to_bytes()?;
    let out = if json {
        (billet_proof::to_json(&bytes)? + "\n").into_bytes()
    } else {
        bytes
    };
    match output {
        Some(p) if p != Path::new("-") => {
            std::fs::write(p, out).with_context(|| format!("writing {}", p.display()))
        }
        _ => {
            use std::io::{IsTerminal, Write};
            if !json && std::io::stdout().is_terminal() {
                bail!("refusing to write DAG-CBOR to a terminal; give -o FILE or --json");
            }
            std::io::stdout().write_all(&out)?;
            Ok(())
        }
    }
}

pub fn prove(
    config: &Config,
    cmd: ProveCommand,
    output: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let identity = crate::identity::load_or_create(&config.data_dir)?;
    crate::runtime()?.block_on(async {
        let index = crate::keys::open_index(config).await?;
        let engine = crate::offline::reader(config, index).await?;
        let bucket = match &cmd {
            ProveCommand::Checkpoint { bucket }
            | ProveCommand::Object { bucket, .. }
            | ProveCommand::Commit { bucket, .. }
            | ProveCommand::Consistency { bucket, .. }
            | ProveCommand::Challenge { bucket, .. } => bucket.clone(),
        };
        let cp = engine.sign_checkpoint(&bucket, &identity).await?;
        let proof = match cmd {
            ProveCommand::Checkpoint { .. } => Proof::Checkpoint(cp),
            ProveCommand::Object { key, .. } => {
                Proof::Object(engine.prove_object(&cp, &key).await?)
            }
            ProveCommand::Commit { seq, commit, .. } => {
                let (seq, commit) = match (seq, commit) {
                    (Some(s), Some(c)) => (s, c.parse().context("--commit is not a CID")?),
                    _ => (cp.checkpoint.seq, cp.checkpoint.head),
                };
                Proof::Commit(engine.prove_commit(&cp, seq, commit).await?)
            }
            ProveCommand::Consistency { from, .. } => {
                Proof::Consistency(engine.prove_consistency(&cp, from).await?)
            }
            ProveCommand::Challenge {
                key, chunk, nonce, ..
            } => {
                let nonce = hex::decode(&nonce).context("--nonce is not hex")?;
                Proof::Challenge(Box::new(
                    engine
                        .answer_challenge(&cp, &key, chunk, &nonce, &identity)
                        .await?,
                ))
            }
        };
        write_out(&proof, output.as_deref(), json)
    })
}

/// Checks a proof file offline against the node `did`; prints what it
/// proves, or fails naming why not.
pub fn verify_proof(file: &Path, node: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let proof = Proof::from_bytes(&bytes).with_context(|| format!("{}", file.display()))?;
    let verified = billet_proof::verify(&proof, node)
        .with_context(|| format!("{} does not verify", file.display()))?;
    println!("OK: {verified}");
    Ok(())
}
