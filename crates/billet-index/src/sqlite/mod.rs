//! The embedded index: `registry.db` plus one `buckets/<name>.db` per
//! bucket, WAL mode, opened through a bounded LRU pool.

mod access;
mod bucket;
mod cold;
mod pool;
mod registry;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use billet_block::Cid;
use billet_records::BucketSettings;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::IndexError;
use crate::tx::{BucketTx, Durability};
use crate::types::*;
use crate::{Index, RebuildRows, rules};
use bucket::SqliteTx;
use pool::{BucketDb, Pool};

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Directory holding `registry.db` and `buckets/`.
    pub dir: PathBuf,
    /// Bucket databases kept open at most.
    pub max_open_buckets: usize,
}

impl SqliteConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            dir: dir.into(),
            max_open_buckets: 256,
        }
    }
}

#[derive(Debug)]
struct Inner {
    buckets_dir: PathBuf,
    registry: Mutex<Connection>,
    pool: Pool,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SqliteIndex {
    inner: Arc<Inner>,
}

/// A file name for a bucket: S3 bucket names are already safe, but the
/// index does not rely on callers having checked.
fn file_name(bucket: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + 3);
    for b in bucket.bytes() {
        if b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'-'
            || (b == b'.' && !out.is_empty())
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out.push_str(".db");
    out
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Connection> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, bucket: &str) -> PathBuf {
        self.buckets_dir.join(file_name(bucket))
    }

    fn bucket(&self, name: &str) -> Result<Arc<BucketDb>, IndexError> {
        let path = self.path(name);
        // Only registered buckets have files worth opening.
        if !path.exists() || registry::bucket_entry(&self.registry(), name)?.is_none() {
            return Err(IndexError::NoSuchBucket(name.to_string()));
        }
        self.pool.get(name, &path)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

impl SqliteIndex {
    /// Opens (creating if needed) the index in `config.dir`. Bucket files
    /// without a registry entry (a crash between creating the file and
    /// registering it) are removed.
    pub fn open(config: SqliteConfig) -> Result<Self, IndexError> {
        let io = |op, path: &Path, source| IndexError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let buckets_dir = config.dir.join("buckets");
        std::fs::create_dir_all(&buckets_dir).map_err(|e| io("creating", &buckets_dir, e))?;
        let mut conn = Connection::open(config.dir.join("registry.db"))?;
        schema::configure(&conn)?;
        // The registry is written rarely (buckets, keys, the
        // replay point) and is not rebuilt from the log: every write is
        // durable before it returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(schema::REGISTRY)?;
        schema::migrate_registry(&mut conn)?;
        let known: std::collections::HashSet<String> = registry::buckets(&conn)?
            .into_iter()
            .map(|b| file_name(&b.name))
            .collect();
        for entry in std::fs::read_dir(&buckets_dir).map_err(|e| io("listing", &buckets_dir, e))? {
            let entry = entry.map_err(|e| io("listing", &buckets_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".db") && !known.contains(&name) {
                remove_db_files(&entry.path());
            }
        }
        Ok(SqliteIndex {
            inner: Arc::new(Inner {
                buckets_dir,
                registry: Mutex::new(conn),
                pool: Pool::new(config.max_open_buckets),
            }),
        })
    }

    /// Bucket databases currently open.
    pub fn open_buckets(&self) -> usize {
        self.inner.pool.open_count()
    }

    async fn with_bucket<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Connection) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || {
            let db = inner.bucket(&name)?;
            let mut conn = db.lock();
            f(&mut conn)
        })
        .await
    }

    async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let inner = self.inner.clone();
        blocking(move || f(&inner.registry())).await
    }
}

