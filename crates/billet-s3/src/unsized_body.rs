//! Object PUTs whose length is not known up front (`Transfer-Encoding:
//! chunked`, no `Content-Length`). S3 streams them; s3s refuses them
//! (MissingContentLength) because it wants a length to check a payload
//! hash against. The HTTP layer therefore sets such a body aside before
//! s3s sees the request and hands s3s an empty one; s3s checks the
//! signature as for any request, and the operation, which runs only once
//! it has, streams the body from here and checks a signed payload hash
//! itself (the staged body's SHA-256 is computed anyway).

use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Request};
use s3s::Body;
use s3s::dto::StreamingBlob;

/// A body the HTTP layer held back, in the request's extensions.
#[derive(Clone)]
pub struct UnsizedBody(Arc<Mutex<Option<Body>>>);

impl std::fmt::Debug for UnsizedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsizedBody")
    }
}

/// Query parameters an object PUT with a body may carry (PutObject and
/// UploadPart; `x-id` is what some SDKs add). Any other names a
/// subresource whose body is XML and must say how long it is.
const BODY_PUT_PARAMS: [&str; 3] = ["partNumber", "uploadId", "x-id"];

fn unsized_put(method: &Method, query: Option<&str>, headers: &HeaderMap) -> bool {
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let payload = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // aws-chunked bodies carry their decoded length; presigned URLs (no
    // Authorization header) s3s already streams.
    let framed_by_s3s = payload.starts_with("STREAMING-") || !headers.contains_key("authorization");
    method == Method::PUT
        && chunked
        && !headers.contains_key(http::header::CONTENT_LENGTH)
        && !framed_by_s3s
        && query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .all(|p| {
                let name = p.split_once('=').map_or(p, |(k, _)| k);
                BODY_PUT_PARAMS.contains(&name)
            })
}

/// Sets the body of an unsized object PUT aside (see the module docs);
/// other requests are left as they are.
pub fn set_aside(req: &mut Request<Body>) {
    if unsized_put(req.method(), req.uri().query(), req.headers()) {
        let body = std::mem::take(req.body_mut());
        req.extensions_mut()
            .insert(UnsizedBody(Arc::new(Mutex::new(Some(body)))));
    }
}

/// The body set aside for this request, if one was.
pub(crate) fn take(extensions: &http::Extensions) -> Option<StreamingBlob> {
    let held = extensions.get::<UnsizedBody>()?;
    let body = held.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    Some(StreamingBlob::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn only_signed_object_puts_without_a_length_are_set_aside() {
        let base = [
            ("authorization", "AWS4-HMAC-SHA256 ..."),
            ("transfer-encoding", "chunked"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        let put = Method::PUT;
        assert!(unsized_put(&put, None, &headers(&base)));
        assert!(unsized_put(
            &put,
            Some("partNumber=2&uploadId=u"),
            &headers(&base)
        ));
        assert!(unsized_put(&put, Some("x-id=PutObject"), &headers(&base)));
        // A subresource's XML body, a sized body, another method.
        assert!(!unsized_put(&put, Some("tagging"), &headers(&base)));
        assert!(!unsized_put(&put, Some("policy="), &headers(&base)));
        let mut sized = base.to_vec();
        sized.push(("content-length", "5"));
        assert!(!unsized_put(&put, None, &headers(&sized)));
        assert!(!unsized_put(&Method::POST, None, &headers(&base)));
        // aws-chunked and presigned requests are framed by s3s itself.
        let mut aws_chunked = base.to_vec();
        aws_chunked[2] = ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
        assert!(!unsized_put(&put, None, &headers(&aws_chunked)));
        assert!(!unsized_put(&put, None, &headers(&base[1..])));
    }
}
