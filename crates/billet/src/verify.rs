//! `billet verify`: a bucket of this node or an export file, checked
//! without trusting the node.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::{keys, offline};

/// `billet verify BUCKET | FILE`: a path that exists is a CAR file.
pub fn verify(config: &Config, target: &str) -> Result<()> {
    let report = if Path::new(target).is_file() {
        let car = offline::open_car(Path::new(target))?;
        let head = match car.roots() {
            [one] => *one,
            roots => bail!(
                "{target}: the CAR has {} roots; a bucket export has exactly one, its head commit",
                roots.len()
            ),
        };
        billet_engine::verify_head(car.as_ref(), &head)?.report
    } else {
        crate::runtime()?.block_on(async {
            let index = keys::open_index(config).await?;
            let state = index
                .bucket(target)
                .await?
                .with_context(|| format!("no file and no bucket named {target:?}"))?;
            let engine = offline::reader(config, index).await?;
            let store = engine.store().clone();
            let head = state.head;
            let verified = tokio::task::spawn_blocking(move || {
                billet_engine::verify_head(store.as_ref(), &head)
            })
            .await??;
            Ok::<_, anyhow::Error>(verified.report)
        })?
    };
    offline::print_report(&report);
    if !report.problems.is_empty() {
        bail!("{} problems found", report.problems.len());
    }
    Ok(())
}
