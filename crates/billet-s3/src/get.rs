//! GetObject, HeadObject and GetObjectAttributes: lookup, delete markers,
//! conditional headers, ranges and part numbers, then the body streamed
//! from the log.

use billet_engine::Engine;
use billet_engine::ObjectVersion;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use crate::checksums::Checksums;
use crate::error::to_s3;
use crate::util::{etag, millis, parse_http_date, timestamp};

pub(crate) fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

/// RFC 7232 evaluation order, as S3 applies it: If-Match, then
/// If-Unmodified-Since (412); If-None-Match, then If-Modified-Since (304).
pub(crate) fn check_read_conditions(
    v: &ObjectVersion,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let current = v.etag();
    // HTTP dates have one-second resolution.
    let modified_s = v.last_modified_ms() / 1000;
    match if_match {
        Some(c) if !etag_matches(c, current) => {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since
                && modified_s > millis(t) / 1000
            {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        }
    }
    match if_none_match {
        Some(c) if etag_matches(c, current) => {
            return Err(S3Error::new(s3s::S3ErrorCode::NotModified));
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since
                && modified_s <= millis(t) / 1000
            {
                return Err(S3Error::new(s3s::S3ErrorCode::NotModified));
            }
        }
    }
    Ok(())
}

fn delete_marker_error(v: &ObjectVersion, by_version: bool) -> S3Error {
    let mut err = if by_version {
        s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )
    } else {
        s3_error!(NoSuchKey, "The specified key does not exist.")
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(vid) = http::HeaderValue::from_str(&v.version_id) {
        h.insert("x-amz-version-id", vid);
    }
    err.set_headers(h);
    err
}

/// Everything GET and HEAD share: lookup, delete markers, conditions,
/// range. Returns the version and the byte range to send.
pub(crate) async fn resolve_read(
    engine: &Engine,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    range: Option<&Range>,
    part_number: Option<i32>,
    conds: (
        Option<&ETagCondition>,
        Option<&Timestamp>,
        Option<&ETagCondition>,
        Option<&Timestamp>,
    ),
) -> S3Result<(ObjectVersion, u64, u64, Option<String>)> {
    let v = engine
        .object(bucket, key, version_id)
        .await
        .map_err(to_s3)?;
    if v.is_delete_marker() {
        return Err(delete_marker_error(&v, version_id.is_some()));
    }
    check_read_conditions(&v, conds.0, conds.1, conds.2, conds.3)?;
    let size = v.size();
    let (start, end, content_range) = match (range, part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        (None, Some(n)) => {
            let (start, end) = u32::try_from(n)
                .ok()
                .and_then(|n| Engine::part_range(&v.manifest, n))
                // 400, as S3 answers today (it once sent 416).
                .ok_or_else(|| {
                    let mut e = S3Error::with_message(
                        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                        "The requested partnumber is not satisfiable",
                    );
                    e.set_status_code(http::StatusCode::BAD_REQUEST);
                    e
                })?;
            // S3 sends Content-Range for a part of a multipart object.
            let cr = (v.manifest.is_multipart() && end > start)
                .then(|| format!("bytes {}-{}/{}", start, end - 1, size));
            (start, end, cr)
        }
        (None, None) => (0, size, None),
        (Some(r), None) => {
            let rg = r
                .check(size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            (
                rg.start,
                rg.end,
                Some(format!("bytes {}-{}/{}", rg.start, rg.end - 1, size)),
            )
        }
    };
    Ok((v, start, end, content_range))
}

pub(crate) async fn get_object(
    engine: &Engine,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let i = req.input;
    let (v, start, end, content_range) = resolve_read(
        engine,
        &i.bucket,
        &i.key,
        i.version_id.as_deref(),
        i.range.as_ref(),
        i.part_number,
        (
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        ),
    )
    .await?;
    let body = engine
        .read_body(&v.manifest, start, end)
        .await
        .map_err(to_s3)?;
    let m = &v.manifest;
    // A checksum describes the whole object, so ranges get none.
    let (checksums, checksum_type) = match (&i.checksum_mode, &content_range) {
        (Some(mode), None) if mode.as_str() == ChecksumMode::ENABLED => Checksums::of(m),
        _ => (Checksums::default(), None),
    };
    let (lock_mode, lock_until, legal_hold) = crate::object_lock::headers(m);
    let out = GetObjectOutput {
        object_lock_mode: lock_mode,
        object_lock_retain_until_date: lock_until,
        object_lock_legal_hold_status: legal_hold,
        body: Some(StreamingBlob::wrap(body)),
        accept_ranges: Some("bytes".into()),
        content_length: Some((end - start) as i64),
        content_range,
        e_tag: Some(etag(&m.etag)),
        last_modified: Some(timestamp(m.created)),
        version_id: m.version_id.clone(),
        metadata: (!m.meta.is_empty()).then(|| m.meta.clone().into_iter().collect()),
        tag_count: (!m.tags.is_empty()).then_some(m.tags.len() as i32),
        content_type: i.response_content_type.or_else(|| m.content_type.clone()),
        content_encoding: i
            .response_content_encoding
            .or_else(|| m.content_encoding.clone()),
        content_disposition: i
            .response_content_disposition
            .or_else(|| m.content_disposition.clone()),
        content_language: i
            .response_content_language
            .or_else(|| m.content_language.clone()),
        cache_control: i.response_cache_control.or_else(|| m.cache_control.clone()),
        expires: i
            .response_expires
            .or_else(|| m.expires.as_deref().and_then(parse_http_date)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_type,
        parts_count: m.is_multipart().then_some(m.parts.len() as i32),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

pub(crate) async fn head_object(
    engine: &Engine,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let i = req.input;
    let (v, start, end, content_range) = resolve_read(
        engine,
        &i.bucket,
        &i.key,
        i.version_id.as_deref(),
        i.range.as_ref(),
        i.part_number,
        (
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        ),
    )
    .await?;
    let m = &v.manifest;
    let (checksums, checksum_type) = match (&i.checksum_mode, &content_range) {
        (Some(mode), None) if mode.as_str() == ChecksumMode::ENABLED => Checksums::of(m),
        _ => (Checksums::default(), None),
    };
    let tags = m.tags.len();
    let (lock_mode, lock_until, legal_hold) = crate::object_lock::headers(m);
    let mut resp = S3Response::new(HeadObjectOutput {
        object_lock_mode: lock_mode,
        object_lock_retain_until_date: lock_until,
        object_lock_legal_hold_status: legal_hold,
        accept_ranges: Some("bytes".into()),
        content_length: Some((end - start) as i64),
        content_range,
        e_tag: Some(etag(&m.etag)),
        last_modified: Some(timestamp(m.created)),
        version_id: m.version_id.clone(),
        metadata: (!m.meta.is_empty()).then(|| m.meta.clone().into_iter().collect()),
        content_type: i.response_content_type.or_else(|| m.content_type.clone()),
        content_encoding: i
            .response_content_encoding
            .or_else(|| m.content_encoding.clone()),
        content_disposition: i
            .response_content_disposition
            .or_else(|| m.content_disposition.clone()),
        content_language: i
            .response_content_language
            .or_else(|| m.content_language.clone()),
        cache_control: i.response_cache_control.or_else(|| m.cache_control.clone()),
        expires: i
            .response_expires
            .or_else(|| m.expires.as_deref().and_then(parse_http_date)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_type,
        parts_count: m.is_multipart().then_some(m.parts.len() as i32),
        ..Default::default()
    });
    // S3 sends it on HEAD too, though HeadObjectOutput has no field for it.
    if tags > 0 {
        resp.headers
            .insert("x-amz-tagging-count", http::HeaderValue::from(tags));
    }
    Ok(resp)
}

/// Parts GetObjectAttributes lists without `max-parts`, as S3.
const ATTRIBUTE_PARTS_PAGE: usize = 1000;

/// GetObjectAttributes: what HEAD would say, in XML, plus the sizes of a
/// multipart object's parts (per-part checksums are not kept).
pub(crate) async fn get_object_attributes(
    engine: &Engine,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let i = req.input;
    let v = engine
        .object(&i.bucket, &i.key, i.version_id.as_deref())
        .await
        .map_err(to_s3)?;
    if v.is_delete_marker() {
        return Err(delete_marker_error(&v, i.version_id.is_some()));
    }
    // One header, its values separated by commas (s3s hands it over whole).
    let asked: Vec<&str> = i
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(unknown) = asked.iter().find(|a| {
        ![
            ObjectAttributes::CHECKSUM,
            ObjectAttributes::ETAG,
            ObjectAttributes::OBJECT_PARTS,
            ObjectAttributes::OBJECT_SIZE,
            ObjectAttributes::STORAGE_CLASS,
        ]
        .contains(a)
    }) {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid attribute name specified: {unknown}"
        ));
    }
    let wants = |a: &str| asked.contains(&a);
    if asked.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-attributes must name at least one attribute"
        ));
    }
    let m = &v.manifest;
    let checksum = wants(ObjectAttributes::CHECKSUM)
        .then(|| {
            let (c, checksum_type) = Checksums::of(m);
            (!m.checksums.is_empty()).then_some(Checksum {
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_crc64nvme: c.crc64nvme,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
                checksum_type,
            })
        })
        .flatten();
    let object_parts = if wants(ObjectAttributes::OBJECT_PARTS) && m.is_multipart() {
        let max = match i.max_parts {
            None => ATTRIBUTE_PARTS_PAGE,
            Some(n) => usize::try_from(n).map_err(|_| {
                s3_error!(InvalidArgument, "max-parts must be a non-negative integer")
            })?,
        };
        let after = match i.part_number_marker {
            None => 0,
            Some(n) => usize::try_from(n).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "part-number-marker must be a non-negative integer"
                )
            })?,
        };
        let page: Vec<ObjectPart> = m
            .parts
            .iter()
            .enumerate()
            .skip(after)
            .take(max)
            .map(|(n, size)| ObjectPart {
                part_number: Some(n as i32 + 1),
                size: Some(*size as i64),
                ..Default::default()
            })
            .collect();
        let last = after + page.len();
        let truncated = last < m.parts.len();
        Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: truncated.then_some(last as i32),
            part_number_marker: Some(after as i32),
            parts: Some(page),
            total_parts_count: Some(m.parts.len() as i32),
        })
    } else {
        None
    };
    Ok(S3Response::new(GetObjectAttributesOutput {
        checksum,
        delete_marker: None,
        e_tag: wants(ObjectAttributes::ETAG).then(|| etag(&m.etag)),
        last_modified: Some(timestamp(m.created)),
        object_parts,
        object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(m.size as i64),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        version_id: m.version_id.clone(),
        ..Default::default()
    }))
}
