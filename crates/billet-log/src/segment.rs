//! Segment files: names, and the first bytes every segment starts with.
//!
//! A segment is a CARv1 file named `<id, 20 digits>.car` in its plane's
//! directory (`data/` or `catalog/`). Its header's single root is a small
//! DAG-CBOR descriptor block `{type: "billet.segment", plane, id}`, which is
//! also the segment's first frame; so every segment is a valid CAR with a
//! root on its own, and a stray file cannot be mistaken for another plane's
//! or another id's segment.

use std::fmt;

use billet_block::{Block, Cid, encode_dag_cbor};
use billet_car::{encode_header, frame_prefix};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlaneKind {
    Data,
    Catalog,
}

impl PlaneKind {
    pub fn name(self) -> &'static str {
        match self {
            PlaneKind::Data => "data",
            PlaneKind::Catalog => "catalog",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            PlaneKind::Data => 0,
            PlaneKind::Catalog => 1,
        }
    }
}

impl fmt::Display for PlaneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) fn segment_name(id: u64) -> String {
    format!("{id:020}.car")
}

pub(crate) fn sidecar_name(id: u64) -> String {
    format!("{id:020}.idx")
}

/// The cold tier's note of a segment's remote copy (opaque to the log).
pub(crate) fn remote_name(id: u64) -> String {
    format!("{id:020}.remote")
}

/// The collector's durable mark on a segment it is removing (see
/// `collection`): at open, a segment with one is removed.
pub(crate) fn retired_name(id: u64) -> String {
    format!("{id:020}.retired")
}

/// The collector's durable mark on a segment it began copying from: a
/// collection that stops before dropping it leaves it, and the next one
/// takes the segment whatever its live share (its copies may exist).
pub(crate) fn retiring_name(id: u64) -> String {
    format!("{id:020}.retiring")
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment,
    Sidecar,
    Remote,
    Retiring,
    Retired,
}

/// `(id, kind)` for a segment or sidecar file name; `None` for anything else.
pub(crate) fn parse_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "car" => FileKind::Segment,
        "idx" => FileKind::Sidecar,
        "remote" => FileKind::Remote,
        "retiring" => FileKind::Retiring,
        "retired" => FileKind::Retired,
        _ => return None,
    };
    Some((stem.parse().ok()?, kind))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Descriptor {
    #[serde(rename = "type")]
    kind: String,
    plane: String,
    id: u64,
}

pub(crate) fn descriptor(plane: PlaneKind, id: u64) -> Block {
    encode_dag_cbor(&Descriptor {
        kind: "billet.segment".into(),
        plane: plane.name().into(),
        id,
    })
    .expect("a descriptor always encodes")
}

/// The bytes a fresh segment starts with: the CAR header and the
/// descriptor frame.
pub(crate) fn segment_start(plane: PlaneKind, id: u64) -> (Vec<u8>, Cid) {
    let d = descriptor(plane, id);
    let mut out = encode_header(&[*d.cid()]);
    out.extend_from_slice(&frame_prefix(d.cid(), d.len()));
    out.extend_from_slice(d.data());
    (out, *d.cid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&segment_name(42)), Some((42, FileKind::Segment)));
        assert_eq!(parse_name(&sidecar_name(7)), Some((7, FileKind::Sidecar)));
        assert_eq!(parse_name(&remote_name(7)), Some((7, FileKind::Remote)));
        assert_eq!(parse_name(&retired_name(7)), Some((7, FileKind::Retired)));
        assert_eq!(parse_name(&retiring_name(7)), Some((7, FileKind::Retiring)));
        assert_eq!(parse_name("00000000000000000042.car.tmp"), None);
        assert_eq!(parse_name("42.car"), None);
    }

    #[test]
    fn a_fresh_segment_is_a_valid_car() {
        let (bytes, root) = segment_start(PlaneKind::Catalog, 9);
        let mut r = billet_car::CarReader::new(&bytes[..]).unwrap();
        assert_eq!(r.roots(), &[root]);
        let first = r.next_block().unwrap().unwrap();
        assert_eq!(*first.block.cid(), root);
        assert!(r.next_block().unwrap().is_none());
    }
}
