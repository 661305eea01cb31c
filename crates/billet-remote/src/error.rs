use std::io;

/// What went wrong talking to the remote store, or reading what it holds.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{key}: not on the remote")]
    NotFound { key: String },
    /// A request failed; `retryable` when trying again may succeed (a
    /// 5xx, a timeout, a dropped connection).
    #[error("{op} {key}: {reason}")]
    Failed {
        op: &'static str,
        key: String,
        reason: String,
        retryable: bool,
    },
    /// Bytes from the remote that are not what they should be (a short
    /// range, a frame that does not decompress, a damaged seek table).
    #[error("{what}: {reason}")]
    Damaged { what: String, reason: String },
    #[error("remote configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl RemoteError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            RemoteError::Failed { retryable, .. } => *retryable,
            RemoteError::Io { .. } => true,
            RemoteError::NotFound { .. } | RemoteError::Damaged { .. } | RemoteError::Config(_) => {
                false
            }
        }
    }

    pub(crate) fn damaged(what: impl Into<String>, reason: impl Into<String>) -> RemoteError {
        RemoteError::Damaged {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> RemoteError {
        RemoteError::Io {
            what: what.into(),
            source,
        }
    }
}
