//! `billet gc` and `billet retention`: run a garbage collection (through
//! the running server's admin socket, or here when no server holds the
//! log), and set how much history a bucket keeps.

use anyhow::{Context, Result, bail};
use billet_engine::{CollectOptions, Engine, GcReport, PlaneReport, Retention};

use crate::config::Config;
use crate::{admin, keys};

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn plane_line(name: &str, p: &PlaneReport, dry_run: bool) -> String {
    let mut line = format!(
        "{name:<8} {} in {} segments, {} live, {} reclaimable",
        size(p.bytes),
        p.segments,
        size(p.live_bytes),
        size(p.reclaimable_bytes)
    );
    if !dry_run {
        line.push_str(&format!(
            "; rewrote {} segments, copied {}, reclaimed {}",
            p.rewritten_segments,
            size(p.copied_bytes),
            size(p.reclaimed_bytes)
        ));
    }
    line
}

fn keep(secs: Option<u64>, commits: Option<u64>) -> String {
    match (secs, commits) {
        (None, None) => "the head only".into(),
        (Some(s), None) => format!("{s} s"),
        (None, Some(c)) => format!("{c} commits"),
        (Some(s), Some(c)) => format!("{s} s or {c} commits"),
    }
}

pub fn print_report(r: &GcReport) {
    println!(
        "{} in {} ms: marked {} blocks with a {} filter",
        if r.dry_run { "dry run" } else { "collection" },
        r.duration_ms,
        r.marked_blocks,
        size(r.filter_bytes)
    );
    println!("{}", plane_line("data", &r.data, r.dry_run));
    println!("{}", plane_line("catalog", &r.catalog, r.dry_run));
    for b in &r.buckets {
        println!(
            "bucket {}: head seq {}, commits {}..={} readable (keeping {}), {} recorded",
            b.bucket,
            b.head_seq,
            b.floor,
            b.head_seq,
            keep(b.keep_secs, b.keep_commits),
            b.commits
        );
    }
    if !r.dry_run && r.checkpoints_pruned > 0 {
        println!("{} signed checkpoints pruned", r.checkpoints_pruned);
    }
}

pub fn gc(config: &Config, dry_run: bool, bucket: Option<&str>, json: bool) -> Result<()> {
    crate::runtime()?.block_on(async {
        let mut report =
            match admin::request(&config.data_dir, &admin::Request::Gc { dry_run }).await? {
                Some(r) => r,
                None => {
                    // No server: the collection runs here, holding the log's
                    // writer lock (refused if a server holds it after all).
                    let index = keys::open_index(config).await?;
                    let engine = Engine::open(config.engine()?, index)
                        .await
                        .context("opening the engine to collect")?;
                    engine.collect(CollectOptions { dry_run }).await?
                }
            };
        if let Some(b) = bucket {
            report.buckets.retain(|h| h.bucket == b);
            if report.buckets.is_empty() {
                bail!("bucket {b:?} does not exist");
            }
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        Ok(())
    })
}

pub fn retention(
    config: &Config,
    bucket: &str,
    keep_secs: Option<u64>,
    keep_commits: Option<u64>,
    clear: bool,
) -> Result<()> {
    crate::runtime()?.block_on(async {
        let index = keys::open_index(config).await?;
        if index.bucket(bucket).await?.is_none() {
            bail!("bucket {bucket:?} does not exist");
        }
        if clear {
            index.set_retention(bucket, None).await?;
        } else if keep_secs.is_some() || keep_commits.is_some() {
            let own = index.retention(bucket).await?.unwrap_or_default();
            index
                .set_retention(
                    bucket,
                    Some(Retention {
                        keep_secs: keep_secs.or(own.keep_secs),
                        keep_commits: keep_commits.or(own.keep_commits),
                    }),
                )
                .await?;
        }
        let own = index.retention(bucket).await?;
        let default = config.gc.retention;
        let effective = match own {
            Some(r) => Retention {
                keep_secs: r.keep_secs.or(default.keep_secs),
                keep_commits: r.keep_commits.or(default.keep_commits),
            },
            None => default,
        };
        println!(
            "bucket {bucket} keeps {}{}",
            keep(effective.keep_secs, effective.keep_commits),
            if own.is_some() {
                ""
            } else {
                " (the node default)"
            }
        );
        Ok(())
    })
}
