//! The per-bucket commit pipeline.
//!
//! Every mutation of a bucket (put, delete, settings) is queued on the
//! bucket. One worker per bucket takes everything queued, checks each
//! operation's conditions against the state it will commit on, applies
//! the survivors to the MST in one batch, writes the new nodes, manifests
//! and a commit block, waits until the batch's data-plane and then
//! catalog-plane bytes are durable, commits the index transaction (head
//! compare-and-swap), and only then answers every writer in the batch.
//! N concurrent writers cost one MST path rewrite per touched subtree and
//! one group of fsyncs, not N.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use billet_block::{Block, Cid};
use billet_index::{CommitBatch, IndexError, NULL_VERSION, RowChange};
use billet_log::Receipt;
use billet_mst::{Mst, Op};
use billet_records::{BucketSettings, Commit, Manifest, Versioning};
use tokio::sync::oneshot;

use crate::error::{EngineError, join_error};
use crate::{Inner, now_ms};

/// A write precondition, checked inside the pipeline against the state
/// the write commits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only if the key has no current object.
    IfNoneMatch,
    /// `If-Match: <etag>`: only if the current object has this ETag.
    IfMatch(String),
}

#[derive(Debug)]
pub(crate) enum Mutation {
    Put {
        key: String,
        manifest: Box<Manifest>,
        condition: Option<Condition>,
        receipt: Receipt,
    },
    Delete {
        key: String,
        version_id: Option<String>,
    },
    Settings(BucketSettings),
}

/// What a mutation did.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Put {
        version_id: Option<String>,
        manifest_cid: Cid,
        manifest: Box<Manifest>,
    },
    Delete {
        version_id: Option<String>,
        delete_marker: bool,
    },
    Settings,
}

struct Pending {
    mutation: Mutation,
    reply: oneshot::Sender<Result<Outcome, EngineError>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub commit: Cid,
    pub seq: u64,
    pub root: Cid,
    pub settings: BucketSettings,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Pending>,
    running: bool,
}

/// A bucket's queue and cached head.
pub(crate) struct Bucket {
    name: String,
    queue: Mutex<Queue>,
    head: Mutex<Option<Head>>,
}

