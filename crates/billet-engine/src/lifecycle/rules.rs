//! A bucket's lifecycle configuration and what it decides about one key's
//! versions, as pure functions of the versions and the time (the runner in
//! `mod.rs` lists, asks, and deletes through the pipeline).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The configuration, stored as JSON in the bucket's `lifecycle` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    /// Current versions expire this many days after they were written...
    pub expiration_days: Option<u32>,
    /// ... or once this date (ms since the Unix epoch) has passed.
    pub expiration_date: Option<i64>,
    /// A delete marker left with no version below it is removed.
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions go this many days after they became noncurrent...
    pub noncurrent_days: Option<u32>,
    /// ... except the newest this many of them.
    pub newer_noncurrent_versions: Option<u32>,
    /// Uploads still open this many days after they began are aborted.
    pub abort_upload_days: Option<u32>,
}

/// Which objects a rule is about; every part given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    pub prefix: String,
    pub tags: BTreeMap<String, String>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
}

/// S3 accepts at most this many rules.
pub const MAX_RULES: usize = 1000;

impl Filter {
    /// Whether a version of `key` of `size` bytes matches, tags aside.
    pub fn matches_key(&self, key: &str, size: u64) -> bool {
        key.starts_with(&self.prefix)
            && self.size_greater_than.is_none_or(|n| size > n)
            && self.size_less_than.is_none_or(|n| size < n)
    }

    pub fn matches_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

impl Lifecycle {
    /// The rules S3 enforces on a configuration; the message names the
    /// problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(format!("a configuration has 1..={MAX_RULES} rules"));
        }
        let mut ids = std::collections::HashSet::new();
        for r in &self.rules {
            if r.id.len() > 255 {
                return Err("a rule ID is at most 255 characters".into());
            }
            if !r.id.is_empty() && !ids.insert(&r.id) {
                return Err(format!("rule ID {:?} is used twice", r.id));
            }
            if r.expiration_days.is_some() && r.expiration_date.is_some() {
                return Err(format!(
                    "rule {:?}: Expiration has Days or Date, not both",
                    r.id
                ));
            }
            if r.expired_object_delete_marker
                && (r.expiration_days.is_some() || r.expiration_date.is_some())
            {
                return Err(format!(
                    "rule {:?}: ExpiredObjectDeleteMarker cannot be combined with Days or Date",
                    r.id
                ));
            }
            if r.expired_object_delete_marker && !r.filter.tags.is_empty() {
                return Err(format!(
                    "rule {:?}: ExpiredObjectDeleteMarker cannot be used with a tag filter",
                    r.id
                ));
            }
            let zero =
                [r.expiration_days, r.noncurrent_days, r.abort_upload_days].contains(&Some(0));
            if zero {
                return Err(format!(
                    "rule {:?}: a number of days must be positive",
                    r.id
                ));
            }
            if r.newer_noncurrent_versions.is_some() && r.noncurrent_days.is_none() {
                return Err(format!(
                    "rule {:?}: NewerNoncurrentVersions needs NoncurrentDays",
                    r.id
                ));
            }
            if r.abort_upload_days.is_some() && !r.filter.tags.is_empty() {
                return Err(format!(
                    "rule {:?}: AbortIncompleteMultipartUpload cannot be used with a tag filter",
                    r.id
                ));
            }
            let acts = r.expiration_days.is_some()
                || r.expiration_date.is_some()
                || r.expired_object_delete_marker
                || r.noncurrent_days.is_some()
                || r.abort_upload_days.is_some();
            if !acts {
                return Err(format!("rule {:?} has no action", r.id));
            }
            if let (Some(gt), Some(lt)) = (r.filter.size_greater_than, r.filter.size_less_than)
                && gt >= lt
            {
                return Err(format!(
                    "rule {:?}: ObjectSizeGreaterThan must be below ObjectSizeLessThan",
                    r.id
                ));
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }
}

/// One version of a key as the rules see it, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version_id: String,
    pub delete_marker: bool,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// What the rules want done with one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The current version expires (a delete without a version id).
    pub expire_current: bool,
    /// Versions (noncurrent ones, or a lone delete marker) to remove.
    pub remove: Vec<String>,
}

/// `rule` asks about `v`; `tags_of` gives a version's tags when a rule
/// filters on them (the runner reads the manifest only then).
fn applies(
    rule: &Rule,
    key: &str,
    v: &Version,
    tags_of: &mut dyn FnMut(&str) -> BTreeMap<String, String>,
) -> bool {
    rule.filter.matches_key(key, v.size)
        && (rule.filter.tags.is_empty() || rule.filter.matches_tags(&tags_of(&v.version_id)))
}

/// What `rules` decide about `key`, whose versions are `versions` (newest
/// first), at `now_ms`, with days `day_ms` long.
pub fn decide(
    rules: &Lifecycle,
    key: &str,
    versions: &[Version],
    now_ms: i64,
    day_ms: i64,
    tags_of: &mut dyn FnMut(&str) -> BTreeMap<String, String>,
) -> Verdict {
    let mut out = Verdict::default();
    let Some(current) = versions.first() else {
        return out;
    };
    let days = |d: u32| i64::from(d).saturating_mul(day_ms);
    for r in rules.enabled() {
        if !current.delete_marker && !out.expire_current {
            let due = r
                .expiration_days
                .is_some_and(|d| current.last_modified_ms.saturating_add(days(d)) <= now_ms)
                || r.expiration_date.is_some_and(|t| t <= now_ms);
            if due && applies(r, key, current, tags_of) {
                out.expire_current = true;
            }
        }
        if current.delete_marker
            && versions.len() == 1
            && r.expired_object_delete_marker
            && key.starts_with(&r.filter.prefix)
            && !out.remove.contains(&current.version_id)
        {
            out.remove.push(current.version_id.clone());
        }
        if let Some(nd) = r.noncurrent_days {
            let keep = r.newer_noncurrent_versions.unwrap_or(0) as usize;
            // A version became noncurrent when the one above it was written.
            for (i, pair) in versions.windows(2).enumerate() {
                let (newer, v) = (&pair[0], &pair[1]);
                if i < keep || out.remove.contains(&v.version_id) {
                    continue;
                }
                if newer.last_modified_ms.saturating_add(days(nd)) <= now_ms
                    && applies(r, key, v, tags_of)
                {
                    out.remove.push(v.version_id.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
