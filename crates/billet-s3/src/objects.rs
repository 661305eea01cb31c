//! PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject.

use std::collections::BTreeMap;

use billet_engine::{Condition, Engine, ObjectMeta, StagedBody};
use billet_index::ObjectVersion;
use billet_unixfs::{ChecksumAlgorithm, ChecksumValue};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;
use crate::util::{
    algorithm, check_tags, checksum_header, content_md5, etag, http_date, millis, parse_http_date,
    parse_tagging_header, timestamp,
};

/// Checksum output fields, filled from computed values.
#[derive(Default)]
pub(crate) struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a ChecksumValue>) -> Self {
        let mut c = Checksums::default();
        for v in values {
            let s = Some(v.to_base64());
            match v.algorithm {
                ChecksumAlgorithm::Crc32 => c.crc32 = s,
                ChecksumAlgorithm::Crc32c => c.crc32c = s,
                ChecksumAlgorithm::Crc64Nvme => c.crc64nvme = s,
                ChecksumAlgorithm::Sha1 => c.sha1 = s,
                ChecksumAlgorithm::Sha256 => c.sha256 = s,
            }
        }
        c
    }

    /// The object checksum a manifest records, as S3 shows it on GET,
    /// HEAD, Complete and copies: a COMPOSITE value carries its `-N` part
    /// count (which is what tells SDKs not to check it against the whole
    /// body), and the type always goes with it.
    pub fn of(m: &billet_records::Manifest) -> (Self, Option<ChecksumType>) {
        let composite = m.checksum_type == Some(billet_records::ChecksumType::Composite);
        let mut c = Checksums::default();
        for (name, digest) in &m.checksums {
            let Some(algorithm) = ChecksumAlgorithm::from_s3_name(name) else {
                continue;
            };
            let mut text = ChecksumValue {
                algorithm,
                digest: digest.to_vec(),
            }
            .to_base64();
            if composite {
                text = format!("{text}-{}", m.parts.len().max(1));
            }
            let slot = match algorithm {
                ChecksumAlgorithm::Crc32 => &mut c.crc32,
                ChecksumAlgorithm::Crc32c => &mut c.crc32c,
                ChecksumAlgorithm::Crc64Nvme => &mut c.crc64nvme,
                ChecksumAlgorithm::Sha1 => &mut c.sha1,
                ChecksumAlgorithm::Sha256 => &mut c.sha256,
            };
            *slot = Some(text);
        }
        let kind = m.checksum_type.map(|t| {
            ChecksumType::from_static(match t {
                billet_records::ChecksumType::FullObject => ChecksumType::FULL_OBJECT,
                billet_records::ChecksumType::Composite => ChecksumType::COMPOSITE,
            })
        });
        (c, kind)
    }
}

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
            content_encoding: self.content_encoding,
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
        }
    }
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

/// The algorithms a PUT must compute: every `x-amz-checksum-*` given, the
/// declared algorithm, and any announced in `x-amz-trailer`.
fn requested_checksums(
    input_values: &[(ChecksumAlgorithm, bool)],
    declared: Option<&str>,
    headers: &http::HeaderMap,
) -> S3Result<Vec<ChecksumAlgorithm>> {
    let mut algos: Vec<ChecksumAlgorithm> = input_values
        .iter()
        .filter(|(_, present)| *present)
        .map(|(a, _)| *a)
        .collect();
    if let Some(d) = declared {
        algos.push(algorithm(d)?);
    }
    for sdk in ["x-amz-sdk-checksum-algorithm"] {
        if let Some(v) = headers.get(sdk).and_then(|v| v.to_str().ok()) {
            algos.push(algorithm(v)?);
        }
    }
    if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in t.split(',').map(str::trim) {
            if let Some(a) = ChecksumAlgorithm::ALL
                .into_iter()
                .find(|a| checksum_header(*a) == name.to_ascii_lowercase())
            {
                algos.push(a);
            }
        }
    }
    algos.sort();
    algos.dedup();
    Ok(algos)
}

/// Checks what the client claimed (headers, then trailers) against what
/// was computed.
fn verify_checksums(
    computed: &[ChecksumValue],
    claimed: &[(ChecksumAlgorithm, Option<String>)],
    trailers: Option<&http::HeaderMap>,
) -> S3Result<()> {
    for c in computed {
        let from_header = claimed
            .iter()
            .find(|(a, _)| *a == c.algorithm)
            .and_then(|(_, v)| v.clone());
        let from_trailer = trailers
            .and_then(|t| t.get(checksum_header(c.algorithm)))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(want) = from_header.or(from_trailer)
            && want.trim() != c.to_base64()
        {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                c.algorithm.s3_name()
            ));
        }
    }
    Ok(())
}

/// What a request says about its body: Content-Length, Content-MD5, the
/// `x-amz-checksum-*` values (headers; trailers arrive after the body) and
/// the declared checksum algorithm.
pub(crate) struct BodyClaims {
    pub content_length: Option<i64>,
    pub content_md5: Option<String>,
    pub checksums: [(ChecksumAlgorithm, Option<String>); 5],
    pub declared: Option<String>,
}

