use std::collections::BTreeMap;

use billet_block::{Block, Cid, Codec, decode_dag_cbor, encode_dag_cbor};
use ipld_core::ipld::Ipld;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{RecordError, invalid};
use crate::lock::ObjectLock;

const RECORD: &str = "commit";
const TYPE: &str = "billet.commit";
/// Version 2 names the previous commit by its CID's bytes; version 1
/// linked it, so an export of a head had to hold every earlier commit and
/// everything each reaches (read still, never written).
pub const COMMIT_VERSION: u64 = 2;

/// S3 bucket versioning state. `Unversioned` is a bucket on which versioning
/// was never enabled (S3 reports no status for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

/// Bucket settings that travel with an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    pub versioning: Versioning,
    /// Leaf size for new bodies, bytes.
    pub chunk_size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Present once Object Lock is enabled (it never goes away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

impl Default for BucketSettings {
    fn default() -> Self {
        BucketSettings {
            versioning: Versioning::Unversioned,
            chunk_size: 1 << 20,
            tags: BTreeMap::new(),
            object_lock: None,
        }
    }
}

/// One state of a bucket. The bucket head is the CID of the newest commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Always `billet.commit`.
    pub kind: String,
    /// [`COMMIT_VERSION`] for every commit written now; 1 for older ones.
    pub version: u64,
    pub bucket: String,
    /// 0 for a bucket's first commit, then +1 per commit.
    pub seq: u64,
    /// Root of the bucket's MST (key → manifest CID).
    pub data: Cid,
    /// The previous commit; null only at seq 0. Version 2 stores it as
    /// bytes (no IPLD link: an export holding only this commit's DAG is
    /// closed, and the history can be collected), version 1 as a link.
    pub prev: Option<Cid>,
    /// ms since the Unix epoch.
    pub time: i64,
    pub settings: BucketSettings,
}

/// The encoding of version 2.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireV2 {
    #[serde(rename = "type")]
    kind: String,
    version: u64,
    bucket: String,
    seq: u64,
    data: Cid,
    prev: Option<ByteBuf>,
    time: i64,
    settings: BucketSettings,
}

/// The encoding of version 1.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireV1 {
    #[serde(rename = "type")]
    kind: String,
    version: u64,
    bucket: String,
    seq: u64,
    data: Cid,
    prev: Option<Cid>,
    time: i64,
    settings: BucketSettings,
}

impl Commit {
    pub fn new(
        bucket: impl Into<String>,
        seq: u64,
        data: Cid,
        prev: Option<Cid>,
        time: i64,
        settings: BucketSettings,
    ) -> Self {
        Commit {
            kind: TYPE.into(),
            version: COMMIT_VERSION,
            bucket: bucket.into(),
            seq,
            data,
            prev,
            time,
            settings,
        }
    }

    /// Whether `prev` is an IPLD link (version 1): following it is part of
    /// this commit's DAG.
    pub fn links_prev(&self) -> bool {
        self.version == 1
    }

