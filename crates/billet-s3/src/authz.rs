//! Who may act on a bucket: the one decision point every S3 operation and
//! every `/_billet/v1` endpoint passes through. The rule itself
//! ([`decide`]) is pure; [`Authorizer`] gathers what it needs (the key's
//! owner, the bucket's owner) and caches it briefly.
//!
//! Today's rule is ownership: a bucket, its objects, uploads, tags,
//! versions and proofs answer only to keys of the bucket's owner. Grants,
//! bucket policies and ACLs will be further inputs of [`decide`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_engine::AccessKey;
use billet_engine::{Engine, EngineError};
use s3s::{S3Result, s3_error};

use crate::auth::Keys;

/// How long a bucket's looked-up owner is trusted. Deleting or creating a
/// bucket through this node forgets it at once; the TTL bounds how long
/// another node's change can go unseen.
const OWNER_TTL: Duration = Duration::from_secs(5);
/// Cached owners at most (the cache is cleared when it would grow past).
const OWNER_CACHE_MAX: usize = 10_000;

/// Bucket name → its owner (`None`: no such bucket) and when looked up.
type OwnerCache = HashMap<String, (Option<String>, Instant)>;

/// What the rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Nothing grants the principal access (AWS's implicit deny).
    Deny,
}

/// The decision for a principal (the owner of the signing key) acting on
/// a bucket owned by `bucket_owner` (`None`: no such bucket, which the
/// operation itself reports as NoSuchBucket).
pub fn decide(principal_owner: &str, bucket_owner: Option<&str>) -> Decision {
    match bucket_owner {
        None => Decision::Allow,
        Some(owner) if owner == principal_owner => Decision::Allow,
        Some(_) => Decision::Deny,
    }
}

/// Looks up keys and bucket owners, and applies [`decide`].
#[derive(Clone)]
pub struct Authorizer {
    engine: Engine,
    keys: Keys,
    owners: Arc<Mutex<OwnerCache>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    pub fn new(engine: Engine) -> Self {
        let keys = Keys::new(engine.clone());
        Authorizer {
            engine,
            keys,
            owners: Arc::default(),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The enabled key `id`, if any.
    pub async fn key(&self, id: &str) -> S3Result<Option<Arc<AccessKey>>> {
        self.keys.key(id).await
    }

    /// The owner of `bucket`, `None` if there is no such bucket.
    pub async fn bucket_owner(&self, bucket: &str) -> S3Result<Option<String>> {
        if let Some((owner, at)) = self.lock().get(bucket)
            && at.elapsed() < OWNER_TTL
        {
            return Ok(owner.clone());
        }
        let owner = match self.engine.bucket(bucket).await {
            Ok(state) => Some(state.owner),
            Err(EngineError::NoSuchBucket(_)) => None,
            Err(e) => return Err(s3_error!(InternalError, "bucket lookup failed: {e}")),
        };
        let mut cache = self.lock();
        if cache.len() >= OWNER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(bucket.to_string(), (owner.clone(), Instant::now()));
        Ok(owner)
    }

    /// Forgets a bucket's cached owner (it was just created or deleted).
    pub fn forget(&self, bucket: &str) {
        self.lock().remove(bucket);
    }

    /// Whether keys of `principal_owner` may act on `bucket`.
    pub async fn check_bucket(&self, principal_owner: &str, bucket: &str) -> S3Result<Decision> {
        let owner = self.bucket_owner(bucket).await?;
        Ok(decide(principal_owner, owner.as_deref()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OwnerCache> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_rule() {
        // (principal's owner, bucket's owner, decision)
        let cases = [
            ("alice", Some("alice"), Decision::Allow),
            ("alice", Some("bob"), Decision::Deny),
            ("bob", Some("alice"), Decision::Deny),
            // Owner names compare exactly.
            ("Alice", Some("alice"), Decision::Deny),
            ("", Some("alice"), Decision::Deny),
            // A missing bucket is the operation's to report.
            ("alice", None, Decision::Allow),
        ];
        for (who, owner, want) in cases {
            assert_eq!(decide(who, owner), want, "{who} on a bucket of {owner:?}");
        }
    }
}
