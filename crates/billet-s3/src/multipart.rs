//! CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts,
//! ListMultipartUploads.

use std::collections::BTreeMap;

use billet_engine::UploadQuery;
use billet_engine::{CompletedPart, Engine, EngineError, UploadChecksum};
use billet_records::MAX_PARTS;
use billet_unixfs::ChecksumAlgorithm;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::body::{BodyClaims, Incoming, receive_body};
use crate::checksums::Checksums;
use crate::copy::{check_copy_source, copy_source};
use crate::error::to_s3;
use crate::put::{SystemHeaders, condition};
use crate::util::{algorithm, etag, page_size, parse_tagging_header, timestamp, url_encode};

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PARTS as u32).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

fn checksum_dto(c: Option<UploadChecksum>) -> (Option<ChecksumAlgorithm_>, Option<ChecksumType>) {
    match c {
        None => (None, None),
        Some(c) => (
            Some(ChecksumAlgorithm_::from(
                c.algorithm().s3_name().to_string(),
            )),
            Some(ChecksumType::from(
                match c {
                    UploadChecksum::Composite(_) => ChecksumType::COMPOSITE,
                    UploadChecksum::FullObject(_) => ChecksumType::FULL_OBJECT,
                }
                .to_string(),
            )),
        ),
    }
}

type ChecksumAlgorithm_ = s3s::dto::ChecksumAlgorithm;

/// How an upload's object checksum is formed, by S3's rules: the type a
/// client names (`x-amz-checksum-type`) needs an algorithm; without a
/// type, CRC64NVME is FULL_OBJECT (the only way S3 has it) and the others
/// COMPOSITE; SHA-1 and SHA-256 cannot be combined into a full-object
/// value; and an upload that names no algorithm gets a full-object
/// CRC64NVME, as every S3 object now has a checksum.
fn upload_checksum(
    algo: Option<ChecksumAlgorithm>,
    kind: Option<&str>,
) -> S3Result<UploadChecksum> {
    use ChecksumAlgorithm::{Crc64Nvme, Sha1, Sha256};
    match (algo, kind) {
        (None, None) => Ok(UploadChecksum::FullObject(Crc64Nvme)),
        (None, Some(_)) => Err(s3_error!(
            InvalidRequest,
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        )),
        (Some(a), Some(ChecksumType::FULL_OBJECT)) if matches!(a, Sha1 | Sha256) => Err(s3_error!(
            InvalidRequest,
            "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
            a.s3_name()
        )),
        (Some(a), Some(ChecksumType::FULL_OBJECT)) => Ok(UploadChecksum::FullObject(a)),
        (Some(Crc64Nvme), Some(ChecksumType::COMPOSITE)) => Err(s3_error!(
            InvalidRequest,
            "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm."
        )),
        (Some(a), Some(ChecksumType::COMPOSITE)) => Ok(UploadChecksum::Composite(a)),
        (Some(_), Some(other)) => Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-type header is invalid: {other}"
        )),
        (Some(Crc64Nvme), None) => Ok(UploadChecksum::FullObject(Crc64Nvme)),
        (Some(a), None) => Ok(UploadChecksum::Composite(a)),
    }
}

pub(crate) async fn create(
    engine: &Engine,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = req.input;
    if i.key.len() > 1024 {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    let tags = match &i.tagging {
        Some(t) => parse_tagging_header(t)?,
        None => BTreeMap::new(),
    };
    let algo = i
        .checksum_algorithm
        .as_ref()
        .map(|a| algorithm(a.as_str()))
        .transpose()?;
    let checksum = upload_checksum(algo, i.checksum_type.as_ref().map(|t| t.as_str()))?;
    let (lock, legal_hold) = crate::object_lock::requested(
        engine,
        &i.bucket,
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )
    .await?;
    let acl = crate::put::request_acl(
        i.acl.as_ref(),
        [
            i.grant_read.as_deref(),
            i.grant_read_acp.as_deref(),
            i.grant_write_acp.as_deref(),
            i.grant_full_control.as_deref(),
        ],
    )?;
    let mut meta = SystemHeaders {
        content_type: i.content_type,
        content_encoding: i.content_encoding,
        content_disposition: i.content_disposition,
        content_language: i.content_language,
        cache_control: i.cache_control,
        expires: i.expires,
    }
    .into_meta(i.metadata, tags);
    meta.acl = acl;
    meta.lock = lock;
    meta.legal_hold = legal_hold;
    let up = engine
        .create_upload(&i.bucket, &i.key, meta, Some(checksum))
        .await
        .map_err(to_s3)?;
    let (checksum_algorithm, checksum_type) = checksum_dto(up.checksum);
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(up.key),
        upload_id: Some(up.upload_id),
        checksum_algorithm,
        checksum_type,
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    engine: &Engine,
    req: S3Request<UploadPartInput>,
    max_part: u64,
) -> S3Result<S3Response<UploadPartOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        trailing_headers,
        ..
    } = req;
    let number = part_number(input.part_number)?;
    if let Some(len) = input.content_length
        && len as u64 > max_part
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        ));
    }
    let bucket = engine.bucket(&input.bucket).await.map_err(to_s3)?;
    let upload = engine
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(to_s3)?;
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
    // The upload's own algorithm is always computed, so Complete can
    // form the object's checksum whatever the client sent with the part.
    let incoming = Incoming {
        body: input.body,
        headers: &headers,
        extensions: &extensions,
        trailing: trailing_headers,
    };
    let staged = receive_body(
        engine,
        &bucket,
        incoming,
        &claims,
        upload.checksum.map(|c| c.algorithm()),
    )
    .await?;
    let part = engine
        .put_part(&input.bucket, &upload, number, staged)
        .await
        .map_err(to_s3)?;
    let c = Checksums::from_values(&part.checksums);
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        ..Default::default()
    }))
}

