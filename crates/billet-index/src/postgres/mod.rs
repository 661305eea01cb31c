//! The scale-out index: one PostgreSQL schema shared by every node, with
//! migrations applied on start and a connection pool.

mod schema;

use std::str::FromStr;

use async_trait::async_trait;
use billet_block::Cid;
use billet_records::BucketSettings;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row as PgRow};

use crate::error::IndexError;
use crate::list::{Cursor, Item, Lister, ScanRequest};
use crate::rows::{
    ObjectRow, UploadRow, VersionRow, anchor, cid_from, key_from, manifest_bytes, manifest_from,
    settings_bytes, settings_from,
};
use crate::types::*;
use crate::{Index, RebuildRows};

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

fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

fn pool_err(e: impl std::fmt::Display) -> IndexError {
    IndexError::Pool(e.to_string())
}

impl PgIndex {
    /// Connects, creates the schema if needed and applies migrations.
    pub async fn open(config: PgConfig) -> Result<Self, IndexError> {
        if !valid_schema(&config.schema) {
            return Err(IndexError::Pool(format!(
                "schema name {:?} must be lower-case letters, digits and underscores",
                config.schema
            )));
        }
        let mut pg = tokio_postgres::Config::from_str(&config.url)?;
        // Each connection sees only billet's schema.
        // The log's catalog plane is the redo log: a commit need not wait
        // for PostgreSQL's WAL flush.
        pg.options(format!(
            "-c search_path={} -c synchronous_commit=off",
            config.schema
        ));
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(pool_err)?;
        let index = PgIndex { pool };
        index.migrate(&config.schema).await?;
        Ok(index)
    }

    async fn client(&self) -> Result<Object, IndexError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn migrate(&self, schema_name: &str) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema_name}"))
            .await?;
        let tx = c.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )
        .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")
            .await?;
        let row = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .await?;
        let mut version = match row {
            Some(r) => r.get::<_, i32>(0) as usize,
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        while version < schema::MIGRATIONS.len() {
            tx.batch_execute(schema::MIGRATIONS[version]).await?;
            version += 1;
        }
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&(version as i32)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops the whole schema (tests use a throwaway schema per run).
    pub async fn drop_schema(&self, schema_name: &str) -> Result<(), IndexError> {
        if !valid_schema(schema_name) {
            return Err(IndexError::Pool(format!("bad schema name {schema_name:?}")));
        }
        self.client()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
            .await?;
        Ok(())
    }
}

async fn require_bucket(c: &impl GenericClient, name: &str) -> Result<(), IndexError> {
    let found = c
        .query_opt("SELECT 1 FROM buckets WHERE name = $1", &[&name])
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(IndexError::NoSuchBucket(name.to_string())),
    }
}

fn version_from(r: &PgRow) -> Result<ObjectVersion, IndexError> {
    let key: Vec<u8> = r.try_get(0)?;
    let cid: Vec<u8> = r.try_get(4)?;
    let manifest: Vec<u8> = r.try_get(5)?;
    Ok(ObjectVersion {
        key: key_from(key)?,
        version_id: r.try_get(1)?,
        is_latest: r.try_get(2)?,
        order: r.try_get(3)?,
        manifest_cid: cid_from(&cid)?,
        manifest: manifest_from(&manifest)?,
    })
}

fn summary(r: &PgRow, full: bool) -> Result<ObjectSummary, IndexError> {
    let key: Vec<u8> = r.try_get(0)?;
    let size: i64 = r.try_get(2)?;
    Ok(ObjectSummary {
        key: key_from(key)?,
        version_id: r.try_get(1)?,
        size: size as u64,
        etag: r.try_get(3)?,
        last_modified_ms: r.try_get(4)?,
        order: r.try_get(5)?,
        is_latest: if full { r.try_get(6)? } else { true },
        delete_marker: if full { r.try_get(7)? } else { false },
    })
}

fn upload_from(r: &PgRow) -> Result<(Upload, i64), IndexError> {
    let key: Vec<u8> = r.try_get(1)?;
    Ok((
        Upload {
            upload_id: r.try_get(0)?,
            key: key_from(key)?,
            initiated_ms: r.try_get(2)?,
            meta: r.try_get(3)?,
        },
        r.try_get(4)?,
    ))
}

fn part_from(r: &PgRow) -> Result<Part, IndexError> {
    let number: i32 = r.try_get(0)?;
    let size: i64 = r.try_get(1)?;
    let root: Vec<u8> = r.try_get(3)?;
    Ok(Part {
        number: number as u32,
        size: size as u64,
        etag: r.try_get(2)?,
        root: cid_from(&root)?,
        last_modified_ms: r.try_get(4)?,
        meta: r.try_get(5)?,
    })
}

