//! Conversions between S3 wire values and billet's.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use billet_unixfs::ChecksumAlgorithm;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::{ETag, Timestamp, TimestampFormat};
use s3s::{S3Result, s3_error};

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

pub(crate) fn millis(ts: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = ts.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

pub(crate) fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

/// Bytes not escaped in `encoding-type=url` output: unreserved and `/`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub(crate) fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, KEY_ESCAPES).to_string()
}

/// Continuation tokens are opaque to clients: the key to resume after.
pub(crate) fn encode_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

/// `max-keys`: default 1000, at most 1000, never negative.
pub(crate) fn max_keys(v: Option<i32>) -> S3Result<usize> {
    page_size(v, "max-keys")
}

/// A page-size parameter (`max-keys`, `max-parts`, `max-uploads`):
/// default 1000, at most 1000, never negative.
pub(crate) fn page_size(v: Option<i32>, name: &str) -> S3Result<usize> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "{name} must be a non-negative integer"
        )),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// Decodes a base64 `Content-MD5`.
pub(crate) fn content_md5(v: &str) -> S3Result<[u8; 16]> {
    STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid"))
}

/// S3 tag rules: at most 10, keys 1..=128 and values 0..=256 characters,
/// no duplicate keys, no `aws:` prefix.
pub(crate) fn check_tags(tags: &[(String, String)]) -> S3Result<BTreeMap<String, String>> {
    if tags.len() > 10 {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than 10"
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid"
            ));
        }
        if v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is invalid"
            ));
        }
        if k.starts_with("aws:") {
            return Err(s3_error!(
                InvalidTag,
                "Your TagKey cannot be prefixed with aws:"
            ));
        }
        if out.insert(k.clone(), v.clone()).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(out)
}

/// The `x-amz-tagging` header: a URL-encoded query string.
pub(crate) fn parse_tagging_header(v: &str) -> S3Result<BTreeMap<String, String>> {
    let mut tags = Vec::new();
    for pair in v.split('&').filter(|p| !p.is_empty()) {
        let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| s3_error!(InvalidTag, "The tagging header is not valid UTF-8"))
        };
        tags.push((dec(k)?, dec(val)?));
    }
    check_tags(&tags)
}

/// Header values of `x-amz-checksum-*` for one algorithm.
pub(crate) fn checksum_header(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
    }
}

pub(crate) fn algorithm(name: &str) -> S3Result<ChecksumAlgorithm> {
    ChecksumAlgorithm::from_s3_name(name)
        .ok_or_else(|| s3_error!(InvalidArgument, "Unsupported checksum algorithm {name}"))
}
