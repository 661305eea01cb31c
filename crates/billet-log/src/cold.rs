//! The log's side of the cold tier: notes of remote copies kept beside
//! sealed segments, eviction of a segment's local file, and reads and
//! read-ahead of evicted segments through the attached [`ColdStore`].

use std::path::Path;
use std::sync::Arc;

use billet_block::Cid;
use bytes::Bytes;

use crate::error::LogError;
use crate::fs::write_durable;
use crate::log::Log;
use crate::residency::ColdStore;
use crate::segment::{PlaneKind, remote_name, segment_name, sidecar_name};

impl Log {
    /// Where reads of evicted segments go from now on. Only the first call
    /// counts.
    pub fn attach_cold(&self, cold: Arc<dyn ColdStore>) {
        let _ = self.cold.set(cold);
    }

    pub(crate) fn read_cold(
        &self,
        plane: PlaneKind,
        seg: u64,
        offset: u64,
        len: u64,
    ) -> std::io::Result<Bytes> {
        let cold = self.cold.get().ok_or_else(|| {
            std::io::Error::other(format!(
                "{plane} segment {seg} is evicted and no remote store is configured"
            ))
        })?;
        let bytes = cold.read(plane, seg, offset, len)?;
        if bytes.len() as u64 != len {
            return Err(std::io::Error::other(format!(
                "the remote returned {} bytes of {plane} segment {seg} at {offset}, not {len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// A sealed segment's sidecar bytes and the end offset of each of its
    /// blocks, in file order (the cold tier cuts frames there).
    pub fn sidecar(&self, plane: PlaneKind, id: u64) -> Result<(Vec<u8>, Vec<u64>), LogError> {
        let (bytes, entries) = self.read_sidecar(plane, id)?;
        let ends = entries
            .iter()
            .map(|e| e.offset + u64::from(e.len))
            .collect();
        Ok((bytes, ends))
    }

    /// The blocks of a sealed segment, from its sidecar, in file order:
    /// `(cid, offset, length)`.
    pub fn segment_blocks(
        &self,
        plane: PlaneKind,
        id: u64,
    ) -> Result<Vec<(Cid, u64, u32)>, LogError> {
        let (_, entries) = self.read_sidecar(plane, id)?;
        Ok(entries
            .into_iter()
            .map(|e| (e.cid, e.offset, e.len))
            .collect())
    }

    /// A sealed segment's sidecar, its bytes and its entries.
    fn read_sidecar(
        &self,
        plane: PlaneKind,
        id: u64,
    ) -> Result<(Vec<u8>, Vec<crate::sidecar::Entry>), LogError> {
        let path = self.plane_dir(plane).join(sidecar_name(id));
        let bytes = std::fs::read(&path).map_err(|e| LogError::io("reading", &path, e))?;
        let (_, entries) =
            crate::sidecar::decode_any_len(&bytes, plane, id, None).map_err(|reason| {
                LogError::DamagedSegment {
                    path: path.clone(),
                    offset: 0,
                    reason,
                }
            })?;
        Ok((bytes, entries))
    }

    fn sealed_resident(
        &self,
        plane: PlaneKind,
        id: u64,
    ) -> Result<Arc<crate::residency::Resident>, LogError> {
        self.residency
            .get(plane, id)
            .ok_or_else(|| LogError::Layout {
                path: self.plane_dir(plane).join(segment_name(id)),
                reason: "not a sealed segment".into(),
            })
    }

    /// Durably records the cold tier's note of a sealed segment's remote
    /// copy (opaque bytes), kept beside the segment as `{id}.remote`.
    pub fn note_remote(&self, plane: PlaneKind, id: u64, note: &[u8]) -> Result<(), LogError> {
        let r = self.sealed_resident(plane, id)?;
        let dir = self.plane_dir(plane);
        write_durable(self.files.fs.as_ref(), &dir, &remote_name(id), note)
            .map_err(|e| LogError::io("writing", dir.join(remote_name(id)), e))?;
        r.set_noted();
        Ok(())
    }

    /// The cold tier's note of a segment's remote copy, if any.
    pub fn remote_note(&self, plane: PlaneKind, id: u64) -> Result<Option<Vec<u8>>, LogError> {
        read_remote_note(&self.root, plane, id)
    }

    /// Removes a sealed segment's local file; its blocks are read through
    /// the cold store from now on. The segment must carry a remote note.
    /// Returns the bytes freed (0 if it was evicted already).
    pub fn evict(&self, plane: PlaneKind, id: u64) -> Result<u64, LogError> {
        let r = self.sealed_resident(plane, id)?;
        let path = self.plane_dir(plane).join(segment_name(id));
        if r.is_evicted() {
            return Ok(0);
        }
        if !r.is_noted() {
            return Err(LogError::Layout {
                path,
                reason: "refusing to evict a segment with no remote copy noted".into(),
            });
        }
        let p = self.plane(plane);
        let len = {
            let mut w = p.writer();
            let Some(s) = w.sealed.iter_mut().find(|s| s.id == id) else {
                return Err(LogError::Layout {
                    path,
                    reason: "not a sealed segment".into(),
                });
            };
            s.evicted = true;
            s.len
        };
        // Readers that already hold the file keep reading it (the inode
        // lives until they let go); new reads see the flag first.
        r.set_evicted();
        self.files.forget(plane, id);
        let fs = self.files.fs.as_ref();
        match fs.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("removing", &path, e)),
        }
        fs.sync_dir(&self.plane_dir(plane))
            .map_err(|e| LogError::io("syncing", self.plane_dir(plane), e))?;
        Ok(len)
    }

    /// Whether a block's bytes are on local disk (or in the open segment).
    pub fn is_local(&self, cid: &Cid) -> bool {
        self.block_locations
            .get(cid)
            .ok()
            .flatten()
            .is_some_and(|loc| {
                self.residency
                    .get(loc.plane, loc.segment)
                    .is_none_or(|r| !r.is_evicted())
            })
    }

    /// Hands the cold store the locations of those blocks that sit in
    /// evicted segments; local ones need nothing.
    pub(crate) fn prefetch_evicted(&self, cids: &[Cid]) {
        let Some(cold) = self.cold.get() else { return };
        let ranges: Vec<(PlaneKind, u64, u64, u64)> = cids
            .iter()
            .filter_map(|cid| self.block_locations.get(cid).ok().flatten())
            .filter(|loc| {
                self.residency
                    .get(loc.plane, loc.segment)
                    .is_some_and(|r| r.is_evicted())
            })
            .map(|loc| (loc.plane, loc.segment, loc.offset, u64::from(loc.len)))
            .collect();
        if !ranges.is_empty() {
            cold.prefetch(&ranges);
        }
    }
}

/// Checks that `bytes` is the sidecar of segment `id` of `plane` and
/// returns the segment length it records and each block's end offset.
pub fn sidecar_block_ends(
    bytes: &[u8],
    plane: PlaneKind,
    id: u64,
) -> Result<(u64, Vec<u64>), String> {
    let (len, entries) = crate::sidecar::decode_any_len(bytes, plane, id, None)?;
    Ok((
        len,
        entries
            .iter()
            .map(|e| e.offset + u64::from(e.len))
            .collect(),
    ))
}

/// The cold tier's note of a segment's remote copy in the log at `root`,
/// if any (for readers that hold no [`Log`]).
pub fn read_remote_note(
    root: &Path,
    plane: PlaneKind,
    id: u64,
) -> Result<Option<Vec<u8>>, LogError> {
    let path = root.join(plane.name()).join(remote_name(id));
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("reading", &path, e)),
    }
}
