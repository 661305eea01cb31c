//! The records, as DAG-CBOR maps (field names as written on the wire).

use billet_block::{Cid, DagCborError, decode_dag_cbor, encode_dag_cbor};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::ProofError;
use crate::did::{did_key, verifying_key_of};

pub const CHECKPOINT: &str = "billet.checkpoint";
pub const OBJECT: &str = "billet.proof.object";
pub const COMMIT: &str = "billet.proof.commit";
pub const CONSISTENCY: &str = "billet.proof.consistency";
pub const CHALLENGE: &str = "billet.proof.challenge";
pub const RESPONSE: &str = "billet.challenge.response";

fn cbor<T: Serialize>(v: &T) -> Result<Vec<u8>, DagCborError> {
    Ok(encode_dag_cbor(v)?.data().to_vec())
}

/// The state of one bucket as its node saw it at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    /// The signer, as a `did:key`.
    pub node: String,
    pub bucket: String,
    /// The bucket's head commit.
    pub head: Cid,
    pub seq: u64,
    /// Nodes in the bucket's commit MMR.
    pub mmr_size: u64,
    /// The MMR's peaks, highest first (MMRIVER: no bagging).
    pub peaks: Vec<ByteBuf>,
    /// ms since the Unix epoch.
    pub time: i64,
}

/// A checkpoint and the Ed25519 signature over its DAG-CBOR bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub sig: ByteBuf,
}

impl SignedCheckpoint {
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &SigningKey,
        bucket: &str,
        head: Cid,
        seq: u64,
        mmr_size: u64,
        peaks: &[[u8; 32]],
        time: i64,
    ) -> Result<SignedCheckpoint, DagCborError> {
        let checkpoint = Checkpoint {
            kind: CHECKPOINT.into(),
            version: 1,
            node: did_key(&key.verifying_key()),
            bucket: bucket.to_string(),
            head,
            seq,
            mmr_size,
            peaks: peaks.iter().map(|p| ByteBuf::from(p.to_vec())).collect(),
            time,
        };
        let sig = key.sign(&cbor(&checkpoint)?);
        Ok(SignedCheckpoint {
            checkpoint,
            sig: ByteBuf::from(sig.to_bytes().to_vec()),
        })
    }

    /// Checks the signature, and that the signer is `node`.
    pub fn verify(&self, node: &str) -> Result<(), ProofError> {
        let c = &self.checkpoint;
        if c.kind != CHECKPOINT || c.version != 1 {
            return Err(ProofError::Malformed(format!(
                "a checkpoint of type {:?} version {}",
                c.kind, c.version
            )));
        }
        if c.node != node {
            return Err(ProofError::WrongNode {
                signer: c.node.clone(),
                expected: node.to_string(),
            });
        }
        verify_sig(node, &cbor(c).map_err(malformed)?, &self.sig)
    }

    pub fn peaks(&self) -> Result<Vec<[u8; 32]>, ProofError> {
        self.checkpoint
            .peaks
            .iter()
            .map(|p| {
                p.as_slice()
                    .try_into()
                    .map_err(|_| ProofError::Malformed("a peak is not 32 bytes".into()))
            })
            .collect()
    }
}

pub(crate) fn malformed(e: impl std::fmt::Display) -> ProofError {
    ProofError::Malformed(e.to_string())
}

pub(crate) fn verify_sig(node: &str, msg: &[u8], sig: &[u8]) -> Result<(), ProofError> {
    let key = verifying_key_of(node)?;
    let sig = Signature::from_slice(sig).map_err(|_| ProofError::BadSignature(node.into()))?;
    key.verify(msg, &sig)
        .map_err(|_| ProofError::BadSignature(node.into()))
}

/// A key's presence (with its manifest) or absence in the MST of the
/// checkpoint's head commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectProof {
    #[serde(rename = "type")]
    pub kind: String,
    pub checkpoint: SignedCheckpoint,
    /// The head commit block.
    pub commit: ByteBuf,
    pub key: String,
    /// MST node blocks from the root to where the key is or would be.
    pub mst: Vec<ByteBuf>,
    /// The manifest block, when the key is present.
    pub manifest: Option<ByteBuf>,
}

