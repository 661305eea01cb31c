//! The bucket's access configuration over S3: policy (and its status),
//! public access block, ownership controls, bucket ACL. Each is one row
//! of the index's bucket settings; the decision reads them through the
//! `Authorizer`, which forgets its cached copy on every change here.

use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::authz::Authorizer;
use crate::authz::bucket_access::{
    self as names, ALL_USERS_URI, AUTHENTICATED_USERS_URI, Acl, BucketAccess, Grantee,
    Permission as AclPermission, PublicAccessBlock,
};
use crate::policy::Policy as BucketPolicy;

fn custom(code: &'static str, status: StatusCode, msg: &str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg.to_string());
    e.set_status_code(status);
    e
}

async fn existing(authz: &Authorizer, bucket: &str) -> S3Result<std::sync::Arc<BucketAccess>> {
    authz
        .bucket(bucket)
        .await?
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist."))
}

pub async fn put_policy(
    authz: &Authorizer,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let bucket = &req.input.bucket;
    let access = existing(authz, bucket).await?;
    let policy = BucketPolicy::parse(&req.input.policy, bucket)
        .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    if access.block().block_public_policy && policy.is_public() {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's public access block (BlockPublicPolicy) refuses a public policy"
        ));
    }
    authz
        .set_setting(bucket, names::POLICY, Some(&req.input.policy))
        .await?;
    Ok(S3Response::with_status(
        PutBucketPolicyOutput {},
        StatusCode::NO_CONTENT,
    ))
}

pub async fn get_policy(
    authz: &Authorizer,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let policy = access
        .policy_text
        .clone()
        .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete_policy(
    authz: &Authorizer,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    authz
        .set_setting(&req.input.bucket, names::POLICY, None)
        .await?;
    Ok(S3Response::with_status(
        DeleteBucketPolicyOutput {},
        StatusCode::NO_CONTENT,
    ))
}

pub async fn policy_status(
    authz: &Authorizer,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let Some(policy) = &access.policy else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(policy.is_public()),
        }),
    }))
}

pub async fn put_public_access_block(
    authz: &Authorizer,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let c = &req.input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    authz
        .set_setting(
            &req.input.bucket,
            names::PUBLIC_ACCESS_BLOCK,
            Some(&block.to_setting()),
        )
        .await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub async fn get_public_access_block(
    authz: &Authorizer,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let Some(b) = access.public_block else {
        return Err(custom(
            "NoSuchPublicAccessBlockConfiguration",
            StatusCode::NOT_FOUND,
            "The public access block configuration was not found",
        ));
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub async fn delete_public_access_block(
    authz: &Authorizer,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    authz
        .set_setting(&req.input.bucket, names::PUBLIC_ACCESS_BLOCK, None)
        .await?;
    Ok(S3Response::with_status(
        DeletePublicAccessBlockOutput {},
        StatusCode::NO_CONTENT,
    ))
}

const OWNERSHIPS: [&str; 3] = [
    "BucketOwnerEnforced",
    "BucketOwnerPreferred",
    "ObjectWriter",
];

/// Checks an `ObjectOwnership` value.
pub fn ownership(value: &str) -> S3Result<&str> {
    OWNERSHIPS
        .iter()
        .find(|o| **o == value)
        .copied()
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "ObjectOwnership must be one of BucketOwnerEnforced, BucketOwnerPreferred, ObjectWriter"
            )
        })
}

pub async fn put_ownership_controls(
    authz: &Authorizer,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let rules = &req.input.ownership_controls.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "OwnershipControls must hold exactly one Rule"
        ));
    };
    let value = ownership(rule.object_ownership.as_str())?;
    let access = existing(authz, &req.input.bucket).await?;
    if value == "BucketOwnerEnforced" && !access.acl.grants.is_empty() {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "Bucket ACLs other than private cannot be combined with BucketOwnerEnforced"
        ));
    }
    authz
        .set_setting(&req.input.bucket, names::OWNERSHIP, Some(value))
        .await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub async fn get_ownership_controls(
    authz: &Authorizer,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let Some(value) = access.ownership.clone() else {
        return Err(s3_error!(
            OwnershipControlsNotFoundError,
            "The bucket ownership controls were not found"
        ));
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: ObjectOwnership::from(value),
            }],
        }),
    }))
}

