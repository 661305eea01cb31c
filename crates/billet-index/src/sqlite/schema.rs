//! Table definitions. Keys are BLOBs so that ordering and range bounds are
//! bytewise, whatever bytes a bound holds.

use rusqlite::Connection;

use crate::error::IndexError;

pub(super) const REGISTRY: &str = "
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS segments (
    plane TEXT NOT NULL,
    id INTEGER NOT NULL,
    state TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    blocks INTEGER NOT NULL,
    sealed INTEGER,
    shipped INTEGER,
    remote_key TEXT,
    PRIMARY KEY (plane, id)
);
CREATE TABLE IF NOT EXISTS node (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    log_checkpoint INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_deletes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    remote_key TEXT NOT NULL,
    enqueued INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
";

/// Changes to the registry after the first shape, applied in order;
/// `PRAGMA user_version` counts those applied.
pub(super) const REGISTRY_MIGRATIONS: &[&str] = &[
    "
-- The cold tier: segments whose whole copy the remote holds, per node.
-- (The first `segments` table was never written.)
DROP TABLE IF EXISTS segments;
CREATE TABLE segments (
    node TEXT NOT NULL,
    plane TEXT NOT NULL,
    id INTEGER NOT NULL,
    state TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    remote_key TEXT NOT NULL,
    sidecar_key TEXT NOT NULL,
    sha256 BLOB,
    shipped INTEGER NOT NULL,
    PRIMARY KEY (node, plane, id)
);
ALTER TABLE pending_deletes ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_deletes ADD COLUMN last_error TEXT;
CREATE TABLE shipped_heads (
    bucket TEXT PRIMARY KEY,
    head BLOB NOT NULL,
    seq INTEGER NOT NULL,
    shipped INTEGER NOT NULL
);
",
    "
-- History retention per bucket (NULL: the node default); segments the
-- collector retired wait, as 'retired', until the segments holding their
-- copies are shipped (moved_to: the newest of those, same plane).
ALTER TABLE buckets ADD COLUMN retain_secs INTEGER;
ALTER TABLE buckets ADD COLUMN retain_commits INTEGER;
ALTER TABLE segments ADD COLUMN moved_to INTEGER;
",
    "
-- Access control: a bucket's access configuration (policy, public access
-- block, ownership controls, ACL, CORS; one row each, by name), what each
-- key may do on which bucket, and keys limited to their grants.
CREATE TABLE bucket_settings (
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);
CREATE TABLE key_grants (
    key_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    can_read INTEGER NOT NULL,
    can_write INTEGER NOT NULL,
    can_own INTEGER NOT NULL,
    PRIMARY KEY (key_id, bucket)
);
ALTER TABLE access_keys ADD COLUMN limited INTEGER NOT NULL DEFAULT 0;
",
];

/// Applies the registry migrations it lacks, each in its own transaction.
pub(super) fn migrate_registry(conn: &mut Connection) -> Result<(), IndexError> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, step) in REGISTRY_MIGRATIONS
        .iter()
        .enumerate()
        .skip(done.max(0) as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// One bucket's file: its head (`meta`), object versions, multipart state
/// and MMR nodes. `versions.ord` orders a key's versions, smaller = newer.
pub(super) const BUCKET: &str = "
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    name TEXT NOT NULL,
    head BLOB NOT NULL,
    seq INTEGER NOT NULL,
    settings BLOB NOT NULL,
    next_ord INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    key BLOB NOT NULL,
    ord INTEGER NOT NULL,
    version_id TEXT NOT NULL,
    is_latest INTEGER NOT NULL,
    is_delete_marker INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    manifest_cid BLOB NOT NULL,
    manifest BLOB NOT NULL,
    PRIMARY KEY (key, ord)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions (key, version_id);
-- ListObjects reads only this covering index.
CREATE INDEX IF NOT EXISTS current_objects
    ON versions (key, version_id, size, etag, last_modified, ord)
    WHERE is_latest = 1 AND is_delete_marker = 0;
CREATE TABLE IF NOT EXISTS uploads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    upload_id TEXT NOT NULL UNIQUE,
    key BLOB NOT NULL,
    initiated INTEGER NOT NULL,
    meta BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (key, seq);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    root BLOB NOT NULL,
    last_modified INTEGER NOT NULL,
    meta BLOB NOT NULL,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mmr (
    pos INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY,
    cid BLOB NOT NULL,
    time INTEGER NOT NULL
);
";

/// WAL, no fsync per transaction (the log is the redo log; see
/// `SqliteIndex::set_log_checkpoint` for when bucket files are made
/// durable), and a wait instead of an error when another connection holds
/// the write lock.
pub(super) fn configure(conn: &Connection) -> Result<(), IndexError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}
