//! `billet export`: a bucket leaves as one CAR file, streamed, from one
//! consistent head, safe beside a running server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use billet_engine::ExportStats;
use billet_index::{Index, VersionQuery};

use crate::config::Config;
use crate::{keys, offline};

/// Sum of the bucket's version sizes: the progress bar's estimate of the
/// body bytes to come (shared bodies make it an upper bound).
async fn estimate(index: &dyn Index, bucket: &str) -> Result<u64> {
    let mut total = 0;
    let mut q = VersionQuery {
        max_keys: 1000,
        ..VersionQuery::default()
    };
    loop {
        let page = index.list_versions(bucket, &q).await?;
        total += page.versions.iter().map(|v| v.size).sum::<u64>();
        if !page.truncated {
            return Ok(total);
        }
        q.key_marker = page.next_key_marker;
        q.version_id_marker = page.next_version_id_marker;
    }
}

/// A one-line progress bar on stderr, redrawn at most 5 times a second.
struct Progress {
    start: Instant,
    last: Option<Instant>,
    total: u64,
}

impl Progress {
    fn draw(&mut self, s: &ExportStats, done: bool) {
        let now = Instant::now();
        if !done
            && self
                .last
                .is_some_and(|t| now.duration_since(t).as_millis() < 200)
        {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-3);
        let mib = s.car_bytes as f64 / (1 << 20) as f64;
        let rate = mib / secs;
        let eta = if done || rate <= 0.0 {
            String::from("0s")
        } else {
            let left = (self.total.saturating_sub(s.car_bytes)) as f64 / (1 << 20) as f64;
            format!("{:.0}s", left / rate)
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{mib:.1} / ~{:.1} MiB, {} objects, {} blocks, {rate:.1} MiB/s, ETA {eta}   ",
            self.total as f64 / (1 << 20) as f64,
            s.objects,
            s.blocks
        );
        if done {
            let _ = writeln!(err);
        }
    }
}

pub fn export(config: &Config, bucket: &str, output: Option<&Path>, history: bool) -> Result<()> {
    let to_stdout = output.is_none_or(|p| p == Path::new("-"));
    if to_stdout && std::io::stdout().is_terminal() {
        bail!(
            "refusing to write a CAR file to a terminal; give -o FILE or redirect standard output"
        );
    }
    crate::runtime()?.block_on(async {
        let index = keys::open_index(config).await?;
        // The head first, then the log: every block the head reaches was
        // durable before the head was indexed, so the log opened after
        // holds it, however the server moves on meanwhile.
        let state = index
            .bucket(bucket)
            .await?
            .with_context(|| format!("bucket {bucket:?} does not exist"))?;
        let show = std::io::stderr().is_terminal();
        let total = if show { estimate(index.as_ref(), bucket).await? } else { 0 };
        let engine = offline::reader(config, index).await?;
        let store = engine.store().clone();
        let head = state.head;
        let history = if history {
            let kept = engine.retained_history(bucket, config.gc.retention).await?;
            // The head read above; the retention read a moment later may
            // have found a newer one, whose floor is at most this high.
            billet_engine::ExportHistory::Down(kept.floor.min(state.seq))
        } else {
            billet_engine::ExportHistory::Head
        };
        let output = output.map(Path::to_path_buf);
        // The catalog plane is small but read in tree order: one
        // sequential pass first spares the walk thousands of random reads.
        let log = engine.log().clone();
        tokio::task::spawn_blocking(move || log.prefetch(billet_log::PlaneKind::Catalog)).await??;
        let stats = tokio::task::spawn_blocking(move || -> Result<ExportStats> {
            let mut bar = Progress {
                start: Instant::now(),
                last: None,
                total,
            };
            let mut progress = |s: &ExportStats| {
                if show {
                    bar.draw(s, false);
                }
            };
            let stats = match output.filter(|p| p != Path::new("-")) {
                None => {
                    let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
                    let (stats, mut out) =
                        billet_engine::export_car(store.as_ref(), &head, history, out, &mut progress)?;
                    out.flush()?;
                    stats
                }
                Some(path) => write_file(&path, |file| {
                    let out = std::io::BufWriter::with_capacity(1 << 20, file);
                    let (stats, out) =
                        billet_engine::export_car(store.as_ref(), &head, history, out, &mut progress)?;
                    let file = out.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    Ok(stats)
                })?,
            };
            if show {
                bar.draw(&stats, true);
            }
            Ok(stats)
        })
        .await??;
        eprintln!(
            "exported bucket {bucket} head {head}: {} objects, {} versions, {} commits, {} blocks, {} bytes",
            stats.objects, stats.versions, stats.commits, stats.blocks, stats.car_bytes
        );
        Ok(())
    })
}

/// Writes `path` through a temporary file renamed into place at the end,
/// so a failed export never leaves a truncated file under the real name.
fn write_file<T>(path: &Path, f: impl FnOnce(std::fs::File) -> Result<T>) -> Result<T> {
    let tmp = PathBuf::from(format!("{}.partial", path.display()));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    match f(file) {
        Ok(v) => {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
