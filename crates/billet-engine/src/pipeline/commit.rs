//! Committing a planned batch: the MST takes the plan's operations, the
//! new blocks and a commit block go to the catalog plane, the batch waits
//! until its bodies (data plane) and then its catalog bytes are durable,
//! and the index transaction moves the head by compare-and-swap — with
//! the MMR leaf of the new commit — re-planning if another writer moved it.

use std::sync::Arc;

use billet_block::Cid;
use billet_index::{CommitBatch, CommitRow, IndexError};
use billet_mst::Mst;
use billet_records::{BucketSettings, Commit};

use super::mutation::{Mutation, Outcome};
use super::plan::{Plan, Stamps, plan};
use super::queue::BucketQueue;
use super::rows;
use crate::error::{EngineError, join_error};
use crate::mmr::MmrState;
use crate::{Inner, now_ms};

/// Head CAS conflicts a batch re-plans through before giving up.
const MAX_ATTEMPTS: usize = 8;

/// A bucket's head as a batch builds on it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub commit: Cid,
    pub seq: u64,
    pub root: Cid,
    pub settings: BucketSettings,
    pub mmr: MmrState,
}

async fn load_head(inner: &Inner, bucket: &BucketQueue) -> Result<Head, EngineError> {
    if let Some(h) = bucket.cached_head().clone() {
        return Ok(h);
    }
    let state = inner
        .index
        .bucket(&bucket.name)
        .await?
        .ok_or_else(|| EngineError::NoSuchBucket(bucket.name.clone()))?;
    let commit = Commit::decode(&billet_block::BlockStore::get(
        inner.store.as_ref(),
        &state.head,
    )?)?;
    let head = Head {
        commit: state.head,
        seq: state.seq,
        root: commit.data,
        settings: state.settings,
        mmr: MmrState::load(inner, &bucket.name).await?,
    };
    *bucket.cached_head() = Some(head.clone());
    Ok(head)
}

/// A fresh, roughly time-ordered, opaque version id.
fn new_version_id() -> String {
    format!("{:012x}{:016x}", now_ms(), rand::random::<u64>())
}

/// Carries out a plan's aborts (after its commit, if it had one).
async fn run_aborts(inner: &Inner, bucket: &str, plan: &mut Plan) {
    for (slot, id) in std::mem::take(&mut plan.aborts) {
        if let Err(e) = inner.index.abort_upload(bucket, &id).await {
            plan.results[slot] = Err(e.into());
        }
    }
}

/// Commits one batch, re-planning on a head conflict (another writer moved
/// the head: a second node, an import). Returns one result per mutation
/// it took, in order: a prefix of `mutations` (see [`Plan::results`]).
pub(super) async fn commit_batch(
    inner: &Arc<Inner>,
    bucket: &Arc<BucketQueue>,
    mutations: &[Mutation],
) -> Result<Vec<Result<Outcome, EngineError>>, EngineError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let head = load_head(inner, bucket).await?;
        let rows = rows::load(inner, &bucket.name, &head.settings, mutations).await?;
        let mut plan = plan(
            &head.settings,
            &rows,
            mutations,
            Stamps {
                now_ms: now_ms(),
                new_version_id: &mut new_version_id,
            },
        )?;
        if !plan.changes_bucket() {
            // Nothing to commit (failed conditions, deletes of absent keys,
            // aborts).
            run_aborts(inner, &bucket.name, &mut plan).await;
            return Ok(plan.results);
        }
        let store = inner.store.clone();
        let root = head.root;
        let ops = plan.ops.clone();
        let applied =
            tokio::task::spawn_blocking(move || Mst::new(store.as_ref()).apply(&root, ops))
                .await
                .map_err(join_error)??;
        let settings = plan
            .settings
            .clone()
            .unwrap_or_else(|| head.settings.clone());
        let time = now_ms();
        let commit = Commit::new(
            bucket.name.clone(),
            head.seq + 1,
            applied.root,
            Some(head.commit),
            time,
            settings.clone(),
        )
        .to_block()?;
        let commit_cid = *commit.cid();
        let mut catalog = std::mem::take(&mut plan.blocks);
        catalog.extend(applied.blocks);
        catalog.push(commit);
        for b in &catalog {
            inner.store.remember(b.cid(), b.data());
        }
        // Pending until its index transaction is through (see `redo`),
        // and its new blocks kept from any collection until then.
        let _pending = crate::redo::PendingCommit::begin(inner);
        let _staging = inner.store.log().staging();
        let log = inner.store.log().clone();
        let written = tokio::task::spawn_blocking(move || log.write_catalog(&catalog))
            .await
            .map_err(join_error)??;
        // Data plane, then catalog plane: a commit is never durable before
        // the bodies it references.
        inner.store.log().sync(plan.receipt.merge(written)).await?;
        let (mmr_nodes, mmr) = head
            .mmr
            .append(&head.mmr.leaves_for(head.commit, commit_cid))?;
        let batch = CommitBatch {
            bucket: bucket.name.clone(),
            expected_head: head.commit,
            head: commit_cid,
            seq: head.seq + 1,
            settings: plan.settings.take(),
            changes: std::mem::take(&mut plan.changes),
            completed_uploads: std::mem::take(&mut plan.completed_uploads),
            mmr: mmr_nodes,
            commits: vec![CommitRow {
                seq: head.seq + 1,
                cid: commit_cid,
                time_ms: time,
            }],
        };
        match inner.index.commit(batch).await {
            Ok(()) => {
                inner.stats.record_commit();
                if let Some(cold) = &inner.cold {
                    cold.note_head(inner.store.log(), &bucket.name, commit_cid, head.seq + 1);
                }
                *bucket.cached_head() = Some(Head {
                    commit: commit_cid,
                    seq: head.seq + 1,
                    root: applied.root,
                    settings,
                    mmr,
                });
                run_aborts(inner, &bucket.name, &mut plan).await;
                return Ok(plan.results);
            }
            Err(IndexError::Conflict { .. }) if attempts < MAX_ATTEMPTS => {
                // Rebase on the new head.
                bucket.forget_head();
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
