//! The scale-out index: one PostgreSQL schema shared by every node, with
//! migrations applied on start and a connection pool. Point reads run
//! asynchronously; everything with rules runs the shared rules over
//! [`bucket::PgTx`] on a blocking thread.

mod access;
mod bucket;
mod cold;
mod connect;
mod registry;
mod rows;
mod schema;

use async_trait::async_trait;
use billet_block::Cid;
use billet_records::BucketSettings;
use deadpool_postgres::{Object, Pool};

use crate::error::IndexError;
use crate::tx::{BucketTx, Durability};
use crate::types::*;
use crate::{Index, RebuildRows, rules};
use bucket::PgTx;
use connect::pool_err;

#[derive(Debug, Clone)]
pub struct PgConfig {
    /// e.g. `postgres://user@127.0.0.1:5432/billet`
    pub url: String,
    /// Schema holding billet's tables (created if missing).
    pub schema: String,
    pub pool_size: usize,
}

/// See the module documentation.
#[derive(Clone)]
pub struct PgIndex {
    pool: Pool,
}

impl std::fmt::Debug for PgIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIndex")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgIndex {
    /// Connects, creates the schema if needed and applies migrations.
    pub async fn open(config: PgConfig) -> Result<Self, IndexError> {
        let index = PgIndex {
            pool: connect::pool(&config)?,
        };
        connect::migrate(&mut index.client().await?, &config.schema).await?;
        Ok(index)
    }

    async fn client(&self) -> Result<Object, IndexError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// Drops the whole schema (tests use a throwaway schema per run).
    pub async fn drop_schema(&self, schema_name: &str) -> Result<(), IndexError> {
        if !connect::valid_schema(schema_name) {
            return Err(IndexError::Pool(format!("bad schema name {schema_name:?}")));
        }
        self.client()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
            .await?;
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?
}

