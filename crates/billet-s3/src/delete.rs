//! DeleteObject and DeleteObjects (one commit for the whole request).

use billet_engine::{Condition, Engine};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;

pub(crate) async fn delete_object(
    engine: &Engine,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    // `If-Match: *` only asks that the object exist.
    let condition = match &i.if_match {
        None => None,
        Some(ETagCondition::ETag(e)) => Some(Condition::IfMatch(e.value().to_string())),
        Some(ETagCondition::Any) => {
            let live = engine
                .object(&i.bucket, &i.key, i.version_id.as_deref())
                .await;
            match live {
                Ok(v) if !v.is_delete_marker() => Some(Condition::IfMatch(v.etag().to_string())),
                _ => {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
            }
        }
    };
    // The access check allowed the bypass if the request asks for it.
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    let out = engine
        .delete_with(
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            condition,
            bypass,
        )
        .await
        .map_err(to_s3)?;
    // S3 says whether a delete marker was involved even when none was.
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: Some(out.delete_marker),
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
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    // Submitted together, the deletes land in one commit.
    let results = futures_util::future::join_all(
        objects
            .iter()
            .map(|o| engine.delete_with(&i.bucket, &o.key, o.version_id.as_deref(), None, bypass)),
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
