//! HTTP endpoints for checkpoints, proofs and storage challenges, outside
//! the S3 namespace (`_billet` cannot be a bucket name). Every request is
//! authenticated with an access key: `Authorization: Basic
//! base64(ACCESS_KEY_ID:SECRET)`. Answers are DAG-CBOR
//! (`application/vnd.ipld.dag-cbor`), or JSON with `?format=json`;
//! `billet verify-proof` checks the DAG-CBOR form offline.

use std::collections::HashMap;

use base64::Engine as _;
use billet_block::Cid;
use billet_engine::{Engine, EngineError};
use billet_proof::Proof;
use ed25519_dalek::SigningKey;
use hyper::{Request, Response, StatusCode};
use s3s::Body;

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

fn engine_error(e: EngineError) -> Response<Body> {
    let status = match &e {
        EngineError::NoSuchBucket(_) | EngineError::NoSuchKey(_) => StatusCode::NOT_FOUND,
        EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
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

async fn authorized(engine: &Engine, req: &Request<hyper::body::Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((id, secret)) = text.split_once(':') else {
        return false;
    };
    match engine.index().access_key(id).await {
        Ok(Some(k)) => !k.disabled && k.secret == secret,
        _ => false,
    }
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

pub async fn handle(
    engine: &Engine,
    identity: &SigningKey,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported here");
    }
    if !authorized(engine, &req).await {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "authenticate with Authorization: Basic base64(ACCESS_KEY_ID:SECRET)",
        );
        r.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Basic realm=\"billet\""),
        );
        return r;
    }
    let q = query(&req);
    let json = q.get("format").is_some_and(|f| f == "json");
    let path = req.uri().path().trim_start_matches(PREFIX).to_string();
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
                                return error(StatusCode::BAD_REQUEST, &format!("commit=: {e}"));
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
