//! `billet import`: an export comes back bit for bit, after every block
//! and invariant of it checked.

use std::path::Path;

use anyhow::{Context, Result};
use billet_engine::Engine;

use crate::config::Config;
use crate::{keys, offline};

/// `billet import FILE`: the server must be stopped (the log has one
/// writer; a running server holds its lock).
pub fn import(config: &Config, file: &Path, bucket: Option<&str>, owner: &str) -> Result<()> {
    let car = offline::open_car(file)?;
    crate::runtime()?.block_on(async {
        let index = keys::open_index(config).await?;
        let engine = Engine::open(config.engine()?, index)
            .await
            .context("opening the data directory for writing")?;
        let report = engine
            .import_car(car, bucket, owner)
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        engine.advance_replay_point().await?;
        offline::print_report(&report);
        println!("imported as bucket {}", bucket.unwrap_or(&report.bucket));
        Ok(())
    })
}
