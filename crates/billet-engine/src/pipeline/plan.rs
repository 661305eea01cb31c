//! Planning a batch: a pure function from the head's settings, the index
//! rows the batch needs (read beforehand, see `rows`) and the queued
//! mutations, to what the commit writes — MST operations, index row
//! changes, new blocks — and what each mutation answers.
//!
//! Mutations are decided in queue order, each against the state the ones
//! before it leave. One that reads a key's version rows (delete by version
//! id, retag, a null version over an older null version) must not follow
//! a change to that key in the same batch, since the rows it was given
//! predate that change: it and everything after it wait for the next batch.

use std::collections::{HashMap, HashSet};

use billet_block::{Block, Cid};
use billet_index::{NULL_VERSION, ObjectVersion, RowChange};
use billet_log::Receipt;
use billet_mst::Op;
use billet_records::{BucketSettings, Manifest, Versioning, lock_blocks};

use super::mutation::{Condition, Mutation, Outcome};
use super::rows::Rows;
use crate::error::EngineError;

/// What a plan takes from outside: the time, and fresh version ids.
pub(crate) struct Stamps<'a> {
    pub now_ms: i64,
    pub new_version_id: &'a mut dyn FnMut() -> String,
}

#[derive(Debug)]
pub(crate) struct Plan {
    /// One per mutation planned; mutations past `results.len()` wait for
    /// the next batch.
    pub results: Vec<Result<Outcome, EngineError>>,
    pub ops: Vec<Op>,
    pub changes: Vec<RowChange>,
    pub blocks: Vec<Block>,
    pub receipt: Receipt,
    pub settings: Option<BucketSettings>,
    pub completed_uploads: Vec<String>,
    /// (result slot, upload id) of the aborts to carry out.
    pub aborts: Vec<(usize, String)>,
}

impl Plan {
    fn new(capacity: usize) -> Plan {
        Plan {
            results: Vec::with_capacity(capacity),
            ops: Vec::new(),
            changes: Vec::new(),
            blocks: Vec::new(),
            receipt: Receipt::default(),
            settings: None,
            completed_uploads: Vec::new(),
            aborts: Vec::new(),
        }
    }

    /// Whether the plan changes the bucket (else there is nothing to commit).
    pub fn changes_bucket(&self) -> bool {
        !self.changes.is_empty() || self.settings.is_some()
    }

    /// A new current version of `key`: its manifest block, the MST value
    /// and the index row. Returns the manifest's CID.
    fn add_version(
        &mut self,
        key: &str,
        version_id: &str,
        manifest: Manifest,
    ) -> Result<Cid, EngineError> {
        let block = manifest.to_block()?;
        let cid = *block.cid();
        self.ops.push(Op::put(key.as_bytes(), cid));
        self.changes.push(RowChange::Put {
            key: key.to_string(),
            version_id: version_id.to_string(),
            manifest_cid: cid,
            manifest,
        });
        self.blocks.push(block);
        Ok(cid)
    }

    /// A version's manifest rewritten in place (new tags, a new `prev`).
    fn replace_version(
        &mut self,
        key: &str,
        version_id: &str,
        manifest: Manifest,
    ) -> Result<Cid, EngineError> {
        let block = manifest.to_block()?;
        let cid = *block.cid();
        self.changes.push(RowChange::Replace {
            key: key.to_string(),
            version_id: version_id.to_string(),
            manifest_cid: cid,
            manifest,
        });
        self.blocks.push(block);
        Ok(cid)
    }
}

/// The current version of a key as the batch sees it.
#[derive(Debug, Clone)]
struct Current {
    version_id: String,
    manifest_cid: Cid,
    /// The manifest's own `prev`: where the chain continues below it.
    prev: Option<Cid>,
    etag: String,
    delete_marker: bool,
}

impl Current {
    fn of(v: &ObjectVersion) -> Current {
        Current {
            version_id: v.version_id.clone(),
            manifest_cid: v.manifest_cid,
            prev: v.manifest.prev,
            etag: v.manifest.etag.clone(),
            delete_marker: v.manifest.delete_marker,
        }
    }
}

