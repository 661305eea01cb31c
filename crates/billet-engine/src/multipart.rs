//! Multipart uploads.
//!
//! Each part is staged like a PUT body (its own UnixFS subtree, chunked as
//! it arrives) and made durable before the index records it. Complete
//! builds one file node layer over the chosen parts' roots — no part byte
//! is read, copied or re-chunked — and commits the manifest through the
//! bucket's pipeline, which also removes the upload's rows in the commit's
//! index transaction. Abort goes through the same queue, so Complete and
//! Abort racing on one upload end in exactly one outcome.

use std::collections::BTreeMap;

use billet_block::{Block, validate_key};
use billet_index::{ObjectVersion, Part, PartPage, Upload, UploadPage, UploadQuery, VersionQuery};
use billet_records::{ChecksumType, MAX_PARTS, Manifest};
use billet_unixfs::{
    ChecksumAlgorithm, ChecksumValue, FileLayout, Link, combine_full_object, composite_checksum,
};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{EngineError, join_error};
use crate::pipeline::{self, Mutation, Outcome};
use crate::{Engine, ObjectMeta, PutOutcome, StagedBody, now_ms};

/// S3's smallest part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// How a multipart upload's checksum is formed at Complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadChecksum {
    /// The algorithm over the concatenated part checksums (`…-N`).
    Composite(#[serde(with = "algorithm_name")] ChecksumAlgorithm),
    /// A CRC of the whole object, combined from the parts' CRCs.
    FullObject(#[serde(with = "algorithm_name")] ChecksumAlgorithm),
}

impl UploadChecksum {
    pub fn algorithm(self) -> ChecksumAlgorithm {
        match self {
            UploadChecksum::Composite(a) | UploadChecksum::FullObject(a) => a,
        }
    }

    pub fn checksum_type(self) -> ChecksumType {
        match self {
            UploadChecksum::Composite(_) => ChecksumType::Composite,
            UploadChecksum::FullObject(_) => ChecksumType::FullObject,
        }
    }
}

mod algorithm_name {
    use billet_unixfs::ChecksumAlgorithm;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &ChecksumAlgorithm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.s3_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChecksumAlgorithm, D::Error> {
        let name = String::deserialize(d)?;
        ChecksumAlgorithm::from_s3_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown checksum {name:?}")))
    }
}

/// What CreateMultipartUpload fixed for the object to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UploadRecord {
    meta: ObjectMeta,
    checksum: Option<UploadChecksum>,
}

/// What a part's index row keeps beyond size and ETag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartRecord {
    /// dag-pb `Tsize` of the part's subtree.
    tsize: u64,
    md5: ByteBuf,
    checksums: BTreeMap<String, ByteBuf>,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub meta: ObjectMeta,
    pub checksum: Option<UploadChecksum>,
}

/// A stored part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// Unquoted hex MD5.
    pub etag: String,
    pub last_modified_ms: i64,
    pub md5: [u8; 16],
    pub checksums: Vec<ChecksumValue>,
    pub root: Link,
}

/// A part as CompleteMultipartUpload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub number: u32,
    /// As the client sent it (quotes allowed).
    pub etag: String,
    /// `x-amz-checksum-*` values the client gave for the part, base64.
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

/// How many of a key's newest versions a retried Complete looks through.
const RETRY_LOOKBACK: usize = 100;

/// A completed upload.
#[derive(Debug, Clone)]
pub struct CompleteOutcome {
    pub put: PutOutcome,
    /// The object's checksum as S3 shows it (`…-N` for composite).
    pub checksum: Option<(UploadChecksum, String)>,
}

fn decode_upload(u: Upload) -> Result<UploadInfo, EngineError> {
    let rec: UploadRecord = billet_block::decode_dag_cbor(&u.meta)
        .map_err(|e| EngineError::Corrupt(format!("upload {} record: {e}", u.upload_id)))?;
    Ok(UploadInfo {
        upload_id: u.upload_id,
        key: u.key,
        initiated_ms: u.initiated_ms,
        meta: rec.meta,
        checksum: rec.checksum,
    })
}

