use std::future::Future;

use billet_block::{Block, Codec};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::checksum::{ChecksumAlgorithm, ChecksumValue, Checksummer};
use crate::layout::{Chunker, FileLayout, Link};
use crate::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where ingested blocks go (the log's data and catalog planes, a memory
/// store in tests). Leaves are `raw`, tree nodes `dag-pb`; a node always
/// comes after the leaves it links.
pub trait BlockSink: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    fn put(&mut self, block: Block) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl BlockSink for Vec<Block> {
    type Error = std::convert::Infallible;

    async fn put(&mut self, block: Block) -> Result<(), Self::Error> {
        self.push(block);
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub chunk_size: usize,
    /// S3 checksums to compute besides MD5 and SHA-256.
    pub checksums: Vec<ChecksumAlgorithm>,
    /// Refuse bodies longer than this.
    pub max_size: Option<u64>,
    /// Bodies past this many bytes hash MD5 on a blocking thread of their own.
    pub md5_thread_after: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            checksums: Vec::new(),
            max_size: None,
            md5_thread_after: 1 << 20,
        }
    }
}

/// What one pass over a body produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The body's root: a raw leaf for bodies of at most one chunk.
    pub root: Link,
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
    pub checksums: Vec<ChecksumValue>,
}

impl Ingested {
    pub fn size(&self) -> u64 {
        self.root.file_size
    }

    /// The S3 ETag of a single-part upload: hex MD5, unquoted.
    pub fn etag(&self) -> String {
        hex::encode(self.md5)
    }