/// What planning knows beyond the rows it was given.
struct Seen<'r> {
    rows: &'r Rows,
    current: HashMap<String, Option<Current>>,
    /// Keys whose rows this batch changes.
    touched: HashSet<String>,
    /// Uploads this batch completes or aborts.
    closed: HashSet<String>,
}

impl Seen<'_> {
    fn current(&self, key: &str) -> Option<Current> {
        match self.current.get(key) {
            Some(c) => c.clone(),
            None => self.rows.latest(key).map(Current::of),
        }
    }

    fn upload_open(&self, id: &str) -> bool {
        !self.closed.contains(id) && self.rows.upload_open(id)
    }

    /// Records the key's new current version after a change.
    fn changed(&mut self, key: &str, current: Option<Current>) {
        self.touched.insert(key.to_string());
        self.current.insert(key.to_string(), current);
    }
}

/// Replaces (`Some`) or removes (`None`) one version of a key and re-links
/// the newer versions above it, so the `prev` chain from the MST value
/// holds exactly the versions the index keeps. Returns the key's new
/// current version.
fn rewrite_chain(
    versions: &[ObjectVersion],
    key: &str,
    version_id: &str,
    replacement: Option<Manifest>,
    plan: &mut Plan,
) -> Result<Option<Current>, EngineError> {
    let Some(at) = versions.iter().position(|v| v.version_id == version_id) else {
        return Err(EngineError::NoSuchVersion {
            key: key.to_string(),
            version_id: version_id.to_string(),
        });
    };
    // The newest version re-written so far: its new CID, its row, and the
    // `prev` it now has.
    let mut below = match replacement {
        Some(mut m) => {
            m.prev = versions[at].manifest.prev;
            let prev = m.prev;
            let cid = plan.replace_version(key, version_id, m)?;
            Some((cid, &versions[at], prev))
        }
        None => {
            plan.changes.push(RowChange::Delete {
                key: key.to_string(),
                version_id: version_id.to_string(),
            });
            None
        }
    };
    let mut below_cid = match &below {
        Some((cid, _, _)) => Some(*cid),
        None => versions[at].manifest.prev,
    };
    for v in versions[..at].iter().rev() {
        let mut m = v.manifest.clone();
        m.prev = below_cid;
        let cid = plan.replace_version(key, &v.version_id, m)?;
        below = Some((cid, v, below_cid));
        below_cid = Some(cid);
    }
    // The newest surviving version, as re-written.
    let latest = match below {
        Some((cid, v, prev)) => Some(Current {
            manifest_cid: cid,
            prev,
            ..Current::of(v)
        }),
        None => versions.get(at + 1).map(Current::of),
    };
    match &latest {
        Some(c) => plan.ops.push(Op::put(key.as_bytes(), c.manifest_cid)),
        None => plan.ops.push(Op::delete(key.as_bytes())),
    }
    Ok(latest)
}

/// Where a new manifest's `prev` points in a versioned bucket, given the
/// version it goes on top of. A new null version replaces any older null
/// version, which therefore leaves the chain. `None` means: defer to the
/// next batch.
fn chain_below(
    key: &str,
    new_is_null: bool,
    cur: Option<Current>,
    seen: &Seen<'_>,
    plan: &mut Plan,
) -> Result<Option<Option<Cid>>, EngineError> {
    let Some(cur) = cur else {
        return Ok(Some(None));
    };
    if !new_is_null {
        return Ok(Some(Some(cur.manifest_cid)));
    }
    if cur.version_id == NULL_VERSION {
        // Replacing the current null version: keep what lies below it.
        return Ok(Some(cur.prev));
    }
    if seen.touched.contains(key) {
        return Ok(None);
    }
    if seen.rows.has_null_version(key) {
        let versions = seen.rows.all(key).unwrap_or_default();
        let latest = rewrite_chain(versions, key, NULL_VERSION, None, plan)?;
        // rewrite_chain pushed an MST op for the key; the new version's
        // own op, later in the list, wins.
        return Ok(Some(latest.map(|c| c.manifest_cid)));
    }
    Ok(Some(Some(cur.manifest_cid)))
}

