//! Access-control rows of the registry: each bucket's named access
//! settings and the keys' grants.

use rusqlite::{Connection, params};

use crate::error::IndexError;
use crate::types::Grant;

pub(super) fn bucket_settings(
    conn: &Connection,
    bucket: &str,
) -> Result<Vec<(String, String)>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, value FROM bucket_settings WHERE bucket = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![bucket], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets or clears one setting; false if there is no such bucket.
pub(super) fn set_bucket_setting(
    conn: &Connection,
    bucket: &str,
    name: &str,
    value: Option<&str>,
) -> Result<bool, IndexError> {
    let tx = conn.unchecked_transaction()?;
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = ?1)")?
        .query_row(params![bucket], |r| r.get(0))?;
    if !exists {
        return Ok(false);
    }
    match value {
        Some(v) => tx.execute(
            "INSERT INTO bucket_settings (bucket, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value",
            params![bucket, name, v],
        )?,
        None => tx.execute(
            "DELETE FROM bucket_settings WHERE bucket = ?1 AND name = ?2",
            params![bucket, name],
        )?,
    };
    tx.commit()?;
    Ok(true)
}

pub(super) fn grants(conn: &Connection, key_id: Option<&str>) -> Result<Vec<Grant>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_id, bucket, can_read, can_write, can_own FROM key_grants
         WHERE ?1 IS NULL OR key_id = ?1 ORDER BY key_id, bucket",
    )?;
    let rows = stmt.query_map(params![key_id], |r| {
        Ok(Grant {
            key_id: r.get(0)?,
            bucket: r.get(1)?,
            read: r.get(2)?,
            write: r.get(3)?,
            owner: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records a grant; one granting nothing removes the row.
pub(super) fn set_grant(conn: &Connection, g: &Grant) -> Result<(), IndexError> {
    if g.read || g.write || g.owner {
        conn.execute(
            "INSERT INTO key_grants (key_id, bucket, can_read, can_write, can_own)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key_id, bucket) DO UPDATE SET can_read = excluded.can_read,
                 can_write = excluded.can_write, can_own = excluded.can_own",
            params![g.key_id, g.bucket, g.read, g.write, g.owner],
        )?;
    } else {
        conn.execute(
            "DELETE FROM key_grants WHERE key_id = ?1 AND bucket = ?2",
            params![g.key_id, g.bucket],
        )?;
    }
    Ok(())
}
