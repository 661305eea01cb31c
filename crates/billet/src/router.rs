//! One request's way through the server: operations endpoints, the
//! `/_billet/v1` history API, a CORS preflight, a browser form upload
//! (POST Object, handled here rather than by s3s, which would buffer the
//! file), or S3; an `x-amz-request-id`; error bodies completed; metrics
//! and one log line. A response sent before
//! its request's body was read to the end closes the connection, so the
//! unread bytes can never be taken for the next request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use billet_engine::Engine;
use billet_s3::{Authorizer, ClientAddr, OpSlot};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use s3s::Body;
use s3s::service::S3Service;

use crate::auth_limit::AuthLimiter;
use crate::config::Limits;
use crate::metrics;
use crate::request_body::GuardedBody;

pub struct App {
    pub s3: S3Service,
    pub engine: Engine,
    pub authz: Authorizer,
    pub metrics: PrometheusHandle,
    pub ready: AtomicBool,
    pub limits: Limits,
    pub auth_limit: AuthLimiter,
    /// The region signatures are scoped to.
    pub region: String,
    /// What answers `/_billet/v1`.
    pub history: crate::history_api::History,
    /// Who may use Basic authentication on `/_billet/v1`.
    pub basic_auth: crate::history_api::BasicAuth,
    /// The base domain of virtual-hosted-style requests, if configured.
    pub domain: Option<billet_s3::BaseDomain>,
    /// The per-bucket shipped heads `/metrics` last showed, and when they
    /// were read: the endpoint is unauthenticated and they cost index
    /// queries per bucket, so scrapes share one reading a second.
    pub shipped_cache:
        tokio::sync::Mutex<Option<(std::time::Instant, Arc<[billet_engine::BucketShipped]>)>>,
}

/// How long one reading of the shipped heads serves `/metrics` scrapes.
const SHIPPED_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The cold-tier status for `/metrics`: the node's own figures fresh, the
/// per-bucket part read at most once per [`SHIPPED_FRESH`] however many
/// scrapes arrive (they wait for the reading under way).
async fn metrics_status(app: &App) -> Option<billet_engine::NodeStatus> {
    let result = async {
        let mut status = app.engine.node_figures().await?;
        let mut cache = app.shipped_cache.lock().await;
        let buckets = match cache.as_ref() {
            Some((at, b)) if at.elapsed() < SHIPPED_FRESH => b.clone(),
            _ => {
                let b: Arc<[billet_engine::BucketShipped]> =
                    app.engine.buckets_shipped().await?.into();
                *cache = Some((std::time::Instant::now(), b.clone()));
                b
            }
        };
        status.buckets = buckets.to_vec();
        Ok::<_, billet_engine::EngineError>(status)
    };
    match result.await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "reading the cold-tier status for /metrics failed");
            None
        }
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

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An S3 error response made here, before s3s saw the request.
fn s3_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>{request_id}</RequestId></Error>",
        xml_escape(message)
    );
    text(status, body, "application/xml")
}

/// Gives an S3 error body the `<Message>` and `<RequestId>` clients show
/// and log. Errors s3s raises itself while routing (e.g. an invalid bucket
/// name) carry only a `<Code>`. Returns the code.
fn complete_error_body(resp: &mut Response<Body>, request_id: &str) -> Option<String> {
    let bytes = resp.body().bytes()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (code_start, code_end) = (text.find("<Code>")?, text.find("</Code>")?);
    let code = text.get(code_start + "<Code>".len()..code_end)?.to_string();
    let mut extra = String::new();
    if !text.contains("<Message>") {
        extra.push_str("<Message>");
        extra.push_str(default_message(&code));
        extra.push_str("</Message>");
    }
    if !text.contains("<RequestId>") {
        extra.push_str("<RequestId>");
        extra.push_str(request_id);
        extra.push_str("</RequestId>");
    }
    if !extra.is_empty() {
        let at = code_end + "</Code>".len();
        let body = format!("{}{extra}{}", &text[..at], &text[at..]);
        if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
            resp.headers_mut()
                .insert(hyper::header::CONTENT_LENGTH, len);
        }
        *resp.body_mut() = Body::from(body);
    }
    Some(code)
}

