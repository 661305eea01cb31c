//! The cold tier: sealed segments shipped to a remote object store, read
//! back through it once evicted, and a node rebuilt from it.
//!
//! - `ship`: a background loop per node uploads sealed segments oldest
//!   first (catalog always zstd-compressed, data when a sample says it
//!   pays), notes each beside the segment (`.remote`) and records it in the
//!   index, both only after the remote holds the whole object;
//! - `heads`: which head of each bucket has everything it reaches on the
//!   remote, published as `heads.cbor`;
//! - `evict`: local files of shipped segments removed after a retention
//!   time or, least recently read first, above a disk budget; writes are
//!   refused (503 SlowDown) only when the budget is exceeded and nothing is
//!   left to evict;
//! - `reader`: reads of evicted segments, by frame, with a warm cache;
//! - `deletes`: the index's queue of remote objects to delete, retried
//!   until done;
//! - `recover`: a lost node's log and index rebuilt from the remote;
//! - `status`: what `billet status` and `/metrics` show.
//!
//! Remote I/O runs on a runtime of its own (`runtime`). Layout of every
//! object: `docs/remote.md`.

mod deletes;
mod evict;
pub(crate) mod heads;
mod publish;
mod reader;
mod recover;
mod runtime;
mod ship;
mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billet_block::Cid;
use billet_log::{Log, PlaneKind};
use billet_remote::{Layout, Remote};

use crate::error::EngineError;
use heads::{HeadTracker, Noted};
pub use heads::{HeadsBucket, HeadsDoc};
pub use reader::ReadStats;
use reader::{ColdReader, ReadConfig};
pub use recover::{RecoveryPlan, RestoreProgress, prepare_recovery, read_heads};
use runtime::RemoteRuntime;
pub use status::{BucketShipped, NodeStatus, PlaneStatus, Tally};

/// Whether a plane's segments are compressed before they ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Always,
    Never,
    /// When zstd saves at least a tenth on a sample of the segment.
    Auto,
}

/// What the cold tier does with one plane's segments.
#[derive(Debug, Clone)]
pub struct PlanePolicy {
    pub ship: bool,
    /// How long a shipped segment stays on local disk; `None`: until the
    /// disk budget needs the room.
    pub keep_local: Option<Duration>,
    /// Local bytes of this plane's segments above which shipped ones are
    /// evicted, least recently read first.
    pub disk_budget: Option<u64>,
    pub compression: Compression,
}

