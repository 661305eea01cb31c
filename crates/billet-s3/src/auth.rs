//! Who is asking: access keys from the index, for s3s's signature checks
//! and for the authorization decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_engine::{AccessKey, Engine};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

/// How long a looked-up key is trusted before the index is asked again:
/// short, so disabling or deleting a key takes effect quickly.
const KEY_TTL: Duration = Duration::from_secs(5);

/// Looks access keys up (cached briefly).
#[derive(Clone)]
pub struct Keys {
    engine: Engine,
    cache: Arc<Mutex<KeyCache>>,
}

/// Looked-up keys (None: known not to exist) and when they were looked up.
type KeyCache = HashMap<String, (Option<Arc<AccessKey>>, Instant)>;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl Keys {
    pub fn new(engine: Engine) -> Self {
        Keys {
            engine,
            cache: Arc::default(),
        }
    }

    /// The enabled key `id`, if any.
    pub async fn key(&self, id: &str) -> S3Result<Option<Arc<AccessKey>>> {
        if let Some((k, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && at.elapsed() < KEY_TTL
        {
            return Ok(k.clone());
        }
        let k = self
            .engine
            .access_key(id)
            .await
            .map_err(|e| s3_error!(InternalError, "access key lookup failed: {e}"))?
            .filter(|k| !k.disabled)
            .map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(id.to_string(), (k.clone(), Instant::now()));
        Ok(k)
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.key(access_key).await? {
            Some(k) => Ok(SecretKey::from(k.secret.clone())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
        }
    }
}