/// The `<Message>` of an error body, cut to a length fit for a log line.
fn error_message(resp: &Response<Body>) -> String {
    let Some(bytes) = resp.body().bytes() else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let msg = match (text.find("<Message>"), text.find("</Message>")) {
        (Some(a), Some(b)) if b > a => &text[a + "<Message>".len()..b],
        _ => "",
    };
    msg.chars().take(300).collect()
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

fn header_is(req: &Request<Incoming>, name: http::HeaderName, value: &[u8]) -> bool {
    req.headers()
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value))
}

/// botocore sends `Expect: 100-continue` even with an empty body, and when
/// the final response comes without an interim 100 (as RFC 9110 allows and
/// hyper does) it keeps that status line on the pooled connection and parses
/// the next response on it against the stale line: a 60 s stall
/// (boto/botocore#3755). Closing the connection makes botocore reset it.
fn expects_continue_without_body(req: &Request<Incoming>) -> bool {
    header_is(req, hyper::header::EXPECT, b"100-continue")
        && header_is(req, hyper::header::CONTENT_LENGTH, b"0")
}

/// A browser form upload (POST Object).
fn is_form_post(req: &Request<Incoming>) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

fn close(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
}

async fn operations(app: &App, what: &str) -> Response<Body> {
    match what {
        "metrics" => {
            let status = metrics_status(app).await;
            text(
                StatusCode::OK,
                metrics::render(&app.metrics, &app.engine, status.as_ref()),
                "text/plain; version=0.0.4",
            )
        }
        "live" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        _ => {
            let ok = app.ready.load(Ordering::SeqCst) && app.engine.list_buckets().await.is_ok();
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
    }
}

/// A browser form upload (POST Object): fields read within bounds, the
/// policy and signature checked, then the file streamed into the log. An
/// answer sent before the body was read to its end closes the connection.
async fn form_upload(
    app: &App,
    peer: SocketAddr,
    bucket: Option<&str>,
    req: Request<Incoming>,
    rid: &str,
) -> Response<Body> {
    let Some(bucket) = bucket else {
        let mut r = s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "A form upload is posted to a bucket",
            rid,
        );
        close(&mut r);
        return r;
    };
    let (parts, incoming) = req.into_parts();
    let (guarded, state) = GuardedBody::new(incoming, app.limits.body_timeout);
    let target = billet_s3::PostTarget {
        authz: &app.authz,
        engine: &app.engine,
        region: &app.region,
        bucket,
        client: Some(peer),
    };
    let result = billet_s3::post_object(target, &parts.headers, Body::http_body(guarded)).await;
    let mut resp = match result.or_else(|e| e.to_http_response()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id = %rid, error = ?e, "form upload failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                String::new(),
                "text/plain",
            )
        }
    };
    if resp.status().as_u16() >= 400 {
        complete_error_body(&mut resp, rid);
    }
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    if parts.headers.contains_key(hyper::header::ORIGIN)
        && let Some(cors) =
            billet_s3::cors::response_headers(&app.authz, bucket, &parts.method, &parts.headers)
                .await
    {
        resp.headers_mut().extend(cors);
    }
    if !state.finished() {
        close(&mut resp);
    }
    resp
}

