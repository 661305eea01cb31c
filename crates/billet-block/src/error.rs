use cid::Cid;

/// Why a block could not be produced. Every variant names the CID involved,
/// because "some block is bad" is useless to whoever has to repair a store.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {0} is missing")]
    Missing(Cid),
    #[error("block {cid} does not hash to its CID")]
    HashMismatch { cid: Cid },
    #[error("unsupported CID {cid}: {reason}")]
    Unsupported { cid: Cid, reason: &'static str },
    #[error("reading block {cid}: {source}")]
    Io {
        cid: Cid,
        #[source]
        source: std::io::Error,
    },
    #[error("reading block {cid}: {message}")]
    Store { cid: Cid, message: String },
}

impl BlockError {
    /// The CID this error is about.
    pub fn cid(&self) -> &Cid {
        match self {
            BlockError::Missing(cid)
            | BlockError::HashMismatch { cid }
            | BlockError::Unsupported { cid, .. }
            | BlockError::Io { cid, .. }
            | BlockError::Store { cid, .. } => cid,
        }
    }
}
