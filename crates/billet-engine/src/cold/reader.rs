//! Reads of evicted segments: the frame holding the asked bytes is found
//! in the segment's frame table (from its local `.remote` note), fetched
//! by one ranged GET, decoded, kept in a byte-bounded warm cache, and
//! sliced. Concurrent readers of one frame share one fetch; a reader
//! moving through a segment frame by frame has the next frames fetched
//! ahead of it. The log checks every block it gets against its CID, so a
//! short, altered or missing frame fails that block's read, naming it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use billet_log::{ColdStore, PlaneKind};
use billet_remote::{Backoff, Remote, RemoteCopy, RemoteError, frames};
use bytes::{Bytes, BytesMut};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::runtime::RemoteRuntime;

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

/// A segment's remote copy, with where its last reader was.
struct Segment {
    copy: RemoteCopy,
    /// The last frame read on demand, plus one (0: none yet).
    last: AtomicU64,
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
            warm: Arc::new(Cache::with_weighter(
                (cap / (64 << 10)).max(16) as usize,
                cap,
                FrameWeight,
            )),
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
        let seg = Arc::new(Segment {
            copy,
            last: AtomicU64::new(0),
        });
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

        let i = key.frame as usize;
        let stored = seg.copy.frames.stored_range(i);
        let raw = seg.copy.frames.raw_range(i);
        let encoding = seg.copy.encoding;
        let object = seg.copy.key.clone();
        let remote = self.remote.clone();
        let (timeout, attempts) = (self.config.timeout, self.config.attempts);
        let stats = self.stats.clone();
        let warm = self.warm.clone();
        let done = slot.clone();
        let in_flight = self.in_flight.clone();
        self.rt.handle().spawn(async move {
            let want = stored.end - stored.start;
            let fetched = billet_remote::retrying(
                attempts,
                Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
                || {
                    let remote = remote.clone();
                    let object = object.clone();
                    let range = stored.clone();
                    async move {
                        match tokio::time::timeout(timeout, remote.get_range(&object, range)).await
                        {
                            Ok(r) => r,
                            Err(_) => Err(RemoteError::Failed {
                                op: "reading a range of",
                                key: object,
                                reason: format!("no answer within {timeout:?}"),
                                retryable: true,
                            }),
                        }
                    }
                },
            )
            .await;
            let result = match fetched {
                Ok(b) if b.len() as u64 != want => Err(format!(
                    "{object} bytes {}..{}: the remote returned {} bytes, not {want}",
                    stored.start,
                    stored.end,
                    b.len()
                )),
                Ok(b) => {
                    stats.fetches.fetch_add(1, Ordering::Relaxed);
                    stats.fetched_bytes.fetch_add(want, Ordering::Relaxed);
                    frames::decode_frame(encoding, b, raw.end - raw.start)
                        .map_err(|e| format!("{object} frame {}: {e}", key.frame))
                }
                Err(e) => Err(e.to_string()),
            };
            match &result {
                Ok(b) => warm.insert(key, b.clone()),
                Err(_) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            done.finish(result);
        });
        Some(slot)
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

    /// Fetches the frames after `last` ahead of a sequential reader.
    fn read_ahead(&self, plane: PlaneKind, segment: u64, seg: &Arc<Segment>, last: usize) {
        let frames = &seg.copy.frames;
        let mut budget = self.config.readahead_bytes.min(self.warm_capacity() / 4);
        for f in last + 1..frames.len() {
            let r = frames.raw_range(f);
            let len = r.end - r.start;
            if len > budget {
                break;
            }
            budget -= len;
            let key = FrameKey {
                plane,
                segment,
                frame: f as u32,
            };
            let _ = self.start(key, seg);
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
        let prev = seg.last.swap(frames.end as u64, Ordering::Relaxed);
        // Started where the last read ended, or inside its last frame:
        // sequential.
        if prev != 0 && (frames.start as u64 == prev || frames.start as u64 + 1 == prev) {
            self.read_ahead(plane, segment, &seg, frames.end - 1);
        }
        let mut out = BytesMut::with_capacity(len as usize);
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
            out.extend_from_slice(&bytes[from as usize..to as usize]);
        }
        Ok(out.freeze())
    }
}
