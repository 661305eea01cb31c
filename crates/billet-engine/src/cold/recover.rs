//! Rebuilding a node whose data directory is lost, from its remote copy:
//! `heads.cbor` names each bucket's shipped head and the segments the
//! remote holds in full; each such segment is installed in an empty log
//! as evicted (its sidecar fetched, its frame table from the zstd seek
//! table or cut again from the sidecar), the open segments start above
//! every id the remote has seen (no new segment reuses a remote name),
//! and then each bucket is restored at its shipped head, every block it
//! reaches read through the remote and checked (`Engine::restore_bucket`).
//! Nothing after the shipped heads is claimed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use billet_block::{BlockError, BlockStore, Cid};
use billet_index::{CommitBatch, CommitRow, Index, RemoteState};
use billet_log::PlaneKind;
use billet_records::Commit;
use billet_remote::{Encoding, FrameTable, Named, Remote, RemoteCopy, RemoteError, frames};
use bytes::Bytes;
use futures_util::StreamExt;

use super::heads::{HEADS_TYPE, HeadsBucket, HeadsDoc, Noted};
use super::{ColdConfig, PLANES};
use crate::error::{EngineError, join_error};
use crate::mmr::MmrState;
use crate::verify::{VerifyReport, verify_head};
use crate::{Engine, now_ms};

/// What `prepare_recovery` laid out.
#[derive(Debug, Clone)]
pub struct RecoveryPlan {
    pub heads: HeadsDoc,
    /// Per plane: segments installed, their bytes.
    pub installed: Vec<(String, u64, u64)>,
    /// Index rows of segments the shipped heads do not cover, forgotten
    /// (their objects queued for deletion).
    pub forgotten: u64,
}

fn remote_err(e: RemoteError) -> EngineError {
    EngineError::Remote(e.to_string())
}

/// Reads the node's `heads.cbor`.
pub async fn read_heads(
    remote: &dyn Remote,
    layout: &billet_remote::Layout,
) -> Result<HeadsDoc, EngineError> {
    let key = layout.heads();
    let bytes = match remote.get(&key).await {
        Ok(b) => b,
        Err(RemoteError::NotFound { .. }) => {
            return Err(EngineError::Invalid(format!(
                "the remote has no {key}: node {} never shipped a head there",
                layout.node()
            )));
        }
        Err(e) => return Err(remote_err(e)),
    };
    let doc: HeadsDoc = billet_block::decode_dag_cbor(&bytes)
        .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
    if doc.kind != HEADS_TYPE || doc.version != 1 || doc.node != layout.node() {
        return Err(EngineError::Corrupt(format!(
            "{key} is a {:?} version {} of node {:?}, not billet.heads version 1 of {:?}",
            doc.kind,
            doc.version,
            doc.node,
            layout.node()
        )));
    }
    Ok(doc)
}

/// The frame table of a stored segment, from the remote.
async fn frames_of(
    remote: &dyn Remote,
    key: &str,
    encoding: Encoding,
    size: u64,
    block_ends: &[u64],
    segment_len: u64,
    frame_bytes: u64,
) -> Result<FrameTable, EngineError> {
    let table = match encoding {
        Encoding::Identity => {
            if size != segment_len {
                return Err(EngineError::Corrupt(format!(
                    "{key} holds {size} bytes, its sidecar describes {segment_len}"
                )));
            }
            FrameTable::identity(&frames::cut_points(
                block_ends.iter().copied(),
                segment_len,
                frame_bytes,
            ))
        }
        Encoding::Zstd => {
            let footer_at = size.checked_sub(frames::SEEK_TABLE_FOOTER).ok_or_else(|| {
                EngineError::Corrupt(format!("{key} is too short for a seek table"))
            })?;
            let footer = remote
                .get_range(key, footer_at..size)
                .await
                .map_err(remote_err)?;
            let len = frames::seek_table_len(&footer)
                .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
            let at = size.checked_sub(len).ok_or_else(|| {
                EngineError::Corrupt(format!("{key}: the seek table is longer than the object"))
            })?;
            let tail = remote.get_range(key, at..size).await.map_err(remote_err)?;
            let t = frames::parse_seek_table(&tail)
                .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
            if t.stored_len() != at {
                return Err(EngineError::Corrupt(format!(
                    "{key}: the seek table's frames end at {}, the table starts at {at}",
                    t.stored_len()
                )));
            }
            t
        }
    };
    if table.raw_len() != segment_len {
        return Err(EngineError::Corrupt(format!(
            "{key}: the frames hold {} bytes, the sidecar describes {segment_len}",
            table.raw_len()
        )));
    }
    Ok(table)
}

