//! The checks every S3 request passes after s3s verified its signature and
//! before any operation runs or any body is read: SigV4 only, a signature
//! for this region covering every header that matters, XML bodies within
//! their bound, and the bucket (and a copy's source bucket) answering to
//! whoever asks — a key, or no one — by [`crate::authz`].

use std::sync::{Arc, Mutex};

use percent_encoding::percent_decode_str;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use billet_engine::AccessKey;
use s3s::S3Request;
use s3s::dto::DeleteObjectsInput;

use crate::authz::{Authorizer, Decision, action};
use crate::policy::Context;
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

/// What is wrong with a presigned URL's `X-Amz-Expires`, if anything: it
/// must be a whole number of seconds from 1 to 7 days. Checked before the
/// signature, so that a malformed lifetime is told apart (400
/// AuthorizationQueryParametersError) from an expired URL (403
/// AccessDenied, from the signature check).
pub fn presigned_expiry_error(query: Option<&str>) -> Option<&'static str> {
    let query = query?;
    let mut presigned = false;
    let mut expires = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "X-Amz-Algorithm" => presigned = true,
            "X-Amz-Expires" => expires = Some(v),
            _ => {}
        }
    }
    if !presigned {
        return None;
    }
    match expires.map(|v| v.parse::<u64>()) {
        None => Some("X-Amz-Expires must be given with a presigned URL"),
        Some(Ok(secs)) if (1..=MAX_PRESIGN_SECS).contains(&secs) => None,
        Some(Ok(0)) => Some("X-Amz-Expires must be non-negative and not zero"),
        Some(Ok(_)) => Some(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
        ),
        Some(Err(_)) => Some("X-Amz-Expires should be a number"),
    }
}

/// Operations whose body streams into the log instead of being buffered.
const STREAMING_OPS: [&str; 2] = ["PutObject", "UploadPart"];

/// Operations not tied to one existing bucket: ListBuckets lists what the
/// key may see, CreateBucket answers BucketAlreadyExists.
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

/// SigV2 in any form (header, query, POST policy field) is refused.
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
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        match k {
            "X-Amz-Algorithm" => v4 = true,
            "AWSAccessKeyId" | "Signature" => v2 = true,
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

/// The bucket, key and version (if named) of `x-amz-copy-source`
/// (`bucket/key[?versionId=v]`, URL-encoded, a leading `/` optional).
/// Access-point ARNs name no bucket here: the operation refuses them.
fn copy_source(cx: &S3AccessContext<'_>) -> Option<(String, String, Option<String>)> {
    let raw = cx.headers().get("x-amz-copy-source")?.to_str().ok()?;
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let path = decoded.trim_start_matches('/');
    if path.starts_with("arn:") {
        return None;
    }
    let (bucket, key) = path.split_once('/')?;
    (!bucket.is_empty()).then(|| {
        (
            bucket.to_string(),
            key.to_string(),
            query
                .split('&')
                .find_map(|p| p.strip_prefix("versionId="))
                .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned()),
        )
    })
}

