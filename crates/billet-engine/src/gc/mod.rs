//! Garbage collection: an online mark and sweep that keeps the log from
//! growing for ever while the server keeps serving.
//!
//! One collection, in phases (`docs/gc.md` has the whole story):
//!
//! 1. **Fence.** The open segments are sealed, then the log fixes the
//!    fence (below it segments may be taken; see `billet_log::Fence`) and
//!    starts recording deduplication hits, under the same lock that
//!    registers pinned bodies, whose snapshot is taken with it.
//! 2. **Mark** (`mark`): every block the index's uploads, each bucket's
//!    retained history (`retention`), every recorded commit block, the
//!    cold tier's shipped and waiting heads and the pinned bodies reach
//!    goes into a Bloom filter.
//! 3. **Plan** (`sweep::plan`): each sealed segment below the fence is
//!    sized by its live bytes; those under the threshold are candidates.
//! 4. **Sweep** (`sweep::sweep_batch`), a batch at a time: retire, take
//!    the hits, copy the live blocks, sync, record, drop.
//! 5. **Tidy**: signed checkpoints of commits no longer kept are pruned.
//!
//! A crash at any point loses nothing: until a segment's `.retired`
//! marker is durable (after its copies are), it is whole and readable;
//! after it, its copies are. Nothing is reclaimed twice: a block whose
//! only copy is not in a retiring segment is deduplicated, not copied.

mod mark;
mod pins;
mod retention;
mod sweep;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use billet_index::Retention;
use billet_log::PlaneKind;

use crate::error::EngineError;
use crate::{Engine, Inner, now_ms};
pub(crate) use pins::Pins;
pub use retention::RetainedHistory;

/// How the collector works.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// History kept readable in buckets that set none of their own.
    pub retention: Retention,
    /// A segment whose live share is below this is rewritten (0..=1).
    pub threshold: f64,
    /// Bits of the mark's filter per block, and its ceiling in bytes.
    pub filter_bits: u64,
    pub filter_max_bytes: u64,
    /// Deduplication hits held between two reads at most; past it, writes
    /// store copies instead.
    pub max_hits: usize,
    /// Live bytes copied per batch (a batch is retired, copied, made
    /// durable and dropped together).
    pub batch_bytes: u64,
    /// Bytes copied per second at most (`None`: as fast as it goes). The
    /// copies share the disk, and the open segment's fsyncs, with writes.
    pub copy_bytes_per_sec: Option<u64>,
}

/// What the collector copies per second at most unless configured: on
/// this project's reference machine (two cores, one disk), copying as
/// fast as it went (about 200 MiB/s) cost 4 KiB PUTs at 64 connections a
/// third of their throughput while it ran.
pub const DEFAULT_COPY_BYTES_PER_SEC: u64 = 64 << 20;

/// The collector's thread runs at this nice value.
const GC_NICE: i32 = 10;

/// The last collection's report, in the data directory.
pub const LAST_REPORT: &str = "gc-last.json";

/// Seven days: what a bucket keeps readable unless told otherwise.
pub const DEFAULT_KEEP_SECS: u64 = 7 * 24 * 3600;

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            retention: Retention {
                keep_secs: Some(DEFAULT_KEEP_SECS),
                keep_commits: None,
            },
            threshold: 0.7,
            filter_bits: 10,
            filter_max_bytes: 64 << 20,
            max_hits: 1 << 20,
            batch_bytes: 256 << 20,
            copy_bytes_per_sec: Some(DEFAULT_COPY_BYTES_PER_SEC),
        }
    }
}

/// The steps of a collection a test (or the crash harness) can stop at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcStep {
    /// The mark is complete; nothing has been retired.
    Marked,
    /// Half of a batch's segments are copied (not yet durable).
    Copying,
    /// A batch's copies are durable; its segments are still there.
    CopiesDurable,
    /// Shipped segments of the batch are marked retired in the index;
    /// the segments are still there.
    Retired,
    /// The batch's segments are gone.
    Dropped,
}

