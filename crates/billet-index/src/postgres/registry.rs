//! Node-wide rows: buckets and their heads, access keys, the replay
//! point (the column keeps its first name, `log_checkpoint`).

use deadpool_postgres::{GenericClient, Object};

use super::rows::{KEY_COLS, access_key_from};
use crate::error::IndexError;
use crate::rows::{cid_from, settings_bytes, settings_from};
use crate::types::{AccessKey, BucketEntry, BucketState};

pub(super) async fn replay_from(c: &impl GenericClient) -> Result<u64, IndexError> {
    let row = c
        .query_opt("SELECT log_checkpoint FROM node WHERE id = 0", &[])
        .await?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
}

/// One transaction committed with `synchronous_commit = on`: PostgreSQL
/// flushes its WAL up to this commit, which covers every commit before it,
/// made with `synchronous_commit = off` or not.
pub(super) async fn set_replay_from(c: &mut Object, segment: u64) -> Result<(), IndexError> {
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

pub(super) async fn create_bucket(
    c: &impl GenericClient,
    b: &BucketState,
) -> Result<(), IndexError> {
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

pub(super) async fn delete_bucket(c: &mut Object, name: &str) -> Result<(), IndexError> {
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
    tx.execute("DELETE FROM commits WHERE bucket = $1", &[&name])
        .await?;
    super::access::forget_bucket(&tx, name).await?;
    tx.execute("DELETE FROM shipped_heads WHERE bucket = $1", &[&name])
        .await?;
    tx.execute("DELETE FROM buckets WHERE name = $1", &[&name])
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn bucket(
    c: &impl GenericClient,
    name: &str,
) -> Result<Option<BucketState>, IndexError> {
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

pub(super) async fn buckets(c: &impl GenericClient) -> Result<Vec<BucketEntry>, IndexError> {
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

pub(super) async fn put_access_key(
    c: &impl GenericClient,
    k: &AccessKey,
) -> Result<(), IndexError> {
    let n = c
        .execute(
            "INSERT INTO access_keys (id, secret, owner, created, disabled, limited)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                &k.id,
                &k.secret,
                &k.owner,
                &k.created_ms,
                &k.disabled,
                &k.limited,
            ],
        )
        .await?;
    if n == 0 {
        return Err(IndexError::AccessKeyExists(k.id.clone()));
    }
    Ok(())
}

pub(super) async fn access_key(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<AccessKey>, IndexError> {
    let row = c
        .query_opt(
            &format!("SELECT {KEY_COLS} FROM access_keys WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.map(|r| access_key_from(&r)).transpose()
}

pub(super) async fn access_keys(c: &impl GenericClient) -> Result<Vec<AccessKey>, IndexError> {
    let rows = c
        .query(
            &format!("SELECT {KEY_COLS} FROM access_keys ORDER BY id"),
            &[],
        )
        .await?;
    rows.iter().map(access_key_from).collect()
}

pub(super) async fn delete_access_key(
    c: &impl GenericClient,
    id: &str,
) -> Result<bool, IndexError> {
    // One statement: a key made again under this id starts with no grants.
    Ok(c.execute(
        "WITH g AS (DELETE FROM key_grants WHERE key_id = $1)
         DELETE FROM access_keys WHERE id = $1",
        &[&id],
    )
    .await?
        > 0)
}