/// The client's address, put in each request's extensions by the HTTP
/// layer (`aws:SourceIp`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The key that signed the request (`None`: anonymous), for the
/// operations after the access check.
#[derive(Debug, Clone)]
pub struct RequestKey(pub Option<Arc<AccessKey>>);

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The condition keys of a request, for bucket policies.
fn context(cx: &mut S3AccessContext<'_>, key: Option<&AccessKey>, op: &str) -> Context {
    let mut c = Context::new();
    let now = time::OffsetDateTime::now_utc();
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        c.set("aws:CurrentTime", t);
    }
    c.set("aws:EpochTime", now.unix_timestamp().to_string());
    // billet serves plain HTTP; TLS, where there is any, ends before it.
    c.set("aws:SecureTransport", "false");
    if let Some(ClientAddr(addr)) = cx.extensions_mut().get::<ClientAddr>() {
        c.set("aws:SourceIp", addr.ip().to_canonical().to_string());
    }
    match key {
        Some(k) => {
            c.set("aws:PrincipalType", "User");
            c.set("aws:username", k.id.clone());
            c.set("aws:userid", k.id.clone());
            c.set("s3:signatureversion", "AWS4-HMAC-SHA256");
            let presigned = cx
                .uri()
                .query()
                .is_some_and(|q| q.contains("X-Amz-Signature="));
            c.set(
                "s3:authType",
                if presigned {
                    "REST-QUERY-STRING"
                } else {
                    "REST-HEADER"
                },
            );
        }
        None => {
            c.set("aws:PrincipalType", "Anonymous");
        }
    }
    let headers = cx.headers();
    for (header, name) in [
        ("user-agent", "aws:UserAgent"),
        ("referer", "aws:Referer"),
        ("x-amz-acl", "s3:x-amz-acl"),
        ("x-amz-content-sha256", "s3:x-amz-content-sha256"),
        ("x-amz-copy-source", "s3:x-amz-copy-source"),
        ("x-amz-metadata-directive", "s3:x-amz-metadata-directive"),
        ("x-amz-storage-class", "s3:x-amz-storage-class"),
    ] {
        if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
            c.set(name, v);
        }
    }
    if let Some(v) = query_param(cx.uri(), "versionId") {
        c.set("s3:VersionId", v);
    }
    if LIST_OPS.contains(&op) {
        for (q, name) in [
            ("prefix", "s3:prefix"),
            ("delimiter", "s3:delimiter"),
            ("max-keys", "s3:max-keys"),
        ] {
            if let Some(v) = query_param(cx.uri(), q) {
                c.set(name, v);
            }
        }
    }
    c
}

/// Operations that may carry an object's canned ACL (`x-amz-acl`).
const ACL_WRITING_OPS: [&str; 4] = [
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "PutObjectAcl",
];

/// Operations that may bypass a GOVERNANCE retention, when allowed to.
const BYPASS_OPS: [&str; 2] = ["DeleteObject", "PutObjectRetention"];

