//! Deterministic batches for the crash test: the writer process and the
//! checking test derive the same blocks from a batch id.

use billet_block::{Block, Codec, encode_dag_cbor};

/// The data and catalog blocks of batch `id`.
pub fn batch(id: u64) -> (Vec<Block>, Vec<Block>) {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let data = (0..1 + next() % 3)
        .map(|i| {
            let len = (next() % (96 << 10)) as usize;
            let mut bytes = vec![0u8; len.max(16)];
            bytes[..8].copy_from_slice(&id.to_le_bytes());
            bytes[8..16].copy_from_slice(&i.to_le_bytes());
            for (j, b) in bytes[16..].iter_mut().enumerate() {
                *b = (j as u64 ^ id) as u8;
            }
            Block::new(Codec::Raw, bytes)
        })
        .collect();
    let catalog = (0..1 + next() % 2)
        .map(|i| encode_dag_cbor(&(id, i, "catalog")).expect("tuple encodes"))
        .collect();
    (data, catalog)
}
