//! The storage seam: one bucket's rows inside one transaction. Each
//! backend implements [`BucketTx`] with plain SQL — reads, writes and
//! range scans, nothing decided — and the rules in `rules/` (head
//! compare-and-swap, version bookkeeping, upload closing, MMR continuity,
//! listing pages) run over it, the same code for every backend.
//!
//! A backend runs a closure over its `BucketTx` on a blocking thread,
//! committing the transaction if the closure returns `Ok`; a bucket that
//! does not exist fails with `NoSuchBucket` before the closure runs.

use billet_block::Cid;
use billet_records::{BucketSettings, Manifest};

use crate::error::IndexError;
use crate::list::ScanRequest;
use crate::types::{CommitRow, ObjectSummary, Part, Upload};

/// Whether a write transaction must be durable when it commits. Commits of
/// object rows need not be (the log is their redo log); multipart state
/// lives only in the index and must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Deferred,
    Durable,
}

/// A bucket's head row as a commit reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadRow {
    pub(crate) head: Cid,
    pub(crate) seq: u64,
    /// The `ord` the next new version takes (ords count down: smaller is
    /// newer).
    pub(crate) next_ord: i64,
}

/// The head row a commit leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewHead<'a> {
    pub(crate) head: Cid,
    pub(crate) seq: u64,
    pub(crate) next_ord: i64,
    /// Replaced only when the commit changes the settings.
    pub(crate) settings: Option<&'a BucketSettings>,
}

/// One version row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewVersion<'a> {
    pub(crate) key: &'a str,
    pub(crate) version_id: &'a str,
    pub(crate) ord: i64,
    pub(crate) latest: bool,
    pub(crate) cid: &'a Cid,
    pub(crate) manifest: &'a Manifest,
}

/// A run of consecutive puts, already resolved by the rules: delete the
/// rows they replace, clear the keys' latest flags, insert the new rows.
/// Applied in that order it equals applying the puts one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PutRun<'a> {
    /// `(key, version id)` rows a new row of the same id replaces.
    pub(crate) replaced: Vec<(&'a str, &'a str)>,
    /// Keys whose current latest version stops being latest.
    pub(crate) keys: Vec<&'a str>,
    pub(crate) rows: Vec<NewVersion<'a>>,
}

/// One bucket's rows within a transaction. Every method is one statement
/// (or one pipelined batch of them); none decides anything.
pub(crate) trait BucketTx {
    /// The head row, locked against other committers until the
    /// transaction ends.
    fn lock_head(&mut self) -> Result<HeadRow, IndexError>;
    fn set_head(&mut self, head: &NewHead<'_>) -> Result<(), IndexError>;

    fn apply_puts(&mut self, run: &PutRun<'_>) -> Result<(), IndexError>;
    /// Removes a version; `Some(was_latest)` if it existed.
    fn delete_version(&mut self, key: &str, version_id: &str) -> Result<Option<bool>, IndexError>;
    /// Marks the key's newest remaining version (smallest ord) latest.
    fn promote_newest(&mut self, key: &str) -> Result<(), IndexError>;
    /// Replaces a version's manifest in place; false if there is no such
    /// version.
    fn replace_version(
        &mut self,
        key: &str,
        version_id: &str,
        cid: &Cid,
        manifest: &Manifest,
    ) -> Result<bool, IndexError>;
    /// Removes every version row (rebuild).
    fn clear_versions(&mut self) -> Result<(), IndexError>;
    /// Inserts version rows as they are (rebuild).
    fn insert_versions(&mut self, rows: &[NewVersion<'_>]) -> Result<(), IndexError>;

    /// Whether the upload exists; `lock` holds it against a concurrent
    /// abort until the transaction ends.
    fn upload_exists(&mut self, upload_id: &str, lock: bool) -> Result<bool, IndexError>;
    fn insert_upload(&mut self, upload: &Upload) -> Result<(), IndexError>;
    /// Removes an upload's row; false if there was none.
    fn delete_upload(&mut self, upload_id: &str) -> Result<bool, IndexError>;
    fn part(&mut self, upload_id: &str, number: u32) -> Result<Option<Part>, IndexError>;
    /// Inserts or replaces a part by number.
    fn upsert_part(&mut self, upload_id: &str, part: &Part) -> Result<(), IndexError>;
    /// Parts numbered above `after`, in order, at most `limit`.
    fn parts_after(
        &mut self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, IndexError>;
    /// Removes an upload's parts and returns them.
    fn delete_parts(&mut self, upload_id: &str) -> Result<Vec<Part>, IndexError>;

    /// Number of MMR nodes stored.
    fn mmr_size(&mut self) -> Result<u64, IndexError>;
    fn insert_mmr(&mut self, nodes: &[(u64, [u8; 32])]) -> Result<(), IndexError>;

    /// Records commits (a row already there for a sequence number is
    /// replaced).
    fn put_commits(&mut self, rows: &[CommitRow]) -> Result<(), IndexError>;
    /// Commits from `from_seq` up, oldest first, at most `limit`.
    fn commits_from(&mut self, from_seq: u64, limit: usize) -> Result<Vec<CommitRow>, IndexError>;

    /// The `ord` of one version, for a version-id marker.
    fn version_ord(&mut self, key: &str, version_id: &str) -> Result<Option<i64>, IndexError>;
    /// The sequence number of one upload, for an upload-id marker.
    fn upload_seq(&mut self, key: &str, upload_id: &str) -> Result<Option<i64>, IndexError>;
    /// Latest non-deleted versions in key order from the cursor. With
    /// `req.skip`, only the first row of each common-prefix group (and
    /// every row outside one): such a row may carry only its key.
    fn scan_objects(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError>;
    /// Every version, by key then ord, from the cursor.
    fn scan_versions(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError>;
    /// Uploads with their sequence numbers, by key then sequence.
    fn scan_uploads(&mut self, req: &ScanRequest) -> Result<Vec<(Upload, i64)>, IndexError>;
}
