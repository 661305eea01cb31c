//! Who may do what: the one decision point every S3 operation and every
//! `/_billet/v1` endpoint passes through. The rule ([`rule::decide`]) is
//! pure; [`Authorizer`] gathers what it needs — the key, its grants, the
//! bucket's owner and access configuration — and caches it briefly.

pub mod actions;
pub mod bucket_access;
mod rule;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_engine::{AccessKey, Engine, EngineError, Grant};
use s3s::{S3Result, s3_error};

use crate::auth::Keys;
use crate::policy::Context;
pub use actions::{Action, action};
pub use bucket_access::BucketAccess;
pub use rule::{Ask, Caller, Decision, Verdict, decide, verdict};

/// How long a looked-up bucket configuration or key's grants are trusted.
/// Changes through this node are seen at once (the entry is forgotten);
/// the TTL bounds how long another node's change can go unseen.
const TTL: Duration = Duration::from_secs(5);
/// Cached entries at most (a cache is cleared when it would grow past).
const CACHE_MAX: usize = 10_000;

/// A small TTL cache.
struct Cache<V> {
    map: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Cache<V> {
    fn new() -> Self {
        Cache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (V, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, k: &str) -> Option<V> {
        self.lock()
            .get(k)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, k: &str, v: V) {
        let mut m = self.lock();
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(k.to_string(), (v, Instant::now()));
    }

    fn forget(&self, k: &str) {
        self.lock().remove(k);
    }
}

/// Looks up keys, grants and bucket configurations, and applies
/// [`decide`].
#[derive(Clone)]
pub struct Authorizer {
    engine: Engine,
    keys: Keys,
    buckets: Arc<Cache<Option<Arc<BucketAccess>>>>,
    grants: Arc<Cache<Arc<[Grant]>>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> s3s::S3Error {
    s3_error!(InternalError, "{what} failed: {e}")
}

impl Authorizer {
    pub fn new(engine: Engine) -> Self {
        let keys = Keys::new(engine.clone());
        Authorizer {
            engine,
            keys,
            buckets: Arc::new(Cache::new()),
            grants: Arc::new(Cache::new()),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The enabled key `id`, if any.
    pub async fn key(&self, id: &str) -> S3Result<Option<Arc<AccessKey>>> {
        self.keys.key(id).await
    }

    /// A key's grants.
    pub async fn grants(&self, key_id: &str) -> S3Result<Arc<[Grant]>> {
        if let Some(g) = self.grants.get(key_id) {
            return Ok(g);
        }
        let g: Arc<[Grant]> = self
            .engine
            .index()
            .grants(Some(key_id))
            .await
            .map_err(|e| internal("grant lookup", e))?
            .into();
        self.grants.put(key_id, g.clone());
        Ok(g)
    }

    /// The bucket's owner and access configuration, `None` if there is no
    /// such bucket.
    pub async fn bucket(&self, bucket: &str) -> S3Result<Option<Arc<BucketAccess>>> {
        if let Some(b) = self.buckets.get(bucket) {
            return Ok(b);
        }
        let access = match self.engine.bucket(bucket).await {
            Ok(state) => {
                let settings = self
                    .engine
                    .index()
                    .bucket_settings(bucket)
                    .await
                    .map_err(|e| internal("bucket settings lookup", e))?;
                Some(Arc::new(BucketAccess::from_settings(
                    bucket,
                    state.owner,
                    settings,
                )))
            }
            Err(EngineError::NoSuchBucket(_)) => None,
            Err(e) => return Err(internal("bucket lookup", e)),
        };
        self.buckets.put(bucket, access.clone());
        Ok(access)
    }

    /// Whether the bucket has a policy (whose conditions need the
    /// request's condition keys).
    pub async fn has_policy(&self, bucket: &str) -> S3Result<bool> {
        Ok(self
            .bucket(bucket)
            .await?
            .is_some_and(|b| b.policy.is_some()))
    }

    /// The owner of `bucket`, `None` if there is no such bucket.
    pub async fn bucket_owner(&self, bucket: &str) -> S3Result<Option<String>> {
        Ok(self.bucket(bucket).await?.map(|b| b.owner.clone()))
    }

    /// Forgets a bucket's cached configuration (it was just created,
    /// deleted or reconfigured).
    pub fn forget(&self, bucket: &str) {
        self.buckets.forget(bucket);
    }

    /// Forgets a key's cached grants (they just changed).
    pub fn forget_grants(&self, key_id: &str) {
        self.grants.forget(key_id);
    }

    /// Stores (or with `None` removes) one access setting of a bucket.
    pub async fn set_setting(&self, bucket: &str, name: &str, value: Option<&str>) -> S3Result<()> {
        let found = self
            .engine
            .index()
            .set_bucket_setting(bucket, name, value)
            .await
            .map_err(|e| internal("storing a bucket setting", e));
        self.forget(bucket);
        if !found? {
            return Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist."
            ));
        }
        Ok(())
    }

    /// The decision for `key` (`None`: anonymous) asking `action` on a
    /// bucket (and object, and version: the object's ACL is read when only
    /// it could allow the action).
    pub async fn authorize(
        &self,
        key: Option<&AccessKey>,
        bucket: &str,
        object: Option<(&str, Option<&str>)>,
        action: &Action,
        context: &Context,
    ) -> S3Result<Decision> {
        let access = self.bucket(bucket).await?;
        // A key acting as the bucket's owner needs no grant: skip the
        // lookup on the common path.
        let owner =
            key.is_some_and(|k| !k.limited && access.as_ref().is_some_and(|a| a.owner == k.owner));
        let grants = match key {
            Some(k) if !owner => self.grants(&k.id).await?,
            _ => Arc::from(Vec::new()),
        };
        let caller = Caller {
            key,
            grants: &grants,
        };
        let mut ask = Ask {
            bucket,
            key: object.map(|(k, _)| k),
            action,
            context,
            object_acl: None,
        };
        let first = verdict(&caller, access.as_deref(), &ask);
        let worth_a_look = first == Verdict::ImplicitDeny
            && access.as_ref().is_some_and(|a| a.acls_enabled())
            && rule::object_acl_permission(action).is_some();
        let Some((obj, version)) = object.filter(|_| worth_a_look) else {
            return Ok(decide(&caller, access.as_deref(), &ask));
        };
        // A missing object has no ACL: the deny stands (and says nothing
        // about whether the object exists).
        let acl = match self.engine.object(bucket, obj, version).await {
            Ok(v) => bucket_access::Acl::from_manifest(&v.manifest.acl),
            Err(_) => return Ok(Decision::Deny),
        };
        ask.object_acl = Some(&acl);
        Ok(decide(&caller, access.as_deref(), &ask))
    }

    /// Whether `key` may read `bucket` (the `/_billet/v1` proofs and
    /// challenges: listing permission on the bucket).
    pub async fn check_read(&self, key: &AccessKey, bucket: &str) -> S3Result<Decision> {
        let action = action("ListObjectsV2", false);
        self.authorize(Some(key), bucket, None, &action, &Context::new())
            .await
    }
}
