//! The checks every S3 request passes after s3s verified its signature and
//! before any operation runs or any body is read: SigV4 only, a signature
//! for this region covering every header that matters, XML bodies within
//! their bound, and the bucket (and a copy's source bucket) answering to
//! the signing key's owner ([`crate::authz`]).

use std::sync::{Arc, Mutex};

use percent_encoding::percent_decode_str;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::authz::{Authorizer, Decision};
use crate::sigv4;

/// The operation a request turned out to be, for metrics and logs; the
/// HTTP layer puts one in each request's extensions.
#[derive(Debug, Clone, Default)]
pub struct OpSlot(pub Arc<Mutex<Option<String>>>);

impl OpSlot {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, op: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(op.to_string());
    }
}

/// Longest presigned URL lifetime AWS accepts (7 days).
const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// Operations whose body streams into the log instead of being buffered.
const STREAMING_OPS: [&str; 2] = ["PutObject", "UploadPart"];

/// Operations not tied to one existing bucket's owner: ListBuckets
/// filters by owner itself, CreateBucket answers BucketAlreadyExists.
const UNSCOPED_OPS: [&str; 2] = ["ListBuckets", "CreateBucket"];

/// Operations that read a source object named by `x-amz-copy-source`.
const COPY_OPS: [&str; 2] = ["CopyObject", "UploadPartCopy"];

#[derive(Debug, Clone)]
pub struct Access {
    pub(crate) authz: Authorizer,
    /// The region signatures must be scoped to.
    pub(crate) region: String,
    /// Largest XML body s3s may buffer (its `xml_max_body_size`).
    pub(crate) xml_max_bytes: u64,
}

fn sigv2_refused() -> S3Error {
    s3_error!(
        AccessDenied,
        "Signature Version 2 is not supported; use SigV4"
    )
}

/// SigV2 in any form (header, query, POST policy field) is refused, and a
/// presigned URL may live at most 7 days.
fn check_signature_version(cx: &S3AccessContext<'_>) -> S3Result<()> {
    if let Some(auth) = cx.headers().get("authorization")
        && auth.as_bytes().starts_with(b"AWS ")
    {
        return Err(sigv2_refused());
    }
    let query = cx.uri().query().unwrap_or("");
    let mut v4 = false;
    let mut v2 = false;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "X-Amz-Algorithm" => v4 = true,
            "AWSAccessKeyId" | "Signature" => v2 = true,
            "X-Amz-Expires" => match v.parse::<u64>() {
                Ok(secs) if secs <= MAX_PRESIGN_SECS => {}
                _ => {
                    return Err(s3_error!(
                        AuthorizationQueryParametersError,
                        "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"
                    ));
                }
            },
            _ => {}
        }
    }
    if v2 && !v4 {
        return Err(sigv2_refused());
    }
    Ok(())
}

/// The signature is scoped to this region and to S3, and covers every
/// header that changes what the request does.
fn check_scope(cx: &S3AccessContext<'_>, region: &str) -> S3Result<()> {
    let signed = sigv4::signed(cx.headers(), cx.uri().query())
        .ok_or_else(|| s3_error!(AccessDenied, "A SigV4 signature is required"))?;
    let code = if signed.presigned {
        S3ErrorCode::AuthorizationQueryParametersError
    } else {
        S3ErrorCode::AuthorizationHeaderMalformed
    };
    if signed.region != region {
        return Err(S3Error::with_message(
            code,
            format!(
                "The authorization is scoped to region '{}'; expecting '{region}'",
                signed.region
            ),
        ));
    }
    if signed.service != "s3" {
        return Err(S3Error::with_message(
            code,
            format!(
                "The credential is scoped to service '{}'; expecting 's3'",
                signed.service
            ),
        ));
    }
    let unsigned = sigv4::unsigned_headers(cx.headers(), &signed);
    if !unsigned.is_empty() {
        return Err(s3_error!(
            AccessDenied,
            "There were headers present in the request which were not signed: {}",
            unsigned.join(", ")
        ));
    }
    Ok(())
}

fn header_u64(cx: &S3AccessContext<'_>, name: &str) -> Option<u64> {
    cx.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// An operation whose body s3s reads whole must say how long it is, and
/// stay within the bound, before a byte of it is read.
fn check_buffered_body(cx: &S3AccessContext<'_>, op: &str, max: u64) -> S3Result<()> {
    if STREAMING_OPS.contains(&op) {
        return Ok(());
    }
    let declared =
        header_u64(cx, "x-amz-decoded-content-length").or_else(|| header_u64(cx, "content-length"));
    match declared {
        Some(n) if n > max => Err(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big: at most {max} bytes of XML are accepted"
        )),
        Some(_) => Ok(()),
        None if cx.headers().contains_key(http::header::TRANSFER_ENCODING) => Err(s3_error!(
            MissingContentLength,
            "You must provide the Content-Length HTTP header."
        )),
        None => Ok(()),
    }
}

/// The bucket named by `x-amz-copy-source` (`bucket/key`, URL-encoded, a
/// leading `/` optional). Access-point ARNs name no bucket here: the
/// operation refuses them.
fn copy_source_bucket(cx: &S3AccessContext<'_>) -> Option<String> {
    let raw = cx.headers().get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    let path = decoded.trim_start_matches('/');
    if path.starts_with("arn:") {
        return None;
    }
    let bucket = path.split('/').next()?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

impl Access {
    async fn check_owner(&self, cx: &S3AccessContext<'_>, op: &str) -> S3Result<()> {
        let key_id = match cx.credentials() {
            Some(c) => c.access_key.clone(),
            None => return Err(s3_error!(AccessDenied, "Signature is required")),
        };
        let key = self.authz.key(&key_id).await?.ok_or_else(|| {
            s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )
        })?;
        let mut buckets = Vec::with_capacity(2);
        if !UNSCOPED_OPS.contains(&op) {
            match cx.s3_path() {
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => {
                    buckets.push(bucket.to_string());
                }
                S3Path::Root => {}
            }
        }
        if COPY_OPS.contains(&op)
            && let Some(source) = copy_source_bucket(cx)
        {
            buckets.push(source);
        }
        for bucket in buckets {
            if self.authz.check_bucket(&key.owner, &bucket).await? == Decision::Deny {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_string();
        let op = op.as_str();
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>() {
            slot.set(op);
        }
        // The HTTP layer refuses form uploads before s3s reads them; should
        // one get here anyway, its signature (possibly SigV2, which s3s
        // accepts in POST policies) is not trusted.
        if op == "PostObject" {
            return Err(s3_error!(
                NotImplemented,
                "POST Object (browser form uploads) is not supported"
            ));
        }
        check_signature_version(cx)?;
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        check_scope(cx, &self.region)?;
        check_buffered_body(cx, op, self.xml_max_bytes)?;
        self.check_owner(cx, op).await
    }
}
