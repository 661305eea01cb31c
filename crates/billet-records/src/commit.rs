use std::collections::BTreeMap;

use billet_block::{Block, Cid, Codec, decode_dag_cbor, encode_dag_cbor};
use serde::{Deserialize, Serialize};

use crate::error::{RecordError, invalid};

const RECORD: &str = "commit";
const TYPE: &str = "billet.commit";
const VERSION: u64 = 1;

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
}

impl Default for BucketSettings {
    fn default() -> Self {
        BucketSettings {
            versioning: Versioning::Unversioned,
            chunk_size: 1 << 20,
            tags: BTreeMap::new(),
        }
    }
}

/// One state of a bucket. The bucket head is the CID of the newest commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Commit {
    /// Always `billet.commit`.
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub bucket: String,
    /// 0 for a bucket's first commit, then +1 per commit.
    pub seq: u64,
    /// Root of the bucket's MST (key → manifest CID).
    pub data: Cid,
    /// The previous commit; null only at seq 0.
    pub prev: Option<Cid>,
    /// ms since the Unix epoch.
    pub time: i64,
    pub settings: BucketSettings,
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
            version: VERSION,
            bucket: bucket.into(),
            seq,
            data,
            prev,
            time,
            settings,
        }
    }

    pub fn to_block(&self) -> Result<Block, RecordError> {
        self.validate()?;
        encode_dag_cbor(self).map_err(|source| RecordError::Cbor {
            record: RECORD,
            source,
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let c: Commit = decode_dag_cbor(bytes).map_err(|source| RecordError::Cbor {
            record: RECORD,
            source,
        })?;
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
        if self.version != VERSION {
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
