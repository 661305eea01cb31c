//! The engine: buckets and objects on top of the log, the index and the
//! MST, with no HTTP in sight.
//!
//! Writes: a body is staged into the log's data plane while it arrives
//! ([`Engine::stage_body`]); the S3 layer checks its digests; then
//! [`Engine::put`] queues the manifest on the bucket's commit pipeline (see
//! [`pipeline`]), which answers once the commit is durable and indexed.
//! Reads: the index for metadata, the log (behind a byte-bounded cache)
//! for body blocks, streamed range by range.

mod body;
mod cold;
mod error;
mod export;
mod fsck;
mod gc;
mod history;
mod import;
mod lifecycle;
mod mmr;
mod multipart;
mod objects;
mod pipeline;
mod redo;
mod store;
mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use billet_block::{BlockStore, Cid};
use billet_index::Index;
use billet_log::{Log, LogConfig};
use billet_records::{BucketSettings, Commit, Versioning};

pub use billet_index::Retention;
/// The index types the engine's API speaks, so that its callers need not
/// depend on the index crate.
pub use billet_index::{
    AccessKey, BucketEntry, BucketState, Grant, ListPage, ListQuery, ObjectSummary, ObjectVersion,
    UploadQuery, VersionPage, VersionQuery,
};
pub use body::StagedBody;
pub use cold::{
    BucketShipped, ColdConfig, ColdTask, ColdTier, Compression, HeadsBucket, HeadsDoc, NodeStatus,
    PlanePolicy, PlaneStatus, ReadStats, RecoveryPlan, RestoreProgress, ShipStats, Tally,
    prepare_recovery, read_heads,
};
pub use error::EngineError;
pub use export::{ExportHistory, ExportStats, export_car};
pub use fsck::FsckReport;
pub use gc::{
    BucketHistory, CollectOptions, DEFAULT_KEEP_SECS, GcConfig, GcHooks, GcReport, GcStatus,
    GcStep, LAST_REPORT, PlaneReport, RetainedHistory,
};
pub use lifecycle::{Filter as LifecycleFilter, Lifecycle, LifecycleReport, Rule as LifecycleRule};
pub use mmr::MmrState;
pub use multipart::{
    CompleteOutcome, CompletedPart, MIN_PART_SIZE, PartInfo, UploadChecksum, UploadInfo,
};
pub use objects::{BodyStream, DeleteOutcome, ObjectMeta, PutOutcome};
pub use pipeline::Condition;
pub use store::CachedStore;
pub use verify::{Verified, VerifyReport, verify_head};

use pipeline::{BucketQueue, Mutation};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the log lives (`<dir>/log`).
    pub data_dir: PathBuf,
    /// Leaf size for new buckets' bodies.
    pub chunk_size: usize,
    /// Largest single PUT body (S3: 5 GiB).
    pub max_put_bytes: u64,
    /// Bytes of verified blocks kept in memory for reads.
    pub cache_bytes: u64,
    /// Most mutations one commit takes.
    pub max_batch: usize,
    pub log: LogConfig,
    /// Roll the index forward from the log on open (see `redo`); off for
    /// offline tools that must not write while a server may be running.
    pub roll_forward: bool,
    /// Smallest part but the last at Complete (S3: 5 MiB).
    pub min_part_size: u64,
    /// Sealed segments shipped to a remote store and read back through it
    /// (`None`: everything stays local).
    pub cold: Option<ColdConfig>,
    /// The garbage collector.
    pub gc: GcConfig,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            chunk_size: billet_unixfs::DEFAULT_CHUNK_SIZE,
            max_put_bytes: 5 << 30,
            cache_bytes: 16 << 20,
            max_batch: 1024,
            log: LogConfig::default(),
            roll_forward: true,
            min_part_size: multipart::MIN_PART_SIZE,
            cold: None,
            gc: GcConfig::default(),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub commits: AtomicU64,
    pub batches: AtomicU64,
    pub batched_ops: AtomicU64,
    pub largest_batch: AtomicU64,
}

impl Stats {
    fn record_batch(&self, n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_ops.fetch_add(n as u64, Ordering::Relaxed);
        self.largest_batch.fetch_max(n as u64, Ordering::Relaxed);
    }

