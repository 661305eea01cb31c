//! Object tagging (kept in the manifest) and bucket tagging (kept in the
//! bucket's commit settings).

use std::collections::BTreeMap;

use billet_engine::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;
use crate::util::check_tags;

pub(crate) fn tag_map(tagging: &Tagging) -> S3Result<BTreeMap<String, String>> {
    let pairs: Vec<(String, String)> = tagging
        .tag_set
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    check_tags(&pairs)
}

fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

pub(crate) async fn put_object_tagging(
    engine: &Engine,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let i = req.input;
    let tags = tag_map(&i.tagging)?;
    let version_id = engine
        .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), tags)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(crate) async fn get_object_tagging(
    engine: &Engine,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let v = engine
        .object(&i.bucket, &i.key, i.version_id.as_deref())
        .await
        .map_err(to_s3)?;
    if v.is_delete_marker() {
        return Err(match i.version_id {
            Some(_) => s3_error!(
                MethodNotAllowed,
                "The specified method is not allowed against this resource."
            ),
            None => s3_error!(NoSuchKey, "The specified key does not exist."),
        });
    }
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&v.manifest.tags),
        version_id: v.manifest.version_id.clone(),
    }))
}

pub(crate) async fn delete_object_tagging(
    engine: &Engine,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let i = req.input;
    let version_id = engine
        .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), BTreeMap::new())
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

/// S3 allows 50 tags on a bucket.
const MAX_BUCKET_TAGS: usize = 50;

pub(crate) async fn put_bucket_tagging(
    engine: &Engine,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let i = req.input;
    if i.tagging.tag_set.len() > MAX_BUCKET_TAGS {
        return Err(s3_error!(
            InvalidTag,
            "Bucket tag count cannot be greater than {MAX_BUCKET_TAGS}"
        ));
    }
    // The per-tag rules are the object ones; only the count differs.
    let mut tags = BTreeMap::new();
    for chunk in i.tagging.tag_set.chunks(10) {
        tags.extend(tag_map(&Tagging {
            tag_set: chunk.to_vec(),
        })?);
    }
    if tags.len() != i.tagging.tag_set.len() {
        return Err(s3_error!(
            InvalidTag,
            "Cannot provide multiple Tags with the same key"
        ));
    }
    set_bucket_tags(engine, &i.bucket, tags).await?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

async fn set_bucket_tags(
    engine: &Engine,
    bucket: &str,
    tags: BTreeMap<String, String>,
) -> S3Result<()> {
    let state = engine.bucket(bucket).await.map_err(to_s3)?;
    if state.settings.tags != tags {
        let mut settings = state.settings;
        settings.tags = tags;
        engine.set_settings(bucket, settings).await.map_err(to_s3)?;
    }
    Ok(())
}

pub(crate) async fn get_bucket_tagging(
    engine: &Engine,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let state = engine.bucket(&req.input.bucket).await.map_err(to_s3)?;
    if state.settings.tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tag_set(&state.settings.tags),
    }))
}

pub(crate) async fn delete_bucket_tagging(
    engine: &Engine,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    set_bucket_tags(engine, &req.input.bucket, BTreeMap::new()).await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}
