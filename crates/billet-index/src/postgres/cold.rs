//! The cold tier's rows: shipped segments, pending remote deletes,
//! shipped heads.

use deadpool_postgres::{GenericClient, Object};

use crate::error::IndexError;
use crate::rows::cid_from;
use crate::types::{PendingDelete, RemoteSegment, RemoteState, ShippedHead};

const SEGMENT_COLS: &str = "node, plane, id, state, bytes, stored_bytes, encoding, remote_key, sidecar_key, sha256, shipped";

fn segment_from(r: &tokio_postgres::Row) -> Result<RemoteSegment, IndexError> {
    let state: String = r.try_get(3)?;
    let sha: Option<Vec<u8>> = r.try_get(9)?;
    Ok(RemoteSegment {
        node: r.try_get(0)?,
        plane: r.try_get(1)?,
        id: r.try_get::<_, i64>(2)? as u64,
        state: RemoteState::parse(&state)
            .ok_or_else(|| IndexError::Corrupt(format!("segment state {state:?}")))?,
        bytes: r.try_get::<_, i64>(4)? as u64,
        stored_bytes: r.try_get::<_, i64>(5)? as u64,
        encoding: r.try_get(6)?,
        remote_key: r.try_get(7)?,
        sidecar_key: r.try_get(8)?,
        sha256: sha.and_then(|s| s.try_into().ok()),
        shipped_ms: r.try_get(10)?,
    })
}

pub(super) async fn put_segment(
    c: &impl GenericClient,
    s: &RemoteSegment,
) -> Result<(), IndexError> {
    c.execute(
        "INSERT INTO segments (node, plane, id, state, bytes, stored_bytes, encoding, remote_key, sidecar_key, sha256, shipped)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (node, plane, id) DO UPDATE SET state = excluded.state, bytes = excluded.bytes,
           stored_bytes = excluded.stored_bytes, encoding = excluded.encoding, remote_key = excluded.remote_key,
           sidecar_key = excluded.sidecar_key, sha256 = excluded.sha256, shipped = excluded.shipped",
        &[
            &s.node,
            &s.plane,
            &(s.id as i64),
            &s.state.name(),
            &(s.bytes as i64),
            &(s.stored_bytes as i64),
            &s.encoding,
            &s.remote_key,
            &s.sidecar_key,
            &s.sha256.map(|h| h.to_vec()),
            &s.shipped_ms,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn set_segment_state(
    c: &impl GenericClient,
    node: &str,
    plane: &str,
    id: u64,
    state: RemoteState,
) -> Result<bool, IndexError> {
    Ok(c.execute(
        "UPDATE segments SET state = $4 WHERE node = $1 AND plane = $2 AND id = $3",
        &[&node, &plane, &(id as i64), &state.name()],
    )
    .await?
        > 0)
}

pub(super) async fn retire_segment(
    c: &mut Object,
    node: &str,
    plane: &str,
    id: u64,
    moved_to: u64,
) -> Result<bool, IndexError> {
    // Durable before the local files go: else the remote objects would be
    // forgotten, never deleted.
    let tx = c.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await?;
    let n = tx
        .execute(
            "UPDATE segments SET state = 'retired', moved_to = $4 WHERE node = $1 AND plane = $2 AND id = $3",
            &[&node, &plane, &(id as i64), &(moved_to as i64)],
        )
        .await?;
    tx.commit().await?;
    Ok(n > 0)
}

pub(super) async fn retired_segments(
    c: &impl GenericClient,
    node: &str,
) -> Result<Vec<(String, u64, u64)>, IndexError> {
    c.query(
        "SELECT plane, id, moved_to FROM segments WHERE node = $1 AND state = 'retired' ORDER BY plane, id",
        &[&node],
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get::<_, String>(0)?,
            r.try_get::<_, i64>(1)? as u64,
            r.try_get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
        ))
    })
    .collect()
}

pub(super) async fn segments(
    c: &impl GenericClient,
    node: &str,
) -> Result<Vec<RemoteSegment>, IndexError> {
    c.query(
        &format!("SELECT {SEGMENT_COLS} FROM segments WHERE node = $1 ORDER BY plane, id"),
        &[&node],
    )
    .await?
    .iter()
    .map(segment_from)
    .collect()
}