impl GcStep {
    pub const ALL: [GcStep; 5] = [
        GcStep::Marked,
        GcStep::Copying,
        GcStep::CopiesDurable,
        GcStep::Retired,
        GcStep::Dropped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GcStep::Marked => "marked",
            GcStep::Copying => "copying",
            GcStep::CopiesDurable => "copies-durable",
            GcStep::Retired => "retired",
            GcStep::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<GcStep> {
        GcStep::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Called at each step of every collection (on the collector's thread:
/// it may block, which holds the collection there).
pub trait GcHooks: Send + Sync + std::fmt::Debug {
    fn at(&self, step: GcStep);
}

#[derive(Debug)]
struct NoHooks;

impl GcHooks for NoHooks {
    fn at(&self, _: GcStep) {}
}

/// One plane's figures in a report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlaneReport {
    pub segments: u64,
    pub bytes: u64,
    /// Bytes of live blocks (by the mark; false positives count as live).
    pub live_bytes: u64,
    /// Dead bytes in segments under the threshold (what rewriting them
    /// frees), as the mark found them.
    pub reclaimable_bytes: u64,
    pub rewritten_segments: u64,
    pub copied_bytes: u64,
    /// Bytes of segments removed less the bytes copied out of them.
    pub reclaimed_bytes: u64,
}

/// A bucket's kept history, as a report shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketHistory {
    pub bucket: String,
    pub head_seq: u64,
    /// The oldest commit kept readable.
    pub floor: u64,
    /// Commits recorded (their commit blocks are kept; only those from
    /// `floor` on keep their trees).
    pub commits: u64,
    pub keep_secs: Option<u64>,
    pub keep_commits: Option<u64>,
}

/// What a collection found and did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub started_ms: i64,
    pub duration_ms: u64,
    /// Blocks the mark reached (counting repeats).
    pub marked_blocks: u64,
    /// Memory the mark's filter took.
    pub filter_bytes: u64,
    pub data: PlaneReport,
    pub catalog: PlaneReport,
    /// Each bucket's kept history.
    pub buckets: Vec<BucketHistory>,
    /// Signed checkpoints removed because their commit is no longer kept.
    pub checkpoints_pruned: u64,
}

impl GcReport {
    pub fn plane(&self, plane: PlaneKind) -> &PlaneReport {
        match plane {
            PlaneKind::Data => &self.data,
            PlaneKind::Catalog => &self.catalog,
        }
    }
}

pub(crate) fn plane_slot(plane: PlaneKind) -> usize {
    match plane {
        PlaneKind::Data => 0,
        PlaneKind::Catalog => 1,
    }
}

/// A collection's options.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// Mark and plan only: report, change nothing.
    pub dry_run: bool,
}

/// The collector's state in an engine.
#[derive(Debug, Default)]
pub(crate) struct GcState {
    pub(crate) pins: Arc<Pins>,
    running: AtomicBool,
    last: Mutex<Option<GcReport>>,
    hooks: OnceLock<Arc<dyn GcHooks>>,
}

/// Whether a collection runs now, and the last one's report.
#[derive(Debug, Clone)]
pub struct GcStatus {
    pub running: bool,
    pub last: Option<GcReport>,
}

/// Runs `f` on a thread of its own: the collector's walks and copies take
/// seconds to minutes, too long for the runtime's blocking pool.
pub(crate) async fn on_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| EngineError::Task(format!("starting {name}: {e}")))?;
    rx.await
        .map_err(|_| EngineError::Task(format!("{name} stopped")))
}

/// Clears `running` when the collection ends, however it ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Ends the log's collection when dropped, however the collection ends.
struct Collecting<'a>(&'a billet_log::Log);

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        self.0.end_collection();
    }
}

impl Engine {
    /// Whether a collection runs, and what the last one did.
    pub fn gc_status(&self) -> GcStatus {
        GcStatus {
            running: self.inner.gc.running.load(Ordering::SeqCst),
            last: self
                .inner
                .gc
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Installs hooks called at each step of every collection (tests, the
    /// crash harness). Only the first call counts.
    pub fn set_gc_hooks(&self, hooks: Arc<dyn GcHooks>) {
        let _ = self.inner.gc.hooks.set(hooks);
    }

    /// Runs one collection (see the module docs). One at a time: a second
    /// caller gets an error saying one is running.
    pub async fn collect(&self, opts: CollectOptions) -> Result<GcReport, EngineError> {
        if self.inner.config.log.read_only {
            return Err(EngineError::Invalid(
                "the log is open read-only; collect from the server".into(),
            ));
        }
        if self.inner.gc.running.swap(true, Ordering::SeqCst) {
            return Err(EngineError::Invalid(
                "a garbage collection is already running".into(),
            ));
        }
        let inner = self.inner.clone();
        let handle = tokio::runtime::Handle::current();
        let report = on_thread("billet-gc", move || {
            // Serving comes first: on Linux a thread's nice value is its
            // own, so only the collector yields the cores.
            let _ = rustix::process::setpriority_process(None, GC_NICE);
            let _rt = handle.enter();
            let _running = Running(&inner.gc.running);
            collect_blocking(&inner, &opts)
        })
        .await??;
        if !report.dry_run {
            *self.inner.gc.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
            // Kept for `billet status` and the next start.
            if let Ok(json) = serde_json::to_vec_pretty(&report) {
                let dir = self.inner.config.data_dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    billet_log::write_durable(&billet_log::StdFs, &dir, LAST_REPORT, &json)
                })
                .await;
                if let Ok(Err(e)) = written {
                    tracing::warn!(error = %e, "keeping the collection's report failed");
                }
            }
        }
        Ok(report)
    }

    /// Reads the last collection's report from the data directory (at
    /// open).
    pub(crate) fn load_gc_report(&self) {
        let path = self.inner.config.data_dir.join(LAST_REPORT);
        if let Some(r) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<GcReport>(&b).ok())
        {
            *self.inner.gc.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        }
    }
}

