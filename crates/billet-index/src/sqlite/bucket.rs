//! One bucket's database: the seam's row operations ([`SqliteTx`]) and the
//! point reads the index serves directly (synchronous; callers run them on
//! a blocking thread).

use billet_block::Cid;
use rusqlite::{Connection, OptionalExtension, Row as SqlRow, params};

use crate::error::IndexError;
use crate::list::{Cursor, ScanRequest};
use crate::rows::{
    cid_from, key_from, manifest_bytes, manifest_from, settings_bytes, settings_from,
};
use crate::scans::{OBJECTS, ScanSql, UPLOADS, VERSIONS};
use crate::tx::{BucketTx, HeadRow, NewHead, NewVersion, PutRun};
use crate::types::*;

pub(super) fn init(conn: &Connection, b: &BucketState) -> Result<(), IndexError> {
    conn.execute_batch(super::schema::BUCKET)?;
    conn.execute(
        "INSERT INTO meta (id, name, head, seq, settings, next_ord) VALUES (0, ?1, ?2, ?3, ?4, -1)",
        params![
            b.name,
            b.head.to_bytes(),
            b.seq as i64,
            settings_bytes(&b.settings)?
        ],
    )?;
    Ok(())
}

pub(super) fn head(
    conn: &Connection,
) -> Result<(Cid, u64, billet_records::BucketSettings), IndexError> {
    let (head, seq, settings): (Vec<u8>, i64, Vec<u8>) = conn
        .prepare_cached("SELECT head, seq, settings FROM meta WHERE id = 0")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok((cid_from(&head)?, seq as u64, settings_from(&settings)?))
}

pub(super) fn is_empty(conn: &Connection) -> Result<bool, IndexError> {
    let versions: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM versions)", [], |r| r.get(0))?;
    let uploads: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM uploads)", [], |r| r.get(0))?;
    Ok(!versions && !uploads)
}

fn insert_version(tx: &Connection, v: &NewVersion<'_>) -> Result<(), IndexError> {
    let m = v.manifest;
    tx.prepare_cached(
        "INSERT INTO versions (key, ord, version_id, is_latest, is_delete_marker, size, etag, last_modified, manifest_cid, manifest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        v.key.as_bytes(),
        v.ord,
        v.version_id,
        v.latest,
        m.delete_marker,
        m.size as i64,
        m.etag,
        m.created,
        v.cid.to_bytes(),
        manifest_bytes(m)?
    ])?;
    Ok(())
}

const VERSION_COLS: &str = "key, version_id, is_latest, ord, manifest_cid, manifest";

fn version_from(r: &SqlRow<'_>) -> Result<ObjectVersion, IndexError> {
    let key: Vec<u8> = r.get(0)?;
    let cid: Vec<u8> = r.get(4)?;
    let manifest: Vec<u8> = r.get(5)?;
    Ok(ObjectVersion {
        key: key_from(key)?,
        version_id: r.get(1)?,
        is_latest: r.get(2)?,
        order: r.get(3)?,
        manifest_cid: cid_from(&cid)?,
        manifest: manifest_from(&manifest)?,
    })
}

pub(super) fn object(
    conn: &Connection,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>, IndexError> {
    let row = match version_id {
        None => conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM versions WHERE key = ?1 AND is_latest = 1"
            ))?
            .query_row(params![key.as_bytes()], |r| Ok(version_from(r)))
            .optional()?,
        Some(v) => conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM versions WHERE key = ?1 AND version_id = ?2"
            ))?
            .query_row(params![key.as_bytes(), v], |r| Ok(version_from(r)))
            .optional()?,
    };
    row.transpose()
}

/// Live objects only, as a condition ahead of the cursor's.
const LIVE: &str = "is_latest = 1 AND is_delete_marker = 0 AND";

