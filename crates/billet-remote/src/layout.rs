//! Names of billet's objects on the remote (layout: `docs/remote.md`).
//!
//! ```text
//! {prefix}billet/v1/{node}/heads.cbor
//! {prefix}billet/v1/{node}/{plane}/{id:020}.car        a segment, as is
//! {prefix}billet/v1/{node}/{plane}/{id:020}.car.zst    a segment, seekable zstd
//! {prefix}billet/v1/{node}/{plane}/{id:020}.idx        its index sidecar
//! ```

use crate::frames::Encoding;

/// The MIME type of a CAR file (IANA: application/vnd.ipld.car).
pub const CAR_CONTENT_TYPE: &str = "application/vnd.ipld.car";

/// Where one node's objects live under the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    node: String,
}

/// What a key under a node's directory names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Segment {
        plane: String,
        id: u64,
        encoding: Encoding,
    },
    Sidecar {
        plane: String,
        id: u64,
    },
    Heads,
}

/// Node names: what can sit in a path segment of every store.
pub fn valid_node(node: &str) -> bool {
    (1..=64).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && node != "."
        && node != ".."
}

impl Layout {
    /// `None` when `node` is not a valid node name.
    pub fn new(node: &str) -> Option<Layout> {
        valid_node(node).then(|| Layout {
            node: node.to_string(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Everything of this node starts with this.
    pub fn node_prefix(&self) -> String {
        format!("billet/v1/{}/", self.node)
    }

    pub fn plane_prefix(&self, plane: &str) -> String {
        format!("{}{plane}/", self.node_prefix())
    }

    pub fn segment(&self, plane: &str, id: u64, encoding: Encoding) -> String {
        let ext = match encoding {
            Encoding::Identity => "car",
            Encoding::Zstd => "car.zst",
        };
        format!("{}{id:020}.{ext}", self.plane_prefix(plane))
    }

    pub fn sidecar(&self, plane: &str, id: u64) -> String {
        format!("{}{id:020}.idx", self.plane_prefix(plane))
    }

    pub fn heads(&self) -> String {
        format!("{}heads.cbor", self.node_prefix())
    }

    /// What `key` (relative to the prefix) names, if it is this node's.
    pub fn parse(&self, key: &str) -> Option<Named> {
        let rest = key.strip_prefix(&self.node_prefix())?;
        if rest == "heads.cbor" {
            return Some(Named::Heads);
        }
        let (plane, file) = rest.split_once('/')?;
        let (stem, ext) = file.split_once('.')?;
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id = stem.parse().ok()?;
        let plane = plane.to_string();
        match ext {
            "car" => Some(Named::Segment {
                plane,
                id,
                encoding: Encoding::Identity,
            }),
            "car.zst" => Some(Named::Segment {
                plane,
                id,
                encoding: Encoding::Zstd,
            }),
            "idx" => Some(Named::Sidecar { plane, id }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let l = Layout::new("node-1").unwrap();
        let k = l.segment("catalog", 42, Encoding::Zstd);
        assert_eq!(k, "billet/v1/node-1/catalog/00000000000000000042.car.zst");
        assert_eq!(
            l.parse(&k),
            Some(Named::Segment {
                plane: "catalog".into(),
                id: 42,
                encoding: Encoding::Zstd
            })
        );
        assert_eq!(
            l.parse(&l.segment("data", 7, Encoding::Identity)),
            Some(Named::Segment {
                plane: "data".into(),
                id: 7,
                encoding: Encoding::Identity
            })
        );
        assert_eq!(
            l.parse(&l.sidecar("data", 7)),
            Some(Named::Sidecar {
                plane: "data".into(),
                id: 7
            })
        );
        assert_eq!(l.parse(&l.heads()), Some(Named::Heads));
        assert_eq!(l.parse("billet/v1/other/heads.cbor"), None);
        assert_eq!(l.parse("billet/v1/node-1/data/12.car"), None);
    }

    #[test]
    fn node_names() {
        assert!(Layout::new("a").is_some());
        assert!(Layout::new("").is_none());
        assert!(Layout::new("..").is_none());
        assert!(Layout::new("a/b").is_none());
        assert!(Layout::new(&"x".repeat(65)).is_none());
    }
}