/// Lays out the log in `log_dir` (which must hold no segments) from the
/// remote, and makes the index agree: installed segments recorded,
/// others of this node forgotten, the replay point above them.
pub async fn prepare_recovery(
    cold: &ColdConfig,
    log_dir: &Path,
    index: &dyn Index,
) -> Result<RecoveryPlan, EngineError> {
    for plane in PLANES {
        let dir = log_dir.join(plane.name());
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(EngineError::Invalid(format!(
                "{} is not empty: recovery rebuilds a lost node into an empty data directory",
                dir.display()
            )));
        }
    }
    let layout = billet_remote::Layout::new(&cold.node)
        .ok_or_else(|| EngineError::Invalid(format!("bad node name {:?}", cold.node)))?;
    let remote = cold.remote.clone();
    let heads = read_heads(remote.as_ref(), &layout).await?;
    let listing = remote
        .list(&layout.node_prefix())
        .await
        .map_err(remote_err)?;
    // Per plane: id → (segment encoding and size), and ids with sidecars.
    let mut objects: BTreeMap<(String, u64), (Encoding, u64)> = BTreeMap::new();
    let mut sidecars: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut highest: BTreeMap<String, u64> = BTreeMap::new();
    for l in &listing {
        match layout.parse(&l.key) {
            Some(Named::Segment {
                plane,
                id,
                encoding,
            }) => {
                let h = highest.entry(plane.clone()).or_insert(id);
                *h = (*h).max(id);
                objects.insert((plane, id), (encoding, l.size));
            }
            Some(Named::Sidecar { plane, id }) => {
                sidecars.insert((plane, id));
            }
            _ => {}
        }
    }
    let mut installed = Vec::new();
    let mut kept: BTreeSet<(String, u64)> = BTreeSet::new();
    for plane in PLANES {
        let upto = match plane {
            PlaneKind::Data => heads.data_upto,
            PlaneKind::Catalog => heads.catalog_upto,
        };
        let wanted: Vec<(u64, Encoding, u64)> = objects
            .iter()
            .filter(|((p, id), _)| {
                p == plane.name()
                    && upto.is_some_and(|u| *id <= u)
                    && sidecars.contains(&(p.clone(), *id))
            })
            .map(|((_, id), (enc, size))| (*id, *enc, *size))
            .collect();
        let results: Vec<Result<(u64, u64, RemoteCopy), EngineError>> =
            futures_util::stream::iter(wanted.into_iter().map(|(id, encoding, size)| {
                let remote = remote.clone();
                let layout = layout.clone();
                let log_dir = log_dir.to_path_buf();
                let frame_bytes = cold.frame_bytes;
                async move {
                    let sidecar_key = layout.sidecar(plane.name(), id);
                    let sidecar = remote.get(&sidecar_key).await.map_err(remote_err)?;
                    let (segment_len, ends) =
                        billet_log::sidecar_block_ends(&sidecar, plane, id)
                            .map_err(|e| EngineError::Corrupt(format!("{sidecar_key}: {e}")))?;
                    let key = layout.segment(plane.name(), id, encoding);
                    let frames = frames_of(
                        remote.as_ref(),
                        &key,
                        encoding,
                        size,
                        &ends,
                        segment_len,
                        frame_bytes,
                    )
                    .await?;
                    let copy = RemoteCopy {
                        key,
                        encoding,
                        segment_len,
                        stored_len: size,
                        sha256: None,
                        frames,
                    };
                    let note = copy.encode();
                    tokio::task::spawn_blocking(move || {
                        billet_log::install_evicted(&log_dir, plane, id, &sidecar, &note)
                    })
                    .await
                    .map_err(join_error)??;
                    Ok((id, segment_len, copy))
                }
            }))
            .buffer_unordered(16)
            .collect()
            .await;
        let (mut count, mut bytes) = (0u64, 0u64);
        let node = cold.node.clone();
        for r in results {
            let (id, len, copy) = r?;
            count += 1;
            bytes += len;
            kept.insert((plane.name().to_string(), id));
            index
                .put_segment(&billet_index::RemoteSegment {
                    node: node.clone(),
                    plane: plane.name().to_string(),
                    id,
                    state: RemoteState::Evicted,
                    bytes: len,
                    stored_bytes: copy.stored_len,
                    encoding: copy.encoding.name().to_string(),
                    remote_key: copy.key.clone(),
                    sidecar_key: layout.sidecar(plane.name(), id),
                    sha256: None,
                    shipped_ms: now_ms(),
                })
                .await?;
        }
        // Above every id the remote has seen, shipped head or not.
        let next = highest.get(plane.name()).map_or(0, |h| h + 1);
        let dir = log_dir.to_path_buf();
        tokio::task::spawn_blocking(move || billet_log::start_segment(&dir, plane, next))
            .await
            .map_err(join_error)??;
        if plane == PlaneKind::Catalog {
            index.set_replay_from(next).await?;
        }
        installed.push((plane.name().to_string(), count, bytes));
    }
    let stale: Vec<(String, u64)> = index
        .segments(&cold.node)
        .await?
        .into_iter()
        .map(|s| (s.plane, s.id))
        .filter(|k| !kept.contains(k))
        .collect();
    let forgotten = index.forget_segments(&cold.node, &stale, now_ms()).await?;
    Ok(RecoveryPlan {
        heads,
        installed,
        forgotten,
    })
}

