//! `billet serve`: the S3 server.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use billet_engine::{Engine, EngineConfig};
use billet_s3::{OpSlot, S3Options};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::{identity, keys, metrics};

struct App {
    s3: S3Service,
    engine: Engine,
    identity: ed25519_dalek::SigningKey,
    metrics: PrometheusHandle,
    ready: AtomicBool,
}

/// How long in-flight requests get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn run(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let identity = identity::load_or_create(&config.data_dir)?;
    let index = keys::open_index(&config).await?;
    if let Some(k) = keys::bootstrap(index.as_ref()).await? {
        println!("Created an access key (shown once; `billet keys` manages keys):");
        println!("  AWS_ACCESS_KEY_ID={}", k.id);
        println!("  AWS_SECRET_ACCESS_KEY={}", k.secret);
    }
    let mut ec = EngineConfig::new(&config.data_dir);
    ec.chunk_size = config.chunk_size;
    ec.cache_bytes = config.cache_bytes;
    ec.max_put_bytes = config.max_put_bytes;
    ec.min_part_size = config.min_part_size;
    ec.log = config.log.clone();
    let engine = Engine::open(ec, index)
        .await
        .context("opening the engine")?;
    let s3 = billet_s3::service(
        engine.clone(),
        &S3Options {
            region: config.region.clone(),
            domain: config.domain.clone(),
            max_put_bytes: config.max_put_bytes,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let app = Arc::new(App {
        s3,
        engine: engine.clone(),
        identity: identity.clone(),
        metrics: metrics::install()?,
        ready: AtomicBool::new(true),
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "billet {} serving S3 on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("node identity {}", identity::did_key(&identity));
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");

    // Seal idle segments so they can ship, and advance the log checkpoint
    // so a restart after a power loss rolls forward only the last second.
    // Abandoned multipart uploads are aborted once they pass the expiry,
    // checked a few times per expiry period (at most once a minute).
    let expiry = config.upload_expiry;
    let sweep_every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let checkpoint_every = config.checkpoint_interval;
    let sealer = {
        let engine = engine.clone();
        let identity = identity.clone();
        let mut last_checkpoints = std::time::Instant::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_sweep = std::time::Instant::now();
            loop {
                tick.tick().await;
                if last_checkpoints.elapsed() >= checkpoint_every {
                    last_checkpoints = std::time::Instant::now();
                    // A bucket whose head has not moved keeps its checkpoint.
                    if let Ok(buckets) = engine.list_buckets().await {
                        for b in buckets {
                            if let Err(e) = engine.sign_checkpoint(&b.name, &identity).await {
                                tracing::warn!(bucket = %b.name, error = %e, "signing a checkpoint failed");
                            }
                        }
                    }
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = std::time::Instant::now();
                    let before = billet_engine::now_ms() - expiry.as_millis() as i64;
                    match engine.expire_uploads(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(uploads = n, "expired abandoned multipart uploads"),
                        Err(e) => tracing::warn!(error = %e, "expiring multipart uploads failed"),
                    }
                }
                let log = engine.log().clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.seal_due()).await {
                    tracing::warn!(error = %e, "sealing segments failed");
                }
                if let Err(e) = engine.checkpoint().await {
                    tracing::warn!(error = %e, "advancing the log checkpoint failed");
                }
            }
        })
    };

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                // Small responses must not wait 40 ms for Nagle and delayed ACKs.
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |req| handle(app.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    app.ready.store(false, Ordering::SeqCst);
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN:?}");
    }
    sealer.abort();
    // Every acknowledged write is already durable; sealing makes the open
    // segments' sidecars ready for a quick restart.
    let log = engine.log().clone();
    let _ = tokio::task::spawn_blocking(move || log.seal_all()).await;
    // Everything is indexed: the next start has nothing to roll forward.
    if let Err(e) = engine.checkpoint().await {
        tracing::warn!(error = %e, "recording the log checkpoint failed");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// An unsigned GET of `/metrics`, `/health/live` or `/health/ready` is an
/// operations request. A signed one is S3 (a bucket may be named `metrics`).
fn ops_path(req: &Request<Incoming>) -> Option<&'static str> {
    if req.method() != Method::GET || req.headers().contains_key("authorization") {
        return None;
    }
    if req
        .uri()
        .query()
        .is_some_and(|q| q.contains("X-Amz-Signature"))
    {
        return None;
    }
    match req.uri().path() {
        "/metrics" => Some("metrics"),
        "/health/live" => Some("live"),
        "/health/ready" => Some("ready"),
        _ => None,
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

/// Gives an S3 error body the `<Message>` and `<RequestId>` clients show
/// and log. Errors s3s raises itself while routing (e.g. an invalid bucket
/// name) carry only a `<Code>`.
fn complete_error_body(resp: &mut Response<Body>, request_id: &str) {
    let Some(bytes) = resp.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    let (Some(code_start), Some(code_end)) = (text.find("<Code>"), text.find("</Code>")) else {
        return;
    };
    let code = &text[code_start + "<Code>".len()..code_end];
    let mut extra = String::new();
    if !text.contains("<Message>") {
        extra.push_str("<Message>");
        extra.push_str(default_message(code));
        extra.push_str("</Message>");
    }
    if !text.contains("<RequestId>") {
        extra.push_str("<RequestId>");
        extra.push_str(request_id);
        extra.push_str("</RequestId>");
    }
    if extra.is_empty() {
        return;
    }
    let at = code_end + "</Code>".len();
    let body = format!("{}{extra}{}", &text[..at], &text[at..]);
    if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
        resp.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, len);
    }
    *resp.body_mut() = Body::from(body);
}

