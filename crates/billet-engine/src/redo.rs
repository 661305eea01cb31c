//! The catalog plane as the index's redo log.
//!
//! The index does not fsync per transaction: every commit block is durable
//! in the log before its index transaction runs, so after a power loss the
//! index may lag the log but never the other way round. Two halves keep
//! that promise:
//!
//! - **The replay point.** Every commit block written but not yet indexed
//!   is *pending*, filed under the catalog segment that was open when it
//!   was written (it lands there or later).
//!   [`Engine::advance_replay_point`] takes the lowest such segment (or the
//!   open one), makes the index durable up to now and records that
//!   segment as the replay point: every commit in an earlier segment is
//!   then durably indexed. (Not to be confused with the signed checkpoints
//!   of `history`, which are about a bucket's commits.)
//! - **Roll-forward** at start-up: every commit in the segments from the
//!   replay point on is read back; for each bucket, the chain of commits
//!   whose `prev` starts at the indexed head is followed to its end, and
//!   the bucket's rows are rebuilt from the MST at that commit, with the
//!   head, in one index transaction.
//!
//! When two commits claim the same `prev` (a batch whose index transaction
//! failed is retried as a new commit on the same head), the one written
//! last wins: a failed commit is only ever followed by its retry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use billet_block::{Cid, Codec};
use billet_log::PlaneKind;
use billet_records::Commit;

use crate::error::{EngineError, join_error};
use crate::{Engine, Inner};

/// Commits written to the log and not yet through their index
/// transaction, counted by the catalog segment open when each was written.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    by_segment: Mutex<BTreeMap<u64, usize>>,
    /// The last replay point recorded in the index.
    recorded: Mutex<u64>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        self.by_segment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks one commit pending until dropped.
pub(crate) struct PendingCommit {
    inner: Arc<Inner>,
    segment: u64,
}

impl PendingCommit {
    /// Call before the commit block is written: the segment is read under
    /// the same lock the replay point is chosen under, so it either counts
    /// this commit pending or was chosen before the commit could be
    /// written.
    pub(crate) fn begin(inner: &Arc<Inner>) -> PendingCommit {
        let mut map = inner.pending.lock();
        let segment = inner.store.log().open_segment(PlaneKind::Catalog);
        *map.entry(segment).or_default() += 1;
        PendingCommit {
            inner: inner.clone(),
            segment,
        }
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        let mut map = self.inner.pending.lock();
        if let Some(n) = map.get_mut(&self.segment) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.segment);
            }
        }
    }
}

/// Cheap test before decoding: commit blocks name their type.
fn may_be_commit(data: &[u8]) -> bool {
    data.windows(13).any(|w| w == b"billet.commit")
}

impl Engine {
    /// Advances the replay point as far as it safely can (see the module
    /// docs). Call it periodically and after draining on shutdown.
    pub async fn advance_replay_point(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let safe = {
            let map = inner.pending.lock();
            let open = inner.store.log().open_segment(PlaneKind::Catalog);
            map.keys().next().map_or(open, |&s| s.min(open))
        };
        let recorded = *inner
            .pending
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if safe > recorded {
            inner.index.set_replay_from(safe).await?;
            let mut r = inner
                .pending
                .recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *r = (*r).max(safe);
        }
        Ok(())
    }