    pub fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<&ChecksumValue> {
        self.checksums.iter().find(|c| c.algorithm == algorithm)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading the body failed: {0}")]
    Body(#[source] BoxError),
    #[error("storing a block failed: {0}")]
    Sink(#[source] BoxError),
    #[error("body exceeds the {max}-byte limit")]
    TooLarge { max: u64 },
    #[error("chunk size {0} is outside 1..={MAX_CHUNK_SIZE}")]
    BadChunkSize(usize),
    #[error("the MD5 worker stopped: {0}")]
    Worker(String),
}

/// The synchronous core: chunking, tree building, SHA-256 and checksums.
/// MD5 is left to the caller so it can run on another thread.
struct BodyWriter {
    chunker: Chunker,
    layout: FileLayout,
    sha256: Sha256,
    checksums: Checksummer,
    want_sha256_checksum: bool,
    size: u64,
    max_size: Option<u64>,
    leaves: u64,
}

impl BodyWriter {
    fn new(opts: &IngestOptions) -> Result<Self, IngestError> {
        if opts.chunk_size == 0 || opts.chunk_size > MAX_CHUNK_SIZE {
            return Err(IngestError::BadChunkSize(opts.chunk_size));
        }
        // The body SHA-256 is computed anyway; an SHA256 checksum reuses it.
        let others: Vec<_> = opts
            .checksums
            .iter()
            .copied()
            .filter(|a| *a != ChecksumAlgorithm::Sha256)
            .collect();
        Ok(BodyWriter {
            chunker: Chunker::new(opts.chunk_size),
            layout: FileLayout::new(),
            sha256: Sha256::new(),
            checksums: Checksummer::new(&others),
            want_sha256_checksum: opts.checksums.contains(&ChecksumAlgorithm::Sha256),
            size: 0,
            max_size: opts.max_size,
            leaves: 0,
        })
    }

    fn write(&mut self, data: &[u8], out: &mut Vec<Block>) -> Result<(), IngestError> {
        self.size += data.len() as u64;
        if let Some(max) = self.max_size
            && self.size > max
        {
            return Err(IngestError::TooLarge { max });
        }
        self.sha256.update(data);
        self.checksums.update(data);
        let layout = &mut self.layout;
        let leaves = &mut self.leaves;
        self.chunker.push(data, &mut |chunk| {
            let leaf = Block::new(Codec::Raw, chunk);
            let link = Link::leaf(&leaf);
            *leaves += 1;
            out.push(leaf);
            layout.push(link, &mut |node| out.push(node));
        });
        Ok(())
    }

    fn finish(self, md5: [u8; 16], out: &mut Vec<Block>) -> Ingested {
        let BodyWriter {
            chunker,
            mut layout,
            sha256,
            checksums,
            want_sha256_checksum,
            leaves,
            ..
        } = self;
        let last = chunker.finish();
        if last.is_some() || leaves == 0 {
            // The empty body is the one empty raw leaf.
            let leaf = Block::new(Codec::Raw, last.unwrap_or_default());
            let link = Link::leaf(&leaf);
            out.push(leaf);
            layout.push(link, &mut |node| out.push(node));
        }
        let root = layout
            .finish(&mut |node| out.push(node))
            .expect("at least one leaf was pushed");
        let sha256: [u8; 32] = sha256.finalize().into();
        let mut checksums = checksums.finish();
        if want_sha256_checksum {
            checksums.push(ChecksumValue {
                algorithm: ChecksumAlgorithm::Sha256,
                digest: sha256.to_vec(),
            });
            checksums.sort_by_key(|c| c.algorithm);
        }
        Ingested {
            root,
            md5,
            sha256,
            checksums,
        }
    }
}

/// Ingests an in-memory body (tools, tests); returns its blocks in write order.
pub fn ingest_bytes(
    data: &[u8],
    opts: &IngestOptions,
) -> Result<(Ingested, Vec<Block>), IngestError> {
    let mut w = BodyWriter::new(opts)?;
    let mut out = Vec::new();
    w.write(data, &mut out)?;
    let md5: [u8; 16] = Md5::digest(data).into();
    let ingested = w.finish(md5, &mut out);
    Ok((ingested, out))
}

/// MD5 inline for small bodies, on a thread of its own once a body is
/// large: MD5 cannot be split within a stream, so it gets a core while the
/// async side chunks, hashes the rest and writes blocks. A dedicated thread
/// (not the runtime's blocking pool) so a bounded pool is never held for
/// the length of an upload.
enum Md5Lane {
    Inline {
        hasher: Md5,
        seen: u64,
        after: u64,
    },
    Worker {
        tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
        batch: Vec<Bytes>,
        batch_bytes: usize,
        result: tokio::sync::oneshot::Receiver<Md5>,
    },
    Spent,
}

/// Pieces are handed to the worker in batches of this many bytes, so the
/// channel costs nothing next to hashing.
const MD5_BATCH_BYTES: usize = 256 << 10;
/// Batches in flight; bounds memory to a few MiB per body.
const MD5_QUEUE: usize = 4;

impl Md5Lane {
    async fn feed(&mut self, piece: &Bytes) -> Result<(), IngestError> {
        match self {
            Md5Lane::Inline {
                hasher,
                seen,
                after,
            } => {
                *seen += piece.len() as u64;
                if *seen <= *after {
                    hasher.update(piece);
                    return Ok(());
                }
                let hasher = std::mem::take(hasher);
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(MD5_QUEUE);
                let (done, result) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("billet-md5".into())
                    .spawn(move || {
                        let mut hasher = hasher;
                        while let Some(batch) = rx.blocking_recv() {
                            for b in batch {
                                hasher.update(&b);
                            }
                        }
                        let _ = done.send(hasher);
                    })
                    .map_err(|e| IngestError::Worker(format!("starting the MD5 thread: {e}")))?;
                *self = Md5Lane::Worker {
                    tx,
                    batch: vec![piece.clone()],
                    batch_bytes: piece.len(),
                    result,
                };
                Ok(())
            }
            Md5Lane::Worker {
                tx,
                batch,
                batch_bytes,
                ..
            } => {
                batch.push(piece.clone());
                *batch_bytes += piece.len();
                if *batch_bytes >= MD5_BATCH_BYTES {
                    *batch_bytes = 0;
                    let full = std::mem::take(batch);
                    tx.send(full)
                        .await
                        .map_err(|_| IngestError::Worker("channel closed".into()))?;
                }
                Ok(())
            }
            Md5Lane::Spent => Err(IngestError::Worker("used after finish".into())),
        }
    }

    async fn finish(&mut self) -> Result<[u8; 16], IngestError> {
        match std::mem::replace(self, Md5Lane::Spent) {
            Md5Lane::Inline { hasher, .. } => Ok(hasher.finalize().into()),
            Md5Lane::Worker {
                tx, batch, result, ..
            } => {
                if !batch.is_empty() {
                    tx.send(batch)
                        .await
                        .map_err(|_| IngestError::Worker("channel closed".into()))?;
                }
                drop(tx);
                let hasher = result
                    .await
                    .map_err(|_| IngestError::Worker("the MD5 thread stopped".into()))?;
                Ok(hasher.finalize().into())
            }
            Md5Lane::Spent => Err(IngestError::Worker("finished twice".into())),
        }
    }
}

/// Streams a body into UnixFS blocks, handing each block to `sink` as soon
/// as it exists, and computes every digest in the same pass. Memory stays
/// at about one chunk plus one pending node per tree level, whatever the
/// body's size.
pub async fn ingest<S, E, K>(
    body: S,
    opts: &IngestOptions,
    sink: &mut K,
) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
    K: BlockSink,
{
    let mut writer = BodyWriter::new(opts)?;
    let mut md5 = Md5Lane::Inline {
        hasher: Md5::new(),
        seen: 0,
        after: opts.md5_thread_after,
    };
    let mut out = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| IngestError::Body(e.into()))?;
        if piece.is_empty() {
            continue;
        }
        writer.write(&piece, &mut out)?;
        md5.feed(&piece).await?;
        for block in out.drain(..) {
            sink.put(block)
                .await
                .map_err(|e| IngestError::Sink(Box::new(e)))?;
        }
    }
    let md5 = md5.finish().await?;
    let ingested = writer.finish(md5, &mut out);
    for block in out.drain(..) {
        sink.put(block)
            .await
            .map_err(|e| IngestError::Sink(Box::new(e)))?;
    }
    Ok(ingested)
}
