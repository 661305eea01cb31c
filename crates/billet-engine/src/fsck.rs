//! `fsck`: proves a bucket's index rows equal its MST at the head, and that
//! every block the head references is present and sound.

use std::collections::BTreeMap;
use std::sync::Arc;

use billet_block::{BlockStore, Cid};
use billet_index::{NULL_VERSION, ObjectVersion, VersionQuery};
use billet_mst::Mst;
use billet_records::{Commit, Manifest};
use billet_unixfs::RangeReader;
use md5::Digest as _;

use crate::Engine;
use crate::error::{EngineError, join_error};
use crate::store::CachedStore;

#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub bucket: String,
    pub head: Option<Cid>,
    pub seq: u64,
    pub keys: u64,
    pub versions: u64,
    pub body_bytes: u64,
    pub problems: Vec<String>,
    /// Rows were rebuilt from the MST.
    pub repaired: bool,
}

/// One version as the MST says it should be indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    manifest_cid: Cid,
    size: u64,
    etag: String,
    is_latest: bool,
}

/// Every version the MST reaches, by (key, version id).
pub(crate) type ExpectedRows = BTreeMap<(String, String), (Expected, Manifest)>;

/// What a walk found: the rows and the key and body-byte counts.
pub(crate) struct Walked {
    pub rows: ExpectedRows,
    pub keys: u64,
    pub bytes: u64,
}

/// Walks the MST and every manifest chain and body under `root`.
pub(crate) fn walk<S: BlockStore>(
    store: &S,
    root: &Cid,
    problems: &mut Vec<String>,
    check_bodies: bool,
) -> Result<Walked, EngineError> {
    let mut pairs: Vec<(String, Cid)> = Vec::new();
    let stats = Mst::new(store).check(root, &mut |_| {}, &mut |k, v| {
        pairs.push((String::from_utf8_lossy(k).into_owned(), *v));
        Ok(())
    })?;
    let mut rows = BTreeMap::new();
    let mut bodies: Vec<(String, Cid, Manifest)> = Vec::new();
    for (key, head_cid) in pairs {
        let mut next = Some(head_cid);
        let mut latest = true;
        while let Some(cid) = next {
            let m = match store
                .get(&cid)
                .map_err(EngineError::from)
                .and_then(|b| Ok(Manifest::decode(&b)?))
            {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("{key:?}: manifest {cid}: {e}"));
                    break;
                }
            };
            if m.key != key {
                problems.push(format!("{key:?}: manifest {cid} names key {:?}", m.key));
            }
            if let Some(body) = m.body.filter(|_| check_bodies) {
                bodies.push((key.clone(), body, m.clone()));
            }
            let vid = m
                .version_id
                .clone()
                .unwrap_or_else(|| NULL_VERSION.to_string());
            let exp = Expected {
                manifest_cid: cid,
                size: m.size,
                etag: m.etag.clone(),
                is_latest: latest,
            };
            next = m.prev;
            rows.insert((key.clone(), vid), (exp, m));
            latest = false;
        }
    }
    let mut bytes = 0;
    for ((key, body, _), result) in bodies.iter().zip(check_bodies_parallel(store, &bodies)) {
        match result {
            Ok(n) => bytes += n,
            Err(e) => problems.push(format!("{key:?}: body {body}: {e}")),
        }
    }
    Ok(Walked {
        rows,
        keys: stats.entries,
        bytes,
    })
}

/// Hashing bodies is the bulk of a check: it runs on every core, bodies
/// handed out one at a time, results in the order given.
fn check_bodies_parallel<S: BlockStore>(
    store: &S,
    bodies: &[(String, Cid, Manifest)],
) -> Vec<Result<u64, EngineError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(bodies.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<u64, EngineError>>>> =
        bodies.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((_, body, m)) = bodies.get(i) else {
                        return;
                    };
                    let r = check_body(store, body, m);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(EngineError::Internal("a body was not checked".into())))
        })
        .collect()
}

/// Checks a body's bytes against its manifest as they stream past: the
/// size, the SHA-256 when the manifest has one, and the ETag — plain MD5,
/// or for a multipart body each part's MD5 (cut at the manifest's part
/// sizes) folded into `md5(concat(part MD5s))-N`.
pub(crate) struct BodyCheck<'a> {
    manifest: &'a Manifest,
    sha: Option<sha2::Sha256>,
    md5: md5::Md5,
    part_md5s: md5::Md5,
    part: usize,
    left_in_part: u64,
    seen: u64,
}

