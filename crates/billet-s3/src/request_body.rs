//! Receiving request bodies: the bound on what is buffered, and what S3
//! answers when a body fails on the way in.

use s3s::{S3Error, S3ErrorCode, s3_error};

/// Largest XML request body (DeleteObjects, CompleteMultipartUpload,
/// tagging, ...) s3s reads into memory, after authorization only.
pub const XML_MAX_BYTES: usize = 20 << 20;

/// The error a request body yields when its client stopped sending for
/// longer than the server's body timeout (the HTTP layer raises it).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{}", BodyStalled::MESSAGE)]
pub struct BodyStalled;

impl BodyStalled {
    /// Also how it is recognised once s3s's body checks have wrapped it.
    pub const MESSAGE: &'static str = "billet: the client stopped sending the request body";
}

/// The S3 error for a body that failed while being received, from the
/// failure's message. s3s's body checks report through error types it
/// does not export, so their messages (as of s3s 0.14.1) are what tells
/// the cases apart: a payload whose SHA-256 differs from
/// `x-amz-content-sha256`, a bad `aws-chunked` chunk signature, a stalled
/// client; anything else is a body that ended early or was malformed.
pub(crate) fn body_error(why: &str) -> S3Error {
    if why.contains(BodyStalled::MESSAGE) {
        s3_error!(
            RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period."
        )
    } else if why.contains("Sha256Mismatch") {
        sha256_mismatch()
    } else if why.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        )
    } else {
        s3_error!(
            IncompleteBody,
            "The request body ended early or failed: {why}"
        )
    }
}

/// A body whose SHA-256 is not the one its signature covers.
pub(crate) fn sha256_mismatch() -> S3Error {
    // s3s has no variant for this code.
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_failures_map_to_their_codes() {
        // Messages as the engine receives them: s3s wraps the HTTP layer's
        // error in its own, whose Display embeds the inner one.
        let stalled = format!("UploadStreamError: Underlying: {}", BodyStalled);
        let cases = [
            (stalled.as_str(), S3ErrorCode::RequestTimeout, 400),
            (BodyStalled::MESSAGE, S3ErrorCode::RequestTimeout, 400),
            (
                "UploadStreamError: Sha256Mismatch",
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                400,
            ),
            (
                "AwsChunkedStreamError: SignatureMismatch",
                S3ErrorCode::SignatureDoesNotMatch,
                403,
            ),
            (
                "UploadStreamError: Incomplete",
                S3ErrorCode::IncompleteBody,
                400,
            ),
            (
                "AwsChunkedStreamError: FormatError",
                S3ErrorCode::IncompleteBody,
                400,
            ),
        ];
        for (why, code, status) in cases {
            let e = body_error(why);
            assert_eq!(e.code(), &code, "{why}");
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(status), "{why}");
        }
    }
}
