//! Verifiable history: signed checkpoints of a bucket's head and commit
//! MMR, and the proofs built against them (see `billet-proof`). Every
//! proof reads O(log n) MMR nodes and one MST path; nothing replays the
//! history.

use std::io::Write;
use std::path::PathBuf;

use billet_block::{BlockStore, Cid, Codec};
use billet_mmr::{inclusion_path, leaf_count, leaf_index};
use billet_proof::{
    ChallengeProof, ChallengeResponse, CommitProof, ConsistencyProof, ObjectProof,
    SignedCheckpoint, did_key,
};
use billet_records::{Commit, Manifest};
use ed25519_dalek::SigningKey;
use serde_bytes::ByteBuf;

use crate::error::{EngineError, join_error};
use crate::mmr::MmrState;
use crate::{Engine, now_ms};

fn bufs(v: Vec<[u8; 32]>) -> Vec<ByteBuf> {
    v.into_iter().map(|h| ByteBuf::from(h.to_vec())).collect()
}

fn cbor_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("encoding a proof: {e}"))
}

/// A checkpoints file's records, oldest first, each with its bytes as
/// stored (length prefix included).
async fn read_checkpoints(
    path: &std::path::Path,
) -> Result<Vec<(SignedCheckpoint, Vec<u8>)>, EngineError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(EngineError::Io {
                what: format!("reading {}", path.display()),
                source,
            });
        }
    };
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        // A torn last record (crash mid-append) ends the list.
        let Some(rec) = rest.get(4..4 + len) else {
            break;
        };
        if let Ok(c) = billet_block::decode_dag_cbor::<SignedCheckpoint>(rec) {
            out.push((c, rest[..4 + len].to_vec()));
        }
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Removes the kept checkpoints of `kept.bucket` whose commit is older
/// than what the bucket keeps (the newest always stays): a proof against
/// one could no longer show an object. Returns how many went.
pub(crate) async fn prune_checkpoints(
    inner: &crate::Inner,
    kept: &crate::gc::RetainedHistory,
) -> Result<u64, EngineError> {
    let dir = inner.config.data_dir.join("checkpoints");
    let path = dir.join(format!("{}.cbor", kept.bucket));
    let _file = inner.checkpoint_files.lock().await;
    let all = read_checkpoints(&path).await?;
    let newest = all.len().saturating_sub(1);
    let keep: Vec<&Vec<u8>> = all
        .iter()
        .enumerate()
        .filter(|(i, (c, _))| *i == newest || c.checkpoint.seq >= kept.floor)
        .map(|(_, (_, raw))| raw)
        .collect();
    let pruned = (all.len() - keep.len()) as u64;
    if pruned == 0 {
        return Ok(0);
    }
    let bytes: Vec<u8> = keep.into_iter().flatten().copied().collect();
    let name = format!("{}.cbor", kept.bucket);
    tokio::task::spawn_blocking(move || {
        billet_log::write_durable(&billet_log::StdFs, &dir, &name, &bytes)
    })
    .await
    .map_err(join_error)?
    .map_err(|source| EngineError::Io {
        what: format!("rewriting {}", path.display()),
        source,
    })?;
    Ok(pruned)
}

impl Engine {
    /// Makes a new bucket's first commit (its creation, or an import's
    /// head) the first leaf of its MMR, so it can be proven at once. A
    /// crash before this leaves the MMR empty, and the bucket's next commit
    /// appends both (`MmrState::leaves_for`).
    pub(crate) async fn start_history(
        &self,
        bucket: &str,
        first: billet_index::CommitRow,
    ) -> Result<(), EngineError> {
        let mmr = MmrState::load(&self.inner, bucket).await?;
        if mmr.size != 0 {
            return Ok(());
        }
        let (nodes, _) = mmr.append(&[first.cid])?;
        self.index()
            .commit(billet_index::CommitBatch {
                bucket: bucket.to_string(),
                expected_head: first.cid,
                head: first.cid,
                seq: first.seq,
                settings: None,
                changes: Vec::new(),
                completed_uploads: Vec::new(),
                mmr: nodes,
                commits: vec![first],
            })
            .await?;
        Ok(())
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.inner.config.data_dir.join("checkpoints")
    }

