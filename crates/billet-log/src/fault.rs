//! A [`LogFs`] that fails on purpose: the N-th write or fsync (counted from
//! when the fault is armed) returns an I/O error, as a full disk or a dying
//! one would. Used by the fault-injection tests; harmless elsewhere.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::fs::{LogFile, LogFs, StdFs};

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    syncs: AtomicU64,
    /// Fail the write whose number (1-based, since arming) equals this; <= 0: off.
    fail_write: AtomicI64,
    fail_sync: AtomicI64,
    /// Keep failing every later call too (a disk that stays broken).
    sticky: std::sync::atomic::AtomicBool,
}

/// Wraps the real file system and injects failures.
#[derive(Debug, Clone, Default)]
pub struct FaultyFs {
    inner: StdFs,
    counters: Arc<Counters>,
}

impl FaultyFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the `n`-th write from now (1 = the next one) with ENOSPC.
    pub fn fail_nth_write(&self, n: u64) {
        self.counters.writes.store(0, Ordering::SeqCst);
        self.counters.fail_write.store(n as i64, Ordering::SeqCst);
    }

    /// Fail the `n`-th fsync from now (1 = the next one) with EIO.
    pub fn fail_nth_sync(&self, n: u64) {
        self.counters.syncs.store(0, Ordering::SeqCst);
        self.counters.fail_sync.store(n as i64, Ordering::SeqCst);
    }

    /// Once a fault fires, every later write and fsync fails as well.
    pub fn set_sticky(&self, sticky: bool) {
        self.counters.sticky.store(sticky, Ordering::SeqCst);
    }

    /// Stop injecting.
    pub fn heal(&self) {
        self.counters.fail_write.store(0, Ordering::SeqCst);
        self.counters.fail_sync.store(0, Ordering::SeqCst);
        self.counters.sticky.store(false, Ordering::SeqCst);
    }

    /// fsyncs performed (successful or not) since the last arming.
    pub fn syncs(&self) -> u64 {
        self.counters.syncs.load(Ordering::SeqCst)
    }
}

fn trip(count: &AtomicU64, fail_at: &AtomicI64, sticky: bool) -> bool {
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let at = fail_at.load(Ordering::SeqCst);
    at > 0 && (n as i64 == at || (sticky && n as i64 > at))
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn LogFile>,
    counters: Arc<Counters>,
}

impl LogFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let c = &self.counters;
        if trip(&c.writes, &c.fail_write, c.sticky.load(Ordering::SeqCst)) {
            // A short write first, as a filling disk would leave behind.
            let half = buf.len() / 2;
            self.inner.write_all_at(&buf[..half], offset)?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let c = &self.counters;
        if trip(&c.syncs, &c.fail_sync, c.sticky.load(Ordering::SeqCst)) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl LogFs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        Ok(Arc::new(FaultyFile {
            inner: self.inner.create(path)?,
            counters: self.counters.clone(),
        }))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn LogFile>> {
        Ok(Arc::new(FaultyFile {
            inner: self.inner.open(path, writable)?,
            counters: self.counters.clone(),
        }))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
}
