//! The `s3s::S3` implementation: each operation delegates to its module.

use billet_engine::Engine;
use billet_records::Versioning;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::access::RequestKey;
use crate::authz::Authorizer;
use crate::authz::bucket_access;
use crate::error::to_s3;
use crate::util::{decode_token, encode_token, timestamp};
use crate::{
    bucket_config, copy, delete, get, lifecycle, listing, multipart, object_lock, put, tagging,
};

/// The most buckets one ListBuckets page names (S3's bound on
/// `max-buckets`, and its page without one).
const MAX_BUCKETS_PAGE: usize = 10_000;

/// billet's S3 front end.
#[derive(Debug, Clone)]
pub struct BilletS3 {
    pub(crate) engine: Engine,
    pub(crate) authz: Authorizer,
    pub(crate) region: String,
    pub(crate) max_put_bytes: u64,
}

impl BilletS3 {
    /// The key that signed the request (the access check put it there).
    fn signer<T>(req: &S3Request<T>) -> S3Result<std::sync::Arc<billet_engine::AccessKey>> {
        req.extensions
            .get::<RequestKey>()
            .and_then(|k| k.0.clone())
            .ok_or_else(|| s3_error!(AccessDenied, "Signature is required"))
    }

    /// The owner of the key that signed the request.
    fn owner<T>(req: &S3Request<T>) -> S3Result<String> {
        Ok(Self::signer(req)?.owner.clone())
    }

    /// The bucket's owner, as listings show it (objects belong to their
    /// bucket's owner, whoever wrote them).
    async fn bucket_owner_dto(&self, bucket: &str) -> S3Result<Owner> {
        let id = self
            .authz
            .bucket_owner(bucket)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist."))?;
        Ok(Owner {
            display_name: Some(id.clone()),
            id: Some(id),
        })
    }

    fn location(&self) -> Option<BucketLocationConstraint> {
        (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()))
    }
}