    /// Head and MMR read as one state: re-read if a commit landed between.
    async fn head_and_mmr(&self, bucket: &str) -> Result<(Cid, u64, MmrState), EngineError> {
        loop {
            let before = self.bucket(bucket).await?;
            let mmr = MmrState::load(&self.inner, bucket).await?;
            let after = self.bucket(bucket).await?;
            if before.head == after.head {
                return Ok((after.head, after.seq, mmr));
            }
        }
    }

    /// Signs a checkpoint of `bucket` as it is now and keeps it (each
    /// bucket's checkpoints are appended to `checkpoints/<bucket>.cbor`).
    pub async fn sign_checkpoint(
        &self,
        bucket: &str,
        key: &SigningKey,
    ) -> Result<SignedCheckpoint, EngineError> {
        let (head, seq, mmr) = self.head_and_mmr(bucket).await?;
        if let Some(last) = self.latest_checkpoint(bucket).await?
            && last.checkpoint.head == head
            && last.checkpoint.mmr_size == mmr.size
            && last.checkpoint.node == did_key(&key.verifying_key())
        {
            return Ok(last);
        }
        let signed = SignedCheckpoint::sign(key, bucket, head, seq, mmr.size, &mmr.peaks, now_ms())
            .map_err(cbor_err)?;
        let bytes = billet_block::encode_dag_cbor(&signed).map_err(cbor_err)?;
        let dir = self.checkpoint_dir();
        let path = dir.join(format!("{bucket}.cbor"));
        // Appends and the collector's pruning rewrite one file.
        let _file = self.inner.checkpoint_files.lock().await;
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut rec = (bytes.len() as u32).to_be_bytes().to_vec();
            rec.extend_from_slice(bytes.data());
            f.write_all(&rec)?;
            f.sync_data()
        })
        .await
        .map_err(join_error)?
        .map_err(|source| EngineError::Io {
            what: "keeping the checkpoint".into(),
            source,
        })?;
        self.remember_checkpoint(bucket, &signed);
        Ok(signed)
    }

    /// Every checkpoint this node kept for `bucket`, oldest first (the
    /// collector prunes those of commits the bucket no longer keeps).
    pub async fn checkpoints(&self, bucket: &str) -> Result<Vec<SignedCheckpoint>, EngineError> {
        let path = self.checkpoint_dir().join(format!("{bucket}.cbor"));
        Ok(read_checkpoints(&path)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    /// The latest checkpoint signed for `bucket`: from memory, or from its
    /// file once after a start.
    pub async fn latest_checkpoint(
        &self,
        bucket: &str,
    ) -> Result<Option<SignedCheckpoint>, EngineError> {
        if let Some(c) = self.latest_cached(bucket) {
            return Ok(Some(c));
        }
        let last = self.checkpoints(bucket).await?.pop();
        if let Some(c) = &last {
            self.remember_checkpoint(bucket, c);
        }
        Ok(last)
    }

    fn latest_cached(&self, bucket: &str) -> Option<SignedCheckpoint> {
        self.inner
            .latest_checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(bucket)
            .cloned()
    }

    fn remember_checkpoint(&self, bucket: &str, c: &SignedCheckpoint) {
        self.inner
            .latest_checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(bucket.to_string(), c.clone());
    }

    async fn mmr_values(&self, bucket: &str, idx: &[u64]) -> Result<Vec<[u8; 32]>, EngineError> {
        let vals = self.index().mmr_nodes(bucket, idx).await?;
        vals.into_iter()
            .zip(idx)
            .map(|(v, i)| {
                v.ok_or_else(|| {
                    EngineError::Corrupt(format!("MMR node {i} of {bucket} is missing"))
                })
            })
            .collect()
    }

    /// The head commit's leaf number and path in the checkpoint's MMR.
    async fn head_leaf(&self, cp: &SignedCheckpoint) -> Result<(u64, Vec<[u8; 32]>), EngineError> {
        let c = &cp.checkpoint;
        let leaves = leaf_count(c.mmr_size).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let leaf = leaves
            .checked_sub(1)
            .ok_or_else(|| EngineError::Invalid("the bucket has no commit history yet".into()))?;
        let path = inclusion_path(c.mmr_size, leaf_index(leaf))
            .map_err(|e| EngineError::Corrupt(e.to_string()))?;
        Ok((leaf, self.mmr_values(&c.bucket, &path).await?))
    }

    /// Presence (with the manifest) or absence of `key` at the head of `cp`.
    pub async fn prove_object(
        &self,
        cp: &SignedCheckpoint,
        key: &str,
    ) -> Result<ObjectProof, EngineError> {
        let store = self.store().clone();
        let head = cp.checkpoint.head;
        let key_bytes = key.as_bytes().to_vec();
        let (commit, nodes, manifest) = tokio::task::spawn_blocking(move || {
            let commit = store.get(&head)?;
            let root = Commit::decode(&commit)?.data;
            let proof = billet_mst::Mst::new(store.as_ref()).prove(&root, &key_bytes)?;
            let value = billet_mst::verify_proof(&root, &key_bytes, &proof.nodes)?;
            let manifest = value.map(|v| store.get(&v)).transpose()?;
            Ok::<_, EngineError>((commit, proof.nodes, manifest))
        })
        .await
        .map_err(join_error)??;
        Ok(ObjectProof {
            kind: "billet.proof.object".into(),
            checkpoint: cp.clone(),
            commit: ByteBuf::from(commit.to_vec()),
            key: key.to_string(),
            mst: nodes
                .iter()
                .map(|b| ByteBuf::from(b.data().to_vec()))
                .collect(),
            manifest: manifest.map(|m| ByteBuf::from(m.to_vec())),
        })
    }

    /// Commit `commit` (of sequence number `seq`) is a leaf of `cp`'s MMR.
    /// The MMR's leaves are consecutive commits ending at the head, so the
    /// leaf number follows from `seq`.
    pub async fn prove_commit(
        &self,
        cp: &SignedCheckpoint,
        seq: u64,
        commit: Cid,
    ) -> Result<CommitProof, EngineError> {
        let c = &cp.checkpoint;
        let leaves = leaf_count(c.mmr_size).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let first = (c.seq + 1)
            .checked_sub(leaves)
            .ok_or_else(|| EngineError::Corrupt("the MMR has more leaves than commits".into()))?;
        if seq < first || seq > c.seq {
            return Err(EngineError::Invalid(format!(
                "seq {seq} is outside the commits this MMR holds ({first}..={})",
                c.seq
            )));
        }
        let leaf = seq - first;
        let path = inclusion_path(c.mmr_size, leaf_index(leaf))
            .map_err(|e| EngineError::Corrupt(e.to_string()))?;
        Ok(CommitProof {
            kind: "billet.proof.commit".into(),
            checkpoint: cp.clone(),
            commit,
            leaf,
            path: bufs(self.mmr_values(&c.bucket, &path).await?),
        })
    }

    /// The MMR of the checkpoint this node signed at `from_size` is a
    /// prefix of the one of `cp`.
    pub async fn prove_consistency(
        &self,
        cp: &SignedCheckpoint,
        from_size: u64,
    ) -> Result<ConsistencyProof, EngineError> {
        let bucket = &cp.checkpoint.bucket;
        let old = self
            .checkpoints(bucket)
            .await?
            .into_iter()
            .find(|c| c.checkpoint.mmr_size == from_size)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "this node signed no checkpoint of {bucket} with an MMR of {from_size} nodes"
                ))
            })?;
        let paths = billet_mmr::consistency_paths(from_size, cp.checkpoint.mmr_size)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            out.push(bufs(self.mmr_values(bucket, &p).await?));
        }
        Ok(ConsistencyProof {
            kind: "billet.proof.consistency".into(),
            old,
            new: cp.clone(),
            paths: out,
        })
    }

    /// Answers a storage challenge: chunk `chunk` (zero-based leaf of the
    /// body) of `key` at the head of `cp`, with `nonce` in a response
    /// signed by `signer`.
    pub async fn answer_challenge(
        &self,
        cp: &SignedCheckpoint,
        key: &str,
        chunk: u64,
        nonce: &[u8],
        signer: &SigningKey,
    ) -> Result<ChallengeProof, EngineError> {
        let object = self.prove_object(cp, key).await?;
        let manifest_bytes = object
            .manifest
            .clone()
            .ok_or_else(|| EngineError::NoSuchKey(key.to_string()))?;
        let m = Manifest::decode(&manifest_bytes)?;
        let root = m
            .body
            .ok_or_else(|| EngineError::NoSuchKey(key.to_string()))?;
        let commit = Commit::decode(&object.commit)?;
        let chunk_size = commit.settings.chunk_size;
        let (start, len) = m.chunk_span(chunk, chunk_size).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{key} has {} chunks (0 to {}); there is no chunk {chunk}",
                m.chunk_count(chunk_size),
                m.chunk_count(chunk_size) - 1
            ))
        })?;
        let store = self.store().clone();
        let (nodes, positions, offset, data_cid, bytes) =
            tokio::task::spawn_blocking(move || find_chunk(store.as_ref(), root, start, len))
                .await
                .map_err(join_error)??;
        let (leaf, mmr) = self.head_leaf(cp).await?;
        let response = ChallengeResponse {
            kind: "billet.challenge.response".into(),
            node: did_key(&signer.verifying_key()),
            bucket: cp.checkpoint.bucket.clone(),
            key: key.to_string(),
            chunk,
            offset,
            nonce: ByteBuf::from(nonce.to_vec()),
            data: data_cid,
            head: cp.checkpoint.head,
        };
        let sig = response.sign(signer).map_err(cbor_err)?;
        Ok(ChallengeProof {
            kind: "billet.proof.challenge".into(),
            response,
            sig,
            checkpoint: cp.clone(),
            commit: object.commit,
            leaf,
            mmr: bufs(mmr),
            mst: object.mst,
            manifest: manifest_bytes,
            unixfs: nodes,
            positions,
            bytes: ByteBuf::from(bytes),
        })
    }
}

