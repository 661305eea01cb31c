//! How much of a bucket's history stays readable.
//!
//! A bucket keeps every commit from its **floor** up to its head: the
//! floor is the oldest commit younger than `keep_secs`, or among the
//! newest `keep_commits`, whichever reaches further back (the head always
//! stays). Everything a kept commit reaches stays; older commits keep only
//! their commit block (the MMR's leaves name them, recovery rebuilds the
//! MMR from them, and a proof about one can still show it), never their
//! trees. A version-1 commit links its predecessor, so a kept version-1
//! commit keeps the whole history below it (its export must be closed).
//!
//! The commits the index records (`commits` rows) are the list this
//! works from; a bucket whose rows stop short of its head (written by an
//! older billet) has them filled in from the `prev` chain first.

use billet_block::{BlockStore, Cid};
use billet_index::{CommitRow, Retention};
use billet_records::Commit;

use crate::error::EngineError;
use crate::{Engine, Inner};

/// Rows read from the index per query.
const PAGE: usize = 4096;

/// What a bucket's retention keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedHistory {
    pub bucket: String,
    pub head: Cid,
    pub head_seq: u64,
    /// The oldest commit kept readable (every commit from it to the head).
    pub floor: u64,
    /// Commits recorded for the bucket (kept readable or not).
    pub recorded: u64,
    /// The policy applied (the bucket's own, or the node's default).
    pub policy: Retention,
}

/// The policy a bucket lives under: its own fields where it set them,
/// the node's default for the rest.
pub(crate) fn effective(own: Option<Retention>, default: Retention) -> Retention {
    match own {
        Some(r) => Retention {
            keep_secs: r.keep_secs.or(default.keep_secs),
            keep_commits: r.keep_commits.or(default.keep_commits),
        },
        None => default,
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

/// Records the commits missing between the head and the newest commit
/// the index already lists, from the `prev` chain. Blocking (a thread of
/// the collector's, inside a runtime context).
pub(crate) fn fill_in(
    inner: &Inner,
    bucket: &str,
    head: Cid,
    head_seq: u64,
) -> Result<u64, EngineError> {
    let known = |seq: u64| -> Result<Option<CommitRow>, EngineError> {
        Ok(block_on(inner.index.commits(bucket, seq, 1))?
            .into_iter()
            .find(|r| r.seq == seq))
    };
    let mut missing = Vec::new();
    let mut at = Some((head, head_seq));
    while let Some((cid, seq)) = at {
        if known(seq)?.is_some_and(|r| r.cid == cid) {
            break;
        }
        let c = match inner.store.get(&cid) {
            Ok(bytes) => Commit::decode(&bytes)?,
            // History below was never in this log (an import without it).
            Err(billet_block::BlockError::Missing(_)) => break,
            Err(e) => return Err(e.into()),
        };
        missing.push(CommitRow {
            seq: c.seq,
            cid,
            time_ms: c.time,
        });
        at = c.prev.map(|p| (p, c.seq.saturating_sub(1)));
        if missing.len() >= PAGE {
            block_on(
                inner
                    .index
                    .put_commits(bucket, std::mem::take(&mut missing)),
            )?;
        }
    }
    let n = missing.len() as u64;
    if !missing.is_empty() {
        block_on(inner.index.put_commits(bucket, missing))?;
    }
    Ok(n)
}

/// Works out what `bucket` keeps, calling `each` with every commit the
/// index records (so a caller can keep their blocks). Blocking.
pub(crate) fn retained(
    inner: &Inner,
    bucket: &str,
    default: Retention,
    now_ms: i64,
    each: &mut dyn FnMut(&CommitRow),
) -> Result<Option<RetainedHistory>, EngineError> {
    let Some(state) = block_on(inner.index.bucket(bucket))? else {
        return Ok(None);
    };
    fill_in(inner, bucket, state.head, state.seq)?;
    let own = block_on(inner.index.retention(bucket))?;
    let policy = effective(own, default);
    let cutoff = policy
        .keep_secs
        .map(|s| now_ms.saturating_sub(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    let by_count = policy
        .keep_commits
        .filter(|n| *n > 0)
        .map(|n| state.seq.saturating_sub(n - 1));
    let mut floor = state.seq;
    if let Some(f) = by_count {
        floor = floor.min(f);
    }
    let mut recorded = 0u64;
    let mut from = 0u64;
    loop {
        let page = block_on(inner.index.commits(bucket, from, PAGE))?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for row in &page {
            recorded += 1;
            each(row);
            if cutoff.is_some_and(|c| row.time_ms >= c) && row.seq < floor {
                floor = row.seq;
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    // A kept version-1 commit links its predecessor: keep all below it
    // (down to the first commit this node holds; an import may have
    // brought history that was never recorded).
    let floor_commit = if floor == state.seq {
        Some(state.head)
    } else {
        block_on(inner.index.commits(bucket, floor, 1))?
            .first()
            .filter(|r| r.seq == floor)
            .map(|r| r.cid)
    };
    if let Some(cid) = floor_commit
        && let Ok(bytes) = inner.store.get(&cid)
        && Commit::decode(&bytes)?.links_prev()
    {
        floor = 0;
    }
    Ok(Some(RetainedHistory {
        bucket: bucket.to_string(),
        head: state.head,
        head_seq: state.seq,
        floor,
        recorded,
        policy,
    }))
}

impl Engine {
    /// What `bucket` keeps readable now under its retention (or the
    /// node's `default`): `billet export --history` writes exactly that.
    pub async fn retained_history(
        &self,
        bucket: &str,
        default: Retention,
    ) -> Result<RetainedHistory, EngineError> {
        let inner = self.inner.clone();
        let name = bucket.to_string();
        let handle = tokio::runtime::Handle::current();
        super::on_thread("billet-retention", move || {
            let _rt = handle.enter();
            retained(&inner, &name, default, crate::now_ms(), &mut |_| {})
        })
        .await??
        .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_sets_what_it_sets_and_inherits_the_rest() {
        let default = Retention {
            keep_secs: Some(7 * 86400),
            keep_commits: None,
        };
        assert_eq!(effective(None, default), default);
        let own = Retention {
            keep_secs: None,
            keep_commits: Some(10),
        };
        assert_eq!(
            effective(Some(own), default),
            Retention {
                keep_secs: Some(7 * 86400),
                keep_commits: Some(10)
            }
        );
    }
}
