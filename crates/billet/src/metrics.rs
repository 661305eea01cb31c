//! Prometheus metrics: per-request counters and latencies recorded by the
//! HTTP layer, engine and log counters copied in at scrape time.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use billet_engine::Engine;

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

/// Renders the metrics text, refreshing engine and log figures first.
pub fn render(handle: &PrometheusHandle, engine: &Engine) -> String {
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
    handle.render()
}
