//! PutObject, and what it shares with multipart uploads and copies: the
//! system headers an object carries and the write conditions.

use std::collections::BTreeMap;

use billet_engine::{Condition, Engine, ObjectMeta};
use billet_unixfs::ChecksumAlgorithm;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::body::{BodyClaims, Incoming, receive_body};
use crate::checksums::Checksums;
use crate::error::to_s3;
use crate::util::{etag, http_date, parse_tagging_header};

/// The system headers a PUT, a REPLACE copy or a multipart upload sets.
pub(crate) struct SystemHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
}

impl SystemHeaders {
    pub(crate) fn into_meta(
        self,
        metadata: Option<Metadata>,
        tags: BTreeMap<String, String>,
    ) -> ObjectMeta {
        ObjectMeta {
            content_type: self.content_type,
            content_encoding: self.content_encoding.and_then(stored_encoding),
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            cache_control: self.cache_control,
            expires: self.expires.as_ref().and_then(http_date),
            user: metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            tags,
            ..ObjectMeta::default()
        }
    }
}

/// The `Content-Encoding` an object keeps: `aws-chunked` says how this
/// request's body was framed, not how the object is encoded, so S3 drops
/// it (`gzip, aws-chunked` is stored as `gzip`).
fn stored_encoding(e: String) -> Option<String> {
    let kept: Vec<&str> = e
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The object ACL a PUT, copy or multipart upload sets: `x-amz-acl` or the
/// grant headers (read, read-acp, write-acp, full-control), in the form a
/// manifest keeps (empty: the owner's alone).
pub(crate) fn request_acl(
    canned: Option<&ObjectCannedACL>,
    grants: [Option<&str>; 4],
) -> S3Result<BTreeMap<String, Vec<String>>> {
    let [read, read_acp, write_acp, full] = grants;
    let acl = crate::bucket_config::object_acl(
        canned.map(ObjectCannedACL::as_str),
        [read, None, read_acp, write_acp, full],
    )?;
    Ok(acl.map(|a| a.to_manifest()).unwrap_or_default())
}

pub(crate) fn condition(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> S3Result<Option<Condition>> {
    match (if_match, if_none_match) {
        (_, Some(ETagCondition::Any)) => Ok(Some(Condition::IfNoneMatch)),
        (_, Some(ETagCondition::ETag(_))) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on PUT supports only *"
        )),
        (Some(ETagCondition::ETag(e)), None) => Ok(Some(Condition::IfMatch(e.value().to_string()))),
        (Some(ETagCondition::Any), None) => Err(s3_error!(
            NotImplemented,
            "If-Match: * is not supported on PUT"
        )),
        (None, None) => Ok(None),
    }
}

pub(crate) async fn put_object(
    engine: &Engine,
    req: S3Request<PutObjectInput>,
    max_put: u64,
) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        trailing_headers,
        ..
    } = req;
    if input.key.len() > 1024 {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    if let Some(len) = input.content_length
        && len as u64 > max_put
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        ));
    }
    let bucket = engine.bucket(&input.bucket).await.map_err(to_s3)?;
    let claims = BodyClaims {
        content_length: input.content_length,
        content_md5: input.content_md5.clone(),
        checksums: [
            (ChecksumAlgorithm::Crc32, input.checksum_crc32.clone()),
            (ChecksumAlgorithm::Crc32c, input.checksum_crc32c.clone()),
            (
                ChecksumAlgorithm::Crc64Nvme,
                input.checksum_crc64nvme.clone(),
            ),
            (ChecksumAlgorithm::Sha1, input.checksum_sha1.clone()),
            (ChecksumAlgorithm::Sha256, input.checksum_sha256.clone()),
        ],
        declared: input
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_string()),
    };
    claims.check_headers(&headers)?;
    let tags = match &input.tagging {
        Some(t) => parse_tagging_header(t)?,
        None => BTreeMap::new(),
    };
    let cond = condition(input.if_match.clone(), input.if_none_match.clone())?;
    let (lock, legal_hold) = crate::object_lock::requested(
        engine,
        &input.bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    let acl = request_acl(
        input.acl.as_ref(),
        [
            input.grant_read.as_deref(),
            input.grant_read_acp.as_deref(),
            input.grant_write_acp.as_deref(),
            input.grant_full_control.as_deref(),
        ],
    )?;
    // As in S3, every object gets a checksum: CRC64NVME when the client
    // asked for none.
    let default = claims
        .algorithms(&headers)?
        .is_empty()
        .then_some(ChecksumAlgorithm::Crc64Nvme);
    let incoming = Incoming {
        body: input.body,
        headers: &headers,
        extensions: &extensions,
        trailing: trailing_headers,
    };
    let staged = receive_body(engine, &bucket, incoming, &claims, default).await?;
    let mut meta = SystemHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires,
    }
    .into_meta(input.metadata, tags);
    meta.acl = acl;
    meta.lock = lock;
    meta.legal_hold = legal_hold;
    let computed = staged.ingested.checksums.clone();
    let out = engine
        .put(&input.bucket, &input.key, staged, meta, cond)
        .await
        .map_err(to_s3)?;
    let c = Checksums::from_values(&computed);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&out.manifest.etag)),
        version_id: out.version_id,
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: (!computed.is_empty())
            .then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        size: Some(out.manifest.size as i64),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::stored_encoding;

    #[test]
    fn aws_chunked_framing_is_not_an_object_encoding() {
        let kept = |e: &str| stored_encoding(e.to_string());
        assert_eq!(kept("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(kept("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(kept("br,  AWS-Chunked , gzip").as_deref(), Some("br, gzip"));
        assert_eq!(kept("aws-chunked"), None);
        assert_eq!(kept(" , "), None);
        assert_eq!(kept("identity").as_deref(), Some("identity"));
    }
}
