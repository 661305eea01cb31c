//! Where every block in the log is: digest → (plane, segment, offset, len).
//!
//! The whole map lives in memory and is rebuilt from sidecars and the open
//! segments when the log opens, so its entry size is the log's memory per
//! block. An entry is 28 bytes: the first 16 bytes of the sha2-256 digest
//! (a collision among even 10^12 blocks has probability about 10^-15, far
//! below undetected disk errors; and every read is still checked against
//! the full CID asked for, so a collision could only fail a read, never
//! return wrong bytes) and a location packed into three `u32`s. Locations
//! that do not fit (segment ids ≥ 2^31, offsets ≥ 4 GiB) go to a small
//! overflow map with full-width fields.

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

/// The digest prefix a block is known by.
pub(crate) type Key = [u8; 16];

pub(crate) fn key_of(cid: &Cid) -> Option<Key> {
    cid.hash().digest().get(..16)?.try_into().ok()
}

/// The catalog plane's marker bit in [`Packed::segment`].
const CATALOG_BIT: u32 = 1 << 31;

/// A [`Location`] in 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    segment: u32,
    offset: u32,
    len: u32,
}

impl Packed {
    fn pack(loc: Location) -> Option<Packed> {
        let segment = u32::try_from(loc.segment)
            .ok()
            .filter(|s| s & CATALOG_BIT == 0)?;
        let offset = u32::try_from(loc.offset).ok()?;
        let plane = match loc.plane {
            PlaneKind::Data => 0,
            PlaneKind::Catalog => CATALOG_BIT,
        };
        Some(Packed {
            segment: segment | plane,
            offset,
            len: loc.len,
        })
    }

    fn unpack(self) -> Location {
        Location {
            plane: if self.segment & CATALOG_BIT == 0 {
                PlaneKind::Data
            } else {
                PlaneKind::Catalog
            },
            segment: u64::from(self.segment & !CATALOG_BIT),
            offset: u64::from(self.offset),
            len: self.len,
        }
    }
}

#[derive(Debug, Default)]
struct Maps {
    packed: HashMap<Key, Packed, RandomState>,
    wide: HashMap<Key, Location, RandomState>,
}

impl Maps {
    fn get(&self, key: &Key) -> Option<Location> {
        match self.packed.get(key) {
            Some(p) => Some(p.unpack()),
            None => self.wide.get(key).copied(),
        }
    }

    fn insert(&mut self, key: Key, loc: Location) {
        match Packed::pack(loc) {
            Some(p) => {
                self.wide.remove(&key);
                self.packed.insert(key, p);
            }
            None => {
                self.packed.remove(&key);
                self.wide.insert(key, loc);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        self.packed.remove(key);
        self.wide.remove(key);
    }

    fn len(&self) -> usize {
        self.packed.len() + self.wide.len()
    }
}

#[derive(Debug, Default)]
pub(crate) struct BlockLocations {
    maps: RwLock<Maps>,
}

impl BlockLocations {
    pub fn get(&self, cid: &Cid) -> Option<Location> {
        let key = key_of(cid)?;
        self.read().get(&key)
    }

    pub fn insert_many(&self, items: impl IntoIterator<Item = (Cid, Location)>) {
        let mut maps = self.write();
        for (cid, loc) in items {
            if let Some(key) = key_of(&cid) {
                maps.insert(key, loc);
            }
        }
    }

    /// Forgets `cid` if it still points at `loc` (another copy elsewhere
    /// stays known).
    pub fn remove_if(&self, cid: &Cid, loc: Location) {
        if let Some(key) = key_of(cid) {
            let mut maps = self.write();
            if maps.get(&key) == Some(loc) {
                maps.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // Every mutation is a single insert or remove; a panic elsewhere
        // cannot leave the maps half-updated.
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use billet_block::{Codec, cid_of};

    fn cid(n: u32) -> Cid {
        cid_of(Codec::Raw, &n.to_le_bytes())
    }

    #[test]
    fn narrow_and_wide_locations_round_trip() {
        let ix = BlockLocations::default();
        let cases = [
            (PlaneKind::Data, 0, 0, 0),
            (PlaneKind::Catalog, 7, 123, 4096),
            (
                PlaneKind::Data,
                (1 << 31) - 1,
                u64::from(u32::MAX),
                u32::MAX,
            ),
            (PlaneKind::Catalog, 1 << 31, 5, 1),
            (PlaneKind::Data, 3, 1 << 32, 10),
            (PlaneKind::Catalog, u64::MAX, u64::MAX, 1),
        ];
        for (i, (plane, segment, offset, len)) in cases.into_iter().enumerate() {
            let loc = Location {
                plane,
                segment,
                offset,
                len,
            };
            ix.insert_many([(cid(i as u32), loc)]);
            assert_eq!(ix.get(&cid(i as u32)), Some(loc), "case {i}");
        }
        assert_eq!(ix.len(), cases.len());
        // Moving a block between the narrow and the wide map keeps one entry.
        let wide = Location {
            plane: PlaneKind::Data,
            segment: 1,
            offset: 1 << 40,
            len: 1,
        };
        ix.insert_many([(cid(0), wide)]);
        assert_eq!(ix.get(&cid(0)), Some(wide));
        assert_eq!(ix.len(), cases.len());
        ix.remove_if(&cid(0), wide);
        assert_eq!(ix.get(&cid(0)), None);
        assert_eq!(ix.len(), cases.len() - 1);
    }
}
