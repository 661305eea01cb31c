//! Object bodies as UnixFS v1 files.
//!
//! A body is cut into `chunk_size` raw leaves. One leaf is the whole body;
//! more leaves hang under a balanced tree of dag-pb UnixFS `File` nodes with
//! at most [`MAX_LINKS`] children each, every node listing its children's
//! byte counts in `blocksizes` so a range read descends straight to the
//! leaves it needs. The empty body is the empty raw block.
//!
//! [`ingest`] does the whole write side in one pass over an async byte
//! stream: chunking, leaf and node hashing, the MD5 that S3 calls the ETag,
//! the body's SHA-256, and any S3 checksums asked for. MD5 cannot be split
//! within a stream, so a large body's MD5 runs on its own blocking thread
//! while the caller's task does everything else.

mod ahead;
mod checksum;
mod error;
mod ingest;
mod layout;
mod pb;
mod reader;

pub use checksum::{
    ChecksumAlgorithm, ChecksumValue, Checksummer, combine_full_object, composite_checksum,
};
pub use error::UnixfsError;
pub use ingest::{BlockSink, IngestError, IngestOptions, Ingested, ingest, ingest_bytes};
pub use layout::{Chunker, FileLayout, Link};
pub use pb::{FileNode, decode_file_node, encode_file_node};
pub use reader::{RangeReader, file_size, read_range};

/// Default leaf size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// Largest leaf size accepted (the CAR reader's block cap).
pub const MAX_CHUNK_SIZE: usize = 4 << 20;

/// Children per UnixFS node, as kubo and js-ipfs lay out balanced files.
pub const MAX_LINKS: usize = 174;
