//! The log: billet's local journal, where every block lands before anything
//! points at it.
//!
//! Two planes, each an independent sequence of segments: **data** (raw body
//! chunks) and **catalog** (everything else — MST nodes, manifests, commits,
//! UnixFS nodes). A segment is a CARv1 file; when it seals (by size or age)
//! an index sidecar mapping CID → (offset, length) is written beside it. The
//! open segment's index lives in memory. Formats: `docs/log.md`.
//!
//! Writes are split in two steps so that body chunks can be written while
//! a request body is still arriving and made durable later in one group:
//!
//! * [`Log::write_data`] / [`Log::write_catalog`] put blocks in a plane's
//!   open segment (page cache) and return a [`Receipt`];
//! * [`Log::sync`] waits until everything a receipt covers is durable: its
//!   data-plane bytes first, then its catalog-plane bytes. Concurrent callers
//!   share fsyncs (group commit): one caller runs the `fdatasync`, everyone
//!   whose bytes it covered is released by it.
//!
//! [`Log::append`] does both for a batch. A block already in the log is not
//! written again. Every read is checked against the CID.
//!
//! Failure rules: an I/O error while writing fails that call (its partial
//! bytes are cut off); an fsync error fails every receipt not yet durable on
//! that plane — the unsynced tail of the segment is cut off and its blocks
//! forgotten, so nothing is ever acknowledged on top of bytes that may be
//! lost. If even the cut fails the plane refuses further writes until the
//! log is reopened, which recovers it.

mod cold;
mod collection;
mod config;
mod error;
pub mod fault;
mod fs;
mod install;
mod locations;
mod log;
mod plane;
mod receipt;
mod recovery;
mod residency;
mod segment;
mod segment_file;
mod sidecar;
#[doc(hidden)]
pub mod testkit;

pub use cold::{read_remote_note, sidecar_block_ends};
pub use collection::{Fence, Staging};
pub use config::{LogConfig, PlaneConfig};
pub use error::LogError;
pub use fs::{LogFile, LogFs, StdFs, write_durable};
pub use install::{install_evicted, start_segment};
pub use log::{Log, SegmentInfo, SegmentState};
pub use plane::Plane;
pub use receipt::Receipt;
pub use residency::ColdStore;
pub use segment::PlaneKind;
