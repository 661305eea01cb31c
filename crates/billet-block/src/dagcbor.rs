use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::block::Block;
use crate::codec::Codec;

/// A DAG-CBOR value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DagCborError {
    #[error("DAG-CBOR encoding failed: {0}")]
    Encode(String),
    #[error("not valid DAG-CBOR for this record: {0}")]
    Decode(String),
    #[error("DAG-CBOR is not in canonical form (re-encoding gives other bytes)")]
    NotCanonical,
}

/// Encodes `value` as canonical DAG-CBOR (map keys length-first, then
/// bytewise; minimal integers; definite lengths) and hashes it into a block.
pub fn encode_dag_cbor<T: Serialize + ?Sized>(value: &T) -> Result<Block, DagCborError> {
    let mut bytes =
        serde_ipld_dagcbor::to_vec(value).map_err(|e| DagCborError::Encode(e.to_string()))?;
    // The encoder grows its buffer by doubling; blocks live on in caches
    // and queues, where the slack would nearly double their footprint.
    bytes.shrink_to_fit();
    Ok(Block::new(Codec::DagCbor, Bytes::from(bytes)))
}

/// Decodes DAG-CBOR bytes and insists they are the canonical encoding of
/// what they decode to, so the same record can never hide behind two CIDs.
pub fn decode_dag_cbor<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DagCborError> {
    let value: T =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DagCborError::Decode(e.to_string()))?;
    let again =
        serde_ipld_dagcbor::to_vec(&value).map_err(|e| DagCborError::Encode(e.to_string()))?;
    if again != bytes {
        return Err(DagCborError::NotCanonical);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        zz: u64,
        a: String,
        bbb: Option<u64>,
        #[serde(with = "serde_bytes")]
        b: Vec<u8>,
    }

    #[test]
    fn struct_fields_come_out_length_first_then_bytewise() {
        let blk = encode_dag_cbor(&Rec {
            zz: 1,
            a: "x".into(),
            bbb: None,
            b: vec![7],
        })
        .unwrap();
        // map(4) "a" "x" "b" h'07' "zz" 1 "bbb" null
        let want: &[u8] = &[
            0xa4, 0x61, b'a', 0x61, b'x', 0x61, b'b', 0x41, 7, 0x62, b'z', b'z', 1, 0x63, b'b',
            b'b', b'b', 0xf6,
        ];
        assert_eq!(blk.data().as_ref(), want);
    }

    #[test]
    fn map_keys_are_sorted_length_first() {
        let mut m = BTreeMap::new();
        m.insert("bb".to_string(), 1u64);
        m.insert("c".to_string(), 2u64);
        m.insert("aaa".to_string(), 3u64);
        let blk = encode_dag_cbor(&m).unwrap();
        let want: &[u8] = &[
            0xa3, 0x61, b'c', 2, 0x62, b'b', b'b', 1, 0x63, b'a', b'a', b'a', 3,
        ];
        assert_eq!(blk.data().as_ref(), want);
    }

    #[test]
    fn non_canonical_input_is_rejected() {
        // {"a": 1} with the integer in a needlessly long form (0x18 0x01).
        let long_int: &[u8] = &[0xa1, 0x61, b'a', 0x18, 0x01];
        assert!(decode_dag_cbor::<BTreeMap<String, u64>>(long_int).is_err());
        // Keys out of canonical order.
        let unsorted: &[u8] = &[0xa2, 0x62, b'b', b'b', 1, 0x61, b'c', 2];
        assert!(decode_dag_cbor::<BTreeMap<String, u64>>(unsorted).is_err());
        // Indefinite-length map.
        let indefinite: &[u8] = &[0xbf, 0x61, b'a', 1, 0xff];
        assert!(decode_dag_cbor::<BTreeMap<String, u64>>(indefinite).is_err());
        let fine: &[u8] = &[0xa1, 0x61, b'a', 1];
        assert_eq!(
            decode_dag_cbor::<BTreeMap<String, u64>>(fine).unwrap()["a"],
            1
        );
    }
}