impl Bucket {
    pub fn new(name: &str) -> Bucket {
        Bucket {
            name: name.to_string(),
            queue: Mutex::new(Queue::default()),
            head: Mutex::new(None),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached_head(&self) -> std::sync::MutexGuard<'_, Option<Head>> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn forget_head(&self) {
        *self.cached_head() = None;
    }
}

/// Queues a mutation and waits for the batch it lands in to commit.
pub(crate) async fn submit(
    inner: &Arc<Inner>,
    bucket: &Arc<Bucket>,
    mutation: Mutation,
) -> Result<Outcome, EngineError> {
    let (tx, rx) = oneshot::channel();
    let start_worker = {
        let mut q = bucket.queue();
        q.ops.push(Pending {
            mutation,
            reply: tx,
        });
        !std::mem::replace(&mut q.running, true)
    };
    if start_worker {
        let (inner, bucket) = (inner.clone(), bucket.clone());
        tokio::spawn(async move { worker(inner, bucket).await });
    }
    rx.await
        .map_err(|_| EngineError::Internal("the commit pipeline stopped".into()))?
}

async fn worker(inner: Arc<Inner>, bucket: Arc<Bucket>) {
    loop {
        let batch: Vec<Pending> = {
            let mut q = bucket.queue();
            if q.ops.is_empty() {
                q.running = false;
                return;
            }
            let n = q.ops.len().min(inner.config.max_batch);
            q.ops.drain(..n).collect()
        };
        inner.stats.record_batch(batch.len());
        let (mutations, replies): (Vec<Mutation>, Vec<_>) =
            batch.into_iter().map(|p| (p.mutation, p.reply)).unzip();
        let results = match commit_batch(&inner, &bucket, &mutations).await {
            Ok(results) => results,
            Err(e) => {
                bucket.forget_head();
                let msg = e.to_string();
                tracing::warn!(bucket = %bucket.name, error = %msg, "commit batch failed");
                // The whole batch failed; each writer gets the reason.
                (0..replies.len())
                    .map(|_| Err(EngineError::Internal(format!("commit failed: {msg}"))))
                    .collect()
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

async fn load_head(inner: &Inner, bucket: &Bucket) -> Result<Head, EngineError> {
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
    };
    *bucket.cached_head() = Some(head.clone());
    Ok(head)
}

/// The current version of a key as the batch sees it.
#[derive(Debug, Clone)]
struct Current {
    version_id: String,
    manifest_cid: Cid,
    etag: String,
    delete_marker: bool,
}

/// A fresh, roughly time-ordered, opaque version id.
fn new_version_id() -> String {
    format!("{:012x}{:016x}", now_ms(), rand::random::<u64>())
}

struct Plan {
    results: Vec<Result<Outcome, EngineError>>,
    ops: Vec<Op>,
    changes: Vec<RowChange>,
    blocks: Vec<Block>,
    receipt: Receipt,
    settings: Option<BucketSettings>,
}

async fn current(
    inner: &Inner,
    bucket: &str,
    seen: &mut HashMap<String, Option<Current>>,
    key: &str,
) -> Result<Option<Current>, EngineError> {
    if let Some(c) = seen.get(key) {
        return Ok(c.clone());
    }
    let c = inner
        .index
        .object(bucket, key, None)
        .await?
        .map(|v| Current {
            version_id: v.version_id,
            manifest_cid: v.manifest_cid,
            etag: v.manifest.etag,
            delete_marker: v.manifest.delete_marker,
        });
    seen.insert(key.to_string(), c.clone());
    Ok(c)
}

/// Decides what each mutation does given `head`, in queue order.
async fn plan(
    inner: &Inner,
    bucket: &str,
    head: &Head,
    mutations: &[Mutation],
) -> Result<Plan, EngineError> {
    let mut plan = Plan {
        results: Vec::with_capacity(mutations.len()),
        ops: Vec::new(),
        changes: Vec::new(),
        blocks: Vec::new(),
        receipt: Receipt::default(),
        settings: None,
    };
    let mut settings = head.settings.clone();
    let mut seen: HashMap<String, Option<Current>> = HashMap::new();
    for m in mutations {
        let result = match m {
            Mutation::Put {
                key,
                manifest,
                condition,
                receipt,
            } => {
                // Only conditions and version chains need the current
                // version; an unconditional overwrite in an unversioned
                // bucket costs no index read.
                let needs_current =
                    condition.is_some() || settings.versioning != Versioning::Unversioned;
                let cur = if needs_current {
                    current(inner, bucket, &mut seen, key).await?
                } else {
                    None
                };
                let live = cur.as_ref().filter(|c| !c.delete_marker);
                let ok = match condition {
                    None => true,
                    Some(Condition::IfNoneMatch) => live.is_none(),
                    Some(Condition::IfMatch(etag)) => live.is_some_and(|c| &c.etag == etag),
                };
                if !ok {
                    plan.results
                        .push(Err(EngineError::PreconditionFailed(match condition {
                            Some(Condition::IfNoneMatch) => {
                                "an object already exists under this key"
                            }
                            _ => "the object's ETag does not match If-Match",
                        })));
                    continue;
                }
                let mut manifest = manifest.as_ref().clone();
                let version_id = match settings.versioning {
                    Versioning::Enabled => new_version_id(),
                    Versioning::Suspended | Versioning::Unversioned => NULL_VERSION.to_string(),
                };
                manifest.version_id = (version_id != NULL_VERSION).then(|| version_id.clone());
                // With versioning, each manifest links the version before
                // it, so history is reachable from the head.
                if settings.versioning != Versioning::Unversioned
                    && let Some(c) = &cur
                    && !(c.version_id == NULL_VERSION && version_id == NULL_VERSION)
                {
                    manifest.prev = Some(c.manifest_cid);
                }
                let block = manifest.to_block()?;
                let cid = *block.cid();
                plan.ops.push(Op::put(key.as_bytes(), cid));
                plan.changes.push(RowChange::Put {
                    key: key.clone(),
                    version_id: version_id.clone(),
                    manifest_cid: cid,
                    manifest: manifest.clone(),
                });
                plan.blocks.push(block);
                plan.receipt = plan.receipt.merge(*receipt);
                seen.insert(
                    key.clone(),
                    Some(Current {
                        version_id: version_id.clone(),
                        manifest_cid: cid,
                        etag: manifest.etag.clone(),
                        delete_marker: false,
                    }),
                );
                Ok(Outcome::Put {
                    version_id: manifest.version_id.clone(),
                    manifest_cid: cid,
                    manifest: Box::new(manifest),
                })
            }
            Mutation::Delete {
                key,
                version_id: None,
            } => {
                let cur = current(inner, bucket, &mut seen, key).await?;
                match settings.versioning {
                    Versioning::Unversioned => {
                        if cur.is_some() {
                            plan.ops.push(Op::delete(key.as_bytes()));
                            plan.changes.push(RowChange::Delete {
                                key: key.clone(),
                                version_id: NULL_VERSION.into(),
                            });
                            seen.insert(key.clone(), None);
                        }
                        Ok(Outcome::Delete {
                            version_id: None,
                            delete_marker: false,
                        })
                    }
                    Versioning::Enabled | Versioning::Suspended => {
                        // A delete marker becomes the current version.
                        let vid = if settings.versioning == Versioning::Enabled {
                            new_version_id()
                        } else {
                            NULL_VERSION.to_string()
                        };
                        let mut marker = Manifest::delete_marker(
                            key.clone(),
                            if vid == NULL_VERSION {
                                String::new()
                            } else {
                                vid.clone()
                            },
                            now_ms(),
                        );
                        if let Some(c) = &cur
                            && !(c.version_id == NULL_VERSION && vid == NULL_VERSION)
                        {
                            marker.prev = Some(c.manifest_cid);
                        }
                        let block = marker.to_block()?;
                        let cid = *block.cid();
                        plan.ops.push(Op::put(key.as_bytes(), cid));
                        plan.changes.push(RowChange::Put {
                            key: key.clone(),
                            version_id: vid.clone(),
                            manifest_cid: cid,
                            manifest: marker,
                        });
                        plan.blocks.push(block);
                        seen.insert(
                            key.clone(),
                            Some(Current {
                                version_id: vid.clone(),
                                manifest_cid: cid,
                                etag: String::new(),
                                delete_marker: true,
                            }),
                        );
                        Ok(Outcome::Delete {
                            version_id: (vid != NULL_VERSION).then_some(vid),
                            delete_marker: true,
                        })
                    }
                }
            }
            Mutation::Delete {
                key,
                version_id: Some(vid),
            } => {
                // Permanently removing one version.
                let target = inner.index.object(bucket, key, Some(vid)).await?;
                match target {
                    None => Ok(Outcome::Delete {
                        version_id: Some(vid.clone()),
                        delete_marker: false,
                    }),
                    Some(t) => {
                        plan.changes.push(RowChange::Delete {
                            key: key.clone(),
                            version_id: vid.clone(),
                        });
                        let cur = current(inner, bucket, &mut seen, key).await?;
                        if cur.as_ref().is_some_and(|c| &c.version_id == vid) {
                            // The newest remaining version becomes the MST value.
                            let next = next_latest(inner, bucket, key, vid).await?;
                            match &next {
                                Some(n) => plan.ops.push(Op::put(key.as_bytes(), n.manifest_cid)),
                                None => plan.ops.push(Op::delete(key.as_bytes())),
                            }
                            seen.insert(key.clone(), next);
                        }
                        Ok(Outcome::Delete {
                            version_id: Some(vid.clone()),
                            delete_marker: t.is_delete_marker(),
                        })
                    }
                }
            }
            Mutation::Settings(s) => {
                settings = s.clone();
                plan.settings = Some(s.clone());
                Ok(Outcome::Settings)
            }
        };
        plan.results.push(result);
    }
    Ok(plan)
}

/// The version that becomes current when `removed` (the current one) goes.
async fn next_latest(
    inner: &Inner,
    bucket: &str,
    key: &str,
    removed: &str,
) -> Result<Option<Current>, EngineError> {
    let page = inner
        .index
        .list_versions(
            bucket,
            &billet_index::VersionQuery {
                prefix: key.to_string(),
                max_keys: 2,
                ..Default::default()
            },
        )
        .await?;
    let next = page
        .versions
        .into_iter()
        .find(|v| v.key == key && v.version_id != removed);
    match next {
        None => Ok(None),
        Some(v) => {
            let full = inner.index.object(bucket, key, Some(&v.version_id)).await?;
            Ok(full.map(|f| Current {
                version_id: f.version_id,
                manifest_cid: f.manifest_cid,
                etag: f.manifest.etag,
                delete_marker: f.manifest.delete_marker,
            }))
        }
    }
}

/// Commits one batch, re-planning on a head conflict (another writer moved
/// the head: a second node, an import). Returns one result per mutation.
async fn commit_batch(
    inner: &Arc<Inner>,
    bucket: &Arc<Bucket>,
    mutations: &[Mutation],
) -> Result<Vec<Result<Outcome, EngineError>>, EngineError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let head = load_head(inner, bucket).await?;
        let plan = plan(inner, &bucket.name, &head, mutations).await?;
        if plan.changes.is_empty() && plan.settings.is_none() {
            // Nothing to commit (failed conditions, deletes of absent keys).
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
        let commit = Commit::new(
            bucket.name.clone(),
            head.seq + 1,
            applied.root,
            Some(head.commit),
            now_ms(),
            settings.clone(),
        )
        .to_block()?;
        let commit_cid = *commit.cid();
        let mut catalog = plan.blocks;
        catalog.extend(applied.blocks);
        catalog.push(commit);
        for b in &catalog {
            inner.store.remember(b.cid(), b.data());
        }
        // Pending until its index transaction is through (see `redo`).
        let _pending = crate::redo::PendingCommit::begin(inner);
        let log = inner.store.log().clone();
        let written = tokio::task::spawn_blocking(move || log.write_catalog(&catalog))
            .await
            .map_err(join_error)??;
        // Data plane, then catalog plane: a commit is never durable before
        // the bodies it references.
        inner.store.log().sync(plan.receipt.merge(written)).await?;
        let batch = CommitBatch {
            bucket: bucket.name.clone(),
            expected_head: head.commit,
            head: commit_cid,
            seq: head.seq + 1,
            settings: plan.settings,
            changes: plan.changes,
            completed_uploads: vec![],
            mmr: vec![],
        };
        match inner.index.commit(batch).await {
            Ok(()) => {
                inner.stats.record_commit();
                *bucket.cached_head() = Some(Head {
                    commit: commit_cid,
                    seq: head.seq + 1,
                    root: applied.root,
                    settings,
                });
                return Ok(plan.results);
            }
            Err(IndexError::Conflict { .. }) if attempts < 8 => {
                // Rebase on the new head.
                bucket.forget_head();
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
