//! One bucket's rows in PostgreSQL (every table keyed by bucket name): the
//! seam's row operations ([`PgTx`], run on a blocking thread that waits on
//! each statement) and the point reads the index serves asynchronously.

use std::future::Future;

use billet_block::Cid;
use billet_records::Manifest;
use deadpool_postgres::GenericClient;
use tokio::runtime::Handle;
use tokio_postgres::Row as PgRow;
use tokio_postgres::types::ToSql;

use super::rows::{
    PART_COLS, UPLOAD_COLS, VERSION_COLS, part_from, summary, upload_from, version_from,
};
use crate::error::IndexError;
use crate::list::{Cursor, ScanRequest};
use crate::rows::{anchor, cid_from, key_from, manifest_bytes, settings_bytes};
use crate::scans::{OBJECTS, ScanSql, UPLOADS, VERSIONS};
use crate::tx::{BucketTx, HeadRow, NewHead, NewVersion, PutRun};
use crate::types::{CommitRow, ObjectSummary, ObjectVersion, Part, Upload};

pub(super) async fn require_bucket(c: &impl GenericClient, name: &str) -> Result<(), IndexError> {
    let found = c
        .query_opt("SELECT 1 FROM buckets WHERE name = $1", &[&name])
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(IndexError::NoSuchBucket(name.to_string())),
    }
}

// Point reads.

pub(super) async fn object(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>, IndexError> {
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
            require_bucket(c, bucket).await?;
            Ok(None)
        }
    }
}

pub(super) async fn upload(
    c: &impl GenericClient,
    bucket: &str,
    upload_id: &str,
) -> Result<Option<Upload>, IndexError> {
    let row = c
        .query_opt(
            &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE bucket = $1 AND upload_id = $2"),
            &[&bucket, &upload_id],
        )
        .await?;
    match row {
        Some(r) => Ok(Some(upload_from(&r)?.0)),
        None => {
            require_bucket(c, bucket).await?;
            Ok(None)
        }
    }
}

