//! `billet status`: where the node's segments are (open, sealed, shipped,
//! evicted, per plane), the shipping backlog, the warm cache, queued
//! remote deletes and each bucket's shipped head. Read from the data
//! directory and the index; while a server runs on it, its in-memory
//! figures (warm cache, remote reads, budgets) come from its `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Result;
use billet_engine::{NodeStatus, Tally};
use serde::Serialize;

use crate::config::Config;
use crate::{keys, offline};

#[derive(Serialize)]
struct Report {
    /// A server answered on the configured address.
    serving: bool,
    #[serde(flatten)]
    status: NodeStatus,
    /// The last garbage collection's report (kept in the data directory).
    gc: Option<billet_engine::GcReport>,
}

/// The metrics text of a server on `addr`, if one answers quickly.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: billet\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.take(16 << 20).read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// The value of `name{labels}` in a metrics text (`labels` exactly as
/// rendered, empty for none).
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let want = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines().find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == want).then(|| v.parse().ok())?
    })
}

fn live(status: &mut NodeStatus, text: &str) {
    let get = |name: &str, labels: &str| metric(text, name, labels).map(|v| v as u64);
    if let Some(v) = get("billet_cold_warm_cache_bytes", "") {
        status.warm_cache_bytes = v;
    }
    if let Some(v) = get("billet_cold_remote_fetches_total", "") {
        status.remote_fetches = v;
    }
    if let Some(v) = get("billet_cold_remote_fetched_bytes_total", "") {
        status.remote_fetched_bytes = v;
    }
    if let Some(v) = get("billet_cold_heads_waiting", "") {
        status.heads_waiting = v;
    }
    for p in &mut status.planes {
        if let Some(v) = get("billet_cold_over_budget", &format!("plane=\"{}\"", p.plane)) {
            p.over_budget = v != 0;
        }
    }
}

use crate::gc::size;

fn tally(t: Tally) -> String {
    format!("{} ({})", t.segments, size(t.bytes))
}

fn print_text(r: &Report) {
    let s = &r.status;
    match (&s.remote, &s.node) {
        (Some(remote), Some(node)) => println!("node {node}, remote {remote}"),
        _ => println!("no remote configured: every segment stays local"),
    }
    println!("server running: {}", if r.serving { "yes" } else { "no" });
    println!(
        "{:<8} {:>16} {:>16} {:>16} {:>16} {:>16} {:>12} {:>12}",
        "plane", "open", "sealed", "shipped", "evicted", "backlog", "local", "budget"
    );
    for p in &s.planes {
        println!(
            "{:<8} {:>16} {:>16} {:>16} {:>16} {:>16} {:>12} {:>12}{}",
            p.plane,
            tally(p.open),
            tally(p.sealed),
            tally(p.shipped),
            tally(p.evicted),
            if p.shipping {
                tally(p.backlog)
            } else {
                "not shipping".into()
            },
            size(p.local_bytes),
            p.disk_budget.map_or("none".into(), size),
            if p.over_budget {
                "  OVER BUDGET: writes refused"
            } else {
                ""
            }
        );
    }
    if s.remote.is_some() {
        println!(
            "warm cache {} of {}; {} remote reads ({}); {} remote deletes queued; {} heads waiting to ship",
            size(s.warm_cache_bytes),
            size(s.warm_cache_capacity),
            s.remote_fetches,
            size(s.remote_fetched_bytes),
            s.pending_deletes,
            s.heads_waiting
        );
        if let Some(e) = &s.last_error {
            println!("last error: {e}");
        }
        println!(
            "{:<24} {:>10} {:>12} {:>6}  shipped head",
            "bucket", "head seq", "shipped seq", "lag"
        );
        for b in &s.buckets {
            println!(
                "{:<24} {:>10} {:>12} {:>6}  {}",
                b.bucket,
                b.head_seq,
                b.shipped_seq.map_or("-".into(), |s| s.to_string()),
                b.lag_commits,
                b.shipped_head.as_deref().unwrap_or("none yet")
            );
        }
    }
}

fn print_gc(s: &NodeStatus, gc: Option<&billet_engine::GcReport>) {
    let Some(r) = gc else {
        println!("garbage collection: none yet");
        return;
    };
    let when = billet_engine::now_ms().saturating_sub(r.started_ms) / 1000;
    println!(
        "garbage collection: last {when} s ago, {} ms; rewrote {} segments, reclaimed {}",
        r.duration_ms,
        r.data.rewritten_segments + r.catalog.rewritten_segments,
        size(r.data.reclaimed_bytes + r.catalog.reclaimed_bytes)
    );
    for p in &s.planes {
        let last = if p.plane == "data" {
            &r.data
        } else {
            &r.catalog
        };
        let now = p.open.bytes + p.sealed.bytes + p.shipped.bytes + p.evicted.bytes;
        println!(
            "{:<8} {} now; at the last collection {} live of {}, {} reclaimable",
            p.plane,
            size(now),
            size(last.live_bytes),
            size(last.bytes),
            size(last.reclaimable_bytes)
        );
    }
}

pub fn status(config: &Config, json: bool) -> Result<()> {
    crate::runtime()?.block_on(async {
        let index = keys::open_index(config).await?;
        let engine = offline::reader(config, index).await?;
        let mut status = engine.status().await?;
        let scraped = scrape(config.listen);
        if let Some(text) = &scraped {
            live(&mut status, text);
        }
        let report = Report {
            serving: scraped.is_some(),
            status,
            gc: engine.gc_status().last,
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_text(&report);
            print_gc(&report.status, report.gc.as_ref());
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_found_by_name_and_labels() {
        let text = "# TYPE x gauge\nbillet_cold_warm_cache_bytes 1234\nbillet_cold_over_budget{plane=\"data\"} 1\nbillet_cold_over_budget{plane=\"catalog\"} 0\n";
        assert_eq!(
            metric(text, "billet_cold_warm_cache_bytes", ""),
            Some(1234.0)
        );
        assert_eq!(
            metric(text, "billet_cold_over_budget", "plane=\"data\""),
            Some(1.0)
        );
        assert_eq!(
            metric(text, "billet_cold_over_budget", "plane=\"catalog\""),
            Some(0.0)
        );
        assert_eq!(metric(text, "absent", ""), None);
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12), "12 B");
    }
}
