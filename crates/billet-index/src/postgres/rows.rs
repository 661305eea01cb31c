//! PostgreSQL rows to index types.

use tokio_postgres::Row as PgRow;

use crate::error::IndexError;
use crate::rows::{cid_from, key_from, manifest_from};
use crate::types::{AccessKey, ObjectSummary, ObjectVersion, Part, Upload};

pub(super) const VERSION_COLS: &str = "key, version_id, is_latest, ord, manifest_cid, manifest";
pub(super) const PART_COLS: &str = "number, size, etag, root, last_modified, meta";
pub(super) const UPLOAD_COLS: &str = "upload_id, key, initiated, meta, seq";
pub(super) const KEY_COLS: &str = "id, secret, owner, created, disabled, limited";

pub(super) fn version_from(r: &PgRow) -> Result<ObjectVersion, IndexError> {
    let key: Vec<u8> = r.try_get(0)?;
    let cid: Vec<u8> = r.try_get(4)?;
    let manifest: Vec<u8> = r.try_get(5)?;
    Ok(ObjectVersion {
        key: key_from(key)?,
        version_id: r.try_get(1)?,
        is_latest: r.try_get(2)?,
        order: r.try_get(3)?,
        manifest_cid: cid_from(&cid)?,
        manifest: manifest_from(&manifest)?,
    })
}

/// A listing row: `key, version_id, size, etag, last_modified, ord` and,
/// with `full`, `is_latest, is_delete_marker`.
pub(super) fn summary(r: &PgRow, full: bool) -> Result<ObjectSummary, IndexError> {
    let key: Vec<u8> = r.try_get(0)?;
    let size: i64 = r.try_get(2)?;
    Ok(ObjectSummary {
        key: key_from(key)?,
        version_id: r.try_get(1)?,
        size: size as u64,
        etag: r.try_get(3)?,
        last_modified_ms: r.try_get(4)?,
        order: r.try_get(5)?,
        is_latest: if full { r.try_get(6)? } else { true },
        delete_marker: if full { r.try_get(7)? } else { false },
    })
}

pub(super) fn upload_from(r: &PgRow) -> Result<(Upload, i64), IndexError> {
    let key: Vec<u8> = r.try_get(1)?;
    Ok((
        Upload {
            upload_id: r.try_get(0)?,
            key: key_from(key)?,
            initiated_ms: r.try_get(2)?,
            meta: r.try_get(3)?,
        },
        r.try_get(4)?,
    ))
}

pub(super) fn part_from(r: &PgRow) -> Result<Part, IndexError> {
    let number: i32 = r.try_get(0)?;
    let size: i64 = r.try_get(1)?;
    let root: Vec<u8> = r.try_get(3)?;
    Ok(Part {
        number: number as u32,
        size: size as u64,
        etag: r.try_get(2)?,
        root: cid_from(&root)?,
        last_modified_ms: r.try_get(4)?,
        meta: r.try_get(5)?,
    })
}

pub(super) fn access_key_from(r: &PgRow) -> Result<AccessKey, IndexError> {
    Ok(AccessKey {
        id: r.try_get(0)?,
        secret: r.try_get(1)?,
        owner: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        disabled: r.try_get(4)?,
        limited: r.try_get(5)?,
    })
}
