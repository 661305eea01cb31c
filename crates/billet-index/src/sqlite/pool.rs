//! Open bucket databases, at most `cap` at a time, least recently used
//! closed first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use super::schema;
use crate::error::IndexError;

/// One bucket's database connection. SQLite serializes writers per file
/// anyway; one connection per bucket keeps its statement cache warm.
#[derive(Debug)]
pub(super) struct BucketDb {
    conn: Mutex<Connection>,
    /// Used since the last durable flush (reads count too: cheaper to
    /// flush an unchanged file than to miss a write).
    dirty: AtomicBool,
}

impl BucketDb {
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.dirty.store(true, Ordering::Release);
        // A panic mid-transaction rolls the transaction back when the
        // Transaction value is dropped; the connection stays usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every committed transaction of this file durable: with
    /// `synchronous=FULL`, a checkpoint fsyncs the WAL before copying it
    /// and the database after.
    pub fn flush(&self) -> Result<(), IndexError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| {
            conn.pragma_update(None, "synchronous", "FULL")?;
            // (busy, frames in the WAL, frames copied): a reader elsewhere
            // may keep some frames in the WAL, which was synced first.
            conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
            Ok(())
        })();
        let reset = conn.pragma_update(None, "synchronous", "OFF");
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result.and(reset.map_err(IndexError::from))
    }
}

impl Drop for BucketDb {
    fn drop(&mut self) {
        // Closing checkpoints the WAL into the file; with FULL that
        // checkpoint is fsynced, so an evicted bucket needs no later flush.
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = conn.pragma_update(None, "synchronous", "FULL");
    }
}

#[derive(Debug)]
pub(super) struct Pool {
    cap: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    open: HashMap<String, (Arc<BucketDb>, u64)>,
    clock: u64,
}

impl Pool {
    pub fn new(cap: usize) -> Self {
        Pool {
            cap: cap.max(1),
            state: Mutex::new(PoolState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle for `name`, opening `path` when it is not open.
    pub fn get(&self, name: &str, path: &PathBuf) -> Result<Arc<BucketDb>, IndexError> {
        {
            let mut st = self.state();
            st.clock += 1;
            let clock = st.clock;
            if let Some((db, used)) = st.open.get_mut(name) {
                *used = clock;
                return Ok(db.clone());
            }
        }
        let conn = Connection::open(path)?;
        schema::configure(&conn)?;
        let db = Arc::new(BucketDb {
            conn: Mutex::new(conn),
            dirty: AtomicBool::new(false),
        });
        let mut st = self.state();
        st.clock += 1;
        let clock = st.clock;
        if let Some((existing, used)) = st.open.get_mut(name) {
            // Opened concurrently: keep the first.
            *used = clock;
            return Ok(existing.clone());
        }
        while st.open.len() >= self.cap {
            let Some(oldest) = st
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            // Users holding the Arc finish first; the file closes after.
            st.open.remove(&oldest);
        }
        st.open.insert(name.to_string(), (db.clone(), clock));
        Ok(db)
    }

    pub fn forget(&self, name: &str) {
        self.state().open.remove(name);
    }

    /// Every open bucket database.
    pub fn all(&self) -> Vec<Arc<BucketDb>> {
        self.state()
            .open
            .values()
            .map(|(db, _)| db.clone())
            .collect()
    }

    pub fn open_count(&self) -> usize {
        self.state().open.len()
    }
}
