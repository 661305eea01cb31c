//! Engine errors as S3 errors: the only place codes and statuses are
//! chosen, for the S3 API and the `/_billet/v1` endpoints alike.

use billet_engine::EngineError;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// The S3 error (code, status, message) for an engine error. Failures that
/// are the server's own are logged here, once, and answered with a
/// generic message.
pub fn to_s3(e: EngineError) -> S3Error {
    match e {
        EngineError::NoSuchBucket(b) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist: {b}")
        }
        EngineError::BucketExists(b) => {
            s3_error!(BucketAlreadyOwnedByYou, "Bucket {b} already exists")
        }
        EngineError::BucketNotEmpty(b) => s3_error!(BucketNotEmpty, "The bucket {b} is not empty"),
        EngineError::NoSuchKey(k) => s3_error!(NoSuchKey, "The specified key does not exist: {k}"),
        EngineError::NoSuchVersion { key, version_id } => {
            s3_error!(
                NoSuchVersion,
                "Version {version_id} of {key} does not exist"
            )
        }
        EngineError::InvalidKey(billet_block::KeyError::TooLong(n)) => {
            s3_error!(KeyTooLongError, "The key is {n} bytes; the limit is 1024")
        }
        EngineError::InvalidKey(k) => s3_error!(InvalidArgument, "Invalid object key: {k}"),
        EngineError::PreconditionFailed(why) => s3_error!(PreconditionFailed, "{why}"),
        EngineError::TooLarge { max } => {
            s3_error!(EntityTooLarge, "The body exceeds the {max}-byte limit")
        }
        EngineError::Body(why) => crate::request_body::body_error(&why),
        EngineError::NoSuchUpload(u) => s3_error!(NoSuchUpload, "Upload {u} does not exist"),
        EngineError::Invalid(why) => s3_error!(InvalidRequest, "{why}"),
        EngineError::InvalidPart(why) => s3_error!(InvalidPart, "{why}"),
        EngineError::InvalidPartOrder => s3_error!(
            InvalidPartOrder,
            "The list of parts was not in ascending order. Parts must be ordered by part number."
        ),
        e @ EngineError::EntityTooSmall { .. } => s3_error!(EntityTooSmall, "{e}"),
        EngineError::MethodNotAllowed(why) => s3_error!(MethodNotAllowed, "{why}"),
        EngineError::ObjectLocked(why) => s3_error!(AccessDenied, "Access Denied: {why}"),
        EngineError::SlowDown(why) => {
            tracing::warn!(reason = %why, "write refused");
            s3_error!(SlowDown, "Please reduce your request rate: {why}")
        }
        // A block that cannot be read (missing or damaged on the remote):
        // this request fails, naming the block; the server goes on.
        e if e.unreadable_block().is_some() => {
            let cid = e.unreadable_block().map(|b| *b.cid());
            tracing::error!(cid = ?cid.map(|c| c.to_string()), error = %e, "a block could not be read");
            let mut err = S3Error::with_message(
                S3ErrorCode::InternalError,
                format!(
                    "Block {} could not be read; the object is unavailable until it is repaired.",
                    cid.map(|c| c.to_string()).unwrap_or_default()
                ),
            );
            err.set_source(Box::new(e));
            err
        }
        other => {
            tracing::error!(error = %other, "internal error");
            let mut err = S3Error::with_message(
                S3ErrorCode::InternalError,
                "We encountered an internal error. Please try again.",
            );
            err.set_source(Box::new(other));
            err
        }
    }
}
