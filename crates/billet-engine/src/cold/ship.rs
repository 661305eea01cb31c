//! Shipping sealed segments, and the loop that does it with eviction,
//! heads and deletes.
//!
//! One segment ships as: its frames cut at block ends; catalog segments
//! (and data segments whose sample compresses) built as a zstd seekable
//! file in the tmp directory, others uploaded from the segment file as
//! they are; the object uploaded (in parts when large), then its sidecar;
//! the object's size checked; then the `.remote` note written beside the
//! segment and the index row recorded. A crash anywhere before the note
//! leaves the segment unshipped, to be shipped again from the start.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use billet_index::{RemoteSegment, RemoteState};
use billet_log::{PlaneKind, SegmentInfo, SegmentState};
use billet_remote::{
    Backoff, Body, CAR_CONTENT_TYPE, Encoding, FrameTable, ObjectAttrs, RemoteCopy, frames,
};
use sha2::{Digest, Sha256};

use super::{ColdTier, Compression, PLANES, plane_index};
use crate::error::{EngineError, join_error};
use crate::{Inner, now_ms};

fn cold(inner: &Inner) -> Result<&Arc<ColdTier>, EngineError> {
    inner
        .cold
        .as_ref()
        .ok_or_else(|| EngineError::Internal("no cold tier".into()))
}

/// The background loop: a round whenever there may be work, at least
/// every `tick`, with backoff after failures.
pub(crate) async fn run(inner: Arc<Inner>) {
    let Ok(tier) = cold(&inner).cloned() else {
        return;
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    if let Err(e) = reconcile(&inner).await {
        tier.record_error("recording shipped segments in the index", &e);
    }
    while !tier.stopping.load(Ordering::SeqCst) {
        let wait = match round(&inner).await {
            Ok(()) => {
                backoff.reset();
                tier.clear_error();
                tier.config.tick
            }
            Err(e) => {
                tier.record_error("the cold tier", &e);
                backoff.next_delay().max(tier.config.tick)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tier.wake.notified() => {}
        }
    }
}

/// Ships what is sealed (one segment per plane at a time, planes taking
/// turns, so that heads can advance during a long backlog), publishing
/// shipped heads and evicting after each step; then runs due deletes.
pub(crate) async fn round(inner: &Arc<Inner>) -> Result<(), EngineError> {
    let tier = cold(inner)?.clone();
    let mut first_error = None;
    loop {
        let mut shipped_any = false;
        for plane in PLANES {
            if tier.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            if !tier.config.policy(plane).ship {
                continue;
            }
            let Some(seg) = next_unshipped(inner, plane) else {
                continue;
            };
            match ship_segment(inner, &tier, &seg).await {
                Ok(()) => shipped_any = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        super::publish::publish(inner, &tier).await?;
        super::evict::pass(inner, &tier).await?;
        if !shipped_any || first_error.is_some() {
            break;
        }
    }
    super::deletes::run(inner, &tier).await?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The oldest sealed segment of `plane` without a remote copy.
fn next_unshipped(inner: &Inner, plane: PlaneKind) -> Option<SegmentInfo> {
    inner
        .store
        .log()
        .segments()
        .into_iter()
        .find(|s| s.plane == plane && s.state == SegmentState::Sealed && !s.noted)
}

/// The highest id of `plane` up to which every sealed segment is shipped.
pub(crate) fn shipped_upto(segments: &[SegmentInfo], plane: PlaneKind) -> Option<u64> {
    let mut upto = None;
    for s in segments.iter().filter(|s| s.plane == plane) {
        match s.state {
            SegmentState::Open => break,
            _ if !s.noted => break,
            _ => upto = Some(s.id),
        }
    }
    upto
}

/// Writes through to `inner` while hashing what passes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether zstd pays on this segment: a few windows of it compress to at
/// most nine tenths.
fn sample_pays(path: &Path, len: u64, level: i32) -> std::io::Result<bool> {
    const WINDOW: u64 = 128 << 10;
    let f = std::fs::File::open(path)?;
    let mut sample = Vec::new();
    for at in [0, len / 2, len.saturating_sub(WINDOW)] {
        let mut buf = vec![0u8; WINDOW.min(len.saturating_sub(at)) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, at)?;
        sample.extend_from_slice(&buf);
    }
    Ok(frames::compression_ratio(&sample, level) <= 0.9)
}

/// What to upload for one segment, built on a blocking thread.
struct Built {
    encoding: Encoding,
    frames: FrameTable,
    body: Body,
    stored_len: u64,
    sha256: [u8; 32],
    tmp: Option<std::path::PathBuf>,
}

fn build(
    seg: &SegmentInfo,
    ends: &[u64],
    compression: Compression,
    frame_bytes: u64,
    level: i32,
    tmp_dir: &Path,
) -> Result<Built, EngineError> {
    let io = |what: &str| {
        let what = format!("{what} {}", seg.path.display());
        move |source| EngineError::Io { what, source }
    };
    let cuts = frames::cut_points(ends.iter().copied(), seg.bytes, frame_bytes);
    let zstd = match compression {
        Compression::Always => true,
        Compression::Never => false,
        Compression::Auto => sample_pays(&seg.path, seg.bytes, level).map_err(io("sampling"))?,
    };
    if !zstd {
        let mut hash = Sha256::new();
        let mut f = BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(&seg.path).map_err(io("opening"))?,
        );
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io("reading"))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n as u64;
        }
        if total != seg.bytes {
            return Err(EngineError::Corrupt(format!(
                "{} has {total} bytes, its sidecar says {}",
                seg.path.display(),
                seg.bytes
            )));
        }
        return Ok(Built {
            encoding: Encoding::Identity,
            frames: FrameTable::identity(&cuts),
            body: Body::File {
                path: seg.path.clone(),
                len: seg.bytes,
            },
            stored_len: seg.bytes,
            sha256: hash.finalize().into(),
            tmp: None,
        });
    }
    std::fs::create_dir_all(tmp_dir).map_err(io("creating the directory for"))?;
    let tmp = tmp_dir.join(format!("{}-{:020}.car.zst", seg.plane, seg.id));
    let src = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(&seg.path).map_err(io("opening"))?,
    );
    let mut out = Hashing {
        inner: BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).map_err(io("creating a compressed copy of"))?,
        ),
        hash: Sha256::new(),
    };
    let (table, written) = frames::compress_seekable(src, &cuts, level, &mut out)
        .map_err(|e| EngineError::Internal(format!("compressing {}: {e}", seg.path.display())))?;
    out.flush().map_err(io("writing a compressed copy of"))?;
    Ok(Built {
        encoding: Encoding::Zstd,
        frames: table,
        body: Body::File {
            path: tmp.clone(),
            len: written,
        },
        stored_len: written,
        sha256: out.hash.finalize().into(),
        tmp: Some(tmp),
    })
}

