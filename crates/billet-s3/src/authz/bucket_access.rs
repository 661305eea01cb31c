//! A bucket's access configuration as the decision reads it: its owner,
//! policy, public access block, object ownership and ACL, parsed from the
//! index's bucket settings (one row per setting, by name).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::policy::Policy;

/// Names of the settings rows.
pub const POLICY: &str = "policy";
pub const PUBLIC_ACCESS_BLOCK: &str = "public-access-block";
pub const OWNERSHIP: &str = "ownership-controls";
pub const ACL: &str = "acl";
pub const CORS: &str = "cors";

/// S3's PublicAccessBlockConfiguration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// PUTs of public ACLs are refused.
    pub block_public_acls: bool,
    /// Public ACL grants are ignored.
    pub ignore_public_acls: bool,
    /// PutBucketPolicy of a public policy is refused.
    pub block_public_policy: bool,
    /// A public policy allows only the owner's keys and keys granted the
    /// bucket.
    pub restrict_public_buckets: bool,
}

const PAB_FIELDS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

impl PublicAccessBlock {
    pub fn to_setting(self) -> String {
        let v = [
            self.block_public_acls,
            self.ignore_public_acls,
            self.block_public_policy,
            self.restrict_public_buckets,
        ];
        let mut m = serde_json::Map::new();
        for (k, v) in PAB_FIELDS.iter().zip(v) {
            m.insert((*k).to_string(), Value::Bool(v));
        }
        Value::Object(m).to_string()
    }

    fn from_setting(s: &str) -> Self {
        let v: Value = serde_json::from_str(s).unwrap_or(Value::Null);
        let f = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        PublicAccessBlock {
            block_public_acls: f(PAB_FIELDS[0]),
            ignore_public_acls: f(PAB_FIELDS[1]),
            block_public_policy: f(PAB_FIELDS[2]),
            restrict_public_buckets: f(PAB_FIELDS[3]),
        }
    }
}

/// Who an ACL grant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// Everyone, the anonymous included.
    AllUsers,
    /// Every request signed by a key of this node.
    AuthenticatedUsers,
    /// One owner (its canonical id is its name).
    Owner(String),
}

/// An ACL permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            "FULL_CONTROL" => Permission::FullControl,
            _ => return None,
        })
    }

    /// Whether this permission covers `want`.
    pub fn covers(self, want: Permission) -> bool {
        self == Permission::FullControl || self == want
    }
}

pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// A grantee as stored (bucket settings and manifests).
fn grantee_str(g: &Grantee) -> String {
    match g {
        Grantee::AllUsers => "group:AllUsers".to_string(),
        Grantee::AuthenticatedUsers => "group:AuthenticatedUsers".to_string(),
        Grantee::Owner(o) => format!("id:{o}"),
    }
}

fn parse_grantee(s: &str) -> Option<Grantee> {
    Some(match s {
        "group:AllUsers" => Grantee::AllUsers,
        "group:AuthenticatedUsers" => Grantee::AuthenticatedUsers,
        other => Grantee::Owner(other.strip_prefix("id:")?.to_string()),
    })
}

/// An ACL's grants beyond the owner's implicit FULL_CONTROL (a bucket's,
/// or an object's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub grants: Vec<(Grantee, Permission)>,
}

impl Acl {
    /// A canned ACL (`x-amz-acl`) for a bucket; `None` if unknown.
    pub fn canned(name: &str) -> Option<Acl> {
        use Permission::*;
        let grants = match name {
            "private" | "bucket-owner-full-control" | "bucket-owner-read" => vec![],
            "public-read" => vec![(Grantee::AllUsers, Read)],
            "public-read-write" => vec![(Grantee::AllUsers, Read), (Grantee::AllUsers, Write)],
            "authenticated-read" => vec![(Grantee::AuthenticatedUsers, Read)],
            _ => return None,
        };
        Some(Acl { grants })
    }