fn collect_blocking(inner: &Arc<Inner>, opts: &CollectOptions) -> Result<GcReport, EngineError> {
    let started = Instant::now();
    let gc = &inner.config.gc;
    let hooks: Arc<dyn GcHooks> = inner
        .gc
        .hooks
        .get()
        .cloned()
        .unwrap_or_else(|| Arc::new(NoHooks));
    let log = inner.store.log().clone();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        started_ms: now_ms(),
        ..GcReport::default()
    };

    // 1. Fence. Sealing first lets everything written so far be taken.
    if !opts.dry_run {
        log.seal_all()?;
    }
    let (fence, pinned) = {
        let pins = inner.gc.pins.lock();
        let fence = log.begin_collection(gc.max_hits)?;
        (fence, pins.roots())
    };
    let _collecting = Collecting(&log);
    let shipped_heads: Vec<(String, billet_block::Cid)> = inner
        .cold
        .as_ref()
        .map(|c| c.heads.all_heads())
        .unwrap_or_default();

    // 2. Mark.
    let mut live = mark::Live::new(
        log.len() as u64,
        gc.filter_bits,
        gc.filter_max_bytes,
        rand::random::<u64>() | 1,
    );
    let buckets = retention::block_on(inner.index.list_buckets())?;
    for b in &buckets {
        mark::uploads(inner, &mut live, &b.name)?;
    }
    let now = now_ms();
    let mut currents = std::collections::HashMap::new();
    let mut kept_all = Vec::new();
    for b in &buckets {
        let kept = retention::retained(inner, &b.name, gc.retention, now, &mut |row| {
            live.mark(&row.cid)
        })?;
        if let Some(kept) = kept {
            mark::history(&inner.store, &mut live, &kept)?;
            currents.insert(kept.bucket.clone(), kept.head);
            report.buckets.push(BucketHistory {
                bucket: kept.bucket.clone(),
                head_seq: kept.head_seq,
                floor: kept.floor,
                commits: kept.recorded,
                keep_secs: kept.policy.keep_secs,
                keep_commits: kept.policy.keep_commits,
            });
            kept_all.push(kept);
        }
    }
    for (bucket, head) in &shipped_heads {
        mark::other_head(&inner.store, &mut live, head, currents.get(bucket))?;
    }
    for root in &pinned {
        mark::pinned(&inner.store, &mut live, root)?;
    }
    report.marked_blocks = live.marked;
    report.filter_bytes = live.bytes();
    hooks.at(GcStep::Marked);

    // 3. Plan.
    let ships = |plane: PlaneKind| {
        inner
            .cold
            .as_ref()
            .is_some_and(|c| c.config.policy(plane).ship)
    };
    let mut planes = [PlaneReport::default(), PlaneReport::default()];
    let candidates = sweep::plan(inner, fence, &live, gc.threshold, ships, &mut planes)?;

    // 4. Sweep.
    if !opts.dry_run {
        let mut pace = sweep::Pace::new(gc.copy_bytes_per_sec);
        for batch in sweep::batches(candidates, gc.batch_bytes) {
            let swept = sweep::sweep_batch(inner, &mut live, &batch, hooks.as_ref(), &mut pace)?;
            let r = &mut planes[plane_slot(batch[0].plane)];
            r.rewritten_segments += batch.len() as u64;
            r.copied_bytes += swept.copied_bytes;
            r.reclaimed_bytes += swept.dropped_bytes.saturating_sub(swept.copied_bytes);
        }
        // 5. Tidy.
        for kept in &kept_all {
            report.checkpoints_pruned +=
                retention::block_on(crate::history::prune_checkpoints(inner, kept))?;
        }
    }
    let [data, catalog] = planes;
    report.data = data;
    report.catalog = catalog;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