/// Decides what each mutation does, in queue order, on a head with
/// `settings`, given the rows `rows` (see the module documentation).
pub(crate) fn plan(
    settings: &BucketSettings,
    rows: &Rows,
    mutations: &[Mutation],
    stamps: Stamps<'_>,
) -> Result<Plan, EngineError> {
    let mut plan = Plan::new(mutations.len());
    let mut settings = settings.clone();
    let mut seen = Seen {
        rows,
        current: HashMap::new(),
        touched: HashSet::new(),
        closed: HashSet::new(),
    };
    for m in mutations {
        let reads_rows = match m {
            Mutation::Delete {
                key,
                version_id: Some(_),
                ..
            }
            | Mutation::Rewrite { key, .. } => Some(key),
            _ => None,
        };
        if let Some(key) = reads_rows
            && seen.touched.contains(key)
        {
            break;
        }
        let slot = plan.results.len();
        let result = match m {
            Mutation::Put {
                key,
                manifest,
                condition,
                receipt,
                upload,
            } => {
                if let Some(id) = upload
                    && !seen.upload_open(id)
                {
                    plan.results
                        .push(Err(EngineError::NoSuchUpload(id.clone())));
                    continue;
                }
                let cur = seen.current(key);
                let live = cur.as_ref().filter(|c| !c.delete_marker);
                if let Err(e) = Condition::check(condition.as_ref(), live.map(|c| c.etag.as_str()))
                {
                    plan.results.push(Err(e));
                    continue;
                }
                let version_id = match settings.versioning {
                    Versioning::Enabled => (stamps.new_version_id)(),
                    Versioning::Suspended | Versioning::Unversioned => NULL_VERSION.to_string(),
                };
                let is_null = version_id == NULL_VERSION;
                // With versioning, each manifest links the version below
                // it, so history is reachable from the head.
                let prev = if settings.versioning == Versioning::Unversioned {
                    None
                } else {
                    match chain_below(key, is_null, cur, &seen, &mut plan)? {
                        Some(prev) => prev,
                        None => break,
                    }
                };
                let mut manifest = manifest.as_ref().clone();
                manifest.version_id = (!is_null).then(|| version_id.clone());
                manifest.prev = prev;
                // The bucket's default retention, decided with the commit.
                if manifest.lock_mode.is_none()
                    && let Some(rule) = &settings.object_lock
                    && let Some((mode, until)) = rule.default_retention(stamps.now_ms)
                {
                    manifest.lock_mode = Some(mode);
                    manifest.lock_until = Some(until);
                }
                let cid = plan.add_version(key, &version_id, manifest.clone())?;
                plan.receipt = plan.receipt.merge(*receipt);
                if let Some(id) = upload {
                    seen.closed.insert(id.clone());
                    plan.completed_uploads.push(id.clone());
                }
                seen.changed(
                    key,
                    Some(Current {
                        version_id: version_id.clone(),
                        manifest_cid: cid,
                        prev,
                        etag: manifest.etag.clone(),
                        delete_marker: false,
                    }),
                );
                Ok(Outcome::Put {
                    version_id: manifest.version_id.clone(),
                    manifest_cid: cid,
                    manifest: Box::new(manifest),
                })
            }
            Mutation::Delete {
                key,
                version_id: None,
                condition,
                ..
            } => {
                let cur = seen.current(key);
                let live = cur.as_ref().filter(|c| !c.delete_marker);
                if let Err(e) = Condition::check(condition.as_ref(), live.map(|c| c.etag.as_str()))
                {
                    plan.results.push(Err(e));
                    continue;
                }
                match settings.versioning {
                    Versioning::Unversioned => {
                        if cur.is_some() {
                            plan.ops.push(Op::delete(key.as_bytes()));
                            plan.changes.push(RowChange::Delete {
                                key: key.clone(),
                                version_id: NULL_VERSION.into(),
                            });
                            seen.changed(key, None);
                        }
                        Ok(Outcome::Delete {
                            version_id: None,
                            delete_marker: false,
                        })
                    }
                    Versioning::Enabled | Versioning::Suspended => {
                        // A delete marker becomes the current version.
                        let vid = if settings.versioning == Versioning::Enabled {
                            (stamps.new_version_id)()
                        } else {
                            NULL_VERSION.to_string()
                        };
                        let is_null = vid == NULL_VERSION;
                        let Some(prev) = chain_below(key, is_null, cur, &seen, &mut plan)? else {
                            break;
                        };
                        let mut marker = Manifest::delete_marker(
                            key.clone(),
                            if is_null { String::new() } else { vid.clone() },
                            stamps.now_ms,
                        );
                        marker.prev = prev;
                        let cid = plan.add_version(key, &vid, marker)?;
                        seen.changed(
                            key,
                            Some(Current {
                                version_id: vid.clone(),
                                manifest_cid: cid,
                                prev,
                                etag: String::new(),
                                delete_marker: true,
                            }),
                        );
                        Ok(Outcome::Delete {
                            version_id: (!is_null).then_some(vid),
                            delete_marker: true,
                        })
                    }
                }
            }
            Mutation::Delete {
                key,
                version_id: Some(vid),
                condition,
                bypass_governance,
            } => {
                // Permanently removing one version.
                let target = rows.version(key, Some(vid));
                let etag = target
                    .filter(|t| !t.is_delete_marker())
                    .map(|t| t.manifest.etag.as_str());
                if let Err(e) = Condition::check(condition.as_ref(), etag) {
                    plan.results.push(Err(e));
                    continue;
                }
                if let Some(why) = target.and_then(|t| {
                    lock_blocks(
                        t.manifest.legal_hold,
                        t.manifest.retention(),
                        stamps.now_ms,
                        *bypass_governance,
                    )
                }) {
                    plan.results.push(Err(EngineError::ObjectLocked(why)));
                    continue;
                }
                match target {
                    None => Ok(Outcome::Delete {
                        version_id: Some(vid.clone()),
                        delete_marker: false,
                    }),
                    Some(t) => {
                        let versions = rows.all(key).unwrap_or_default();
                        let latest = rewrite_chain(versions, key, vid, None, &mut plan)?;
                        seen.changed(key, latest);
                        Ok(Outcome::Delete {
                            version_id: Some(vid.clone()),
                            delete_marker: t.is_delete_marker(),
                        })
                    }
                }
            }
            Mutation::Rewrite {
                key,
                version_id,
                change,
            } => match rows.version(key, version_id.as_deref()) {
                None => Err(match version_id {
                    Some(v) => EngineError::NoSuchVersion {
                        key: key.clone(),
                        version_id: v.clone(),
                    },
                    None => EngineError::NoSuchKey(key.clone()),
                }),
                Some(t) if t.is_delete_marker() => Err(match version_id {
                    Some(_) => EngineError::MethodNotAllowed(change.on_delete_marker()),
                    None => EngineError::NoSuchKey(key.clone()),
                }),
                Some(t) => {
                    let mut m = t.manifest.clone();
                    if let Err(e) = change.apply(&mut m, stamps.now_ms) {
                        plan.results.push(Err(e));
                        continue;
                    }
                    m.modified = stamps.now_ms.max(m.created);
                    let versions = rows.all(key).unwrap_or_default();
                    let latest = rewrite_chain(versions, key, &t.version_id, Some(m), &mut plan)?;
                    seen.changed(key, latest);
                    Ok(Outcome::Rewrite {
                        version_id: (t.version_id != NULL_VERSION).then(|| t.version_id.clone()),
                    })
                }
            },
            Mutation::Abort { upload_id } => {
                if seen.upload_open(upload_id) {
                    seen.closed.insert(upload_id.clone());
                    plan.aborts.push((slot, upload_id.clone()));
                    Ok(Outcome::Abort)
                } else {
                    Err(EngineError::NoSuchUpload(upload_id.clone()))
                }
            }
            Mutation::Settings(s) => {
                settings = s.clone();
                plan.settings = Some(s.clone());
                Ok(Outcome::Settings)
            }
        };
        plan.results.push(result);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