fn decode_part(p: Part) -> Result<PartInfo, EngineError> {
    let rec: PartRecord = billet_block::decode_dag_cbor(&p.meta)
        .map_err(|e| EngineError::Corrupt(format!("part {} record: {e}", p.number)))?;
    let md5: [u8; 16] = rec
        .md5
        .as_slice()
        .try_into()
        .map_err(|_| EngineError::Corrupt(format!("part {} has a bad MD5", p.number)))?;
    let checksums = rec
        .checksums
        .iter()
        .filter_map(|(name, d)| {
            ChecksumAlgorithm::from_s3_name(name).map(|algorithm| ChecksumValue {
                algorithm,
                digest: d.to_vec(),
            })
        })
        .collect();
    Ok(PartInfo {
        number: p.number,
        size: p.size,
        etag: p.etag,
        last_modified_ms: p.last_modified_ms,
        md5,
        checksums,
        root: Link {
            cid: p.root,
            file_size: p.size,
            tsize: rec.tsize,
        },
    })
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

impl Engine {
    /// Starts an upload: nothing is stored but its row.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum: Option<UploadChecksum>,
    ) -> Result<UploadInfo, EngineError> {
        validate_key(key.as_bytes())?;
        self.bucket(bucket).await?;
        if let Some(UploadChecksum::FullObject(a)) = checksum
            && !a.combines()
        {
            return Err(EngineError::Invalid(format!(
                "the FULL_OBJECT checksum type needs a CRC algorithm, not {}",
                a.s3_name()
            )));
        }
        let rec = UploadRecord {
            meta: meta.clone(),
            checksum,
        };
        let block = billet_block::encode_dag_cbor(&rec)
            .map_err(|e| EngineError::Internal(format!("upload record: {e}")))?;
        let upload = Upload {
            upload_id: format!("{:032x}", rand::random::<u128>()),
            key: key.to_string(),
            initiated_ms: now_ms(),
            meta: block.data().to_vec(),
        };
        self.index().create_upload(bucket, &upload).await?;
        decode_upload(upload)
    }

    /// An upload in progress, checked against the key the request names.
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadInfo, EngineError> {
        match self.index().upload(bucket, upload_id).await? {
            Some(u) if u.key == key => decode_upload(u),
            _ => Err(EngineError::NoSuchUpload(upload_id.to_string())),
        }
    }

    /// Makes a staged part durable and records it, replacing any part with
    /// the same number.
    pub async fn put_part(
        &self,
        bucket: &str,
        upload: &UploadInfo,
        number: u32,
        body: StagedBody,
    ) -> Result<PartInfo, EngineError> {
        if !(1..=MAX_PARTS as u32).contains(&number) {
            return Err(EngineError::Invalid(format!(
                "part number {number} is outside 1..={MAX_PARTS}"
            )));
        }
        // Durable before the index points at it: a recorded part's blocks
        // survive any crash.
        self.log().sync(body.receipt).await?;
        let ing = body.ingested;
        let rec = PartRecord {
            tsize: ing.root.tsize,
            md5: ByteBuf::from(ing.md5.to_vec()),
            checksums: ing
                .checksums
                .iter()
                .map(|c| {
                    (
                        c.algorithm.s3_name().to_string(),
                        ByteBuf::from(c.digest.clone()),
                    )
                })
                .collect(),
        };
        let meta = billet_block::encode_dag_cbor(&rec)
            .map_err(|e| EngineError::Internal(format!("part record: {e}")))?;
        let part = Part {
            number,
            size: ing.size(),
            etag: ing.etag(),
            root: ing.root.cid,
            last_modified_ms: now_ms(),
            meta: meta.data().to_vec(),
        };
        self.index()
            .put_part(bucket, &upload.upload_id, &part)
            .await?;
        decode_part(part)
    }

    /// Parts numbered above `after`, at most `max`.
    pub async fn list_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Vec<PartInfo>, PartPage), EngineError> {
        let mut page = self.index().parts(bucket, upload_id, after, max).await?;
        let parts = std::mem::take(&mut page.parts)
            .into_iter()
            .map(decode_part)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((parts, page))
    }

    async fn all_parts(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<BTreeMap<u32, PartInfo>, EngineError> {
        let mut out = BTreeMap::new();
        let mut after = 0;
        loop {
            let (parts, page) = self.list_parts(bucket, upload_id, after, 1000).await?;
            for p in parts {
                after = p.number;
                out.insert(p.number, p);
            }
            if !page.truncated {
                return Ok(out);
            }
        }
    }

    pub async fn list_uploads(
        &self,
        bucket: &str,
        query: &UploadQuery,
    ) -> Result<(Vec<UploadInfo>, UploadPage), EngineError> {
        let mut page = self.index().list_uploads(bucket, query).await?;
        let uploads = std::mem::take(&mut page.uploads)
            .into_iter()
            .map(decode_upload)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uploads, page))
    }

    /// Assembles the named parts into one object and commits it.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload: &UploadInfo,
        chosen: &[CompletedPart],
        condition: Option<pipeline::Condition>,
    ) -> Result<CompleteOutcome, EngineError> {
        if chosen.is_empty() {
            return Err(EngineError::Invalid(
                "You must specify at least one part".into(),
            ));
        }
        if chosen.len() > MAX_PARTS {
            return Err(EngineError::Invalid(format!(
                "an upload has at most {MAX_PARTS} parts"
            )));
        }
        // A number listed twice (a part sent again while the first send
        // was in flight) counts once, as listed last; the stored part is
        // whichever write finished last.
        if chosen.windows(2).any(|w| w[0].number > w[1].number) {
            return Err(EngineError::InvalidPartOrder);
        }
        let chosen: Vec<&CompletedPart> = chosen
            .iter()
            .enumerate()
            .filter(|(i, c)| chosen.get(i + 1).is_none_or(|next| next.number != c.number))
            .map(|(_, c)| c)
            .collect();
        let stored = self.all_parts(bucket, &upload.upload_id).await?;
        let mut parts = Vec::with_capacity(chosen.len());
        for c in &chosen {
            let Some(p) = stored.get(&c.number) else {
                // An Abort that won the race took the parts with it.
                if self
                    .index()
                    .upload(bucket, &upload.upload_id)
                    .await?
                    .is_none()
                {
                    return Err(EngineError::NoSuchUpload(upload.upload_id.clone()));
                }
                return Err(EngineError::InvalidPart(format!(
                    "Part {} was not uploaded.",
                    c.number
                )));
            };
            if unquote(&c.etag) != p.etag {
                return Err(EngineError::InvalidPart(format!(
                    "Part {}'s ETag {} does not match the uploaded part's {}.",
                    c.number,
                    unquote(&c.etag),
                    p.etag
                )));
            }
            for (algorithm, claimed) in &c.checksums {
                let ok = p
                    .checksums
                    .iter()
                    .any(|v| v.algorithm == *algorithm && v.to_base64() == claimed.trim());
                if !ok {
                    return Err(EngineError::InvalidPart(format!(
                        "Part {}'s {} checksum does not match the uploaded part's.",
                        c.number,
                        algorithm.s3_name()
                    )));
                }
            }
            parts.push(p);
        }
        let min = self.inner.config.min_part_size;
        for p in &parts[..parts.len() - 1] {
            if p.size < min {
                return Err(EngineError::EntityTooSmall {
                    number: p.number,
                    size: p.size,
                    min,
                });
            }
        }
        let checksum = match upload.checksum {
            None => None,
            Some(kind) => {
                let a = kind.algorithm();
                let mut digests = Vec::with_capacity(parts.len());
                for p in &parts {
                    let d = p
                        .checksums
                        .iter()
                        .find(|v| v.algorithm == a)
                        .ok_or_else(|| {
                            EngineError::InvalidPart(format!(
                                "Part {} has no {} checksum, which this upload requires.",
                                p.number,
                                a.s3_name()
                            ))
                        })?;
                    digests.push((d.digest.as_slice(), p.size));
                }
                let value = match kind {
                    UploadChecksum::Composite(_) => {
                        let only: Vec<&[u8]> = digests.iter().map(|(d, _)| *d).collect();
                        composite_checksum(a, &only)
                    }
                    UploadChecksum::FullObject(_) => {
                        combine_full_object(a, &digests).ok_or_else(|| {
                            EngineError::Internal(format!("{} does not combine", a.s3_name()))
                        })?
                    }
                };
                Some((kind, value))
            }
        };

        // The body: the parts' roots under one balanced layer of file
        // nodes. Only these few nodes are new; no part byte is touched.
        let links: Vec<Link> = parts.iter().map(|p| p.root).collect();
        let (root, nodes) = match links.as_slice() {
            [only] => (*only, Vec::new()),
            _ => {
                let mut nodes: Vec<Block> = Vec::new();
                let mut layout = FileLayout::new();
                for l in &links {
                    layout.push(*l, &mut |b| nodes.push(b));
                }
                let root = layout
                    .finish(&mut |b| nodes.push(b))
                    .ok_or_else(|| EngineError::Internal("no parts to lay out".into()))?;
                (root, nodes)
            }
        };
        // The new file nodes are kept from any collection until the
        // commit that references them is through.
        let _staging = self.log().staging();
        let log = self.log().clone();
        let receipt = tokio::task::spawn_blocking(move || log.write(&nodes))
            .await
            .map_err(join_error)??;

        let mut md5 = Md5::new();
        for p in &parts {
            md5.update(p.md5);
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), parts.len());
        let size = parts.iter().map(|p| p.size).sum::<u64>();
        let now = now_ms();
        let mut manifest = Manifest::new(&upload.key, root.cid, size, etag, [0; 32], now);
        manifest.sha256 = None;
        manifest.parts = parts.iter().map(|p| p.size).collect();
        manifest.upload = Some(upload.upload_id.clone());
        upload.meta.clone().apply(&mut manifest);
        if let Some((kind, value)) = &checksum {
            manifest.checksums.insert(
                value.algorithm.s3_name().to_string(),
                ByteBuf::from(value.digest.clone()),
            );
            manifest.checksum_type = Some(kind.checksum_type());
        }
        manifest.validate()?;
        let handle = self.handle(bucket);
        let mutation = Mutation::Put {
            key: upload.key.clone(),
            manifest: Box::new(manifest),
            condition,
            receipt,
            upload: Some(upload.upload_id.clone()),
        };
        let put = match pipeline::submit(&self.inner, &handle, mutation).await? {
            Outcome::Put {
                version_id,
                manifest_cid,
                manifest,
            } => PutOutcome {
                version_id,
                manifest_cid,
                manifest: *manifest,
            },
            other => {
                return Err(EngineError::Internal(format!(
                    "complete answered with {other:?}"
                )));
            }
        };
        let checksum = checksum.map(|(kind, value)| {
            let text = match kind {
                UploadChecksum::Composite(_) => format!("{}-{}", value.to_base64(), parts.len()),
                UploadChecksum::FullObject(_) => value.to_base64(),
            };
            (kind, text)
        });
        Ok(CompleteOutcome { put, checksum })
    }

    /// The version an upload already completed into, if it is still among
    /// the key's newest versions: what a retried Complete answers with.
    pub async fn completed_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<ObjectVersion>, EngineError> {
        let from_upload = |v: &ObjectVersion| v.manifest.upload.as_deref() == Some(upload_id);
        match self.inner.index.object(bucket, key, None).await? {
            Some(v) if from_upload(&v) => return Ok(Some(v)),
            // A null version with nothing below it: no older version to
            // look through.
            Some(v) if v.manifest.version_id.is_none() && v.manifest.prev.is_none() => {
                return Ok(None);
            }
            None => return Ok(None),
            Some(_) => {}
        }
        let page = self
            .inner
            .index
            .list_versions(
                bucket,
                &VersionQuery {
                    prefix: key.to_string(),
                    delimiter: None,
                    key_marker: None,
                    version_id_marker: None,
                    max_keys: RETRY_LOOKBACK,
                },
            )
            .await?;
        for s in page
            .versions
            .iter()
            .filter(|s| s.key == key && !s.delete_marker)
        {
            if let Some(v) = self
                .inner
                .index
                .object(bucket, key, Some(&s.version_id))
                .await?
                && from_upload(&v)
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Abandons an upload; its parts' blocks become garbage.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), EngineError> {
        let handle = self.handle(bucket);
        let mutation = Mutation::Abort {
            upload_id: upload_id.to_string(),
        };
        match pipeline::submit(&self.inner, &handle, mutation).await? {
            Outcome::Abort => Ok(()),
            other => Err(EngineError::Internal(format!(
                "abort answered with {other:?}"
            ))),
        }
    }

    /// Aborts every upload started before `before_ms`; returns how many.
    pub async fn expire_uploads(&self, before_ms: i64) -> Result<u64, EngineError> {
        let mut n = 0;
        for b in self.list_buckets().await? {
            loop {
                let stale = self.index().stale_uploads(&b.name, before_ms, 100).await?;
                if stale.is_empty() {
                    break;
                }
                for u in stale {
                    match self.abort_upload(&b.name, &u.upload_id).await {
                        Ok(()) => n += 1,
                        // Completed or aborted meanwhile.
                        Err(EngineError::NoSuchUpload(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(n)
    }

    /// Where part `number` of an object lies: `(start, end)` bytes. Objects
    /// not uploaded in parts have one part, the whole body.
    pub fn part_range(manifest: &Manifest, number: u32) -> Option<(u64, u64)> {
        if manifest.parts.is_empty() {
            return (number == 1).then_some((0, manifest.size));
        }
        let i = usize::try_from(number).ok()?.checked_sub(1)?;
        let start: u64 = manifest.parts.get(..i)?.iter().sum();
        let len = *manifest.parts.get(i)?;
        Some((start, start + len))
    }
}
