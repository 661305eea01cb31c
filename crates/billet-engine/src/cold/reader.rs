//! Reads of evicted segments: the frame holding the asked bytes is found
//! in the segment's frame table (from its local `.remote` note), fetched
//! by one ranged GET, decoded, kept in a byte-bounded warm cache, and
//! sliced. Concurrent readers of one frame share one fetch; a body reader
//! announces the blocks ahead of it (`prefetch`), and their frames are
//! fetched meanwhile, consecutive ones merged into one ranged GET. The log checks every block it gets against its CID, so a
//! short, altered or missing frame fails that block's read, naming it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use billet_log::{ColdStore, PlaneKind};
use billet_remote::{Backoff, Remote, RemoteCopy, RemoteError, frames};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use super::runtime::RemoteRuntime;

/// Most bytes one ranged GET of read-ahead asks for: a run streams, so
/// its first frame does not wait for its last, but a long one holds its
/// connection.
const RUN_MAX: u64 = 16 << 20;

/// One frame of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FrameKey {
    plane: PlaneKind,
    segment: u64,
    frame: u32,
}

#[derive(Clone)]
struct FrameWeight;

impl Weighter<FrameKey, Bytes> for FrameWeight {
    fn weight(&self, _k: &FrameKey, v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

/// A fetch in flight, shared by everyone who needs its frame.
#[derive(Default)]
struct Slot {
    done: Mutex<Option<Result<Bytes, String>>>,
    ready: Condvar,
}

impl Slot {
    fn finish(&self, r: Result<Bytes, String>) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        self.ready.notify_all();
    }

    fn wait(&self, limit: Duration) -> Result<Bytes, String> {
        let guard = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, timeout) = self
            .ready
            .wait_timeout_while(guard, limit, |d| d.is_none())
            .unwrap_or_else(|p| p.into_inner());
        match (&*guard, timeout.timed_out()) {
            (Some(r), _) => r.clone(),
            (None, _) => Err(format!("no answer from the remote within {limit:?}")),
        }
    }
}

/// A segment's remote copy.
struct Segment {
    copy: RemoteCopy,
}

#[derive(Debug, Clone)]
pub(crate) struct ReadConfig {
    pub cache_bytes: u64,
    /// Bytes fetched ahead of a sequential reader.
    pub readahead_bytes: u64,
    /// One attempt at a ranged read.
    pub timeout: Duration,
    pub attempts: u32,
}

/// What the warm cache and the fetches have done, for status and metrics.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub fetches: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub hits: AtomicU64,
    pub failures: AtomicU64,
}

pub(crate) struct ColdReader {
    log_root: PathBuf,
    remote: Arc<dyn Remote>,
    rt: Arc<RemoteRuntime>,
    config: ReadConfig,
    segments: RwLock<HashMap<(PlaneKind, u64), Arc<Segment>>>,
    warm: Arc<Cache<FrameKey, Bytes, FrameWeight>>,
    in_flight: Arc<Mutex<HashMap<FrameKey, Arc<Slot>>>>,
    /// Bytes of fetches under way; read-ahead stops at half the cache, so
    /// many readers at once cannot hold more than that in buffers.
    fetching: Arc<AtomicU64>,
    pub(crate) stats: Arc<ReadStats>,
}