impl rules::RunTx for PgIndex {
    /// Runs a rule over the bucket's rows, reading (no transaction: each
    /// scan sees the latest committed state, as a listing does anyway).
    async fn read<T: Send + 'static>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let pool = self.pool.clone();
        let bucket = bucket.to_string();
        let rt = tokio::runtime::Handle::current();
        blocking(move || {
            let c = rt.block_on(pool.get()).map_err(pool_err)?;
            rt.block_on(bucket::require_bucket(&c, &bucket))?;
            f(&mut PgTx {
                c: &c,
                bucket: &bucket,
                rt: &rt,
            })
        })
        .await
    }

    /// Runs a rule over the bucket's rows in one transaction, committed if
    /// the rule succeeds; with `Durable`, committed with
    /// `synchronous_commit = on`.
    async fn write<T: Send + 'static>(
        &self,
        bucket: &str,
        durability: Durability,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let pool = self.pool.clone();
        let bucket = bucket.to_string();
        let rt = tokio::runtime::Handle::current();
        blocking(move || {
            let mut c = rt.block_on(pool.get()).map_err(pool_err)?;
            let tx = rt.block_on(c.transaction())?;
            if durability == Durability::Durable {
                rt.block_on(tx.batch_execute("SET LOCAL synchronous_commit = on"))?;
            }
            rt.block_on(bucket::require_bucket(&tx, &bucket))?;
            let out = f(&mut PgTx {
                c: &tx,
                bucket: &bucket,
                rt: &rt,
            })?;
            rt.block_on(tx.commit())?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Index for PgIndex {
    async fn replay_from(&self) -> Result<u64, IndexError> {
        registry::replay_from(&self.client().await?).await
    }

    async fn set_replay_from(&self, segment: u64) -> Result<(), IndexError> {
        registry::set_replay_from(&mut self.client().await?, segment).await
    }

    async fn create_bucket(&self, b: &BucketState) -> Result<(), IndexError> {
        registry::create_bucket(&self.client().await?, b).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), IndexError> {
        registry::delete_bucket(&mut self.client().await?, name).await
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketState>, IndexError> {
        registry::bucket(&self.client().await?, name).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketEntry>, IndexError> {
        registry::buckets(&self.client().await?).await
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
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT retain_secs, retain_commits FROM buckets WHERE name = $1",
                &[&bucket],
            )
            .await?;
        Ok(match row {
            Some(r) => Retention::from_columns(r.try_get(0)?, r.try_get(1)?),
            None => None,
        })
    }

    async fn set_retention(
        &self,
        bucket: &str,
        retention: Option<Retention>,
    ) -> Result<bool, IndexError> {
        let r = retention.unwrap_or_default();
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE buckets SET retain_secs = $2, retain_commits = $3 WHERE name = $1",
                &[
                    &bucket,
                    &r.keep_secs.map(|v| v as i64),
                    &r.keep_commits.map(|v| v as i64),
                ],
            )
            .await?;
        Ok(n > 0)
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
        bucket::object(&self.client().await?, bucket, key, version_id).await
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
        bucket::upload(&self.client().await?, bucket, upload_id).await
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
        bucket::stale_uploads(&self.client().await?, bucket, before_ms, max).await
    }

    async fn mmr_size(&self, bucket: &str) -> Result<u64, IndexError> {
        let c = self.client().await?;
        bucket::require_bucket(&c, bucket).await?;
        bucket::mmr_size(&c, bucket).await
    }

    async fn mmr_nodes(
        &self,
        bucket: &str,
        positions: &[u64],
    ) -> Result<Vec<Option<[u8; 32]>>, IndexError> {
        bucket::mmr_nodes(&self.client().await?, bucket, positions).await
    }

    async fn put_access_key(&self, key: &AccessKey) -> Result<(), IndexError> {
        registry::put_access_key(&self.client().await?, key).await
    }

    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, IndexError> {
        registry::access_key(&self.client().await?, id).await
    }

    async fn access_keys(&self) -> Result<Vec<AccessKey>, IndexError> {
        registry::access_keys(&self.client().await?).await
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool, IndexError> {
        registry::delete_access_key(&self.client().await?, id).await
    }

    async fn bucket_settings(&self, bucket: &str) -> Result<Vec<(String, String)>, IndexError> {
        access::bucket_settings(&self.client().await?, bucket).await
    }

    async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<bool, IndexError> {
        access::set_bucket_setting(&self.client().await?, bucket, name, value).await
    }

    async fn grants(&self, key_id: Option<&str>) -> Result<Vec<Grant>, IndexError> {
        access::grants(&self.client().await?, key_id).await
    }

    async fn set_grant(&self, grant: &Grant) -> Result<(), IndexError> {
        access::set_grant(&self.client().await?, grant).await
    }

    async fn put_segment(&self, segment: &RemoteSegment) -> Result<(), IndexError> {
        cold::put_segment(&self.client().await?, segment).await
    }

    async fn set_segment_state(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        state: RemoteState,
    ) -> Result<bool, IndexError> {
        cold::set_segment_state(&self.client().await?, node, plane, id, state).await
    }

    async fn retire_segment(
        &self,
        node: &str,
        plane: &str,
        id: u64,
        moved_to: u64,
    ) -> Result<bool, IndexError> {
        cold::retire_segment(&mut self.client().await?, node, plane, id, moved_to).await
    }

    async fn retired_segments(&self, node: &str) -> Result<Vec<(String, u64, u64)>, IndexError> {
        cold::retired_segments(&self.client().await?, node).await
    }

    async fn segments(&self, node: &str) -> Result<Vec<RemoteSegment>, IndexError> {
        cold::segments(&self.client().await?, node).await
    }

    async fn forget_segments(
        &self,
        node: &str,
        segments: &[(String, u64)],
        now_ms: i64,
    ) -> Result<u64, IndexError> {
        cold::forget_segments(&mut self.client().await?, node, segments, now_ms).await
    }

    async fn due_deletes(&self, now_ms: i64, max: usize) -> Result<Vec<PendingDelete>, IndexError> {
        cold::due_deletes(&self.client().await?, now_ms, max).await
    }

    async fn finish_delete(&self, id: i64) -> Result<(), IndexError> {
        cold::finish_delete(&self.client().await?, id).await
    }

    async fn retry_delete(
        &self,
        id: i64,
        not_before_ms: i64,
        error: &str,
    ) -> Result<(), IndexError> {
        cold::retry_delete(&self.client().await?, id, not_before_ms, error).await
    }

    async fn pending_deletes(&self) -> Result<u64, IndexError> {
        cold::pending_deletes(&self.client().await?).await
    }

    async fn set_shipped_head(&self, head: &ShippedHead) -> Result<(), IndexError> {
        cold::set_shipped_head(&self.client().await?, head).await
    }

    async fn shipped_heads(&self) -> Result<Vec<ShippedHead>, IndexError> {
        cold::shipped_heads(&self.client().await?).await
    }

    async fn purge_bucket(&self, name: &str) -> Result<bool, IndexError> {
        cold::purge_bucket(&mut self.client().await?, name).await
    }
}
