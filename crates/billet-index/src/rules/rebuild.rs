//! Rebuilding a bucket's object rows from its MST: all rows replaced and
//! the head set, in one transaction.

use billet_block::Cid;
use billet_records::BucketSettings;

use crate::error::IndexError;
use crate::tx::{BucketTx, NewHead, NewVersion};
use crate::types::ObjectVersion;

/// Rows inserted per statement.
const BATCH: usize = 512;

/// `rows` come grouped by key in key order, each key's versions newest
/// first; they take ords 0, 1, 2, … in that order, and versions written
/// later count down from -1, so "smaller is newer" holds throughout.
pub(crate) fn rebuild(
    tx: &mut dyn BucketTx,
    head: Cid,
    seq: u64,
    settings: &BucketSettings,
    rows: crate::RebuildRows,
) -> Result<u64, IndexError> {
    tx.lock_head()?;
    tx.clear_versions()?;
    let mut n: i64 = 0;
    let mut batch: Vec<ObjectVersion> = Vec::with_capacity(BATCH);
    let flush = |tx: &mut dyn BucketTx, batch: &mut Vec<ObjectVersion>, n: &mut i64| {
        let new: Vec<NewVersion<'_>> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| NewVersion {
                key: &v.key,
                version_id: &v.version_id,
                ord: *n + i as i64,
                latest: v.is_latest,
                cid: &v.manifest_cid,
                manifest: &v.manifest,
            })
            .collect();
        tx.insert_versions(&new)?;
        *n += new.len() as i64;
        batch.clear();
        Ok::<_, IndexError>(())
    };
    for row in rows {
        batch.push(row?);
        if batch.len() == BATCH {
            flush(tx, &mut batch, &mut n)?;
        }
    }
    flush(tx, &mut batch, &mut n)?;
    tx.set_head(&NewHead {
        head,
        seq,
        next_ord: -1,
        settings: Some(settings),
    })?;
    Ok(n as u64)
}
