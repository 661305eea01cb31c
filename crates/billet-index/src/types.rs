use billet_block::Cid;
use billet_records::{BucketSettings, Manifest};

/// The version id S3 gives objects written while versioning is off.
pub const NULL_VERSION: &str = "null";

/// A bucket as listed (registry only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
}

/// A bucket with its head: what the commit pipeline starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
    /// CID of the newest commit.
    pub head: Cid,
    /// Sequence number of the head commit.
    pub seq: u64,
    pub settings: BucketSettings,
}

/// One version of one object as the index holds it: the manifest and where
/// it stands among the key's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    /// `"null"` for the S3 null version.
    pub version_id: String,
    pub is_latest: bool,
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    /// Position among the bucket's versions, smaller = newer. Opaque; used
    /// for version-id markers.
    pub order: i64,
}

impl ObjectVersion {
    pub fn is_delete_marker(&self) -> bool {
        self.manifest.delete_marker
    }

    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    pub fn etag(&self) -> &str {
        &self.manifest.etag
    }

    /// Last-Modified, ms since the Unix epoch.
    pub fn last_modified_ms(&self) -> i64 {
        self.manifest.created
    }
}

/// A change to a bucket's object rows, applied inside a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// A new version becomes the key's latest. A version with the same id
    /// (the null version) is replaced.
    Put {
        key: String,
        version_id: String,
        manifest_cid: Cid,
        manifest: Manifest,
    },
    /// Removes one version; the newest remaining one becomes latest.
    Delete { key: String, version_id: String },
    /// Replaces an existing version's manifest in place (tags changed);
    /// the version keeps its position.
    Replace {
        key: String,
        version_id: String,
        manifest_cid: Cid,
        manifest: Manifest,
    },
}

/// One commit of a bucket as the index records it: the commit MMR's
/// leaves in order, and what history retention decides on. Kept for
/// every commit the MMR holds (the commit blocks are kept too: recovery
/// rebuilds the MMR from them, and a proof about a commit whose tree was
/// collected can still show the commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRow {
    pub seq: u64,
    pub cid: Cid,
    /// The commit's `time`, ms since the Unix epoch.
    pub time_ms: i64,
}

/// How much history a bucket keeps readable; a field left `None` takes
/// the node's default. A commit stays if it is younger than `keep_secs`
/// or among the newest `keep_commits` (the head always stays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_secs: Option<u64>,
    pub keep_commits: Option<u64>,
}

impl Retention {
    /// A bucket's own retention from its two columns (`None` when neither
    /// is set).
    pub(crate) fn from_columns(secs: Option<i64>, commits: Option<i64>) -> Option<Retention> {
        (secs.is_some() || commits.is_some()).then(|| Retention {
            keep_secs: secs.map(|v| v.max(0) as u64),
            keep_commits: commits.map(|v| v.max(0) as u64),
        })
    }
}

/// Everything one commit changes, applied in one transaction: the head
/// moves from `expected_head` to `head` (compare-and-swap) or nothing does.
#[derive(Debug, Clone)]
pub struct CommitBatch {
    pub bucket: String,
    pub expected_head: Cid,
    pub head: Cid,
    pub seq: u64,
    /// New settings, when the commit changes them.
    pub settings: Option<BucketSettings>,
    pub changes: Vec<RowChange>,
    /// Multipart uploads this commit completes: their rows go, and the
    /// commit fails with `NoSuchUpload` if one is already gone (aborted).
    pub completed_uploads: Vec<String>,
    /// MMR nodes appended by this commit: (position, hash), positions
    /// continuing the bucket's MMR without gaps.
    pub mmr: Vec<(u64, [u8; 32])>,
    /// The commits whose MMR leaves this batch appends, recorded (or
    /// recorded again) in the same transaction.
    pub commits: Vec<CommitRow>,
}

/// ListObjects / ListObjectsV2 parameters (markers already decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Start strictly after this key (marker, start-after, continuation).
    pub after: Option<String>,
    pub max_keys: usize,
}

/// A version as listings show it (no manifest decoding needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    /// See [`ObjectVersion::order`].
    pub order: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectSummary>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned, when truncated: where the
    /// next page starts (exclusive).
    pub next_after: Option<String>,
}

/// ListObjectVersions parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    pub versions: Vec<ObjectSummary>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// A multipart upload in progress. `meta` is the engine's (content type,
/// user metadata, tags, checksum algorithm...), opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub meta: Vec<u8>,
}

/// One uploaded part: its UnixFS subtree and what S3 reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub root: Cid,
    pub last_modified_ms: i64,
    /// Engine data (subtree size, checksums), opaque here.
    pub meta: Vec<u8>,
}

/// ListMultipartUploads parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    pub max_uploads: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPage {
    pub uploads: Vec<Upload>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartPage {
    pub parts: Vec<Part>,
    pub truncated: bool,
    pub next_part_number_marker: Option<u32>,
}

/// An S3 access key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub owner: String,
    pub created_ms: i64,
    pub disabled: bool,
    /// A limited key acts only through its grants: not as its owner on
    /// the owner's buckets, and it creates no bucket.
    pub limited: bool,
}

/// What one access key may do on one bucket (`bucket` `*`: every bucket
/// of the key's owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key_id: String,
    pub bucket: String,
    /// Read objects, versions, tags and listings.
    pub read: bool,
    /// Write and delete objects, uploads and tags.
    pub write: bool,
    /// Everything the bucket's owner may do, but delete the bucket's
    /// identity: its configuration (policy, ACLs, CORS, versioning...).
    pub owner: bool,
}

/// Where a shipped segment's remote copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteState {
    /// On the remote and still on local disk.
    Shipped,
    /// On the remote only.
    Evicted,
    /// Removed locally by the collector, its live blocks copied into newer
    /// segments; its remote objects are deleted once those have shipped.
    Retired,
}

impl RemoteState {
    pub fn name(self) -> &'static str {
        match self {
            RemoteState::Shipped => "shipped",
            RemoteState::Evicted => "evicted",
            RemoteState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<RemoteState> {
        match s {
            "shipped" => Some(RemoteState::Shipped),
            "evicted" => Some(RemoteState::Evicted),
            "retired" => Some(RemoteState::Retired),
            _ => None,
        }
    }
}

/// A log segment whose whole copy the remote holds: recorded only after
/// the upload completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSegment {
    /// The node whose log it belongs to.
    pub node: String,
    /// `data` or `catalog`.
    pub plane: String,
    pub id: u64,
    pub state: RemoteState,
    /// Length of the segment (its CAR file).
    pub bytes: u64,
    /// Length of the object on the remote (compressed, when it is).
    pub stored_bytes: u64,
    /// `identity` or `zstd`.
    pub encoding: String,
    pub remote_key: String,
    pub sidecar_key: String,
    /// SHA-256 of the stored object, when known.
    pub sha256: Option<[u8; 32]>,
    pub shipped_ms: i64,
}

/// A remote object to delete, queued in the same transaction that made it
/// unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelete {
    pub id: i64,
    pub remote_key: String,
    pub enqueued_ms: i64,
    pub attempts: u32,
    /// Not to be tried before this time.
    pub not_before_ms: i64,
    pub last_error: Option<String>,
}

/// A bucket's newest head whose blocks are all on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedHead {
    pub bucket: String,
    pub head: Cid,
    pub seq: u64,
    pub shipped_ms: i64,
}
