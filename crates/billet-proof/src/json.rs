//! A JSON rendering of any proof for humans: links as `{"/": cid}`
//! (DAG-JSON style), bytes as `{"hex": "..."}`.

use billet_block::{DagCborError, decode_dag_cbor};
use ipld_core::ipld::Ipld;
use serde_json::{Map, Value};

fn render(v: &Ipld) -> Value {
    match v {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => i64::try_from(*i)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(i.to_string())),
        Ipld::Float(f) => Value::from(*f),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(b) => {
            let mut m = Map::new();
            m.insert("hex".into(), Value::String(hex::encode(b)));
            Value::Object(m)
        }
        Ipld::List(l) => Value::Array(l.iter().map(render).collect()),
        Ipld::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), render(v))).collect()),
        Ipld::Link(c) => {
            let mut m = Map::new();
            m.insert("/".into(), Value::String(c.to_string()));
            Value::Object(m)
        }
    }
}

/// Pretty JSON of the DAG-CBOR bytes of a proof.
pub fn to_json(bytes: &[u8]) -> Result<String, DagCborError> {
    let v: Ipld = decode_dag_cbor(bytes)?;
    Ok(serde_json::to_string_pretty(&render(&v)).unwrap_or_default())
}
