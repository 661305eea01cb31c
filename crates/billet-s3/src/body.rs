//! Receiving a request body (PUT and UploadPart): it streams into the log
//! while every checksum the request names is computed, then is checked
//! against the request's claims.

use billet_engine::{Engine, StagedBody};
use billet_unixfs::{ChecksumAlgorithm, ChecksumValue};
use s3s::dto::StreamingBlob;
use s3s::{S3Result, s3_error};

use crate::error::to_s3;
use crate::util::{algorithm, checksum_header, content_md5};

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
    pub(crate) fn algorithms(&self, headers: &http::HeaderMap) -> S3Result<Vec<ChecksumAlgorithm>> {
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

/// What a PUT or UploadPart request brings besides its input fields.
pub(crate) struct Incoming<'a> {
    pub body: Option<StreamingBlob>,
    pub headers: &'a http::HeaderMap,
    pub extensions: &'a http::Extensions,
    pub trailing: Option<s3s::TrailingHeaders>,
}

/// Streams a request body into the log, computing every checksum the
/// request names (and `also`), then checks it against the claims: length
/// (IncompleteBody), Content-MD5 and checksums (BadDigest). A failed check
/// leaves the staged blocks unreferenced.
pub(crate) async fn receive_body(
    engine: &Engine,
    bucket: &billet_engine::BucketState,
    req: Incoming<'_>,
    claims: &BodyClaims,
    also: Option<ChecksumAlgorithm>,
) -> S3Result<StagedBody> {
    let Incoming {
        body,
        headers,
        extensions,
        trailing,
    } = req;
    let mut algos = claims.algorithms(headers)?;
    if let Some(a) = also {
        algos.push(a);
        algos.sort();
        algos.dedup();
    }
    let md5 = claims.content_md5.as_deref().map(content_md5).transpose()?;
    let set_aside = crate::unsized_body::take(extensions);
    let length_unknown = set_aside.is_some();
    let body = set_aside
        .or(body)
        .ok_or_else(|| s3_error!(IncompleteBody, "The request body is missing"))?;
    let staged = engine
        .stage_body(bucket, body, &algos)
        .await
        .map_err(to_s3)?;
    // s3s checked the signature but, without a length, not the payload
    // hash it covers.
    if length_unknown
        && let Some(signed) = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v).ok())
        && signed != staged.ingested.sha256
    {
        return Err(crate::request_body::sha256_mismatch());
    }
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
