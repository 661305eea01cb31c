//! Offline verification: nothing but the proof bytes and the node's
//! `did:key`.

use billet_block::{Block, Cid, Codec, cid_of};
use billet_mmr::{InclusionProof, leaf_hash, leaf_index, verify_consistency, verify_inclusion};
use billet_records::{Commit, LockMode, Manifest};

use crate::ProofError;
use crate::records::{
    CHALLENGE, COMMIT, CONSISTENCY, ChallengeProof, CommitProof, ConsistencyProof, OBJECT,
    ObjectProof, Proof, RESPONSE, SignedCheckpoint, malformed,
};

/// What a proof established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Checkpoint {
        bucket: String,
        head: Cid,
        mmr_size: u64,
    },
    Present {
        bucket: String,
        key: String,
        manifest: Cid,
        etag: String,
        size: u64,
        head: Cid,
        /// The version's Object Lock retention (mode, until: ms since the
        /// Unix epoch) and legal hold, as its manifest records them.
        retention: Option<(LockMode, i64)>,
        legal_hold: bool,
    },
    Absent {
        bucket: String,
        key: String,
        head: Cid,
    },
    CommitIncluded {
        bucket: String,
        commit: Cid,
        leaf: u64,
        mmr_size: u64,
    },
    Consistent {
        bucket: String,
        old_size: u64,
        new_size: u64,
    },
    Chunk {
        bucket: String,
        key: String,
        chunk: u64,
        offset: u64,
        len: u64,
        nonce: Vec<u8>,
    },
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verified::Checkpoint {
                bucket,
                head,
                mmr_size,
            } => write!(
                f,
                "checkpoint of bucket {bucket}: head {head}, MMR of {mmr_size} nodes"
            ),
            Verified::Present {
                bucket,
                key,
                manifest,
                etag,
                size,
                head,
                retention,
                legal_hold,
            } => {
                write!(
                    f,
                    "{bucket}/{key} is present at head {head}: manifest {manifest}, {size} bytes, ETag {etag}"
                )?;
                if let Some((mode, until)) = retention {
                    let date = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(*until) * 1_000_000,
                    )
                    .ok()
                    .and_then(|d| {
                        d.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| format!("{until} ms"));
                    write!(f, "; retained ({}) until {date}", mode.s3_name())?;
                }
                if *legal_hold {
                    write!(f, "; under legal hold")?;
                }
                Ok(())
            }
            Verified::Absent { bucket, key, head } => {
                write!(f, "{bucket}/{key} is absent at head {head}")
            }
            Verified::CommitIncluded {
                bucket,
                commit,
                leaf,
                mmr_size,
            } => write!(
                f,
                "commit {commit} is leaf {leaf} of bucket {bucket}'s MMR of {mmr_size} nodes"
            ),
            Verified::Consistent {
                bucket,
                old_size,
                new_size,
            } => write!(
                f,
                "bucket {bucket}'s MMR of {old_size} nodes is a prefix of its MMR of {new_size} nodes"
            ),
            Verified::Chunk {
                bucket,
                key,
                chunk,
                offset,
                len,
                nonce,
            } => write!(
                f,
                "{bucket}/{key} chunk {chunk} ({len} bytes at offset {offset}) is held, nonce {}",
                hex::encode(nonce)
            ),
        }
    }
}

fn mismatch(why: impl Into<String>) -> ProofError {
    ProofError::Mismatch(why.into())
}

fn hashes(v: &[serde_bytes::ByteBuf]) -> Result<Vec<[u8; 32]>, ProofError> {
    v.iter()
        .map(|b| {
            b.as_slice()
                .try_into()
                .map_err(|_| ProofError::Malformed("a hash is not 32 bytes".into()))
        })
        .collect()
}

/// The head commit of a checkpoint, from its block bytes.
fn head_commit(cp: &SignedCheckpoint, bytes: &[u8]) -> Result<Commit, ProofError> {
    let cid = cid_of(Codec::DagCbor, bytes);
    if cid != cp.checkpoint.head {
        return Err(mismatch(format!(
            "the commit block is {cid}, the checkpoint's head is {}",
            cp.checkpoint.head
        )));
    }
    let c = Commit::decode(bytes).map_err(malformed)?;
    if c.bucket != cp.checkpoint.bucket || c.seq != cp.checkpoint.seq {
        return Err(mismatch(
            "the commit's bucket or seq differs from the checkpoint's",
        ));
    }
    Ok(c)
}