#[async_trait::async_trait]
impl S3 for BilletS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = Self::signer(&req)?;
        let owner = Owner {
            display_name: Some(key.owner.clone()),
            id: Some(key.owner.clone()),
        };
        let grants = self.authz.grants(&key.id).await?;
        let visible = |b: &billet_engine::BucketEntry| {
            (!key.limited && b.owner == key.owner)
                || grants
                    .iter()
                    .any(|g| g.bucket == b.name || (g.bucket == "*" && b.owner == key.owner))
        };
        let i = req.input;
        let max = match i.max_buckets {
            None => MAX_BUCKETS_PAGE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_BUCKETS_PAGE).contains(n))
                .ok_or_else(|| {
                    s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")
                })?,
        };
        let after = i
            .continuation_token
            .as_deref()
            .map(decode_token)
            .transpose()?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let region_ok = i.bucket_region.as_deref().is_none_or(|r| r == self.region);
        // In byte order (a database's collation may differ), so that a
        // page resumes right after the last name it gave.
        let mut all = self.engine.list_buckets().await.map_err(to_s3)?;
        all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut buckets: Vec<Bucket> = all
            .into_iter()
            .filter(|b| {
                region_ok
                    && visible(b)
                    && b.name.starts_with(&prefix)
                    && after.as_deref().is_none_or(|a| b.name.as_str() > a)
            })
            .take(max + 1)
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        let next = (buckets.len() > max)
            .then(|| {
                buckets.truncate(max);
                buckets
                    .last()
                    .and_then(|b| b.name.as_deref())
                    .map(encode_token)
            })
            .flatten();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            prefix: i.prefix,
            continuation_token: next,
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let owner = Self::owner(&req)?;
        let i = &req.input;
        let acl = bucket_config::acl_of(
            bucket_config::AclOf::Bucket,
            i.acl.as_ref().map(BucketCannedACL::as_str),
            [
                i.grant_read.as_deref(),
                i.grant_write.as_deref(),
                i.grant_read_acp.as_deref(),
                i.grant_write_acp.as_deref(),
                i.grant_full_control.as_deref(),
            ],
        )?;
        let ownership = match &i.object_ownership {
            Some(o) => Some(bucket_config::ownership(o.as_str())?.to_string()),
            None => None,
        };
        if ownership.as_deref() == Some("BucketOwnerEnforced")
            && acl.as_ref().is_some_and(|a| !a.grants.is_empty())
        {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket ACLs other than private cannot be combined with BucketOwnerEnforced"
            ));
        }
        let lock_enabled = req.input.object_lock_enabled_for_bucket == Some(true);
        let name = req.input.bucket;
        if !s3s::path::check_bucket_name(&name) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid."
            ));
        }
        match self.engine.bucket(&name).await {
            // us-east-1 has always answered a repeated create by its owner
            // with success (and changes nothing); other regions refuse it.
            Ok(existing) if existing.owner == owner && self.region == "us-east-1" => {
                return Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{name}")),
                }));
            }
            Ok(existing) if existing.owner == owner => {
                return Err(s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                ));
            }
            Ok(_) => {
                return Err(s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available."
                ));
            }
            Err(_) => {}
        }
        let created = self.engine.create_bucket(&name, &owner).await;
        self.authz.forget(&name);
        created.map_err(to_s3)?;
        if let Some(o) = ownership {
            self.authz
                .set_setting(&name, bucket_access::OWNERSHIP, Some(&o))
                .await?;
        }
        if let Some(acl) = acl.filter(|a| !a.grants.is_empty()) {
            bucket_config::store_acl(&self.authz, &name, &acl).await?;
        }
        if lock_enabled {
            object_lock::enable_at_creation(&self.engine, &name).await?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.engine.bucket(&req.input.bucket).await.map_err(to_s3)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let deleted = self.engine.delete_bucket(&req.input.bucket).await;
        self.authz.forget(&req.input.bucket);
        deleted.map_err(to_s3)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.engine.bucket(&req.input.bucket).await.map_err(to_s3)?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: self.location(),
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let v = self
            .engine
            .versioning(&req.input.bucket)
            .await
            .map_err(to_s3)?;
        let status = match v {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let i = req.input;
        let state = self.engine.bucket(&i.bucket).await.map_err(to_s3)?;
        let want = match i
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Versioning status must be Enabled or Suspended"
                ));
            }
        };
        if want == Versioning::Suspended && state.settings.object_lock.is_some() {
            return Err(s3_error!(
                InvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
            ));
        }
        if state.settings.versioning != want {
            let mut settings = state.settings;
            settings.versioning = want;
            self.engine
                .set_settings(&i.bucket, settings)
                .await
                .map_err(to_s3)?;
        }
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        put::put_object(&self.engine, req, self.max_put_bytes).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        get::get_object(&self.engine, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        get::head_object(&self.engine, req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put(&self.engine, req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get(&self.engine, req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete(&self.engine, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        object_lock::put_configuration(&self.engine, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        object_lock::get_configuration(&self.engine, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        object_lock::put_retention(&self.engine, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        object_lock::get_retention(&self.engine, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        object_lock::put_legal_hold(&self.engine, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        object_lock::get_legal_hold(&self.engine, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        get::get_object_attributes(&self.engine, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        delete::delete_object(&self.engine, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        delete::delete_objects(&self.engine, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(&self.engine, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let owner = self.bucket_owner_dto(&req.input.bucket).await?;
        listing::list_objects(&self.engine, &owner, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let owner = self.bucket_owner_dto(&req.input.bucket).await?;
        listing::list_objects_v2(&self.engine, &owner, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(&self.engine, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(&self.engine, req, self.max_put_bytes).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.engine, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(&self.engine, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(&self.engine, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let owner = self.bucket_owner_dto(&req.input.bucket).await?;
        multipart::list_parts(&self.engine, &owner, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let owner = self.bucket_owner_dto(&req.input.bucket).await?;
        multipart::list_uploads(&self.engine, &owner, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put_object_tagging(&self.engine, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get_object_tagging(&self.engine, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete_object_tagging(&self.engine, req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        tagging::put_bucket_tagging(&self.engine, req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        tagging::get_bucket_tagging(&self.engine, req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        tagging::delete_bucket_tagging(&self.engine, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let owner = self.bucket_owner_dto(&req.input.bucket).await?;
        listing::list_object_versions(&self.engine, &owner, req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        bucket_config::put_policy(&self.authz, req).await
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        bucket_config::get_policy(&self.authz, req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        bucket_config::delete_policy(&self.authz, req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        bucket_config::policy_status(&self.authz, req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        bucket_config::put_public_access_block(&self.authz, req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        bucket_config::get_public_access_block(&self.authz, req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        bucket_config::delete_public_access_block(&self.authz, req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        bucket_config::put_ownership_controls(&self.authz, req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        bucket_config::get_ownership_controls(&self.authz, req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        bucket_config::delete_ownership_controls(&self.authz, req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        bucket_config::put_bucket_acl(&self.authz, req).await
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        bucket_config::get_bucket_acl(&self.authz, req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        bucket_config::get_object_acl(&self.authz, &self.engine, req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        bucket_config::put_object_acl(&self.authz, &self.engine, req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        bucket_config::put_cors(&self.authz, req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        bucket_config::get_cors(&self.authz, req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        bucket_config::delete_cors(&self.authz, req).await
    }
}
