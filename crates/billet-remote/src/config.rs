//! Where the remote store is and how to talk to it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which store backs the remote.
#[derive(Debug, Clone)]
pub enum StoreKind {
    /// Any S3-compatible service: AWS S3, Garage, Ceph RGW, MinIO, a
    /// second billet.
    S3 {
        bucket: String,
        /// `None`: AWS S3 for `region`.
        endpoint: Option<String>,
        region: Option<String>,
        /// `None`: from the environment (`AWS_ACCESS_KEY_ID`, …) or the
        /// instance's role.
        access_key_id: Option<String>,
        secret_access_key: Option<Secret>,
        session_token: Option<Secret>,
        /// `bucket` in the path (`endpoint/bucket/key`) instead of the
        /// host name; what most self-hosted stores want.
        path_style: bool,
    },
    /// A directory (tests, or a mounted network filesystem).
    Filesystem { root: PathBuf },
}

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub store: StoreKind,
    /// Prepended to every key billet writes (e.g. `prod/`).
    pub prefix: String,
    pub connect_timeout: Duration,
    /// Longest one request (one part of an upload, one ranged read) may
    /// take.
    pub request_timeout: Duration,
    /// Retries of one request inside the client, for 5xx and dropped
    /// connections, with jittered exponential backoff. Callers retry
    /// whole operations on top (shipping forever, reads a few times).
    pub client_retries: usize,
    /// Files at least this large go up as multipart uploads.
    pub multipart_threshold: u64,
    pub part_size: usize,
    /// Parts of one upload in flight at once.
    pub upload_concurrency: usize,
}

impl RemoteConfig {
    pub fn new(store: StoreKind) -> RemoteConfig {
        RemoteConfig {
            store,
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            client_retries: 2,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            upload_concurrency: 8,
        }
    }

    /// A one-line description for logs: no credentials.
    pub fn describe(&self) -> String {
        match &self.store {
            StoreKind::S3 {
                bucket, endpoint, ..
            } => format!(
                "s3://{bucket}/{} at {}",
                self.prefix,
                endpoint.as_deref().unwrap_or("AWS")
            ),
            StoreKind::Filesystem { root } => {
                format!("file://{}/{}", root.display(), self.prefix)
            }
        }
    }
}
