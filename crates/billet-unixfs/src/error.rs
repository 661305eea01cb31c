use billet_block::{BlockError, Cid};

/// A body that cannot be read back as the UnixFS file it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum UnixfsError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("UnixFS node {cid} is malformed: {reason}")]
    BadNode { cid: Cid, reason: String },
    #[error("UnixFS node {cid}: {reason}")]
    SizeMismatch { cid: Cid, reason: String },
    #[error("range {start}..{end} is outside a body of {size} bytes")]
    BadRange { start: u64, end: u64, size: u64 },
    #[error("UnixFS tree under {cid} is deeper than {max} levels")]
    TooDeep { cid: Cid, max: usize },
}