impl PlanePolicy {
    pub fn shipping(compression: Compression) -> PlanePolicy {
        PlanePolicy {
            ship: true,
            keep_local: None,
            disk_budget: None,
            compression,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColdConfig {
    pub remote: Arc<dyn Remote>,
    /// How the remote is named in status and logs (no credentials).
    pub describe: String,
    /// This node's name in remote keys.
    pub node: String,
    pub data: PlanePolicy,
    pub catalog: PlanePolicy,
    /// Bytes of decoded frames kept in memory.
    pub cache_bytes: u64,
    /// Bytes fetched ahead of a reader moving through a segment.
    pub readahead_bytes: u64,
    /// Frames end at the first block end at least this far into them.
    pub frame_bytes: u64,
    /// One attempt at one remote read.
    pub read_timeout: Duration,
    pub read_attempts: u32,
    pub zstd_level: i32,
    /// How often the shipping loop looks for work when idle.
    pub tick: Duration,
}

impl ColdConfig {
    pub fn new(remote: Arc<dyn Remote>, describe: impl Into<String>, node: &str) -> ColdConfig {
        ColdConfig {
            remote,
            describe: describe.into(),
            node: node.to_string(),
            data: PlanePolicy::shipping(Compression::Auto),
            catalog: PlanePolicy::shipping(Compression::Always),
            cache_bytes: 256 << 20,
            readahead_bytes: 32 << 20,
            frame_bytes: 64 << 10,
            read_timeout: Duration::from_secs(10),
            read_attempts: 3,
            zstd_level: 3,
            tick: Duration::from_secs(1),
        }
    }

    pub(crate) fn policy(&self, plane: PlaneKind) -> &PlanePolicy {
        match plane {
            PlaneKind::Data => &self.data,
            PlaneKind::Catalog => &self.catalog,
        }
    }
}

pub(crate) const PLANES: [PlaneKind; 2] = [PlaneKind::Data, PlaneKind::Catalog];

fn plane_index(plane: PlaneKind) -> usize {
    match plane {
        PlaneKind::Data => 0,
        PlaneKind::Catalog => 1,
    }
}

/// Counters of the shipping loop.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub segments: [AtomicU64; 2],
    pub bytes: [AtomicU64; 2],
    pub stored_bytes: [AtomicU64; 2],
    pub evicted: [AtomicU64; 2],
    pub errors: AtomicU64,
    pub deletes: AtomicU64,
}

/// The cold tier of one engine.
pub struct ColdTier {
    pub(crate) config: ColdConfig,
    pub(crate) layout: Layout,
    pub(crate) rt: Arc<RemoteRuntime>,
    pub(crate) reader: Arc<ColdReader>,
    pub(crate) heads: HeadTracker,
    /// Per plane: over its disk budget with nothing left to evict.
    over_budget: [AtomicBool; 2],
    pub(crate) stats: ShipStats,
    last_error: Mutex<Option<String>>,
    /// When each shipped segment shipped (ms), for `keep_local`.
    pub(crate) shipped_at: Mutex<HashMap<(PlaneKind, u64), i64>>,
    /// Where compressed segments are built before they ship.
    pub(crate) tmp_dir: PathBuf,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) stopping: AtomicBool,
    /// `heads.cbor` must be written again (a bucket went, or writing it
    /// failed).
    pub(crate) heads_dirty: AtomicBool,
    /// Serializes publications of `heads.cbor`.
    pub(crate) publish: tokio::sync::Mutex<()>,
    /// The collector retired shipped segments whose remote objects wait
    /// for their copies to ship (see `publish`).
    pub(crate) retired_waiting: AtomicBool,
    /// The marks of the last `heads.cbor` written.
    pub(crate) last_published: Mutex<Option<(Option<u64>, Option<u64>)>>,
}

impl std::fmt::Debug for ColdTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdTier")
            .field("remote", &self.config.describe)
            .field("node", &self.config.node)
            .finish()
    }
}

