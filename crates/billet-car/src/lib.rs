//! CARv1 (<https://ipld.io/specs/transport/car/carv1/>), written and read in
//! one pass.
//!
//! A CAR file is a varint-framed DAG-CBOR header `{roots, version: 1}`
//! followed by frames `varint(len) | CID | block bytes`. The log writes its
//! segments as CAR files and needs each block's byte offset, so the writer
//! reports where every frame landed. The reader treats its input as hostile:
//! it caps the header and every frame, hashes every block against its CID,
//! never panics, and names the byte offset of whatever it rejects.

mod error;
mod file;
mod header;
mod reader;
mod varint;
mod writer;

pub use error::CarError;
pub use file::CarFile;
pub use header::{decode_header, encode_header};
pub use reader::{CarBlock, CarReader, Limits};
pub use writer::{BlockLocation, CarWriter, frame_prefix};
