//! The remote-delete queue: objects made unreachable in an index
//! transaction were queued by it; each is deleted here, and a failure
//! waits out a growing, jittered delay and is tried again, until done.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ColdTier;
use crate::error::EngineError;
use crate::{Inner, now_ms};

/// Deletes tried per round at most.
const PER_ROUND: usize = 256;

/// The delay before the next try after `attempts` failed ones: doubling
/// from one second, capped at an hour, with jitter in its upper half.
pub(crate) fn retry_delay_ms(attempts: u32) -> i64 {
    let ceiling = 1000u64
        .saturating_mul(1u64 << attempts.min(12))
        .min(3_600_000);
    (ceiling / 2 + rand::random_range(0..=ceiling / 2)) as i64
}

pub(crate) async fn run(inner: &Arc<Inner>, tier: &Arc<ColdTier>) -> Result<u64, EngineError> {
    let due = inner.index.due_deletes(now_ms(), PER_ROUND).await?;
    let mut done = 0;
    for d in due {
        let attempt = tokio::time::timeout(
            tier.config.read_timeout,
            tier.remote().delete(&d.remote_key),
        )
        .await;
        let failure = match attempt {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {:?}", tier.config.read_timeout)),
        };
        match failure {
            None => {
                inner.index.finish_delete(d.id).await?;
                tier.stats.deletes.fetch_add(1, Ordering::Relaxed);
                done += 1;
            }
            Some(why) => {
                inner
                    .index
                    .retry_delete(d.id, now_ms() + retry_delay_ms(d.attempts), &why)
                    .await?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        for attempts in 0..40 {
            let d = retry_delay_ms(attempts);
            let ceiling = (1000i64 << attempts.min(12)).min(3_600_000);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempts}: {d}");
        }
    }
}
