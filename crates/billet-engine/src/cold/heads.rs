//! Shipped heads. Every head a bucket moves to is noted with the newest
//! segment of each plane that may hold one of its blocks (blocks land
//! before the commit that references them, and in segments numbered no
//! higher than the one open when the commit is written). Once every
//! segment up to both marks is on the remote, that head is the bucket's
//! shipped head: the remote alone holds all it reaches.
//!
//! The node's shipped heads are published as one DAG-CBOR object,
//! `heads.cbor`, written only after the segments it counts on are
//! shipped: what a rebuild from the remote restores (`docs/remote.md`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use billet_block::Cid;
use serde::{Deserialize, Serialize};

/// A head and the newest segment of each plane it may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Noted {
    pub head: Cid,
    pub seq: u64,
    pub data: Option<u64>,
    pub catalog: Option<u64>,
}

impl Noted {
    /// Whether every segment it may need is shipped, given the highest
    /// segment of each plane up to which all are.
    fn covered(&self, data: Option<u64>, catalog: Option<u64>) -> bool {
        let within = |need: Option<u64>, upto: Option<u64>| match (need, upto) {
            (None, _) => true,
            (Some(n), Some(u)) => n <= u,
            (Some(_), None) => false,
        };
        within(self.data, data) && within(self.catalog, catalog)
    }
}

#[derive(Debug, Default)]
struct BucketHeads {
    /// Heads not yet shipped, oldest first; at most one per pair of
    /// marks (a newer head with the same marks replaces the older).
    pending: VecDeque<Noted>,
    shipped: Option<Noted>,
}

/// Every bucket's pending and shipped heads.
#[derive(Debug, Default)]
pub(crate) struct HeadTracker {
    buckets: Mutex<HashMap<String, BucketHeads>>,
}

