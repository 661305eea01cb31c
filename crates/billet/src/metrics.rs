//! Prometheus metrics: per-request counters and latencies recorded by the
//! HTTP layer, engine and log counters copied in at scrape time.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use billet_engine::{Engine, NodeStatus};

pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ])?
        .install_recorder()?;
    Ok(handle)
}

pub fn record_request(op: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
    let op = op.to_string();
    counter!("billet_requests_total", "op" => op.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("billet_request_duration_seconds", "op" => op).record(seconds);
    counter!("billet_received_bytes_total").increment(bytes_in);
    counter!("billet_sent_bytes_total").increment(bytes_out);
}

/// The cold tier's figures (`billet status` shows the same ones).
fn cold(engine: &Engine, status: &NodeStatus) {
    use std::sync::atomic::Ordering::Relaxed;
    for p in &status.planes {
        let plane = p.plane.clone();
        for (state, t) in [
            ("open", p.open),
            ("sealed", p.sealed),
            ("shipped", p.shipped),
            ("evicted", p.evicted),
        ] {
            gauge!("billet_cold_segments", "plane" => plane.clone(), "state" => state)
                .set(t.segments as f64);
            gauge!("billet_cold_segment_bytes", "plane" => plane.clone(), "state" => state)
                .set(t.bytes as f64);
        }
        gauge!("billet_cold_backlog_segments", "plane" => plane.clone())
            .set(p.backlog.segments as f64);
        gauge!("billet_cold_backlog_bytes", "plane" => plane.clone()).set(p.backlog.bytes as f64);
        gauge!("billet_cold_local_bytes", "plane" => plane.clone()).set(p.local_bytes as f64);
        gauge!("billet_cold_over_budget", "plane" => plane).set(f64::from(u8::from(p.over_budget)));
    }
    gauge!("billet_cold_warm_cache_bytes").set(status.warm_cache_bytes as f64);
    gauge!("billet_cold_remote_fetches_total").set(status.remote_fetches as f64);
    gauge!("billet_cold_remote_fetched_bytes_total").set(status.remote_fetched_bytes as f64);
    gauge!("billet_cold_pending_deletes").set(status.pending_deletes as f64);
    gauge!("billet_cold_heads_waiting").set(status.heads_waiting as f64);
    for b in &status.buckets {
        if let Some(seq) = b.shipped_seq {
            gauge!("billet_cold_shipped_head_seq", "bucket" => b.bucket.clone()).set(seq as f64);
        }
        gauge!("billet_cold_shipped_head_lag_commits", "bucket" => b.bucket.clone())
            .set(b.lag_commits as f64);
    }
    if let Some(c) = engine.cold() {
        let s = c.ship_stats();
        for (i, plane) in ["data", "catalog"].into_iter().enumerate() {
            gauge!("billet_cold_shipped_segments_total", "plane" => plane)
                .set(s.segments[i].load(Relaxed) as f64);
            gauge!("billet_cold_shipped_bytes_total", "plane" => plane)
                .set(s.bytes[i].load(Relaxed) as f64);
            gauge!("billet_cold_stored_bytes_total", "plane" => plane)
                .set(s.stored_bytes[i].load(Relaxed) as f64);
            gauge!("billet_cold_evictions_total", "plane" => plane)
                .set(s.evicted[i].load(Relaxed) as f64);
        }
        gauge!("billet_cold_errors_total").set(s.errors.load(Relaxed) as f64);
        gauge!("billet_cold_remote_deletes_total").set(s.deletes.load(Relaxed) as f64);
    }
}

/// The collector's figures: bytes per plane now, what the last
/// collection found live and reclaimable, and what it did.
fn gc(engine: &Engine) {
    let mut total = [0u64; 2];
    for s in engine.log().segments() {
        total[usize::from(s.plane == billet_log::PlaneKind::Catalog)] += s.bytes;
    }
    gauge!("billet_gc_total_bytes", "plane" => "data").set(total[0] as f64);
    gauge!("billet_gc_total_bytes", "plane" => "catalog").set(total[1] as f64);
    let status = engine.gc_status();
    gauge!("billet_gc_running").set(f64::from(u8::from(status.running)));
    let Some(r) = status.last else { return };
    for (plane, p) in [("data", &r.data), ("catalog", &r.catalog)] {
        gauge!("billet_gc_live_bytes", "plane" => plane).set(p.live_bytes as f64);
        gauge!("billet_gc_reclaimable_bytes", "plane" => plane).set(p.reclaimable_bytes as f64);
        gauge!("billet_gc_last_rewritten_segments", "plane" => plane)
            .set(p.rewritten_segments as f64);
        gauge!("billet_gc_last_reclaimed_bytes", "plane" => plane).set(p.reclaimed_bytes as f64);
        gauge!("billet_gc_last_copied_bytes", "plane" => plane).set(p.copied_bytes as f64);
    }
    gauge!("billet_gc_last_duration_seconds").set(r.duration_ms as f64 / 1000.0);
    gauge!("billet_gc_last_end_timestamp_seconds")
        .set((r.started_ms as f64 + r.duration_ms as f64) / 1000.0);
}

/// Renders the metrics text, refreshing engine, log and cold-tier
/// figures first.
pub fn render(handle: &PrometheusHandle, engine: &Engine, status: Option<&NodeStatus>) -> String {
    if let Some(status) = status {
        cold(engine, status);
    }
    use std::sync::atomic::Ordering::Relaxed;
    let s = engine.stats();
    gauge!("billet_commits_total").set(s.commits.load(Relaxed) as f64);
    gauge!("billet_commit_batches_total").set(s.batches.load(Relaxed) as f64);
    gauge!("billet_commit_batched_ops_total").set(s.batched_ops.load(Relaxed) as f64);
    gauge!("billet_commit_batch_largest").set(s.largest_batch.load(Relaxed) as f64);
    let (data, catalog) = engine.log().fsyncs();
    gauge!("billet_log_fsyncs_total", "plane" => "data").set(data as f64);
    gauge!("billet_log_fsyncs_total", "plane" => "catalog").set(catalog as f64);
    gauge!("billet_log_blocks").set(engine.log().len() as f64);
    gauge!("billet_log_read_bytes_total").set(engine.store().log_read_bytes() as f64);
    let (hot, runs, run_memory) = engine.log().location_shape();
    gauge!("billet_log_locations_in_memory").set(hot as f64);
    gauge!("billet_log_location_runs").set(runs as f64);
    gauge!("billet_log_location_filter_bytes").set(run_memory as f64);
    gc(engine);
    handle.render()
}
