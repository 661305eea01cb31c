//! Where every block in the log is: digest → (plane, segment, offset, len).
//!
//! Keyed by the sha2-256 digest alone: two CIDs with the same digest name
//! the same bytes, and every read is checked against the CID asked for.
//! The whole map lives in memory (about 80 bytes per block); it is rebuilt
//! from sidecars and the open segments when the log opens.

use std::collections::HashMap;
use std::sync::RwLock;

use billet_block::Cid;
use foldhash::fast::RandomState;

use crate::segment::PlaneKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub plane: PlaneKind,
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

pub(crate) type Key = [u8; 32];

pub(crate) fn key_of(cid: &Cid) -> Option<Key> {
    cid.hash().digest().try_into().ok()
}

#[derive(Debug, Default)]
pub(crate) struct BlockIndex {
    map: RwLock<HashMap<Key, Location, RandomState>>,
}

impl BlockIndex {
    pub fn get(&self, cid: &Cid) -> Option<Location> {
        let key = key_of(cid)?;
        self.read().get(&key).copied()
    }

    pub fn insert_many(&self, items: impl IntoIterator<Item = (Cid, Location)>) {
        let mut map = self.write();
        for (cid, loc) in items {
            if let Some(key) = key_of(&cid) {
                map.insert(key, loc);
            }
        }
    }

    /// Forgets `cid` if it still points at `loc` (another copy elsewhere
    /// stays known).
    pub fn remove_if(&self, cid: &Cid, loc: Location) {
        if let Some(key) = key_of(cid) {
            let mut map = self.write();
            if map.get(&key) == Some(&loc) {
                map.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Location, RandomState>> {
        // Every mutation is a single insert or remove; a panic elsewhere
        // cannot leave the map half-updated.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Location, RandomState>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}
