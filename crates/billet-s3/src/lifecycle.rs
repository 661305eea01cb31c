//! Put/Get/DeleteBucketLifecycleConfiguration: S3's XML to and from the
//! engine's [`Lifecycle`] (kept in the bucket's settings, run by the
//! engine's background pass).

use billet_engine::{Engine, Lifecycle, LifecycleFilter, LifecycleRule};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::to_s3;
use crate::util::{millis, timestamp};

fn positive(n: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    n.map(|n| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| s3_error!(InvalidArgument, "{what} must be a positive integer"))
    })
    .transpose()
}

fn size(n: Option<i64>, what: &str) -> S3Result<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "{what} must not be negative"))
    })
    .transpose()
}

fn tag(t: Tag) -> S3Result<(String, String)> {
    match (t.key, t.value) {
        (Some(k), v) if !k.is_empty() => Ok((k, v.unwrap_or_default())),
        _ => Err(s3_error!(MalformedXML, "A lifecycle Tag needs a Key")),
    }
}

fn filter(rule: &LifecycleRule_) -> S3Result<LifecycleFilter> {
    let mut f = LifecycleFilter::default();
    match &rule.filter {
        None => f.prefix = rule.prefix.clone().unwrap_or_default(),
        Some(filter) => {
            if rule.prefix.is_some() {
                return Err(s3_error!(
                    MalformedXML,
                    "A rule has a Filter or a Prefix, not both"
                ));
            }
            let given = [
                filter.and.is_some(),
                filter.prefix.is_some(),
                filter.tag.is_some(),
                filter.object_size_greater_than.is_some(),
                filter.object_size_less_than.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(s3_error!(
                    MalformedXML,
                    "A Filter holds one condition; combine several with And"
                ));
            }
            if let Some(and) = &filter.and {
                f.prefix = and.prefix.clone().unwrap_or_default();
                for t in and.tags.clone().unwrap_or_default() {
                    let (k, v) = tag(t)?;
                    f.tags.insert(k, v);
                }
                f.size_greater_than = size(and.object_size_greater_than, "ObjectSizeGreaterThan")?;
                f.size_less_than = size(and.object_size_less_than, "ObjectSizeLessThan")?;
            } else {
                f.prefix = filter.prefix.clone().unwrap_or_default();
                if let Some(t) = filter.tag.clone() {
                    let (k, v) = tag(t)?;
                    f.tags.insert(k, v);
                }
                f.size_greater_than =
                    size(filter.object_size_greater_than, "ObjectSizeGreaterThan")?;
                f.size_less_than = size(filter.object_size_less_than, "ObjectSizeLessThan")?;
            }
        }
    }
    Ok(f)
}

/// s3s's rule type (the engine's is `LifecycleRule`).
type LifecycleRule_ = s3s::dto::LifecycleRule;

fn from_dto(rules: Vec<LifecycleRule_>) -> S3Result<Lifecycle> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
            || r.noncurrent_version_transitions
                .as_ref()
                .is_some_and(|t| !t.is_empty())
        {
            return Err(s3_error!(
                NotImplemented,
                "Transitions are not supported: billet has one storage class"
            ));
        }
        let enabled = match r.status.as_str() {
            ExpirationStatus::ENABLED => true,
            ExpirationStatus::DISABLED => false,
            other => {
                return Err(s3_error!(
                    MalformedXML,
                    "Status must be Enabled or Disabled, not {other}"
                ));
            }
        };
        let mut rule = LifecycleRule {
            id: r.id.clone().unwrap_or_default(),
            enabled,
            filter: filter(&r)?,
            ..LifecycleRule::default()
        };
        if let Some(e) = &r.expiration {
            rule.expiration_days = positive(e.days, "Expiration Days")?;
            rule.expiration_date = e.date.as_ref().map(millis);
            rule.expired_object_delete_marker = e.expired_object_delete_marker == Some(true);
        }
        if let Some(n) = &r.noncurrent_version_expiration {
            rule.noncurrent_days = positive(n.noncurrent_days, "NoncurrentDays")?;
            rule.newer_noncurrent_versions =
                positive(n.newer_noncurrent_versions, "NewerNoncurrentVersions")?;
        }
        if let Some(a) = &r.abort_incomplete_multipart_upload {
            rule.abort_upload_days = positive(a.days_after_initiation, "DaysAfterInitiation")?;
        }
        out.push(rule);
    }
    let lifecycle = Lifecycle { rules: out };
    lifecycle
        .validate()
        .map_err(|why| s3_error!(InvalidArgument, "{why}"))?;
    Ok(lifecycle)
}

