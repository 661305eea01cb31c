//! Publishing shipped heads: after segments ship, every bucket whose
//! shipped head moved gets it recorded in the index, and the node's
//! `heads.cbor` is rewritten with every bucket's shipped head, only ever
//! naming heads whose segments the remote holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use billet_index::ShippedHead;
use billet_log::PlaneKind;
use billet_remote::{Body, ObjectAttrs};

use super::ColdTier;
use super::heads::{HEADS_TYPE, HeadsBucket, HeadsDoc};
use super::ship::shipped_upto;
use crate::error::EngineError;
use crate::{Inner, now_ms};

pub(crate) async fn publish(inner: &Arc<Inner>, tier: &Arc<ColdTier>) -> Result<(), EngineError> {
    let _one_at_a_time = tier.publish.lock().await;
    let segments = inner.store.log().segments();
    let data = shipped_upto(&segments, PlaneKind::Data);
    let catalog = shipped_upto(&segments, PlaneKind::Catalog);
    let moved = tier.heads.advance(data, catalog);
    let dirty = tier.heads_dirty.swap(false, Ordering::SeqCst);
    // Retired segments wait for a `heads.cbor` whose marks cover their
    // copies: write one when the marks moved past the last one written.
    let mut for_retired = false;
    if tier.retired_waiting.load(Ordering::SeqCst)
        && *tier
            .last_published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            != Some((data, catalog))
    {
        if inner
            .index
            .retired_segments(&tier.config.node)
            .await?
            .is_empty()
        {
            tier.retired_waiting.store(false, Ordering::SeqCst);
        } else {
            for_retired = true;
        }
    }
    if moved.is_empty() && !dirty && !for_retired {
        return Ok(());
    }
    let result = write_doc(inner, tier, data, catalog).await;
    if result.is_err() {
        tier.heads_dirty.store(true, Ordering::SeqCst);
        // The index rows follow the document, so they wait with it.
        for (name, n) in &moved {
            tier.heads.requeue(name, *n);
        }
        return result;
    }
    *tier
        .last_published
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((data, catalog));
    forget_retired(inner, tier, data, catalog).await?;
    let now = now_ms();
    for (bucket, n) in moved {
        inner
            .index
            .set_shipped_head(&ShippedHead {
                bucket,
                head: n.head,
                seq: n.seq,
                shipped_ms: now,
            })
            .await?;
    }
    Ok(())
}

/// After `heads.cbor` was written with these marks: every retired segment
/// whose copies are all within them is forgotten, its remote objects
/// queued for deletion in the same transaction. Until then a rebuild from
/// the remote may still need it (the copies had not shipped).
async fn forget_retired(
    inner: &Arc<Inner>,
    tier: &Arc<ColdTier>,
    data: Option<u64>,
    catalog: Option<u64>,
) -> Result<(), EngineError> {
    let retired = inner.index.retired_segments(&tier.config.node).await?;
    let covered = |plane: &str, moved_to: u64| {
        let upto = if plane == PlaneKind::Data.name() {
            data
        } else {
            catalog
        };
        upto.is_some_and(|u| moved_to <= u)
    };
    let done: Vec<(String, u64)> = retired
        .iter()
        .filter(|(p, _, m)| covered(p, *m))
        .map(|(p, id, _)| (p.clone(), *id))
        .collect();
    if !done.is_empty() {
        inner
            .index
            .forget_segments(&tier.config.node, &done, now_ms())
            .await?;
    }
    if done.len() == retired.len() {
        tier.retired_waiting.store(false, Ordering::SeqCst);
    }
    Ok(())
}

/// Leaves of a bucket's MMR when its head was at `seq`: one leaf per
/// commit, so the current count less the commits since.
async fn leaves_at(
    inner: &Inner,
    bucket: &str,
    seq: u64,
) -> Result<Option<(u64, billet_index::BucketState)>, EngineError> {
    loop {
        let Some(before) = inner.index.bucket(bucket).await? else {
            return Ok(None);
        };
        let size = inner.index.mmr_size(bucket).await?;
        let Some(after) = inner.index.bucket(bucket).await? else {
            return Ok(None);
        };
        if before.seq != after.seq {
            continue;
        }
        let now = billet_mmr::leaf_count(size)
            .map_err(|e| EngineError::Corrupt(format!("bucket {bucket}'s MMR: {e}")))?;
        let leaves = now.saturating_sub(after.seq.saturating_sub(seq)).max(1);
        return Ok(Some((leaves, after)));
    }
}

async fn write_doc(
    inner: &Arc<Inner>,
    tier: &Arc<ColdTier>,
    data_upto: Option<u64>,
    catalog_upto: Option<u64>,
) -> Result<(), EngineError> {
    let mut buckets = Vec::new();
    for (name, n) in tier.heads.shipped() {
        let Some((mmr_leaves, state)) = leaves_at(inner, &name, n.seq).await? else {
            tier.heads.forget(&name);
            continue;
        };
        buckets.push(HeadsBucket {
            name,
            owner: state.owner,
            created_ms: state.created_ms,
            head: n.head,
            seq: n.seq,
            mmr_leaves,
        });
    }
    let doc = HeadsDoc {
        kind: HEADS_TYPE.into(),
        version: 1,
        node: tier.config.node.clone(),
        written_ms: now_ms(),
        data_upto,
        catalog_upto,
        buckets,
    };
    let block = billet_block::encode_dag_cbor(&doc)
        .map_err(|e| EngineError::Internal(format!("encoding heads.cbor: {e}")))?;
    tier.remote()
        .put(
            &tier.layout.heads(),
            Body::Bytes(block.data().clone()),
            ObjectAttrs {
                content_type: Some("application/vnd.ipld.dag-cbor"),
                content_encoding: None,
            },
        )
        .await
        .map_err(|e| EngineError::Remote(e.to_string()))
}
