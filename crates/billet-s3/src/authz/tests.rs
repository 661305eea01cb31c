//! The decision, case by case: owners, limited keys and their grants,
//! policies (explicit deny first), the public access block, ACLs and
//! ownership controls.

use std::sync::Arc;

use billet_engine::{AccessKey, Grant};

use super::bucket_access::{Acl, BucketAccess, Grantee, Permission, PublicAccessBlock};
use super::*;
use crate::policy::Policy;

fn key(id: &str, owner: &str, limited: bool) -> AccessKey {
    AccessKey {
        id: id.into(),
        secret: "s".into(),
        owner: owner.into(),
        created_ms: 0,
        disabled: false,
        limited,
    }
}

fn grant(key: &str, bucket: &str, read: bool, write: bool, owner: bool) -> Grant {
    Grant {
        key_id: key.into(),
        bucket: bucket.into(),
        read,
        write,
        owner,
    }
}

fn bucket(policy: Option<&str>) -> BucketAccess {
    BucketAccess {
        owner: "alice".into(),
        policy: policy.map(|p| Arc::new(Policy::parse(p, "b").expect("valid policy"))),
        ..Default::default()
    }
}

const PUBLIC_READ: &str = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/pub/*"}]}"#;
const DENY_BOB_DELETES: &str = r#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":"bob"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#;
const DENY_ALL: &str = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#;

fn run(
    k: Option<&AccessKey>,
    grants: &[Grant],
    b: Option<&BucketAccess>,
    op: &str,
    obj: Option<&str>,
) -> Decision {
    let caller = Caller { key: k, grants };
    let action = action(op, false);
    let cx = Context::new();
    decide(
        &caller,
        b,
        &Ask {
            bucket: "b",
            key: obj,
            action: &action,
            context: &cx,
            object_acl: None,
        },
    )
}

/// (name, key, its grants, bucket, operation, object key, decision)
type Case<'a> = (
    &'a str,
    Option<&'a AccessKey>,
    &'a [Grant],
    Option<&'a BucketAccess>,
    &'a str,
    Option<&'a str>,
    Decision,
);

#[test]
fn decisions() {
    use Decision::*;
    let alice = key("AKA", "alice", false);
    let alice_limited = key("AKAL", "alice", true);
    let bob = key("AKB", "bob", false);
    let plain = bucket(None);
    let public = bucket(Some(PUBLIC_READ));
    let deny_bob = bucket(Some(DENY_BOB_DELETES));
    let deny_all = bucket(Some(DENY_ALL));
    let mut restricted = bucket(Some(PUBLIC_READ));
    restricted.public_block = Some(PublicAccessBlock {
        restrict_public_buckets: true,
        ..Default::default()
    });
    let mut acl_public = bucket(None);
    acl_public.acl = Acl::canned("public-read").expect("canned");
    let mut acl_ignored = acl_public.clone();
    acl_ignored.public_block = Some(PublicAccessBlock {
        ignore_public_acls: true,
        ..Default::default()
    });
    let mut enforced = acl_public.clone();
    enforced.ownership = Some("BucketOwnerEnforced".into());
    let mut acl_bob = bucket(None);
    acl_bob
        .acl
        .grants
        .push((Grantee::Owner("bob".into()), Permission::Write));

    let ro = [grant("AKAL", "b", true, false, false)];
    let rw_all = [grant("AKAL", "*", true, true, false)];
    let bob_owner = [grant("AKB", "b", false, false, true)];
    let bob_star = [grant("AKB", "*", true, true, true)];
    let limited_writer = [grant("AKAL", "b", false, true, false)];
    let anon = None;
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("owner reads", Some(&alice), &[], Some(&plain), "GetObject", Some("k"), Allow),
        ("owner configures", Some(&alice), &[], Some(&plain), "PutBucketPolicy", None, Allow),
        ("another owner", Some(&bob), &[], Some(&plain), "GetObject", Some("k"), Deny),
        ("anonymous on a private bucket", anon, &[], Some(&plain), "GetObject", Some("k"), Deny),
        ("anonymous lists a private bucket", anon, &[], Some(&plain), "ListObjectsV2", None, Deny),
        ("no bucket: the operation says so", anon, &[], None, "GetObject", Some("k"), Allow),
        ("limited key without grants", Some(&alice_limited), &[], Some(&plain), "GetObject", Some("k"), Deny),
        ("read grant reads", Some(&alice_limited), &ro, Some(&plain), "GetObject", Some("k"), Allow),
        ("read grant lists", Some(&alice_limited), &ro, Some(&plain), "ListObjectsV2", None, Allow),
        ("read grant cannot write", Some(&alice_limited), &ro, Some(&plain), "PutObject", Some("k"), Deny),
        ("read grant cannot delete", Some(&alice_limited), &ro, Some(&plain), "DeleteObject", Some("k"), Deny),
        ("read grant cannot configure", Some(&alice_limited), &ro, Some(&plain), "PutBucketVersioning", None, Deny),
        ("star grant covers the owner's buckets", Some(&alice_limited), &rw_all, Some(&plain), "PutObject", Some("k"), Allow),
        ("star grant is not owner class", Some(&alice_limited), &rw_all, Some(&plain), "DeleteBucket", None, Deny),
        ("star grant stops at other owners", Some(&bob), &bob_star, Some(&plain), "GetObject", Some("k"), Deny),
        ("owner grant to another owner's key", Some(&bob), &bob_owner, Some(&plain), "PutBucketTagging", None, Allow),
        ("owner grant covers writes", Some(&bob), &bob_owner, Some(&plain), "PutObject", Some("k"), Allow),
        ("grant of another key counts not", Some(&bob), &ro, Some(&plain), "GetObject", Some("k"), Deny),
        ("public policy: anonymous reads the prefix", anon, &[], Some(&public), "GetObject", Some("pub/a"), Allow),
        ("public policy: not outside it", anon, &[], Some(&public), "GetObject", Some("priv/a"), Deny),
        ("public policy: no listing", anon, &[], Some(&public), "ListObjectsV2", None, Deny),
        ("public policy: no writes", anon, &[], Some(&public), "PutObject", Some("pub/a"), Deny),
        ("public policy: other owners read", Some(&bob), &[], Some(&public), "GetObject", Some("pub/a"), Allow),
        ("policy shares with bob", Some(&bob), &[], Some(&deny_bob), "PutObject", Some("k"), Allow),
        ("explicit deny beats the allow", Some(&bob), &[], Some(&deny_bob), "DeleteObject", Some("k"), Deny),
        ("explicit deny beats a grant", Some(&bob), &bob_owner, Some(&deny_bob), "DeleteObject", Some("k"), Deny),
        ("deny for all binds the owner", Some(&alice), &[], Some(&deny_all), "GetObject", Some("k"), Deny),
        ("but the owner keeps the policy", Some(&alice), &[], Some(&deny_all), "DeleteBucketPolicy", None, Allow),
        ("a limited key does not keep it", Some(&alice_limited), &ro, Some(&deny_all), "DeleteBucketPolicy", None, Deny),
        ("restricted: anonymous loses the public policy", anon, &[], Some(&restricted), "GetObject", Some("pub/a"), Deny),
        ("restricted: other owners too", Some(&bob), &[], Some(&restricted), "GetObject", Some("pub/a"), Deny),
        ("restricted: granted keys keep it", Some(&alice_limited), &limited_writer, Some(&restricted), "GetObject", Some("pub/a"), Allow),
        ("public-read ACL lists", anon, &[], Some(&acl_public), "ListObjectsV2", None, Allow),
        ("public-read ACL does not write", anon, &[], Some(&acl_public), "PutObject", Some("k"), Deny),
        ("IgnorePublicAcls", anon, &[], Some(&acl_ignored), "ListObjectsV2", None, Deny),
        ("BucketOwnerEnforced disables ACLs", anon, &[], Some(&enforced), "ListObjectsV2", None, Deny),
        ("ACL grant to an owner", Some(&bob), &[], Some(&acl_bob), "PutObject", Some("k"), Allow),
        ("ACL WRITE is not READ", Some(&bob), &[], Some(&acl_bob), "ListObjectsV2", None, Deny),
    ];
    for (name, k, grants, b, op, obj, want) in cases {
        assert_eq!(run(k, grants, b, op, obj), want, "{name}");
    }
}

#[test]
fn object_acls_allow_what_they_grant() {
    let alice = key("AKA", "alice", false);
    let bob = key("AKB", "bob", false);
    let b = bucket(None);
    let mut ignored = bucket(None);
    ignored.public_block = Some(PublicAccessBlock {
        ignore_public_acls: true,
        ..Default::default()
    });
    let mut enforced = bucket(None);
    enforced.ownership = Some("BucketOwnerEnforced".into());
    let public = Acl::canned_object("public-read").expect("canned");
    let mut bob_acp = Acl::default();
    bob_acp
        .grants
        .push((Grantee::Owner("bob".into()), Permission::ReadAcp));
    let cx = Context::new();
    let ask = |k: Option<&AccessKey>, b: &BucketAccess, op: &str, acl: Option<&Acl>| {
        let action = action(op, false);
        decide(
            &Caller {
                key: k,
                grants: &[],
            },
            Some(b),
            &Ask {
                bucket: "b",
                key: Some("k"),
                action: &action,
                context: &cx,
                object_acl: acl,
            },
        )
    };
    use Decision::*;
    assert_eq!(ask(None, &b, "GetObject", Some(&public)), Allow);
    assert_eq!(ask(None, &b, "GetObject", None), Deny);
    assert_eq!(ask(None, &b, "PutObject", Some(&public)), Deny);
    assert_eq!(ask(None, &b, "GetObjectAcl", Some(&public)), Deny);
    assert_eq!(ask(None, &ignored, "GetObject", Some(&public)), Deny);
    assert_eq!(ask(None, &enforced, "GetObject", Some(&public)), Deny);
    assert_eq!(ask(Some(&bob), &b, "GetObjectAcl", Some(&bob_acp)), Allow);
    assert_eq!(ask(Some(&bob), &b, "GetObject", Some(&bob_acp)), Deny);
    assert_eq!(ask(Some(&bob), &b, "PutObjectAcl", Some(&bob_acp)), Deny);
    assert_eq!(ask(Some(&alice), &b, "PutObjectAcl", None), Allow);
    // The stored form round-trips.
    assert_eq!(Acl::from_manifest(&public.to_manifest()), public);
}