/// A CORS preflight: answered from the bucket's rules, without
/// authentication and without reading a body.
async fn preflight(
    app: &App,
    bucket: Option<&str>,
    headers: &http::HeaderMap,
    rid: &str,
) -> Response<Body> {
    let answer = match bucket {
        Some(b) => billet_s3::cors::answer_preflight(&app.authz, b, headers).await,
        None => Err((
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "A CORS preflight names a bucket",
        )),
    };
    let mut resp = match answer {
        Ok(h) => {
            let mut r = Response::new(Body::empty());
            r.headers_mut().extend(h);
            r
        }
        Err((status, code, message)) => s3_error(status, code, message, rid),
    };
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let t0 = Instant::now();
    let rid = request_id();
    if let Some(what) = ops_path(&req) {
        return Ok(operations(&app, what).await);
    }
    let history = req.uri().path().starts_with(crate::history_api::PREFIX);
    if history && crate::history_api::is_basic(req.headers()) {
        let resp = crate::history_api::handle_basic(&app, peer, req).await;
        metrics::record_request(
            "history",
            resp.status().as_u16(),
            t0.elapsed().as_secs_f64(),
            0,
            0,
        );
        return Ok(resp);
    }
    if history && let Some(resp) = crate::history_api::limited(&app, peer) {
        return Ok(resp);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Only preflights, form uploads and requests from a page need the
    // bucket named here; the rest leave it to s3s.
    let origin_headers = req
        .headers()
        .contains_key(hyper::header::ORIGIN)
        .then(|| req.headers().clone());
    let bucket = (method == Method::OPTIONS || origin_headers.is_some() || is_form_post(&req))
        .then(|| {
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|v| v.to_str().ok());
            billet_s3::bucket_of(app.domain.as_ref(), host, &path)
        })
        .flatten();
    if method == Method::OPTIONS {
        let mut resp = preflight(&app, bucket.as_deref(), req.headers(), &rid).await;
        if !http_body::Body::is_end_stream(req.body()) {
            close(&mut resp);
        }
        metrics::record_request(
            "PreflightCors",
            resp.status().as_u16(),
            t0.elapsed().as_secs_f64(),
            0,
            0,
        );
        return Ok(resp);
    }
    if is_form_post(&req) {
        let resp = form_upload(&app, peer, bucket.as_deref(), req, &rid).await;
        let status = resp.status().as_u16();
        metrics::record_request("PostObject", status, t0.elapsed().as_secs_f64(), 0, 0);
        tracing::debug!(request_id = %rid, %method, %path, status, "form upload");
        return Ok(resp);
    }
    if let Some(why) = billet_s3::presigned_expiry_error(req.uri().query()) {
        let mut resp = s3_error(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            why,
            &rid,
        );
        if !http_body::Body::is_end_stream(req.body()) {
            close(&mut resp);
        }
        metrics::record_request("Unknown", 400, t0.elapsed().as_secs_f64(), 0, 0);
        return Ok(resp);
    }
    let slot = OpSlot::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(ClientAddr(peer));
    let bytes_in = content_length(req.headers());
    let close_after = expects_continue_without_body(&req);
    // Only a request that has a body needs it watched.
    let (req, body) = {
        let (parts, incoming) = req.into_parts();
        if http_body::Body::is_end_stream(&incoming) {
            (Request::from_parts(parts, Body::from(incoming)), None)
        } else {
            let (guarded, state) = GuardedBody::new(incoming, app.limits.body_timeout);
            let body = Body::http_body(guarded);
            (Request::from_parts(parts, body), Some(state))
        }
    };
    let mut req = req;
    billet_s3::unsized_body::set_aside(&mut req);
    let result = app.s3.call(req).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            let msg: String = format!("{e:?}").chars().take(300).collect();
            tracing::error!(request_id = %rid, error = %msg, "request failed");
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
    if let (Some(h), Some(b)) = (origin_headers, bucket.as_deref())
        && let Some(cors) = billet_s3::cors::response_headers(&app.authz, b, &method, &h).await
    {
        resp.headers_mut().extend(cors);
    }
    let code = if resp.status().as_u16() >= 400 {
        complete_error_body(&mut resp, &rid)
    } else {
        None
    };
    if close_after || body.is_some_and(|b| !b.finished()) {
        close(&mut resp);
    }
    let status = resp.status().as_u16();
    let bytes_out = content_length(resp.headers());
    if history
        && matches!(
            code.as_deref(),
            Some("SignatureDoesNotMatch" | "InvalidAccessKeyId")
        )
    {
        // A signature that did not check out counts against the address,
        // as a failed Basic login does.
        app.auth_limit.failed(peer.ip(), Instant::now());
    }
    let op = match slot.get() {
        Some(op) => op,
        None if history => "history".into(),
        None => "Unknown".into(),
    };
    let secs = t0.elapsed().as_secs_f64();
    metrics::record_request(&op, status, secs, bytes_in, bytes_out);
    let code = code.unwrap_or_default();
    if status >= 500 {
        let message = error_message(&resp);
        tracing::error!(request_id = %rid, %method, %path, op = %op, status, %code, %message, secs, "request failed");
    } else {
        tracing::debug!(request_id = %rid, %method, %path, op = %op, status, %code, secs, "request");
    }
    Ok(resp)
}
