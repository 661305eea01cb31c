//! Who is asking: access keys from the index, and the requests billet
//! refuses before any operation runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_index::{AccessKey, Index};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

/// How long a looked-up key is trusted before the index is asked again:
/// short, so disabling or deleting a key takes effect quickly.
const KEY_TTL: Duration = Duration::from_secs(5);

/// Looks access keys up in the index (cached briefly).
#[derive(Clone)]
pub struct IndexAuth {
    index: Arc<dyn Index>,
    cache: Arc<Mutex<KeyCache>>,
}

/// Looked-up keys (None: known not to exist) and when they were looked up.
type KeyCache = HashMap<String, (Option<AccessKey>, Instant)>;

impl std::fmt::Debug for IndexAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexAuth").finish_non_exhaustive()
    }
}

impl IndexAuth {
    pub fn new(index: Arc<dyn Index>) -> Self {
        IndexAuth {
            index,
            cache: Arc::default(),
        }
    }

    /// The enabled key `id`, if any.
    pub async fn key(&self, id: &str) -> S3Result<Option<AccessKey>> {
        if let Some((k, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && at.elapsed() < KEY_TTL
        {
            return Ok(k.clone());
        }
        let k = self
            .index
            .access_key(id)
            .await
            .map_err(|e| s3_error!(InternalError, "access key lookup failed: {e}"))?
            .filter(|k| !k.disabled);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(id.to_string(), (k.clone(), Instant::now()));
        Ok(k)
    }
}

#[async_trait::async_trait]
impl S3Auth for IndexAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.key(access_key).await? {
            Some(k) => Ok(SecretKey::from(k.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
        }
    }
}

/// The operation a request turned out to be, for metrics and logs; the
/// HTTP layer puts one in each request's extensions.
#[derive(Debug, Clone, Default)]
pub struct OpSlot(pub Arc<Mutex<Option<String>>>);

impl OpSlot {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Longest presigned URL lifetime AWS accepts (7 days).
const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// Access checks that run after authentication: signatures are required,
/// only SigV4 is accepted (s3s also verifies SigV2, which AWS retired),
/// and presigned URLs may live at most 7 days.
#[derive(Debug, Clone, Default)]
pub struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_string();
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>() {
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(op);
        }
        if let Some(auth) = cx.headers().get("authorization")
            && auth.as_bytes().starts_with(b"AWS ")
        {
            return Err(s3_error!(
                AccessDenied,
                "Signature Version 2 is not supported; use SigV4"
            ));
        }
        let query = cx.uri().query().unwrap_or("");
        let mut v4 = false;
        let mut v2 = false;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "X-Amz-Algorithm" => v4 = true,
                "AWSAccessKeyId" | "Signature" => v2 = true,
                "X-Amz-Expires" => match v.parse::<u64>() {
                    Ok(secs) if secs <= MAX_PRESIGN_SECS => {}
                    _ => {
                        return Err(s3_error!(
                            AuthorizationQueryParametersError,
                            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"
                        ));
                    }
                },
                _ => {}
            }
        }
        if v2 && !v4 {
            return Err(s3_error!(
                AccessDenied,
                "Signature Version 2 is not supported; use SigV4"
            ));
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }
}
