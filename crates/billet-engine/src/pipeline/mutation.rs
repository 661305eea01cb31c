//! What can be asked of a bucket's pipeline, and what it answers.

use std::collections::BTreeMap;

use billet_block::Cid;
use billet_log::Receipt;
use billet_records::{BucketSettings, LockMode, Manifest, lock_blocks};

use crate::error::EngineError;

/// A write precondition, checked inside the pipeline against the state
/// the write commits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only if the key has no current object.
    IfNoneMatch,
    /// `If-Match: <etag>`: only if the current object has this ETag.
    IfMatch(String),
}

impl Condition {
    /// Whether it holds over a key whose live version (none when absent or
    /// a delete marker) has `etag`.
    pub(crate) fn check(cond: Option<&Condition>, live: Option<&str>) -> Result<(), EngineError> {
        match cond {
            None => Ok(()),
            Some(Condition::IfNoneMatch) if live.is_none() => Ok(()),
            Some(Condition::IfNoneMatch) => Err(EngineError::PreconditionFailed(
                "an object already exists under this key",
            )),
            Some(Condition::IfMatch(etag)) if live == Some(etag.as_str()) => Ok(()),
            Some(Condition::IfMatch(_)) => Err(EngineError::PreconditionFailed(
                "the object's ETag does not match If-Match",
            )),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Mutation {
    Put {
        key: String,
        manifest: Box<Manifest>,
        condition: Option<Condition>,
        receipt: Receipt,
        /// The multipart upload this put completes: it must still exist,
        /// and its rows go in the same index transaction.
        upload: Option<String>,
    },
    Delete {
        key: String,
        version_id: Option<String>,
        /// Checked against the version the delete removes or hides.
        condition: Option<Condition>,
        /// May remove a version under a GOVERNANCE retention.
        bypass_governance: bool,
    },
    /// New tags or ACL for one version (the latest when `version_id` is
    /// `None`).
    Rewrite {
        key: String,
        version_id: Option<String>,
        change: Rewrite,
    },
    /// Abandons a multipart upload. Aborts and completes share the bucket's
    /// queue, so a race between them has exactly one winner.
    Abort {
        upload_id: String,
    },
    Settings(BucketSettings),
}

/// What a rewrite of one version's manifest changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    Tags(BTreeMap<String, String>),
    Acl(BTreeMap<String, Vec<String>>),
    /// A new Object Lock retention (`None`: removed). Shortening or
    /// removing one still in force needs `bypass_governance` (GOVERNANCE)
    /// or is refused (COMPLIANCE).
    Retention {
        retention: Option<(LockMode, i64)>,
        bypass_governance: bool,
    },
    LegalHold(bool),
}

impl Rewrite {
    /// Changes `m` as asked, if the version's lock allows it at `now_ms`.
    pub(crate) fn apply(&self, m: &mut Manifest, now_ms: i64) -> Result<(), EngineError> {
        match self {
            Rewrite::Tags(t) => m.tags = t.clone(),
            Rewrite::Acl(a) => m.acl = a.clone(),
            Rewrite::Retention {
                retention,
                bypass_governance,
            } => {
                if let Some((mode, until)) = m.retention().filter(|(_, u)| *u > now_ms) {
                    let weaker = match retention {
                        None => true,
                        Some((new_mode, new_until)) => {
                            *new_until < until
                                || (mode == LockMode::Compliance && *new_mode != mode)
                        }
                    };
                    if weaker
                        && let Some(why) =
                            lock_blocks(false, Some((mode, until)), now_ms, *bypass_governance)
                    {
                        return Err(EngineError::ObjectLocked(why));
                    }
                }
                m.lock_mode = retention.map(|(mode, _)| mode);
                m.lock_until = retention.map(|(_, until)| until);
            }
            Rewrite::LegalHold(on) => m.legal_hold = *on,
        }
        Ok(())
    }

    /// Why a delete marker cannot take it.
    pub(crate) fn on_delete_marker(&self) -> &'static str {
        match self {
            Rewrite::Tags(_) => "a delete marker cannot carry tags",
            Rewrite::Acl(_) => "a delete marker cannot carry an ACL",
            Rewrite::Retention { .. } | Rewrite::LegalHold(_) => "a delete marker cannot be locked",
        }
    }
}

/// What a mutation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Put {
        version_id: Option<String>,
        manifest_cid: Cid,
        manifest: Box<Manifest>,
    },
    Delete {
        version_id: Option<String>,
        delete_marker: bool,
    },
    Rewrite {
        version_id: Option<String>,
    },
    Abort,
    Settings,
}