/// A commit is leaf `leaf` of the checkpoint's MMR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitProof {
    #[serde(rename = "type")]
    pub kind: String,
    pub checkpoint: SignedCheckpoint,
    pub commit: Cid,
    /// Leaf number (zero-based) in the MMR.
    pub leaf: u64,
    /// Sibling values up to the leaf's peak.
    pub path: Vec<ByteBuf>,
}

/// The MMR of `old` is a prefix of the MMR of `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    #[serde(rename = "type")]
    pub kind: String,
    pub old: SignedCheckpoint,
    pub new: SignedCheckpoint,
    /// For each peak of `old`, the sibling values up to a peak of `new`.
    pub paths: Vec<Vec<ByteBuf>>,
}

/// What the node signs in answer to a storage challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeResponse {
    #[serde(rename = "type")]
    pub kind: String,
    pub node: String,
    pub bucket: String,
    pub key: String,
    /// Chunk number (leaf of the body's UnixFS tree, zero-based).
    pub chunk: u64,
    /// Byte offset of the chunk in the body.
    pub offset: u64,
    /// The challenger's nonce.
    pub nonce: ByteBuf,
    /// The chunk's CID.
    pub data: Cid,
    /// The head commit the answer was given at.
    pub head: Cid,
}

/// The answer to a storage challenge: the chunk, and every hash path from
/// it through the UnixFS DAG, the manifest, the MST, the commit and the
/// MMR up to a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeProof {
    #[serde(rename = "type")]
    pub kind: String,
    pub response: ChallengeResponse,
    /// Ed25519 signature over the response's DAG-CBOR bytes.
    pub sig: ByteBuf,
    pub checkpoint: SignedCheckpoint,
    /// The head commit block.
    pub commit: ByteBuf,
    /// The head commit's leaf number in the checkpoint's MMR.
    pub leaf: u64,
    pub mmr: Vec<ByteBuf>,
    pub mst: Vec<ByteBuf>,
    pub manifest: ByteBuf,
    /// UnixFS file nodes from the body root down to the chunk's parent.
    pub unixfs: Vec<ByteBuf>,
    /// The child taken at each of those nodes.
    pub positions: Vec<u64>,
    /// The chunk's bytes.
    pub bytes: ByteBuf,
}

impl ChallengeResponse {
    pub fn sign(&self, key: &SigningKey) -> Result<ByteBuf, DagCborError> {
        Ok(ByteBuf::from(key.sign(&cbor(self)?).to_bytes().to_vec()))
    }

    pub(crate) fn verify(&self, node: &str, sig: &[u8]) -> Result<(), ProofError> {
        verify_sig(node, &cbor(self).map_err(malformed)?, sig)
    }
}

/// Any of the proofs, told apart by their `type` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Checkpoint(SignedCheckpoint),
    Object(ObjectProof),
    Commit(CommitProof),
    Consistency(ConsistencyProof),
    Challenge(Box<ChallengeProof>),
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Proof {
    pub fn to_bytes(&self) -> Result<Vec<u8>, DagCborError> {
        match self {
            Proof::Checkpoint(p) => cbor(p),
            Proof::Object(p) => cbor(p),
            Proof::Commit(p) => cbor(p),
            Proof::Consistency(p) => cbor(p),
            Proof::Challenge(p) => cbor(p.as_ref()),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Proof, ProofError> {
        let v: ipld_core::ipld::Ipld = decode_dag_cbor(bytes).map_err(malformed)?;
        let kind: Kind = ipld_core::serde::from_ipld(v).map_err(malformed)?;
        Ok(match kind.kind.as_deref() {
            None => Proof::Checkpoint(decode_dag_cbor(bytes).map_err(malformed)?),
            Some(OBJECT) => Proof::Object(decode_dag_cbor(bytes).map_err(malformed)?),
            Some(COMMIT) => Proof::Commit(decode_dag_cbor(bytes).map_err(malformed)?),
            Some(CONSISTENCY) => Proof::Consistency(decode_dag_cbor(bytes).map_err(malformed)?),
            Some(CHALLENGE) => {
                Proof::Challenge(Box::new(decode_dag_cbor(bytes).map_err(malformed)?))
            }
            Some(other) => return Err(ProofError::Malformed(format!("unknown type {other:?}"))),
        })
    }
}
