//! The index: the relational store that answers every read (GET, HEAD,
//! LIST, multipart, auth) so the MST never sits on the read path, and where
//! a bucket's head moves by compare-and-swap.
//!
//! One contract, [`Index`], two implementations:
//!
//! * [`SqliteIndex`] — the embedded default: a registry database plus one
//!   database file per bucket (WAL), opened through a bounded LRU pool. A
//!   bucket's head and its rows share a file, so one transaction covers both.
//! * [`PgIndex`] — PostgreSQL for scale-out: one schema, migrations applied
//!   on start, a connection pool. Keys are `bytea`, so ordering is bytewise.
//!
//! What is authoritative here (not derivable from the MST): the bucket
//! registry and head, multipart state, access keys, segment lifecycle,
//! pending remote deletes, MMR nodes. Object rows are a cache of the MST,
//! rebuilt with [`Index::rebuild`].
//!
//! Neither backend fsyncs per transaction: the log's catalog plane is the
//! redo log (every commit block reaches it before its index transaction).

mod error;
mod list;
pub mod postgres;
mod rows;
mod rules;
mod scans;
pub mod sqlite;
mod tx;
mod types;

use async_trait::async_trait;
use billet_block::Cid;
use billet_records::BucketSettings;

pub use error::IndexError;
pub use postgres::{PgConfig, PgIndex};
pub use sqlite::{SqliteConfig, SqliteIndex};
pub use types::*;

/// Rows for [`Index::rebuild`], grouped by key in key order, each key's
/// versions newest first.
pub type RebuildRows = Box<dyn Iterator<Item = Result<ObjectVersion, IndexError>> + Send>;