/// `bytes=first-last` of `x-amz-copy-source-range`, checked against the
/// source's size: `(start, end)` with `end` exclusive.
fn copy_range(header: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = header.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = a.trim().parse().map_err(|_| invalid())?;
    let last: u64 = b.trim().parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(s3_error!(
            InvalidRange,
            "Range specified is not valid for source object of size: {size}"
        ));
    }
    Ok((first, last + 1))
}

pub(crate) async fn upload_part_copy(
    engine: &Engine,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let i = req.input;
    let number = part_number(i.part_number)?;
    let bucket = engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let upload = engine
        .upload(&i.bucket, &i.key, &i.upload_id)
        .await
        .map_err(to_s3)?;
    let (src_bucket, src_key, src_version) = copy_source(&i.copy_source)?;
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
    let (start, end) = match &i.copy_source_range {
        Some(r) => copy_range(r, src.size())?,
        None => (0, src.size()),
    };
    // The range is read back through the ingest pipeline: leaves that
    // line up with the source's chunks hash to the same CIDs and are not
    // stored twice.
    let body = engine
        .read_body(&src.manifest, start, end)
        .await
        .map_err(to_s3)?;
    let algos: Vec<ChecksumAlgorithm> =
        upload.checksum.map(|c| c.algorithm()).into_iter().collect();
    let staged = engine
        .stage_body(&bucket, body, &algos)
        .await
        .map_err(to_s3)?;
    let part = engine
        .put_part(&i.bucket, &upload, number, staged)
        .await
        .map_err(to_s3)?;
    let c = Checksums::from_values(&part.checksums);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(timestamp(part.last_modified_ms)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
        }),
        copy_source_version_id: src.manifest.version_id.clone(),
        ..Default::default()
    }))
}

pub(crate) async fn complete(
    engine: &Engine,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let upload = match engine.upload(&i.bucket, &i.key, &i.upload_id).await {
        Ok(u) => u,
        // SDKs retry a Complete whose answer was lost: the upload is gone
        // but its version answers the retry as the first Complete did.
        Err(EngineError::NoSuchUpload(_)) => {
            if let Some(v) = engine
                .completed_upload(&i.bucket, &i.key, &i.upload_id)
                .await
                .map_err(to_s3)?
            {
                return Ok(completed(&i.bucket, &i.key, &v.manifest));
            }
            return Err(to_s3(EngineError::NoSuchUpload(i.upload_id.clone())));
        }
        Err(e) => return Err(to_s3(e)),
    };
    let cond = condition(i.if_match.clone(), i.if_none_match.clone())?;
    let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let mut chosen = Vec::with_capacity(listed.len());
    for p in listed {
        let number = p
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML, "A part has no PartNumber"))
            .and_then(part_number)?;
        let etag = p
            .e_tag
            .as_ref()
            .map(|e| e.value().to_string())
            .ok_or_else(|| s3_error!(MalformedXML, "Part {number} has no ETag"))?;
        let checksums = [
            (ChecksumAlgorithm::Crc32, p.checksum_crc32),
            (ChecksumAlgorithm::Crc32c, p.checksum_crc32c),
            (ChecksumAlgorithm::Crc64Nvme, p.checksum_crc64nvme),
            (ChecksumAlgorithm::Sha1, p.checksum_sha1),
            (ChecksumAlgorithm::Sha256, p.checksum_sha256),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect();
        chosen.push(CompletedPart {
            number,
            etag,
            checksums,
        });
    }
    if chosen.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let out = engine
        .complete_upload(&i.bucket, &upload, &chosen, cond)
        .await
        .map_err(to_s3)?;
    Ok(completed(&i.bucket, &i.key, &out.put.manifest))
}

