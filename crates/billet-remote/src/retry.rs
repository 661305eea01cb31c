//! Capped exponential backoff with full jitter: the n-th wait is uniform
//! in `[0, min(cap, base · 2ⁿ)]`, so many clients retrying after one
//! outage spread out instead of arriving together
//! (<https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>).

use std::future::Future;
use std::time::Duration;

use crate::error::RemoteError;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The ceiling of the next wait, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next wait, and one step further up.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(0..=nanos))
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Runs `op` up to `attempts` times while it fails with a retryable
/// error, waiting per `backoff` in between.
pub async fn retrying<T, F, Fut>(
    attempts: u32,
    mut backoff: Backoff,
    mut op: F,
) -> Result<T, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RemoteError>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        match op().await {
            Err(e) if e.is_retryable() && tried < attempts.max(1) => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_stay_under_it() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(500));
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c, "{d:?} above {c:?}");
            ceilings.push(c.as_millis());
        }
        assert_eq!(&ceilings[..7], &[10, 20, 40, 80, 160, 320, 500]);
        assert!(ceilings[7..].iter().all(|c| *c == 500));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(10));
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let waits: std::collections::HashSet<u128> =
            (0..20).map(|_| b.next_delay().as_nanos()).collect();
        assert!(waits.len() > 15, "waits repeat: {waits:?}");
    }

    #[tokio::test]
    async fn retries_only_what_may_succeed() {
        let fail = |retryable| RemoteError::Failed {
            op: "reading",
            key: "k".into(),
            reason: "503".into(),
            retryable,
        };
        let quick = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let mut calls = 0;
        let r: Result<(), _> = retrying(4, quick.clone(), || {
            calls += 1;
            std::future::ready(Err(fail(true)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 4);
        let mut calls = 0;
        let r: Result<(), _> = retrying(4, quick.clone(), || {
            calls += 1;
            std::future::ready(Err(fail(false)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r = retrying(4, quick, || {
            calls += 1;
            std::future::ready(if calls < 3 { Err(fail(true)) } else { Ok(7) })
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls, 3);
    }
}