pub async fn delete_ownership_controls(
    authz: &Authorizer,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    authz
        .set_setting(&req.input.bucket, names::OWNERSHIP, None)
        .await?;
    Ok(S3Response::with_status(
        DeleteBucketOwnershipControlsOutput {},
        StatusCode::NO_CONTENT,
    ))
}

fn owner_dto(owner: &str) -> Owner {
    Owner {
        display_name: Some(owner.to_string()),
        id: Some(owner.to_string()),
    }
}

fn grant_dto(grantee: &Grantee, perm: AclPermission) -> Grant {
    let g = match grantee {
        Grantee::AllUsers | Grantee::AuthenticatedUsers => s3s::dto::Grantee {
            type_: Type::from_static(Type::GROUP),
            uri: Some(
                if *grantee == Grantee::AllUsers {
                    ALL_USERS_URI
                } else {
                    AUTHENTICATED_USERS_URI
                }
                .to_string(),
            ),
            display_name: None,
            email_address: None,
            id: None,
        },
        Grantee::Owner(o) => s3s::dto::Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: Some(o.clone()),
            display_name: Some(o.clone()),
            email_address: None,
            uri: None,
        },
    };
    Grant {
        grantee: Some(g),
        permission: Some(Permission::from(perm.as_str().to_string())),
    }
}

/// An ACL as S3 shows it: the owner's FULL_CONTROL, then the grants.
pub fn acl_dto(owner: &str, acl: &Acl) -> (Owner, Vec<Grant>) {
    let mut grants = vec![grant_dto(
        &Grantee::Owner(owner.to_string()),
        AclPermission::FullControl,
    )];
    grants.extend(acl.grants.iter().map(|(g, p)| grant_dto(g, *p)));
    (owner_dto(owner), grants)
}

/// Grantees of an `x-amz-grant-*` header: `id="..."`, `uri="..."`,
/// comma-separated.
fn header_grantees(value: &str) -> S3Result<Vec<Grantee>> {
    value
        .split(',')
        .map(|part| {
            let (kind, v) = part.trim().split_once('=').ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "A grant header holds id=\"...\" or uri=\"...\" entries"
                )
            })?;
            let v = v.trim().trim_matches('"');
            match kind.trim() {
                "id" => Ok(Grantee::Owner(v.to_string())),
                "uri" if v == ALL_USERS_URI => Ok(Grantee::AllUsers),
                "uri" if v == AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
                "uri" => Err(s3_error!(InvalidArgument, "Unknown grantee group {v}")),
                other => Err(s3_error!(
                    NotImplemented,
                    "Grantees of type {other} are not supported (use id or uri)"
                )),
            }
        })
        .collect()
}

/// Whose ACL a request sets: a bucket's or an object's (where WRITE means
/// nothing and canned names map differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOf {
    Bucket,
    Object,
}

/// An ACL from a canned name or grant headers (what PutBucketAcl,
/// CreateBucket, PutObject, CopyObject, CreateMultipartUpload and
/// PutObjectAcl carry); `None` if neither is given.
fn acl_from_headers(
    of: AclOf,
    canned: Option<&str>,
    grants: [(Option<&str>, AclPermission); 5],
) -> S3Result<Option<Acl>> {
    let explicit = grants.iter().any(|(v, _)| v.is_some());
    match (canned, explicit) {
        (Some(_), true) => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        (Some(c), false) => match of {
            AclOf::Bucket => Acl::canned(c),
            AclOf::Object => Acl::canned_object(c),
        }
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidArgument, "Unknown canned ACL {c}")),
        (None, true) => {
            let mut acl = Acl::default();
            for (value, perm) in grants {
                if of == AclOf::Object && perm == AclPermission::Write && value.is_some() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "WRITE cannot be granted on an object"
                    ));
                }
                if let Some(v) = value {
                    for g in header_grantees(v)? {
                        acl.grants.push((g, perm));
                    }
                }
            }
            Ok(Some(acl))
        }
        (None, false) => Ok(None),
    }
}

