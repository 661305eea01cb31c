//! Object Lock: a bucket's rule (in its settings, so every commit carries
//! it) and a version's retention and legal hold (in its manifest, so an
//! object proof shows them).

use serde::{Deserialize, Serialize};

use crate::error::{RecordError, invalid};

/// S3's two retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Shortened or removed only by whoever may bypass governance.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Never shortened or removed before its date, by anyone.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn from_s3_name(s: &str) -> Option<LockMode> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A bucket with Object Lock enabled (it cannot be disabled), and the
/// retention new versions get when their write names none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectLock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<LockMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_years: Option<u32>,
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl ObjectLock {
    /// A default retention: a mode and exactly one positive period.
    pub fn validate(&self) -> Result<(), RecordError> {
        let ok = match (self.default_mode, self.default_days, self.default_years) {
            (None, None, None) => true,
            (Some(_), Some(d), None) => d > 0 && d <= 36_500,
            (Some(_), None, Some(y)) => y > 0 && y <= 100,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "commit",
                "settings.objectLock",
                "a default retention is a mode and either 1..=36500 days or 1..=100 years",
            ))
        }
    }

    /// The retention a version written at `now_ms` gets by default.
    pub fn default_retention(&self, now_ms: i64) -> Option<(LockMode, i64)> {
        let mode = self.default_mode?;
        let days = match (self.default_days, self.default_years) {
            (Some(d), _) => i64::from(d),
            // As S3 counts a year.
            (None, Some(y)) => i64::from(y) * 365,
            (None, None) => return None,
        };
        Some((mode, now_ms.saturating_add(days * DAY_MS)))
    }
}

/// Why a version may not go (or have its retention cut) at `now_ms`, if
/// it may not: a legal hold, or a retention date still ahead (a
/// GOVERNANCE one only when `bypass` is not allowed).
pub fn lock_blocks(
    legal_hold: bool,
    retention: Option<(LockMode, i64)>,
    now_ms: i64,
    bypass: bool,
) -> Option<&'static str> {
    if legal_hold {
        return Some("the object version is under a legal hold");
    }
    match retention {
        Some((_, until)) if until <= now_ms => None,
        Some((LockMode::Compliance, _)) => {
            Some("the object version is locked in COMPLIANCE mode until its retention date")
        }
        Some((LockMode::Governance, _)) if !bypass => {
            Some("the object version is locked in GOVERNANCE mode until its retention date")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_lock_blocks() {
        let g = Some((LockMode::Governance, 2_000));
        let c = Some((LockMode::Compliance, 2_000));
        assert!(lock_blocks(false, None, 1_000, false).is_none());
        assert!(lock_blocks(true, None, 1_000, true).is_some());
        assert!(lock_blocks(false, g, 1_000, false).is_some());
        assert!(lock_blocks(false, g, 1_000, true).is_none());
        assert!(lock_blocks(false, c, 1_000, true).is_some());
        // Past its date a retention holds nothing.
        assert!(lock_blocks(false, c, 2_000, false).is_none());
        assert!(lock_blocks(true, c, 3_000, true).is_some());
    }

    #[test]
    fn default_retentions() {
        let rule = |m, d, y| ObjectLock {
            default_mode: m,
            default_days: d,
            default_years: y,
        };
        assert!(rule(None, None, None).validate().is_ok());
        assert!(
            rule(Some(LockMode::Governance), Some(1), None)
                .validate()
                .is_ok()
        );
        assert!(
            rule(Some(LockMode::Governance), None, None)
                .validate()
                .is_err()
        );
        assert!(
            rule(Some(LockMode::Governance), Some(1), Some(1))
                .validate()
                .is_err()
        );
        assert!(
            rule(Some(LockMode::Compliance), Some(0), None)
                .validate()
                .is_err()
        );
        assert!(rule(None, Some(3), None).validate().is_err());
        assert_eq!(
            rule(Some(LockMode::Compliance), Some(2), None).default_retention(5),
            Some((LockMode::Compliance, 5 + 2 * DAY_MS))
        );
        assert_eq!(
            rule(Some(LockMode::Governance), None, Some(1)).default_retention(0),
            Some((LockMode::Governance, 365 * DAY_MS))
        );
        assert_eq!(rule(None, None, None).default_retention(0), None);
    }
}
