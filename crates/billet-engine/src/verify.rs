//! Checking a bucket's whole DAG from its head commit, over any block
//! store (the node's log, or a CAR file nobody trusts yet): every block's
//! hash, the commit, the MST rules, every manifest and `prev` chain, and
//! every body's size, SHA-256 and ETag. `verify`, `import` and `fsck` share
//! it.

use std::collections::HashSet;
use std::sync::Mutex;

use billet_block::{BlockError, BlockStore, Cid};
use billet_index::ObjectVersion;
use billet_records::{BucketSettings, Commit};
use bytes::Bytes;

use crate::error::EngineError;
use crate::fsck::{rebuild_rows, walk};

/// What a verification found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub bucket: String,
    pub head: Cid,
    pub seq: u64,
    pub settings: BucketSettings,
    pub keys: u64,
    pub versions: u64,
    /// Body bytes read and checked.
    pub bytes: u64,
    /// Distinct blocks the head reaches.
    pub blocks: u64,
    pub problems: Vec<String>,
}

/// A report and, when there were no problems, the index rows the head
/// calls for.
#[derive(Debug)]
pub struct Verified {
    pub report: VerifyReport,
    pub rows: Vec<ObjectVersion>,
}

/// Counts the distinct blocks a walk reads.
struct Counting<'a, S> {
    inner: &'a S,
    seen: Mutex<HashSet<Cid>>,
}

impl<S: BlockStore> BlockStore for Counting<'_, S> {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        let b = self.inner.get(cid)?;
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*cid);
        Ok(b)
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        self.inner.has(cid)
    }
}

/// Verifies everything `head` reaches in `store`. Problems found in
/// objects are collected; a head that is not a commit is an error.
pub fn verify_head<S: BlockStore>(store: &S, head: &Cid) -> Result<Verified, EngineError> {
    let counting = Counting {
        inner: store,
        seen: Mutex::new(HashSet::new()),
    };
    let commit = Commit::decode(&counting.get(head)?).map_err(|e| {
        EngineError::Invalid(format!("the root {head} is not a bucket commit: {e}"))
    })?;
    let mut problems = Vec::new();
    let walked = match walk(&counting, &commit.data, &mut problems, true) {
        Ok(w) => Some(w),
        Err(e) => {
            problems.push(format!("MST at {}: {e}", commit.data));
            None
        }
    };
    let blocks = counting
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len() as u64;
    let (keys, bytes, rows) = match walked {
        Some(w) => (w.keys, w.bytes, rebuild_rows(w.rows)),
        None => (0, 0, Vec::new()),
    };
    Ok(Verified {
        report: VerifyReport {
            bucket: commit.bucket.clone(),
            head: *head,
            seq: commit.seq,
            settings: commit.settings.clone(),
            keys,
            versions: rows.len() as u64,
            bytes,
            blocks,
            problems,
        },
        rows,
    })
}
