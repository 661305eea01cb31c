//! What each listing scans, shared by the backends' SQL: the columns, the
//! row order, and the column after `key` that a version or upload cursor
//! continues from. Only how "live objects only" is spelled differs
//! between dialects.

pub(crate) struct ScanSql {
    pub select: &'static str,
    /// Only latest versions that are not delete markers (ListObjects).
    pub live_only: bool,
    pub order: &'static str,
    pub second: &'static str,
}

pub(crate) const OBJECTS: ScanSql = ScanSql {
    select: "SELECT key, version_id, size, etag, last_modified, ord FROM versions",
    live_only: true,
    order: "key",
    second: "ord",
};

pub(crate) const VERSIONS: ScanSql = ScanSql {
    select: "SELECT key, version_id, size, etag, last_modified, ord, is_latest, is_delete_marker FROM versions",
    live_only: false,
    order: "key, ord",
    second: "ord",
};

pub(crate) const UPLOADS: ScanSql = ScanSql {
    select: "SELECT upload_id, key, initiated, meta, seq FROM uploads",
    live_only: false,
    order: "key, seq",
    second: "seq",
};
