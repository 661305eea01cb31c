use billet_block::Cid;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("bucket {bucket:?} head is {actual}, not the expected {expected}")]
    Conflict {
        bucket: String,
        expected: Box<Cid>,
        actual: Box<Cid>,
    },
    #[error("multipart upload {0:?} does not exist")]
    NoSuchUpload(String),
    #[error("version {version_id:?} of {key:?} does not exist")]
    NoSuchVersion { key: String, version_id: String },
    #[error("access key {0:?} already exists")]
    AccessKeyExists(String),
    #[error("MMR position {0} is already taken (history is append-only)")]
    MmrOverwrite(u64),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index task failed: {0}")]
    Task(String),
}

impl IndexError {
    /// Whether retrying the same call may succeed (a busy database, a
    /// dropped connection), as opposed to a definite answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            IndexError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            IndexError::Postgres(e) => e.is_closed() || e.code().is_none(),
            IndexError::Pool(_) | IndexError::Task(_) => true,
            _ => false,
        }
    }
}
