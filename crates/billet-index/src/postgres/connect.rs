//! The connection pool and the schema's migrations.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::PgConfig;
use super::schema;
use crate::error::IndexError;

pub(super) fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

pub(super) fn pool_err(e: impl std::fmt::Display) -> IndexError {
    IndexError::Pool(e.to_string())
}

/// A pool whose connections see only billet's schema and commit without
/// waiting for the WAL flush: the log's catalog plane is the redo log.
pub(super) fn pool(config: &PgConfig) -> Result<Pool, IndexError> {
    if !valid_schema(&config.schema) {
        return Err(IndexError::Pool(format!(
            "schema name {:?} must be lower-case letters, digits and underscores",
            config.schema
        )));
    }
    let mut pg = tokio_postgres::Config::from_str(&config.url)?;
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
    Pool::builder(mgr)
        .max_size(config.pool_size.max(1))
        .build()
        .map_err(pool_err)
}

/// Creates the schema if needed and applies the migrations it lacks, under
/// an advisory lock so that nodes starting at once apply each exactly once.
pub(super) async fn migrate(c: &mut Object, schema_name: &str) -> Result<(), IndexError> {
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