/// The messages AWS S3 gives for codes that can arrive without one.
fn default_message(code: &str) -> &'static str {
    match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchKey" => "The specified key does not exist.",
        "AccessDenied" => "Access Denied",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "InvalidRequest" => "The request is not valid.",
        "InvalidArgument" => "An argument is not valid.",
        _ => "The request failed.",
    }
}

/// botocore sends `Expect: 100-continue` even with an empty body, and when
/// the final response comes without an interim 100 (as RFC 9110 allows and
/// hyper does) it keeps that status line on the pooled connection and parses
/// the next response on it against the stale line: a 60 s stall
/// (boto/botocore#3755). Closing the connection makes botocore reset it.
fn expects_continue_without_body(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let expects = h
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty = h
        .get(hyper::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    expects && empty
}

async fn handle(app: Arc<App>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let t0 = Instant::now();
    let rid = request_id();
    if let Some(what) = ops_path(&req) {
        return Ok(match what {
            "metrics" => text(
                StatusCode::OK,
                metrics::render(&app.metrics, &app.engine),
                "text/plain; version=0.0.4",
            ),
            "live" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
            _ => {
                let ok =
                    app.ready.load(Ordering::SeqCst) && app.engine.list_buckets().await.is_ok();
                if ok {
                    text(StatusCode::OK, "ready\n".into(), "text/plain")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready\n".into(),
                        "text/plain",
                    )
                }
            }
        });
    }
    if req.uri().path().starts_with(crate::history_api::PREFIX) {
        let resp = crate::history_api::handle(&app.engine, &app.identity, req).await;
        let op = "history".to_string();
        metrics::record_request(
            &op,
            resp.status().as_u16(),
            t0.elapsed().as_secs_f64(),
            0,
            0,
        );
        return Ok(resp);
    }
    let slot = OpSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let bytes_in = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let close_after = expects_continue_without_body(&req);
    let result = app.s3.call(req.map(Body::from)).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id = %rid, error = ?e, "request failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                String::new(),
                "text/plain",
            )
        }
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    if resp.status().as_u16() >= 400 {
        complete_error_body(&mut resp, &rid);
    }
    if close_after {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let bytes_out = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let op = slot.get().unwrap_or_else(|| "Unknown".into());
    let secs = t0.elapsed().as_secs_f64();
    metrics::record_request(&op, status, secs, bytes_in, bytes_out);
    if status >= 500 {
        tracing::warn!(request_id = %rid, %method, %path, op = %op, status, secs, "request");
    } else {
        tracing::debug!(request_id = %rid, %method, %path, op = %op, status, secs, "request");
    }
    Ok(resp)
}
