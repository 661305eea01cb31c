//! A bound on password guessing: failed Basic-auth attempts are counted
//! per client address over a fixed one-minute window, and an address over
//! its allowance is refused without its secret being checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; past it, expired windows are dropped, and if
/// that is not enough the whole table (an attacker with this many
/// addresses gets one fresh allowance each, no more than that).
const MAX_TRACKED: usize = 16_384;

#[derive(Debug)]
pub struct AuthLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthLimiter {
    pub fn new(per_minute: u32) -> Self {
        AuthLimiter {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(retry_after)` when `ip` has used up its failures.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table();
        let (start, n) = table.get(&ip)?;
        let elapsed = now.duration_since(*start);
        (elapsed < WINDOW && *n >= self.per_minute).then(|| WINDOW - elapsed)
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut table = self.table();
        if table.len() >= MAX_TRACKED && !table.contains_key(&ip) {
            table.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if table.len() >= MAX_TRACKED {
                table.clear();
            }
        }
        let entry = table.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_for_the_rest_of_its_window() {
        let l = AuthLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.blocked(a, t0), None, "after {i} failures");
            l.failed(a, t0 + Duration::from_secs(i));
        }
        assert_eq!(
            l.blocked(a, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        // Other addresses are not affected; the window ends.
        assert_eq!(l.blocked(b, t0), None);
        assert_eq!(l.blocked(a, t0 + WINDOW), None);
        l.failed(a, t0 + WINDOW);
        assert_eq!(l.blocked(a, t0 + WINDOW), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = AuthLimiter::new(1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            l.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.table().len() <= MAX_TRACKED);
    }
}
