use billet_block::{BlockError, Cid, KeyError};

#[derive(Debug, thiserror::Error)]
pub enum MstError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("key {key:?}: {source}")]
    Key {
        key: String,
        #[source]
        source: KeyError,
    },
    #[error("MST node {cid}: {reason}")]
    BadNode { cid: Cid, reason: String },
    #[error("keys are not strictly increasing: {key:?} follows {prev:?}")]
    Unsorted { prev: String, key: String },
    #[error("proof does not include node {0} on the key's path")]
    ProofIncomplete(Cid),
    #[error("internal MST invariant broken: {0}")]
    Internal(&'static str),
    #[error("proof node {cid} is not in the MST format: {reason}")]
    BadProof { cid: Cid, reason: String },
    /// A visitor of a walk asked it to stop.
    #[error("walk stopped: {0}")]
    Stopped(String),
}

/// A key for an error message: UTF-8 where it is, escaped where not.
pub(crate) fn show_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

pub(crate) fn key_error(key: &[u8], source: KeyError) -> MstError {
    MstError::Key {
        key: show_key(key),
        source,
    }
}
