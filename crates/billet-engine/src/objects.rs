//! Objects: staging bodies, puts, reads, deletes, copies, tags and
//! listings, each a thin step from the S3 layer to the commit pipeline or
//! the index.

use std::collections::BTreeMap;
use std::pin::Pin;

use billet_block::{Cid, validate_key};
use billet_records::{ChecksumType, LockMode, Manifest};
use billet_unixfs::ChecksumAlgorithm;
use bytes::Bytes;
use futures_core::Stream;

use crate::pipeline::Rewrite;
use crate::pipeline::{self, Condition, Mutation, Outcome};
use crate::{
    BucketState, Engine, EngineError, ListPage, ListQuery, ObjectVersion, StagedBody, VersionPage,
    VersionQuery, body, now_ms,
};

/// System headers and metadata that go into a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub user: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// The object ACL (the manifest's `acl`).
    pub acl: BTreeMap<String, Vec<String>>,
    /// Object Lock retention the write asks for (else the bucket's
    /// default, if it has one).
    pub lock: Option<(LockMode, i64)>,
    pub legal_hold: bool,
}

impl ObjectMeta {
    /// The metadata a manifest carries.
    pub fn of(m: &Manifest) -> ObjectMeta {
        ObjectMeta {
            content_type: m.content_type.clone(),
            content_encoding: m.content_encoding.clone(),
            content_disposition: m.content_disposition.clone(),
            content_language: m.content_language.clone(),
            cache_control: m.cache_control.clone(),
            expires: m.expires.clone(),
            user: m.meta.clone(),
            tags: m.tags.clone(),
            acl: m.acl.clone(),
            // A lock belongs to its version: copies get their own.
            lock: None,
            legal_hold: false,
        }
    }

    pub(crate) fn apply(self, m: &mut Manifest) {
        m.content_type = self.content_type;
        m.content_encoding = self.content_encoding;
        m.content_disposition = self.content_disposition;
        m.content_language = self.content_language;
        m.cache_control = self.cache_control;
        m.expires = self.expires;
        m.meta = self.user;
        m.tags = self.tags;
        m.acl = self.acl;
        m.lock_mode = self.lock.map(|(mode, _)| mode);
        m.lock_until = self.lock.map(|(_, until)| until);
        m.legal_hold = self.legal_hold;
    }
}

/// A committed write.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub version_id: Option<String>,
    pub manifest_cid: Cid,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send + Sync>>;