fn asks_bypass(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// Listings, whose query sets `s3:prefix`, `s3:delimiter`, `s3:max-keys`.
const LIST_OPS: [&str; 3] = ["ListObjects", "ListObjectsV2", "ListObjectVersions"];

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

impl Access {
    /// The signing key, looked up (`None`: an anonymous request).
    async fn request_key(&self, access_key: Option<&str>) -> S3Result<Option<Arc<AccessKey>>> {
        let Some(id) = access_key else {
            return Ok(None);
        };
        let key = self.authz.key(id).await?.ok_or_else(|| {
            s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )
        })?;
        Ok(Some(key))
    }

    /// The one authorization decision for this request: the bucket (and
    /// object) it names, and a copy's source.
    async fn authorize(&self, cx: &mut S3AccessContext<'_>, op: &str) -> S3Result<()> {
        let key = self
            .request_key(cx.credentials().map(|c| c.access_key.as_str()))
            .await?;
        cx.extensions_mut().insert(RequestKey(key.clone()));
        if UNSCOPED_OPS.contains(&op) {
            // Listing one's buckets and creating one need a key; a key
            // limited to its grants creates none.
            return match &key {
                None => Err(denied()),
                Some(k) if op == "CreateBucket" && k.limited => Err(denied()),
                Some(_) => Ok(()),
            };
        }
        let (bucket, object) = match cx.s3_path() {
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
            S3Path::Root => return Ok(()),
        };
        let version = query_param(cx.uri(), "versionId");
        // Condition keys are for policies: built only for a bucket (or a
        // copy's source) that has one.
        let copy = COPY_OPS.contains(&op).then(|| copy_source(cx)).flatten();
        let mut with_policy = self.authz.has_policy(&bucket).await?;
        if let Some((src, _, _)) = &copy {
            with_policy |= self.authz.has_policy(src).await?;
        }
        let conditions = if with_policy {
            context(cx, key.as_deref(), op)
        } else {
            Context::new()
        };
        let act = action(op, version.is_some());
        let decision = self
            .authz
            .authorize(
                key.as_deref(),
                &bucket,
                object.as_deref().map(|k| (k, version.as_deref())),
                &act,
                &conditions,
            )
            .await?;
        if decision == Decision::Deny {
            return Err(self.refusal(&bucket).await?);
        }
        if BYPASS_OPS.contains(&op)
            && asks_bypass(cx.headers())
            && let Some(object) = &object
        {
            let act = action("BypassGovernanceRetention", false);
            let decision = self
                .authz
                .authorize(
                    key.as_deref(),
                    &bucket,
                    Some((object, version.as_deref())),
                    &act,
                    &conditions,
                )
                .await?;
            if decision == Decision::Deny {
                return Err(denied());
            }
        }
        if ACL_WRITING_OPS.contains(&op)
            && let Some(access) = self.authz.bucket(&bucket).await?
        {
            crate::bucket_config::object_acl_of_headers(&access, cx.headers())?;
        }
        if let Some((src_bucket, src_key, src_version)) = copy {
            let act = action("GetObject", src_version.is_some());
            let decision = self
                .authz
                .authorize(
                    key.as_deref(),
                    &src_bucket,
                    Some((&src_key, src_version.as_deref())),
                    &act,
                    &conditions,
                )
                .await?;
            if decision == Decision::Deny {
                return Err(self.refusal(&src_bucket).await?);
            }
        }
        Ok(())
    }

    /// Why a request on `bucket` is refused: as S3 does, a bucket that does
    /// not exist is said not to, whoever asks (so a client can tell a typo
    /// from a permission); an existing one is AccessDenied.
    async fn refusal(&self, bucket: &str) -> S3Result<S3Error> {
        Ok(match self.authz.bucket(bucket).await? {
            None => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
            Some(_) => denied(),
        })
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
        // The HTTP layer takes form uploads before s3s reads them; should
        // one get here anyway, its signature (possibly SigV2, which s3s
        // accepts in POST policies) is not trusted.
        if op == "PostObject" {
            return Err(s3_error!(
                NotImplemented,
                "POST Object (browser form uploads) is not supported"
            ));
        }
        check_signature_version(cx)?;
        // An unsigned request is anonymous: allowed only where a policy or
        // ACL says so.
        if cx.credentials().is_some() {
            check_scope(cx, &self.region)?;
        }
        check_buffered_body(cx, op, self.xml_max_bytes)?;
        self.authorize(cx, op).await
    }

    /// A multi-object delete asks for `s3:DeleteObject` (or
    /// `DeleteObjectVersion`) on each key it names; one refused key refuses
    /// the request (nothing is deleted).
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let key = req.extensions.get::<RequestKey>().and_then(|k| k.0.clone());
        let mut conditions = Context::new();
        conditions.set(
            "aws:PrincipalType",
            if key.is_some() { "User" } else { "Anonymous" },
        );
        if let Some(ClientAddr(addr)) = req.extensions.get::<ClientAddr>() {
            conditions.set("aws:SourceIp", addr.ip().to_canonical().to_string());
        }
        conditions.set("aws:SecureTransport", "false");
        let bucket = req.input.bucket.clone();
        let bypass = req.input.bypass_governance_retention == Some(true);
        for obj in &req.input.delete.objects {
            let mut acts = vec![action("DeleteObject", obj.version_id.is_some())];
            if bypass {
                acts.push(action("BypassGovernanceRetention", false));
            }
            let mut decision = Decision::Allow;
            for act in &acts {
                if decision == Decision::Deny {
                    break;
                }
                decision = self
                    .authz
                    .authorize(
                        key.as_deref(),
                        &bucket,
                        Some((&obj.key, obj.version_id.as_deref())),
                        act,
                        &conditions,
                    )
                    .await?;
            }
            if decision == Decision::Deny {
                return Err(s3_error!(
                    AccessDenied,
                    "Access Denied to delete {}",
                    obj.key
                ));
            }
        }
        Ok(())
    }
}