    /// Rolls every bucket forward to the last commit the log holds for it
    /// (see the module docs). Returns one line per bucket it moved.
    pub(crate) async fn roll_forward(&self) -> Result<Vec<String>, EngineError> {
        let from = self.inner.index.replay_from().await?;
        *self
            .inner
            .pending
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = from;
        let log = self.log().clone();
        let commits: Vec<(Cid, Commit)> = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            log.scan_from(PlaneKind::Catalog, from, &mut |b| {
                if b.codec() == Codec::DagCbor
                    && may_be_commit(b.data())
                    && let Ok(c) = Commit::decode(b.data())
                {
                    out.push((*b.cid(), c));
                }
            })?;
            Ok::<_, EngineError>(out)
        })
        .await
        .map_err(join_error)??;
        let mut moved = Vec::new();
        if commits.is_empty() {
            return Ok(moved);
        }
        // (bucket, prev) → the commit written last on that head.
        let mut next: HashMap<(&str, Cid), (Cid, &Commit)> = HashMap::new();
        for (cid, c) in &commits {
            if let Some(prev) = c.prev {
                next.insert((c.bucket.as_str(), prev), (*cid, c));
            }
        }
        for entry in self.inner.index.list_buckets().await? {
            let Some(state) = self.inner.index.bucket(&entry.name).await? else {
                continue;
            };
            let mut head = state.head;
            let mut last: Option<&Commit> = None;
            let mut chain = Vec::new();
            let mut recorded = Vec::new();
            while let Some((cid, c)) = next.get(&(entry.name.as_str(), head)) {
                head = *cid;
                last = Some(c);
                chain.push(*cid);
                recorded.push(billet_index::CommitRow {
                    seq: c.seq,
                    cid: *cid,
                    time_ms: c.time,
                });
            }
            let Some(commit) = last else { continue };
            let (store, root) = (self.store().clone(), commit.data);
            let rows = tokio::task::spawn_blocking(move || crate::fsck::mst_rows(&store, &root))
                .await
                .map_err(join_error)??;
            let n = rows.len();
            self.inner
                .index
                .rebuild(
                    &entry.name,
                    head,
                    commit.seq,
                    &commit.settings,
                    Box::new(rows.into_iter().map(Ok)),
                )
                .await?;
            // The commits rolled forward become MMR leaves, in order, in
            // a transaction that keeps the head where rebuild put it.
            // The MMR moves with the head in one transaction, so it ends
            // either at the old indexed head (append the chain) or, if the
            // index lost only rows, already at the new one.
            let mmr = crate::mmr::MmrState::load(&self.inner, &entry.name).await?;
            let last_leaf = match billet_mmr::leaf_count(mmr.size) {
                Ok(0) | Err(_) => None,
                Ok(n) => self
                    .inner
                    .index
                    .mmr_nodes(&entry.name, &[billet_mmr::leaf_index(n - 1)])
                    .await?
                    .pop()
                    .flatten(),
            };
            let leaf_of = |c: &Cid| billet_mmr::leaf_hash(&c.to_bytes());
            let mut leaves = Vec::new();
            match last_leaf {
                Some(l) if l == leaf_of(&head) => {}
                Some(l) if l == leaf_of(&state.head) => leaves.extend(&chain),
                None => {
                    leaves.push(state.head);
                    leaves.extend(&chain);
                }
                Some(_) => tracing::warn!(
                    bucket = %entry.name,
                    "the commit MMR ends at neither the old nor the new head; its leaves were not extended"
                ),
            }
            let (nodes, _) = mmr.append(&leaves)?;
            self.inner
                .index
                .commit(billet_index::CommitBatch {
                    bucket: entry.name.clone(),
                    expected_head: head,
                    head,
                    seq: commit.seq,
                    settings: None,
                    changes: Vec::new(),
                    completed_uploads: Vec::new(),
                    mmr: nodes,
                    commits: recorded,
                })
                .await?;
            moved.push(format!(
                "bucket {} rolled forward from seq {} to seq {} (commit {head}, {n} versions re-indexed)",
                entry.name, state.seq, commit.seq
            ));
        }
        // Everything the log holds is now indexed and, after this, durable.
        self.advance_replay_point().await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_commit;

    #[test]
    fn commit_blocks_are_recognised_by_their_type() {
        assert!(may_be_commit(b"\xa7dtypembillet.commit"));
        assert!(!may_be_commit(b"\xa2dtypeobillet.manifest"));
        assert!(!may_be_commit(b""));
    }
}