impl Engine {
    /// Streams a request body into the log (not yet visible, not yet
    /// durable), computing MD5, SHA-256 and the `checksums` asked for.
    pub async fn stage_body<S, E>(
        &self,
        bucket: &BucketState,
        body: S,
        checksums: &[ChecksumAlgorithm],
    ) -> Result<StagedBody, EngineError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.admit()?;
        let chunk = usize::try_from(bucket.settings.chunk_size)
            .unwrap_or(billet_unixfs::DEFAULT_CHUNK_SIZE);
        body::stage(
            self.log(),
            body,
            chunk,
            checksums,
            self.inner.config.max_put_bytes,
        )
        .await
    }

    /// Commits a staged body under `key`.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: StagedBody,
        meta: ObjectMeta,
        condition: Option<Condition>,
    ) -> Result<PutOutcome, EngineError> {
        validate_key(key.as_bytes())?;
        let ing = &body.ingested;
        let mut manifest = Manifest::new(
            key,
            ing.root.cid,
            ing.size(),
            ing.etag(),
            ing.sha256,
            now_ms(),
        );
        meta.apply(&mut manifest);
        for c in &ing.checksums {
            manifest
                .checksums
                .insert(c.algorithm.s3_name().to_string(), c.digest.clone().into());
        }
        if !manifest.checksums.is_empty() {
            manifest.checksum_type = Some(ChecksumType::FullObject);
        }
        self.commit_manifest(bucket, key, manifest, condition, body.receipt)
            .await
    }

    /// Commits a prepared manifest (copy, multipart complete, tagging).
    pub(crate) async fn commit_manifest(
        &self,
        bucket: &str,
        key: &str,
        manifest: Manifest,
        condition: Option<Condition>,
        receipt: billet_log::Receipt,
    ) -> Result<PutOutcome, EngineError> {
        manifest.validate()?;
        let handle = self.handle(bucket);
        let mutation = Mutation::Put {
            key: key.to_string(),
            manifest: Box::new(manifest),
            condition,
            receipt,
            upload: None,
        };
        match pipeline::submit(&self.inner, &handle, mutation).await? {
            Outcome::Put {
                version_id,
                manifest_cid,
                manifest,
            } => Ok(PutOutcome {
                version_id,
                manifest_cid,
                manifest: *manifest,
            }),
            other => Err(EngineError::Internal(format!(
                "put answered with {other:?}"
            ))),
        }
    }

    /// A version (or the latest), delete markers included.
    pub async fn object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectVersion, EngineError> {
        match self.inner.index.object(bucket, key, version_id).await? {
            Some(v) => Ok(v),
            None => Err(match version_id {
                Some(vid) => EngineError::NoSuchVersion {
                    key: key.to_string(),
                    version_id: vid.to_string(),
                },
                None => EngineError::NoSuchKey(key.to_string()),
            }),
        }
    }

    /// Bytes `[start, end)` of a manifest's body. The first piece is read
    /// before this returns, so a body that cannot be read fails here (an
    /// S3 error) rather than after the response has started.
    pub async fn read_body(
        &self,
        manifest: &Manifest,
        start: u64,
        end: u64,
    ) -> Result<BodyStream, EngineError> {
        let root = manifest
            .body
            .ok_or_else(|| EngineError::Invalid("a delete marker has no body".into()))?;
        body::read(self.inner.store.clone(), root, manifest.size, start, end).await
    }

    /// A whole body in memory (tests, small internal reads).
    pub async fn read_all(&self, manifest: &Manifest) -> Result<Vec<u8>, EngineError> {
        let root = manifest
            .body
            .ok_or_else(|| EngineError::Invalid("a delete marker has no body".into()))?;
        body::read_all(self.inner.store.clone(), root, manifest.size).await
    }

    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome, EngineError> {
        self.delete_if(bucket, key, version_id, None).await
    }

    /// A delete that happens only if `condition` holds over the version it
    /// would remove (or hide), checked in the pipeline against the state
    /// the delete commits on.
    pub async fn delete_if(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<Condition>,
    ) -> Result<DeleteOutcome, EngineError> {
        self.delete_with(bucket, key, version_id, condition, false)
            .await
    }

    /// [`Engine::delete_if`], where `bypass_governance` says whether the
    /// requester may remove a version under a GOVERNANCE retention.
    pub async fn delete_with(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<Condition>,
        bypass_governance: bool,
    ) -> Result<DeleteOutcome, EngineError> {
        validate_key(key.as_bytes())?;
        let handle = self.handle(bucket);
        let mutation = Mutation::Delete {
            key: key.to_string(),
            version_id: version_id.map(str::to_string),
            condition,
            bypass_governance,
        };
        match pipeline::submit(&self.inner, &handle, mutation).await? {
            Outcome::Delete {
                version_id,
                delete_marker,
            } => Ok(DeleteOutcome {
                version_id,
                delete_marker,
            }),
            other => Err(EngineError::Internal(format!(
                "delete answered with {other:?}"
            ))),
        }
    }

    /// Copies an object by reference: the new manifest points at the same
    /// body, so no bytes move. `meta`: `None` keeps the source's (COPY),
    /// `Some` replaces it (REPLACE).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        dst_bucket: &str,
        dst_key: &str,
        meta: Option<ObjectMeta>,
        condition: Option<Condition>,
    ) -> Result<PutOutcome, EngineError> {
        validate_key(dst_key.as_bytes())?;
        let src = self.object(src_bucket, src_key, src_version).await?;
        if src.is_delete_marker() {
            return Err(match src_version {
                Some(_) => EngineError::Invalid("the source version is a delete marker".into()),
                None => EngineError::NoSuchKey(src_key.to_string()),
            });
        }
        // The new manifest refers to the source's body without writing it:
        // held against a collection until it is committed.
        let pin = match src.manifest.body {
            Some(root) => Some(self.pin_body(root).await.map_err(|e| match e {
                EngineError::Log(billet_log::LogError::Block(
                    billet_block::BlockError::Missing(_),
                )) => EngineError::NoSuchKey(src_key.to_string()),
                e => e,
            })?),
            None => None,
        };
        let receipt = pin.as_ref().map(|p| p.receipt).unwrap_or_default();
        let mut manifest = src.manifest.clone();
        manifest.key = dst_key.to_string();
        manifest.version_id = None;
        manifest.prev = None;
        manifest.upload = None;
        let now = now_ms();
        manifest.created = now;
        manifest.modified = now;
        if let Some(meta) = meta {
            meta.apply(&mut manifest);
        }
        // The body is already durable in the log (but for copies a
        // collection asked for: the receipt).
        let put = self
            .commit_manifest(dst_bucket, dst_key, manifest, condition, receipt)
            .await;
        drop(pin);
        put
    }

    /// Replaces the tags of one version (the latest when `version_id` is
    /// `None`); returns the version id S3 reports.
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<Option<String>, EngineError> {
        self.rewrite(bucket, key, version_id, Rewrite::Tags(tags))
            .await
    }

    /// Replaces the ACL of one version (the latest when `version_id` is
    /// `None`); returns the version id S3 reports.
    pub async fn set_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: BTreeMap<String, Vec<String>>,
    ) -> Result<Option<String>, EngineError> {
        self.rewrite(bucket, key, version_id, Rewrite::Acl(acl))
            .await
    }

    /// Sets or removes the Object Lock retention of one version (the
    /// latest when `version_id` is `None`). A retention in force is only
    /// extended, unless it is GOVERNANCE and `bypass_governance`.
    pub async fn set_retention(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<(LockMode, i64)>,
        bypass_governance: bool,
    ) -> Result<Option<String>, EngineError> {
        let change = Rewrite::Retention {
            retention,
            bypass_governance,
        };
        self.rewrite(bucket, key, version_id, change).await
    }

    /// Puts a legal hold on one version, or lifts it.
    pub async fn set_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> Result<Option<String>, EngineError> {
        self.rewrite(bucket, key, version_id, Rewrite::LegalHold(on))
            .await
    }

    async fn rewrite(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: Rewrite,
    ) -> Result<Option<String>, EngineError> {
        validate_key(key.as_bytes())?;
        self.bucket(bucket).await?;
        let handle = self.handle(bucket);
        let mutation = Mutation::Rewrite {
            key: key.to_string(),
            version_id: version_id.map(str::to_string),
            change,
        };
        match pipeline::submit(&self.inner, &handle, mutation).await? {
            Outcome::Rewrite { version_id } => Ok(version_id),
            other => Err(EngineError::Internal(format!(
                "rewrite answered with {other:?}"
            ))),
        }
    }

    pub async fn list_objects(
        &self,
        bucket: &str,
        query: &ListQuery,
    ) -> Result<ListPage, EngineError> {
        Ok(self.inner.index.list_objects(bucket, query).await?)
    }

    pub async fn list_versions(
        &self,
        bucket: &str,
        query: &VersionQuery,
    ) -> Result<VersionPage, EngineError> {
        Ok(self.inner.index.list_versions(bucket, query).await?)
    }
}