    /// A canned ACL (`x-amz-acl`) for an object; `None` if unknown. The
    /// bucket owner owns every object, so the `bucket-owner-*` ones grant
    /// nothing more; WRITE means nothing on an object.
    pub fn canned_object(name: &str) -> Option<Acl> {
        use Permission::*;
        let grants = match name {
            "private" | "bucket-owner-full-control" | "bucket-owner-read" | "aws-exec-read" => {
                vec![]
            }
            "public-read" | "public-read-write" => vec![(Grantee::AllUsers, Read)],
            "authenticated-read" => vec![(Grantee::AuthenticatedUsers, Read)],
            _ => return None,
        };
        Some(Acl { grants })
    }

    /// The form a manifest keeps: grantee → sorted permissions.
    pub fn to_manifest(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (g, p) in &self.grants {
            let perms = m.entry(grantee_str(g)).or_default();
            perms.push(p.as_str().to_string());
            perms.sort();
            perms.dedup();
        }
        m
    }

    pub fn from_manifest(m: &std::collections::BTreeMap<String, Vec<String>>) -> Acl {
        let grants = m
            .iter()
            .filter_map(|(g, perms)| Some((parse_grantee(g)?, perms)))
            .flat_map(|(g, perms)| {
                perms
                    .iter()
                    .filter_map(move |p| Some((g.clone(), Permission::parse(p)?)))
            })
            .collect();
        Acl { grants }
    }

    /// Whether it grants anything to everyone or every signed request.
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|(g, _)| matches!(g, Grantee::AllUsers | Grantee::AuthenticatedUsers))
    }

    pub fn to_setting(&self) -> String {
        let grants: Vec<Value> = self
            .grants
            .iter()
            .map(|(g, p)| json!({"grantee": grantee_str(g), "permission": p.as_str()}))
            .collect();
        Value::Array(grants).to_string()
    }

    fn from_setting(s: &str) -> Self {
        let v: Value = serde_json::from_str(s).unwrap_or(Value::Null);
        let grants = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| {
                        let grantee = parse_grantee(g.get("grantee")?.as_str()?)?;
                        Some((grantee, Permission::parse(g.get("permission")?.as_str()?)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Acl { grants }
    }
}

/// A bucket's access configuration.
#[derive(Debug, Clone, Default)]
pub struct BucketAccess {
    pub owner: String,
    pub policy: Option<Arc<Policy>>,
    pub policy_text: Option<String>,
    pub public_block: Option<PublicAccessBlock>,
    /// `BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`,
    /// when set.
    pub ownership: Option<String>,
    pub acl: Acl,
    /// CORS rules, when configured.
    pub cors: Option<Vec<crate::cors::Rule>>,
}

impl BucketAccess {
    /// From the index's settings rows. A stored policy was checked when it
    /// was put; one that no longer parses (a newer billet's) denies rather
    /// than opens: it is treated as a policy that allows nothing.
    pub fn from_settings(bucket: &str, owner: String, settings: Vec<(String, String)>) -> Self {
        let mut b = BucketAccess {
            owner,
            ..Default::default()
        };
        for (name, value) in settings {
            match name.as_str() {
                POLICY => {
                    match Policy::parse(&value, bucket) {
                        Ok(p) => b.policy = Some(Arc::new(p)),
                        Err(e) => {
                            tracing::warn!(bucket, error = %e, "a stored bucket policy does not parse; it allows nothing");
                        }
                    }
                    b.policy_text = Some(value);
                }
                PUBLIC_ACCESS_BLOCK => {
                    b.public_block = Some(PublicAccessBlock::from_setting(&value))
                }
                OWNERSHIP => b.ownership = Some(value),
                ACL => b.acl = Acl::from_setting(&value),
                CORS => b.cors = Some(crate::cors::from_setting(&value)),
                _ => {}
            }
        }
        b
    }

    pub fn block(&self) -> PublicAccessBlock {
        self.public_block.unwrap_or_default()
    }

    /// ACLs count for nothing once the bucket owner is enforced.
    pub fn acls_enabled(&self) -> bool {
        self.ownership.as_deref() != Some("BucketOwnerEnforced")
    }
}
