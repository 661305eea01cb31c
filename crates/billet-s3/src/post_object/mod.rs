//! POST Object: browser form uploads. The form's fields are read (bounded,
//! [`form`]); the policy's SigV4 signature, expiry and conditions, and the
//! access decision, are checked before a byte of the file is read; the
//! file then streams into the log like a PUT body, never buffered, with
//! the policy's `content-length-range` enforced as it arrives.

mod form;
mod signature;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use billet_engine::{AccessKey, Engine, ObjectMeta};
use billet_unixfs::ChecksumAlgorithm;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{Body, S3Error, S3Result, s3_error};

use crate::authz::{Authorizer, Decision, action};
use crate::error::to_s3;
use crate::policy::Context;
use crate::util::url_encode;

/// A query value: everything but unreserved characters escaped.
fn query_value(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// What a form upload needs from the server.
#[derive(Debug)]
pub struct PostTarget<'a> {
    pub authz: &'a Authorizer,
    pub engine: &'a Engine,
    pub region: &'a str,
    pub bucket: &'a str,
    pub client: Option<SocketAddr>,
}

/// Fields a policy need not name.
fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "file" | "policy" | "submit")
        || name.starts_with("x-ignore-")
}

fn policy_failed(what: String) -> S3Error {
    s3_error!(AccessDenied, "Invalid according to Policy: {what}")
}

/// The signing key, after the form's SigV4 signature checked out (`None`:
/// an anonymous form, with neither policy nor signature).
async fn authenticate(
    t: &PostTarget<'_>,
    f: &form::Form,
) -> S3Result<(Option<Arc<AccessKey>>, Option<PostPolicy>)> {
    if f.get("awsaccesskeyid").is_some() || f.get("signature").is_some() {
        return Err(s3_error!(
            AccessDenied,
            "Signature Version 2 is not supported; use SigV4"
        ));
    }
    let (policy_b64, sig) = match (f.get("policy"), f.get("x-amz-signature")) {
        (None, None) => return Ok((None, None)),
        (Some(p), Some(s)) => (p, s),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "A POST with a policy must be signed (x-amz-signature), and a signed one needs its policy"
            ));
        }
    };
    if f.get("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-algorithm must be AWS4-HMAC-SHA256"
        ));
    }
    let credential = f
        .get("x-amz-credential")
        .and_then(signature::parse_credential)
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "x-amz-credential must be KEY/YYYYMMDD/REGION/s3/aws4_request"
            )
        })?;
    if credential.region != t.region || credential.service != "s3" {
        return Err(s3_error!(
            AuthorizationQueryParametersError,
            "The credential is scoped to {}/{}; expecting {}/s3",
            credential.region,
            credential.service,
            t.region
        ));
    }
    let key = t.authz.key(credential.key).await?.ok_or_else(|| {
        s3_error!(
            InvalidAccessKeyId,
            "The AWS access key Id you provided does not exist in our records."
        )
    })?;
    if !signature::verify(&key.secret, credential.date, t.region, policy_b64, sig) {
        return Err(s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided."
        ));
    }
    let policy = PostPolicy::from_base64(policy_b64)
        .map_err(|e| s3_error!(InvalidPolicyDocument, "Invalid Policy: {e}"))?;
    let expires: time::OffsetDateTime = policy.expiration.clone().into();
    if time::OffsetDateTime::now_utc() >= expires {
        return Err(policy_failed("Policy expired.".into()));
    }
    Ok((Some(key), Some(policy)))
}

