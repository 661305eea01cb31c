use billet_block::{BlockError, KeyError};
use billet_index::IndexError;
use billet_log::LogError;
use billet_mst::MstError;
use billet_records::RecordError;
use billet_unixfs::{IngestError, UnixfsError};

/// What went wrong, in terms the S3 layer maps to error codes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("key {0:?} does not exist")]
    NoSuchKey(String),
    #[error("version {version_id:?} of {key:?} does not exist")]
    NoSuchVersion { key: String, version_id: String },
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    #[error("precondition failed: {0}")]
    PreconditionFailed(&'static str),
    #[error("body is larger than the {max}-byte limit")]
    TooLarge { max: u64 },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("the upload {0:?} does not exist")]
    NoSuchUpload(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("part {number} is {size} bytes; every part but the last needs at least {min}")]
    EntityTooSmall { number: u32, size: u64, min: u64 },
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    /// Object Lock forbids it (a retention or a legal hold).
    #[error("{0}")]
    ObjectLocked(&'static str),
    #[error(transparent)]
    Log(#[from] LogError),
    /// An index failure with no meaning of its own to the S3 layer (the
    /// ones that have one become the variants above: see `From`).
    #[error(transparent)]
    Index(IndexError),
    #[error(transparent)]
    Mst(#[from] MstError),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Unixfs(#[from] UnixfsError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the commit pipeline stopped")]
    PipelineStopped,
    /// The batch a mutation was in failed as a whole (the log or the
    /// index refused it); nothing of it was committed.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// Stored data (index rows, records, the MMR) is not what it must be:
    /// a case for `billet fsck`, not for a retry.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The node is over a local disk budget and cannot evict below it
    /// until shipping catches up: try again later.
    #[error("{0}")]
    SlowDown(String),
    /// The remote store failed or answered wrongly.
    #[error("the remote store: {0}")]
    Remote(String),
    /// A background task or worker thread died.
    #[error("a background task failed: {0}")]
    Task(String),
    /// Something that cannot happen did: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The block a read failed on (missing, unreadable, or not matching
    /// its CID), when that is what this error is.
    pub fn unreadable_block(&self) -> Option<&BlockError> {
        match self {
            EngineError::Block(e)
            | EngineError::Log(LogError::Block(e))
            | EngineError::Unixfs(UnixfsError::Block(e))
            | EngineError::Mst(MstError::Block(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<IngestError> for EngineError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Body(b) => EngineError::Body(b.to_string()),
            IngestError::TooLarge { max } => EngineError::TooLarge { max },
            IngestError::Sink(s) => match s.downcast::<LogError>() {
                Ok(log) => EngineError::Log(*log),
                Err(other) => EngineError::Task(other.to_string()),
            },
            other => EngineError::Internal(other.to_string()),
        }
    }
}

/// The one conversion from index errors: the cases callers tell apart
/// become engine variants, the rest stay index errors.
impl From<IndexError> for EngineError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::NoSuchBucket(b) => EngineError::NoSuchBucket(b),
            IndexError::BucketExists(b) => EngineError::BucketExists(b),
            IndexError::BucketNotEmpty(b) => EngineError::BucketNotEmpty(b),
            IndexError::NoSuchUpload(u) => EngineError::NoSuchUpload(u),
            IndexError::NoSuchVersion { key, version_id } => {
                EngineError::NoSuchVersion { key, version_id }
            }
            IndexError::Corrupt(why) => EngineError::Corrupt(why),
            other => EngineError::Index(other),
        }
    }
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> EngineError {
    EngineError::Task(e.to_string())
}