/// The manifest at `key` in the MST under `root`, from proof nodes.
fn mst_value(
    root: &Cid,
    key: &str,
    nodes: &[serde_bytes::ByteBuf],
) -> Result<Option<Cid>, ProofError> {
    let blocks: Vec<Block> = nodes
        .iter()
        .map(|b| Block::new(Codec::DagCbor, b.to_vec()))
        .collect();
    billet_mst::verify_proof(root, key.as_bytes(), &blocks).map_err(|e| mismatch(e.to_string()))
}

fn commit_leaf(
    cp: &SignedCheckpoint,
    commit: &Cid,
    leaf: u64,
    path: &[serde_bytes::ByteBuf],
) -> Result<(), ProofError> {
    let proof = InclusionProof {
        size: cp.checkpoint.mmr_size,
        index: leaf_index(leaf),
        path: hashes(path)?,
    };
    if !verify_inclusion(&proof, &leaf_hash(&commit.to_bytes()), &cp.peaks()?) {
        return Err(mismatch(format!(
            "commit {commit} is not leaf {leaf} of the checkpoint's MMR"
        )));
    }
    Ok(())
}

fn object(p: &ObjectProof, node: &str) -> Result<Verified, ProofError> {
    p.checkpoint.verify(node)?;
    let commit = head_commit(&p.checkpoint, &p.commit)?;
    let head = p.checkpoint.checkpoint.head;
    let bucket = p.checkpoint.checkpoint.bucket.clone();
    match (mst_value(&commit.data, &p.key, &p.mst)?, &p.manifest) {
        (None, None) => Ok(Verified::Absent {
            bucket,
            key: p.key.clone(),
            head,
        }),
        (Some(v), Some(bytes)) => {
            let cid = cid_of(Codec::DagCbor, bytes);
            if cid != v {
                return Err(mismatch(format!("the manifest is {cid}, the MST says {v}")));
            }
            let m = Manifest::decode(bytes).map_err(malformed)?;
            if m.key != p.key {
                return Err(mismatch(format!("the manifest names key {:?}", m.key)));
            }
            Ok(Verified::Present {
                bucket,
                key: p.key.clone(),
                manifest: v,
                retention: m.retention(),
                legal_hold: m.legal_hold,
                etag: m.etag,
                size: m.size,
                head,
            })
        }
        (Some(_), None) => Err(mismatch("the key is present but no manifest was given")),
        (None, Some(_)) => Err(mismatch("the key is absent but a manifest was given")),
    }
}

fn commit(p: &CommitProof, node: &str) -> Result<Verified, ProofError> {
    p.checkpoint.verify(node)?;
    commit_leaf(&p.checkpoint, &p.commit, p.leaf, &p.path)?;
    Ok(Verified::CommitIncluded {
        bucket: p.checkpoint.checkpoint.bucket.clone(),
        commit: p.commit,
        leaf: p.leaf,
        mmr_size: p.checkpoint.checkpoint.mmr_size,
    })
}

fn consistency(p: &ConsistencyProof, node: &str) -> Result<Verified, ProofError> {
    p.old.verify(node)?;
    p.new.verify(node)?;
    let (old, new) = (&p.old.checkpoint, &p.new.checkpoint);
    if old.bucket != new.bucket {
        return Err(mismatch("the checkpoints are of different buckets"));
    }
    let proof = billet_mmr::ConsistencyProof {
        from: old.mmr_size,
        to: new.mmr_size,
        paths: p
            .paths
            .iter()
            .map(|x| hashes(x))
            .collect::<Result<_, _>>()?,
    };
    if !verify_consistency(&proof, &p.old.peaks()?, &p.new.peaks()?) {
        return Err(mismatch(format!(
            "the MMR of {} nodes is not a prefix of the MMR of {} nodes",
            old.mmr_size, new.mmr_size
        )));
    }
    Ok(Verified::Consistent {
        bucket: new.bucket.clone(),
        old_size: old.mmr_size,
        new_size: new.mmr_size,
    })
}