const VERSION_COLS: &str = "key, version_id, is_latest, ord, manifest_cid, manifest";
const PART_COLS: &str = "number, size, etag, root, last_modified, meta";

/// The SQL pieces of one listing scan.
struct ScanSql {
    select: &'static str,
    /// Extra conditions after `bucket = $1`.
    filter: &'static str,
    order: &'static str,
    /// The column after `key` in the row order (version and upload cursors).
    second: &'static str,
}

const OBJECTS: ScanSql = ScanSql {
    select: "SELECT key, version_id, size, etag, last_modified, ord FROM versions",
    filter: "AND is_latest AND NOT is_delete_marker",
    order: "key",
    second: "ord",
};

const VERSIONS: ScanSql = ScanSql {
    select: "SELECT key, version_id, size, etag, last_modified, ord, is_latest, is_delete_marker FROM versions",
    filter: "",
    order: "key, ord",
    second: "ord",
};

const UPLOADS: ScanSql = ScanSql {
    select: "SELECT upload_id, key, initiated, meta, seq FROM uploads",
    filter: "",
    order: "key, seq",
    second: "seq",
};

/// Runs one scan of the lister against `bucket` (parameter $1).
async fn scan<T>(
    c: &impl GenericClient,
    bucket: &str,
    table: &ScanSql,
    req: &ScanRequest,
    map: impl Fn(&PgRow) -> Result<T, IndexError>,
) -> Result<Vec<T>, IndexError> {
    let ScanSql {
        select,
        filter,
        order,
        second,
    } = table;
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(bucket.to_string())];
    let cond = match &req.cursor {
        Cursor::From(k) => {
            args.push(Box::new(k.clone()));
            "key >= $2".to_string()
        }
        Cursor::After(k) => {
            args.push(Box::new(k.clone()));
            "key > $2".to_string()
        }
        Cursor::AfterVersion(k, o) => {
            args.push(Box::new(k.clone()));
            args.push(Box::new(*o));
            format!("(key, {second}) > ($2, $3)")
        }
    };
    let mut sql = format!("{select} WHERE bucket = $1 {filter} AND {cond}");
    if let Some(b) = &req.before {
        args.push(Box::new(b.clone()));
        sql.push_str(&format!(" AND key < ${}", args.len()));
    }
    args.push(Box::new(req.limit as i64));
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", args.len()));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &params).await?;
    rows.iter().map(map).collect()
}

/// ListObjects with a delimiter in one round trip: a recursive query that
/// walks the index from key to key, jumping over each common-prefix group
/// with a single seek (keys are UTF-8, so `group || 0xff` lies past every
/// key of the group and `key || 0x00` is the key's immediate successor).
async fn skip_scan_objects(
    c: &impl GenericClient,
    bucket: &str,
    req: &ScanRequest,
    plen: usize,
    delim: &[u8],
) -> Result<Vec<ObjectRow>, IndexError> {
    let live = "is_latest AND NOT is_delete_marker";
    let (first, key) = match &req.cursor {
        Cursor::From(k) => (">=", k),
        Cursor::After(k) | Cursor::AfterVersion(k, _) => (">", k),
    };
    let bound = if req.before.is_some() {
        "AND key < $6"
    } else {
        "AND $6::bytea IS NULL"
    };
    let sql = format!(
        "WITH RECURSIVE anchors(k, n) AS (
            SELECT (SELECT key FROM versions WHERE bucket = $1 AND {live} AND key {first} $2 {bound} ORDER BY key LIMIT 1), 1::bigint
            UNION ALL
            SELECT (SELECT key FROM versions WHERE bucket = $1 AND {live} AND key >= (
                        CASE WHEN position($4 in substr(a.k, $3 + 1)) > 0
                             THEN substr(a.k, 1, $3 + position($4 in substr(a.k, $3 + 1)) + length($4) - 1) || '\\xff'::bytea
                             ELSE a.k || '\\x00'::bytea END)
                    {bound} ORDER BY key LIMIT 1), a.n + 1
            FROM anchors a WHERE a.k IS NOT NULL AND a.n < $5::bigint
        )
        SELECT a.k, v.version_id, v.size, v.etag, v.last_modified, v.ord
        FROM anchors a LEFT JOIN versions v
          ON position($4 in substr(a.k, $3 + 1)) = 0 AND v.bucket = $1 AND v.key = a.k AND v.is_latest AND NOT v.is_delete_marker
        WHERE a.k IS NOT NULL
        ORDER BY a.k"
    );
    let plen = plen as i32;
    let limit = req.limit as i64;
    let delim = delim.to_vec();
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c
        .query(&stmt, &[&bucket, key, &plen, &delim, &limit, &req.before])
        .await?;
    rows.iter()
        .map(|r| {
            // Group anchors only need their key (no row was joined).
            let version: Option<String> = r.try_get(1)?;
            Ok(ObjectRow(match version {
                Some(_) => summary(r, false)?,
                None => anchor(key_from(r.try_get(0)?)?),
            }))
        })
        .collect()
}