fn acl_from_body(of: AclOf, owner: &str, policy: &AccessControlPolicy) -> S3Result<Acl> {
    let mut acl = Acl::default();
    for g in policy.grants.iter().flatten() {
        let perm = g
            .permission
            .as_ref()
            .and_then(|p| AclPermission::parse(p.as_str()))
            .ok_or_else(|| s3_error!(MalformedACLError, "A grant has no valid Permission"))?;
        let grantee = g
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError, "A grant has no Grantee"))?;
        let who = match (grantee.type_.as_str(), &grantee.id, &grantee.uri) {
            (Type::CANONICAL_USER, Some(id), _) => Grantee::Owner(id.clone()),
            (Type::GROUP, _, Some(u)) if u == ALL_USERS_URI => Grantee::AllUsers,
            (Type::GROUP, _, Some(u)) if u == AUTHENTICATED_USERS_URI => {
                Grantee::AuthenticatedUsers
            }
            (t, _, _) => {
                return Err(s3_error!(
                    MalformedACLError,
                    "Grantee type {t} is not supported (CanonicalUser with an ID, or a Group URI)"
                ));
            }
        };
        if of == AclOf::Object && perm == AclPermission::Write {
            return Err(s3_error!(
                MalformedACLError,
                "WRITE cannot be granted on an object"
            ));
        }
        // The owner's own FULL_CONTROL is implicit.
        if who == Grantee::Owner(owner.to_string()) && perm == AclPermission::FullControl {
            continue;
        }
        acl.grants.push((who, perm));
    }
    Ok(acl)
}

/// Stores a bucket ACL, checking it against ownership controls and the
/// public access block.
pub async fn store_acl(authz: &Authorizer, bucket: &str, acl: &Acl) -> S3Result<()> {
    let access = existing(authz, bucket).await?;
    if !access.acls_enabled() && !acl.grants.is_empty() {
        return Err(s3_error!(
            AccessControlListNotSupported,
            "The bucket does not allow ACLs"
        ));
    }
    if access.block().block_public_acls && acl.is_public() {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's public access block (BlockPublicAcls) refuses a public ACL"
        ));
    }
    let value = (!acl.grants.is_empty()).then(|| acl.to_setting());
    authz
        .set_setting(bucket, names::ACL, value.as_deref())
        .await
}

pub async fn put_bucket_acl(
    authz: &Authorizer,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let i = &req.input;
    let access = existing(authz, &i.bucket).await?;
    let from_headers = acl_of(
        AclOf::Bucket,
        i.acl.as_ref().map(BucketCannedACL::as_str),
        [
            i.grant_read.as_deref(),
            i.grant_write.as_deref(),
            i.grant_read_acp.as_deref(),
            i.grant_write_acp.as_deref(),
            i.grant_full_control.as_deref(),
        ],
    )?;
    let acl = headers_or_body(
        AclOf::Bucket,
        &access.owner,
        from_headers,
        i.access_control_policy.as_ref(),
    )?;
    store_acl(authz, &i.bucket, &acl).await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub async fn get_bucket_acl(
    authz: &Authorizer,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let (owner, grants) = acl_dto(&access.owner, &access.acl);
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner),
        grants: Some(grants),
    }))
}

/// An object version's ACL: its owner's (the bucket owner's) FULL_CONTROL
/// and the grants its manifest keeps.
pub async fn get_object_acl(
    authz: &Authorizer,
    engine: &billet_engine::Engine,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let v = engine
        .object(
            &req.input.bucket,
            &req.input.key,
            req.input.version_id.as_deref(),
        )
        .await
        .map_err(crate::error::to_s3)?;
    if v.manifest.delete_marker {
        return Err(crate::error::to_s3(billet_engine::EngineError::NoSuchKey(
            req.input.key.clone(),
        )));
    }
    let (owner, grants) = acl_dto(&access.owner, &Acl::from_manifest(&v.manifest.acl));
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner),
        grants: Some(grants),
        request_charged: None,
    }))
}

