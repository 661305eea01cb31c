//! HTTP endpoints for checkpoints, proofs and storage challenges, outside
//! the S3 namespace (`_billet` cannot be a bucket name). Every request is
//! authenticated with an access key: `Authorization: Basic
//! base64(ACCESS_KEY_ID:SECRET)`, compared in constant time, with failed
//! attempts limited per client address; a bucket's endpoints answer only
//! its owner's keys (the same decision as S3's, `billet_s3::authz`).
//! Answers are DAG-CBOR (`application/vnd.ipld.dag-cbor`), or JSON with
//! `?format=json`; `billet verify-proof` checks the DAG-CBOR form offline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use billet_block::Cid;
use billet_engine::EngineError;
use billet_index::AccessKey;
use billet_proof::Proof;
use billet_s3::Decision;
use hyper::{Request, Response, StatusCode};
use s3s::Body;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::router::App;

pub const PREFIX: &str = "/_billet/v1/";

fn reply(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes::Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": msg }).to_string().into_bytes();
    reply(status, body, "application/json")
}

/// An engine error with the status S3 gives the same condition (one
/// mapping, `billet_s3::to_s3`), and its S3 code beside the message.
fn engine_error(e: EngineError) -> Response<Body> {
    let s3 = billet_s3::to_s3(e);
    let status = s3
        .status_code()
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "error": s3.message().unwrap_or(""),
        "code": s3.code().as_str(),
    });
    reply(status, body.to_string().into_bytes(), "application/json")
}

fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// The `Authorization: Basic` credentials, if well formed.
fn basic_credentials(req: &Request<hyper::body::Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Whether two secrets are equal, in time that depends on neither (their
/// digests are compared, so not even on their lengths).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

async fn authenticate(app: &App, req: &Request<hyper::body::Incoming>) -> Option<Arc<AccessKey>> {
    let (id, secret) = basic_credentials(req)?;
    let key = app.authz.key(&id).await.ok().flatten()?;
    secrets_equal(&key.secret, &secret).then_some(key)
}

fn encode(proof: Proof, json: bool) -> Response<Body> {
    match proof.to_bytes() {
        Ok(bytes) if json => match billet_proof::to_json(&bytes) {
            Ok(text) => reply(StatusCode::OK, text.into_bytes(), "application/json"),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Ok(bytes) => reply(StatusCode::OK, bytes, "application/vnd.ipld.dag-cbor"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// What answers `/_billet/v1`: the engine, the node's identity and the
/// authorization decision.
#[derive(Clone)]
pub struct History {
    pub engine: billet_engine::Engine,
    pub identity: ed25519_dalek::SigningKey,
    pub authz: billet_s3::Authorizer,
}

/// Who may use `Authorization: Basic` on `/_billet/v1` (SigV4 always
/// works): nobody, clients on the loopback interface (the default), or
/// everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAuth {
    Off,
    Loopback,
    On,
}

impl BasicAuth {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "off" => BasicAuth::Off,
            "loopback" => BasicAuth::Loopback,
            "on" => BasicAuth::On,
            _ => return None,
        })
    }

    fn allows(self, peer: &SocketAddr) -> bool {
        match self {
            BasicAuth::Off => false,
            BasicAuth::Loopback => peer.ip().to_canonical().is_loopback(),
            BasicAuth::On => true,
        }
    }
}

/// Whether a `/_billet/v1` request uses Basic authentication (the rest go
/// through s3s's SigV4 check, [`HistoryRoute`]).
pub fn is_basic(headers: &hyper::HeaderMap) -> bool {
    headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes().starts_with(b"Basic "))
}

/// A `/_billet/v1` request with `Authorization: Basic`, where the
/// configuration allows it for this client.
pub async fn handle_basic(
    app: &App,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported here");
    }
    if let Some(r) = limited(app, peer) {
        return r;
    }
    if !app.basic_auth.allows(&peer) {
        return error(
            StatusCode::FORBIDDEN,
            "Basic authentication is not accepted from this address; sign the request with SigV4 (header or presigned URL)",
        );
    }
    let Some(key) = authenticate(app, &req).await else {
        app.auth_limit.failed(peer.ip(), Instant::now());
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "authenticate with SigV4, or on loopback with Authorization: Basic base64(ACCESS_KEY_ID:SECRET)",
        );
        r.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Basic realm=\"billet\""),
        );
        return r;
    };
    app.history.answer(&key, req.uri()).await
}

/// A 429 while the client's failed logins are over the limit.
pub fn limited(app: &App, peer: SocketAddr) -> Option<Response<Body>> {
    let wait = app.auth_limit.blocked(peer.ip(), Instant::now())?;
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentication attempts from this address",
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    Some(r)
}

/// `/_billet/v1` inside s3s: s3s checks the SigV4 signature (header or
/// presigned URL) with the same keys as S3; the scope is checked here.
pub struct HistoryRoute(pub History);

#[async_trait::async_trait]
impl s3s::route::S3Route for HistoryRoute {
    fn is_match(
        &self,
        _method: &hyper::Method,
        uri: &hyper::Uri,
        _headers: &hyper::HeaderMap,
        _extensions: &mut hyper::http::Extensions,
    ) -> bool {
        uri.path().starts_with(PREFIX)
    }

