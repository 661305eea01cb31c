//! What the offline commands share: an engine over a data directory that
//! leaves a running server undisturbed, CAR files opened for checking,
//! and the report they print.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use billet_car::CarFile;
use billet_engine::{Engine, VerifyReport};
use billet_index::Index;

use crate::config::Config;

/// An engine over the log opened read-only, for a consistent head read
/// while a server may be writing.
pub async fn reader(config: &Config, index: Arc<dyn Index>) -> Result<Engine> {
    let mut ec = config.engine()?;
    ec.log.read_only = true;
    ec.log.verify_sealed_on_open = false;
    ec.roll_forward = false;
    Ok(Engine::open(ec, index).await?)
}

pub fn print_report(r: &VerifyReport) {
    for p in &r.problems {
        println!("problem: {p}");
    }
    println!(
        "bucket {} head {} (seq {}): {} objects, {} versions, {} body bytes, {} blocks, {} problems",
        r.bucket,
        r.head,
        r.seq,
        r.keys,
        r.versions,
        r.bytes,
        r.blocks,
        r.problems.len()
    );
}

pub fn open_car(path: &Path) -> Result<Arc<CarFile>> {
    Ok(Arc::new(
        CarFile::open(path).with_context(|| format!("reading {}", path.display()))?,
    ))
}