impl HeadTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BucketHeads>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn note(&self, bucket: &str, n: Noted) {
        let mut map = self.lock();
        let b = map.entry(bucket.to_string()).or_default();
        if let Some(last) = b.pending.back_mut()
            && last.data == n.data
            && last.catalog == n.catalog
        {
            if n.seq >= last.seq {
                *last = n;
            }
            return;
        }
        b.pending.push_back(n);
    }

    /// Takes a head known to be shipped already (rebuilt from the remote).
    pub fn set_shipped(&self, bucket: &str, n: Noted) {
        let mut map = self.lock();
        let b = map.entry(bucket.to_string()).or_default();
        b.shipped = Some(n);
        b.pending.retain(|p| p.seq > n.seq);
    }

    pub fn forget(&self, bucket: &str) {
        self.lock().remove(bucket);
    }

    /// Undoes an `advance` whose publication failed: `n` waits again.
    pub fn requeue(&self, bucket: &str, n: Noted) {
        let mut map = self.lock();
        let b = map.entry(bucket.to_string()).or_default();
        if b.shipped == Some(n) {
            b.shipped = None;
        }
        b.pending.push_front(n);
    }

    /// Moves every bucket's shipped head as far as the shipped segments
    /// allow; returns the buckets whose shipped head moved.
    pub fn advance(&self, data: Option<u64>, catalog: Option<u64>) -> Vec<(String, Noted)> {
        let mut moved = Vec::new();
        for (name, b) in self.lock().iter_mut() {
            let mut newest = None;
            while b.pending.front().is_some_and(|n| n.covered(data, catalog)) {
                newest = b.pending.pop_front();
            }
            if let Some(n) = newest
                && b.shipped.is_none_or(|s| s.seq < n.seq)
            {
                b.shipped = Some(n);
                moved.push((name.clone(), n));
            }
        }
        moved
    }

    /// Every bucket's shipped head, by name.
    pub fn shipped(&self) -> Vec<(String, Noted)> {
        let mut out: Vec<(String, Noted)> = self
            .lock()
            .iter()
            .filter_map(|(k, b)| b.shipped.map(|s| (k.clone(), s)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The collector copied blocks out of segments into segments of
    /// `plane` up to `upto`: a head still waiting may now need those.
    pub fn raise(&self, plane: billet_log::PlaneKind, upto: u64) {
        for b in self.lock().values_mut() {
            for n in &mut b.pending {
                let mark = match plane {
                    billet_log::PlaneKind::Data => &mut n.data,
                    billet_log::PlaneKind::Catalog => &mut n.catalog,
                };
                *mark = Some(mark.map_or(upto, |m| m.max(upto)));
            }
        }
    }

    /// Every head the tier has named or may yet name as shipped, by
    /// bucket: the collector keeps what they reach.
    pub fn all_heads(&self) -> Vec<(String, Cid)> {
        let mut out = Vec::new();
        for (name, b) in self.lock().iter() {
            out.extend(b.shipped.iter().map(|n| (name.clone(), n.head)));
            out.extend(b.pending.iter().map(|n| (name.clone(), n.head)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Heads waiting for segments to ship, summed over buckets.
    pub fn pending(&self) -> usize {
        self.lock().values().map(|b| b.pending.len()).sum()
    }
}

/// `heads.cbor`: a node's shipped heads, with what a rebuild needs of
/// each bucket beyond its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub node: String,
    pub written_ms: i64,
    /// Every data segment up to this id is on the remote.
    pub data_upto: Option<u64>,
    /// Every catalog segment up to this id is on the remote.
    pub catalog_upto: Option<u64>,
    pub buckets: Vec<HeadsBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsBucket {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
    pub head: Cid,
    pub seq: u64,
    /// Leaves of the bucket's commit MMR at this head: the commits from
    /// `head` back along `prev` that its history holds.
    pub mmr_leaves: u64,
}

pub const HEADS_TYPE: &str = "billet.heads";

#[cfg(test)]
mod tests {
    use super::*;

    fn n(seq: u64, data: Option<u64>, catalog: Option<u64>) -> Noted {
        Noted {
            head: billet_block::cid_of(billet_block::Codec::Raw, &seq.to_le_bytes()),
            seq,
            data,
            catalog,
        }
    }

    #[test]
    fn heads_ship_once_every_segment_they_need_has() {
        let t = HeadTracker::default();
        t.note("b", n(1, Some(0), Some(0)));
        t.note("b", n(2, Some(0), Some(0)));
        t.note("b", n(3, Some(1), Some(0)));
        t.note("c", n(7, None, Some(2)));
        assert_eq!(t.pending(), 3, "same marks collapse to the newest");
        assert!(t.advance(None, Some(5)).iter().all(|(b, _)| b == "c"));
        let moved = t.advance(Some(0), Some(0));
        assert_eq!(moved, vec![("b".to_string(), n(2, Some(0), Some(0)))]);
        assert!(t.advance(Some(0), Some(0)).is_empty(), "nothing new");
        t.advance(Some(1), Some(0));
        assert_eq!(
            t.shipped(),
            vec![
                ("b".to_string(), n(3, Some(1), Some(0))),
                ("c".to_string(), n(7, None, Some(2)))
            ]
        );
        t.forget("b");
        assert_eq!(t.shipped().len(), 1);
    }

    #[test]
    fn the_document_round_trips_as_dag_cbor() {
        let doc = HeadsDoc {
            kind: HEADS_TYPE.into(),
            version: 1,
            node: "n1".into(),
            written_ms: 5,
            data_upto: Some(3),
            catalog_upto: None,
            buckets: vec![HeadsBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 1,
                head: n(1, None, None).head,
                seq: 4,
                mmr_leaves: 5,
            }],
        };
        let block = billet_block::encode_dag_cbor(&doc).unwrap();
        let back: HeadsDoc = billet_block::decode_dag_cbor(block.data()).unwrap();
        assert_eq!(back, doc);
    }
}