impl rules::RunTx for SqliteIndex {
    /// Runs a rule over the bucket's rows, reading.
    async fn read<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.with_bucket(name, move |c| f(&mut SqliteTx(c))).await
    }

    /// Runs a rule over the bucket's rows in one write transaction,
    /// committed if the rule succeeds; with `Durable`, the commit is on
    /// disk when this returns.
    async fn write<T: Send + 'static>(
        &self,
        name: &str,
        durability: Durability,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.with_bucket(name, move |c| {
            let durable = durability == Durability::Durable;
            if durable {
                c.pragma_update(None, "synchronous", "FULL")?;
            }
            let out = (|| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = f(&mut SqliteTx(&tx))?;
                tx.commit()?;
                Ok(out)
            })();
            if durable {
                c.pragma_update(None, "synchronous", "OFF")?;
            }
            out
        })
        .await
    }
}

#[async_trait]
impl Index for SqliteIndex {
    async fn replay_from(&self) -> Result<u64, IndexError> {
        let inner = self.inner.clone();
        blocking(move || {
            let reg = inner.registry();
            let v: Option<i64> = reg
                .query_row("SELECT log_checkpoint FROM node WHERE id = 0", [], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(v.map_or(0, |v| v as u64))
        })
        .await
    }

    /// Flushes every open bucket file that was used since its last flush
    /// (evicted ones were flushed as they closed), then writes the
    /// replay point to the registry, whose writes are always durable.
    async fn set_replay_from(&self, segment: u64) -> Result<(), IndexError> {
        let inner = self.inner.clone();
        blocking(move || {
            for db in inner.pool.all() {
                db.flush()?;
            }
            inner.registry().execute(
                "INSERT INTO node (id, log_checkpoint) VALUES (0, ?1)
                 ON CONFLICT (id) DO UPDATE SET log_checkpoint = excluded.log_checkpoint",
                params![segment as i64],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_bucket(&self, b: &BucketState) -> Result<(), IndexError> {
        let inner = self.inner.clone();
        let b = b.clone();
        blocking(move || {
            // The registry lock serializes creations and deletions.
            let reg = inner.registry();
            if registry::bucket_entry(&reg, &b.name)?.is_some() {
                return Err(IndexError::BucketExists(b.name.clone()));
            }
            let path = inner.path(&b.name);
            remove_db_files(&path);
            let result = (|| {
                let conn = Connection::open(&path)?;
                schema::configure(&conn)?;
                // The new file is durable before the registry names it.
                conn.pragma_update(None, "synchronous", "FULL")?;
                bucket::init(&conn, &b)?;
                reg.execute(
                    "INSERT INTO buckets (name, owner, created) VALUES (?1, ?2, ?3)",
                    params![b.name, b.owner, b.created_ms],
                )?;
                Ok(())
            })();
            if result.is_err() {
                remove_db_files(&path);
            }
            result
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), IndexError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || {
            let reg = inner.registry();
            if registry::bucket_entry(&reg, &name)?.is_none() {
                return Err(IndexError::NoSuchBucket(name));
            }
            let path = inner.path(&name);
            {
                let db = inner.pool.get(&name, &path)?;
                let conn = db.lock();
                if !bucket::is_empty(&conn)? {
                    return Err(IndexError::BucketNotEmpty(name));
                }
            }
            registry::forget_bucket(&reg, &name)?;
            inner.pool.forget(&name);
            remove_db_files(&path);
            Ok(())
        })
        .await
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketState>, IndexError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || {
            let Some(entry) = registry::bucket_entry(&inner.registry(), &name)? else {
                return Ok(None);
            };
            let db = inner.pool.get(&name, &inner.path(&name))?;
            let (head, seq, settings) = bucket::head(&db.lock())?;
            Ok(Some(BucketState {
                name: entry.name,
                owner: entry.owner,
                created_ms: entry.created_ms,
                head,
                seq,
                settings,
            }))
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketEntry>, IndexError> {
        self.with_registry(registry::buckets).await
    }

    async fn commit(&self, batch: CommitBatch) -> Result<(), IndexError> {
        rules::commit(self, batch).await
    }

    async fn object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>, IndexError> {
        let key = key.to_string();
        let version = version_id.map(str::to_string);
        self.with_bucket(bucket, move |c| bucket::object(c, &key, version.as_deref()))
            .await
    }

    async fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<ListPage, IndexError> {
        rules::list_objects(self, bucket, query).await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        query: &VersionQuery,
    ) -> Result<VersionPage, IndexError> {
        rules::list_versions(self, bucket, query).await
    }

    async fn rebuild(
        &self,
        bucket: &str,
        head: Cid,
        seq: u64,
        settings: &BucketSettings,
        rows: RebuildRows,
    ) -> Result<u64, IndexError> {
        rules::rebuild(self, bucket, head, seq, settings, rows).await
    }

    async fn create_upload(&self, bucket: &str, upload: &Upload) -> Result<(), IndexError> {
        rules::create_upload(self, bucket, upload).await
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Option<Upload>, IndexError> {
        let id = upload_id.to_string();
        self.with_bucket(bucket, move |c| bucket::upload(c, &id))
            .await
    }

    async fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: &Part,
    ) -> Result<Option<Part>, IndexError> {
        rules::put_part(self, bucket, upload_id, part).await
    }

    async fn parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartPage, IndexError> {
        rules::parts(self, bucket, upload_id, after, max).await
    }

    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<Part>, IndexError> {
        rules::abort_upload(self, bucket, upload_id).await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        query: &UploadQuery,
    ) -> Result<UploadPage, IndexError> {
        rules::list_uploads(self, bucket, query).await
    }

    async fn stale_uploads(
        &self,
        bucket: &str,
        before_ms: i64,
        max: usize,
    ) -> Result<Vec<Upload>, IndexError> {
        self.with_bucket(bucket, move |c| bucket::stale_uploads(c, before_ms, max))
            .await
    }

    async fn mmr_size(&self, bucket: &str) -> Result<u64, IndexError> {
        self.with_bucket(bucket, |c| bucket::mmr_size(c)).await
    }

    async fn mmr_nodes(
        &self,
        bucket: &str,
        positions: &[u64],
    ) -> Result<Vec<Option<[u8; 32]>>, IndexError> {
        let p = positions.to_vec();
        self.with_bucket(bucket, move |c| bucket::mmr_nodes(c, &p))
            .await
    }

    async fn commits(
        &self,
        bucket: &str,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<CommitRow>, IndexError> {
        rules::commits(self, bucket, from_seq, max).await
    }

    async fn put_commits(&self, bucket: &str, rows: Vec<CommitRow>) -> Result<(), IndexError> {
        rules::put_commits(self, bucket, rows).await
    }

    async fn retention(&self, bucket: &str) -> Result<Option<Retention>, IndexError> {
        let name = bucket.to_string();
        self.with_registry(move |c| registry::retention(c, &name))
            .await
    }

    async fn set_retention(
        &self,
        bucket: &str,
        retention: Option<Retention>,
    ) -> Result<bool, IndexError> {
        let name = bucket.to_string();
        self.with_registry(move |c| registry::set_retention(c, &name, retention))
            .await
    }

    async fn put_access_key(&self, key: &AccessKey) -> Result<(), IndexError> {
        let k = key.clone();
        self.with_registry(move |c| registry::put_access_key(c, &k))
            .await
    }

    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, IndexError> {
        let id = id.to_string();
        self.with_registry(move |c| registry::access_key(c, &id))
            .await
    }

    async fn access_keys(&self) -> Result<Vec<AccessKey>, IndexError> {
        self.with_registry(registry::access_keys).await
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool, IndexError> {
        let id = id.to_string();
        self.with_registry(move |c| registry::delete_access_key(c, &id))
            .await
    }

    async fn bucket_settings(&self, bucket: &str) -> Result<Vec<(String, String)>, IndexError> {
        let bucket = bucket.to_string();
        self.with_registry(move |c| access::bucket_settings(c, &bucket))
            .await
    }

    async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<bool, IndexError> {
        let (bucket, name) = (bucket.to_string(), name.to_string());
        let value = value.map(str::to_string);
        self.with_registry(move |c| access::set_bucket_setting(c, &bucket, &name, value.as_deref()))
            .await
    }

    async fn grants(&self, key_id: Option<&str>) -> Result<Vec<Grant>, IndexError> {
        let key_id = key_id.map(str::to_string);
        self.with_registry(move |c| access::grants(c, key_id.as_deref()))
            .await
    }

    async fn set_grant(&self, grant: &Grant) -> Result<(), IndexError> {
        let grant = grant.clone();
        self.with_registry(move |c| access::set_grant(c, &grant))
            .await
    }

    async fn put_segment(&self, segment: &RemoteSegment) -> Result<(), IndexError> {
        let s = segment.clone();
        self.with_registry(move |c| cold::put_segment(c, &s)).await
    }

    async fn set_segment_state(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        state: RemoteState,
    ) -> Result<bool, IndexError> {
        let (node, plane) = (node.to_string(), plane.to_string());
        self.with_registry(move |c| cold::set_segment_state(c, &node, &plane, id, state))
            .await
    }

    async fn retire_segment(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        moved_to: u64,
    ) -> Result<bool, IndexError> {
        let (node, plane) = (node.to_string(), plane.to_string());
        self.with_registry(move |c| cold::retire_segment(c, &node, &plane, id, moved_to))
            .await
    }

    async fn retired_segments(&self, node: &str) -> Result<Vec<(String, u64, u64)>, IndexError> {
        let node = node.to_string();
        self.with_registry(move |c| cold::retired_segments(c, &node))
            .await
    }

    async fn segments(&self, node: &str) -> Result<Vec<RemoteSegment>, IndexError> {
        let node = node.to_string();
        self.with_registry(move |c| cold::segments(c, &node)).await
    }

    async fn forget_segments(
        &self,
        node: &str,
        segments: &[(String, u64)],
        now_ms: i64,
    ) -> Result<u64, IndexError> {
        let (node, which) = (node.to_string(), segments.to_vec());
        self.with_registry(move |c| cold::forget_segments(c, &node, &which, now_ms))
            .await
    }

    async fn due_deletes(&self, now_ms: i64, max: usize) -> Result<Vec<PendingDelete>, IndexError> {
        self.with_registry(move |c| cold::due_deletes(c, now_ms, max))
            .await
    }

    async fn finish_delete(&self, id: i64) -> Result<(), IndexError> {
        self.with_registry(move |c| cold::finish_delete(c, id))
            .await
    }

    async fn retry_delete(
        &self,
        id: i64,
        not_before_ms: i64,
        error: &str,
    ) -> Result<(), IndexError> {
        let error = error.to_string();
        self.with_registry(move |c| cold::retry_delete(c, id, not_before_ms, &error))
            .await
    }

    async fn pending_deletes(&self) -> Result<u64, IndexError> {
        self.with_registry(cold::pending_deletes).await
    }

    async fn set_shipped_head(&self, head: &ShippedHead) -> Result<(), IndexError> {
        let h = head.clone();
        self.with_registry(move |c| cold::set_shipped_head(c, &h))
            .await
    }

    async fn shipped_heads(&self) -> Result<Vec<ShippedHead>, IndexError> {
        self.with_registry(cold::shipped_heads).await
    }

    async fn purge_bucket(&self, name: &str) -> Result<bool, IndexError> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || {
            let reg = inner.registry();
            if registry::bucket_entry(&reg, &name)?.is_none() {
                return Ok(false);
            }
            registry::forget_bucket(&reg, &name)?;
            inner.pool.forget(&name);
            remove_db_files(&inner.path(&name));
            Ok(true)
        })
        .await
    }
}
