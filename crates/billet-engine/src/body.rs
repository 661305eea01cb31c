//! Bodies in and out: staging a request body into the log while it
//! arrives, and streaming a range of a stored body back.

use std::sync::Arc;

use billet_block::{Block, BlockStore, Cid, Codec};
use billet_log::{Log, LogError, Receipt};
use billet_unixfs::{BlockSink, ChecksumAlgorithm, IngestOptions, Ingested, RangeReader, ingest};
use bytes::Bytes;
use futures_core::Stream;

use crate::error::{EngineError, join_error};
use crate::store::CachedStore;

/// A body whose blocks are in the log (not yet durable, not yet visible):
/// the commit pipeline makes it both.
#[derive(Debug, Clone)]
pub struct StagedBody {
    pub ingested: Ingested,
    pub(crate) receipt: Receipt,
}

/// Blocks this size and up are written from a blocking thread.
const INLINE_WRITE: usize = 64 << 10;

/// Writes each block to its plane as the UnixFS builder produces it.
pub(crate) struct LogSink {
    log: Arc<Log>,
    receipt: Receipt,
}

impl BlockSink for LogSink {
    type Error = LogError;

    async fn put(&mut self, block: Block) -> Result<(), LogError> {
        let r = if block.len() < INLINE_WRITE {
            self.log.write(std::slice::from_ref(&block))?
        } else {
            let log = self.log.clone();
            tokio::task::spawn_blocking(move || log.write(std::slice::from_ref(&block)))
                .await
                .map_err(|e| LogError::SyncFailed {
                    plane: billet_log::PlaneKind::Data,
                    reason: format!("writer task failed: {e}"),
                })??
        };
        self.receipt = self.receipt.merge(r);
        Ok(())
    }
}

/// Streams `body` into the log as UnixFS blocks, computing every digest.
pub(crate) async fn stage<S, E>(
    log: &Arc<Log>,
    body: S,
    chunk_size: usize,
    checksums: &[ChecksumAlgorithm],
    max_size: u64,
) -> Result<StagedBody, EngineError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let opts = IngestOptions {
        chunk_size,
        checksums: checksums.to_vec(),
        max_size: Some(max_size),
        ..IngestOptions::default()
    };
    let mut sink = LogSink {
        log: log.clone(),
        receipt: Receipt::default(),
    };
    let ingested = ingest(body, &opts, &mut sink).await?;
    Ok(StagedBody {
        ingested,
        receipt: sink.receipt,
    })
}

/// Bodies up to this size are read in one go on the calling task.
const INLINE_READ: u64 = 1 << 20;
/// Slices buffered between the reading thread and the response.
const READ_AHEAD: usize = 4;

/// The bytes `[start, end)` of a body, as a stream. Small single-block
/// bodies are read inline; larger ones on a blocking thread that stays at
/// most a few blocks ahead of the client.
pub(crate) fn read(
    store: Arc<CachedStore>,
    root: Cid,
    size: u64,
    start: u64,
    end: u64,
) -> Result<crate::BodyStream, EngineError> {
    if root.codec() == Codec::Raw.code() && size <= INLINE_READ {
        let data = store.get(&root)?;
        if data.len() as u64 != size {
            return Err(EngineError::Internal(format!(
                "body {root} holds {} bytes, the manifest says {size}",
                data.len()
            )));
        }
        let slice = data.slice(start as usize..end as usize);
        return Ok(Box::pin(futures_util::stream::once(
            async move { Ok(slice) },
        )));
    }
    let reader = RangeReader::new(store, root, size, start, end)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, EngineError>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for piece in reader {
            let piece = piece.map_err(EngineError::from);
            let failed = piece.is_err();
            if tx.blocking_send(piece).is_err() || failed {
                // The client went away, or the error ends the body.
                return;
            }
        }
    });
    Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
}

/// Collects a whole body (small objects, tests).
pub(crate) async fn read_all(
    store: Arc<CachedStore>,
    root: Cid,
    size: u64,
) -> Result<Vec<u8>, EngineError> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(size as usize);
        for piece in RangeReader::new(store, root, size, 0, size)? {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    })
    .await
    .map_err(join_error)?
}