impl ColdTier {
    pub(crate) fn new(
        config: ColdConfig,
        log_root: PathBuf,
        tmp_dir: PathBuf,
    ) -> Result<ColdTier, EngineError> {
        let layout = Layout::new(&config.node).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{:?} is not a valid node name (1-64 of a-z A-Z 0-9 . _ -)",
                config.node
            ))
        })?;
        let rt = Arc::new(RemoteRuntime::new().map_err(|e| EngineError::Io {
            what: "starting the remote runtime".into(),
            source: e,
        })?);
        let reader = Arc::new(ColdReader::new(
            log_root,
            config.remote.clone(),
            rt.clone(),
            ReadConfig {
                cache_bytes: config.cache_bytes,
                readahead_bytes: config.readahead_bytes,
                timeout: config.read_timeout,
                attempts: config.read_attempts,
            },
        ));
        Ok(ColdTier {
            config,
            layout,
            rt,
            reader,
            heads: HeadTracker::default(),
            over_budget: [AtomicBool::new(false), AtomicBool::new(false)],
            stats: ShipStats::default(),
            last_error: Mutex::new(None),
            shipped_at: Mutex::new(HashMap::new()),
            tmp_dir,
            wake: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            heads_dirty: AtomicBool::new(false),
            publish: tokio::sync::Mutex::new(()),
            retired_waiting: AtomicBool::new(true),
            last_published: Mutex::new(None),
        })
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    pub fn describe(&self) -> &str {
        &self.config.describe
    }

    pub fn read_stats(&self) -> &ReadStats {
        &self.reader.stats
    }

    pub fn ship_stats(&self) -> &ShipStats {
        &self.stats
    }

    pub(crate) fn remote(&self) -> &Arc<dyn Remote> {
        &self.config.remote
    }

    /// Notes that `bucket` moved to `head`: it ships once every segment
    /// that may hold its blocks has.
    pub(crate) fn note_head(&self, log: &Log, bucket: &str, head: Cid, seq: u64) {
        self.heads.note(
            bucket,
            Noted {
                head,
                seq,
                data: log.last_written_segment(PlaneKind::Data),
                catalog: log.last_written_segment(PlaneKind::Catalog),
            },
        );
    }

    /// A deleted bucket leaves `heads.cbor` at its next publication.
    pub(crate) fn forget_bucket(&self, bucket: &str) {
        self.heads.forget(bucket);
        self.heads_dirty.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The collector retired shipped segments: `heads.cbor` is written
    /// again once their copies ship, and then their remote objects go.
    pub(crate) fn note_retired(&self) {
        self.retired_waiting.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub(crate) fn set_over_budget(&self, plane: PlaneKind, over: bool) {
        self.over_budget[plane_index(plane)].store(over, Ordering::Relaxed);
    }

    pub fn over_budget(&self, plane: PlaneKind) -> bool {
        self.over_budget[plane_index(plane)].load(Ordering::Relaxed)
    }

    /// `SlowDown` while a plane is over its disk budget with nothing
    /// shipped left to evict: refused now rather than failed later.
    pub(crate) fn admit(&self) -> Result<(), EngineError> {
        for plane in PLANES {
            if self.over_budget(plane) {
                return Err(EngineError::SlowDown(format!(
                    "the {plane} plane is over its local disk budget and waiting for segments to ship"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn record_error(&self, what: &str, e: &dyn std::fmt::Display) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let line = format!("{what}: {e}");
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(line.as_str()) {
            tracing::warn!(error = %e, "{what}");
        }
        *last = Some(line);
    }

    pub(crate) fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The background loop of a running server's cold tier; stops when told
/// (or when dropped).
#[derive(Debug)]
pub struct ColdTask {
    tier: Arc<ColdTier>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl ColdTask {
    /// Asks the loop to stop and waits (at most `grace`) for what it is
    /// doing; an upload cut short is simply not recorded.
    pub async fn stop(mut self, grace: Duration) {
        self.tier.stopping.store(true, Ordering::SeqCst);
        self.tier.wake.notify_one();
        if let Some(h) = self.handle.take() {
            let abort = h.abort_handle();
            if tokio::time::timeout(grace, h).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for ColdTask {
    fn drop(&mut self) {
        self.tier.stopping.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

impl crate::Engine {
    pub fn cold(&self) -> Option<&Arc<ColdTier>> {
        self.inner.cold.as_ref()
    }

    /// Starts shipping, eviction and remote deletes in the background
    /// (`None` without a remote).
    pub fn start_cold(&self) -> Option<ColdTask> {
        let tier = self.inner.cold.clone()?;
        let inner = self.inner.clone();
        let handle = tier.rt.handle().spawn(ship::run(inner));
        Some(ColdTask {
            tier,
            handle: Some(handle),
        })
    }

    /// Seeds every bucket's current head as a head to ship (at start-up:
    /// commits made before are covered by the segments written so far).
    pub(crate) async fn seed_heads(&self) -> Result<(), EngineError> {
        let Some(cold) = &self.inner.cold else {
            return Ok(());
        };
        let shipped: HashMap<String, billet_index::ShippedHead> = self
            .index()
            .shipped_heads()
            .await?
            .into_iter()
            .map(|h| (h.bucket.clone(), h))
            .collect();
        for b in self.list_buckets().await? {
            let state = self.bucket(&b.name).await?;
            if let Some(s) = shipped.get(&b.name) {
                cold.heads.set_shipped(
                    &b.name,
                    Noted {
                        head: s.head,
                        seq: s.seq,
                        data: None,
                        catalog: None,
                    },
                );
            }
            cold.note_head(self.log(), &b.name, state.head, state.seq);
        }
        Ok(())
    }

    /// Runs one round of the cold tier's background work now: ship what
    /// is sealed, publish shipped heads, evict, delete. For tests and
    /// tools; a server runs it in `start_cold`'s loop.
    pub async fn cold_round(&self) -> Result<(), EngineError> {
        let Some(cold) = self.inner.cold.clone() else {
            return Ok(());
        };
        let inner = self.inner.clone();
        cold.rt
            .handle()
            .spawn(async move { ship::round(&inner).await })
            .await
            .map_err(crate::error::join_error)?
    }
}