pub(super) async fn forget_segments(
    c: &mut Object,
    node: &str,
    which: &[(String, u64)],
    now_ms: i64,
) -> Result<u64, IndexError> {
    let tx = c.transaction().await?;
    let mut n = 0;
    for (plane, id) in which {
        let row = tx
            .query_opt(
                "DELETE FROM segments WHERE node = $1 AND plane = $2 AND id = $3 RETURNING remote_key, sidecar_key",
                &[&node, plane, &(*id as i64)],
            )
            .await?;
        if let Some(row) = row {
            for key in [row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?] {
                tx.execute(
                    "INSERT INTO pending_deletes (remote_key, enqueued) VALUES ($1, $2)",
                    &[&key, &now_ms],
                )
                .await?;
            }
            n += 1;
        }
    }
    tx.commit().await?;
    Ok(n)
}

pub(super) async fn due_deletes(
    c: &impl GenericClient,
    now_ms: i64,
    max: usize,
) -> Result<Vec<PendingDelete>, IndexError> {
    let rows = c
        .query(
            "SELECT id, remote_key, enqueued, attempts, not_before, last_error FROM pending_deletes
             WHERE not_before <= $1 ORDER BY not_before, id LIMIT $2",
            &[&now_ms, &(max as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingDelete {
                id: r.try_get(0)?,
                remote_key: r.try_get(1)?,
                enqueued_ms: r.try_get(2)?,
                attempts: r.try_get::<_, i32>(3)? as u32,
                not_before_ms: r.try_get(4)?,
                last_error: r.try_get(5)?,
            })
        })
        .collect()
}

pub(super) async fn finish_delete(c: &impl GenericClient, id: i64) -> Result<(), IndexError> {
    c.execute("DELETE FROM pending_deletes WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

pub(super) async fn retry_delete(
    c: &impl GenericClient,
    id: i64,
    not_before_ms: i64,
    error: &str,
) -> Result<(), IndexError> {
    c.execute(
        "UPDATE pending_deletes SET attempts = attempts + 1, not_before = $2, last_error = $3 WHERE id = $1",
        &[&id, &not_before_ms, &error],
    )
    .await?;
    Ok(())
}

pub(super) async fn pending_deletes(c: &impl GenericClient) -> Result<u64, IndexError> {
    let row = c
        .query_one("SELECT count(*) FROM pending_deletes", &[])
        .await?;
    Ok(row.try_get::<_, i64>(0)? as u64)
}

pub(super) async fn set_shipped_head(
    c: &impl GenericClient,
    h: &ShippedHead,
) -> Result<(), IndexError> {
    c.execute(
        "INSERT INTO shipped_heads (bucket, head, seq, shipped) VALUES ($1, $2, $3, $4)
         ON CONFLICT (bucket) DO UPDATE SET head = excluded.head, seq = excluded.seq, shipped = excluded.shipped",
        &[&h.bucket, &h.head.to_bytes(), &(h.seq as i64), &h.shipped_ms],
    )
    .await?;
    Ok(())
}

pub(super) async fn shipped_heads(c: &impl GenericClient) -> Result<Vec<ShippedHead>, IndexError> {
    let rows = c
        .query(
            "SELECT bucket, head, seq, shipped FROM shipped_heads ORDER BY bucket",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ShippedHead {
                bucket: r.try_get(0)?,
                head: cid_from(&r.try_get::<_, Vec<u8>>(1)?)?,
                seq: r.try_get::<_, i64>(2)? as u64,
                shipped_ms: r.try_get(3)?,
            })
        })
        .collect()
}

/// Everything of one bucket, in one transaction.
pub(super) async fn purge_bucket(c: &mut Object, name: &str) -> Result<bool, IndexError> {
    let tx = c.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await?;
    let found = tx
        .query_opt("SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE", &[&name])
        .await?;
    if found.is_none() {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = $1)",
        &[&name],
    )
    .await?;
    for table in ["uploads", "versions", "mmr", "commits", "shipped_heads"] {
        tx.execute(&format!("DELETE FROM {table} WHERE bucket = $1"), &[&name])
            .await?;
    }
    super::access::forget_bucket(&tx, name).await?;
    tx.execute("DELETE FROM buckets WHERE name = $1", &[&name])
        .await?;
    tx.commit().await?;
    Ok(true)
}
