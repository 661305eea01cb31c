//! Open bucket databases, at most `cap` at a time, least recently used
//! closed first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use super::schema;
use crate::error::IndexError;

/// One bucket's database connection. SQLite serializes writers per file
/// anyway; one connection per bucket keeps its statement cache warm.
#[derive(Debug)]
pub(super) struct BucketDb {
    conn: Mutex<Connection>,
}

impl BucketDb {
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls the transaction back when the
        // Transaction value is dropped; the connection stays usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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

    pub fn open_count(&self) -> usize {
        self.state().open.len()
    }
}