#[async_trait]
pub trait Index: Send + Sync + 'static {
    // Durability.

    /// The catalog-plane segment that roll-forward scans from at start-up:
    /// every commit block in an earlier segment is durably indexed. 0 when
    /// never set.
    async fn replay_from(&self) -> Result<u64, IndexError>;
    /// Makes every transaction committed so far durable (this index does
    /// not fsync per transaction), then durably records `segment` as the
    /// replay point.
    async fn set_replay_from(&self, segment: u64) -> Result<(), IndexError>;

    // Buckets.

    /// Registers a bucket with its first commit as head.
    async fn create_bucket(&self, bucket: &BucketState) -> Result<(), IndexError>;
    /// Removes an empty bucket (no versions, no uploads in progress).
    async fn delete_bucket(&self, name: &str) -> Result<(), IndexError>;
    async fn bucket(&self, name: &str) -> Result<Option<BucketState>, IndexError>;
    async fn list_buckets(&self) -> Result<Vec<BucketEntry>, IndexError>;

    // Objects.

    /// Applies a commit atomically: head CAS, row changes, completed
    /// uploads, MMR nodes. `Conflict` if the head moved.
    async fn commit(&self, batch: CommitBatch) -> Result<(), IndexError>;
    /// A version by id, or the latest (possibly a delete marker).
    async fn object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>, IndexError>;
    /// Latest non-deleted versions with S3 ListObjects semantics.
    async fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<ListPage, IndexError>;
    /// Every version and delete marker, keys in order, newest first.
    async fn list_versions(
        &self,
        bucket: &str,
        query: &VersionQuery,
    ) -> Result<VersionPage, IndexError>;
    /// Replaces all object rows, the head and the settings with `rows` and
    /// the commit they come from, e.g. from an MST walk, in one
    /// transaction. Returns the number of versions written.
    async fn rebuild(
        &self,
        bucket: &str,
        head: Cid,
        seq: u64,
        settings: &BucketSettings,
        rows: RebuildRows,
    ) -> Result<u64, IndexError>;

    // Multipart uploads.

    async fn create_upload(&self, bucket: &str, upload: &Upload) -> Result<(), IndexError>;
    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Option<Upload>, IndexError>;
    /// Records a part (replacing one with the same number, which is
    /// returned). `NoSuchUpload` if the upload is gone.
    async fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: &Part,
    ) -> Result<Option<Part>, IndexError>;
    /// Parts numbered above `after`, at most `max`.
    async fn parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartPage, IndexError>;
    /// Removes an upload and its parts (returned). `NoSuchUpload` if gone.
    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<Part>, IndexError>;
    async fn list_uploads(
        &self,
        bucket: &str,
        query: &UploadQuery,
    ) -> Result<UploadPage, IndexError>;
    /// Uploads started before `before_ms` (for expiry).
    async fn stale_uploads(
        &self,
        bucket: &str,
        before_ms: i64,
        max: usize,
    ) -> Result<Vec<Upload>, IndexError>;

    // Commit history.

    /// Number of MMR nodes stored for the bucket.
    async fn mmr_size(&self, bucket: &str) -> Result<u64, IndexError>;
    async fn mmr_nodes(
        &self,
        bucket: &str,
        positions: &[u64],
    ) -> Result<Vec<Option<[u8; 32]>>, IndexError>;
    /// The bucket's recorded commits from `from_seq` up, oldest first, at
    /// most `max`.
    async fn commits(
        &self,
        bucket: &str,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<CommitRow>, IndexError>;
    /// Records commits outside a head move (filling in a bucket's history
    /// recorded before commits were).
    async fn put_commits(&self, bucket: &str, rows: Vec<CommitRow>) -> Result<(), IndexError>;
    /// The bucket's own history retention (`None`: the node default).
    async fn retention(&self, bucket: &str) -> Result<Option<Retention>, IndexError>;
    /// Sets (or with `None` clears) the bucket's own retention; false if
    /// there is no such bucket.
    async fn set_retention(
        &self,
        bucket: &str,
        retention: Option<Retention>,
    ) -> Result<bool, IndexError>;

    // Access keys.

    async fn put_access_key(&self, key: &AccessKey) -> Result<(), IndexError>;
    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, IndexError>;
    async fn access_keys(&self) -> Result<Vec<AccessKey>, IndexError>;
    /// Deletes a key and its grants; false if there was no such key.
    async fn delete_access_key(&self, id: &str) -> Result<bool, IndexError>;

    // Access control.

    /// A bucket's access settings (name → value), by name.
    async fn bucket_settings(&self, bucket: &str) -> Result<Vec<(String, String)>, IndexError>;
    /// Sets (or with `None` clears) one access setting of a bucket; false
    /// if there is no such bucket. Deleting a bucket drops its settings.
    async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<bool, IndexError>;
    /// The grants of one key, or (with `None`) of every key; by key, then
    /// bucket.
    async fn grants(&self, key_id: Option<&str>) -> Result<Vec<Grant>, IndexError>;
    /// Records a key's grant on a bucket (replacing the one it had); a
    /// grant of nothing removes it. Deleting the bucket or the key drops it.
    async fn set_grant(&self, grant: &Grant) -> Result<(), IndexError>;

    // The cold tier.

    /// Records (or replaces) a segment whose whole copy the remote holds.
    async fn put_segment(&self, segment: &RemoteSegment) -> Result<(), IndexError>;
    /// Changes a recorded segment's state; false if it is not recorded.
    async fn set_segment_state(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        state: RemoteState,
    ) -> Result<bool, IndexError>;
    /// Durably marks a recorded segment retired (the collector removed it
    /// locally): its copies are in segments of the same plane up to
    /// `moved_to`. False if it is not recorded.
    async fn retire_segment(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        moved_to: u64,
    ) -> Result<bool, IndexError>;
    /// A node's retired segments: `(plane, id, moved_to)`.
    async fn retired_segments(&self, node: &str) -> Result<Vec<(String, u64, u64)>, IndexError>;
    /// A node's recorded segments, by plane and id.
    async fn segments(&self, node: &str) -> Result<Vec<RemoteSegment>, IndexError>;
    /// Forgets segments `(plane, id)` of `node` and, in the same
    /// transaction, queues their remote objects for deletion. Returns how
    /// many were recorded.
    async fn forget_segments(
        &self,
        node: &str,
        segments: &[(String, u64)],
        now_ms: i64,
    ) -> Result<u64, IndexError>;
    /// Queued deletes whose time has come, oldest first.
    async fn due_deletes(&self, now_ms: i64, max: usize) -> Result<Vec<PendingDelete>, IndexError>;
    /// The remote object is gone: drops the queued delete.
    async fn finish_delete(&self, id: i64) -> Result<(), IndexError>;
    /// A delete failed: counts the attempt and holds it until
    /// `not_before_ms`.
    async fn retry_delete(
        &self,
        id: i64,
        not_before_ms: i64,
        error: &str,
    ) -> Result<(), IndexError>;
    /// Deletes queued, due or not.
    async fn pending_deletes(&self) -> Result<u64, IndexError>;
    async fn set_shipped_head(&self, head: &ShippedHead) -> Result<(), IndexError>;
    async fn shipped_heads(&self) -> Result<Vec<ShippedHead>, IndexError>;
    /// Removes a bucket and everything the index holds for it, empty or
    /// not (rebuilding a node from its remote copy). False if absent.
    async fn purge_bucket(&self, name: &str) -> Result<bool, IndexError>;
}