fn challenge(p: &ChallengeProof, node: &str) -> Result<Verified, ProofError> {
    let r = &p.response;
    if r.kind != RESPONSE || r.node != node {
        return Err(ProofError::WrongNode {
            signer: r.node.clone(),
            expected: node.to_string(),
        });
    }
    r.verify(node, &p.sig)?;
    p.checkpoint.verify(node)?;
    let cp = &p.checkpoint.checkpoint;
    if r.bucket != cp.bucket || r.head != cp.head {
        return Err(mismatch(
            "the response and the checkpoint differ on bucket or head",
        ));
    }
    // Chunk → UnixFS nodes → manifest → MST → commit → MMR → checkpoint.
    let data_cid = cid_of(Codec::Raw, &p.bytes);
    if data_cid != r.data {
        return Err(mismatch(format!(
            "the chunk's bytes are {data_cid}, not {}",
            r.data
        )));
    }
    let commit = head_commit(&p.checkpoint, &p.commit)?;
    commit_leaf(&p.checkpoint, &cp.head, p.leaf, &p.mmr)?;
    let manifest_cid = mst_value(&commit.data, &r.key, &p.mst)?
        .ok_or_else(|| mismatch(format!("{} is absent from the MST", r.key)))?;
    if cid_of(Codec::DagCbor, &p.manifest) != manifest_cid {
        return Err(mismatch("the manifest does not hash to the MST's value"));
    }
    let m = Manifest::decode(&p.manifest).map_err(malformed)?;
    let mut link = m
        .body
        .ok_or_else(|| mismatch("the manifest is a delete marker"))?;
    if p.unixfs.len() != p.positions.len() {
        return Err(ProofError::Malformed("one position per UnixFS node".into()));
    }
    let mut offset = 0u64;
    for (bytes, pos) in p.unixfs.iter().zip(&p.positions) {
        if cid_of(Codec::DagPb, bytes) != link {
            return Err(mismatch(format!(
                "UnixFS node {link} is not the one linked"
            )));
        }
        let node = billet_unixfs::decode_file_node(&bytes::Bytes::copy_from_slice(bytes))
            .map_err(|e| mismatch(format!("UnixFS node {link}: {e}")))?;
        let pos = usize::try_from(*pos).map_err(malformed)?;
        let (child, _) = *node
            .children
            .get(pos)
            .ok_or_else(|| mismatch(format!("UnixFS node {link} has no child {pos}")))?;
        offset += node.data.len() as u64 + node.children[..pos].iter().map(|(_, n)| n).sum::<u64>();
        link = child;
    }
    if link != data_cid {
        return Err(mismatch(
            "the chunk is not the leaf the UnixFS path ends at",
        ));
    }
    if offset != r.offset {
        return Err(mismatch(format!(
            "the chunk lies at offset {offset}, the response says {}",
            r.offset
        )));
    }
    // The chunk number names one byte range of the body, whatever its
    // shape (fixed-size chunks, or each part chunked from its start): the
    // leaf the path reached must be exactly that range.
    let chunk_size = commit.settings.chunk_size;
    let (want_offset, want_len) = m.chunk_span(r.chunk, chunk_size).ok_or_else(|| {
        mismatch(format!(
            "the body has {} chunks; there is no chunk {}",
            m.chunk_count(chunk_size),
            r.chunk
        ))
    })?;
    if offset != want_offset || p.bytes.len() as u64 != want_len {
        return Err(mismatch(format!(
            "chunk {} is bytes {want_offset}..{} of the body, not the {} bytes at {offset}",
            r.chunk,
            want_offset + want_len,
            p.bytes.len()
        )));
    }
    Ok(Verified::Chunk {
        bucket: r.bucket.clone(),
        key: r.key.clone(),
        chunk: r.chunk,
        offset,
        len: p.bytes.len() as u64,
        nonce: r.nonce.to_vec(),
    })
}

/// Verifies any proof against the node `node` (a `did:key`).
pub fn verify(proof: &Proof, node: &str) -> Result<Verified, ProofError> {
    match proof {
        Proof::Checkpoint(c) => {
            c.verify(node)?;
            Ok(Verified::Checkpoint {
                bucket: c.checkpoint.bucket.clone(),
                head: c.checkpoint.head,
                mmr_size: c.checkpoint.mmr_size,
            })
        }
        Proof::Object(p) if p.kind == OBJECT => object(p, node),
        Proof::Commit(p) if p.kind == COMMIT => commit(p, node),
        Proof::Consistency(p) if p.kind == CONSISTENCY => consistency(p, node),
        Proof::Challenge(p) if p.kind == CHALLENGE => challenge(p, node),
        _ => Err(ProofError::Malformed("unknown proof type".into())),
    }
}