/// Counts blocks and bytes read through it (a progress figure).
struct Counting<'a> {
    inner: &'a dyn BlockStore,
    blocks: &'a AtomicU64,
    bytes: &'a AtomicU64,
}

impl BlockStore for Counting<'_> {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        let b = self.inner.get(cid)?;
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        self.inner.has(cid)
    }
}

/// Figures a recovery shows while it runs.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    pub blocks: AtomicU64,
    pub bytes: AtomicU64,
}

impl Engine {
    /// Restores one bucket at the shipped head `b` names, after
    /// `prepare_recovery`: every block it reaches read and checked, its
    /// rows and its commit MMR (from the `prev` chain) rebuilt. Whatever
    /// the index held for the bucket before is replaced.
    pub async fn restore_bucket(
        &self,
        b: &HeadsBucket,
        progress: Arc<RestoreProgress>,
    ) -> Result<VerifyReport, EngineError> {
        self.index().purge_bucket(&b.name).await?;
        let store = self.store().clone();
        let head = b.head;
        let leaves = b.mmr_leaves.max(1);
        let (checked, chain) = tokio::task::spawn_blocking(move || {
            let counting = Counting {
                inner: store.as_ref(),
                blocks: &progress.blocks,
                bytes: &progress.bytes,
            };
            let checked = verify_head(&counting, &head)?;
            // The commits the MMR holds, oldest first.
            let mut chain = Vec::new();
            let mut at = Some(head);
            while let Some(cid) = at
                && (chain.len() as u64) < leaves
            {
                let c = Commit::decode(&counting.get(&cid)?)?;
                chain.push(CommitRow {
                    seq: c.seq,
                    cid,
                    time_ms: c.time,
                });
                at = c.prev;
            }
            chain.reverse();
            Ok::<_, EngineError>((checked, chain))
        })
        .await
        .map_err(join_error)??;
        let report = checked.report;
        if let Some(first) = report.problems.first() {
            return Err(EngineError::Corrupt(format!(
                "bucket {} at {}: {} problem(s); the first: {first}",
                b.name,
                b.head,
                report.problems.len()
            )));
        }
        if report.seq != b.seq {
            return Err(EngineError::Corrupt(format!(
                "bucket {}: heads.cbor says seq {}, the commit says {}",
                b.name, b.seq, report.seq
            )));
        }
        let state = billet_index::BucketState {
            name: b.name.clone(),
            owner: b.owner.clone(),
            created_ms: b.created_ms,
            head,
            seq: b.seq,
            settings: report.settings.clone(),
        };
        self.index().create_bucket(&state).await?;
        self.index()
            .rebuild(
                &b.name,
                head,
                b.seq,
                &report.settings,
                Box::new(checked.rows.into_iter().map(Ok)),
            )
            .await?;
        let cids: Vec<Cid> = chain.iter().map(|r| r.cid).collect();
        let (nodes, _) = MmrState::default().append(&cids)?;
        self.index()
            .commit(CommitBatch {
                bucket: b.name.clone(),
                expected_head: head,
                head,
                seq: b.seq,
                settings: None,
                changes: Vec::new(),
                completed_uploads: Vec::new(),
                mmr: nodes,
                commits: chain,
            })
            .await?;
        self.index()
            .set_shipped_head(&billet_index::ShippedHead {
                bucket: b.name.clone(),
                head,
                seq: b.seq,
                shipped_ms: now_ms(),
            })
            .await?;
        if let Some(cold) = self.cold() {
            cold.heads.set_shipped(
                &b.name,
                Noted {
                    head,
                    seq: b.seq,
                    data: None,
                    catalog: None,
                },
            );
        }
        self.handle(&b.name).forget_head();
        Ok(report)
    }
}
