//! Eviction: a shipped segment's local file goes once it has been shipped
//! for `keep_local`, or, while a plane's local bytes exceed its disk
//! budget, least recently read first. A plane over budget with nothing
//! shipped left to evict refuses writes (503 SlowDown) until shipping
//! catches up.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use billet_index::RemoteState;
use billet_log::{PlaneKind, SegmentInfo, SegmentState};

use super::{ColdTier, PLANES, plane_index};
use crate::error::{EngineError, join_error};
use crate::{Inner, now_ms};

pub(crate) async fn pass(inner: &Arc<Inner>, tier: &Arc<ColdTier>) -> Result<(), EngineError> {
    for plane in PLANES {
        let policy = tier.config.policy(plane).clone();
        let segments: Vec<SegmentInfo> = inner
            .store
            .log()
            .segments()
            .into_iter()
            .filter(|s| s.plane == plane)
            .collect();
        let mut local: u64 = segments
            .iter()
            .filter(|s| s.state != SegmentState::Evicted)
            .map(|s| s.bytes)
            .sum();
        let mut candidates: Vec<SegmentInfo> = segments
            .into_iter()
            .filter(|s| s.state == SegmentState::Sealed && s.noted)
            .collect();
        let mut chosen = Vec::new();
        if let Some(keep) = policy.keep_local {
            let now = now_ms();
            let shipped_at = tier
                .shipped_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let keep_ms = keep.as_millis() as i64;
            candidates.retain(|s| {
                let old = shipped_at
                    .get(&(plane, s.id))
                    .is_some_and(|t| now - t >= keep_ms);
                if old {
                    chosen.push(s.clone());
                }
                !old
            });
            local -= chosen.iter().map(|s| s.bytes).sum::<u64>();
        }
        let mut over = false;
        if let Some(budget) = policy.disk_budget {
            // Least recently read first; never-read ones by age.
            candidates.sort_by_key(|s| (s.last_read_s, s.id));
            let mut rest = candidates.into_iter();
            while local > budget {
                match rest.next() {
                    Some(s) => {
                        local -= s.bytes;
                        chosen.push(s);
                    }
                    None => {
                        over = true;
                        break;
                    }
                }
            }
        }
        for s in chosen {
            evict_one(inner, tier, plane, &s).await?;
        }
        if over != tier.over_budget(plane) {
            if over {
                tracing::warn!(%plane, budget = policy.disk_budget, "over the local disk budget with nothing shipped to evict: refusing writes until shipping catches up");
            } else {
                tracing::info!(%plane, "back within the local disk budget");
            }
        }
        tier.set_over_budget(plane, over);
    }
    Ok(())
}

async fn evict_one(
    inner: &Arc<Inner>,
    tier: &Arc<ColdTier>,
    plane: PlaneKind,
    s: &SegmentInfo,
) -> Result<(), EngineError> {
    let log = inner.store.log().clone();
    let id = s.id;
    let freed = tokio::task::spawn_blocking(move || log.evict(plane, id))
        .await
        .map_err(join_error)??;
    inner
        .index
        .set_segment_state(&tier.config.node, plane.name(), id, RemoteState::Evicted)
        .await?;
    tier.stats.evicted[plane_index(plane)].fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%plane, segment = id, bytes = freed, "evicted");
    Ok(())
}
