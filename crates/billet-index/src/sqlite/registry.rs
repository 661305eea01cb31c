//! The registry database: buckets, access keys, segments, remote deletes.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::IndexError;
use crate::types::*;

pub(super) fn bucket_entry(
    conn: &Connection,
    name: &str,
) -> Result<Option<BucketEntry>, IndexError> {
    Ok(conn
        .prepare_cached("SELECT name, owner, created FROM buckets WHERE name = ?1")?
        .query_row(params![name], |r| {
            Ok(BucketEntry {
                name: r.get(0)?,
                owner: r.get(1)?,
                created_ms: r.get(2)?,
            })
        })
        .optional()?)
}

pub(super) fn retention(conn: &Connection, name: &str) -> Result<Option<Retention>, IndexError> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached("SELECT retain_secs, retain_commits FROM buckets WHERE name = ?1")?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(s, c)| Retention::from_columns(s, c)))
}

pub(super) fn set_retention(
    conn: &Connection,
    name: &str,
    r: Option<Retention>,
) -> Result<bool, IndexError> {
    let r = r.unwrap_or_default();
    Ok(conn
        .prepare_cached("UPDATE buckets SET retain_secs = ?2, retain_commits = ?3 WHERE name = ?1")?
        .execute(params![
            name,
            r.keep_secs.map(|v| v as i64),
            r.keep_commits.map(|v| v as i64)
        ])?
        > 0)
}

pub(super) fn buckets(conn: &Connection) -> Result<Vec<BucketEntry>, IndexError> {
    let mut stmt = conn.prepare_cached("SELECT name, owner, created FROM buckets ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(BucketEntry {
            name: r.get(0)?,
            owner: r.get(1)?,
            created_ms: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        id: r.get(0)?,
        secret: r.get(1)?,
        owner: r.get(2)?,
        created_ms: r.get(3)?,
        disabled: r.get(4)?,
        limited: r.get(5)?,
    })
}

pub(super) fn put_access_key(conn: &Connection, k: &AccessKey) -> Result<(), IndexError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO access_keys (id, secret, owner, created, disabled, limited)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            k.id,
            k.secret,
            k.owner,
            k.created_ms,
            k.disabled,
            k.limited
        ])?;
    if n == 0 {
        return Err(IndexError::AccessKeyExists(k.id.clone()));
    }
    Ok(())
}

pub(super) fn access_key(conn: &Connection, id: &str) -> Result<Option<AccessKey>, IndexError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, secret, owner, created, disabled, limited FROM access_keys WHERE id = ?1",
        )?
        .query_row(params![id], key_from_row)
        .optional()?)
}

pub(super) fn access_keys(conn: &Connection) -> Result<Vec<AccessKey>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, secret, owner, created, disabled, limited FROM access_keys ORDER BY id",
    )?;
    let rows = stmt.query_map([], key_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn delete_access_key(conn: &Connection, id: &str) -> Result<bool, IndexError> {
    // Together: a key made again under this id starts with no grants.
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM key_grants WHERE key_id = ?1", params![id])?;
    let n = tx.execute("DELETE FROM access_keys WHERE id = ?1", params![id])?;
    tx.commit()?;
    Ok(n > 0)
}

/// Removes a bucket's registry rows: its entry, shipped head, access
/// configuration and the grants naming it (so a bucket made again under
/// the name starts private), together.
pub(super) fn forget_bucket(conn: &Connection, name: &str) -> Result<(), IndexError> {
    let tx = conn.unchecked_transaction()?;
    for sql in [
        "DELETE FROM buckets WHERE name = ?1",
        "DELETE FROM shipped_heads WHERE bucket = ?1",
        "DELETE FROM bucket_settings WHERE bucket = ?1",
        "DELETE FROM key_grants WHERE bucket = ?1",
    ] {
        tx.execute(sql, params![name])?;
    }
    tx.commit()?;
    Ok(())
}