pub(super) async fn stale_uploads(
    c: &impl GenericClient,
    bucket: &str,
    before_ms: i64,
    max: usize,
) -> Result<Vec<Upload>, IndexError> {
    let rows = c
        .query(
            &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE bucket = $1 AND initiated < $2 ORDER BY seq LIMIT $3"),
            &[&bucket, &before_ms, &(max as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| upload_from(r).map(|(u, _)| u))
        .collect()
}

pub(super) async fn mmr_size(c: &impl GenericClient, bucket: &str) -> Result<u64, IndexError> {
    let row = c
        .query_one("SELECT MAX(pos) FROM mmr WHERE bucket = $1", &[&bucket])
        .await?;
    let max: Option<i64> = row.try_get(0)?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

pub(super) async fn mmr_nodes(
    c: &impl GenericClient,
    bucket: &str,
    positions: &[u64],
) -> Result<Vec<Option<[u8; 32]>>, IndexError> {
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

// Listing scans.

/// Live objects only, as a condition after `bucket = $1`.
const LIVE: &str = "AND is_latest AND NOT is_delete_marker";

/// A bucket's rows through a client or a transaction, from a blocking
/// thread: each statement is awaited with `rt.block_on`, so the rules
/// above the seam stay synchronous for both backends.
pub(super) struct PgTx<'a, C: GenericClient> {
    pub c: &'a C,
    pub bucket: &'a str,
    pub rt: &'a Handle,
}

impl<C: GenericClient> PgTx<'_, C> {
    fn wait<T>(
        &self,
        f: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, IndexError> {
        Ok(self.rt.block_on(f)?)
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, IndexError> {
        self.wait(async {
            let stmt = self.c.prepare_cached(sql).await?;
            self.c.execute(&stmt, params).await
        })
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<PgRow>, IndexError> {
        self.wait(async {
            let stmt = self.c.prepare_cached(sql).await?;
            self.c.query(&stmt, params).await
        })
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<PgRow>, IndexError> {
        self.wait(async {
            let stmt = self.c.prepare_cached(sql).await?;
            self.c.query_opt(&stmt, params).await
        })
    }

    /// Runs one scan of the lister (bucket is parameter $1).
    fn scan<T>(
        &self,
        table: &ScanSql,
        req: &ScanRequest,
        map: impl Fn(&PgRow) -> Result<T, IndexError>,
    ) -> Result<Vec<T>, IndexError> {
        let ScanSql {
            select,
            live_only,
            order,
            second,
        } = table;
        let filter = if *live_only { LIVE } else { "" };
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(self.bucket.to_string())];
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
        self.query(&sql, &params)?.iter().map(map).collect()
    }

    /// ListObjects with a delimiter in one round trip: a recursive query
    /// that walks the index from key to key, jumping over each
    /// common-prefix group with a single seek (keys are UTF-8, so `group ||
    /// 0xff` lies past every key of the group and `key || 0x00` is the
    /// key's immediate successor).
    fn skip_scan_objects(
        &self,
        req: &ScanRequest,
        plen: usize,
        delim: &[u8],
    ) -> Result<Vec<ObjectSummary>, IndexError> {
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
        let rows = self.query(
            &sql,
            &[&self.bucket, key, &plen, &delim, &limit, &req.before],
        )?;
        rows.iter()
            .map(|r| {
                // Group anchors only need their key (no row was joined).
                let version: Option<String> = r.try_get(1)?;
                match version {
                    Some(_) => summary(r, false),
                    None => Ok(anchor(key_from(r.try_get(0)?)?)),
                }
            })
            .collect()
    }
}

impl<C: GenericClient> BucketTx for PgTx<'_, C> {
    fn lock_head(&mut self) -> Result<HeadRow, IndexError> {
        let row = self
            .query_opt(
                "SELECT head, seq, next_ord FROM buckets WHERE name = $1 FOR UPDATE",
                &[&self.bucket],
            )?
            .ok_or_else(|| IndexError::NoSuchBucket(self.bucket.to_string()))?;
        let head: Vec<u8> = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        Ok(HeadRow {
            head: cid_from(&head)?,
            seq: seq as u64,
            next_ord: row.try_get(2)?,
        })
    }

    fn set_head(&mut self, h: &NewHead<'_>) -> Result<(), IndexError> {
        let (head, seq) = (h.head.to_bytes(), h.seq as i64);
        match h.settings {
            Some(s) => self.execute(
                "UPDATE buckets SET head = $2, seq = $3, next_ord = $4, settings = $5 WHERE name = $1",
                &[&self.bucket, &head, &seq, &h.next_ord, &settings_bytes(s)?],
            )?,
            None => self.execute(
                "UPDATE buckets SET head = $2, seq = $3, next_ord = $4 WHERE name = $1",
                &[&self.bucket, &head, &seq, &h.next_ord],
            )?,
        };
        Ok(())
    }

    fn apply_puts(&mut self, run: &PutRun<'_>) -> Result<(), IndexError> {
        // Per-key point statements (their plans are index lookups whatever
        // the table statistics say; an unnest join was planned as a scan of
        // the whole bucket), sent together: tokio-postgres pipelines
        // concurrent queries on one connection, so each group costs one
        // round trip.
        let (c, bucket) = (self.c, self.bucket);
        self.wait(async {
            let delete = c
                .prepare_cached("DELETE FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3")
                .await?;
            let clear = c
                .prepare_cached(
                    "UPDATE versions SET is_latest = false WHERE bucket = $1 AND key = $2 AND is_latest",
                )
                .await?;
            let (delete, clear) = (&delete, &clear);
            futures_util::future::try_join_all(run.replaced.iter().map(|(k, v)| async move {
                c.execute(delete, &[&bucket, &k.as_bytes(), v]).await
            }))
            .await?;
            futures_util::future::try_join_all(
                run.keys
                    .iter()
                    .map(|k| async move { c.execute(clear, &[&bucket, &k.as_bytes()]).await }),
            )
            .await?;
            Ok(())
        })?;
        self.insert_versions(&run.rows)
    }

    fn delete_version(&mut self, key: &str, version_id: &str) -> Result<Option<bool>, IndexError> {
        let gone = self.query_opt(
            "DELETE FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3 RETURNING is_latest",
            &[&self.bucket, &key.as_bytes(), &version_id],
        )?;
        Ok(gone.map(|r| r.try_get(0)).transpose()?)
    }

    fn promote_newest(&mut self, key: &str) -> Result<(), IndexError> {
        self.execute(
            "UPDATE versions SET is_latest = true WHERE bucket = $1 AND key = $2
             AND ord = (SELECT MIN(ord) FROM versions WHERE bucket = $1 AND key = $2)",
            &[&self.bucket, &key.as_bytes()],
        )?;
        Ok(())
    }

    fn replace_version(
        &mut self,
        key: &str,
        version_id: &str,
        cid: &Cid,
        m: &Manifest,
    ) -> Result<bool, IndexError> {
        let n = self.execute(
            "UPDATE versions SET manifest_cid = $4, manifest = $5, size = $6, etag = $7, last_modified = $8,
             is_delete_marker = $9 WHERE bucket = $1 AND key = $2 AND version_id = $3",
            &[
                &self.bucket,
                &key.as_bytes(),
                &version_id,
                &cid.to_bytes(),
                &manifest_bytes(m)?,
                &(m.size as i64),
                &m.etag,
                &m.created,
                &m.delete_marker,
            ],
        )?;
        Ok(n > 0)
    }

    fn clear_versions(&mut self) -> Result<(), IndexError> {
        self.execute("DELETE FROM versions WHERE bucket = $1", &[&self.bucket])?;
        Ok(())
    }

    /// One statement for all rows (arrays unnested server-side): a round
    /// trip per batch, not per row.
    fn insert_versions(&mut self, rows: &[NewVersion<'_>]) -> Result<(), IndexError> {
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
        self.execute(
            "INSERT INTO versions (bucket, key, ord, version_id, is_latest, is_delete_marker, size, etag, last_modified, manifest_cid, manifest)
             SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::text[], $5::bool[], $6::bool[], $7::bigint[], $8::text[],
                                      $9::bigint[], $10::bytea[], $11::bytea[])",
            &[
                &self.bucket, &keys, &ords, &vids, &latest, &markers, &sizes, &etags, &times, &cids,
                &manifests,
            ],
        )?;
        Ok(())
    }

    fn upload_exists(&mut self, upload_id: &str, lock: bool) -> Result<bool, IndexError> {
        let sql = if lock {
            "SELECT 1 FROM uploads WHERE bucket = $1 AND upload_id = $2 FOR SHARE"
        } else {
            "SELECT 1 FROM uploads WHERE bucket = $1 AND upload_id = $2"
        };
        Ok(self.query_opt(sql, &[&self.bucket, &upload_id])?.is_some())
    }

    fn insert_upload(&mut self, u: &Upload) -> Result<(), IndexError> {
        self.execute(
            "INSERT INTO uploads (bucket, upload_id, key, initiated, meta) VALUES ($1, $2, $3, $4, $5)",
            &[&self.bucket, &u.upload_id, &u.key.as_bytes(), &u.initiated_ms, &u.meta],
        )?;
        Ok(())
    }

    fn delete_upload(&mut self, upload_id: &str) -> Result<bool, IndexError> {
        let n = self.execute(
            "DELETE FROM uploads WHERE bucket = $1 AND upload_id = $2",
            &[&self.bucket, &upload_id],
        )?;
        Ok(n > 0)
    }

    fn part(&mut self, upload_id: &str, number: u32) -> Result<Option<Part>, IndexError> {
        self.query_opt(
            &format!("SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND number = $2"),
            &[&upload_id, &(number as i32)],
        )?
        .map(|r| part_from(&r))
        .transpose()
    }

    fn upsert_part(&mut self, upload_id: &str, p: &Part) -> Result<(), IndexError> {
        self.execute(
            "INSERT INTO parts (upload_id, number, size, etag, root, last_modified, meta) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, etag = excluded.etag,
               root = excluded.root, last_modified = excluded.last_modified, meta = excluded.meta",
            &[&upload_id, &(p.number as i32), &(p.size as i64), &p.etag, &p.root.to_bytes(), &p.last_modified_ms, &p.meta],
        )?;
        Ok(())
    }

    fn parts_after(
        &mut self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, IndexError> {
        self.query(
            &format!("SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND number > $2 ORDER BY number LIMIT $3"),
            &[&upload_id, &(after as i32), &(limit as i64)],
        )?
        .iter()
        .map(part_from)
        .collect()
    }

    fn delete_parts(&mut self, upload_id: &str) -> Result<Vec<Part>, IndexError> {
        self.query(
            &format!("DELETE FROM parts WHERE upload_id = $1 RETURNING {PART_COLS}"),
            &[&upload_id],
        )?
        .iter()
        .map(part_from)
        .collect()
    }

    fn mmr_size(&mut self) -> Result<u64, IndexError> {
        self.rt.block_on(mmr_size(self.c, self.bucket))
    }

    fn insert_mmr(&mut self, nodes: &[(u64, [u8; 32])]) -> Result<(), IndexError> {
        let pos: Vec<i64> = nodes.iter().map(|(p, _)| *p as i64).collect();
        let hashes: Vec<&[u8]> = nodes.iter().map(|(_, h)| &h[..]).collect();
        self.execute(
            "INSERT INTO mmr (bucket, pos, hash) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
            &[&self.bucket, &pos, &hashes],
        )?;
        Ok(())
    }

    fn put_commits(&mut self, rows: &[CommitRow]) -> Result<(), IndexError> {
        if rows.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
        let cids: Vec<Vec<u8>> = rows.iter().map(|r| r.cid.to_bytes()).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.time_ms).collect();
        self.execute(
            "INSERT INTO commits (bucket, seq, cid, time)
             SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bigint[])
             ON CONFLICT (bucket, seq) DO UPDATE SET cid = excluded.cid, time = excluded.time",
            &[&self.bucket, &seqs, &cids, &times],
        )?;
        Ok(())
    }

    fn commits_from(&mut self, from_seq: u64, limit: usize) -> Result<Vec<CommitRow>, IndexError> {
        self.query(
            "SELECT seq, cid, time FROM commits WHERE bucket = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            &[&self.bucket, &(from_seq as i64), &(limit as i64)],
        )?
        .iter()
        .map(|r| {
            Ok(CommitRow {
                seq: r.try_get::<_, i64>(0)? as u64,
                cid: cid_from(r.try_get::<_, &[u8]>(1)?)?,
                time_ms: r.try_get(2)?,
            })
        })
        .collect()
    }

    fn version_ord(&mut self, key: &str, version_id: &str) -> Result<Option<i64>, IndexError> {
        let row = self.query_opt(
            "SELECT ord FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3",
            &[&self.bucket, &key.as_bytes(), &version_id],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn upload_seq(&mut self, key: &str, upload_id: &str) -> Result<Option<i64>, IndexError> {
        let row = self.query_opt(
            "SELECT seq FROM uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3",
            &[&self.bucket, &key.as_bytes(), &upload_id],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn scan_objects(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError> {
        match &req.skip {
            Some((plen, delim)) => self.skip_scan_objects(req, *plen, delim),
            None => self.scan(&OBJECTS, req, |r| summary(r, false)),
        }
    }

    fn scan_versions(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError> {
        self.scan(&VERSIONS, req, |r| summary(r, true))
    }

    fn scan_uploads(&mut self, req: &ScanRequest) -> Result<Vec<(Upload, i64)>, IndexError> {
        self.scan(&UPLOADS, req, upload_from)
    }
}
