//! A [`Remote`] that misbehaves on request, for tests: 500s, a store that
//! is down and comes back, slow answers, short ranged reads and altered
//! bytes.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::RemoteError;
use crate::store::{Body, Listed, ObjectAttrs, Remote};

#[derive(Debug, Default, Clone)]
struct Faults {
    fail_next: u32,
    down: bool,
    delay: Option<Duration>,
    truncate_reads: bool,
    /// Objects whose key ends with `.0` read with the byte at `.1` flipped.
    altered: Vec<(String, u64)>,
}

/// Counts of what reached the store below.
#[derive(Debug, Default)]
pub struct Calls {
    pub puts: AtomicU64,
    pub gets: AtomicU64,
    pub ranged_gets: AtomicU64,
    pub deletes: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Debug)]
pub struct FaultyRemote {
    inner: Arc<dyn Remote>,
    faults: Mutex<Faults>,
    pub calls: Calls,
}

impl FaultyRemote {
    pub fn new(inner: Arc<dyn Remote>) -> FaultyRemote {
        FaultyRemote {
            inner,
            faults: Mutex::new(Faults::default()),
            calls: Calls::default(),
        }
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` requests fail with a retryable 500.
    pub fn fail_next(&self, n: u32) {
        self.faults().fail_next = n;
    }

    /// Every request fails until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.faults().down = down;
    }

    /// Every request first waits this long.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.faults().delay = delay;
    }

    /// Ranged reads return one byte less than asked.
    pub fn truncate_reads(&self, on: bool) {
        self.faults().truncate_reads = on;
    }

    /// Reads of the object whose key ends with `key_suffix` come back with
    /// the byte at `offset` flipped.
    pub fn alter(&self, key_suffix: &str, offset: u64) {
        self.faults().altered.push((key_suffix.to_string(), offset));
    }

    pub fn heal(&self) {
        *self.faults() = Faults::default();
    }

    /// Waits out a delay, then fails the request if a fault says so.
    async fn gate(&self, op: &'static str, key: &str) -> Result<(), RemoteError> {
        let delay = self.faults().delay;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut f = self.faults();
        let reason = if f.down {
            Some("connection refused (the store is down)")
        } else if f.fail_next > 0 {
            f.fail_next -= 1;
            Some("500 Internal Server Error")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.calls.failed.fetch_add(1, Ordering::Relaxed);
                Err(RemoteError::Failed {
                    op,
                    key: key.to_string(),
                    reason: reason.to_string(),
                    retryable: true,
                })
            }
            None => Ok(()),
        }
    }

    fn damage(&self, key: &str, start: u64, bytes: Bytes) -> Bytes {
        let f = self.faults().clone();
        let mut out = bytes.to_vec();
        for (suffix, at) in &f.altered {
            if key.ends_with(suffix.as_str()) && *at >= start && *at < start + out.len() as u64 {
                out[(*at - start) as usize] ^= 0x01;
            }
        }
        Bytes::from(out)
    }
}

#[async_trait]
impl Remote for FaultyRemote {
    async fn put(&self, key: &str, body: Body, attrs: ObjectAttrs) -> Result<(), RemoteError> {
        self.gate("uploading", key).await?;
        self.calls.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, body, attrs).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, RemoteError> {
        self.gate("reading", key).await?;
        self.calls.gets.fetch_add(1, Ordering::Relaxed);
        let b = self.inner.get(key).await?;
        Ok(self.damage(key, 0, b))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        self.gate("reading a range of", key).await?;
        self.calls.ranged_gets.fetch_add(1, Ordering::Relaxed);
        let start = range.start;
        let mut b = self.inner.get_range(key, range).await?;
        if self.faults().truncate_reads && !b.is_empty() {
            b.truncate(b.len() - 1);
        }
        Ok(self.damage(key, start, b))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, RemoteError> {
        self.gate("looking up", key).await?;
        self.inner.size(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        self.gate("deleting", key).await?;
        self.calls.deletes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError> {
        self.gate("listing", prefix).await?;
        self.inner.list(prefix).await
    }
}