/// Every condition but the length (checked as the file arrives), and
/// every field named by one. Returns the length range.
fn check_conditions(policy: &PostPolicy, f: &form::Form, bucket: &str) -> S3Result<(u64, u64)> {
    let value = |field: &str| -> Option<&str> {
        if field == "bucket" {
            Some(bucket)
        } else {
            f.get(field)
        }
    };
    let mut range = (0, u64::MAX);
    for c in &policy.conditions {
        match c {
            PostPolicyCondition::Eq { field, value: want } => {
                if value(field) != Some(want.as_str()) {
                    return Err(policy_failed(format!(
                        "Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                if !value(field).unwrap_or("").starts_with(prefix.as_str()) {
                    return Err(policy_failed(format!(
                        "Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => {
                range = (range.0.max(*min), range.1.min(*max));
            }
        }
    }
    let named = |name: &str| {
        policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. }
            | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        })
    };
    if let Some((name, _)) = f.fields.iter().find(|(n, _)| !exempt(n) && !named(n)) {
        return Err(policy_failed(format!("Extra input fields: {name}")));
    }
    Ok(range)
}

/// Tags of the `tagging` field (an XML `Tagging` document).
fn tags(xml: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(xml) = xml else {
        return Ok(BTreeMap::new());
    };
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    let tagging = <s3s::dto::Tagging as s3s::xml::Deserialize>::deserialize(&mut d)
        .map_err(|_| s3_error!(MalformedXML, "The tagging field is not a Tagging document"))?;
    crate::tagging::tag_map(&tagging)
}

fn header(h: &mut HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Handles a form upload to `t.bucket`.
pub async fn handle<S, E>(
    t: PostTarget<'_>,
    headers: &HeaderMap,
    body: S,
) -> S3Result<Response<Body>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form = form::read(content_type, body).await?;
    let (signer, policy) = authenticate(&t, &form).await?;
    let template = form.get("key").ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
        )
    })?;
    let range = match &policy {
        Some(p) => check_conditions(p, &form, t.bucket)?,
        None => (0, u64::MAX),
    };
    let key = template.replace("${filename}", form.filename.as_deref().unwrap_or(""));
    billet_block::validate_key(key.as_bytes())
        .map_err(|e| s3_error!(InvalidArgument, "key: {e}"))?;

    // The same decision as a PUT of this key.
    let mut cx = Context::new();
    cx.set(
        "aws:PrincipalType",
        if signer.is_some() {
            "User"
        } else {
            "Anonymous"
        },
    );
    cx.set("aws:SecureTransport", "false");
    cx.set("s3:authType", "POST");
    if let Some(addr) = t.client {
        cx.set("aws:SourceIp", addr.ip().to_canonical().to_string());
    }
    if let Some(acl) = form.get("acl") {
        cx.set("s3:x-amz-acl", acl);
    }
    let decision = t
        .authz
        .authorize(
            signer.as_deref(),
            t.bucket,
            Some((&key, None)),
            &action("PostObject", false),
            &cx,
        )
        .await?;
    if decision == Decision::Deny {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    let acl = crate::bucket_config::object_acl(form.get("acl"), [None; 5])?.unwrap_or_default();
    if let Some(access) = t.authz.bucket(t.bucket).await? {
        crate::bucket_config::check_object_acl(&access, &acl)?;
    }
    let tags = tags(form.get("tagging"))?;
    let status = match form.get("success_action_status") {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    };
    let redirect = form
        .get("success_action_redirect")
        .or(form.get("redirect"))
        .map(str::to_string);
    let meta = ObjectMeta {
        content_type: form.get("content-type").map(str::to_string),
        content_encoding: form.get("content-encoding").map(str::to_string),
        content_disposition: form.get("content-disposition").map(str::to_string),
        content_language: form.get("content-language").map(str::to_string),
        cache_control: form.get("cache-control").map(str::to_string),
        expires: form.get("expires").map(str::to_string),
        user: form
            .fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("x-amz-meta-")?.to_string(), v.clone())))
            .collect(),
        tags,
        acl: acl.to_manifest(),
        // Form uploads name no lock: the bucket's default applies.
        ..ObjectMeta::default()
    };

    // Only now is the file read: streamed into the log, cut off past the
    // policy's largest length.
    let bucket = t.engine.bucket(t.bucket).await.map_err(to_s3)?;
    let too_large = Arc::new(AtomicBool::new(false));
    let mut seen = 0u64;
    let flag = too_large.clone();
    let max = range.1;
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let file = form.file.map(move |chunk| -> Result<Bytes, BoxError> {
        let chunk = chunk.map_err(|e| -> BoxError { Box::new(e) })?;
        seen += chunk.len() as u64;
        if seen > max {
            flag.store(true, Ordering::SeqCst);
            return Err("the file is larger than the policy allows".into());
        }
        Ok(chunk)
    });
    let staged = match t
        .engine
        .stage_body(&bucket, file, &[ChecksumAlgorithm::Crc64Nvme])
        .await
    {
        Ok(s) => s,
        Err(_) if too_large.load(Ordering::SeqCst) => {
            return Err(s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed size ({max} bytes by the policy)"
            ));
        }
        Err(e) => return Err(to_s3(e)),
    };
    if staged.ingested.size() < range.0 {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size ({} bytes by the policy)",
            range.0
        ));
    }
    let out = t
        .engine
        .put(t.bucket, &key, staged, meta, None)
        .await
        .map_err(to_s3)?;
    let etag = format!("\"{}\"", out.manifest.etag);
    let location = format!("/{}/{}", t.bucket, url_encode(&key));
    let mut resp = match redirect {
        Some(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let target = format!(
                "{url}{sep}bucket={}&key={}&etag={}",
                query_value(t.bucket),
                query_value(&key),
                query_value(&etag)
            );
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            header(r.headers_mut(), "location", &target);
            r
        }
        None if status == StatusCode::CREATED => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml_escape(&location),
                xml_escape(t.bucket),
                xml_escape(&key),
                xml_escape(&etag)
            );
            let mut r = Response::new(Body::from(xml));
            *r.status_mut() = status;
            header(r.headers_mut(), "content-type", "application/xml");
            r
        }
        None => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
    };
    header(resp.headers_mut(), "etag", &etag);
    if !resp.headers().contains_key(http::header::LOCATION) {
        header(resp.headers_mut(), "location", &location);
    }
    if let Some(v) = &out.version_id {
        header(resp.headers_mut(), "x-amz-version-id", v);
    }
    Ok(resp)
}
