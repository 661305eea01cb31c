//! Lifecycle: a background pass over every bucket with a configuration
//! that expires current versions, removes noncurrent versions and lone
//! delete markers, and aborts stale uploads. Each removal is an ordinary
//! delete through the bucket's pipeline, so it is a commit like any
//! other: in the history, in proofs, and subject to Object Lock (a locked
//! version is left where it is).

mod rules;

use std::collections::BTreeMap;

pub use rules::{Filter, Lifecycle, Rule};
use rules::{Version, decide};

use crate::{Condition, Engine, EngineError, UploadQuery, VersionQuery};

/// The bucket setting that holds a configuration (JSON of [`Lifecycle`]).
pub const SETTING: &str = "lifecycle";

/// Versions listed per page while a bucket is walked.
const PAGE: usize = 1000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleReport {
    pub buckets: u64,
    pub expired: u64,
    pub versions_removed: u64,
    pub uploads_aborted: u64,
    /// Removals Object Lock (or a concurrent change) refused.
    pub skipped: u64,
}

impl Engine {
    /// A bucket's lifecycle configuration, if it has one.
    pub async fn lifecycle(&self, bucket: &str) -> Result<Option<Lifecycle>, EngineError> {
        let settings = self.index().bucket_settings(bucket).await?;
        match settings.into_iter().find(|(name, _)| name == SETTING) {
            None => Ok(None),
            Some((_, json)) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| EngineError::Corrupt(format!("{bucket}'s lifecycle setting: {e}"))),
        }
    }

    /// Sets (or with `None` removes) a bucket's lifecycle configuration.
    pub async fn set_lifecycle(
        &self,
        bucket: &str,
        lifecycle: Option<&Lifecycle>,
    ) -> Result<(), EngineError> {
        if let Some(l) = lifecycle {
            l.validate().map_err(EngineError::Invalid)?;
        }
        let json = lifecycle
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| EngineError::Internal(format!("lifecycle to JSON: {e}")))?;
        if self
            .index()
            .set_bucket_setting(bucket, SETTING, json.as_deref())
            .await?
        {
            Ok(())
        } else {
            Err(EngineError::NoSuchBucket(bucket.to_string()))
        }
    }

    /// One lifecycle pass over every bucket at `now_ms`, days being
    /// `day_ms` long.
    pub async fn run_lifecycle(
        &self,
        now_ms: i64,
        day_ms: i64,
    ) -> Result<LifecycleReport, EngineError> {
        let mut report = LifecycleReport::default();
        for b in self.list_buckets().await? {
            let Some(rules) = self.lifecycle(&b.name).await? else {
                continue;
            };
            report.buckets += 1;
            self.lifecycle_versions(&b.name, &rules, now_ms, day_ms, &mut report)
                .await?;
            self.lifecycle_uploads(&b.name, &rules, now_ms, day_ms, &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn lifecycle_versions(
        &self,
        bucket: &str,
        rules: &Lifecycle,
        now_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), EngineError> {
        let mut query = VersionQuery {
            prefix: common_prefix(rules),
            max_keys: PAGE,
            ..VersionQuery::default()
        };
        // A key's versions may straddle two pages: it is decided once all
        // of them are in.
        let mut key = String::new();
        let mut versions: Vec<(Version, String)> = Vec::new();
        loop {
            let page = self.list_versions(bucket, &query).await?;
            for s in page.versions {
                if s.key != key && !versions.is_empty() {
                    self.lifecycle_key(bucket, &key, &versions, rules, now_ms, day_ms, report)
                        .await?;
                    versions.clear();
                }
                key.clone_from(&s.key);
                versions.push((
                    Version {
                        version_id: s.version_id,
                        delete_marker: s.delete_marker,
                        size: s.size,
                        last_modified_ms: s.last_modified_ms,
                    },
                    s.etag,
                ));
            }
            if !page.truncated {
                break;
            }
            query.key_marker = page.next_key_marker;
            query.version_id_marker = page.next_version_id_marker;
        }
        if !versions.is_empty() {
            self.lifecycle_key(bucket, &key, &versions, rules, now_ms, day_ms, report)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn lifecycle_key(
        &self,
        bucket: &str,
        key: &str,
        listed: &[(Version, String)],
        rules: &Lifecycle,
        now_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), EngineError> {
        let versions: Vec<Version> = listed.iter().map(|(v, _)| v.clone()).collect();
        // Tags live in manifests: read only for a rule that filters on
        // them, and once per version.
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let needs_tags = rules.enabled().any(|r| !r.filter.tags.is_empty());
        if needs_tags {
            for v in versions.iter().filter(|v| !v.delete_marker) {
                let t = match self.object(bucket, key, Some(&v.version_id)).await {
                    Ok(o) => o.manifest.tags,
                    Err(_) => BTreeMap::new(),
                };
                tags.insert(v.version_id.clone(), t);
            }
        }
        let verdict = decide(rules, key, &versions, now_ms, day_ms, &mut |id| {
            tags.get(id).cloned().unwrap_or_default()
        });
        if verdict.expire_current {
            // Only the version that was judged: a write since then wins.
            let etag = listed[0].1.clone();
            match self
                .delete_if(bucket, key, None, Some(Condition::IfMatch(etag)))
                .await
            {
                Ok(_) => report.expired += 1,
                Err(e) if skippable(&e) => report.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        for id in &verdict.remove {
            match self.delete(bucket, key, Some(id)).await {
                Ok(_) => report.versions_removed += 1,
                Err(e) if skippable(&e) => report.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn lifecycle_uploads(
        &self,
        bucket: &str,
        rules: &Lifecycle,
        now_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), EngineError> {
        let aborting: Vec<&Rule> = rules
            .enabled()
            .filter(|r| r.abort_upload_days.is_some())
            .collect();
        if aborting.is_empty() {
            return Ok(());
        }
        let mut query = UploadQuery {
            max_uploads: PAGE,
            ..UploadQuery::default()
        };
        loop {
            let (uploads, page) = self.list_uploads(bucket, &query).await?;
            for u in uploads {
                let stale = aborting.iter().any(|r| {
                    u.key.starts_with(&r.filter.prefix)
                        && r.abort_upload_days.is_some_and(|d| {
                            u.initiated_ms
                                .saturating_add(i64::from(d).saturating_mul(day_ms))
                                <= now_ms
                        })
                });
                if !stale {
                    continue;
                }
                match self.abort_upload(bucket, &u.upload_id).await {
                    Ok(()) => report.uploads_aborted += 1,
                    // Completed or aborted meanwhile.
                    Err(EngineError::NoSuchUpload(_)) => report.skipped += 1,
                    Err(e) => return Err(e),
                }
            }
            if !page.truncated {
                break;
            }
            query.key_marker = page.next_key_marker;
            query.upload_id_marker = page.next_upload_id_marker;
        }
        Ok(())
    }
}

/// A removal refused for a reason that is not a failure of the pass.
fn skippable(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::ObjectLocked(_)
            | EngineError::PreconditionFailed(_)
            | EngineError::NoSuchKey(_)
            | EngineError::NoSuchVersion { .. }
    )
}

/// The prefix every enabled rule's prefix starts with: no key outside it
/// can match, so the walk lists only under it.
fn common_prefix(rules: &Lifecycle) -> String {
    let mut prefixes = rules.enabled().map(|r| r.filter.prefix.as_str());
    let Some(first) = prefixes.next() else {
        return String::new();
    };
    let mut common = first.to_string();
    for p in prefixes {
        let n = common
            .char_indices()
            .zip(p.chars())
            .find(|((_, a), b)| a != b)
            .map_or(common.len().min(p.len()), |((i, _), _)| i);
        common.truncate(n);
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_covers_every_rules_prefix() {
        let with = |ps: &[&str]| Lifecycle {
            rules: ps
                .iter()
                .map(|p| Rule {
                    enabled: true,
                    filter: Filter {
                        prefix: p.to_string(),
                        ..Filter::default()
                    },
                    ..Rule::default()
                })
                .collect(),
        };
        assert_eq!(common_prefix(&with(&["logs/a", "logs/b"])), "logs/");
        assert_eq!(common_prefix(&with(&["logs/", "logs/x"])), "logs/");
        assert_eq!(common_prefix(&with(&["a", "b"])), "");
        assert_eq!(common_prefix(&with(&["ü/1", "ü/2"])), "ü/");
        assert_eq!(common_prefix(&with(&[])), "");
    }
}
