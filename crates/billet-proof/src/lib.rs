//! What a billet node signs and proves, as DAG-CBOR records, and how a
//! client checks them with nothing but the node's public key (`did:key`).
//!
//! - [`SignedCheckpoint`]: {bucket, head commit, MMR size and peaks, time},
//!   signed with the node's Ed25519 key over the record's canonical bytes.
//! - [`ObjectProof`]: a key is in (or absent from) the MST of a
//!   checkpoint's head commit, with its manifest.
//! - [`CommitProof`]: a commit is leaf `e` of a checkpoint's MMR.
//! - [`ConsistencyProof`]: an older checkpoint's MMR is a prefix of a newer
//!   one's.
//! - [`ChallengeProof`]: a chunk's bytes and every hash path from it up to a
//!   signed checkpoint, with the challenger's nonce in a signed response.
//!
//! Formats are documented byte by byte in `docs/proofs.md`.

mod did;
mod json;
mod records;
mod verify;

pub use did::{did_key, verifying_key_of};
pub use json::to_json;
pub use records::{
    ChallengeProof, ChallengeResponse, Checkpoint, CommitProof, ConsistencyProof, ObjectProof,
    Proof, SignedCheckpoint,
};
pub use verify::{Verified, verify};

/// Why a proof does not hold.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("not a billet proof: {0}")]
    Malformed(String),
    #[error("the signature does not verify with {0}")]
    BadSignature(String),
    #[error("signed by {signer}, not by the node {expected}")]
    WrongNode { signer: String, expected: String },
    #[error("{0}")]
    Mismatch(String),
    #[error("bad node key {0:?}: {1}")]
    BadDid(String, String),
}
