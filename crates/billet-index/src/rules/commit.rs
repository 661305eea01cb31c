//! A commit: the head moves by compare-and-swap, the row changes apply in
//! order, completed uploads close, the MMR grows without gaps — all in the
//! caller's transaction, so either everything happens or nothing does.

use std::collections::HashMap;

use crate::error::IndexError;
use crate::tx::{BucketTx, NewHead, NewVersion, PutRun};
use crate::types::{CommitBatch, RowChange};

pub(crate) fn commit(tx: &mut dyn BucketTx, batch: &CommitBatch) -> Result<(), IndexError> {
    let current = tx.lock_head()?;
    if current.head != batch.expected_head {
        return Err(IndexError::Conflict {
            bucket: batch.bucket.clone(),
            expected: Box::new(batch.expected_head),
            actual: Box::new(current.head),
        });
    }
    let mut ord = current.next_ord;
    let changes = &batch.changes;
    let mut i = 0;
    while i < changes.len() {
        let run = changes[i..]
            .iter()
            .take_while(|c| matches!(c, RowChange::Put { .. }))
            .count();
        if run > 0 {
            tx.apply_puts(&put_run(&changes[i..i + run], &mut ord))?;
            i += run;
            continue;
        }
        match &changes[i] {
            RowChange::Put { .. } => unreachable!("runs of puts are applied above"),
            RowChange::Delete { key, version_id } => {
                // The newest remaining version takes over as latest.
                if tx.delete_version(key, version_id)? == Some(true) {
                    tx.promote_newest(key)?;
                }
            }
            RowChange::Replace {
                key,
                version_id,
                manifest_cid,
                manifest,
            } => {
                if !tx.replace_version(key, version_id, manifest_cid, manifest)? {
                    return Err(IndexError::NoSuchVersion {
                        key: key.clone(),
                        version_id: version_id.clone(),
                    });
                }
            }
        }
        i += 1;
    }
    // An upload that is already gone was aborted: the commit that would
    // complete it must not happen.
    for upload_id in &batch.completed_uploads {
        if !tx.delete_upload(upload_id)? {
            return Err(IndexError::NoSuchUpload(upload_id.clone()));
        }
        tx.delete_parts(upload_id)?;
    }
    append_mmr(tx, &batch.mmr)?;
    tx.put_commits(&batch.commits)?;
    tx.set_head(&NewHead {
        head: batch.head,
        seq: batch.seq,
        next_ord: ord,
        settings: batch.settings.as_ref(),
    })
}

/// Resolves consecutive puts into one write: a later put of the same
/// (key, version id) replaces an earlier one, only each key's last put is
/// latest, and every kept row takes the next (smaller) ord — the outcome
/// of applying the puts one by one.
fn put_run<'a>(puts: &'a [RowChange], ord: &mut i64) -> PutRun<'a> {
    let as_put = |c: &'a RowChange| match c {
        RowChange::Put {
            key,
            version_id,
            manifest_cid,
            manifest,
        } => Some((key.as_str(), version_id.as_str(), manifest_cid, manifest)),
        _ => None,
    };
    let mut last_of_version = HashMap::new();
    let mut last_of_key = HashMap::new();
    for (i, (key, vid, _, _)) in puts.iter().filter_map(as_put).enumerate() {
        last_of_version.insert((key, vid), i);
        last_of_key.insert(key, i);
    }
    let mut run = PutRun::default();
    for (i, (key, vid, cid, manifest)) in puts.iter().filter_map(as_put).enumerate() {
        if last_of_version[&(key, vid)] != i {
            continue;
        }
        run.replaced.push((key, vid));
        if last_of_key[key] == i {
            run.keys.push(key);
        }
        run.rows.push(NewVersion {
            key,
            version_id: vid,
            ord: *ord,
            latest: last_of_key[key] == i,
            cid,
            manifest,
        });
        *ord -= 1;
    }
    run
}

/// MMR rows are append-only: new nodes continue exactly where the stored
/// ones end.
fn append_mmr(tx: &mut dyn BucketTx, nodes: &[(u64, [u8; 32])]) -> Result<(), IndexError> {
    let Some((first, _)) = nodes.first() else {
        return Ok(());
    };
    let size = tx.mmr_size()?;
    if *first != size {
        return Err(IndexError::MmrOverwrite(*first));
    }
    for (i, (pos, _)) in nodes.iter().enumerate() {
        if *pos != size + i as u64 {
            return Err(IndexError::MmrOverwrite(*pos));
        }
    }
    tx.insert_mmr(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use billet_block::{Block, Codec};
    use billet_records::Manifest;

    fn put(key: &str, vid: &str) -> RowChange {
        let body = *Block::new(Codec::Raw, key.as_bytes().to_vec()).cid();
        let m = Manifest::new(key, body, 1, format!("{:032x}", 1), [0; 32], 1);
        RowChange::Put {
            key: key.into(),
            version_id: vid.into(),
            manifest_cid: body,
            manifest: m,
        }
    }

    #[test]
    fn a_run_of_puts_resolves_as_if_applied_one_by_one() {
        let puts = vec![
            put("a", "null"),
            put("b", "v1"),
            put("a", "null"),
            put("b", "v2"),
            put("c", "x"),
        ];
        let mut ord = -1;
        let run = put_run(&puts, &mut ord);
        let rows: Vec<(&str, &str, i64, bool)> = run
            .rows
            .iter()
            .map(|r| (r.key, r.version_id, r.ord, r.latest))
            .collect();
        // The first put of a/null is replaced by the second; b keeps both
        // versions, the later one latest; ords count down.
        assert_eq!(
            rows,
            [
                ("b", "v1", -1, false),
                ("a", "null", -2, true),
                ("b", "v2", -3, true),
                ("c", "x", -4, true),
            ]
        );
        assert_eq!(ord, -5);
        assert_eq!(
            run.replaced,
            [("b", "v1"), ("a", "null"), ("b", "v2"), ("c", "x")]
        );
        assert_eq!(run.keys, ["a", "b", "c"]);
    }
}
