//! billet's cold tier, the storage half: sealed log segments on an
//! S3-compatible object store (or a directory), cut into frames at block
//! boundaries and compressed frame by frame, so that one block is read
//! back with one ranged GET of one frame.
//!
//! * [`Remote`] — what billet asks of a store; [`open`] builds one over the
//!   `object_store` crate from a [`RemoteConfig`];
//! * [`frames`] — frame cuts, zstd's seekable format, frame decoding;
//! * [`RemoteCopy`] — what a node keeps locally about a shipped segment;
//! * [`Layout`] — object names;
//! * [`Backoff`] / [`retrying`] — capped exponential backoff with jitter;
//! * [`fault::FaultyRemote`] — a misbehaving store for tests.
//!
//! The byte layout of everything on the remote: `docs/remote.md`.

mod config;
mod copy;
mod error;
pub mod fault;
pub mod frames;
mod layout;
mod retry;
mod store;

pub use config::{RemoteConfig, Secret, StoreKind};
pub use copy::RemoteCopy;
pub use error::RemoteError;
pub use frames::{Encoding, FrameTable};
pub use layout::{CAR_CONTENT_TYPE, Layout, Named, valid_node};
pub use retry::{Backoff, retrying};
pub use store::{Body, ByteStream, Listed, ObjectAttrs, ObjectRemote, Remote, open};
