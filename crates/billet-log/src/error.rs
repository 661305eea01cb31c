use std::path::PathBuf;

use billet_block::BlockError;

use crate::segment::PlaneKind;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(
        "segment {path} is damaged at byte {offset}: {reason} (open with repair to drop what cannot be read)"
    )]
    DamagedSegment {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "the {plane} plane could not make bytes durable ({reason}); the write was not acknowledged"
    )]
    SyncFailed { plane: PlaneKind, reason: String },
    #[error("the {plane} plane is unusable after an I/O failure it could not undo; reopen the log")]
    Poisoned { plane: PlaneKind },
    #[error("block {cid} is {len} bytes, above the {max}-byte block limit")]
    BlockTooLarge {
        cid: billet_block::Cid,
        len: usize,
        max: u64,
    },
    #[error("log directory {path}: {reason}")]
    Layout { path: PathBuf, reason: String },
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