impl std::fmt::Debug for ColdReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdReader")
            .field("warm_bytes", &self.warm.weight())
            .finish()
    }
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl ColdReader {
    pub fn new(
        log_root: PathBuf,
        remote: Arc<dyn Remote>,
        rt: Arc<RemoteRuntime>,
        config: ReadConfig,
    ) -> ColdReader {
        let cap = config.cache_bytes.max(1 << 20);
        ColdReader {
            log_root,
            remote,
            rt,
            warm: Arc::new(Cache::with_options(
                // Few shards: a shard holds a slice of the capacity, and a
                // 1 MiB frame must fit the slice's share for new entries.
                // Half for new entries: read-ahead frames are new until
                // their reader arrives, and must not be the first to go.
                OptionsBuilder::new()
                    .estimated_items_capacity((cap / (64 << 10)).max(16) as usize)
                    .weight_capacity(cap)
                    .shards(2)
                    .hot_allocation(0.5)
                    .build()
                    .expect("capacity and item estimate are set"),
                FrameWeight,
                Default::default(),
                Default::default(),
            )),
            fetching: Arc::new(AtomicU64::new(0)),
            config,
            segments: RwLock::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            stats: Arc::new(ReadStats::default()),
        }
    }

    /// Bytes the warm cache holds.
    pub fn warm_bytes(&self) -> u64 {
        self.warm.weight()
    }

    pub fn warm_capacity(&self) -> u64 {
        self.config.cache_bytes.max(1 << 20)
    }

    fn segment(&self, plane: PlaneKind, id: u64) -> std::io::Result<Arc<Segment>> {
        if let Some(s) = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(plane, id))
        {
            return Ok(s.clone());
        }
        let note = billet_log::read_remote_note(&self.log_root, plane, id)
            .map_err(|e| other(e.to_string()))?
            .ok_or_else(|| other(format!("{plane} segment {id} has no remote copy noted")))?;
        let copy = RemoteCopy::decode(&note)
            .map_err(|e| other(format!("the remote note of {plane} segment {id}: {e}")))?;
        let seg = Arc::new(Segment { copy });
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((plane, id), seg.clone());
        Ok(seg)
    }

    /// Starts fetching a frame unless it is cached or on its way; returns
    /// the fetch to wait on, if one is needed.
    fn start(&self, key: FrameKey, seg: &Arc<Segment>) -> Option<Arc<Slot>> {
        if self.warm.get(&key).is_some() {
            return None;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = in_flight.get(&key) {
            return Some(slot.clone());
        }
        let slot = Arc::new(Slot::default());
        in_flight.insert(key, slot.clone());
        drop(in_flight);
        let f = key.frame as usize;
        self.fetch(key.plane, key.segment, seg, f..f + 1, vec![slot.clone()]);
        Some(slot)
    }

    /// One ranged GET for the consecutive frames `frames` (registered in
    /// flight by the caller, one slot each): each is decoded, cached and
    /// handed to its waiters. A run shares one request, so the remote
    /// reads each of its own blocks once rather than once per frame.
    fn fetch(
        &self,
        plane: PlaneKind,
        segment: u64,
        seg: &Arc<Segment>,
        frames: Range<usize>,
        slots: Vec<Arc<Slot>>,
    ) {
        let table = &seg.copy.frames;
        let stored = table.stored_range(frames.start).start..table.stored_range(frames.end - 1).end;
        let parts: Vec<(Range<u64>, u64)> = frames
            .clone()
            .map(|f| {
                let r = table.stored_range(f);
                let raw = table.raw_range(f);
                (
                    r.start - stored.start..r.end - stored.start,
                    raw.end - raw.start,
                )
            })
            .collect();
        let stored_ends: Vec<u64> = parts.iter().map(|(r, _)| r.end).collect();
        let first = frames.start as u32;
        let encoding = seg.copy.encoding;
        let object = seg.copy.key.clone();
        let remote = self.remote.clone();
        let (timeout, attempts) = (self.config.timeout, self.config.attempts);
        let warm = self.warm.clone();
        let in_flight = self.in_flight.clone();
        let fetching = self.fetching.clone();
        fetching.fetch_add(stored.end - stored.start, Ordering::Relaxed);
        let stats_d = self.stats.clone();
        let object_name = object.clone();
        let deliver = move |i: usize, bytes: Result<Bytes, String>, slot: Arc<Slot>| {
            let frame = first + i as u32;
            let key = FrameKey {
                plane,
                segment,
                frame,
            };
            let raw_len = parts[i].1;
            let result = bytes.and_then(|b| {
                frames::decode_frame(encoding, b, raw_len)
                    .map_err(|e| format!("{object_name} frame {frame}: {e}"))
            });
            match &result {
                Ok(b) => warm.insert(key, b.clone()),
                Err(_) => {
                    stats_d.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            slot.finish(result);
        };
        let want = stored.end - stored.start;
        let stats = self.stats.clone();
        self.rt.handle().spawn(async move {
            if slots.len() == 1 {
                let fetched = fetch_range(&*remote, &object, stored.clone(), timeout, attempts).await;
                fetching.fetch_sub(want, Ordering::Relaxed);
                if fetched.is_ok() {
                    stats.fetches.fetch_add(1, Ordering::Relaxed);
                    stats.fetched_bytes.fetch_add(want, Ordering::Relaxed);
                }
                if let Some(slot) = slots.into_iter().next() {
                    deliver(0, fetched, slot);
                }
                return;
            }
            // A run streams: each frame goes to its readers as soon as its
            // last byte is in, not when the whole run is.
            let mut slots = slots.into_iter().enumerate();
            let mut failure = None;
            match tokio::time::timeout(timeout, remote.get_range_stream(&object, stored.clone())).await {
                Ok(Ok(mut stream)) => {
                    stats.fetches.fetch_add(1, Ordering::Relaxed);
                    // Each frame is gathered into a buffer of exactly its
                    // size: one copy from the wire, and a cached frame
                    // never holds a neighbour's bytes alive.
                    let mut at = 0u64;
                    let mut pending = Bytes::new();
                    let mut next = slots.next();
                    let mut buf = BytesMut::with_capacity(stored_ends[0] as usize);
                    while let Some((i, slot)) = next.take() {
                        let need = (stored_ends[i] - at) as usize - buf.len();
                        if need == 0 {
                            at = stored_ends[i];
                            deliver(i, Ok(std::mem::take(&mut buf).freeze()), slot);
                            next = slots.next();
                            if let Some((j, _)) = &next {
                                buf = BytesMut::with_capacity((stored_ends[*j] - at) as usize);
                            }
                            continue;
                        }
                        next = Some((i, slot));
                        if pending.is_empty() {
                            match tokio::time::timeout(timeout, stream.next()).await {
                                Ok(Some(Ok(chunk))) => {
                                    stats.fetched_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                                    pending = chunk;
                                }
                                Ok(Some(Err(e))) => {
                                    failure = Some(e.to_string());
                                    break;
                                }
                                Ok(None) => {
                                    failure = Some(format!(
                                        "{object} bytes {}..{}: the remote returned {} bytes, not {want}",
                                        stored.start,
                                        stored.end,
                                        at + buf.len() as u64
                                    ));
                                    break;
                                }
                                Err(_) => {
                                    failure = Some(format!("{object}: no data within {timeout:?}"));
                                    break;
                                }
                            }
                        }
                        let take = need.min(pending.len());
                        buf.extend_from_slice(&pending.split_to(take));
                    }
                    if let Some(rest) = next {
                        let reason = failure.unwrap_or_default();
                        for (i, slot) in std::iter::once(rest).chain(slots) {
                            deliver(i, Err(reason.clone()), slot);
                        }
                    }
                }
                other => {
                    let reason = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("{object}: no answer within {timeout:?}"),
                    };
                    for (i, slot) in slots {
                        deliver(i, Err(reason.clone()), slot);
                    }
                }
            }
            fetching.fetch_sub(want, Ordering::Relaxed);
        });
    }

    /// How long a reader waits for a frame before giving up.
    fn wait_limit(&self) -> Duration {
        self.config.timeout * (self.config.attempts.max(1) + 1) + Duration::from_secs(2)
    }

    fn frame(&self, key: FrameKey, seg: &Arc<Segment>) -> Result<Bytes, String> {
        if let Some(b) = self.warm.get(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        match self.start(key, seg) {
            Some(slot) => slot.wait(self.wait_limit()),
            // Arrived meanwhile.
            None => self
                .warm
                .get(&key)
                .ok_or_else(|| "the frame left the cache as it arrived".to_string()),
        }
    }

    /// Bytes a reader announces ahead of itself.
    fn window(&self) -> u64 {
        self.config.readahead_bytes.min(self.warm_capacity() / 4)
    }

    /// Starts fetching `frames` (in reading order) that are neither cached
    /// nor on their way, merging consecutive ones of a segment into runs
    /// of up to half the read-ahead, each one ranged GET.
    fn start_runs(&self, frames: &[(PlaneKind, u64, Arc<Segment>, usize)]) {
        let run_max = (self.window() / 2).clamp(1, RUN_MAX);
        let mut room =
            (self.warm_capacity() / 2).saturating_sub(self.fetching.load(Ordering::Relaxed));
        type Run = (
            PlaneKind,
            u64,
            Arc<Segment>,
            Range<usize>,
            u64,
            Vec<Arc<Slot>>,
        );
        let mut runs: Vec<Run> = Vec::new();
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for (plane, segment, seg, f) in frames {
            let key = FrameKey {
                plane: *plane,
                segment: *segment,
                frame: *f as u32,
            };
            if in_flight.contains_key(&key) || self.warm.contains_key(&key) {
                continue;
            }
            let r = seg.copy.frames.raw_range(*f);
            let len = r.end - r.start;
            if len > room {
                break;
            }
            room -= len;
            let slot = Arc::new(Slot::default());
            in_flight.insert(key, slot.clone());
            match runs.last_mut() {
                Some((p, s, _, range, bytes, slots))
                    if p == plane && s == segment && range.end == *f && *bytes + len <= run_max =>
                {
                    range.end += 1;
                    *bytes += len;
                    slots.push(slot);
                }
                _ => runs.push((*plane, *segment, seg.clone(), *f..*f + 1, len, vec![slot])),
            }
        }
        drop(in_flight);
        for (plane, segment, seg, range, _, slots) in runs {
            self.fetch(plane, segment, &seg, range, slots);
        }
    }
}

impl ColdStore for ColdReader {
    fn read(
        &self,
        plane: PlaneKind,
        segment: u64,
        offset: u64,
        len: u64,
    ) -> std::io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let seg = self.segment(plane, segment)?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| other("range overflows".into()))?;
        let frames = seg.copy.frames.frames_for(offset..end).ok_or_else(|| {
            other(format!(
                "{plane} segment {segment} has {} bytes; {offset}..{end} is outside",
                seg.copy.frames.raw_len()
            ))
        })?;
        // One frame (a body leaf is one): a slice of the cached frame.
        let single = frames.len() == 1;
        let mut out = BytesMut::with_capacity(if single { 0 } else { len as usize });
        for f in frames {
            let key = FrameKey {
                plane,
                segment,
                frame: f as u32,
            };
            let bytes = self.frame(key, &seg).map_err(|e| {
                other(format!(
                    "{plane} segment {segment} from the remote ({}): {e}",
                    seg.copy.key
                ))
            })?;
            let r = seg.copy.frames.raw_range(f);
            let from = offset.max(r.start) - r.start;
            let to = end.min(r.end) - r.start;
            if to as usize > bytes.len() {
                return Err(other(format!("frame {f} is shorter than its table says")));
            }
            if single {
                return Ok(bytes.slice(from as usize..to as usize));
            }
            out.extend_from_slice(&bytes[from as usize..to as usize]);
        }
        Ok(out.freeze())
    }

    fn prefetch_window(&self) -> u64 {
        self.window()
    }

    fn prefetch(&self, ranges: &[(PlaneKind, u64, u64, u64)]) {
        let mut frames: Vec<(PlaneKind, u64, Arc<Segment>, usize)> = Vec::new();
        for &(plane, segment, offset, len) in ranges {
            // A segment whose note cannot be read fails its real read.
            let Ok(seg) = self.segment(plane, segment) else {
                continue;
            };
            let Some(range) = seg.copy.frames.frames_for(offset..offset + len.max(1)) else {
                continue;
            };
            for f in range {
                let dup = frames
                    .last()
                    .is_some_and(|(p, s, _, l)| *p == plane && *s == segment && *l == f);
                if !dup {
                    frames.push((plane, segment, seg.clone(), f));
                }
            }
        }
        self.start_runs(&frames);
    }
}

/// One ranged read, retried with backoff, each attempt bounded by
/// `timeout`; a short answer is an error.
async fn fetch_range(
    remote: &dyn Remote,
    object: &str,
    range: Range<u64>,
    timeout: Duration,
    attempts: u32,
) -> Result<Bytes, String> {
    let want = range.end - range.start;
    let fetched = billet_remote::retrying(
        attempts,
        Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
        || {
            let range = range.clone();
            async move {
                match tokio::time::timeout(timeout, remote.get_range(object, range)).await {
                    Ok(r) => r,
                    Err(_) => Err(RemoteError::Failed {
                        op: "reading a range of",
                        key: object.to_string(),
                        reason: format!("no answer within {timeout:?}"),
                        retryable: true,
                    }),
                }
            }
        },
    )
    .await;
    match fetched {
        Ok(b) if b.len() as u64 != want => Err(format!(
            "{object} bytes {}..{}: the remote returned {} bytes, not {want}",
            range.start,
            range.end,
            b.len()
        )),
        Ok(b) => Ok(b),
        Err(e) => Err(e.to_string()),
    }
}
