//! CopyObject, and the copy-source rules UploadPartCopy shares. A copy
//! points the new manifest at the source's body: no bytes are copied.

use billet_engine::ObjectVersion;
use billet_engine::{Engine, ObjectMeta};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::checksums::Checksums;
use crate::error::to_s3;
use crate::get::{check_read_conditions, etag_matches};
use crate::put::SystemHeaders;
use crate::util::{check_tags, etag, millis, parse_tagging_header, timestamp};

/// (bucket, key, version) of `x-amz-copy-source`.
pub(crate) fn copy_source(c: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match c {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_string),
        )),
        _ => Err(s3_error!(
            NotImplemented,
            "Access point copy sources are not supported"
        )),
    }
}

/// The `x-amz-copy-source-if-*` conditions, in the order S3 applies them:
/// (If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since).
pub(crate) fn check_copy_source(
    src: &ObjectVersion,
    conds: (
        Option<&ETagCondition>,
        Option<&Timestamp>,
        Option<&ETagCondition>,
        Option<&Timestamp>,
    ),
) -> S3Result<()> {
    if src.is_delete_marker() {
        return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
    }
    check_read_conditions(src, conds.0, conds.1, None, None)?;
    let failed = || {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    };
    if let Some(c) = conds.2
        && etag_matches(c, src.etag())
    {
        return Err(failed());
    }
    if let Some(t) = conds.3
        && src.last_modified_ms() / 1000 <= millis(t) / 1000
    {
        return Err(failed());
    }
    Ok(())
}

pub(crate) async fn copy_object(
    engine: &Engine,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let i = req.input;
    let (src_bucket, src_key, src_version) = copy_source(&i.copy_source)?;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let src = engine
        .object(&src_bucket, &src_key, src_version.as_deref())
        .await
        .map_err(to_s3)?;
    check_copy_source(
        &src,
        (
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
        ),
    )?;
    let replace = i
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let replace_tags = i
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    if src_bucket == i.bucket
        && src_key == i.key
        && src_version.is_none()
        && !replace
        && !replace_tags
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let (lock, legal_hold) = crate::object_lock::requested(
        engine,
        &i.bucket,
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    // A copy does not take its source's ACL: the request's, or the
    // owner's alone.
    let acl = crate::put::request_acl(
        i.acl.as_ref(),
        [
            i.grant_read.as_deref(),
            i.grant_read_acp.as_deref(),
            i.grant_write_acp.as_deref(),
            i.grant_full_control.as_deref(),
        ],
    )?;
    let mut meta = if replace {
        SystemHeaders {
            content_type: i.content_type,
            content_encoding: i.content_encoding,
            content_disposition: i.content_disposition,
            content_language: i.content_language,
            cache_control: i.cache_control,
            expires: i.expires,
        }
        .into_meta(i.metadata, src.manifest.tags.clone())
    } else {
        ObjectMeta::of(&src.manifest)
    };
    meta.acl = acl;
    // Nor its lock: the request's, or the bucket's default.
    meta.lock = lock;
    meta.legal_hold = legal_hold;
    if replace_tags {
        meta.tags = match &i.tagging {
            Some(t) => parse_tagging_header(t)?,
            None => check_tags(&[])?,
        };
    }
    let out = engine
        .copy(
            &src_bucket,
            &src_key,
            src_version.as_deref(),
            &i.bucket,
            &i.key,
            Some(meta),
            None,
        )
        .await
        .map_err(to_s3)?;
    let (c, checksum_type) = Checksums::of(&out.manifest);
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&out.manifest.etag)),
            last_modified: Some(timestamp(out.manifest.created)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type,
        }),
        copy_source_version_id: src.manifest.version_id.clone(),
        version_id: out.version_id,
        ..Default::default()
    }))
}