/// `(condition, cursor params)` for a cursor over `(key, second)`.
fn cursor_sql(c: &Cursor, second: &str) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    match c {
        Cursor::From(k) => ("key >= ?1".into(), vec![Value::Blob(k.clone())]),
        Cursor::After(k) => ("key > ?1".into(), vec![Value::Blob(k.clone())]),
        Cursor::AfterVersion(k, o) => (
            format!("(key, {second}) > (?1, ?2)"),
            vec![Value::Blob(k.clone()), Value::Integer(*o)],
        ),
    }
}

fn scan<T>(
    conn: &Connection,
    table: &ScanSql,
    req: &ScanRequest,
    map: impl Fn(&SqlRow<'_>) -> Result<T, IndexError>,
) -> Result<Vec<T>, IndexError> {
    let ScanSql {
        select,
        live_only,
        order,
        second,
    } = table;
    use rusqlite::types::Value;
    let filter = if *live_only { LIVE } else { "" };
    let (cond, mut args) = cursor_sql(&req.cursor, second);
    let mut sql = format!("{select} WHERE {filter} {cond}");
    if let Some(b) = &req.before {
        args.push(Value::Blob(b.clone()));
        sql.push_str(&format!(" AND key < ?{}", args.len()));
    }
    args.push(Value::Integer(req.limit as i64));
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::with_capacity(req.limit.min(1024));
    while let Some(r) = rows.next()? {
        out.push(map(r)?);
    }
    Ok(out)
}

/// ListObjects with a delimiter: one recursive query that walks the index
/// from key to key, jumping over each common-prefix group with a single
/// seek (keys are UTF-8, so `group || 0xff` lies past every key of the
/// group and `key || 0x00` is the key's immediate successor). Returns the
/// first row of each group and every row outside groups. (Measured against
/// a loop of prepared single-row seeks: the recursive query is ~1.8x faster.)
fn skip_scan_objects(
    conn: &Connection,
    req: &ScanRequest,
    plen: usize,
    delim: &[u8],
) -> Result<Vec<ObjectSummary>, IndexError> {
    use rusqlite::types::Value;
    let live = "is_latest = 1 AND is_delete_marker = 0";
    let (first, key) = match &req.cursor {
        Cursor::From(k) => (">=", k),
        Cursor::After(k) | Cursor::AfterVersion(k, _) => (">", k),
    };
    let bound = if req.before.is_some() {
        "AND key < ?5"
    } else {
        "AND ?5 IS NULL"
    };
    let sql = format!(
        "WITH RECURSIVE anchors(k) AS (
            SELECT (SELECT key FROM versions WHERE {live} AND key {first} ?1 {bound} ORDER BY key LIMIT 1)
            UNION ALL
            SELECT (SELECT key FROM versions WHERE {live} AND key >= (
                        CASE WHEN instr(substr(a.k, ?2 + 1), ?3) > 0
                             THEN unhex(hex(substr(a.k, 1, ?2 + instr(substr(a.k, ?2 + 1), ?3) + length(?3) - 1)) || 'FF')
                             ELSE unhex(hex(a.k) || '00') END)
                    {bound} ORDER BY key LIMIT 1)
            FROM anchors a WHERE a.k IS NOT NULL
            LIMIT ?4
        )
        SELECT v.key, v.version_id, v.size, v.etag, v.last_modified, v.ord
        FROM anchors a JOIN versions v ON v.key = a.k AND v.is_latest = 1 AND v.is_delete_marker = 0
        ORDER BY v.key"
    );
    let args = vec![
        Value::Blob(key.clone()),
        Value::Integer(plen as i64),
        Value::Blob(delim.to_vec()),
        Value::Integer(req.limit as i64),
        req.before.clone().map_or(Value::Null, Value::Blob),
    ];
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::with_capacity(req.limit.min(1024));
    while let Some(r) = rows.next()? {
        out.push(summary(r, false)?);
    }
    Ok(out)
}

