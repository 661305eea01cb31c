//! The sweep: which sealed segments are worth rewriting, and rewriting
//! them.
//!
//! A segment below the fence whose live bytes (by the mark's filter) are
//! under `threshold` of its size is a candidate; with a cold tier that
//! ships its plane, only once it has shipped (a segment being uploaded is
//! left alone). Candidates are rewritten in batches: retire them (no
//! write deduplicates against them from then on), add the hits so far to
//! the live set, copy every live block into the open segment through the
//! ordinary write path (a block with another copy elsewhere is not copied
//! again), make the copies durable, record shipped ones as retired in the
//! index (their remote objects are deleted once the copies have shipped),
//! raise the marks of heads waiting to ship past the copies, then drop the
//! segments.

use billet_block::{Block, BlockStore, Cid};
use billet_log::{Fence, Log, PlaneKind, Receipt, SegmentInfo, SegmentState};

use super::mark::Live;
use super::retention::block_on;
use super::{GcHooks, GcStep, PlaneReport};
use crate::Inner;
use crate::error::EngineError;

/// Bytes a block's frame adds to its length in a segment (length varint
/// and CID), near enough for the live share.
const FRAME_OVERHEAD: u64 = 40;

/// Bytes handed to one log write while copying: a write holds the plane's
/// writer lock, which every PUT needs too.
const WRITE_BATCH: usize = 1 << 20;

/// Copied bytes made durable at a time: writeback spread over the batch
/// rather than one long flush that PUTs' fsyncs queue behind.
const SYNC_EVERY: u64 = 2 << 20;

/// Segments in one batch at most.
const BATCH_SEGMENTS: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub plane: PlaneKind,
    pub id: u64,
    pub bytes: u64,
    pub live_bytes: u64,
    pub noted: bool,
}

/// Sizes every sealed segment's live share; returns the candidates and
/// fills in the per-plane figures.
pub(crate) fn plan(
    inner: &Inner,
    fence: Fence,
    live: &Live,
    threshold: f64,
    ships: impl Fn(PlaneKind) -> bool,
    reports: &mut [PlaneReport; 2],
) -> Result<Vec<Candidate>, EngineError> {
    let log = inner.store.log();
    // Segments holding blocks of which a newer copy exists (a collection
    // stopped after copying, or writes that stored their own copy): taken
    // whatever their share, or the older copies would stay for ever.
    let forced: std::collections::HashSet<(PlaneKind, u64)> =
        log.superseded().into_iter().collect();
    let mut out = Vec::new();
    for s in log.segments() {
        let r = &mut reports[super::plane_slot(s.plane)];
        r.segments += 1;
        r.bytes += s.bytes;
        if s.state == SegmentState::Open || s.id >= fence.of(s.plane) {
            // Written after the mark began: live as a whole.
            r.live_bytes += s.bytes;
            continue;
        }
        let live_bytes = live_bytes_of(log, &s, live)?;
        r.live_bytes += live_bytes;
        if (live_bytes as f64) >= threshold * s.bytes as f64 && !forced.contains(&(s.plane, s.id)) {
            continue;
        }
        r.reclaimable_bytes += s.bytes.saturating_sub(live_bytes);
        if ships(s.plane) && !s.noted {
            continue;
        }
        out.push(Candidate {
            plane: s.plane,
            id: s.id,
            bytes: s.bytes,
            live_bytes,
            noted: s.noted,
        });
    }
    Ok(out)
}

fn live_bytes_of(log: &Log, s: &SegmentInfo, live: &Live) -> Result<u64, EngineError> {
    Ok(log
        .segment_blocks(s.plane, s.id)?
        .iter()
        .filter(|(cid, _, _)| live.contains(cid))
        .map(|(_, _, len)| u64::from(*len) + FRAME_OVERHEAD)
        .sum())
}

/// Groups candidates into batches of one plane, about `batch_bytes` of
/// live data each.
pub(crate) fn batches(mut cands: Vec<Candidate>, batch_bytes: u64) -> Vec<Vec<Candidate>> {
    cands.sort_by_key(|c| (c.plane, c.id));
    let mut out: Vec<Vec<Candidate>> = Vec::new();
    let mut live = 0u64;
    for c in cands {
        let fits = out.last().is_some_and(|b| {
            b[0].plane == c.plane && b.len() < BATCH_SEGMENTS && live + c.live_bytes <= batch_bytes
        });
        if !fits {
            out.push(Vec::new());
            live = 0;
        }
        live += c.live_bytes;
        if let Some(b) = out.last_mut() {
            b.push(c);
        }
    }
    out
}

