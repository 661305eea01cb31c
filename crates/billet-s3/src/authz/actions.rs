//! What each S3 operation asks for: its IAM action (what policies name),
//! the class of grant that covers it, and whether it acts on an object or
//! on the bucket.

/// The three kinds of per-key grant (`billet keys allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Objects, versions, tags and listings read.
    Read,
    /// Objects, uploads and tags written or deleted.
    Write,
    /// The bucket's configuration, and its deletion.
    Owner,
}

/// What an operation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// `s3:GetObject` and so on.
    pub iam: String,
    pub class: Class,
    /// On an object (resource `arn:aws:s3:::bucket/key`), or on the bucket.
    pub object: bool,
}

fn a(iam: &str, class: Class, object: bool) -> Action {
    Action {
        iam: format!("s3:{iam}"),
        class,
        object,
    }
}

/// The action of operation `op` (s3s's operation name); `version` says
/// whether the request names a version (`versionId`), which AWS gives
/// actions of their own.
pub fn action(op: &str, version: bool) -> Action {
    use Class::*;
    let v = |plain: &str, versioned: &str| {
        if version {
            versioned.to_string()
        } else {
            plain.to_string()
        }
    };
    match op {
        "GetObject" | "HeadObject" => a(&v("GetObject", "GetObjectVersion"), Read, true),
        "GetObjectAttributes" => a(
            &v("GetObjectAttributes", "GetObjectVersionAttributes"),
            Read,
            true,
        ),
        "GetObjectTagging" => a(
            &v("GetObjectTagging", "GetObjectVersionTagging"),
            Read,
            true,
        ),
        "PutObjectTagging" => a(
            &v("PutObjectTagging", "PutObjectVersionTagging"),
            Write,
            true,
        ),
        "DeleteObjectTagging" => a(
            &v("DeleteObjectTagging", "DeleteObjectVersionTagging"),
            Write,
            true,
        ),
        "GetObjectAcl" => a(&v("GetObjectAcl", "GetObjectVersionAcl"), Read, true),
        "PutObjectAcl" => a(&v("PutObjectAcl", "PutObjectVersionAcl"), Owner, true),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "PostObject" => a("PutObject", Write, true),
        "AbortMultipartUpload" => a("AbortMultipartUpload", Write, true),
        "ListParts" => a("ListMultipartUploadParts", Read, true),
        "DeleteObject" => a(&v("DeleteObject", "DeleteObjectVersion"), Write, true),
        "GetObjectRetention" => a("GetObjectRetention", Read, true),
        "PutObjectRetention" => a("PutObjectRetention", Write, true),
        "GetObjectLegalHold" => a("GetObjectLegalHold", Read, true),
        "PutObjectLegalHold" => a("PutObjectLegalHold", Write, true),
        // Asked for besides the operation's own action when a request sets
        // x-amz-bypass-governance-retention: the bucket owner's, or whom a
        // policy names.
        "BypassGovernanceRetention" => a("BypassGovernanceRetention", Owner, true),
        "GetBucketLifecycleConfiguration" => a("GetLifecycleConfiguration", Owner, false),
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            a("PutLifecycleConfiguration", Owner, false)
        }
        "GetObjectLockConfiguration" => a("GetBucketObjectLockConfiguration", Read, false),
        "PutObjectLockConfiguration" => a("PutBucketObjectLockConfiguration", Owner, false),
        // Checked again per key by the operation's own access hook.
        "DeleteObjects" => a("DeleteObject", Write, false),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => a("ListBucket", Read, false),
        "ListObjectVersions" => a("ListBucketVersions", Read, false),
        "ListMultipartUploads" => a("ListBucketMultipartUploads", Read, false),
        "GetBucketLocation" => a("GetBucketLocation", Read, false),
        "GetBucketVersioning" => a("GetBucketVersioning", Read, false),
        "GetBucketTagging" => a("GetBucketTagging", Read, false),
        "PutBucketTagging" | "DeleteBucketTagging" => a("PutBucketTagging", Owner, false),
        "PutBucketVersioning" => a("PutBucketVersioning", Owner, false),
        "DeleteBucket" => a("DeleteBucket", Owner, false),
        "GetBucketPolicy" => a("GetBucketPolicy", Owner, false),
        "GetBucketPolicyStatus" => a("GetBucketPolicyStatus", Owner, false),
        "PutBucketPolicy" => a("PutBucketPolicy", Owner, false),
        "DeleteBucketPolicy" => a("DeleteBucketPolicy", Owner, false),
        "GetPublicAccessBlock" => a("GetBucketPublicAccessBlock", Owner, false),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
            a("PutBucketPublicAccessBlock", Owner, false)
        }
        "GetBucketOwnershipControls" => a("GetBucketOwnershipControls", Owner, false),
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
            a("PutBucketOwnershipControls", Owner, false)
        }
        "GetBucketAcl" => a("GetBucketAcl", Owner, false),
        "PutBucketAcl" => a("PutBucketAcl", Owner, false),
        "GetBucketCors" => a("GetBucketCORS", Owner, false),
        "PutBucketCors" | "DeleteBucketCors" => a("PutBucketCORS", Owner, false),
        "ListBuckets" => a("ListAllMyBuckets", Read, false),
        "CreateBucket" => a("CreateBucket", Owner, false),
        // Anything else (configuration billet does not implement) is the
        // owner's to ask for.
        other => a(other, Owner, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_have_actions_of_their_own() {
        assert_eq!(action("GetObject", false).iam, "s3:GetObject");
        assert_eq!(action("HeadObject", true).iam, "s3:GetObjectVersion");
        assert_eq!(action("DeleteObject", true).iam, "s3:DeleteObjectVersion");
        assert_eq!(action("UploadPart", false).iam, "s3:PutObject");
        assert_eq!(action("ListObjectsV2", false).iam, "s3:ListBucket");
        assert!(!action("ListObjectsV2", false).object);
        assert_eq!(action("PutBucketPolicy", false).class, Class::Owner);
        assert_eq!(action("GetObjectTagging", false).class, Class::Read);
        assert_eq!(action("AbortMultipartUpload", false).class, Class::Write);
        let bypass = action("BypassGovernanceRetention", false);
        assert_eq!((bypass.class, bypass.object), (Class::Owner, true));
        assert_eq!(
            action("PutObjectRetention", true).iam,
            "s3:PutObjectRetention"
        );
    }
}