impl<'a> BodyCheck<'a> {
    pub fn new(manifest: &'a Manifest) -> Self {
        BodyCheck {
            manifest,
            sha: manifest.sha256.is_some().then(sha2::Sha256::new),
            md5: md5::Md5::new(),
            part_md5s: md5::Md5::new(),
            part: 0,
            left_in_part: manifest.parts.first().copied().unwrap_or(0),
            seen: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.seen += data.len() as u64;
        if let Some(sha) = &mut self.sha {
            sha.update(data);
        }
        if !self.manifest.is_multipart() {
            self.md5.update(data);
            return;
        }
        while !data.is_empty() {
            // Empty parts close at once.
            while self.left_in_part == 0 && self.part < self.manifest.parts.len() {
                self.close_part();
            }
            let take = (self.left_in_part.min(data.len() as u64)) as usize;
            if take == 0 {
                // More bytes than the parts add up to: `finish` reports it.
                return;
            }
            self.md5.update(&data[..take]);
            self.left_in_part -= take as u64;
            data = &data[take..];
        }
    }

    fn close_part(&mut self) {
        let digest = std::mem::replace(&mut self.md5, md5::Md5::new()).finalize();
        self.part_md5s.update(digest);
        self.part += 1;
        self.left_in_part = self.manifest.parts.get(self.part).copied().unwrap_or(0);
    }

    pub fn finish(mut self) -> Result<u64, EngineError> {
        let m = self.manifest;
        if self.seen != m.size {
            return Err(EngineError::Invalid(format!(
                "the body holds {} bytes, the manifest says {}",
                self.seen, m.size
            )));
        }
        if let Some(sha) = self.sha.take()
            && m.sha256.as_deref().map(|s| s.as_ref()) != Some(sha.finalize().as_slice())
        {
            return Err(EngineError::Invalid(
                "SHA-256 differs from the manifest".into(),
            ));
        }
        let etag = if m.is_multipart() {
            while self.part < m.parts.len() {
                self.close_part();
            }
            format!(
                "{}-{}",
                hex::encode(self.part_md5s.finalize()),
                m.parts.len()
            )
        } else {
            hex::encode(self.md5.finalize())
        };
        if etag != m.etag {
            return Err(EngineError::Invalid(format!(
                "the body's ETag is {etag}, the manifest says {}",
                m.etag
            )));
        }
        Ok(self.seen)
    }
}

/// Reads a whole body (every block hashed on the way) and checks it
/// against its manifest, starting with the size its UnixFS root declares.
fn check_body<S: BlockStore>(store: &S, root: &Cid, m: &Manifest) -> Result<u64, EngineError> {
    let declared = billet_unixfs::file_size(store, root)?;
    if declared != m.size {
        return Err(EngineError::Invalid(format!(
            "the UnixFS tree holds {declared} bytes, the manifest says {}",
            m.size
        )));
    }
    let mut check = BodyCheck::new(m);
    for piece in RangeReader::new(store, *root, m.size, 0, m.size)? {
        check.update(&piece?);
    }
    check.finish()
}

impl Engine {
    /// Checks `bucket` (see the module docs); with `repair`, rebuilds the
    /// index rows from the MST when they differ.
    pub async fn fsck(&self, bucket: &str, repair: bool) -> Result<FsckReport, EngineError> {
        let state = self.bucket(bucket).await?;
        let mut report = FsckReport {
            bucket: bucket.to_string(),
            head: Some(state.head),
            seq: state.seq,
            ..FsckReport::default()
        };
        let store: Arc<CachedStore> = self.store().clone();
        let head = state.head;
        let (expected, keys, bytes, settings, mut problems) =
            tokio::task::spawn_blocking(move || {
                let mut problems = Vec::new();
                let commit = Commit::decode(&store.get(&head)?)?;
                let w = walk(&store, &commit.data, &mut problems, true)?;
                Ok::<_, EngineError>((w.rows, w.keys, w.bytes, commit.settings, problems))
            })
            .await
            .map_err(join_error)??;
        report.keys = keys;
        report.versions = expected.len() as u64;
        report.body_bytes = bytes;

        // Every indexed version, compared with what the MST says: the
        // columns listings serve (size, ETag, latest) and the manifest the
        // row holds for GET and HEAD.
        let mut indexed: BTreeMap<(String, String), Expected> = BTreeMap::new();
        let mut row_problems = Vec::new();
        let mut q = VersionQuery {
            max_keys: 1000,
            ..VersionQuery::default()
        };
        loop {
            let page = self.list_versions(bucket, &q).await?;
            for v in &page.versions {
                let full = self.object(bucket, &v.key, Some(&v.version_id)).await?;
                let id = (v.key.clone(), v.version_id.clone());
                if let Some((_, m)) = expected.get(&id)
                    && full.manifest != *m
                {
                    row_problems.push(format!(
                        "{:?} version {}: the index row's manifest differs from manifest {}",
                        v.key, v.version_id, full.manifest_cid
                    ));
                }
                indexed.insert(
                    id,
                    Expected {
                        manifest_cid: full.manifest_cid,
                        size: v.size,
                        etag: v.etag.clone(),
                        is_latest: v.is_latest,
                    },
                );
            }
            if !page.truncated {
                break;
            }
            q.key_marker = page.next_key_marker;
            q.version_id_marker = page.next_version_id_marker;
        }
        for ((key, vid), (want, _)) in &expected {
            match indexed.get(&(key.clone(), vid.clone())) {
                None => row_problems.push(format!("{key:?} version {vid}: in the MST, missing from the index")),
                Some(got) if got != want => row_problems.push(format!(
                    "{key:?} version {vid}: index has manifest {} ({} bytes, ETag {}, latest {}), MST has {} ({} bytes, ETag {}, latest {})",
                    got.manifest_cid, got.size, got.etag, got.is_latest, want.manifest_cid, want.size, want.etag, want.is_latest
                )),
                Some(_) => {}
            }
        }
        for (key, vid) in indexed.keys() {
            if !expected.contains_key(&(key.clone(), vid.clone())) {
                row_problems.push(format!(
                    "{key:?} version {vid}: in the index, not in the MST"
                ));
            }
        }
        if repair && !row_problems.is_empty() {
            let rows = rebuild_rows(expected);
            self.index()
                .rebuild(
                    bucket,
                    state.head,
                    state.seq,
                    &settings,
                    Box::new(rows.into_iter().map(Ok)),
                )
                .await?;
            report.repaired = true;
        }
        problems.extend(row_problems);
        report.problems = problems;
        Ok(report)
    }
}

/// The index rows the MST at `root` calls for, ready for
/// [`billet_index::Index::rebuild`]: every reachable version, bodies not
/// read. Any unreadable manifest is an error.
pub(crate) fn mst_rows<S: BlockStore>(
    store: &S,
    root: &Cid,
) -> Result<Vec<ObjectVersion>, EngineError> {
    let mut problems = Vec::new();
    let w = walk(store, root, &mut problems, false)?;
    if let Some(first) = problems.first() {
        return Err(EngineError::Corrupt(format!(
            "the MST at {root} cannot be indexed ({} problems; first: {first})",
            problems.len()
        )));
    }
    Ok(rebuild_rows(w.rows))
}

pub(crate) fn rebuild_rows(expected: ExpectedRows) -> Vec<ObjectVersion> {
    let rows: Vec<ObjectVersion> = expected
        .into_iter()
        .map(|((key, version_id), (e, manifest))| ObjectVersion {
            key,
            version_id,
            is_latest: e.is_latest,
            manifest_cid: e.manifest_cid,
            manifest,
            order: 0,
        })
        .collect();
    // Rebuild wants each key's versions newest first: the walk yields keys
    // in order, and the BTreeMap sorted versions by id, so put them back in
    // chain order.
    order_chains(rows)
}

/// Groups rows by key (in key order) with each key's versions newest first
/// (following `prev` from the latest).
fn order_chains(rows: Vec<ObjectVersion>) -> Vec<ObjectVersion> {
    let mut by_key: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    for r in rows {
        by_key.entry(r.key.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, mut versions) in by_key {
        let mut ordered = Vec::with_capacity(versions.len());
        let mut next = versions
            .iter()
            .position(|v| v.is_latest)
            .map(|i| versions.remove(i));
        while let Some(v) = next {
            let prev = v.manifest.prev;
            ordered.push(v);
            next = prev.and_then(|p| {
                versions
                    .iter()
                    .position(|v| v.manifest_cid == p)
                    .map(|i| versions.remove(i))
            });
        }
        ordered.extend(versions);
        out.extend(ordered);
    }
    out
}

#[cfg(test)]
mod body_check_tests {
    use super::*;
    use md5::Md5;

    fn manifest(parts: &[&[u8]]) -> Manifest {
        let mut cat = Md5::new();
        for p in parts {
            cat.update(Md5::digest(p));
        }
        let size = parts.iter().map(|p| p.len() as u64).sum();
        let etag = format!("{}-{}", hex::encode(cat.finalize()), parts.len());
        let root = billet_block::cid_of(billet_block::Codec::Raw, b"x");
        let mut m = Manifest::new("k", root, size, etag, [0; 32], 1);
        m.sha256 = None;
        m.parts = parts.iter().map(|p| p.len() as u64).collect();
        m
    }

    #[test]
    fn multipart_etag_is_checked_across_any_piece_boundaries() {
        let parts: [&[u8]; 4] = [b"first part", b"", b"second", b"the last one"];
        let m = manifest(&parts);
        let whole: Vec<u8> = parts.concat();
        for piece in [1, 3, 7, whole.len()] {
            let mut c = BodyCheck::new(&m);
            for chunk in whole.chunks(piece) {
                c.update(chunk);
            }
            assert_eq!(c.finish().unwrap(), whole.len() as u64, "piece {piece}");
        }
        // One flipped byte, or bytes moved across a part boundary, fail.
        let mut bad = whole.clone();
        bad[12] ^= 1;
        let mut c = BodyCheck::new(&m);
        c.update(&bad);
        assert!(c.finish().is_err());
        let shifted = manifest(&[b"first par", b"", b"tsecond", b"the last one"]);
        let mut c = BodyCheck::new(&shifted);
        c.update(&whole);
        let mut m2 = m.clone();
        m2.parts = shifted.parts.clone();
        let mut c2 = BodyCheck::new(&m2);
        c2.update(&whole);
        assert!(c.finish().is_ok() && c2.finish().is_err());
        // Too few bytes.
        let mut c = BodyCheck::new(&m);
        c.update(&whole[..whole.len() - 1]);
        assert!(c.finish().is_err());
    }
}
