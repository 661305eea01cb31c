//! Multipart uploads in the index: a part lands only on an upload that
//! still exists, parts page by number, an abort takes the parts with it.

use crate::error::IndexError;
use crate::tx::BucketTx;
use crate::types::{Part, PartPage, Upload};

pub(crate) fn create_upload(tx: &mut dyn BucketTx, upload: &Upload) -> Result<(), IndexError> {
    tx.insert_upload(upload)
}

/// Records a part, replacing one of the same number (returned). The upload
/// is held until the transaction ends, so a concurrent abort cannot leave
/// the part behind.
pub(crate) fn put_part(
    tx: &mut dyn BucketTx,
    upload_id: &str,
    part: &Part,
) -> Result<Option<Part>, IndexError> {
    if !tx.upload_exists(upload_id, true)? {
        return Err(IndexError::NoSuchUpload(upload_id.to_string()));
    }
    let old = tx.part(upload_id, part.number)?;
    tx.upsert_part(upload_id, part)?;
    Ok(old)
}

/// Parts numbered above `after`, at most `max`; one more is read to know
/// whether the page is truncated.
pub(crate) fn parts(
    tx: &mut dyn BucketTx,
    upload_id: &str,
    after: u32,
    max: usize,
) -> Result<PartPage, IndexError> {
    let mut parts = tx.parts_after(upload_id, after, max + 1)?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    Ok(PartPage {
        next_part_number_marker: truncated.then(|| parts.last().map(|p| p.number)).flatten(),
        parts,
        truncated,
    })
}

pub(crate) fn abort_upload(
    tx: &mut dyn BucketTx,
    upload_id: &str,
) -> Result<Vec<Part>, IndexError> {
    if !tx.delete_upload(upload_id)? {
        return Err(IndexError::NoSuchUpload(upload_id.to_string()));
    }
    tx.delete_parts(upload_id)
}