    async fn check_access(&self, req: &mut s3s::S3Request<Body>) -> s3s::S3Result<()> {
        if req.credentials.is_none() {
            return Err(s3s::s3_error!(AccessDenied, "Signature is required"));
        }
        if req.method != hyper::Method::GET {
            return Err(s3s::s3_error!(
                MethodNotAllowed,
                "only GET is supported here"
            ));
        }
        if req.service.as_deref().is_some_and(|s| s != "s3") {
            return Err(s3s::s3_error!(
                AuthorizationHeaderMalformed,
                "The credential is scoped to another service; expecting 's3'"
            ));
        }
        Ok(())
    }

    async fn call(&self, req: s3s::S3Request<Body>) -> s3s::S3Result<s3s::S3Response<Body>> {
        let id = req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .unwrap_or_default();
        let key = self.0.authz.key(&id).await?.ok_or_else(|| {
            s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )
        })?;
        let resp = self.0.answer(&key, &req.uri).await;
        let (parts, body) = resp.into_parts();
        let mut out = s3s::S3Response::with_status(body, parts.status);
        out.headers = parts.headers;
        Ok(out)
    }
}

impl History {
    /// The answer to an authenticated `/_billet/v1` GET.
    pub async fn answer(&self, key: &AccessKey, uri: &hyper::Uri) -> Response<Body> {
        let (engine, identity) = (&self.engine, &self.identity);
        let q = query(uri);
        let json = q.get("format").is_some_and(|f| f == "json");
        let path = uri.path().trim_start_matches(PREFIX).to_string();
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["node"] => {
                let body =
                    serde_json::json!({ "did": billet_proof::did_key(&identity.verifying_key()) });
                reply(
                    StatusCode::OK,
                    body.to_string().into_bytes(),
                    "application/json",
                )
            }
            ["buckets", bucket, rest @ ..] => {
                match self.authz.check_read(key, bucket).await {
                    Ok(Decision::Allow) => {}
                    Ok(Decision::Deny) => return error(StatusCode::FORBIDDEN, "access denied"),
                    Err(e) => {
                        return error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            e.message().unwrap_or("authorization failed"),
                        );
                    }
                }
                if let Some(k) = q.get("key")
                    && let Err(e) = billet_block::validate_key(k.as_bytes())
                {
                    return error(StatusCode::BAD_REQUEST, &format!("key=: {e}"));
                }
                let cp = match engine.sign_checkpoint(bucket, identity).await {
                    Ok(cp) => cp,
                    Err(e) => return engine_error(e),
                };
                let result = match rest {
                    ["checkpoint"] => Ok(Proof::Checkpoint(cp)),
                    ["proof", "object"] => match q.get("key") {
                        Some(key) => engine.prove_object(&cp, key).await.map(Proof::Object),
                        None => return error(StatusCode::BAD_REQUEST, "key= is required"),
                    },
                    ["proof", "commit"] => {
                        let seq = q.get("seq").and_then(|s| s.parse::<u64>().ok());
                        let commit = match q.get("commit") {
                            Some(c) => match c.parse::<Cid>() {
                                Ok(c) => Some(c),
                                Err(e) => {
                                    return error(
                                        StatusCode::BAD_REQUEST,
                                        &format!("commit=: {e}"),
                                    );
                                }
                            },
                            None => None,
                        };
                        match (seq, commit) {
                            (Some(seq), Some(c)) => engine.prove_commit(&cp, seq, c).await,
                            (None, None) => {
                                let (seq, head) = (cp.checkpoint.seq, cp.checkpoint.head);
                                engine.prove_commit(&cp, seq, head).await
                            }
                            _ => {
                                return error(
                                    StatusCode::BAD_REQUEST,
                                    "give seq= and commit=, or neither (the head)",
                                );
                            }
                        }
                        .map(Proof::Commit)
                    }
                    ["proof", "consistency"] => match q.get("from").and_then(|s| s.parse().ok()) {
                        Some(from) => engine
                            .prove_consistency(&cp, from)
                            .await
                            .map(Proof::Consistency),
                        None => return error(StatusCode::BAD_REQUEST, "from=MMR_SIZE is required"),
                    },
                    ["challenge"] => {
                        let key = q.get("key");
                        let chunk = q.get("chunk").and_then(|c| c.parse::<u64>().ok());
                        let nonce = q.get("nonce").and_then(|n| hex::decode(n).ok());
                        match (key, chunk, nonce) {
                            (Some(k), Some(c), Some(n)) if !n.is_empty() && n.len() <= 64 => engine
                                .answer_challenge(&cp, k, c, &n, identity)
                                .await
                                .map(|p| Proof::Challenge(Box::new(p))),
                            _ => {
                                return error(
                                    StatusCode::BAD_REQUEST,
                                    "key=, chunk=N and nonce=HEX (1 to 64 bytes) are required",
                                );
                            }
                        }
                    }
                    _ => return error(StatusCode::NOT_FOUND, "no such endpoint"),
                };
                match result {
                    Ok(p) => encode(p, json),
                    Err(e) => engine_error(e),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::secrets_equal;

    #[test]
    fn secrets_compare_by_value_only() {
        let secret = "test-secret-key-0123456789abcdefghijklmn";
        assert!(secrets_equal(secret, secret));
        assert!(secrets_equal("", ""));
        for other in [
            "test-secret-key-0123456789abcdefghijklmN",
            "Test-secret-key-0123456789abcdefghijklmn",
            // A prefix, an extension, and a different length entirely: the
            // digests differ, and comparing them takes the same steps.
            "test-secret-key-0123456789abcdefghijklm",
            "test-secret-key-0123456789abcdefghijklmnx",
            "",
        ] {
            assert!(!secrets_equal(secret, other), "{other:?}");
            assert!(!secrets_equal(other, secret), "{other:?}");
        }
    }
}
