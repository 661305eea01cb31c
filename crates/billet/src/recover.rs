//! `billet recover`: a node whose data directory is lost, rebuilt from its
//! remote copy into an empty one — every bucket as of its shipped head,
//! each block read from the remote and checked, with a progress line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use billet_engine::{Engine, RestoreProgress, prepare_recovery};

use crate::config::Config;
use crate::keys;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Prints `line` over the previous one on a terminal, else now and then.
struct Progress {
    tty: bool,
    last: Instant,
}

impl Progress {
    fn show(&mut self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if self.last.elapsed() >= Duration::from_secs(5) {
            eprintln!("{line}");
            self.last = Instant::now();
        }
    }

    fn done(&mut self, line: &str) {
        if self.tty {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

fn bar(fraction: f64) -> String {
    let width = 30;
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), " ".repeat(width - filled))
}

pub fn recover(config: &Config) -> Result<()> {
    if config.remote.is_none() {
        bail!("billet recover needs a [remote] in the configuration: it rebuilds from there");
    }
    crate::runtime()?.block_on(async {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let index = keys::open_index(config).await?;
        let ec = config.engine()?;
        let cold = ec.cold.clone().context("the cold tier")?;
        eprintln!("reading the shipped heads of node {} from {}", cold.node, cold.describe);
        let plan = prepare_recovery(&cold, &config.data_dir.join("log"), index.as_ref())
            .await
            .context("laying out the log from the remote")?;
        let mut total = 0u64;
        for (plane, count, bytes) in &plan.installed {
            eprintln!("  {plane}: {count} segments ({:.1} MiB) on the remote", mib(*bytes));
            total += bytes;
        }
        let engine = Engine::open(ec, index.clone())
            .await
            .context("opening the rebuilt log")?;
        let fetched = |e: &Engine| {
            e.cold()
                .map_or(0, |c| c.read_stats().fetched_bytes.load(Ordering::Relaxed))
        };
        let mut progress = Progress {
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
        };
        let n = plan.heads.buckets.len();
        let mut owners = std::collections::BTreeSet::new();
        for (i, b) in plan.heads.buckets.iter().enumerate() {
            let counts = Arc::new(RestoreProgress::default());
            let task = {
                let engine = engine.clone();
                let b = b.clone();
                let counts = counts.clone();
                tokio::spawn(async move { engine.restore_bucket(&b, counts).await })
            };
            tokio::pin!(task);
            let report = loop {
                tokio::select! {
                    r = &mut task => break r.context("the restore task")?,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {
                        let f = fetched(&engine);
                        progress.show(&format!(
                            "{} bucket {}/{n} {}: {} blocks, {:.1} MiB checked, {:.1} of {:.1} MiB fetched",
                            bar(f as f64 / total.max(1) as f64),
                            i + 1,
                            b.name,
                            counts.blocks.load(Ordering::Relaxed),
                            mib(counts.bytes.load(Ordering::Relaxed)),
                            mib(f),
                            mib(total),
                        ));
                    }
                }
            }
            .with_context(|| format!("restoring bucket {}", b.name))?;
            progress.done(&format!(
                "bucket {}/{n} {} at seq {} ({}): {} objects, {} versions, {} blocks checked",
                i + 1,
                b.name,
                b.seq,
                b.head,
                report.keys,
                report.versions,
                report.blocks
            ));
            owners.insert(b.owner.clone());
        }
        // The index may have known buckets the remote never got a head
        // of (PostgreSQL kept across the loss): not claimed.
        let restored: std::collections::HashSet<&str> =
            plan.heads.buckets.iter().map(|b| b.name.as_str()).collect();
        for b in index.list_buckets().await? {
            if !restored.contains(b.name.as_str()) {
                index.purge_bucket(&b.name).await?;
                eprintln!("bucket {} had no shipped head: removed from the index", b.name);
            }
        }
        engine.advance_replay_point().await?;
        println!(
            "recovered {n} bucket(s) at their shipped heads from {} ({} index rows of unshipped segments forgotten)",
            cold.describe, plan.forgotten
        );
        if index.access_keys().await?.is_empty() && !owners.is_empty() {
            println!(
                "access keys are not shipped: create one per owner, e.g. `billet keys create --owner {}`",
                owners.iter().next().map_or("OWNER", |s| s.as_str())
            );
            println!("owners: {}", owners.into_iter().collect::<Vec<_>>().join(", "));
        }
        Ok(())
    })
}
