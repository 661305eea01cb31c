//! The narrow interface billet needs from an object store, and its
//! implementation over the `object_store` crate (one client for S3 and
//! every S3-compatible service, and for a local directory).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig,
};
use tokio::io::AsyncReadExt;

use crate::config::{RemoteConfig, StoreKind};
use crate::error::RemoteError;

/// What to upload.
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Bytes),
    /// A file of `len` bytes, read while it is uploaded (never whole in
    /// memory).
    File {
        path: PathBuf,
        len: u64,
    },
}

/// HTTP attributes of a stored object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    pub content_type: Option<&'static str>,
    pub content_encoding: Option<&'static str>,
}

/// One object found by [`Remote::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Relative to the configured prefix.
    pub key: String,
    pub size: u64,
}

/// What billet asks of a remote store. Keys are relative to the
/// configured prefix.
#[async_trait]
pub trait Remote: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `body` under `key`, replacing what is there; the object
    /// becomes visible whole or not at all.
    async fn put(&self, key: &str, body: Body, attrs: ObjectAttrs) -> Result<(), RemoteError>;
    async fn get(&self, key: &str) -> Result<Bytes, RemoteError>;
    /// Bytes `range` of the object. Fewer bytes than asked is an error the
    /// caller detects (a remote may truncate).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError>;
    /// Bytes `range` of the object as they arrive, so a reader of a long
    /// range can use its start before its end is in. The default asks
    /// [`Remote::get_range`] and yields it whole.
    async fn get_range_stream(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, RemoteError> {
        let b = self.get_range(key, range).await?;
        Ok(Box::pin(futures_util::stream::once(async move { Ok(b) })))
    }
    /// The object's size, `None` if absent.
    async fn size(&self, key: &str) -> Result<Option<u64>, RemoteError>;
    /// Removes the object; an absent one is not an error.
    async fn delete(&self, key: &str) -> Result<(), RemoteError>;
    /// Every object whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError>;
}

/// The bytes of a ranged read, in arrival order.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, RemoteError>> + Send>>;

/// A [`Remote`] over any `object_store` backend.
#[derive(Debug)]
pub struct ObjectRemote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Whether the backend keeps Content-Type and Content-Encoding (the
    /// local filesystem refuses attributes).
    attributes: bool,
    multipart_threshold: u64,
    part_size: usize,
    upload_concurrency: usize,
}

/// Opens the store `config` names. Nothing is contacted yet.
pub fn open(config: &RemoteConfig) -> Result<Arc<dyn Remote>, RemoteError> {
    let (store, attributes): (Arc<dyn ObjectStore>, bool) = match &config.store {
        StoreKind::S3 {
            bucket,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token,
            path_style,
        } => {
            // The usual AWS environment variables first; explicit settings
            // win.
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(!path_style)
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(config.connect_timeout)
                        .with_timeout(config.request_timeout)
                        .with_allow_http(
                            endpoint
                                .as_deref()
                                .is_some_and(|e| e.starts_with("http://")),
                        ),
                )
                .with_retry(RetryConfig {
                    max_retries: config.client_retries,
                    retry_timeout: config.request_timeout,
                    ..RetryConfig::default()
                });
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = region {
                b = b.with_region(r);
            }
            if let Some(k) = access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = secret_access_key {
                b = b.with_secret_access_key(s.expose());
            }
            if let Some(t) = session_token {
                b = b.with_token(t.expose());
            }
            let s3 = b.build().map_err(|e| RemoteError::Config(e.to_string()))?;
            (Arc::new(s3), true)
        }
        StoreKind::Filesystem { root } => {
            std::fs::create_dir_all(root)
                .map_err(|e| RemoteError::io(format!("creating {}", root.display()), e))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(root)
                .map_err(|e| RemoteError::Config(e.to_string()))?;
            (Arc::new(fs), false)
        }
    };
    Ok(Arc::new(ObjectRemote {
        store,
        prefix: normalize_prefix(&config.prefix),
        attributes,
        multipart_threshold: config.multipart_threshold,
        part_size: config.part_size.max(5 << 20),
        upload_concurrency: config.upload_concurrency.max(1),
    }))
}

/// `a/b/` for ` /a//b`, empty for empty.
fn normalize_prefix(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.trim().is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    }
}

fn map_err(op: &'static str, key: &str, e: object_store::Error) -> RemoteError {
    use object_store::Error as E;
    let retryable = match &e {
        E::NotFound { .. } => {
            return RemoteError::NotFound {
                key: key.to_string(),
            };
        }
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. }
        | E::Precondition { .. }
        | E::AlreadyExists { .. } => false,
        _ => true,
    };
    RemoteError::Failed {
        op,
        key: key.to_string(),
        reason: e.to_string(),
        retryable,
    }
}