/// Complete's answer, from the version it made (a retry gets the same).
fn completed(
    bucket: &str,
    key: &str,
    m: &billet_records::Manifest,
) -> S3Response<CompleteMultipartUploadOutput> {
    let (c, checksum_type) = Checksums::of(m);
    S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        location: Some(format!("/{bucket}/{}", url_encode(key))),
        e_tag: Some(etag(&m.etag)),
        version_id: m.version_id.clone(),
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type,
        ..Default::default()
    })
}

pub(crate) async fn abort(
    engine: &Engine,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    engine
        .upload(&i.bucket, &i.key, &i.upload_id)
        .await
        .map_err(to_s3)?;
    engine
        .abort_upload(&i.bucket, &i.upload_id)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(
    engine: &Engine,
    owner: &Owner,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let upload = engine
        .upload(&i.bucket, &i.key, &i.upload_id)
        .await
        .map_err(to_s3)?;
    let max = page_size(i.max_parts, "max-parts")?;
    let after = match i.part_number_marker {
        None => 0,
        Some(m) => u32::try_from(m).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "part-number-marker must be a non-negative integer"
            )
        })?,
    };
    let (parts, page) = engine
        .list_parts(&i.bucket, &i.upload_id, after, max)
        .await
        .map_err(to_s3)?;
    let parts: Vec<Part> = parts
        .into_iter()
        .map(|p| {
            let c = Checksums::from_values(&p.checksums);
            Part {
                part_number: Some(p.number as i32),
                size: Some(p.size as i64),
                e_tag: Some(etag(&p.etag)),
                last_modified: Some(timestamp(p.last_modified_ms)),
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_crc64nvme: c.crc64nvme,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
            }
        })
        .collect();
    let (checksum_algorithm, checksum_type) = checksum_dto(upload.checksum);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: page.next_part_number_marker.map(|n| n as i32),
        max_parts: Some(max as i32),
        is_truncated: Some(page.truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner.clone()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm,
        checksum_type,
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    engine: &Engine,
    owner: &Owner,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let url = crate::listing::encoding(&i.encoding_type)?;
    let enc = |s: String| crate::listing::enc(url, s);
    let max = page_size(i.max_uploads, "max-uploads")?;
    let query = UploadQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker: i.key_marker.clone().filter(|m| !m.is_empty()),
        upload_id_marker: i.upload_id_marker.clone().filter(|m| !m.is_empty()),
        max_uploads: max,
    };
    let (uploads, page) = engine
        .list_uploads(&i.bucket, &query)
        .await
        .map_err(to_s3)?;
    let uploads: Vec<MultipartUpload> = uploads
        .into_iter()
        .map(|u| {
            let (checksum_algorithm, checksum_type) = checksum_dto(u.checksum);
            MultipartUpload {
                key: Some(enc(u.key)),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated_ms)),
                initiator: Some(Initiator {
                    display_name: owner.display_name.clone(),
                    id: owner.id.clone(),
                }),
                owner: Some(owner.clone()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm,
                checksum_type,
            }
        })
        .collect();
    let prefixes: Vec<CommonPrefix> = page
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        delimiter: i.delimiter,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        next_key_marker: page.next_key_marker.map(enc),
        next_upload_id_marker: page.next_upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(page.truncated),
        uploads: Some(uploads),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChecksumAlgorithm::*;

    #[test]
    fn upload_checksum_rules() {
        let ok = |a, k| upload_checksum(a, k).ok();
        assert_eq!(ok(None, None), Some(UploadChecksum::FullObject(Crc64Nvme)));
        assert_eq!(
            ok(Some(Crc32), None),
            Some(UploadChecksum::Composite(Crc32))
        );
        assert_eq!(
            ok(Some(Sha256), None),
            Some(UploadChecksum::Composite(Sha256))
        );
        assert_eq!(
            ok(Some(Crc64Nvme), None),
            Some(UploadChecksum::FullObject(Crc64Nvme))
        );
        assert_eq!(
            ok(Some(Crc32c), Some("FULL_OBJECT")),
            Some(UploadChecksum::FullObject(Crc32c))
        );
        assert_eq!(
            ok(Some(Sha1), Some("COMPOSITE")),
            Some(UploadChecksum::Composite(Sha1))
        );
        for (a, k) in [
            (None, Some("FULL_OBJECT")),
            (Some(Sha1), Some("FULL_OBJECT")),
            (Some(Sha256), Some("FULL_OBJECT")),
            (Some(Crc64Nvme), Some("COMPOSITE")),
            (Some(Crc32), Some("SIDEWAYS")),
        ] {
            assert!(upload_checksum(a, k).is_err(), "{a:?} {k:?}");
        }
    }
}