    fn record_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<CachedStore>,
    pub(crate) index: Arc<dyn Index>,
    pub(crate) config: EngineConfig,
    pub(crate) stats: Stats,
    pub(crate) pending: redo::Pending,
    /// The latest checkpoint signed per bucket (the file keeps them all).
    pub(crate) latest_checkpoints: Mutex<HashMap<String, billet_proof::SignedCheckpoint>>,
    buckets: Mutex<HashMap<String, Arc<BucketQueue>>>,
    pub(crate) cold: Option<Arc<cold::ColdTier>>,
    pub(crate) gc: gc::GcState,
    /// Held while a bucket's checkpoints file is appended to or rewritten.
    pub(crate) checkpoint_files: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

impl Engine {
    /// Opens the log in `config.data_dir` and works against `index`.
    pub async fn open(config: EngineConfig, index: Arc<dyn Index>) -> Result<Engine, EngineError> {
        let dir = config.data_dir.join("log");
        let log_config = config.log.clone();
        let log = tokio::task::spawn_blocking(move || Log::open(dir, log_config))
            .await
            .map_err(error::join_error)??;
        for line in log.repairs() {
            tracing::warn!(repair = %line, "log opened with repairs");
        }
        let cold = match &config.cold {
            Some(c) => {
                let tier = Arc::new(cold::ColdTier::new(
                    c.clone(),
                    log.root().to_path_buf(),
                    config.data_dir.join("cold-tmp"),
                )?);
                log.attach_cold(tier.reader.clone());
                Some(tier)
            }
            None => None,
        };
        let store = Arc::new(CachedStore::new(Arc::new(log), config.cache_bytes));
        let roll_forward = config.roll_forward && !config.log.read_only;
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                index,
                config,
                stats: Stats::default(),
                pending: redo::Pending::default(),
                latest_checkpoints: Mutex::new(HashMap::new()),
                buckets: Mutex::new(HashMap::new()),
                cold,
                gc: gc::GcState::default(),
                checkpoint_files: tokio::sync::Mutex::new(()),
            }),
        };
        if roll_forward {
            for line in engine.roll_forward().await? {
                tracing::warn!("{line}");
            }
        }
        if !engine.inner.config.log.read_only {
            engine.seed_heads().await?;
        }
        engine.load_gc_report();
        Ok(engine)
    }

    pub fn index(&self) -> &Arc<dyn Index> {
        &self.inner.index
    }

    pub fn log(&self) -> &Arc<Log> {
        self.inner.store.log()
    }

    pub fn store(&self) -> &Arc<CachedStore> {
        &self.inner.store
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Refuses a write while the cold tier is over a disk budget it
    /// cannot evict below (503 SlowDown).
    pub(crate) fn admit(&self) -> Result<(), EngineError> {
        match &self.inner.cold {
            Some(c) => c.admit(),
            None => Ok(()),
        }
    }

    /// Tells the cold tier a bucket's head moved.
    pub(crate) fn note_head(&self, bucket: &str, head: Cid, seq: u64) {
        if let Some(c) = &self.inner.cold {
            c.note_head(self.log(), bucket, head, seq);
        }
    }

    fn handle(&self, name: &str) -> Arc<BucketQueue> {
        let mut map = self.inner.buckets.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string())
            .or_insert_with(|| Arc::new(BucketQueue::new(name)))
            .clone()
    }

    // Buckets.

    /// Creates a bucket: an empty MST and a first commit, durable in the
    /// log before the index knows the bucket.
    pub async fn create_bucket(&self, name: &str, owner: &str) -> Result<BucketState, EngineError> {
        if self.inner.index.bucket(name).await?.is_some() {
            return Err(EngineError::BucketExists(name.to_string()));
        }
        self.admit()?;
        // Until the index knows the bucket, nothing else keeps its first
        // blocks from a collection.
        let _staging = self.log().staging();
        let empty = billet_mst::empty_root();
        let settings = BucketSettings {
            chunk_size: self.inner.config.chunk_size as u64,
            ..BucketSettings::default()
        };
        let now = now_ms();
        let commit = Commit::new(name, 0, *empty.cid(), None, now, settings.clone()).to_block()?;
        let state = BucketState {
            name: name.to_string(),
            owner: owner.to_string(),
            created_ms: now,
            head: *commit.cid(),
            seq: 0,
            settings,
        };
        self.log().append(&[], &[empty, commit]).await?;
        self.inner.index.create_bucket(&state).await?;
        self.start_history(
            name,
            billet_index::CommitRow {
                seq: 0,
                cid: state.head,
                time_ms: now,
            },
        )
        .await?;
        self.handle(name).forget_head();
        self.note_head(name, state.head, 0);
        Ok(state)
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), EngineError> {
        self.inner.index.delete_bucket(name).await?;
        self.handle(name).forget_head();
        if let Some(c) = &self.inner.cold {
            c.forget_bucket(name);
        }
        // A bucket created later under this name has a history of its own.
        self.inner
            .latest_checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let kept = self
            .inner
            .config
            .data_dir
            .join("checkpoints")
            .join(format!("{name}.cbor"));
        match tokio::fs::remove_file(&kept).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %kept.display(), error = %e, "removing a deleted bucket's checkpoints failed");
            }
            _ => {}
        }
        Ok(())
    }

    pub async fn bucket(&self, name: &str) -> Result<BucketState, EngineError> {
        self.inner
            .index
            .bucket(name)
            .await?
            .ok_or_else(|| EngineError::NoSuchBucket(name.to_string()))
    }

    /// An access key by id (enabled or not).
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, EngineError> {
        Ok(self.inner.index.access_key(id).await?)
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketEntry>, EngineError> {
        Ok(self.inner.index.list_buckets().await?)
    }

    /// Changes bucket settings (versioning, tags) through a commit.
    pub async fn set_settings(
        &self,
        bucket: &str,
        settings: BucketSettings,
    ) -> Result<(), EngineError> {
        let handle = self.handle(bucket);
        pipeline::submit(&self.inner, &handle, Mutation::Settings(settings)).await?;
        Ok(())
    }

    /// The MST root at a bucket's head.
    pub async fn mst_root(&self, bucket: &str) -> Result<Cid, EngineError> {
        let state = self.bucket(bucket).await?;
        let commit = Commit::decode(&self.inner.store.get(&state.head)?)?;
        Ok(commit.data)
    }

    /// Bucket versioning state.
    pub async fn versioning(&self, bucket: &str) -> Result<Versioning, EngineError> {
        Ok(self.bucket(bucket).await?.settings.versioning)
    }
}
