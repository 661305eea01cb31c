//! Object Lock: the bucket's configuration (in its committed settings),
//! a version's retention and legal hold (in its manifest, so a proof of
//! the object shows them), the lock headers of writes and reads. What a
//! lock forbids is decided in the bucket's pipeline
//! (`billet_records::lock_blocks`).

use billet_engine::Engine;
use billet_records::{LockMode, Manifest, ObjectLock, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;
use crate::util::{millis, timestamp};

fn now_ms() -> i64 {
    millis(&Timestamp::from(std::time::SystemTime::now()))
}

fn mode_of(m: &ObjectLockRetentionMode) -> S3Result<LockMode> {
    LockMode::from_s3_name(m.as_str()).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "Object Lock mode must be GOVERNANCE or COMPLIANCE, not {}",
            m.as_str()
        )
    })
}

fn mode_dto(m: LockMode) -> ObjectLockRetentionMode {
    ObjectLockRetentionMode::from(m.s3_name().to_string())
}

fn no_lock_configuration() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

/// A retention a write asks for: a mode and a future date, both or
/// neither.
fn retention(mode: Option<&str>, until: Option<&Timestamp>) -> S3Result<Option<(LockMode, i64)>> {
    match (mode, until) {
        (None, None) => Ok(None),
        (Some(m), Some(t)) => {
            let mode = LockMode::from_s3_name(m).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Object Lock mode must be GOVERNANCE or COMPLIANCE"
                )
            })?;
            let until = millis(t);
            if until <= now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Ok(Some((mode, until)))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )),
    }
}

/// The lock a PUT, copy or CreateMultipartUpload asks for with
/// `x-amz-object-lock-*`; refused on a bucket without Object Lock.
pub(crate) async fn requested(
    engine: &Engine,
    bucket: &str,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<(LockMode, i64)>, bool)> {
    let lock = retention(mode.map(ObjectLockMode::as_str), until)?;
    let hold = legal_hold_on(legal_hold)?;
    if (lock.is_some() || hold)
        && engine
            .bucket(bucket)
            .await
            .map_err(to_s3)?
            .settings
            .object_lock
            .is_none()
    {
        return Err(no_lock_configuration());
    }
    Ok((lock, hold))
}

fn legal_hold_on(status: Option<&ObjectLockLegalHoldStatus>) -> S3Result<bool> {
    match status.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => Ok(false),
        Some(ObjectLockLegalHoldStatus::ON) => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Legal hold status must be ON or OFF, not {other}"
        )),
    }
}

/// The lock headers GET and HEAD send.
pub(crate) fn headers(
    m: &Manifest,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    (
        m.lock_mode
            .map(|mode| ObjectLockMode::from(mode.s3_name().to_string())),
        m.lock_until.map(timestamp),
        m.legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    )
}

/// A bucket created with `x-amz-bucket-object-lock-enabled: true`:
/// versioning on and Object Lock enabled, with no default retention.
pub(crate) async fn enable_at_creation(engine: &Engine, bucket: &str) -> S3Result<()> {
    let mut settings = engine.bucket(bucket).await.map_err(to_s3)?.settings;
    settings.versioning = Versioning::Enabled;
    settings.object_lock = Some(ObjectLock::default());
    engine.set_settings(bucket, settings).await.map_err(to_s3)
}

pub(crate) async fn put_configuration(
    engine: &Engine,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let i = req.input;
    let state = engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let config = i
        .object_lock_configuration
        .ok_or_else(|| s3_error!(MalformedXML, "ObjectLockConfiguration is missing"))?;
    if config
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(s3_error!(
            MalformedXML,
            "ObjectLockEnabled must be Enabled (Object Lock cannot be disabled)"
        ));
    }
    if state.settings.versioning != Versioning::Enabled {
        return Err(s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        ));
    }
    let mut rule = ObjectLock::default();
    if let Some(d) = config.rule.and_then(|r| r.default_retention) {
        let period = |n: Option<i32>| {
            n.map(|n| {
                u32::try_from(n).map_err(|_| {
                    s3_error!(InvalidArgument, "Default retention period must be positive")
                })
            })
            .transpose()
        };
        rule.default_mode = d.mode.as_ref().map(mode_of).transpose()?;
        rule.default_days = period(d.days)?;
        rule.default_years = period(d.years)?;
        if rule.default_mode.is_none() {
            return Err(s3_error!(MalformedXML, "A default retention needs a Mode"));
        }
    }
    rule.validate()
        .map_err(|e| s3_error!(InvalidArgument, "Invalid default retention: {e}"))?;
    let mut settings = state.settings;
    settings.object_lock = Some(rule);
    engine
        .set_settings(&i.bucket, settings)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(crate) async fn get_configuration(
    engine: &Engine,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let state = engine.bucket(&req.input.bucket).await.map_err(to_s3)?;
    let rule = state.settings.object_lock.ok_or_else(|| {
        s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        )
    })?;
    let default_retention = rule.default_mode.map(|mode| DefaultRetention {
        mode: Some(mode_dto(mode)),
        days: rule.default_days.map(|d| d as i32),
        years: rule.default_years.map(|y| y as i32),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule: default_retention.map(|d| ObjectLockRule {
                default_retention: Some(d),
            }),
        }),
    }))
}

async fn require_lock(engine: &Engine, bucket: &str) -> S3Result<()> {
    match engine
        .bucket(bucket)
        .await
        .map_err(to_s3)?
        .settings
        .object_lock
    {
        Some(_) => Ok(()),
        None => Err(no_lock_configuration()),
    }
}

pub(crate) async fn put_retention(
    engine: &Engine,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let i = req.input;
    require_lock(engine, &i.bucket).await?;
    let r = i.retention.unwrap_or_default();
    let wanted = retention(
        r.mode.as_ref().map(ObjectLockRetentionMode::as_str),
        r.retain_until_date.as_ref(),
    )?;
    // The access check allowed the bypass if the request asks for it.
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    engine
        .set_retention(&i.bucket, &i.key, i.version_id.as_deref(), wanted, bypass)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(crate) async fn get_retention(
    engine: &Engine,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let i = req.input;
    require_lock(engine, &i.bucket).await?;
    let v = engine
        .object(&i.bucket, &i.key, i.version_id.as_deref())
        .await
        .map_err(to_s3)?;
    let (mode, until) = v.manifest.retention().ok_or_else(|| {
        s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        )
    })?;
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(mode_dto(mode)),
            retain_until_date: Some(timestamp(until)),
        }),
    }))
}

pub(crate) async fn put_legal_hold(
    engine: &Engine,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let i = req.input;
    require_lock(engine, &i.bucket).await?;
    let status = i
        .legal_hold
        .and_then(|h| h.status)
        .ok_or_else(|| s3_error!(MalformedXML, "LegalHold needs a Status"))?;
    let on = legal_hold_on(Some(&status))?;
    engine
        .set_legal_hold(&i.bucket, &i.key, i.version_id.as_deref(), on)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(crate) async fn get_legal_hold(
    engine: &Engine,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let i = req.input;
    require_lock(engine, &i.bucket).await?;
    let v = engine
        .object(&i.bucket, &i.key, i.version_id.as_deref())
        .await
        .map_err(to_s3)?;
    let status = if v.manifest.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}