/// One row for [`insert_versions`].
struct NewRow<'a> {
    key: &'a str,
    version_id: &'a str,
    ord: i64,
    latest: bool,
    cid: &'a Cid,
    manifest: &'a billet_records::Manifest,
}

/// Inserts version rows with one statement (arrays unnested server-side):
/// a round trip per batch, not per row.
async fn insert_versions(
    c: &impl GenericClient,
    bucket: &str,
    rows: &[NewRow<'_>],
) -> Result<(), IndexError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(rows.len());
    let mut ords = Vec::with_capacity(rows.len());
    let mut vids = Vec::with_capacity(rows.len());
    let mut latest = Vec::with_capacity(rows.len());
    let mut markers = Vec::with_capacity(rows.len());
    let mut sizes = Vec::with_capacity(rows.len());
    let mut etags = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    let mut cids = Vec::with_capacity(rows.len());
    let mut manifests = Vec::with_capacity(rows.len());
    for r in rows {
        keys.push(r.key.as_bytes().to_vec());
        ords.push(r.ord);
        vids.push(r.version_id.to_string());
        latest.push(r.latest);
        markers.push(r.manifest.delete_marker);
        sizes.push(r.manifest.size as i64);
        etags.push(r.manifest.etag.clone());
        times.push(r.manifest.created);
        cids.push(r.cid.to_bytes());
        manifests.push(manifest_bytes(r.manifest)?);
    }
    let stmt = c
        .prepare_cached(
            "INSERT INTO versions (bucket, key, ord, version_id, is_latest, is_delete_marker, size, etag, last_modified, manifest_cid, manifest)
             SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::text[], $5::bool[], $6::bool[], $7::bigint[], $8::text[],
                                      $9::bigint[], $10::bytea[], $11::bytea[])",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &bucket, &keys, &ords, &vids, &latest, &markers, &sizes, &etags, &times, &cids,
            &manifests,
        ],
    )
    .await?;
    Ok(())
}

/// Applies a run of consecutive puts with three statements. Within the run
/// a later put of the same (key, version) replaces an earlier one, and only
/// each key's last put is latest — as if applied one by one.
async fn apply_puts(
    c: &impl GenericClient,
    bucket: &str,
    puts: &[(&String, &String, &Cid, &billet_records::Manifest)],
    ord: &mut i64,
) -> Result<(), IndexError> {
    let mut last_of_version = std::collections::HashMap::new();
    let mut last_of_key = std::collections::HashMap::new();
    for (i, (key, vid, _, _)) in puts.iter().enumerate() {
        last_of_version.insert((key.as_str(), vid.as_str()), i);
        last_of_key.insert(key.as_str(), i);
    }
    let mut rows = Vec::with_capacity(puts.len());
    for (i, (key, vid, cid, manifest)) in puts.iter().enumerate() {
        if last_of_version[&(key.as_str(), vid.as_str())] != i {
            continue;
        }
        rows.push(NewRow {
            key,
            version_id: vid,
            ord: *ord,
            latest: last_of_key[key.as_str()] == i,
            cid,
            manifest,
        });
        *ord -= 1;
    }
    // Per-key point statements (their plans are index lookups whatever the
    // table statistics say; an unnest join was planned as a scan of the
    // whole bucket), sent together: tokio-postgres pipelines concurrent
    // queries on one connection, so this costs one round trip.
    let delete = c
        .prepare_cached("DELETE FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3")
        .await?;
    let clear = c
        .prepare_cached(
            "UPDATE versions SET is_latest = false WHERE bucket = $1 AND key = $2 AND is_latest",
        )
        .await?;
    let keys: Vec<&[u8]> = rows.iter().map(|r| r.key.as_bytes()).collect();
    let (delete, clear) = (&delete, &clear);
    futures_util::future::try_join_all(
        rows.iter()
            .zip(&keys)
            .map(|(r, k)| async move { c.execute(delete, &[&bucket, k, &r.version_id]).await }),
    )
    .await?;
    futures_util::future::try_join_all(
        keys.iter()
            .map(|k| async move { c.execute(clear, &[&bucket, k]).await }),
    )
    .await?;
    insert_versions(c, bucket, &rows).await
}

