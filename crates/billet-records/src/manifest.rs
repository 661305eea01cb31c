use std::collections::BTreeMap;

use billet_block::{Block, Cid, Codec, decode_dag_cbor, encode_dag_cbor, validate_key};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{RecordError, invalid};
use crate::lock::LockMode;

const RECORD: &str = "manifest";
const TYPE: &str = "billet.manifest";
const VERSION: u64 = 1;

/// S3 allows at most this many tags on an object.
pub const MAX_TAGS: usize = 10;
/// S3's part-number ceiling.
pub const MAX_PARTS: usize = 10_000;

/// How `checksums` relate to the body: S3's `x-amz-checksum-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    /// A checksum of the parts' checksums (multipart uploads).
    #[serde(rename = "COMPOSITE")]
    Composite,
}

/// One version of one object. Field names are the DAG-CBOR map keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always `billet.manifest`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Format version, 1.
    pub version: u64,
    pub key: String,
    /// Absent for objects written while versioning was never enabled (the
    /// S3 `null` version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Present (and true) only on delete markers, which have no body.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delete_marker: bool,
    /// Root of the UnixFS body: a raw leaf or a dag-pb file node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Cid>,
    pub size: u64,
    /// Unquoted ETag: hex MD5, or `hex(md5(part md5s))-N` for multipart.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    /// SHA-256 of the whole body (32 bytes; absent on delete markers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<ByteBuf>,
    /// Part sizes of a multipart upload, in part order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
    /// S3 checksums by algorithm name (`CRC32`, `CRC64NVME`, ...), raw bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<ChecksumType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// The `Expires` header as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-cased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The object's ACL beyond its owner's (the bucket owner's) full
    /// control: grantee (`group:AllUsers`, `group:AuthenticatedUsers`,
    /// `id:OWNER`) → permissions (`READ`, `READ_ACP`, `WRITE_ACP`,
    /// `FULL_CONTROL`), each list sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acl: BTreeMap<String, Vec<String>>,
    /// When this version was written (ms since the Unix epoch; S3's
    /// Last-Modified).
    pub created: i64,
    /// When this version's record last changed (tagging), ms.
    pub modified: i64,
    /// The previous version's manifest, when versioning keeps history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Cid>,
    /// The multipart upload this version was completed from, so that a
    /// retried CompleteMultipartUpload can be answered with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// Object Lock retention: the mode, and until when (ms since the Unix
    /// epoch); both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<LockMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_until: Option<i64>,
    /// Object Lock legal hold (present only when on).
    #[serde(default, skip_serializing_if = "is_false")]
    pub legal_hold: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Manifest {
    /// A manifest for a body; the caller fills in the optional fields.
    pub fn new(
        key: impl Into<String>,
        body: Cid,
        size: u64,
        etag: impl Into<String>,
        sha256: [u8; 32],
        now_ms: i64,
    ) -> Self {
        Manifest {
            body: Some(body),
            size,
            etag: etag.into(),
            sha256: Some(ByteBuf::from(sha256.to_vec())),
            ..Manifest::blank(key.into(), now_ms)
        }
    }

    /// A delete marker (no body); `version_id` empty means the null version.
    pub fn delete_marker(key: impl Into<String>, version_id: String, now_ms: i64) -> Self {
        Manifest {
            version_id: (!version_id.is_empty()).then_some(version_id),
            delete_marker: true,
            ..Manifest::blank(key.into(), now_ms)
        }
    }

    fn blank(key: String, now_ms: i64) -> Self {
        Manifest {
            kind: TYPE.into(),
            version: VERSION,
            key,
            version_id: None,
            delete_marker: false,
            body: None,
            size: 0,
            etag: String::new(),
            sha256: None,
            parts: Vec::new(),
            checksums: BTreeMap::new(),
            checksum_type: None,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            meta: BTreeMap::new(),
            tags: BTreeMap::new(),
            acl: BTreeMap::new(),
            created: now_ms,
            modified: now_ms,
            prev: None,
            upload: None,
            lock_mode: None,
            lock_until: None,
            legal_hold: false,
        }
    }

    /// Checks every rule and encodes the manifest as a block.
    pub fn to_block(&self) -> Result<Block, RecordError> {
        self.validate()?;
        encode_dag_cbor(self).map_err(|source| RecordError::Cbor {
            record: RECORD,
            source,
        })
    }

    /// Decodes untrusted bytes: canonical DAG-CBOR, known fields only, and
    /// every rule of [`Manifest::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let m: Manifest = decode_dag_cbor(bytes).map_err(|source| RecordError::Cbor {
            record: RECORD,
            source,
        })?;
        m.validate()?;
        Ok(m)
    }

    /// The retention it carries, if any.
    pub fn retention(&self) -> Option<(LockMode, i64)> {
        self.lock_mode.zip(self.lock_until)
    }

    /// The rules a manifest obeys, whoever wrote it.
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
        validate_key(self.key.as_bytes()).map_err(|e| invalid(RECORD, "key", e.to_string()))?;
        if let Some(v) = &self.version_id
            && (v.is_empty() || v.len() > 1024)
        {
            return Err(invalid(RECORD, "versionId", "must be 1..=1024 bytes"));
        }
        if let Some(u) = &self.upload
            && (u.is_empty() || u.len() > 1024 || self.parts.is_empty())
        {
            return Err(invalid(
                RECORD,
                "upload",
                "must be 1..=1024 bytes, on a multipart version",
            ));
        }
        if self.created < 0 || self.modified < self.created {
            return Err(invalid(
                RECORD,
                "modified",
                "times must satisfy 0 <= created <= modified",
            ));
        }
        if self.lock_mode.is_some() != self.lock_until.is_some() {
            return Err(invalid(
                RECORD,
                "lockMode",
                "a retention has both a mode and a date, or neither",
            ));
        }
        if self.delete_marker {
            let bodyless = self.body.is_none()
                && self.size == 0
                && self.etag.is_empty()
                && self.sha256.is_none()
                && self.parts.is_empty()
                && self.checksums.is_empty()
                && self.lock_mode.is_none()
                && !self.legal_hold;
            if !bodyless {
                return Err(invalid(
                    RECORD,
                    "deleteMarker",
                    "a delete marker has no body, size, digests, parts or lock",
                ));
            }
            return Ok(());
        }
        let Some(body) = &self.body else {
            return Err(invalid(
                RECORD,
                "body",
                "missing (only delete markers have no body)",
            ));
        };
        match Codec::from_code(body.codec()) {
            Some(Codec::Raw | Codec::DagPb) => {}
            _ => {
                return Err(invalid(
                    RECORD,
                    "body",
                    format!("{body} is neither raw nor dag-pb"),
                ));
            }
        }
        if self.size > i64::MAX as u64 {
            return Err(invalid(RECORD, "size", "does not fit an IPLD int64"));
        }
        if !etag_is_valid(&self.etag) {
            return Err(invalid(
                RECORD,
                "etag",
                format!("{:?} is not hex MD5 or hex MD5-N", self.etag),
            ));
        }
        // A multipart body's SHA-256 would need its bytes read back at
        // Complete, which never reads them; its parts' MD5s (the ETag)
        // and sizes still pin it down.
        match (&self.sha256, self.parts.is_empty()) {
            (Some(d), _) if d.len() == 32 => {}
            (None, false) => {}
            _ => return Err(invalid(RECORD, "sha256", "must be 32 bytes")),
        }
        let multipart_n = self.etag.split_once('-').map(|(_, n)| n);
        match (multipart_n, self.parts.is_empty()) {
            (None, true) => {}
            (Some(n), false) => {
                if n != self.parts.len().to_string() {
                    return Err(invalid(
                        RECORD,
                        "parts",
                        format!("{} parts but the ETag says {n}", self.parts.len()),
                    ));
                }
                if self.parts.len() > MAX_PARTS {
                    return Err(invalid(RECORD, "parts", format!("more than {MAX_PARTS}")));
                }
                let sum = self.parts.iter().try_fold(0u64, |a, p| a.checked_add(*p));
                if sum != Some(self.size) {
                    return Err(invalid(RECORD, "parts", "part sizes do not add up to size"));
                }
            }
            (Some(_), true) => {
                return Err(invalid(
                    RECORD,
                    "parts",
                    "a multipart ETag needs part sizes",
                ));
            }
            (None, false) => {
                return Err(invalid(RECORD, "parts", "part sizes need a multipart ETag"));
            }
        }
        for (name, digest) in &self.checksums {
            let len = match name.as_str() {
                "CRC32" | "CRC32C" => 4,
                "CRC64NVME" => 8,
                "SHA1" => 20,
                "SHA256" => 32,
                _ => {
                    return Err(invalid(
                        RECORD,
                        "checksums",
                        format!("unknown algorithm {name:?}"),
                    ));
                }
            };
            if digest.len() != len {
                return Err(invalid(
                    RECORD,
                    "checksums",
                    format!("{name} must be {len} bytes"),
                ));
            }
        }
        if self.checksums.is_empty() != self.checksum_type.is_none() {
            return Err(invalid(
                RECORD,
                "checksumType",
                "present exactly when checksums are",
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid(RECORD, "tags", format!("more than {MAX_TAGS}")));
        }
        for (grantee, perms) in &self.acl {
            let known = grantee == "group:AllUsers"
                || grantee == "group:AuthenticatedUsers"
                || grantee.strip_prefix("id:").is_some_and(|o| !o.is_empty());
            if !known {
                return Err(invalid(
                    RECORD,
                    "acl",
                    format!("unknown grantee {grantee:?}"),
                ));
            }
            let sorted = perms.windows(2).all(|w| w[0] < w[1]);
            let valid = perms.iter().all(|p| {
                matches!(
                    p.as_str(),
                    "READ" | "READ_ACP" | "WRITE_ACP" | "FULL_CONTROL"
                )
            });
            if perms.is_empty() || !sorted || !valid {
                return Err(invalid(
                    RECORD,
                    "acl",
                    format!(
                        "{grantee}: permissions must be READ, READ_ACP, WRITE_ACP or FULL_CONTROL, sorted, once each"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn is_multipart(&self) -> bool {
        !self.parts.is_empty()
    }

    /// The byte ranges the body's chunks (the leaves of its UnixFS tree)
    /// cover, in order: a single-part body is cut every `chunk_size`
    /// bytes, a multipart body's parts each from their own start (every
    /// part is chunked as it streams in). An empty body or part is one
    /// empty chunk. `(offset, length)` of chunk `n`, or `None` past the
    /// last one; this is what binds a storage challenge's chunk number to
    /// a place in the body, whatever its shape.
    pub fn chunk_span(&self, n: u64, chunk_size: u64) -> Option<(u64, u64)> {
        let chunk_size = chunk_size.max(1);
        let single = [self.size];
        let parts: &[u64] = if self.parts.is_empty() {
            &single
        } else {
            &self.parts
        };
        let mut first = 0u64;
        let mut offset = 0u64;
        for &size in parts {
            let count = size.div_ceil(chunk_size).max(1);
            if n < first + count {
                let start = (n - first) * chunk_size;
                return Some((offset + start, chunk_size.min(size - start)));
            }
            first += count;
            offset += size;
        }
        None
    }

    /// How many chunks the body has (see [`Manifest::chunk_span`]).
    pub fn chunk_count(&self, chunk_size: u64) -> u64 {
        let chunk_size = chunk_size.max(1);
        if self.parts.is_empty() {
            self.size.div_ceil(chunk_size).max(1)
        } else {
            self.parts
                .iter()
                .map(|s| s.div_ceil(chunk_size).max(1))
                .sum()
        }
    }
}

/// `hex(md5)` or `hex(md5)-N` with N in 1..=10000.
pub fn etag_is_valid(etag: &str) -> bool {
    let (md5, n) = match etag.split_once('-') {
        Some((md5, n)) => (md5, Some(n)),
        None => (etag, None),
    };
    let hex_ok = md5.len() == 32 && md5.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let n_ok = n.is_none_or(|n| {
        !n.starts_with('0')
            && n.parse::<usize>()
                .is_ok_and(|n| (1..=MAX_PARTS).contains(&n))
    });
    hex_ok && n_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use billet_block::Block;

    fn sample() -> Manifest {
        let body = *Block::new(Codec::Raw, &b"hello"[..]).cid();
        let mut m = Manifest::new(
            "photos/a b.jpg",
            body,
            5,
            "5d41402abc4b2a76b9719d911017c592",
            [7; 32],
            1_700_000_000_000,
        );
        m.content_type = Some("image/jpeg".into());
        m.meta.insert("owner".into(), "ann".into());
        m.tags.insert("project".into(), "x".into());
        m
    }

    /// The chunks as ingest makes them: each part cut from its start.
    fn model_chunks(parts: &[u64], chunk: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut offset = 0;
        for &size in parts {
            if size == 0 {
                out.push((offset, 0));
            }
            let mut at = 0;
            while at < size {
                let len = chunk.min(size - at);
                out.push((offset + at, len));
                at += len;
            }
            offset += size;
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn chunk_spans_follow_the_parts(
            parts in proptest::collection::vec(0u64..50, 1..6),
            chunk in 1u64..12,
            multipart in proptest::bool::ANY,
        ) {
            let mut m = sample();
            let parts = if multipart { parts } else { vec![parts.iter().sum()] };
            m.size = parts.iter().sum();
            if multipart {
                m.parts = parts.clone();
            }
            let want = model_chunks(&parts, chunk);
            proptest::prop_assert_eq!(m.chunk_count(chunk), want.len() as u64);
            for (n, span) in want.iter().enumerate() {
                proptest::prop_assert_eq!(m.chunk_span(n as u64, chunk), Some(*span));
            }
            proptest::prop_assert_eq!(m.chunk_span(want.len() as u64, chunk), None);
            proptest::prop_assert_eq!(m.chunk_span(u64::MAX, chunk), None);
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let m = sample();
        let b = m.to_block().unwrap();
        assert_eq!(Manifest::decode(b.data()).unwrap(), m);
        // Same value, same CID.
        assert_eq!(sample().to_block().unwrap().cid(), b.cid());
    }

    #[test]
    fn delete_marker_round_trips() {
        let m = Manifest::delete_marker("k", "v1".into(), 5);
        assert!(m.delete_marker);
        let b = m.to_block().unwrap();
        assert_eq!(Manifest::decode(b.data()).unwrap(), m);
    }

    #[test]
    fn broken_manifests_are_refused_by_field() {
        type Breaker = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("etag", Box::new(|m| m.etag = "nothex".into())),
            (
                "sha256",
                Box::new(|m| m.sha256 = Some(ByteBuf::from(vec![1; 3]))),
            ),
            ("key", Box::new(|m| m.key = String::new())),
            ("parts", Box::new(|m| m.parts = vec![5])),
            (
                "parts",
                Box::new(|m| {
                    m.etag = format!("{}-2", "a".repeat(32));
                    m.parts = vec![1, 1];
                }),
            ),
            (
                "checksums",
                Box::new(|m| {
                    m.checksums.insert("MD4".into(), ByteBuf::from(vec![0; 4]));
                    m.checksum_type = Some(ChecksumType::FullObject);
                }),
            ),
            (
                "checksumType",
                Box::new(|m| {
                    m.checksums
                        .insert("CRC32".into(), ByteBuf::from(vec![0; 4]));
                }),
            ),
            (
                "tags",
                Box::new(|m| {
                    for i in 0..11 {
                        m.tags.insert(format!("t{i}"), String::new());
                    }
                }),
            ),
            ("modified", Box::new(|m| m.modified = m.created - 1)),
            ("deleteMarker", Box::new(|m| m.delete_marker = true)),
            (
                "body",
                Box::new(|m| m.body = Some(*Block::new(Codec::DagCbor, &b"\xa0"[..]).cid())),
            ),
            ("type", Box::new(|m| m.kind = "other".into())),
        ];
        for (field, break_it) in cases {
            let mut m = sample();
            break_it(&mut m);
            // Encode around the validator, as a hostile writer would.
            let bytes = serde_ipld_dagcbor::to_vec(&m).unwrap();
            match Manifest::decode(&bytes) {
                Err(RecordError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_and_garbage_are_refused() {
        #[derive(Serialize)]
        struct Extra<'a> {
            #[serde(flatten)]
            m: &'a Manifest,
            zzz: u64,
        }
        let m = sample();
        let bytes = serde_ipld_dagcbor::to_vec(&Extra { m: &m, zzz: 1 }).unwrap();
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(RecordError::Cbor { .. })
        ));
        assert!(matches!(
            Manifest::decode(b"\xff\x00"),
            Err(RecordError::Cbor { .. })
        ));
    }

    #[test]
    fn etag_forms() {
        assert!(etag_is_valid("5d41402abc4b2a76b9719d911017c592"));
        assert!(etag_is_valid("5d41402abc4b2a76b9719d911017c592-3"));
        assert!(!etag_is_valid("5d41402abc4b2a76b9719d911017c592-0"));
        assert!(!etag_is_valid("5d41402abc4b2a76b9719d911017c592-03"));
        assert!(!etag_is_valid("5d41402abc4b2a76b9719d911017c592-10001"));
        assert!(!etag_is_valid("5D41402ABC4B2A76B9719D911017C592"));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Manifest::decode(&bytes);
        }

        #[test]
        fn mutated_manifests_never_panic(flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6)) {
            let mut bytes = sample().to_block().unwrap().data().to_vec();
            for (i, v) in flips {
                let at = i.index(bytes.len());
                bytes[at] = v;
            }
            if let Ok(m) = Manifest::decode(&bytes) {
                proptest::prop_assert!(m.validate().is_ok());
            }
        }
    }
}