impl ObjectRemote {
    fn path(&self, key: &str) -> Result<Path, RemoteError> {
        Path::parse(format!("{}{key}", self.prefix)).map_err(|e| RemoteError::Failed {
            op: "naming",
            key: key.to_string(),
            reason: e.to_string(),
            retryable: false,
        })
    }

    fn attributes(&self, attrs: ObjectAttrs) -> Attributes {
        let mut a = Attributes::new();
        if self.attributes {
            if let Some(t) = attrs.content_type {
                a.insert(Attribute::ContentType, t.into());
            }
            if let Some(e) = attrs.content_encoding {
                a.insert(Attribute::ContentEncoding, e.into());
            }
        }
        a
    }

    async fn put_file_multipart(
        &self,
        key: &str,
        path: &Path,
        file: &std::path::Path,
        attrs: ObjectAttrs,
    ) -> Result<(), RemoteError> {
        let io = |e| RemoteError::io(format!("reading {}", file.display()), e);
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let opts = PutMultipartOptions {
            attributes: self.attributes(attrs),
            ..PutMultipartOptions::default()
        };
        let mut upload = self
            .store
            .put_multipart_opts(path, opts)
            .await
            .map_err(|e| map_err("starting an upload of", key, e))?;
        let result = async {
            let mut in_flight = FuturesUnordered::new();
            loop {
                let mut buf = BytesMut::with_capacity(self.part_size);
                while buf.len() < self.part_size {
                    if f.read_buf(&mut buf).await.map_err(io)? == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                in_flight.push(upload.put_part(PutPayload::from(buf.freeze())));
                while in_flight.len() >= self.upload_concurrency {
                    if let Some(r) = in_flight.next().await {
                        r.map_err(|e| map_err("uploading a part of", key, e))?;
                    }
                }
            }
            while let Some(r) = in_flight.next().await {
                r.map_err(|e| map_err("uploading a part of", key, e))?;
            }
            Ok::<(), RemoteError>(())
        }
        .await;
        match result {
            Ok(()) => {
                upload
                    .complete()
                    .await
                    .map_err(|e| map_err("completing the upload of", key, e))?;
                Ok(())
            }
            Err(e) => {
                // The parts would linger (and cost) on the remote.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Remote for ObjectRemote {
    async fn put(&self, key: &str, body: Body, attrs: ObjectAttrs) -> Result<(), RemoteError> {
        let path = self.path(key)?;
        let bytes = match body {
            Body::Bytes(b) => b,
            Body::File { path: file, len } if len >= self.multipart_threshold => {
                return self.put_file_multipart(key, &path, &file, attrs).await;
            }
            Body::File { path: file, .. } => Bytes::from(
                tokio::fs::read(&file)
                    .await
                    .map_err(|e| RemoteError::io(format!("reading {}", file.display()), e))?,
            ),
        };
        let opts = PutOptions {
            attributes: self.attributes(attrs),
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
            .map_err(|e| map_err("uploading", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, RemoteError> {
        let path = self.path(key)?;
        let r = self
            .store
            .get(&path)
            .await
            .map_err(|e| map_err("reading", key, e))?;
        r.bytes().await.map_err(|e| map_err("reading", key, e))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        let path = self.path(key)?;
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| map_err("reading a range of", key, e))
    }

    async fn get_range_stream(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, RemoteError> {
        let path = self.path(key)?;
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&path, options)
            .await
            .map_err(|e| map_err("reading a range of", key, e))?;
        let key = key.to_string();
        Ok(Box::pin(got.into_stream().map(move |r| {
            r.map_err(|e| map_err("reading a range of", &key, e))
        })))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, RemoteError> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err("looking up", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("deleting", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError> {
        // `object_store` lists by path segments: list the directory part
        // and filter on the rest.
        let dir_rel = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let dir_full = format!("{}{dir_rel}", self.prefix);
        let dir_full = dir_full.trim_end_matches('/');
        let dir_path = if dir_full.is_empty() {
            None
        } else {
            Some(Path::parse(dir_full).map_err(|e| RemoteError::Failed {
                op: "listing",
                key: prefix.to_string(),
                reason: e.to_string(),
                retryable: false,
            })?)
        };
        let mut stream = self.store.list(dir_path.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| map_err("listing", prefix, e))?;
            let loc = meta.location.to_string();
            if let Some(rel) = loc.strip_prefix(&self.prefix)
                && rel.starts_with(prefix)
            {
                out.push(Listed {
                    key: rel.to_string(),
                    size: meta.size,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalize() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("prod"), "prod/");
        assert_eq!(normalize_prefix("/a//b/"), "a/b/");
    }
}
