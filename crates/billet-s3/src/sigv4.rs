//! What a SigV4 signature covers, read back from a request s3s has already
//! verified: the credential scope (region, service) and the signed header
//! names. s3s checks that the signature matches the headers it lists; the
//! rules here check that it lists every header that changes what the
//! request does, and that it was made for this server's region.

use std::borrow::Cow;

use http::HeaderMap;
use percent_encoding::percent_decode_str;

/// The parts of a verified signature billet checks itself, borrowed from
/// the request where it can be (this runs on every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed<'a> {
    pub region: Cow<'a, str>,
    pub service: Cow<'a, str>,
    /// The signed header names, `;`-separated, as the signature lists them.
    pub headers: Cow<'a, str>,
    /// Query-string (presigned URL) rather than `Authorization` header.
    pub presigned: bool,
}

impl Signed<'_> {
    /// Whether the signature covers the header `name` (lower-case).
    pub fn covers(&self, name: &str) -> bool {
        self.headers
            .split(';')
            .any(|h| h.trim().eq_ignore_ascii_case(name))
    }
}

/// The scope and signed headers of a SigV4 request: from the
/// `Authorization` header, else from the presigned URL's query. `None`
/// when the request carries neither (s3s then saw no SigV4 signature).
pub(crate) fn signed<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Signed<'a>> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION)
        && let Ok(auth) = auth.to_str()
        && let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256")
    {
        let mut credential = None;
        let mut signed = None;
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v.trim()),
                Some(("SignedHeaders", v)) => signed = Some(v.trim()),
                _ => {}
            }
        }
        let (region, service) = scope(credential?)?;
        return Some(Signed {
            region: Cow::Borrowed(region),
            service: Cow::Borrowed(service),
            headers: Cow::Borrowed(signed?),
            presigned: false,
        });
    }
    let mut credential = None;
    let mut signed = None;
    for pair in query?.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || percent_decode_str(v).decode_utf8().ok();
        match k {
            "X-Amz-Credential" => credential = decoded(),
            "X-Amz-SignedHeaders" => signed = decoded(),
            _ => {}
        }
    }
    let credential = credential?;
    let (region, service) = scope(&credential)?;
    Some(Signed {
        region: Cow::Owned(region.to_string()),
        service: Cow::Owned(service.to_string()),
        headers: signed?,
        presigned: true,
    })
}

/// `AKID/20130524/us-east-1/s3/aws4_request` → (region, service). The
/// key id is whatever precedes the last four fields.
fn scope(credential: &str) -> Option<(&str, &str)> {
    let mut fields = credential.rsplitn(5, '/');
    let terminator = fields.next()?;
    let service = fields.next()?;
    let region = fields.next()?;
    let _date = fields.next()?;
    let _key_id = fields.next()?;
    (terminator == "aws4_request").then_some((region, service))
}

/// Whether a header of this (lower-case) name changes what a request does
/// and so must be covered by its signature, as AWS requires: every
/// `x-amz-*` header, `Content-MD5` and `Host`. A presigned URL's
/// `x-amz-content-sha256` is the one exception: S3 presigned requests may
/// carry it unsigned, and it can only make the body check stricter.
fn must_be_signed(name: &str, presigned: bool) -> bool {
    if presigned && name == "x-amz-content-sha256" {
        return false;
    }
    name.starts_with("x-amz-") || name == "content-md5" || name == "host"
}

/// The headers of a request that must be signed but are not, sorted and
/// without repeats; empty when the signature covers everything it must.
pub(crate) fn unsigned_headers(headers: &HeaderMap, signed: &Signed) -> Vec<String> {
    let mut out: Vec<String> = headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| must_be_signed(n, signed.presigned))
        .filter(|n| !signed.covers(n))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abc";

    #[test]
    fn reads_the_header_form() {
        let h = headers(&[("authorization", AUTH)]);
        let s = signed(&h, None).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.service, "s3");
        assert_eq!(s.headers, "host;x-amz-content-sha256;x-amz-date");
        assert!(s.covers("x-amz-date") && !s.covers("x-amz-meta-a"));
        assert!(!s.presigned);
    }

    #[test]
    fn reads_the_presigned_form() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-amz-meta-a&X-Amz-Signature=00";
        let h = HeaderMap::new();
        let s = signed(&h, Some(q)).unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.headers, "host;x-amz-meta-a");
        assert!(s.covers("x-amz-meta-a") && s.covers("host"));
        assert!(s.presigned);
    }

    #[test]
    fn no_signature_and_malformed_scopes_read_as_none() {
        assert_eq!(signed(&HeaderMap::new(), None), None);
        assert_eq!(signed(&HeaderMap::new(), Some("prefix=a")), None);
        let bad = "AWS4-HMAC-SHA256 Credential=AKID/us-east-1/s3, SignedHeaders=host, Signature=a";
        assert_eq!(signed(&headers(&[("authorization", bad)]), None), None);
        let v2 = "AWS AKID:sig";
        assert_eq!(signed(&headers(&[("authorization", v2)]), None), None);
    }

    /// The signed-headers rule, case by case: (request headers, signed
    /// list, presigned, the headers it must reject).
    #[test]
    fn signed_headers_rule() {
        type Case<'a> = (&'a [(&'static str, &'a str)], &'a str, bool, &'a [&'a str]);
        let cases: &[Case] = &[
            // Everything that matters is signed.
            (
                &[
                    ("host", "h"),
                    ("x-amz-date", "d"),
                    ("x-amz-content-sha256", "x"),
                ],
                "host;x-amz-content-sha256;x-amz-date",
                false,
                &[],
            ),
            // An added copy source on a presigned PUT.
            (
                &[("host", "h"), ("x-amz-copy-source", "/b/k")],
                "host",
                true,
                &["x-amz-copy-source"],
            ),
            // Unsigned metadata and tagging, in either form.
            (
                &[
                    ("host", "h"),
                    ("x-amz-meta-a", "1"),
                    ("x-amz-tagging", "a=b"),
                ],
                "host",
                false,
                &["x-amz-meta-a", "x-amz-tagging"],
            ),
            // Content-MD5 and Host count too.
            (
                &[("host", "h"), ("content-md5", "m")],
                "x-amz-date",
                false,
                &["content-md5", "host"],
            ),
            // Other headers need not be signed.
            (
                &[
                    ("host", "h"),
                    ("user-agent", "u"),
                    ("expect", "100-continue"),
                    ("x-amzn-trace-id", "t"),
                ],
                "host",
                false,
                &[],
            ),
            // A presigned URL's payload hash may travel unsigned; a
            // header-signed request's may not.
            (
                &[("host", "h"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
                "host",
                true,
                &[],
            ),
            (
                &[("host", "h"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
                "host",
                false,
                &["x-amz-content-sha256"],
            ),
        ];
        for (hs, list, presigned, want) in cases {
            let s = Signed {
                region: "us-east-1".into(),
                service: "s3".into(),
                headers: Cow::Borrowed(list),
                presigned: *presigned,
            };
            let got = unsigned_headers(&headers(hs), &s);
            assert_eq!(
                got, *want,
                "headers {hs:?} signed {list:?} presigned {presigned}"
            );
        }
    }
}
