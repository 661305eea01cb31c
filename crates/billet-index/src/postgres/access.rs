//! Access-control rows: each bucket's named access settings and the keys'
//! grants.

use deadpool_postgres::GenericClient;

use crate::error::IndexError;
use crate::types::Grant;

pub(super) async fn bucket_settings(
    c: &impl GenericClient,
    bucket: &str,
) -> Result<Vec<(String, String)>, IndexError> {
    let rows = c
        .query(
            "SELECT name, value FROM bucket_settings WHERE bucket = $1 ORDER BY name",
            &[&bucket],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Sets or clears one setting; false if there is no such bucket. One
/// statement, so a bucket deleted meanwhile leaves no row behind.
pub(super) async fn set_bucket_setting(
    c: &impl GenericClient,
    bucket: &str,
    name: &str,
    value: Option<&str>,
) -> Result<bool, IndexError> {
    let row = match value {
        Some(v) => {
            c.query_one(
                "WITH b AS (SELECT name FROM buckets WHERE name = $1 FOR KEY SHARE),
                 ins AS (INSERT INTO bucket_settings (bucket, name, value)
                     SELECT $1, $2, $3 FROM b
                     ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value)
                 SELECT EXISTS (SELECT 1 FROM b)",
                &[&bucket, &name, &v],
            )
            .await?
        }
        None => {
            c.query_one(
                "WITH del AS (DELETE FROM bucket_settings WHERE bucket = $1 AND name = $2)
                 SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1)",
                &[&bucket, &name],
            )
            .await?
        }
    };
    Ok(row.try_get(0)?)
}

pub(super) async fn grants(
    c: &impl GenericClient,
    key_id: Option<&str>,
) -> Result<Vec<Grant>, IndexError> {
    let rows = c
        .query(
            "SELECT key_id, bucket, can_read, can_write, can_own FROM key_grants
             WHERE $1::text IS NULL OR key_id = $1 ORDER BY key_id, bucket",
            &[&key_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Grant {
                key_id: r.try_get(0)?,
                bucket: r.try_get(1)?,
                read: r.try_get(2)?,
                write: r.try_get(3)?,
                owner: r.try_get(4)?,
            })
        })
        .collect()
}

/// Records a grant; one granting nothing removes the row.
pub(super) async fn set_grant(c: &impl GenericClient, g: &Grant) -> Result<(), IndexError> {
    if g.read || g.write || g.owner {
        c.execute(
            "INSERT INTO key_grants (key_id, bucket, can_read, can_write, can_own)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key_id, bucket) DO UPDATE SET can_read = excluded.can_read,
                 can_write = excluded.can_write, can_own = excluded.can_own",
            &[&g.key_id, &g.bucket, &g.read, &g.write, &g.owner],
        )
        .await?;
    } else {
        c.execute(
            "DELETE FROM key_grants WHERE key_id = $1 AND bucket = $2",
            &[&g.key_id, &g.bucket],
        )
        .await?;
    }
    Ok(())
}

/// A bucket's access rows, removed with it (a bucket made again under the
/// name starts private).
pub(super) async fn forget_bucket(c: &impl GenericClient, name: &str) -> Result<(), IndexError> {
    c.execute("DELETE FROM bucket_settings WHERE bucket = $1", &[&name])
        .await?;
    c.execute("DELETE FROM key_grants WHERE bucket = $1", &[&name])
        .await?;
    Ok(())
}
