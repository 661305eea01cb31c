//! The decision itself, pure: who asks (a key and its grants, or no one),
//! the bucket's access configuration, and what is asked.
//!
//! Order, as AWS evaluates within one account: an explicit Deny in the
//! bucket policy refuses (except the owner's own policy operations, so an
//! owner cannot lock itself out); then the key acting as the bucket's
//! owner, a grant covering the action's class, a policy Allow, or an ACL
//! grant allows; anything else is the implicit deny.

use billet_engine::{AccessKey, Grant};

use super::actions::{Action, Class};
use super::bucket_access::{Acl, BucketAccess, Grantee, Permission};
use crate::policy::{Context, Outcome, Principal, Request};

/// What the rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Nothing allows it, or a policy statement denies it.
    Deny,
}

/// Who asks: a key (with its grants) or, for an unsigned request, no one.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub key: Option<&'a AccessKey>,
    pub grants: &'a [Grant],
}

impl Caller<'_> {
    pub const ANONYMOUS: Caller<'static> = Caller {
        key: None,
        grants: &[],
    };

    fn principal(&self) -> Principal<'_> {
        match self.key {
            Some(k) => Principal::Key {
                id: &k.id,
                owner: &k.owner,
            },
            None => Principal::Anonymous,
        }
    }

    /// The key acts as the bucket's owner (not a limited key).
    pub fn is_owner_of(&self, b: &BucketAccess) -> bool {
        self.key.is_some_and(|k| !k.limited && k.owner == b.owner)
    }

    /// The grant this key holds on `bucket` (owned by `owner`): its own
    /// grant on the bucket merged with a `*` grant over the owner's
    /// buckets.
    fn granted(&self, bucket: &str, owner: &str, class: Class) -> bool {
        let Some(k) = self.key else { return false };
        self.grants.iter().any(|g| {
            g.key_id == k.id
                && (g.bucket == bucket || (g.bucket == "*" && k.owner == owner))
                && match class {
                    Class::Read => g.read || g.owner,
                    Class::Write => g.write || g.owner,
                    Class::Owner => g.owner,
                }
        })
    }

    /// The key holds any grant on the bucket.
    pub fn has_grant_on(&self, bucket: &str, owner: &str) -> bool {
        [Class::Read, Class::Write, Class::Owner]
            .into_iter()
            .any(|c| self.granted(bucket, owner, c))
    }
}

/// One request to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub bucket: &'a str,
    /// The object key, for object actions.
    pub key: Option<&'a str>,
    pub action: &'a Action,
    pub context: &'a Context,
    /// The object's ACL, for the actions an object ACL can allow (looked
    /// up only when nothing else allows them).
    pub object_acl: Option<&'a Acl>,
}

/// Policy operations the bucket's owner always keeps (AWS: the root user
/// can always change a policy that denies it).
const OWNER_KEEPS: [&str; 3] = [
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

/// The ACL permission an action needs on the bucket, if a bucket ACL can
/// allow it at all.
fn bucket_acl_permission(action: &Action) -> Option<Permission> {
    Some(match action.iam.as_str() {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            Permission::Read
        }
        "s3:PutObject" | "s3:DeleteObject" | "s3:AbortMultipartUpload" => Permission::Write,
        "s3:GetBucketAcl" => Permission::ReadAcp,
        "s3:PutBucketAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// The ACL permission an action needs on an object, if an object ACL can
/// allow it at all.
pub fn object_acl_permission(action: &Action) -> Option<Permission> {
    Some(match action.iam.as_str() {
        "s3:GetObject" | "s3:GetObjectVersion" => Permission::Read,
        "s3:GetObjectAcl" | "s3:GetObjectVersionAcl" => Permission::ReadAcp,
        "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

fn acl_allows(caller: &Caller<'_>, b: &BucketAccess, ask: &Ask<'_>) -> bool {
    if !b.acls_enabled() {
        return false;
    }
    let (acl, want) = match (bucket_acl_permission(ask.action), ask.object_acl) {
        (Some(want), _) => (&b.acl, want),
        (None, Some(acl)) => match object_acl_permission(ask.action) {
            Some(want) => (acl, want),
            None => return false,
        },
        (None, None) => return false,
    };
    let ignore_public = b.block().ignore_public_acls;
    acl.grants.iter().any(|(grantee, perm)| {
        perm.covers(want)
            && match grantee {
                Grantee::AllUsers => !ignore_public,
                Grantee::AuthenticatedUsers => !ignore_public && caller.key.is_some(),
                Grantee::Owner(o) => caller.key.is_some_and(|k| !k.limited && &k.owner == o),
            }
    })
}

/// The decision and why, for the Authorizer: an implicit deny of an
/// action an object ACL could allow is worth looking the ACL up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The decision for `caller` asking `ask` of a bucket configured as `b`
/// (`None`: no such bucket, which the operation reports as NoSuchBucket).
pub fn decide(caller: &Caller<'_>, b: Option<&BucketAccess>, ask: &Ask<'_>) -> Decision {
    match verdict(caller, b, ask) {
        Verdict::Allow => Decision::Allow,
        Verdict::ExplicitDeny | Verdict::ImplicitDeny => Decision::Deny,
    }
}

/// [`decide`], telling an explicit deny from the implicit one.
pub fn verdict(caller: &Caller<'_>, b: Option<&BucketAccess>, ask: &Ask<'_>) -> Verdict {
    let Some(b) = b else {
        return Verdict::Allow;
    };
    let owner = caller.is_owner_of(b);
    let granted = caller.granted(ask.bucket, &b.owner, ask.action.class);
    if owner && OWNER_KEEPS.contains(&ask.action.iam.as_str()) {
        return Verdict::Allow;
    }
    let resource = match (ask.action.object, ask.key) {
        (true, Some(k)) => format!("arn:aws:s3:::{}/{k}", ask.bucket),
        (true, None) => format!("arn:aws:s3:::{}/*", ask.bucket),
        (false, _) => format!("arn:aws:s3:::{}", ask.bucket),
    };
    let outcome = b.policy.as_ref().map_or(Outcome::NotApplicable, |p| {
        let out = p.evaluate(&Request {
            principal: caller.principal(),
            action: &ask.action.iam,
            resource: &resource,
            context: ask.context,
        });
        // A public policy under RestrictPublicBuckets allows only those
        // the bucket already answers to.
        let insider = owner || caller.has_grant_on(ask.bucket, &b.owner);
        if out == Outcome::Allow && b.block().restrict_public_buckets && p.is_public() && !insider {
            Outcome::NotApplicable
        } else {
            out
        }
    });
    if outcome == Outcome::Deny {
        return Verdict::ExplicitDeny;
    }
    if owner || granted || outcome == Outcome::Allow || acl_allows(caller, b, ask) {
        Verdict::Allow
    } else {
        Verdict::ImplicitDeny
    }
}
