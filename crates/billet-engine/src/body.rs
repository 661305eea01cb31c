//! Bodies in and out: staging a request body into the log while it
//! arrives, and streaming a range of a stored body back.

use std::sync::Arc;

use billet_block::{Block, BlockStore, Cid, Codec};
use billet_log::{Log, LogError, Receipt};
use billet_unixfs::{BlockSink, ChecksumAlgorithm, IngestOptions, Ingested, RangeReader, ingest};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;

use crate::error::{EngineError, join_error};
use crate::store::CachedStore;

/// A body whose blocks are in the log (not yet durable, not yet visible):
/// the commit pipeline makes it both.
#[derive(Debug, Clone)]
pub struct StagedBody {
    pub ingested: Ingested,
    pub(crate) receipt: Receipt,
    /// Keeps a collection from taking its blocks until it is committed
    /// (or recorded as a part), or dropped.
    pub(crate) _staging: Arc<billet_log::Staging>,
}

/// Blocks this size and up are written from a blocking thread.
const INLINE_WRITE: usize = 64 << 10;

/// A large body asks the log to start making its bytes durable every this
/// many bytes, so the disk writes them back while the rest arrives and the
/// commit's final fsync has little left to flush (64 MiB at the end of an
/// upload would be ~50 ms of serial writeback).
const SYNC_AHEAD: u64 = 8 << 20;

/// Writes each block to its plane as the UnixFS builder produces it.
/// Large blocks are written on a blocking thread while the builder hashes
/// the next one (copying into the page cache costs about as much as
/// hashing here); at most one such write is in flight.
pub(crate) struct LogSink {
    log: Arc<Log>,
    receipt: Receipt,
    unsynced: u64,
    in_flight: Option<tokio::task::JoinHandle<Result<Receipt, LogError>>>,
}

impl LogSink {
    fn new(log: Arc<Log>) -> Self {
        LogSink {
            log,
            receipt: Receipt::default(),
            unsynced: 0,
            in_flight: None,
        }
    }

    /// Waits for the write in flight, if any, and takes its receipt.
    async fn settle(&mut self) -> Result<(), LogError> {
        if let Some(handle) = self.in_flight.take() {
            let r = handle.await.map_err(|e| LogError::SyncFailed {
                plane: billet_log::PlaneKind::Data,
                reason: format!("writer task failed: {e}"),
            })??;
            self.receipt = self.receipt.merge(r);
        }
        Ok(())
    }

    /// Every block handed over is written; returns what to sync.
    async fn finish(mut self) -> Result<Receipt, LogError> {
        self.settle().await?;
        Ok(self.receipt)
    }
}

impl BlockSink for LogSink {
    type Error = LogError;

    async fn put(&mut self, block: Block) -> Result<(), LogError> {
        let len = block.len() as u64;
        if block.len() < INLINE_WRITE {
            let r = self.log.write(std::slice::from_ref(&block))?;
            self.receipt = self.receipt.merge(r);
        } else {
            self.settle().await?;
            let log = self.log.clone();
            self.in_flight = Some(tokio::task::spawn_blocking(move || {
                log.write(std::slice::from_ref(&block))
            }));
        }
        self.unsynced += len;
        if self.unsynced >= SYNC_AHEAD {
            self.unsynced = 0;
            let (log, receipt) = (self.log.clone(), self.receipt);
            // Nobody waits for this one: a failure fails the commit's own
            // sync of the same bytes later.
            tokio::spawn(async move {
                let _ = log.sync(receipt).await;
            });
        }
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
    let staging = Arc::new(log.staging());
    let mut sink = LogSink::new(log.clone());
    let ingested = ingest(body, &opts, &mut sink).await?;
    Ok(StagedBody {
        ingested,
        receipt: sink.finish().await?,
        _staging: staging,
    })
}

/// Bodies up to this size are read in one go on the calling task.
const INLINE_READ: u64 = 1 << 20;

/// The bytes `[start, end)` of a body, as a stream. Small single-block
/// bodies on local disk are read inline; everything else block by block
/// on blocking threads, one block ahead of the client. The first piece is
/// read before the stream is returned: a body that cannot be read (a
/// block missing or damaged on the remote) fails the request instead of
/// cutting a response short.
pub(crate) async fn read(
    store: Arc<CachedStore>,
    root: Cid,
    size: u64,
    start: u64,
    end: u64,
) -> Result<crate::BodyStream, EngineError> {
    if root.codec() == Codec::Raw.code() && size <= INLINE_READ {
        let data = if store.is_local(&root) {
            store.get(&root)?
        } else {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.get(&root))
                .await
                .map_err(join_error)??
        };
        if data.len() as u64 != size {
            return Err(EngineError::Corrupt(format!(
                "body {root} holds {} bytes, the manifest says {size}",
                data.len()
            )));
        }
        let slice = data.slice(start as usize..end as usize);
        return Ok(Box::pin(futures_util::stream::once(
            async move { Ok(slice) },
        )));
    }
    // Each block is read on a blocking thread, one block ahead of the
    // client; no thread is held while a slow client drains the response.
    let next = |mut reader: RangeReader<Arc<CachedStore>>| {
        tokio::task::spawn_blocking(move || {
            let piece = reader.next();
            (reader, piece)
        })
    };
    let (reader, first) = tokio::task::spawn_blocking(move || {
        let mut reader = RangeReader::new(store, root, size, start, end)?;
        let first = reader.next();
        Ok::<_, EngineError>((reader, first))
    })
    .await
    .map_err(join_error)??;
    let first = match first {
        None => return Ok(Box::pin(futures_util::stream::empty())),
        Some(piece) => piece?,
    };
    let rest = futures_util::stream::unfold(Some(next(reader)), move |ahead| async move {
        let (reader, piece) = match ahead?.await {
            Ok(r) => r,
            Err(e) => return Some((Err(join_error(e)), None)),
        };
        match piece? {
            Ok(bytes) => Some((Ok(bytes), Some(next(reader)))),
            // The error ends the body.
            Err(e) => Some((Err(EngineError::from(e)), None)),
        }
    });
    Ok(Box::pin(
        futures_util::stream::once(async move { Ok(first) }).chain(rest),
    ))
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
