//! The DAG-CBOR records at the heart of an exported bucket.
//!
//! * [`Manifest`]: one object version — its body's CID and every S3
//!   attribute that comes back on a GET or HEAD.
//! * [`Commit`]: one state of a bucket — the MST root in `data` (the field
//!   atproto commits use, so MST tooling finds it), the previous commit, and
//!   the settings that must travel with an export.
//!
//! Both are canonical DAG-CBOR with absent optional fields omitted, so one
//! value has exactly one encoding and one CID. Decoders treat input as
//! untrusted: unknown fields, a non-canonical encoding or any violated rule
//! is a typed error.

mod commit;
mod error;
mod lock;
mod manifest;

pub use commit::{BucketSettings, COMMIT_VERSION, Commit, Versioning};
pub use error::RecordError;
pub use lock::{LockMode, ObjectLock, lock_blocks};
pub use manifest::{ChecksumType, MAX_PARTS, Manifest, etag_is_valid};
