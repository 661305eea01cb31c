/// What is wrong with a CAR stream, and where (`offset` is the byte offset
/// in the stream of the frame or header that failed).
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("truncated CAR: {what} cut short at byte {offset}")]
    Truncated { offset: u64, what: &'static str },
    #[error("bad varint at byte {offset}: {reason}")]
    BadVarint { offset: u64, reason: String },
    #[error("CAR header at byte {offset} is {len} bytes, above the {max}-byte limit")]
    HeaderTooLarge { offset: u64, len: u64, max: u64 },
    #[error("bad CAR header at byte {offset}: {reason}")]
    BadHeader { offset: u64, reason: String },
    #[error("frame at byte {offset} is {len} bytes, above the {max}-byte limit")]
    FrameTooLarge { offset: u64, len: u64, max: u64 },
    #[error("bad CID in frame at byte {offset}: {reason}")]
    BadCid { offset: u64, reason: String },
    #[error("block {cid} at byte {offset}: {reason}")]
    BadBlock {
        offset: u64,
        cid: Box<billet_block::Cid>,
        reason: String,
    },
}

impl CarError {
    /// Byte offset of the problem in the stream.
    pub fn offset(&self) -> u64 {
        match self {
            CarError::Io { offset, .. }
            | CarError::Truncated { offset, .. }
            | CarError::BadVarint { offset, .. }
            | CarError::HeaderTooLarge { offset, .. }
            | CarError::BadHeader { offset, .. }
            | CarError::FrameTooLarge { offset, .. }
            | CarError::BadCid { offset, .. }
            | CarError::BadBlock { offset, .. } => *offset,
        }
    }
}
