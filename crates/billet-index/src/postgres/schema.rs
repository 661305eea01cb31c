//! Migrations, applied in order on start under an advisory lock so that
//! several nodes starting at once apply each exactly once.

pub(super) const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE buckets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created BIGINT NOT NULL,
    head BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    settings BYTEA NOT NULL,
    next_ord BIGINT NOT NULL DEFAULT -1
);
CREATE TABLE versions (
    bucket TEXT NOT NULL,
    key BYTEA NOT NULL,
    ord BIGINT NOT NULL,
    version_id TEXT NOT NULL,
    is_latest BOOLEAN NOT NULL,
    is_delete_marker BOOLEAN NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified BIGINT NOT NULL,
    manifest_cid BYTEA NOT NULL,
    manifest BYTEA NOT NULL,
    PRIMARY KEY (bucket, key, ord)
);
CREATE UNIQUE INDEX versions_by_id ON versions (bucket, key, version_id);
CREATE INDEX current_objects ON versions (bucket, key)
    INCLUDE (version_id, size, etag, last_modified, ord)
    WHERE is_latest AND NOT is_delete_marker;
CREATE TABLE uploads (
    seq BIGSERIAL PRIMARY KEY,
    bucket TEXT NOT NULL,
    upload_id TEXT NOT NULL UNIQUE,
    key BYTEA NOT NULL,
    initiated BIGINT NOT NULL,
    meta BYTEA NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, seq);
CREATE TABLE parts (
    upload_id TEXT NOT NULL,
    number INT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    root BYTEA NOT NULL,
    last_modified BIGINT NOT NULL,
    meta BYTEA NOT NULL,
    PRIMARY KEY (upload_id, number)
);
CREATE TABLE mmr (
    bucket TEXT NOT NULL,
    pos BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (bucket, pos)
);
CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    owner TEXT NOT NULL,
    created BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE segments (
    plane TEXT NOT NULL,
    id BIGINT NOT NULL,
    state TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    blocks BIGINT NOT NULL,
    sealed BIGINT,
    shipped BIGINT,
    remote_key TEXT,
    PRIMARY KEY (plane, id)
);
CREATE TABLE pending_deletes (
    id BIGSERIAL PRIMARY KEY,
    remote_key TEXT NOT NULL,
    enqueued BIGINT NOT NULL,
    attempts INT NOT NULL DEFAULT 0
);
",
    "
CREATE TABLE node (
    id INT PRIMARY KEY CHECK (id = 0),
    log_checkpoint BIGINT NOT NULL
);
",
    "
-- The cold tier: segments whose whole copy the remote holds, per node.
-- (The first `segments` table was never written.)
DROP TABLE segments;
CREATE TABLE segments (
    node TEXT NOT NULL,
    plane TEXT NOT NULL,
    id BIGINT NOT NULL,
    state TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    encoding TEXT NOT NULL,
    remote_key TEXT NOT NULL,
    sidecar_key TEXT NOT NULL,
    sha256 BYTEA,
    shipped BIGINT NOT NULL,
    PRIMARY KEY (node, plane, id)
);
ALTER TABLE pending_deletes ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pending_deletes ADD COLUMN last_error TEXT;
CREATE TABLE shipped_heads (
    bucket TEXT PRIMARY KEY,
    head BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    shipped BIGINT NOT NULL
);
",
    "
-- Every commit the MMR holds; history retention per bucket (NULL: the
-- node default); retired segments wait for their copies to ship.
CREATE TABLE commits (
    bucket TEXT NOT NULL,
    seq BIGINT NOT NULL,
    cid BYTEA NOT NULL,
    time BIGINT NOT NULL,
    PRIMARY KEY (bucket, seq)
);
ALTER TABLE buckets ADD COLUMN retain_secs BIGINT;
ALTER TABLE buckets ADD COLUMN retain_commits BIGINT;
ALTER TABLE segments ADD COLUMN moved_to BIGINT;
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
    can_read BOOLEAN NOT NULL,
    can_write BOOLEAN NOT NULL,
    can_own BOOLEAN NOT NULL,
    PRIMARY KEY (key_id, bucket)
);
ALTER TABLE access_keys ADD COLUMN limited BOOLEAN NOT NULL DEFAULT false;
",
];

/// Arbitrary constant naming billet's migration lock.
pub(super) const MIGRATION_LOCK: i64 = 0x6269_6c6c_6574;
