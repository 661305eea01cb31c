//! ListObjects (v1), ListObjectsV2 and ListObjectVersions.

use billet_engine::Engine;
use billet_engine::{ListQuery, ObjectSummary, VersionQuery};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;
use crate::util::{decode_token, encode_token, etag, max_keys, timestamp, url_encode};

pub(crate) fn encoding(e: &Option<EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(e) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: {}",
            e.as_str()
        )),
    }
}

pub(crate) fn enc(url: bool, s: String) -> String {
    if url { url_encode(&s) } else { s }
}

/// The delimiter a listing names in its answer: an empty one is no
/// delimiter, and S3 does not name it.
fn echoed(delimiter: Option<String>, url: bool) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).map(|d| enc(url, d))
}

fn object(o: ObjectSummary, url: bool, owner: Option<&Owner>) -> Object {
    Object {
        key: Some(enc(url, o.key)),
        size: Some(o.size as i64),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(timestamp(o.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner: owner.cloned(),
        ..Default::default()
    }
}

fn prefixes(p: Vec<String>, url: bool) -> Option<Vec<CommonPrefix>> {
    (!p.is_empty()).then(|| {
        p.into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(url, p)),
            })
            .collect()
    })
}

pub(crate) async fn list_objects_v2(
    engine: &Engine,
    owner: &Owner,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let url = encoding(&i.encoding_type)?;
    let max = max_keys(i.max_keys)?;
    let after = match &i.continuation_token {
        Some(t) => Some(decode_token(t)?),
        None => i.start_after.clone().filter(|s| !s.is_empty()),
    };
    let query = ListQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
        after,
        max_keys: max,
    };
    let page = engine
        .list_objects(&i.bucket, &query)
        .await
        .map_err(to_s3)?;
    let owner = i.fetch_owner.unwrap_or(false).then_some(owner);
    let key_count = (page.objects.len() + page.prefixes.len()) as i32;
    let contents: Vec<Object> = page
        .objects
        .into_iter()
        .map(|o| object(o, url, owner))
        .collect();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(enc(url, i.prefix.unwrap_or_default())),
        delimiter: echoed(i.delimiter, url),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(page.truncated),
        continuation_token: i.continuation_token,
        next_continuation_token: page.next_after.as_deref().map(encode_token),
        start_after: i.start_after.map(|s| enc(url, s)),
        encoding_type: i.encoding_type,
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: prefixes(page.prefixes, url),
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    engine: &Engine,
    owner: &Owner,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let url = encoding(&i.encoding_type)?;
    let max = max_keys(i.max_keys)?;
    let query = ListQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
        after: i.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max,
    };
    let page = engine
        .list_objects(&i.bucket, &query)
        .await
        .map_err(to_s3)?;
    let contents: Vec<Object> = page
        .objects
        .into_iter()
        .map(|o| object(o, url, Some(owner)))
        .collect();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(enc(url, i.prefix.unwrap_or_default())),
        delimiter: echoed(i.delimiter, url),
        marker: Some(enc(url, i.marker.unwrap_or_default())),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_marker: page.next_after.map(|m| enc(url, m)),
        encoding_type: i.encoding_type,
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: prefixes(page.prefixes, url),
        ..Default::default()
    }))
}

pub(crate) async fn list_object_versions(
    engine: &Engine,
    owner: &Owner,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let i = req.input;
    let url = encoding(&i.encoding_type)?;
    let max = max_keys(i.max_keys)?;
    if i.version_id_marker.is_some() && i.key_marker.as_deref().unwrap_or("").is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "A version-id marker cannot be specified without a key marker."
        ));
    }
    let query = VersionQuery {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker: i.key_marker.clone().filter(|k| !k.is_empty()),
        version_id_marker: i.version_id_marker.clone().filter(|v| !v.is_empty()),
        max_keys: max,
    };
    let page = engine
        .list_versions(&i.bucket, &query)
        .await
        .map_err(to_s3)?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in page.versions {
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(enc(url, v.key)),
                version_id: Some(v.version_id),
                is_latest: Some(v.is_latest),
                last_modified: Some(timestamp(v.last_modified_ms)),
                owner: Some(owner.clone()),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(enc(url, v.key)),
                version_id: Some(v.version_id),
                is_latest: Some(v.is_latest),
                last_modified: Some(timestamp(v.last_modified_ms)),
                size: Some(v.size as i64),
                e_tag: Some(etag(&v.etag)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(owner.clone()),
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket),
        prefix: Some(enc(url, i.prefix.unwrap_or_default())),
        delimiter: echoed(i.delimiter, url),
        key_marker: Some(enc(url, i.key_marker.unwrap_or_default())),
        version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_key_marker: page.next_key_marker.map(|k| enc(url, k)),
        next_version_id_marker: page.next_version_id_marker,
        encoding_type: i.encoding_type,
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: prefixes(page.prefixes, url),
        ..Default::default()
    }))
}