/// Keeps the copying at or under a rate, over a whole collection: the
/// collector's writes share the disk, and the open segment's fsyncs, with
/// every PUT.
#[derive(Debug)]
pub(crate) struct Pace {
    bytes_per_sec: Option<u64>,
    started: std::time::Instant,
    bytes: u64,
}

impl Pace {
    pub fn new(bytes_per_sec: Option<u64>) -> Pace {
        Pace {
            bytes_per_sec: bytes_per_sec.filter(|b| *b > 0),
            started: std::time::Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes copied and waits until the rate allows more.
    fn copied(&mut self, n: u64) {
        self.bytes += n;
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        let due = std::time::Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// What one batch did.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub copied_bytes: u64,
    pub copied_blocks: u64,
    pub dropped_bytes: u64,
}

/// Rewrites one batch (see the module docs). Blocking, inside a runtime
/// context.
pub(crate) fn sweep_batch(
    inner: &Inner,
    live: &mut Live,
    batch: &[Candidate],
    hooks: &dyn GcHooks,
    pace: &mut Pace,
) -> Result<Swept, EngineError> {
    let Some(first) = batch.first() else {
        return Ok(Swept::default());
    };
    let plane = first.plane;
    let ids: Vec<u64> = batch.iter().map(|c| c.id).collect();
    let log = inner.store.log();
    log.retire(plane, &ids)?;
    // Every deduplication against these segments happened before
    // `retire` and is among the hits; none can happen after.
    let (hits, _) = log.take_hits();
    for k in &hits {
        live.mark_key(k);
    }
    let mut swept = Swept::default();
    let mut receipt = Receipt::default();
    let mut pending: Vec<Block> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut unsynced = 0u64;
    let mut flush =
        |pending: &mut Vec<Block>, pending_bytes: &mut usize| -> Result<(), EngineError> {
            if !pending.is_empty() {
                receipt = receipt.merge(log.write(pending)?);
                unsynced += *pending_bytes as u64;
                pace.copied(*pending_bytes as u64);
                pending.clear();
                *pending_bytes = 0;
                if unsynced >= SYNC_EVERY {
                    block_on(log.sync(receipt))?;
                    unsynced = 0;
                }
            }
            Ok(())
        };
    let mut live_cids: Vec<Vec<Cid>> = Vec::with_capacity(batch.len());
    for c in batch {
        live_cids.push(
            log.segment_blocks(c.plane, c.id)?
                .into_iter()
                .filter(|(cid, _, _)| live.contains(cid))
                .map(|(cid, _, _)| cid)
                .collect(),
        );
        swept.dropped_bytes += c.bytes;
    }
    let half = live_cids.iter().map(Vec::len).sum::<usize>() / 2;
    let mut done = 0usize;
    for cids in live_cids {
        // Evicted segments are read through the cold tier: ask for their
        // frames together.
        log.prefetch(&cids);
        for cid in cids {
            if done == half {
                flush(&mut pending, &mut pending_bytes)?;
                hooks.at(GcStep::Copying);
            }
            done += 1;
            let data = log.get(&cid)?;
            swept.copied_bytes += data.len() as u64;
            swept.copied_blocks += 1;
            pending_bytes += data.len();
            pending.push(Block::verified(cid, data)?);
            if pending_bytes >= WRITE_BATCH {
                flush(&mut pending, &mut pending_bytes)?;
            }
        }
    }
    flush(&mut pending, &mut pending_bytes)?;
    block_on(log.sync(receipt))?;
    hooks.at(GcStep::CopiesDurable);
    // The copies are in segments up to the newest holding a block (the
    // open one if a copy went there; none may have been needed).
    let moved_to = log.last_written_segment(plane).unwrap_or(0);
    if let Some(cold) = &inner.cold {
        for c in batch {
            if c.noted {
                block_on(inner.index.retire_segment(
                    &cold.config.node,
                    plane.name(),
                    c.id,
                    moved_to,
                ))?;
            }
        }
        cold.heads.raise(plane, moved_to);
        cold.note_retired();
    }
    hooks.at(GcStep::Retired);
    log.drop_segments(plane, &ids)?;
    hooks.at(GcStep::Dropped);
    Ok(swept)
}