async fn ship_segment(
    inner: &Arc<Inner>,
    tier: &Arc<ColdTier>,
    seg: &SegmentInfo,
) -> Result<(), EngineError> {
    let log = inner.store.log().clone();
    let plane = seg.plane;
    let (sidecar, ends) = {
        let log = log.clone();
        let id = seg.id;
        tokio::task::spawn_blocking(move || log.sidecar(plane, id))
            .await
            .map_err(join_error)??
    };
    let built = {
        let seg = seg.clone();
        let policy = tier.config.policy(plane).compression;
        let (frame_bytes, level) = (tier.config.frame_bytes, tier.config.zstd_level);
        let tmp_dir = tier.tmp_dir.clone();
        tokio::task::spawn_blocking(move || {
            build(&seg, &ends, policy, frame_bytes, level, &tmp_dir)
        })
        .await
        .map_err(join_error)??
    };
    let result = upload(inner, tier, seg, &built, sidecar).await;
    if let Some(tmp) = &built.tmp {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

fn remote_err(e: billet_remote::RemoteError) -> EngineError {
    EngineError::Remote(e.to_string())
}

async fn upload(
    inner: &Arc<Inner>,
    tier: &Arc<ColdTier>,
    seg: &SegmentInfo,
    built: &Built,
    sidecar: Vec<u8>,
) -> Result<(), EngineError> {
    let plane = seg.plane;
    let key = tier.layout.segment(plane.name(), seg.id, built.encoding);
    let sidecar_key = tier.layout.sidecar(plane.name(), seg.id);
    let remote = tier.remote();
    let attrs = ObjectAttrs {
        content_type: Some(CAR_CONTENT_TYPE),
        content_encoding: (built.encoding == Encoding::Zstd).then_some("zstd"),
    };
    remote
        .put(&key, built.body.clone(), attrs)
        .await
        .map_err(remote_err)?;
    remote
        .put(
            &sidecar_key,
            Body::Bytes(sidecar.into()),
            ObjectAttrs {
                content_type: Some("application/octet-stream"),
                content_encoding: None,
            },
        )
        .await
        .map_err(remote_err)?;
    match remote.size(&key).await.map_err(remote_err)? {
        Some(n) if n == built.stored_len => {}
        other => {
            return Err(EngineError::Remote(format!(
                "{key}: the remote holds {other:?} bytes after the upload, not {}",
                built.stored_len
            )));
        }
    }
    let copy = RemoteCopy {
        key: key.clone(),
        encoding: built.encoding,
        segment_len: seg.bytes,
        stored_len: built.stored_len,
        sha256: Some(built.sha256),
        frames: built.frames.clone(),
    };
    let log = inner.store.log().clone();
    let id = seg.id;
    let note = copy.encode();
    tokio::task::spawn_blocking(move || log.note_remote(plane, id, &note))
        .await
        .map_err(join_error)??;
    let shipped_ms = now_ms();
    inner
        .index
        .put_segment(&row(
            tier,
            seg.plane,
            seg.id,
            &copy,
            RemoteState::Shipped,
            shipped_ms,
        ))
        .await?;
    tier.shipped_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((plane, id), shipped_ms);
    let i = plane_index(plane);
    tier.stats.segments[i].fetch_add(1, Ordering::Relaxed);
    tier.stats.bytes[i].fetch_add(seg.bytes, Ordering::Relaxed);
    tier.stats.stored_bytes[i].fetch_add(built.stored_len, Ordering::Relaxed);
    tracing::debug!(%plane, segment = id, bytes = seg.bytes, stored = built.stored_len, encoding = built.encoding.name(), "shipped");
    Ok(())
}

pub(crate) fn row(
    tier: &ColdTier,
    plane: PlaneKind,
    id: u64,
    copy: &RemoteCopy,
    state: RemoteState,
    shipped_ms: i64,
) -> RemoteSegment {
    RemoteSegment {
        node: tier.config.node.clone(),
        plane: plane.name().to_string(),
        id,
        state,
        bytes: copy.segment_len,
        stored_bytes: copy.stored_len,
        encoding: copy.encoding.name().to_string(),
        remote_key: copy.key.clone(),
        sidecar_key: tier.layout.sidecar(plane.name(), id),
        sha256: copy.sha256,
        shipped_ms,
    }
}

/// At start-up: every segment noted as shipped has its index row (a row
/// lost with an index that was not durable is written again from the
/// note), and rows whose segment is not noted here are left to be
/// replaced when it ships.
async fn reconcile(inner: &Arc<Inner>) -> Result<(), EngineError> {
    let tier = cold(inner)?.clone();
    let rows = inner.index.segments(&tier.config.node).await?;
    let log = inner.store.log().clone();
    for s in log.segments().into_iter().filter(|s| s.noted) {
        let known = rows
            .iter()
            .find(|r| r.plane == s.plane.name() && r.id == s.id);
        let state = if s.state == SegmentState::Evicted {
            RemoteState::Evicted
        } else {
            RemoteState::Shipped
        };
        if let Some(r) = known
            && r.bytes == s.bytes
        {
            tier.shipped_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((s.plane, s.id), r.shipped_ms);
            if r.state != state {
                inner
                    .index
                    .set_segment_state(&tier.config.node, s.plane.name(), s.id, state)
                    .await?;
            }
            continue;
        }
        let Some(note) = log.remote_note(s.plane, s.id)? else {
            continue;
        };
        let copy = RemoteCopy::decode(&note).map_err(|e| {
            EngineError::Corrupt(format!(
                "the remote note of {} segment {}: {e}",
                s.plane, s.id
            ))
        })?;
        let shipped_ms = now_ms();
        inner
            .index
            .put_segment(&row(&tier, s.plane, s.id, &copy, state, shipped_ms))
            .await?;
        tier.shipped_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((s.plane, s.id), shipped_ms);
    }
    // Compressed copies a crash left half built.
    if let Ok(entries) = std::fs::read_dir(&tier.tmp_dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}