pub async fn put_object_acl(
    authz: &Authorizer,
    engine: &billet_engine::Engine,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let i = &req.input;
    let access = existing(authz, &i.bucket).await?;
    let from_headers = acl_of(
        AclOf::Object,
        i.acl.as_ref().map(ObjectCannedACL::as_str),
        [
            i.grant_read.as_deref(),
            i.grant_write.as_deref(),
            i.grant_read_acp.as_deref(),
            i.grant_write_acp.as_deref(),
            i.grant_full_control.as_deref(),
        ],
    )?;
    let acl = headers_or_body(
        AclOf::Object,
        &access.owner,
        from_headers,
        i.access_control_policy.as_ref(),
    )?;
    check_object_acl(&access, &acl)?;
    let version_id = engine
        .set_acl(
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            acl.to_manifest(),
        )
        .await
        .map_err(crate::error::to_s3)?;
    let _ = version_id;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

/// An ACL from a canned name and the five grant headers (read, write,
/// read-acp, write-acp, full-control); `None` if none is given.
pub fn acl_of(of: AclOf, canned: Option<&str>, grants: [Option<&str>; 5]) -> S3Result<Option<Acl>> {
    let [read, write, read_acp, write_acp, full] = grants;
    acl_from_headers(
        of,
        canned,
        [
            (read, AclPermission::Read),
            (write, AclPermission::Write),
            (read_acp, AclPermission::ReadAcp),
            (write_acp, AclPermission::WriteAcp),
            (full, AclPermission::FullControl),
        ],
    )
}

/// An object's ACL from `x-amz-acl` and the five grant headers.
pub fn object_acl(canned: Option<&str>, grants: [Option<&str>; 5]) -> S3Result<Option<Acl>> {
    acl_of(AclOf::Object, canned, grants)
}

/// The ACL a Put(Bucket|Object)Acl sets: from its headers or its body,
/// not both, not neither.
fn headers_or_body(
    of: AclOf,
    owner: &str,
    from_headers: Option<Acl>,
    body: Option<&AccessControlPolicy>,
) -> S3Result<Acl> {
    match (from_headers, body) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content together with ACL headers"
        )),
        (Some(acl), None) => Ok(acl),
        (None, Some(body)) => acl_from_body(of, owner, body),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header: an ACL, grant headers or a body"
        )),
    }
}

/// The headers' object ACL, if any, refused where the bucket's ownership
/// controls or public access block say so.
pub fn object_acl_of_headers(access: &BucketAccess, h: &http::HeaderMap) -> S3Result<Option<Acl>> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let acl = object_acl(
        get("x-amz-acl"),
        [
            get("x-amz-grant-read"),
            get("x-amz-grant-write"),
            get("x-amz-grant-read-acp"),
            get("x-amz-grant-write-acp"),
            get("x-amz-grant-full-control"),
        ],
    )?;
    if let Some(a) = &acl {
        check_object_acl(access, a)?;
    }
    Ok(acl)
}

/// An object ACL the bucket allows: none but the owner's where ACLs are
/// disabled, nothing public under BlockPublicAcls.
pub fn check_object_acl(access: &BucketAccess, acl: &Acl) -> S3Result<()> {
    if acl.grants.is_empty() {
        return Ok(());
    }
    if !access.acls_enabled() {
        return Err(s3_error!(
            AccessControlListNotSupported,
            "The bucket does not allow ACLs"
        ));
    }
    if access.block().block_public_acls && acl.is_public() {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's public access block (BlockPublicAcls) refuses a public ACL"
        ));
    }
    Ok(())
}

pub async fn put_cors(
    authz: &Authorizer,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let rules = crate::cors::from_dto(&req.input.cors_configuration)?;
    authz
        .set_setting(
            &req.input.bucket,
            names::CORS,
            Some(&crate::cors::to_setting(&rules)),
        )
        .await?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn get_cors(
    authz: &Authorizer,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let access = existing(authz, &req.input.bucket).await?;
    let Some(rules) = &access.cors else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(crate::cors::to_dto(rules)),
    }))
}

pub async fn delete_cors(
    authz: &Authorizer,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    authz
        .set_setting(&req.input.bucket, names::CORS, None)
        .await?;
    Ok(S3Response::with_status(
        DeleteBucketCorsOutput {},
        StatusCode::NO_CONTENT,
    ))
}