#[async_trait]
impl Index for PgIndex {
    async fn log_checkpoint(&self) -> Result<u64, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT log_checkpoint FROM node WHERE id = 0", &[])
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    /// One transaction committed with `synchronous_commit = on`: PostgreSQL
    /// flushes its WAL up to this commit, which covers every commit before
    /// it, made with `synchronous_commit = off` or not.
    async fn set_log_checkpoint(&self, segment: u64) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
        tx.execute(
            "INSERT INTO node (id, log_checkpoint) VALUES (0, $1)
             ON CONFLICT (id) DO UPDATE SET log_checkpoint = excluded.log_checkpoint",
            &[&(segment as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_bucket(&self, b: &BucketState) -> Result<(), IndexError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO buckets (name, owner, created, head, seq, settings) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO NOTHING",
                &[&b.name, &b.owner, &b.created_ms, &b.head.to_bytes(), &(b.seq as i64), &settings_bytes(&b.settings)?],
            )
            .await?;
        if n == 0 {
            return Err(IndexError::BucketExists(b.name.clone()));
        }
        Ok(())
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
        let found = tx
            .query_opt("SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE", &[&name])
            .await?;
        if found.is_none() {
            return Err(IndexError::NoSuchBucket(name.to_string()));
        }
        let busy = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM versions WHERE bucket = $1) OR EXISTS (SELECT 1 FROM uploads WHERE bucket = $1)",
                &[&name],
            )
            .await?;
        if busy.try_get::<_, bool>(0)? {
            return Err(IndexError::BucketNotEmpty(name.to_string()));
        }
        tx.execute("DELETE FROM mmr WHERE bucket = $1", &[&name])
            .await?;
        tx.execute("DELETE FROM buckets WHERE name = $1", &[&name])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketState>, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT name, owner, created, head, seq, settings FROM buckets WHERE name = $1",
                &[&name],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let head: Vec<u8> = r.try_get(3)?;
        let seq: i64 = r.try_get(4)?;
        let settings: Vec<u8> = r.try_get(5)?;
        Ok(Some(BucketState {
            name: r.try_get(0)?,
            owner: r.try_get(1)?,
            created_ms: r.try_get(2)?,
            head: cid_from(&head)?,
            seq: seq as u64,
            settings: settings_from(&settings)?,
        }))
    }

    async fn list_buckets(&self) -> Result<Vec<BucketEntry>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT name, owner, created FROM buckets ORDER BY name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BucketEntry {
                    name: r.try_get(0)?,
                    owner: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn commit(&self, batch: CommitBatch) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let b = batch.bucket.as_str();
        let row = tx
            .query_opt(
                "SELECT head, next_ord FROM buckets WHERE name = $1 FOR UPDATE",
                &[&b],
            )
            .await?
            .ok_or_else(|| IndexError::NoSuchBucket(b.to_string()))?;
        let head: Vec<u8> = row.try_get(0)?;
        let head = cid_from(&head)?;
        if head != batch.expected_head {
            return Err(IndexError::Conflict {
                bucket: b.to_string(),
                expected: Box::new(batch.expected_head),
                actual: Box::new(head),
            });
        }
        let mut ord: i64 = row.try_get(1)?;
        let mut i = 0;
        while i < batch.changes.len() {
            // A run of puts goes in three statements.
            let mut puts = Vec::new();
            while let Some(RowChange::Put {
                key,
                version_id,
                manifest_cid,
                manifest,
            }) = batch.changes.get(i)
            {
                puts.push((key, version_id, manifest_cid, manifest));
                i += 1;
            }
            if !puts.is_empty() {
                apply_puts(&tx, b, &puts, &mut ord).await?;
                continue;
            }
            match &batch.changes[i] {
                RowChange::Put { .. } => {}
                RowChange::Delete { key, version_id } => {
                    let gone = tx
                        .query_opt(
                            "DELETE FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3 RETURNING is_latest",
                            &[&b, &key.as_bytes(), version_id],
                        )
                        .await?;
                    if let Some(r) = gone
                        && r.try_get::<_, bool>(0)?
                    {
                        tx.execute(
                            "UPDATE versions SET is_latest = true WHERE bucket = $1 AND key = $2
                             AND ord = (SELECT MIN(ord) FROM versions WHERE bucket = $1 AND key = $2)",
                            &[&b, &key.as_bytes()],
                        )
                        .await?;
                    }
                }
                RowChange::Replace {
                    key,
                    version_id,
                    manifest_cid,
                    manifest,
                } => {
                    let n = tx
                        .execute(
                            "UPDATE versions SET manifest_cid = $4, manifest = $5, size = $6, etag = $7, last_modified = $8,
                             is_delete_marker = $9 WHERE bucket = $1 AND key = $2 AND version_id = $3",
                            &[
                                &b,
                                &key.as_bytes(),
                                version_id,
                                &manifest_cid.to_bytes(),
                                &manifest_bytes(manifest)?,
                                &(manifest.size as i64),
                                &manifest.etag,
                                &manifest.created,
                                &manifest.delete_marker,
                            ],
                        )
                        .await?;
                    if n == 0 {
                        return Err(IndexError::NoSuchVersion {
                            key: key.clone(),
                            version_id: version_id.clone(),
                        });
                    }
                }
            }
            i += 1;
        }
        for upload_id in &batch.completed_uploads {
            let n = tx
                .execute(
                    "DELETE FROM uploads WHERE bucket = $1 AND upload_id = $2",
                    &[&b, upload_id],
                )
                .await?;
            if n == 0 {
                return Err(IndexError::NoSuchUpload(upload_id.clone()));
            }
            tx.execute("DELETE FROM parts WHERE upload_id = $1", &[upload_id])
                .await?;
        }
        if let Some((first, _)) = batch.mmr.first() {
            let size = mmr_size_in(&tx, b).await?;
            if *first != size {
                return Err(IndexError::MmrOverwrite(*first));
            }
            for (i, (pos, hash)) in batch.mmr.iter().enumerate() {
                if *pos != size + i as u64 {
                    return Err(IndexError::MmrOverwrite(*pos));
                }
                tx.execute(
                    "INSERT INTO mmr (bucket, pos, hash) VALUES ($1, $2, $3)",
                    &[&b, &(*pos as i64), &&hash[..]],
                )
                .await?;
            }
        }
        match &batch.settings {
            Some(s) => {
                tx.execute(
                    "UPDATE buckets SET head = $2, seq = $3, next_ord = $4, settings = $5 WHERE name = $1",
                    &[&b, &batch.head.to_bytes(), &(batch.seq as i64), &ord, &settings_bytes(s)?],
                )
                .await?
            }
            None => {
                tx.execute(
                    "UPDATE buckets SET head = $2, seq = $3, next_ord = $4 WHERE name = $1",
                    &[&b, &batch.head.to_bytes(), &(batch.seq as i64), &ord],
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(())
    }

    async fn object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>, IndexError> {
        let c = self.client().await?;
        let row = match version_id {
            None => {
                c.query_opt(
                    &format!("SELECT {VERSION_COLS} FROM versions WHERE bucket = $1 AND key = $2 AND is_latest"),
                    &[&bucket, &key.as_bytes()],
                )
                .await?
            }
            Some(v) => {
                c.query_opt(
                    &format!("SELECT {VERSION_COLS} FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3"),
                    &[&bucket, &key.as_bytes(), &v],
                )
                .await?
            }
        };
        match row {
            Some(r) => Ok(Some(version_from(&r)?)),
            None => {
                require_bucket(&c, bucket).await?;
                Ok(None)
            }
        }
    }

    async fn list_objects(&self, bucket: &str, q: &ListQuery) -> Result<ListPage, IndexError> {
        let c = self.client().await?;
        require_bucket(&c, bucket).await?;
        let start = q
            .after
            .as_ref()
            .map(|a| Cursor::After(a.as_bytes().to_vec()));
        let mut lister = Lister::new(
            &q.prefix,
            q.delimiter.as_deref(),
            q.after.as_deref(),
            start,
            q.max_keys,
            true,
        );
        while let Some(req) = lister.request() {
            let rows = match &req.skip {
                Some((plen, delim)) => skip_scan_objects(&c, bucket, &req, *plen, delim).await?,
                None => {
                    scan(&c, bucket, &OBJECTS, &req, |r| {
                        summary(r, false).map(ObjectRow)
                    })
                    .await?
                }
            };
            let more = rows.len() == req.limit;
            lister.feed(rows, more);
        }
        let (items, truncated) = lister.finish();
        let mut page = ListPage {
            truncated,
            ..ListPage::default()
        };
        for item in items {
            match item {
                Item::Row(r) => {
                    page.next_after = Some(r.0.key.clone());
                    page.objects.push(r.0);
                }
                Item::Prefix(p) => {
                    page.next_after = Some(p.clone());
                    page.prefixes.push(p);
                }
            }
        }
        if !truncated {
            page.next_after = None;
        }
        Ok(page)
    }

    async fn list_versions(
        &self,
        bucket: &str,
        q: &VersionQuery,
    ) -> Result<VersionPage, IndexError> {
        let c = self.client().await?;
        require_bucket(&c, bucket).await?;
        let start = match (&q.key_marker, &q.version_id_marker) {
            (None, _) => None,
            (Some(k), None) => Some(Cursor::After(k.as_bytes().to_vec())),
            (Some(k), Some(v)) => {
                let ord = c
                    .query_opt(
                        "SELECT ord FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3",
                        &[&bucket, &k.as_bytes(), v],
                    )
                    .await?;
                Some(match ord {
                    Some(r) => Cursor::AfterVersion(k.as_bytes().to_vec(), r.try_get(0)?),
                    None => Cursor::After(k.as_bytes().to_vec()),
                })
            }
        };
        let marker = q
            .key_marker
            .as_deref()
            .filter(|_| q.version_id_marker.is_none());
        let mut lister = Lister::new(
            &q.prefix,
            q.delimiter.as_deref(),
            marker,
            start,
            q.max_keys,
            false,
        );
        while let Some(req) = lister.request() {
            let rows = scan(&c, bucket, &VERSIONS, &req, |r| {
                summary(r, true).map(VersionRow)
            })
            .await?;
            let more = rows.len() == req.limit;
            lister.feed(rows, more);
        }
        let (items, truncated) = lister.finish();
        let mut page = VersionPage {
            truncated,
            ..VersionPage::default()
        };
        for item in items {
            match item {
                Item::Row(r) => {
                    page.next_key_marker = Some(r.0.key.clone());
                    page.next_version_id_marker = Some(r.0.version_id.clone());
                    page.versions.push(r.0);
                }
                Item::Prefix(p) => {
                    page.next_key_marker = Some(p.clone());
                    page.next_version_id_marker = None;
                    page.prefixes.push(p);
                }
            }
        }
        if !truncated {
            page.next_key_marker = None;
            page.next_version_id_marker = None;
        }
        Ok(page)
    }

    async fn rebuild(
        &self,
        bucket: &str,
        head: Cid,
        seq: u64,
        settings: &BucketSettings,
        rows: RebuildRows,
    ) -> Result<u64, IndexError> {
        let settings = settings_bytes(settings)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.query_opt(
            "SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE",
            &[&bucket],
        )
        .await?
        .ok_or_else(|| IndexError::NoSuchBucket(bucket.to_string()))?;
        tx.execute("DELETE FROM versions WHERE bucket = $1", &[&bucket])
            .await?;
        // Rows come from a synchronous walk (block reads); pull them on a
        // blocking thread in batches so the async side never blocks.
        let (send, mut recv) =
            tokio::sync::mpsc::channel::<Result<Vec<ObjectVersion>, IndexError>>(2);
        let producer = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(512);
            for row in rows {
                match row {
                    Ok(v) => batch.push(v),
                    Err(e) => {
                        let _ = send.blocking_send(Err(e));
                        return;
                    }
                }
                if batch.len() == 512 && send.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                {
                    return;
                }
            }
            if !batch.is_empty() {
                let _ = send.blocking_send(Ok(batch));
            }
        });
        let mut n: i64 = 0;
        while let Some(batch) = recv.recv().await {
            let batch = batch?;
            let rows: Vec<NewRow<'_>> = batch
                .iter()
                .enumerate()
                .map(|(i, v)| NewRow {
                    key: &v.key,
                    version_id: &v.version_id,
                    ord: n + i as i64,
                    latest: v.is_latest,
                    cid: &v.manifest_cid,
                    manifest: &v.manifest,
                })
                .collect();
            insert_versions(&tx, bucket, &rows).await?;
            n += rows.len() as i64;
        }
        producer
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?;
        tx.execute(
            "UPDATE buckets SET head = $2, seq = $3, settings = $4, next_ord = -1 WHERE name = $1",
            &[&bucket, &head.to_bytes(), &(seq as i64), &settings],
        )
        .await?;
        tx.commit().await?;
        Ok(n as u64)
    }

    async fn create_upload(&self, bucket: &str, u: &Upload) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        require_bucket(&c, bucket).await?;
        // Upload state is authoritative (not in the log): durable before
        // the client hears of it.
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
        tx.execute(
            "INSERT INTO uploads (bucket, upload_id, key, initiated, meta) VALUES ($1, $2, $3, $4, $5)",
            &[&bucket, &u.upload_id, &u.key.as_bytes(), &u.initiated_ms, &u.meta],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Option<Upload>, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT upload_id, key, initiated, meta, seq FROM uploads WHERE bucket = $1 AND upload_id = $2",
                &[&bucket, &upload_id],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(upload_from(&r)?.0)),
            None => {
                require_bucket(&c, bucket).await?;
                Ok(None)
            }
        }
    }

    async fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        p: &Part,
    ) -> Result<Option<Part>, IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
        let found = tx
            .query_opt(
                "SELECT 1 FROM uploads WHERE bucket = $1 AND upload_id = $2 FOR SHARE",
                &[&bucket, &upload_id],
            )
            .await?;
        if found.is_none() {
            return Err(IndexError::NoSuchUpload(upload_id.to_string()));
        }
        let old = tx
            .query_opt(
                &format!("SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND number = $2"),
                &[&upload_id, &(p.number as i32)],
            )
            .await?
            .map(|r| part_from(&r))
            .transpose()?;
        tx.execute(
            "INSERT INTO parts (upload_id, number, size, etag, root, last_modified, meta) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, etag = excluded.etag,
               root = excluded.root, last_modified = excluded.last_modified, meta = excluded.meta",
            &[&upload_id, &(p.number as i32), &(p.size as i64), &p.etag, &p.root.to_bytes(), &p.last_modified_ms, &p.meta],
        )
        .await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<PartPage, IndexError> {
        let c = self.client().await?;
        let _ = bucket;
        let rows = c
            .query(
                &format!("SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND number > $2 ORDER BY number LIMIT $3"),
                &[&upload_id, &(after as i32), &(max as i64 + 1)],
            )
            .await?;
        let mut parts = rows.iter().map(part_from).collect::<Result<Vec<_>, _>>()?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok(PartPage {
            next_part_number_marker: if truncated {
                parts.last().map(|p| p.number)
            } else {
                None
            },
            parts,
            truncated,
        })
    }

    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<Part>, IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM uploads WHERE bucket = $1 AND upload_id = $2",
                &[&bucket, &upload_id],
            )
            .await?;
        if n == 0 {
            return Err(IndexError::NoSuchUpload(upload_id.to_string()));
        }
        let rows = tx
            .query(
                &format!("DELETE FROM parts WHERE upload_id = $1 RETURNING {PART_COLS}"),
                &[&upload_id],
            )
            .await?;
        let parts = rows.iter().map(part_from).collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(parts)
    }

    async fn list_uploads(&self, bucket: &str, q: &UploadQuery) -> Result<UploadPage, IndexError> {
        let c = self.client().await?;
        require_bucket(&c, bucket).await?;
        let start = match (&q.key_marker, &q.upload_id_marker) {
            (None, _) => None,
            (Some(k), None) => Some(Cursor::After(k.as_bytes().to_vec())),
            (Some(k), Some(id)) => {
                let seq = c
                    .query_opt(
                        "SELECT seq FROM uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3",
                        &[&bucket, &k.as_bytes(), id],
                    )
                    .await?;
                Some(match seq {
                    Some(r) => Cursor::AfterVersion(k.as_bytes().to_vec(), r.try_get(0)?),
                    None => Cursor::After(k.as_bytes().to_vec()),
                })
            }
        };
        let marker = q
            .key_marker
            .as_deref()
            .filter(|_| q.upload_id_marker.is_none());
        let mut lister = Lister::new(
            &q.prefix,
            q.delimiter.as_deref(),
            marker,
            start,
            q.max_uploads,
            false,
        );
        while let Some(req) = lister.request() {
            let rows = scan(&c, bucket, &UPLOADS, &req, |r| {
                upload_from(r).map(|(u, s)| UploadRow(u, s))
            })
            .await?;
            let more = rows.len() == req.limit;
            lister.feed(rows, more);
        }
        let (items, truncated) = lister.finish();
        let mut page = UploadPage {
            truncated,
            ..UploadPage::default()
        };
        for item in items {
            match item {
                Item::Row(r) => {
                    page.next_key_marker = Some(r.0.key.clone());
                    page.next_upload_id_marker = Some(r.0.upload_id.clone());
                    page.uploads.push(r.0);
                }
                Item::Prefix(p) => {
                    page.next_key_marker = Some(p.clone());
                    page.next_upload_id_marker = None;
                    page.prefixes.push(p);
                }
            }
        }
        if !truncated {
            page.next_key_marker = None;
            page.next_upload_id_marker = None;
        }
        Ok(page)
    }

    async fn stale_uploads(
        &self,
        bucket: &str,
        before_ms: i64,
        max: usize,
    ) -> Result<Vec<Upload>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT upload_id, key, initiated, meta, seq FROM uploads WHERE bucket = $1 AND initiated < $2 ORDER BY seq LIMIT $3",
                &[&bucket, &before_ms, &(max as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| upload_from(r).map(|(u, _)| u))
            .collect()
    }

    async fn put_segment(&self, s: &SegmentRecord) -> Result<(), IndexError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO segments (plane, id, state, bytes, blocks, sealed, shipped, remote_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (plane, id) DO UPDATE SET state = excluded.state, bytes = excluded.bytes,
               blocks = excluded.blocks, sealed = excluded.sealed, shipped = excluded.shipped,
               remote_key = excluded.remote_key",
            &[
                &s.plane,
                &(s.id as i64),
                &s.state,
                &(s.bytes as i64),
                &(s.blocks as i64),
                &s.sealed_ms,
                &s.shipped_ms,
                &s.remote_key,
            ],
        )
        .await?;
        Ok(())
    }

    async fn segments(&self) -> Result<Vec<SegmentRecord>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT plane, id, state, bytes, blocks, sealed, shipped, remote_key FROM segments ORDER BY plane, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentRecord {
                    plane: r.try_get(0)?,
                    id: r.try_get::<_, i64>(1)? as u64,
                    state: r.try_get(2)?,
                    bytes: r.try_get::<_, i64>(3)? as u64,
                    blocks: r.try_get::<_, i64>(4)? as u64,
                    sealed_ms: r.try_get(5)?,
                    shipped_ms: r.try_get(6)?,
                    remote_key: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn enqueue_remote_delete(&self, remote_key: &str, now_ms: i64) -> Result<(), IndexError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO pending_deletes (remote_key, enqueued) VALUES ($1, $2)",
            &[&remote_key, &now_ms],
        )
        .await?;
        Ok(())
    }

    async fn pending_remote_deletes(&self, max: usize) -> Result<Vec<PendingDelete>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, remote_key, enqueued, attempts FROM pending_deletes ORDER BY id LIMIT $1",
                &[&(max as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingDelete {
                    id: r.try_get(0)?,
                    remote_key: r.try_get(1)?,
                    enqueued_ms: r.try_get(2)?,
                    attempts: r.try_get::<_, i32>(3)? as u32,
                })
            })
            .collect()
    }

    async fn finish_remote_delete(&self, id: i64, done: bool) -> Result<(), IndexError> {
        let c = self.client().await?;
        if done {
            c.execute("DELETE FROM pending_deletes WHERE id = $1", &[&id])
                .await?;
        } else {
            c.execute(
                "UPDATE pending_deletes SET attempts = attempts + 1 WHERE id = $1",
                &[&id],
            )
            .await?;
        }
        Ok(())
    }

    async fn mmr_size(&self, bucket: &str) -> Result<u64, IndexError> {
        let c = self.client().await?;
        require_bucket(&c, bucket).await?;
        mmr_size_in(&c, bucket).await
    }

    async fn mmr_nodes(
        &self,
        bucket: &str,
        positions: &[u64],
    ) -> Result<Vec<Option<[u8; 32]>>, IndexError> {
        let c = self.client().await?;
        let pos: Vec<i64> = positions.iter().map(|p| *p as i64).collect();
        let rows = c
            .query(
                "SELECT pos, hash FROM mmr WHERE bucket = $1 AND pos = ANY($2)",
                &[&bucket, &pos],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let p: i64 = r.try_get(0)?;
            let h: Vec<u8> = r.try_get(1)?;
            let h = <[u8; 32]>::try_from(h.as_slice())
                .map_err(|_| IndexError::Corrupt(format!("MMR node {p} is not 32 bytes")))?;
            found.insert(p as u64, h);
        }
        Ok(positions.iter().map(|p| found.get(p).copied()).collect())
    }

    async fn put_access_key(&self, k: &AccessKey) -> Result<(), IndexError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO access_keys (id, secret, owner, created, disabled) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO NOTHING",
                &[&k.id, &k.secret, &k.owner, &k.created_ms, &k.disabled],
            )
            .await?;
        if n == 0 {
            return Err(IndexError::AccessKeyExists(k.id.clone()));
        }
        Ok(())
    }

    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id, secret, owner, created, disabled FROM access_keys WHERE id = $1",
                &[&id],
            )
            .await?;
        row.map(|r| access_key_from(&r)).transpose()
    }

    async fn access_keys(&self) -> Result<Vec<AccessKey>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, secret, owner, created, disabled FROM access_keys ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(access_key_from).collect()
    }

    async fn set_access_key_disabled(&self, id: &str, disabled: bool) -> Result<bool, IndexError> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE access_keys SET disabled = $2 WHERE id = $1",
            &[&id, &disabled],
        )
        .await?
            > 0)
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool, IndexError> {
        let c = self.client().await?;
        Ok(c.execute("DELETE FROM access_keys WHERE id = $1", &[&id])
            .await?
            > 0)
    }
}

fn access_key_from(r: &PgRow) -> Result<AccessKey, IndexError> {
    Ok(AccessKey {
        id: r.try_get(0)?,
        secret: r.try_get(1)?,
        owner: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        disabled: r.try_get(4)?,
    })
}

async fn mmr_size_in(c: &impl GenericClient, bucket: &str) -> Result<u64, IndexError> {
    let row = c
        .query_one("SELECT MAX(pos) FROM mmr WHERE bucket = $1", &[&bucket])
        .await?;
    let max: Option<i64> = row.try_get(0)?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}