fn to_dto(l: Lifecycle) -> Vec<LifecycleRule_> {
    l.rules
        .into_iter()
        .map(|r| {
            let f = r.filter;
            let tags: Vec<Tag> = f
                .tags
                .into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v),
                })
                .collect();
            let conditions = usize::from(!f.prefix.is_empty())
                + tags.len()
                + usize::from(f.size_greater_than.is_some())
                + usize::from(f.size_less_than.is_some());
            let gt = f.size_greater_than.map(|n| n as i64);
            let lt = f.size_less_than.map(|n| n as i64);
            let filter = if conditions > 1 {
                LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        prefix: (!f.prefix.is_empty()).then_some(f.prefix),
                        tags: (!tags.is_empty()).then_some(tags),
                        object_size_greater_than: gt,
                        object_size_less_than: lt,
                    }),
                    ..Default::default()
                }
            } else {
                LifecycleRuleFilter {
                    prefix: Some(f.prefix),
                    tag: tags.into_iter().next(),
                    object_size_greater_than: gt,
                    object_size_less_than: lt,
                    ..Default::default()
                }
            };
            let expires = r.expiration_days.is_some()
                || r.expiration_date.is_some()
                || r.expired_object_delete_marker;
            LifecycleRule_ {
                id: (!r.id.is_empty()).then_some(r.id),
                status: ExpirationStatus::from_static(if r.enabled {
                    ExpirationStatus::ENABLED
                } else {
                    ExpirationStatus::DISABLED
                }),
                filter: Some(filter),
                expiration: expires.then(|| LifecycleExpiration {
                    days: r.expiration_days.map(|d| d as i32),
                    date: r.expiration_date.map(timestamp),
                    expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
                }),
                noncurrent_version_expiration: r.noncurrent_days.map(|d| {
                    NoncurrentVersionExpiration {
                        noncurrent_days: Some(d as i32),
                        newer_noncurrent_versions: r.newer_noncurrent_versions.map(|n| n as i32),
                    }
                }),
                abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
                    AbortIncompleteMultipartUpload {
                        days_after_initiation: Some(d as i32),
                    }
                }),
                noncurrent_version_transitions: None,
                prefix: None,
                transitions: None,
            }
        })
        .collect()
}

pub(crate) async fn put(
    engine: &Engine,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let i = req.input;
    engine.bucket(&i.bucket).await.map_err(to_s3)?;
    let rules = i
        .lifecycle_configuration
        .map(|c| c.rules)
        .ok_or_else(|| s3_error!(MalformedXML, "LifecycleConfiguration is missing"))?;
    let lifecycle = from_dto(rules)?;
    engine
        .set_lifecycle(&i.bucket, Some(&lifecycle))
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(crate) async fn get(
    engine: &Engine,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = &req.input.bucket;
    engine.bucket(bucket).await.map_err(to_s3)?;
    let lifecycle = engine
        .lifecycle(bucket)
        .await
        .map_err(to_s3)?
        .ok_or_else(|| {
            s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            )
        })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(to_dto(lifecycle)),
        ..Default::default()
    }))
}

pub(crate) async fn delete(
    engine: &Engine,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let bucket = &req.input.bucket;
    engine.bucket(bucket).await.map_err(to_s3)?;
    engine.set_lifecycle(bucket, None).await.map_err(to_s3)?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rule(f: impl FnOnce(&mut LifecycleRule_)) -> LifecycleRule_ {
        let mut r = LifecycleRule_ {
            abort_incomplete_multipart_upload: None,
            expiration: Some(LifecycleExpiration {
                days: Some(3),
                ..Default::default()
            }),
            filter: None,
            id: Some("r1".into()),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            transitions: None,
        };
        f(&mut r);
        r
    }

    #[test]
    fn rules_round_trip_through_the_engines_form() {
        let rules = vec![
            rule(|r| r.prefix = Some("logs/".into())),
            rule(|r| {
                r.id = Some("r2".into());
                r.filter = Some(LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        prefix: Some("tmp/".into()),
                        tags: Some(vec![Tag {
                            key: Some("k".into()),
                            value: Some("v".into()),
                        }]),
                        object_size_greater_than: Some(10),
                        object_size_less_than: None,
                    }),
                    ..Default::default()
                });
                r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
                    noncurrent_days: Some(1),
                    newer_noncurrent_versions: Some(2),
                });
            }),
        ];
        let l = from_dto(rules).unwrap();
        assert_eq!(l.rules[0].filter.prefix, "logs/");
        assert_eq!(
            l.rules[1].filter.tags,
            BTreeMap::from([("k".into(), "v".into())])
        );
        assert_eq!(l.rules[1].filter.size_greater_than, Some(10));
        assert_eq!(l.rules[1].newer_noncurrent_versions, Some(2));
        // And back: the engine's form read again is the same rules.
        assert_eq!(from_dto(to_dto(l.clone())).unwrap(), l);
    }

    #[test]
    fn malformed_rules_are_refused_with_their_reason() {
        let cases = [
            rule(|r| r.status = ExpirationStatus::from("Maybe".to_string())),
            rule(|r| {
                r.prefix = Some("a".into());
                r.filter = Some(LifecycleRuleFilter::default());
            }),
            rule(|r| {
                r.filter = Some(LifecycleRuleFilter {
                    prefix: Some("a".into()),
                    tag: Some(Tag {
                        key: Some("k".into()),
                        value: None,
                    }),
                    ..Default::default()
                })
            }),
            rule(|r| {
                r.expiration = Some(LifecycleExpiration {
                    days: Some(-1),
                    ..Default::default()
                })
            }),
            rule(|r| r.expiration = None),
            rule(|r| r.transitions = Some(vec![Transition::default()])),
        ];
        for c in cases {
            assert!(from_dto(vec![c.clone()]).is_err(), "{c:?}");
        }
    }
}
