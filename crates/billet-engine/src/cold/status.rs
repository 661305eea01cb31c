//! What `billet status` and `/metrics` show of the cold tier: per plane,
//! segments and bytes by where they are; the shipping backlog; the warm
//! cache; queued deletes; each bucket's shipped head against its head.

use serde::Serialize;

use billet_log::SegmentState;

use super::PLANES;
use crate::Engine;
use crate::error::EngineError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub segments: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.segments += 1;
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlaneStatus {
    pub plane: String,
    pub shipping: bool,
    pub open: Tally,
    /// Sealed, local, not shipped.
    pub sealed: Tally,
    /// Shipped and still local.
    pub shipped: Tally,
    /// Shipped, no longer local.
    pub evicted: Tally,
    /// Sealed segments waiting to ship (empty when shipping is off).
    pub backlog: Tally,
    /// Bytes of this plane's segments on local disk.
    pub local_bytes: u64,
    pub disk_budget: Option<u64>,
    /// Over budget with nothing shipped left to evict: writes refused.
    pub over_budget: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketShipped {
    pub bucket: String,
    pub head_seq: u64,
    /// `None` until a head of the bucket has shipped.
    pub shipped_head: Option<String>,
    pub shipped_seq: Option<u64>,
    /// Commits the remote does not hold yet.
    pub lag_commits: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// The remote, if one is configured.
    pub remote: Option<String>,
    pub node: Option<String>,
    pub planes: Vec<PlaneStatus>,
    pub warm_cache_bytes: u64,
    pub warm_cache_capacity: u64,
    pub remote_fetches: u64,
    pub remote_fetched_bytes: u64,
    pub pending_deletes: u64,
    /// Heads noted and waiting for their segments to ship.
    pub heads_waiting: u64,
    pub buckets: Vec<BucketShipped>,
    pub last_error: Option<String>,
}

impl Engine {
    /// The node's cold-tier figures (local ones only without a remote).
    pub async fn status(&self) -> Result<NodeStatus, EngineError> {
        let mut status = self.node_figures().await?;
        status.buckets = self.buckets_shipped().await?;
        Ok(status)
    }

    /// [`Engine::status`] without the per-bucket part: what the node holds
    /// in memory, and one count from the index.
    pub async fn node_figures(&self) -> Result<NodeStatus, EngineError> {
        use std::sync::atomic::Ordering::Relaxed;
        let cold = self.cold();
        let segments = self.log().segments();
        let mut planes = Vec::new();
        for plane in PLANES {
            let policy = cold.map(|c| c.config.policy(plane).clone());
            let shipping = policy.as_ref().is_some_and(|p| p.ship);
            let mut p = PlaneStatus {
                plane: plane.name().to_string(),
                shipping,
                open: Tally::default(),
                sealed: Tally::default(),
                shipped: Tally::default(),
                evicted: Tally::default(),
                backlog: Tally::default(),
                local_bytes: 0,
                disk_budget: policy.as_ref().and_then(|p| p.disk_budget),
                over_budget: cold.is_some_and(|c| c.over_budget(plane)),
            };
            for s in segments.iter().filter(|s| s.plane == plane) {
                match (s.state, s.noted) {
                    (SegmentState::Open, _) => p.open.add(s.bytes),
                    (SegmentState::Sealed, false) => {
                        p.sealed.add(s.bytes);
                        if shipping {
                            p.backlog.add(s.bytes);
                        }
                    }
                    (SegmentState::Sealed, true) => p.shipped.add(s.bytes),
                    (SegmentState::Evicted, _) => p.evicted.add(s.bytes),
                }
                if s.state != SegmentState::Evicted {
                    p.local_bytes += s.bytes;
                }
            }
            planes.push(p);
        }
        Ok(NodeStatus {
            remote: cold.map(|c| c.describe().to_string()),
            node: cold.map(|c| c.node().to_string()),
            planes,
            warm_cache_bytes: cold.map_or(0, |c| c.reader.warm_bytes()),
            warm_cache_capacity: cold.map_or(0, |c| c.reader.warm_capacity()),
            remote_fetches: cold.map_or(0, |c| c.reader.stats.fetches.load(Relaxed)),
            remote_fetched_bytes: cold.map_or(0, |c| c.reader.stats.fetched_bytes.load(Relaxed)),
            pending_deletes: self.index().pending_deletes().await?,
            heads_waiting: cold.map_or(0, |c| c.heads.pending() as u64),
            buckets: Vec::new(),
            last_error: cold.and_then(|c| c.last_error()),
        })
    }

    /// Each bucket's head and shipped head (index reads per bucket).
    pub async fn buckets_shipped(&self) -> Result<Vec<BucketShipped>, EngineError> {
        let shipped: std::collections::HashMap<String, billet_index::ShippedHead> = self
            .index()
            .shipped_heads()
            .await?
            .into_iter()
            .map(|h| (h.bucket.clone(), h))
            .collect();
        let mut buckets = Vec::new();
        for b in self.list_buckets().await? {
            let Ok(state) = self.bucket(&b.name).await else {
                continue;
            };
            let s = shipped.get(&b.name);
            buckets.push(BucketShipped {
                bucket: b.name.clone(),
                head_seq: state.seq,
                shipped_head: s.map(|h| h.head.to_string()),
                shipped_seq: s.map(|h| h.seq),
                lag_commits: state.seq.saturating_sub(s.map_or(0, |h| h.seq))
                    + u64::from(s.is_none()),
            });
        }
        Ok(buckets)
    }
}