fn summary(r: &SqlRow<'_>, latest_and_marker: bool) -> Result<ObjectSummary, IndexError> {
    let key: Vec<u8> = r.get(0)?;
    let size: i64 = r.get(2)?;
    Ok(ObjectSummary {
        key: key_from(key)?,
        version_id: r.get(1)?,
        size: size as u64,
        etag: r.get(3)?,
        last_modified_ms: r.get(4)?,
        order: r.get(5)?,
        is_latest: if latest_and_marker { r.get(6)? } else { true },
        delete_marker: if latest_and_marker { r.get(7)? } else { false },
    })
}

// Multipart uploads.

fn upload_from(r: &SqlRow<'_>) -> Result<(Upload, i64), IndexError> {
    let key: Vec<u8> = r.get(1)?;
    Ok((
        Upload {
            upload_id: r.get(0)?,
            key: key_from(key)?,
            initiated_ms: r.get(2)?,
            meta: r.get(3)?,
        },
        r.get(4)?,
    ))
}

pub(super) fn upload(conn: &Connection, upload_id: &str) -> Result<Option<Upload>, IndexError> {
    conn.prepare_cached(
        "SELECT upload_id, key, initiated, meta, seq FROM uploads WHERE upload_id = ?1",
    )?
    .query_row(params![upload_id], |r| Ok(upload_from(r)))
    .optional()?
    .transpose()
    .map(|o| o.map(|(u, _)| u))
}

fn part_from(r: &SqlRow<'_>) -> Result<Part, IndexError> {
    let root: Vec<u8> = r.get(3)?;
    let size: i64 = r.get(1)?;
    let number: i64 = r.get(0)?;
    Ok(Part {
        number: number as u32,
        size: size as u64,
        etag: r.get(2)?,
        root: cid_from(&root)?,
        last_modified_ms: r.get(4)?,
        meta: r.get(5)?,
    })
}

const PART_COLS: &str = "number, size, etag, root, last_modified, meta";

pub(super) fn stale_uploads(
    conn: &Connection,
    before_ms: i64,
    max: usize,
) -> Result<Vec<Upload>, IndexError> {
    let mut stmt =
        conn.prepare_cached("SELECT upload_id, key, initiated, meta, seq FROM uploads WHERE initiated < ?1 ORDER BY seq LIMIT ?2")?;
    let mut rows = stmt.query(params![before_ms, max as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(upload_from(r)?.0);
    }
    Ok(out)
}

// MMR.

pub(super) fn mmr_size(conn: &Connection) -> Result<u64, IndexError> {
    let max: Option<i64> = conn.query_row("SELECT MAX(pos) FROM mmr", [], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

pub(super) fn mmr_nodes(
    conn: &Connection,
    positions: &[u64],
) -> Result<Vec<Option<[u8; 32]>>, IndexError> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM mmr WHERE pos = ?1")?;
    positions
        .iter()
        .map(|p| {
            let h: Option<Vec<u8>> = stmt
                .query_row(params![*p as i64], |r| r.get(0))
                .optional()?;
            h.map(|h| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map_err(|_| IndexError::Corrupt(format!("MMR node {p} is not 32 bytes")))
            })
            .transpose()
        })
        .collect()
}

/// A bucket database inside the caller's transaction (or, for reads, on
/// its own connection).
pub(super) struct SqliteTx<'c>(pub &'c Connection);

