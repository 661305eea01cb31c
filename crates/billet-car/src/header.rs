use billet_block::Cid;
use serde::{Deserialize, Serialize};

use crate::varint::encode_varint;

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

/// The complete header bytes (length varint included) for `roots`.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let body = serde_ipld_dagcbor::to_vec(&Header {
        roots: roots.to_vec(),
        version: 1,
    })
    .expect("a list of CIDs and an integer always encode");
    let mut out = Vec::with_capacity(body.len() + 2);
    encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    out
}

/// Decodes the DAG-CBOR body of a header (without its length varint).
pub fn decode_header(body: &[u8]) -> Result<Vec<Cid>, String> {
    #[derive(Deserialize)]
    struct AnyVersion {
        version: u64,
    }
    let v: AnyVersion = serde_ipld_dagcbor::from_slice(body)
        .map_err(|e| format!("header is not a DAG-CBOR map with a version: {e}"))?;
    if v.version != 1 {
        return Err(format!(
            "CAR version {} is not supported (only CARv1)",
            v.version
        ));
    }
    let h: Header = serde_ipld_dagcbor::from_slice(body)
        .map_err(|e| format!("header is not {{roots, version}}: {e}"))?;
    Ok(h.roots)
}
