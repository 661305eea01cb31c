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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use billet_block::{Block, Cid};
use billet_index::{CommitBatch, IndexError, NULL_VERSION, ObjectVersion, RowChange, VersionQuery};
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
        /// The multipart upload this put completes: it must still exist,
        /// and its rows go in the same index transaction.
        upload: Option<String>,
    },
    Delete {
        key: String,
        version_id: Option<String>,
    },
    /// New tags for one version (the latest when `version_id` is `None`).
    Retag {
        key: String,
        version_id: Option<String>,
        tags: BTreeMap<String, String>,
    },
    /// Abandons a multipart upload. Aborts and completes share the bucket's
    /// queue, so a race between them has exactly one winner.
    Abort {
        upload_id: String,
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
    Retag {
        version_id: Option<String>,
    },
    Abort,
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
    pub mmr: MmrState,
}

/// A bucket's commit MMR as appending needs it: its size and peaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmrState {
    pub size: u64,
    /// Peak values, highest first.
    pub peaks: Vec<billet_mmr::Hash>,
}

impl MmrState {
    /// Reads the size and the O(log n) peak nodes from the index.
    pub(crate) async fn load(inner: &Inner, bucket: &str) -> Result<MmrState, EngineError> {
        let size = inner.index.mmr_size(bucket).await?;
        let idx = billet_mmr::peaks(size)
            .map_err(|e| EngineError::Internal(format!("bucket {bucket}'s MMR: {e}")))?;
        let values = inner.index.mmr_nodes(bucket, &idx).await?;
        let peaks = values
            .into_iter()
            .zip(&idx)
            .map(|(v, i)| {
                v.ok_or_else(|| {
                    EngineError::Internal(format!("bucket {bucket}'s MMR lacks peak node {i}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MmrState { size, peaks })
    }

    /// Appends one leaf per commit (in order); returns the new nodes and
    /// the state after them.
    pub(crate) fn append(
        &self,
        commits: &[Cid],
    ) -> Result<(Vec<(u64, billet_mmr::Hash)>, MmrState), EngineError> {
        let mut state = self.clone();
        let mut nodes = Vec::new();
        for c in commits {
            let added = billet_mmr::append(
                state.size,
                &state.peaks,
                billet_mmr::leaf_hash(&c.to_bytes()),
            )
            .map_err(|e| EngineError::Internal(format!("MMR append: {e}")))?;
            state.peaks = billet_mmr::peaks_after(state.size, &state.peaks, &added)
                .map_err(|e| EngineError::Internal(format!("MMR append: {e}")))?;
            state.size += added.len() as u64;
            nodes.extend(added);
        }
        Ok((nodes, state))
    }

    /// The commits a new commit on `head` adds as leaves: the MMR of a
    /// bucket starts with the first commit it knew (creation or import),
    /// which `Engine::start_history` appends at once; it is still missing
    /// only if a crash came between, or the bucket predates that.
    pub(crate) fn leaves_for(&self, head: Cid, new: Cid) -> Vec<Cid> {
        if self.size == 0 {
            vec![head, new]
        } else {
            vec![new]
        }
    }
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
        let (mut mutations, mut replies): (Vec<Mutation>, Vec<_>) =
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
        // What the batch did not take goes back to the front of the queue.
        let taken = results.len().max(1).min(mutations.len());
        let rest: Vec<Pending> = mutations
            .drain(taken..)
            .zip(replies.drain(taken..))
            .map(|(mutation, reply)| Pending { mutation, reply })
            .collect();
        if !rest.is_empty() {
            bucket.queue().ops.splice(0..0, rest);
        }
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
        mmr: MmrState::load(inner, &bucket.name).await?,
    };
    *bucket.cached_head() = Some(head.clone());
    Ok(head)
}

/// The current version of a key as the batch sees it.
#[derive(Debug, Clone)]
struct Current {
    version_id: String,
    manifest_cid: Cid,
    /// The manifest's own `prev`: where the chain continues below it.
    prev: Option<Cid>,
    etag: String,
    delete_marker: bool,
}

impl Current {
    fn of(v: &ObjectVersion) -> Current {
        Current {
            version_id: v.version_id.clone(),
            manifest_cid: v.manifest_cid,
            prev: v.manifest.prev,
            etag: v.manifest.etag.clone(),
            delete_marker: v.manifest.delete_marker,
        }
    }
}

/// A fresh, roughly time-ordered, opaque version id.
fn new_version_id() -> String {
    format!("{:012x}{:016x}", now_ms(), rand::random::<u64>())
}

struct Plan {
    /// One per mutation planned; mutations past `results.len()` wait for
    /// the next batch (they need index rows this batch changes).
    results: Vec<Result<Outcome, EngineError>>,
    ops: Vec<Op>,
    changes: Vec<RowChange>,
    blocks: Vec<Block>,
    receipt: Receipt,
    settings: Option<BucketSettings>,
    completed_uploads: Vec<String>,
    /// (result slot, upload id) of the aborts to carry out.
    aborts: Vec<(usize, String)>,
}

impl Plan {
    /// A new current version of `key`: its manifest block, the MST value
    /// and the index row. Returns the manifest's CID.
    fn add_version(
        &mut self,
        key: &str,
        version_id: &str,
        manifest: Manifest,
    ) -> Result<Cid, EngineError> {
        let block = manifest.to_block()?;
        let cid = *block.cid();
        self.ops.push(Op::put(key.as_bytes(), cid));
        self.changes.push(RowChange::Put {
            key: key.to_string(),
            version_id: version_id.to_string(),
            manifest_cid: cid,
            manifest,
        });
        self.blocks.push(block);
        Ok(cid)
    }
}

/// What planning knows beyond the committed index rows.
#[derive(Default)]
struct Seen {
    current: HashMap<String, Option<Current>>,
    /// Keys whose rows this batch changes.
    touched: HashSet<String>,
    /// Uploads this batch completes or aborts.
    closed: HashSet<String>,
}

async fn current(
    inner: &Inner,
    bucket: &str,
    seen: &mut Seen,
    key: &str,
) -> Result<Option<Current>, EngineError> {
    if let Some(c) = seen.current.get(key) {
        return Ok(c.clone());
    }
    let c = inner
        .index
        .object(bucket, key, None)
        .await?
        .map(|v| Current::of(&v));
    seen.current.insert(key.to_string(), c.clone());
    Ok(c)
}

/// Every version of `key`, newest first, with manifests.
async fn key_versions(
    inner: &Inner,
    bucket: &str,
    key: &str,
) -> Result<Vec<ObjectVersion>, EngineError> {
    let mut out = Vec::new();
    let mut q = VersionQuery {
        prefix: key.to_string(),
        max_keys: 1000,
        ..Default::default()
    };
    loop {
        let page = inner.index.list_versions(bucket, &q).await?;
        let mut past = false;
        for v in &page.versions {
            if v.key != key {
                // Versions come key by key: the key's own are all first.
                past = true;
                break;
            }
            if let Some(full) = inner.index.object(bucket, key, Some(&v.version_id)).await? {
                out.push(full);
            }
        }
        if past || !page.truncated {
            return Ok(out);
        }
        q.key_marker = page.next_key_marker;
        q.version_id_marker = page.next_version_id_marker;
    }
}

/// Replaces (`Some`) or removes (`None`) one version of a key and re-links
/// the newer versions above it, so the `prev` chain from the MST value
/// holds exactly the versions the index keeps. Returns the key's new
/// current version.
async fn rewrite_chain(
    inner: &Inner,
    bucket: &str,
    key: &str,
    version_id: &str,
    replacement: Option<Manifest>,
    plan: &mut Plan,
) -> Result<Option<Current>, EngineError> {
    let versions = key_versions(inner, bucket, key).await?;
    let Some(at) = versions.iter().position(|v| v.version_id == version_id) else {
        return Err(EngineError::NoSuchVersion {
            key: key.to_string(),
            version_id: version_id.to_string(),
        });
    };
    let mut below = match replacement {
        Some(mut m) => {
            m.prev = versions[at].manifest.prev;
            let block = m.to_block()?;
            let cid = *block.cid();
            plan.changes.push(RowChange::Replace {
                key: key.to_string(),
                version_id: version_id.to_string(),
                manifest_cid: cid,
                manifest: m,
            });
            plan.blocks.push(block);
            Some((cid, versions[at].clone()))
        }
        None => {
            plan.changes.push(RowChange::Delete {
                key: key.to_string(),
                version_id: version_id.to_string(),
            });
            None
        }
    };
    let mut below_cid = match &below {
        Some((cid, _)) => Some(*cid),
        None => versions[at].manifest.prev,
    };
    for v in versions[..at].iter().rev() {
        let mut m = v.manifest.clone();
        m.prev = below_cid;
        let block = m.to_block()?;
        let cid = *block.cid();
        plan.changes.push(RowChange::Replace {
            key: key.to_string(),
            version_id: v.version_id.clone(),
            manifest_cid: cid,
            manifest: m,
        });
        plan.blocks.push(block);
        below_cid = Some(cid);
        below = Some((cid, v.clone()));
    }
    // The newest surviving version, with its (possibly new) CID.
    let latest = match below {
        Some((cid, v)) => Some(Current {
            manifest_cid: cid,
            ..Current::of(&v)
        }),
        None => versions.get(at + 1).map(Current::of),
    };
    match &latest {
        Some(c) => plan.ops.push(Op::put(key.as_bytes(), c.manifest_cid)),
        None => plan.ops.push(Op::delete(key.as_bytes())),
    }
    Ok(latest)
}

/// Where a new manifest's `prev` points in a versioned bucket, given the
/// version it goes on top of. A new null version replaces any older null version, which
/// therefore leaves the chain. `None` means: defer to the next batch.
async fn chain_below(
    inner: &Inner,
    bucket: &str,
    key: &str,
    new_is_null: bool,
    cur: Option<Current>,
    seen: &mut Seen,
    plan: &mut Plan,
) -> Result<Option<Option<Cid>>, EngineError> {
    let Some(cur) = cur else {
        return Ok(Some(None));
    };
    if !new_is_null {
        return Ok(Some(Some(cur.manifest_cid)));
    }
    if cur.version_id == NULL_VERSION {
        // Replacing the current null version: keep what lies below it.
        return Ok(Some(cur.prev));
    }
    if seen.touched.contains(key) {
        return Ok(None);
    }
    if inner
        .index
        .object(bucket, key, Some(NULL_VERSION))
        .await?
        .is_some()
    {
        let latest = rewrite_chain(inner, bucket, key, NULL_VERSION, None, plan).await?;
        // rewrite_chain pushed an MST op for the key; the new version's
        // own op, later in the list, wins.
        return Ok(Some(latest.map(|c| c.manifest_cid)));
    }
    Ok(Some(Some(cur.manifest_cid)))
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
        completed_uploads: Vec::new(),
        aborts: Vec::new(),
    };
    let mut settings = head.settings.clone();
    let mut seen = Seen::default();
    for m in mutations {
        // A mutation that reads a key's version rows must not follow a
        // change to that key in the same batch: it goes in the next one.
        let reads_rows = match m {
            Mutation::Delete {
                key,
                version_id: Some(_),
            }
            | Mutation::Retag { key, .. } => Some(key),
            _ => None,
        };
        if let Some(key) = reads_rows
            && seen.touched.contains(key)
        {
            break;
        }
        let slot = plan.results.len();
        let result = match m {
            Mutation::Put {
                key,
                manifest,
                condition,
                receipt,
                upload,
            } => {
                if let Some(id) = upload {
                    let open = !seen.closed.contains(id)
                        && inner.index.upload(bucket, id).await?.is_some();
                    if !open {
                        plan.results
                            .push(Err(EngineError::NoSuchUpload(id.clone())));
                        continue;
                    }
                }
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
                let version_id = match settings.versioning {
                    Versioning::Enabled => new_version_id(),
                    Versioning::Suspended | Versioning::Unversioned => NULL_VERSION.to_string(),
                };
                let is_null = version_id == NULL_VERSION;
                // With versioning, each manifest links the version below
                // it, so history is reachable from the head.
                let prev = if settings.versioning == Versioning::Unversioned {
                    None
                } else {
                    match chain_below(inner, bucket, key, is_null, cur, &mut seen, &mut plan)
                        .await?
                    {
                        Some(prev) => prev,
                        None => break,
                    }
                };
                let mut manifest = manifest.as_ref().clone();
                manifest.version_id = (!is_null).then(|| version_id.clone());
                manifest.prev = prev;
                let cid = plan.add_version(key, &version_id, manifest.clone())?;
                plan.receipt = plan.receipt.merge(*receipt);
                if let Some(id) = upload {
                    seen.closed.insert(id.clone());
                    plan.completed_uploads.push(id.clone());
                }
                seen.touched.insert(key.clone());
                seen.current.insert(
                    key.clone(),
                    Some(Current {
                        version_id: version_id.clone(),
                        manifest_cid: cid,
                        prev,
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
                            seen.touched.insert(key.clone());
                            seen.current.insert(key.clone(), None);
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
                        let is_null = vid == NULL_VERSION;
                        let Some(prev) =
                            chain_below(inner, bucket, key, is_null, cur, &mut seen, &mut plan)
                                .await?
                        else {
                            break;
                        };
                        let mut marker = Manifest::delete_marker(
                            key.clone(),
                            if is_null { String::new() } else { vid.clone() },
                            now_ms(),
                        );
                        marker.prev = prev;
                        let cid = plan.add_version(key, &vid, marker)?;
                        seen.touched.insert(key.clone());
                        seen.current.insert(
                            key.clone(),
                            Some(Current {
                                version_id: vid.clone(),
                                manifest_cid: cid,
                                prev,
                                etag: String::new(),
                                delete_marker: true,
                            }),
                        );
                        Ok(Outcome::Delete {
                            version_id: (!is_null).then_some(vid),
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
                match inner.index.object(bucket, key, Some(vid)).await? {
                    None => Ok(Outcome::Delete {
                        version_id: Some(vid.clone()),
                        delete_marker: false,
                    }),
                    Some(t) => {
                        let latest =
                            rewrite_chain(inner, bucket, key, vid, None, &mut plan).await?;
                        seen.touched.insert(key.clone());
                        seen.current.insert(key.clone(), latest);
                        Ok(Outcome::Delete {
                            version_id: Some(vid.clone()),
                            delete_marker: t.is_delete_marker(),
                        })
                    }
                }
            }
            Mutation::Retag {
                key,
                version_id,
                tags,
            } => {
                let target = inner
                    .index
                    .object(bucket, key, version_id.as_deref())
                    .await?;
                match target {
                    None => Err(match version_id {
                        Some(v) => EngineError::NoSuchVersion {
                            key: key.clone(),
                            version_id: v.clone(),
                        },
                        None => EngineError::NoSuchKey(key.clone()),
                    }),
                    Some(t) if t.is_delete_marker() => Err(match version_id {
                        Some(_) => {
                            EngineError::MethodNotAllowed("a delete marker cannot carry tags")
                        }
                        None => EngineError::NoSuchKey(key.clone()),
                    }),
                    Some(t) => {
                        let mut m = t.manifest.clone();
                        m.tags = tags.clone();
                        m.modified = now_ms().max(m.created);
                        let latest =
                            rewrite_chain(inner, bucket, key, &t.version_id, Some(m), &mut plan)
                                .await?;
                        seen.touched.insert(key.clone());
                        seen.current.insert(key.clone(), latest);
                        Ok(Outcome::Retag {
                            version_id: (t.version_id != NULL_VERSION).then_some(t.version_id),
                        })
                    }
                }
            }
            Mutation::Abort { upload_id } => {
                let open = !seen.closed.contains(upload_id)
                    && inner.index.upload(bucket, upload_id).await?.is_some();
                if open {
                    seen.closed.insert(upload_id.clone());
                    plan.aborts.push((slot, upload_id.clone()));
                    Ok(Outcome::Abort)
                } else {
                    Err(EngineError::NoSuchUpload(upload_id.clone()))
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

/// Carries out a plan's aborts (after its commit, if it had one).
async fn run_aborts(inner: &Inner, bucket: &str, plan: &mut Plan) {
    for (slot, id) in std::mem::take(&mut plan.aborts) {
        if let Err(e) = inner.index.abort_upload(bucket, &id).await {
            plan.results[slot] = Err(match e {
                IndexError::NoSuchUpload(u) => EngineError::NoSuchUpload(u),
                other => other.into(),
            });
        }
    }
}

/// Commits one batch, re-planning on a head conflict (another writer moved
/// the head: a second node, an import). Returns one result per mutation
/// it took, in order: a prefix of `mutations` (see [`Plan::results`]).
async fn commit_batch(
    inner: &Arc<Inner>,
    bucket: &Arc<Bucket>,
    mutations: &[Mutation],
) -> Result<Vec<Result<Outcome, EngineError>>, EngineError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let head = load_head(inner, bucket).await?;
        let mut plan = plan(inner, &bucket.name, &head, mutations).await?;
        if plan.changes.is_empty() && plan.settings.is_none() {
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
        let mut catalog = std::mem::take(&mut plan.blocks);
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
        };
        match inner.index.commit(batch).await {
            Ok(()) => {
                inner.stats.record_commit();
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
            Err(IndexError::Conflict { .. }) if attempts < 8 => {
                // Rebase on the new head.
                bucket.forget_head();
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
