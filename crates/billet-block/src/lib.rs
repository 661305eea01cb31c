//! Blocks and CIDs, the vocabulary every other billet crate speaks.
//!
//! billet stores only CIDv1 with a sha2-256 multihash and one of three codecs
//! (`raw`, `dag-pb`, `dag-cbor`). A [`Block`] can only be made by hashing its
//! bytes or by checking them against a CID, so holding one is proof that the
//! bytes match. Stores hand out bytes through [`BlockStore`], whose contract is
//! the same: what comes back was checked against the CID that was asked for.

mod block;
mod codec;
mod dagcbor;
mod error;
mod filter;
mod key;
mod store;

pub use block::{Block, cid_of, verify};
pub use cid::Cid;
pub use codec::{Codec, SHA2_256};
pub use dagcbor::{DagCborError, decode_dag_cbor, encode_dag_cbor};
pub use error::BlockError;
pub use filter::{DigestFilter, DigestKey, digest_key};
pub use key::{KeyError, MAX_KEY_BYTES, validate_key};
pub use store::{BlockStore, MemoryBlockStore};