type Found = (Vec<ByteBuf>, Vec<u64>, u64, Cid, Vec<u8>);

/// The leaf of the UnixFS tree under `root` that covers bytes
/// `[start, start + len)`, with the file nodes above it (root first), the
/// child taken at each and the leaf's offset. Each step picks its child
/// by the sizes the node records, so it reads one node per level.
fn find_chunk<S: BlockStore>(
    store: &S,
    root: Cid,
    start: u64,
    len: u64,
) -> Result<Found, EngineError> {
    let mut nodes = Vec::new();
    let mut positions = Vec::new();
    let mut offset = 0u64;
    let mut cid = root;
    while cid.codec() == Codec::DagPb.code() {
        let bytes = store.get(&cid)?;
        let node = billet_unixfs::decode_file_node(&bytes)
            .map_err(|e| EngineError::Invalid(format!("UnixFS node {cid}: {e}")))?;
        offset += node.data.len() as u64;
        let mut next = None;
        for (pos, (child, size)) in node.children.iter().enumerate() {
            // An empty chunk (an empty last part) sits where it starts.
            let covers = if len == 0 {
                *size == 0 && offset == start
            } else {
                start < offset + size
            };
            if covers {
                next = Some((pos, *child));
                break;
            }
            offset += size;
        }
        let (pos, child) = next.ok_or_else(|| {
            EngineError::Corrupt(format!(
                "UnixFS node {cid} has no child at body offset {start}"
            ))
        })?;
        nodes.push(ByteBuf::from(bytes.to_vec()));
        positions.push(pos as u64);
        cid = child;
    }
    let data = store.get(&cid)?;
    if offset != start || data.len() as u64 != len {
        return Err(EngineError::Corrupt(format!(
            "the leaf {cid} at offset {offset} ({} bytes) is not the chunk at {start} ({len} bytes)",
            data.len()
        )));
    }
    Ok((nodes, positions, offset, cid, data.to_vec()))
}
