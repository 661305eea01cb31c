//! Creating a segment file durably, and the extra handles group commit
//! syncs it through.

use std::path::Path;
use std::sync::Arc;

use crate::error::LogError;
use crate::fs::{LogFile, LogFs};
use crate::plane::SYNC_SLOTS;
use crate::segment::{PlaneKind, segment_name, segment_start};

/// Handles used only for fsync, one per slot.
pub(crate) fn open_sync_files(
    fs: &dyn LogFs,
    path: &Path,
) -> std::io::Result<Vec<Arc<dyn LogFile>>> {
    (0..SYNC_SLOTS).map(|_| fs.open(path, false)).collect()
}

/// A segment just created: its append handle, its sync handles, and the
/// length of its header and descriptor.
pub(crate) struct NewSegment {
    pub file: Arc<dyn LogFile>,
    pub sync_files: Vec<Arc<dyn LogFile>>,
    pub start_len: u64,
}

/// Creates segment `id` durably: header and descriptor written and synced,
/// directory entry synced.
pub(crate) fn create_segment(
    fs: &dyn LogFs,
    dir: &Path,
    kind: PlaneKind,
    id: u64,
) -> Result<NewSegment, LogError> {
    let path = dir.join(segment_name(id));
    let (start, _) = segment_start(kind, id);
    let file = fs
        .create(&path)
        .map_err(|e| LogError::io("creating", &path, e))?;
    file.write_all_at(&start, 0)
        .and_then(|()| file.sync_data())
        .and_then(|()| fs.sync_dir(dir))
        .map_err(|e| LogError::io("initialising", &path, e))?;
    let sync_files = open_sync_files(fs, &path).map_err(|e| LogError::io("opening", &path, e))?;
    Ok(NewSegment {
        file,
        sync_files,
        start_len: start.len() as u64,
    })
}
