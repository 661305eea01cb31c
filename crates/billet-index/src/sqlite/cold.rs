//! The cold tier's rows in the registry database: shipped segments,
//! pending remote deletes, shipped heads.

use rusqlite::{Connection, params};

use crate::error::IndexError;
use crate::rows::cid_from;
use crate::types::{PendingDelete, RemoteSegment, RemoteState, ShippedHead};

fn segment_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RemoteSegment, String)> {
    let sha: Option<Vec<u8>> = r.get(9)?;
    let state: String = r.get(3)?;
    Ok((
        RemoteSegment {
            node: r.get(0)?,
            plane: r.get(1)?,
            id: r.get::<_, i64>(2)? as u64,
            state: RemoteState::Shipped,
            bytes: r.get::<_, i64>(4)? as u64,
            stored_bytes: r.get::<_, i64>(5)? as u64,
            encoding: r.get(6)?,
            remote_key: r.get(7)?,
            sidecar_key: r.get(8)?,
            sha256: sha.and_then(|s| s.try_into().ok()),
            shipped_ms: r.get(10)?,
        },
        state,
    ))
}

pub(super) fn put_segment(c: &Connection, s: &RemoteSegment) -> Result<(), IndexError> {
    c.prepare_cached(
        "INSERT INTO segments (node, plane, id, state, bytes, stored_bytes, encoding, remote_key, sidecar_key, sha256, shipped)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (node, plane, id) DO UPDATE SET state = excluded.state, bytes = excluded.bytes,
           stored_bytes = excluded.stored_bytes, encoding = excluded.encoding, remote_key = excluded.remote_key,
           sidecar_key = excluded.sidecar_key, sha256 = excluded.sha256, shipped = excluded.shipped",
    )?
    .execute(params![
        s.node,
        s.plane,
        s.id as i64,
        s.state.name(),
        s.bytes as i64,
        s.stored_bytes as i64,
        s.encoding,
        s.remote_key,
        s.sidecar_key,
        s.sha256.map(|h| h.to_vec()),
        s.shipped_ms
    ])?;
    Ok(())
}

pub(super) fn set_segment_state(
    c: &Connection,
    node: &str,
    plane: &str,
    id: u64,
    state: RemoteState,
) -> Result<bool, IndexError> {
    Ok(c.prepare_cached(
        "UPDATE segments SET state = ?4 WHERE node = ?1 AND plane = ?2 AND id = ?3",
    )?
    .execute(params![node, plane, id as i64, state.name()])?
        > 0)
}

pub(super) fn retire_segment(
    c: &Connection,
    node: &str,
    plane: &str,
    id: u64,
    moved_to: u64,
) -> Result<bool, IndexError> {
    Ok(c.prepare_cached(
        "UPDATE segments SET state = 'retired', moved_to = ?4 WHERE node = ?1 AND plane = ?2 AND id = ?3",
    )?
    .execute(params![node, plane, id as i64, moved_to as i64])?
        > 0)
}

pub(super) fn retired_segments(
    c: &Connection,
    node: &str,
) -> Result<Vec<(String, u64, u64)>, IndexError> {
    let mut stmt = c.prepare_cached(
        "SELECT plane, id, moved_to FROM segments WHERE node = ?1 AND state = 'retired' ORDER BY plane, id",
    )?;
    let rows = stmt.query_map(params![node], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn segments(c: &Connection, node: &str) -> Result<Vec<RemoteSegment>, IndexError> {
    let mut stmt = c.prepare_cached(
        "SELECT node, plane, id, state, bytes, stored_bytes, encoding, remote_key, sidecar_key, sha256, shipped
         FROM segments WHERE node = ?1 ORDER BY plane, id",
    )?;
    let rows = stmt.query_map(params![node], segment_from)?;
    let mut out = Vec::new();
    for r in rows {
        let (mut s, state) = r?;
        s.state = RemoteState::parse(&state)
            .ok_or_else(|| IndexError::Corrupt(format!("segment state {state:?}")))?;
        out.push(s);
    }
    Ok(out)
}

pub(super) fn forget_segments(
    c: &Connection,
    node: &str,
    which: &[(String, u64)],
    now_ms: i64,
) -> Result<u64, IndexError> {
    let tx = c.unchecked_transaction()?;
    let mut n = 0;
    for (plane, id) in which {
        let keys: Option<(String, String)> = tx
            .prepare_cached(
                "DELETE FROM segments WHERE node = ?1 AND plane = ?2 AND id = ?3 RETURNING remote_key, sidecar_key",
            )?
            .query_row(params![node, plane, *id as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if let Some((object, sidecar)) = keys {
            for key in [object, sidecar] {
                tx.prepare_cached(
                    "INSERT INTO pending_deletes (remote_key, enqueued) VALUES (?1, ?2)",
                )?
                .execute(params![key, now_ms])?;
            }
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

pub(super) fn due_deletes(
    c: &Connection,
    now_ms: i64,
    max: usize,
) -> Result<Vec<PendingDelete>, IndexError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, remote_key, enqueued, attempts, not_before, last_error FROM pending_deletes
         WHERE not_before <= ?1 ORDER BY not_before, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, max as i64], |r| {
        Ok(PendingDelete {
            id: r.get(0)?,
            remote_key: r.get(1)?,
            enqueued_ms: r.get(2)?,
            attempts: r.get::<_, i64>(3)? as u32,
            not_before_ms: r.get(4)?,
            last_error: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn finish_delete(c: &Connection, id: i64) -> Result<(), IndexError> {
    c.prepare_cached("DELETE FROM pending_deletes WHERE id = ?1")?
        .execute(params![id])?;
    Ok(())
}

pub(super) fn retry_delete(
    c: &Connection,
    id: i64,
    not_before_ms: i64,
    error: &str,
) -> Result<(), IndexError> {
    c.prepare_cached(
        "UPDATE pending_deletes SET attempts = attempts + 1, not_before = ?2, last_error = ?3 WHERE id = ?1",
    )?
    .execute(params![id, not_before_ms, error])?;
    Ok(())
}

pub(super) fn pending_deletes(c: &Connection) -> Result<u64, IndexError> {
    Ok(
        c.query_row("SELECT count(*) FROM pending_deletes", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

pub(super) fn set_shipped_head(c: &Connection, h: &ShippedHead) -> Result<(), IndexError> {
    c.prepare_cached(
        "INSERT INTO shipped_heads (bucket, head, seq, shipped) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (bucket) DO UPDATE SET head = excluded.head, seq = excluded.seq, shipped = excluded.shipped",
    )?
    .execute(params![h.bucket, h.head.to_bytes(), h.seq as i64, h.shipped_ms])?;
    Ok(())
}

pub(super) fn shipped_heads(c: &Connection) -> Result<Vec<ShippedHead>, IndexError> {
    let mut stmt =
        c.prepare_cached("SELECT bucket, head, seq, shipped FROM shipped_heads ORDER BY bucket")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (bucket, head, seq, shipped_ms) = r?;
        out.push(ShippedHead {
            bucket,
            head: cid_from(&head)?,
            seq: seq as u64,
            shipped_ms,
        });
    }
    Ok(out)
}