    pub fn to_block(&self) -> Result<Block, RecordError> {
        self.validate()?;
        let cbor = |source| RecordError::Cbor {
            record: RECORD,
            source,
        };
        if self.version == 1 {
            encode_dag_cbor(&WireV1 {
                kind: self.kind.clone(),
                version: 1,
                bucket: self.bucket.clone(),
                seq: self.seq,
                data: self.data,
                prev: self.prev,
                time: self.time,
                settings: self.settings.clone(),
            })
            .map_err(cbor)
        } else {
            encode_dag_cbor(&WireV2 {
                kind: self.kind.clone(),
                version: self.version,
                bucket: self.bucket.clone(),
                seq: self.seq,
                data: self.data,
                prev: self.prev.map(|p| ByteBuf::from(p.to_bytes())),
                time: self.time,
                settings: self.settings.clone(),
            })
            .map_err(cbor)
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let cbor = |source| RecordError::Cbor {
            record: RECORD,
            source,
        };
        // The version picks the encoding to decode with.
        let probe: Ipld = decode_dag_cbor(bytes).map_err(cbor)?;
        let version = match &probe {
            Ipld::Map(m) => match m.get("version") {
                Some(Ipld::Integer(v)) => *v,
                _ => return Err(invalid(RECORD, "version", "is missing or not an integer")),
            },
            _ => return Err(invalid(RECORD, "type", "the commit is not a map")),
        };
        let c = if version == 1 {
            let w: WireV1 = decode_dag_cbor(bytes).map_err(cbor)?;
            Commit {
                kind: w.kind,
                version: w.version,
                bucket: w.bucket,
                seq: w.seq,
                data: w.data,
                prev: w.prev,
                time: w.time,
                settings: w.settings,
            }
        } else {
            let w: WireV2 = decode_dag_cbor(bytes).map_err(cbor)?;
            let prev = w
                .prev
                .map(|b| {
                    Cid::try_from(b.as_slice()).map_err(|e| {
                        invalid(RECORD, "prev", format!("is not the bytes of a CID: {e}"))
                    })
                })
                .transpose()?;
            Commit {
                kind: w.kind,
                version: w.version,
                bucket: w.bucket,
                seq: w.seq,
                data: w.data,
                prev,
                time: w.time,
                settings: w.settings,
            }
        };
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), RecordError> {
        if self.kind != TYPE {
            return Err(invalid(
                RECORD,
                "type",
                format!("is {:?}, not {TYPE:?}", self.kind),
            ));
        }
        if self.version != 1 && self.version != COMMIT_VERSION {
            return Err(invalid(
                RECORD,
                "version",
                format!("{} is not supported", self.version),
            ));
        }
        if self.bucket.is_empty() || self.bucket.len() > 63 {
            return Err(invalid(RECORD, "bucket", "must be 1..=63 bytes"));
        }
        if self.data.codec() != Codec::DagCbor.code() {
            return Err(invalid(RECORD, "data", "the MST root must be dag-cbor"));
        }
        match (&self.prev, self.seq) {
            (None, 0) => {}
            (Some(p), s) if s > 0 && p.codec() == Codec::DagCbor.code() => {}
            _ => {
                return Err(invalid(
                    RECORD,
                    "prev",
                    "null exactly at seq 0, else a dag-cbor commit",
                ));
            }
        }
        if self.time < 0 {
            return Err(invalid(RECORD, "time", "negative"));
        }
        let cs = self.settings.chunk_size;
        if cs == 0 || cs > 4 << 20 {
            return Err(invalid(RECORD, "settings", "chunkSize must be 1..=4 MiB"));
        }
        if let Some(lock) = &self.settings.object_lock {
            lock.validate()?;
            if self.settings.versioning != Versioning::Enabled {
                return Err(invalid(
                    RECORD,
                    "settings",
                    "Object Lock needs versioning Enabled",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Cid {
        *Block::new(Codec::DagCbor, &b"\xa2\x61e\x80\x61l\xf6"[..]).cid()
    }

    #[test]
    fn round_trip_and_rules() {
        let c = Commit::new("b", 0, root(), None, 1, BucketSettings::default());
        let b = c.to_block().unwrap();
        assert_eq!(Commit::decode(b.data()).unwrap(), c);
        let bad = Commit::new("b", 1, root(), None, 1, BucketSettings::default());
        assert!(matches!(
            bad.to_block(),
            Err(RecordError::Invalid { field: "prev", .. })
        ));
        let next = Commit::new("b", 1, root(), Some(*b.cid()), 2, BucketSettings::default());
        assert!(next.to_block().is_ok());
    }

    #[test]
    fn version_2_names_prev_by_bytes_and_version_1_still_decodes() {
        let first = Commit::new("b", 0, root(), None, 1, BucketSettings::default())
            .to_block()
            .unwrap();
        let c = Commit::new(
            "b",
            1,
            root(),
            Some(*first.cid()),
            2,
            BucketSettings::default(),
        );
        let b = c.to_block().unwrap();
        let v: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(b.data()).unwrap();
        let ipld_core::ipld::Ipld::Map(m) = &v else {
            panic!("a map")
        };
        assert_eq!(
            m.get("prev"),
            Some(&ipld_core::ipld::Ipld::Bytes(first.cid().to_bytes()))
        );
        assert_eq!(m.get("version"), Some(&ipld_core::ipld::Ipld::Integer(2)));
        assert!(!c.links_prev());
        assert_eq!(Commit::decode(b.data()).unwrap(), c);

        let old = Commit {
            version: 1,
            ..c.clone()
        };
        let b1 = old.to_block().unwrap();
        let v: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(b1.data()).unwrap();
        let ipld_core::ipld::Ipld::Map(m) = &v else {
            panic!("a map")
        };
        assert_eq!(
            m.get("prev"),
            Some(&ipld_core::ipld::Ipld::Link(*first.cid()))
        );
        let back = Commit::decode(b1.data()).unwrap();
        assert_eq!(back, old);
        assert!(back.links_prev());
        assert_ne!(b1.cid(), b.cid());
    }

    #[test]
    fn a_version_2_prev_that_is_not_a_cid_is_refused() {
        let w = WireV2 {
            kind: TYPE.into(),
            version: 2,
            bucket: "b".into(),
            seq: 1,
            data: root(),
            prev: Some(ByteBuf::from(vec![1, 2, 3])),
            time: 1,
            settings: BucketSettings::default(),
        };
        let b = encode_dag_cbor(&w).unwrap();
        assert!(matches!(
            Commit::decode(b.data()),
            Err(RecordError::Invalid { field: "prev", .. })
        ));
        let w3 = WireV2 {
            version: 3,
            prev: None,
            seq: 0,
            ..w
        };
        let b = encode_dag_cbor(&w3).unwrap();
        assert!(matches!(
            Commit::decode(b.data()),
            Err(RecordError::Invalid {
                field: "version",
                ..
            })
        ));
    }

    #[test]
    fn the_mst_root_is_in_data_as_atproto_tools_expect() {
        let c = Commit::new("b", 0, root(), None, 1, BucketSettings::default());
        let b = c.to_block().unwrap();
        let v: ipld_map::Map = serde_ipld_dagcbor::from_slice(b.data()).unwrap();
        assert_eq!(v.data, root());
    }

    mod ipld_map {
        #[derive(serde::Deserialize)]
        pub struct Map {
            pub data: billet_block::Cid,
        }
    }
}
