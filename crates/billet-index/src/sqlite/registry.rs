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

pub(super) fn put_segment(conn: &Connection, s: &SegmentRecord) -> Result<(), IndexError> {
    conn.prepare_cached(
        "INSERT INTO segments (plane, id, state, bytes, blocks, sealed, shipped, remote_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (plane, id) DO UPDATE SET state = excluded.state, bytes = excluded.bytes,
           blocks = excluded.blocks, sealed = excluded.sealed, shipped = excluded.shipped,
           remote_key = excluded.remote_key",
    )?
    .execute(params![
        s.plane,
        s.id as i64,
        s.state,
        s.bytes as i64,
        s.blocks as i64,
        s.sealed_ms,
        s.shipped_ms,
        s.remote_key
    ])?;
    Ok(())
}

pub(super) fn segments(conn: &Connection) -> Result<Vec<SegmentRecord>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT plane, id, state, bytes, blocks, sealed, shipped, remote_key FROM segments ORDER BY plane, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: i64 = r.get(1)?;
        let bytes: i64 = r.get(3)?;
        let blocks: i64 = r.get(4)?;
        Ok(SegmentRecord {
            plane: r.get(0)?,
            id: id as u64,
            state: r.get(2)?,
            bytes: bytes as u64,
            blocks: blocks as u64,
            sealed_ms: r.get(5)?,
            shipped_ms: r.get(6)?,
            remote_key: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn enqueue_remote_delete(
    conn: &Connection,
    key: &str,
    now: i64,
) -> Result<(), IndexError> {
    conn.prepare_cached("INSERT INTO pending_deletes (remote_key, enqueued) VALUES (?1, ?2)")?
        .execute(params![key, now])?;
    Ok(())
}

pub(super) fn pending_remote_deletes(
    conn: &Connection,
    max: usize,
) -> Result<Vec<PendingDelete>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, remote_key, enqueued, attempts FROM pending_deletes ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![max as i64], |r| {
        let attempts: i64 = r.get(3)?;
        Ok(PendingDelete {
            id: r.get(0)?,
            remote_key: r.get(1)?,
            enqueued_ms: r.get(2)?,
            attempts: attempts as u32,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn finish_remote_delete(
    conn: &Connection,
    id: i64,
    done: bool,
) -> Result<(), IndexError> {
    if done {
        conn.execute("DELETE FROM pending_deletes WHERE id = ?1", params![id])?;
    } else {
        conn.execute(
            "UPDATE pending_deletes SET attempts = attempts + 1 WHERE id = ?1",
            params![id],
        )?;
    }
    Ok(())
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        id: r.get(0)?,
        secret: r.get(1)?,
        owner: r.get(2)?,
        created_ms: r.get(3)?,
        disabled: r.get(4)?,
    })
}

pub(super) fn put_access_key(conn: &Connection, k: &AccessKey) -> Result<(), IndexError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO access_keys (id, secret, owner, created, disabled) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![k.id, k.secret, k.owner, k.created_ms, k.disabled])?;
    if n == 0 {
        return Err(IndexError::AccessKeyExists(k.id.clone()));
    }
    Ok(())
}

pub(super) fn access_key(conn: &Connection, id: &str) -> Result<Option<AccessKey>, IndexError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, secret, owner, created, disabled FROM access_keys WHERE id = ?1",
        )?
        .query_row(params![id], key_from_row)
        .optional()?)
}

pub(super) fn access_keys(conn: &Connection) -> Result<Vec<AccessKey>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, secret, owner, created, disabled FROM access_keys ORDER BY id",
    )?;
    let rows = stmt.query_map([], key_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn set_access_key_disabled(
    conn: &Connection,
    id: &str,
    disabled: bool,
) -> Result<bool, IndexError> {
    Ok(conn.execute(
        "UPDATE access_keys SET disabled = ?2 WHERE id = ?1",
        params![id, disabled],
    )? > 0)
}

pub(super) fn delete_access_key(conn: &Connection, id: &str) -> Result<bool, IndexError> {
    Ok(conn.execute("DELETE FROM access_keys WHERE id = ?1", params![id])? > 0)
}