impl BodyClaims {
    /// The algorithms to compute while the body streams in.
    fn algorithms(&self, headers: &http::HeaderMap) -> S3Result<Vec<ChecksumAlgorithm>> {
        let present: Vec<(ChecksumAlgorithm, bool)> = self
            .checksums
            .iter()
            .map(|(a, v)| (*a, v.is_some()))
            .collect();
        requested_checksums(&present, self.declared.as_deref(), headers)
    }

    /// Malformed claims are refused before any byte is read.
    pub(crate) fn check_headers(&self, headers: &http::HeaderMap) -> S3Result<()> {
        self.algorithms(headers)?;
        self.content_md5.as_deref().map(content_md5).transpose()?;
        Ok(())
    }
}

/// Streams a request body into the log, computing every checksum the
/// request names (and `also`), then checks it against the claims: length
/// (IncompleteBody), Content-MD5 and checksums (BadDigest). A failed check
/// leaves the staged blocks unreferenced.
pub(crate) async fn receive_body(
    engine: &Engine,
    bucket: &billet_index::BucketState,
    body: Option<StreamingBlob>,
    claims: &BodyClaims,
    headers: &http::HeaderMap,
    trailing: Option<s3s::TrailingHeaders>,
    also: Option<ChecksumAlgorithm>,
) -> S3Result<StagedBody> {
    let mut algos = claims.algorithms(headers)?;
    if let Some(a) = also {
        algos.push(a);
        algos.sort();
        algos.dedup();
    }
    let md5 = claims.content_md5.as_deref().map(content_md5).transpose()?;
    let body = body.ok_or_else(|| s3_error!(IncompleteBody, "The request body is missing"))?;
    let staged = engine
        .stage_body(bucket, body, &algos)
        .await
        .map_err(to_s3)?;
    if let Some(len) = claims.content_length
        && staged.ingested.size() != len as u64
    {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ));
    }
    if let Some(md5) = md5
        && md5 != staged.ingested.md5
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    let trailers = trailing.and_then(|t| t.take());
    verify_checksums(
        &staged.ingested.checksums,
        &claims.checksums,
        trailers.as_ref(),
    )?;
    Ok(staged)
}

pub(crate) async fn put_object(
    engine: &Engine,
    req: S3Request<PutObjectInput>,
    max_put: u64,
) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request {
        input,
        headers,
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
    // As in S3, every object gets a checksum: CRC64NVME when the client
    // asked for none.
    let default = claims
        .algorithms(&headers)?
        .is_empty()
        .then_some(ChecksumAlgorithm::Crc64Nvme);
    let staged = receive_body(
        engine,
        &bucket,
        input.body,
        &claims,
        &headers,
        trailing_headers,
        default,
    )
    .await?;
    let meta = SystemHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires,
    }
    .into_meta(input.metadata, tags);
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

fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
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
                .ok_or_else(|| {
                    let mut e = S3Error::with_message(
                        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                        "The requested partnumber is not satisfiable",
                    );
                    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
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
    let body = engine.read_body(&v.manifest, start, end).map_err(to_s3)?;
    let m = &v.manifest;
    // A checksum describes the whole object, so ranges get none.
    let (checksums, checksum_type) = match (&i.checksum_mode, &content_range) {
        (Some(mode), None) if mode.as_str() == ChecksumMode::ENABLED => Checksums::of(m),
        _ => (Checksums::default(), None),
    };
    let out = GetObjectOutput {
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
    Ok(S3Response::new(HeadObjectOutput {
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
    }))
}

pub(crate) async fn delete_object(
    engine: &Engine,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    if let Some(cond) = &i.if_match {
        let current = engine.object(&i.bucket, &i.key, None).await;
        let ok = match current {
            Ok(v) => !v.is_delete_marker() && etag_matches(cond, v.etag()),
            Err(_) => false,
        };
        if !ok {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    }
    let out = engine
        .delete(&i.bucket, &i.key, i.version_id.as_deref())
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: out.delete_marker.then_some(true),
        version_id: out.version_id,
        ..Default::default()
    }))
}

/// At most this many keys per DeleteObjects request, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

pub(crate) async fn delete_objects(
    engine: &Engine,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let objects = i.delete.objects;
    if objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The request may delete at most 1000 keys"
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    // Submitted together, the deletes land in one commit.
    let results = futures_util::future::join_all(
        objects
            .iter()
            .map(|o| engine.delete(&i.bucket, &o.key, o.version_id.as_deref())),
    )
    .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (o, r) in objects.into_iter().zip(results) {
        match r {
            Ok(out) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(o.key),
                        version_id: o.version_id,
                        delete_marker: out.delete_marker.then_some(true),
                        delete_marker_version_id: if out.delete_marker {
                            out.version_id
                        } else {
                            None
                        },
                    });
                }
            }
            Err(e) => {
                let e = to_s3(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(o.key),
                    message: e.message().map(str::to_string),
                    version_id: o.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

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
