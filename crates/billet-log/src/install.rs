//! Laying out a log directory for a node rebuilt from its remote copy:
//! each shipped segment installed as evicted (its sidecar and the cold
//! tier's note, no segment file), and the open segment started above every
//! id the remote has seen, so no new segment reuses a remote name.

use std::path::Path;

use crate::error::LogError;
use crate::fs::{LogFs, StdFs, write_durable};
use crate::segment::{PlaneKind, remote_name, sidecar_name};
use crate::segment_file::create_segment;

/// Installs segment `id` of `plane` under `root` as evicted. The sidecar
/// must be that segment's.
pub fn install_evicted(
    root: &Path,
    plane: PlaneKind,
    id: u64,
    sidecar: &[u8],
    note: &[u8],
) -> Result<(), LogError> {
    let dir = root.join(plane.name());
    crate::sidecar::decode_any_len(sidecar, plane, id, None).map_err(|reason| {
        LogError::DamagedSegment {
            path: dir.join(sidecar_name(id)),
            offset: 0,
            reason,
        }
    })?;
    StdFs
        .create_dir_all(&dir)
        .map_err(|e| LogError::io("creating", &dir, e))?;
    write_durable(&StdFs, &dir, &sidecar_name(id), sidecar)
        .map_err(|e| LogError::io("writing", dir.join(sidecar_name(id)), e))?;
    write_durable(&StdFs, &dir, &remote_name(id), note)
        .map_err(|e| LogError::io("writing", dir.join(remote_name(id)), e))
}

/// Starts `plane`'s open segment at `id` under `root`.
pub fn start_segment(root: &Path, plane: PlaneKind, id: u64) -> Result<(), LogError> {
    let dir = root.join(plane.name());
    StdFs
        .create_dir_all(&dir)
        .map_err(|e| LogError::io("creating", &dir, e))?;
    create_segment(&StdFs, &dir, plane, id).map(|_| ())
}