impl BucketTx for SqliteTx<'_> {
    fn lock_head(&mut self) -> Result<HeadRow, IndexError> {
        // The caller's IMMEDIATE transaction already holds the write lock.
        let (head, seq, next_ord): (Vec<u8>, i64, i64) = self
            .0
            .prepare_cached("SELECT head, seq, next_ord FROM meta WHERE id = 0")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(HeadRow {
            head: cid_from(&head)?,
            seq: seq as u64,
            next_ord,
        })
    }

    fn set_head(&mut self, h: &NewHead<'_>) -> Result<(), IndexError> {
        match h.settings {
            Some(s) => self.0.execute(
                "UPDATE meta SET head = ?1, seq = ?2, next_ord = ?3, settings = ?4 WHERE id = 0",
                params![
                    h.head.to_bytes(),
                    h.seq as i64,
                    h.next_ord,
                    settings_bytes(s)?
                ],
            )?,
            None => self.0.execute(
                "UPDATE meta SET head = ?1, seq = ?2, next_ord = ?3 WHERE id = 0",
                params![h.head.to_bytes(), h.seq as i64, h.next_ord],
            )?,
        };
        Ok(())
    }

    fn apply_puts(&mut self, run: &PutRun<'_>) -> Result<(), IndexError> {
        let c = self.0;
        let mut delete =
            c.prepare_cached("DELETE FROM versions WHERE key = ?1 AND version_id = ?2")?;
        for (key, vid) in &run.replaced {
            delete.execute(params![key.as_bytes(), vid])?;
        }
        let mut clear =
            c.prepare_cached("UPDATE versions SET is_latest = 0 WHERE key = ?1 AND is_latest = 1")?;
        for key in &run.keys {
            clear.execute(params![key.as_bytes()])?;
        }
        self.insert_versions(&run.rows)
    }

    fn delete_version(&mut self, key: &str, version_id: &str) -> Result<Option<bool>, IndexError> {
        Ok(self
            .0
            .prepare_cached(
                "DELETE FROM versions WHERE key = ?1 AND version_id = ?2 RETURNING is_latest",
            )?
            .query_row(params![key.as_bytes(), version_id], |r| r.get(0))
            .optional()?)
    }

    fn promote_newest(&mut self, key: &str) -> Result<(), IndexError> {
        self.0
            .prepare_cached(
                "UPDATE versions SET is_latest = 1
                 WHERE key = ?1 AND ord = (SELECT MIN(ord) FROM versions WHERE key = ?1)",
            )?
            .execute(params![key.as_bytes()])?;
        Ok(())
    }

    fn replace_version(
        &mut self,
        key: &str,
        version_id: &str,
        cid: &Cid,
        m: &billet_records::Manifest,
    ) -> Result<bool, IndexError> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE versions SET manifest_cid = ?3, manifest = ?4, size = ?5, etag = ?6, last_modified = ?7,
                 is_delete_marker = ?8 WHERE key = ?1 AND version_id = ?2",
            )?
            .execute(params![
                key.as_bytes(),
                version_id,
                cid.to_bytes(),
                manifest_bytes(m)?,
                m.size as i64,
                m.etag,
                m.created,
                m.delete_marker
            ])?;
        Ok(n > 0)
    }

    fn clear_versions(&mut self) -> Result<(), IndexError> {
        self.0.execute("DELETE FROM versions", [])?;
        Ok(())
    }

    fn insert_versions(&mut self, rows: &[NewVersion<'_>]) -> Result<(), IndexError> {
        for v in rows {
            insert_version(self.0, v)?;
        }
        Ok(())
    }

    fn upload_exists(&mut self, upload_id: &str, _lock: bool) -> Result<bool, IndexError> {
        // SQLite transactions that write hold the database's write lock.
        Ok(self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM uploads WHERE upload_id = ?1)")?
            .query_row(params![upload_id], |r| r.get(0))?)
    }

    fn insert_upload(&mut self, u: &Upload) -> Result<(), IndexError> {
        self.0
            .prepare_cached(
                "INSERT INTO uploads (upload_id, key, initiated, meta) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                u.upload_id,
                u.key.as_bytes(),
                u.initiated_ms,
                u.meta
            ])?;
        Ok(())
    }

    fn delete_upload(&mut self, upload_id: &str) -> Result<bool, IndexError> {
        let n = self
            .0
            .prepare_cached("DELETE FROM uploads WHERE upload_id = ?1")?
            .execute(params![upload_id])?;
        Ok(n > 0)
    }

    fn part(&mut self, upload_id: &str, number: u32) -> Result<Option<Part>, IndexError> {
        self.0
            .prepare_cached(&format!(
                "SELECT {PART_COLS} FROM parts WHERE upload_id = ?1 AND number = ?2"
            ))?
            .query_row(params![upload_id, number], |r| Ok(part_from(r)))
            .optional()?
            .transpose()
    }

    fn upsert_part(&mut self, upload_id: &str, p: &Part) -> Result<(), IndexError> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO parts (upload_id, number, size, etag, root, last_modified, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                upload_id,
                p.number,
                p.size as i64,
                p.etag,
                p.root.to_bytes(),
                p.last_modified_ms,
                p.meta
            ])?;
        Ok(())
    }

    fn parts_after(
        &mut self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, IndexError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {PART_COLS} FROM parts WHERE upload_id = ?1 AND number > ?2 ORDER BY number LIMIT ?3"
        ))?;
        let mut rows = stmt.query(params![upload_id, after, limit as i64])?;
        let mut parts = Vec::new();
        while let Some(r) = rows.next()? {
            parts.push(part_from(r)?);
        }
        Ok(parts)
    }

    fn delete_parts(&mut self, upload_id: &str) -> Result<Vec<Part>, IndexError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "DELETE FROM parts WHERE upload_id = ?1 RETURNING {PART_COLS}"
        ))?;
        let mut rows = stmt.query(params![upload_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(part_from(r)?);
        }
        Ok(out)
    }

    fn mmr_size(&mut self) -> Result<u64, IndexError> {
        mmr_size(self.0)
    }

    fn insert_mmr(&mut self, nodes: &[(u64, [u8; 32])]) -> Result<(), IndexError> {
        let mut stmt = self
            .0
            .prepare_cached("INSERT INTO mmr (pos, hash) VALUES (?1, ?2)")?;
        for (pos, hash) in nodes {
            stmt.execute(params![*pos as i64, &hash[..]])?;
        }
        Ok(())
    }

    fn put_commits(&mut self, rows: &[CommitRow]) -> Result<(), IndexError> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO commits (seq, cid, time) VALUES (?1, ?2, ?3)
             ON CONFLICT (seq) DO UPDATE SET cid = excluded.cid, time = excluded.time",
        )?;
        for r in rows {
            stmt.execute(params![r.seq as i64, r.cid.to_bytes(), r.time_ms])?;
        }
        Ok(())
    }

    fn commits_from(&mut self, from_seq: u64, limit: usize) -> Result<Vec<CommitRow>, IndexError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, cid, time FROM commits WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![from_seq as i64, limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(CommitRow {
                seq: r.get::<_, i64>(0)? as u64,
                cid: cid_from(&r.get::<_, Vec<u8>>(1)?)?,
                time_ms: r.get(2)?,
            });
        }
        Ok(out)
    }

    fn version_ord(&mut self, key: &str, version_id: &str) -> Result<Option<i64>, IndexError> {
        Ok(self
            .0
            .prepare_cached("SELECT ord FROM versions WHERE key = ?1 AND version_id = ?2")?
            .query_row(params![key.as_bytes(), version_id], |r| r.get(0))
            .optional()?)
    }

    fn upload_seq(&mut self, key: &str, upload_id: &str) -> Result<Option<i64>, IndexError> {
        Ok(self
            .0
            .prepare_cached("SELECT seq FROM uploads WHERE key = ?1 AND upload_id = ?2")?
            .query_row(params![key.as_bytes(), upload_id], |r| r.get(0))
            .optional()?)
    }

    fn scan_objects(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError> {
        match &req.skip {
            Some((plen, delim)) => skip_scan_objects(self.0, req, *plen, delim),
            None => scan(self.0, &OBJECTS, req, |r| summary(r, false)),
        }
    }

    fn scan_versions(&mut self, req: &ScanRequest) -> Result<Vec<ObjectSummary>, IndexError> {
        scan(self.0, &VERSIONS, req, |r| summary(r, true))
    }

    fn scan_uploads(&mut self, req: &ScanRequest) -> Result<Vec<(Upload, i64)>, IndexError> {
        scan(self.0, &UPLOADS, req, upload_from)
    }
}
