//! Opening the log: each plane's state rebuilt from its directory
//! (sealed segments from their sidecars, rebuilt when missing or short; the
//! open segment scanned and a torn tail cut), and segments read back.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::{Instant, SystemTime};

use billet_block::Cid;
use billet_car::{CarError, CarReader};

use crate::config::LogConfig;
use crate::error::LogError;
use crate::fs::{FileReader, LogFile, LogFs, write_durable};
use crate::locations::{BlockLocations, Location};
use crate::plane::{Sealed, Writer};
use crate::segment::{
    FileKind, PlaneKind, descriptor, parse_name, remote_name, segment_name, segment_start,
    sidecar_name,
};
use crate::segment_file::{NewSegment, create_segment, open_sync_files};
use crate::sidecar::{self, Entry};

/// What a scan of a segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Blocks that read back and verified, in file order (without the
    /// descriptor).
    pub entries: Vec<Entry>,
    /// End of the last good frame before the first problem (the whole file
    /// when there is none).
    pub good_len: u64,
    /// The first problem: byte offset and what it is.
    pub problem: Option<(u64, String)>,
    /// A block failed its hash but later frames verified: damage in the
    /// middle, not a torn tail.
    pub damage_before_good: bool,
    /// The header or descriptor is not this segment's.
    pub bad_start: bool,
}

pub(crate) fn scan(
    file: &dyn LogFile,
    len: u64,
    plane: PlaneKind,
    id: u64,
) -> Result<Scan, io::Error> {
    let mut scan = Scan::default();
    let reader = BufReader::with_capacity(1 << 20, FileReader::new(file, len));
    let mut car = match CarReader::new(reader) {
        Ok(c) => c,
        Err(CarError::Io { source, .. }) => return Err(source),
        Err(e) => {
            scan.problem = Some((e.offset(), e.to_string()));
            scan.bad_start = true;
            return Ok(scan);
        }
    };
    let want = descriptor(plane, id);
    if car.roots() != [*want.cid()] {
        scan.problem = Some((
            0,
            format!("header root is not the descriptor of {plane} segment {id}"),
        ));
        scan.bad_start = true;
        return Ok(scan);
    }
    match car.next_block() {
        Ok(Some(b)) if b.block == want => scan.good_len = car.offset(),
        Ok(_) | Err(_) => {
            scan.problem = Some((
                car.offset(),
                "the first frame is not the segment descriptor".into(),
            ));
            scan.bad_start = true;
            return Ok(scan);
        }
    }
    loop {
        let at = car.offset();
        match car.next_block() {
            Ok(None) => break,
            Ok(Some(b)) => {
                if scan.problem.is_some() {
                    scan.damage_before_good = true;
                } else {
                    scan.good_len = car.offset();
                }
                scan.entries.push(Entry {
                    cid: *b.block.cid(),
                    offset: b.data_offset,
                    len: b.block.len() as u32,
                });
            }
            Err(CarError::Io { source, .. }) => return Err(source),
            Err(e @ CarError::BadBlock { .. }) => {
                scan.problem.get_or_insert((at, e.to_string()));
            }
            Err(e) => {
                // Framing is lost: nothing after this can be read.
                scan.problem.get_or_insert((at, e.to_string()));
                break;
            }
        }
    }
    Ok(scan)
}

/// Streams the blocks of a segment that has already been recovered (so
/// every frame verifies), without its descriptor.
pub(crate) fn blocks(
    file: &dyn LogFile,
    len: u64,
    f: &mut dyn FnMut(billet_block::Block),
) -> Result<(), CarError> {
    blocks_in(
        BufReader::with_capacity(1 << 20, FileReader::new(file, len)),
        f,
    )
}

/// [`blocks`] over any reader of a whole segment.
pub(crate) fn blocks_in(
    reader: impl Read,
    f: &mut dyn FnMut(billet_block::Block),
) -> Result<(), CarError> {
    let mut car = CarReader::new(reader)?;
    let mut first = true;
    while let Some(b) = car.next_block()? {
        if !std::mem::take(&mut first) {
            f(b.block);
        }
    }
    Ok(())
}

fn locations(
    kind: PlaneKind,
    seg: u64,
    entries: &[Entry],
) -> impl Iterator<Item = (Cid, Location)> + '_ {
    entries.iter().map(move |e| {
        (
            e.cid,
            Location {
                plane: kind,
                segment: seg,
                offset: e.offset,
                len: e.len,
            },
        )
    })
}

/// One plane directory's segments by id (stray temp files removed, and
/// segments the collector had retired removed for good), as opening
/// finds them before anything is read.
pub(crate) fn list_plane(
    fs: &dyn LogFs,
    dir: &Path,
    config: &LogConfig,
) -> Result<Vec<(u64, Found)>, LogError> {
    let names = fs.list(dir).map_err(|e| LogError::io("listing", dir, e))?;
    let mut found: BTreeMap<u64, Found> = BTreeMap::new();
    for name in &names {
        if name.ends_with(".tmp") {
            // An interrupted durable write never became the file it named.
            if !config.read_only {
                let _ = fs.remove(&dir.join(name));
            }
            continue;
        }
        if let Some((id, kind)) = parse_name(name) {
            let f = found.entry(id).or_default();
            match kind {
                FileKind::Segment => f.segment = true,
                FileKind::Sidecar => f.sidecar = true,
                FileKind::Remote => f.remote = true,
                FileKind::Retiring => f.retiring = true,
                FileKind::Retired => f.retired = true,
            }
        }
    }
    let mut out = Vec::new();
    for (id, f) in found {
        if f.retired {
            // Its live blocks were copied and made durable before the
            // marker was: finish removing it.
            if !config.read_only {
                crate::collection::remove_segment_files(fs, dir, id)?;
                fs.sync_dir(dir)
                    .map_err(|e| LogError::io("syncing", dir, e))?;
                let _ = fs.remove(&dir.join(crate::segment::retiring_name(id)));
                let _ = fs.remove(&dir.join(crate::segment::retired_name(id)));
            }
            continue;
        }
        // A sidecar without its segment is stale, unless the cold tier
        // noted a remote copy: then the segment was evicted and is read
        // from there.
        if f.segment || (f.sidecar && f.remote) {
            out.push((id, f));
        } else if f.retiring && !config.read_only {
            let _ = fs.remove(&dir.join(crate::segment::retiring_name(id)));
        }
    }
    Ok(out)
}

/// What opening one plane needs at every step.
pub(crate) struct Opening<'a> {
    pub fs: &'a dyn LogFs,
    pub dir: &'a Path,
    pub kind: PlaneKind,
    pub config: &'a LogConfig,
    pub block_locations: &'a BlockLocations,
    /// Sealed segments a location run covers, with their block counts.
    pub covered: &'a HashMap<(PlaneKind, u64), u64>,
}

impl Opening<'_> {
    fn covered(&self, id: u64) -> Option<u64> {
        self.covered.get(&(self.kind, id)).copied()
    }
}

/// Rebuilds one plane's state from its listing: sealed segments from
/// their location runs when one covers them (`covered`: entries per
/// segment), else from their sidecars (rebuilt when missing or short),
/// evicted ones from their sidecars alone, the open segment by scanning
/// it and cutting a torn tail. Also returns the ids that have a
/// cold-tier note.
pub(crate) fn recover_plane(
    o: &Opening<'_>,
    ids: Vec<(u64, Found)>,
    repairs: &mut Vec<String>,
) -> Result<(Writer, Vec<u64>), LogError> {
    let (fs, dir, kind, config) = (o.fs, o.dir, o.kind, o.config);
    let noted: Vec<u64> = ids
        .iter()
        .filter(|(_, f)| f.remote)
        .map(|(id, _)| *id)
        .collect();
    let mut sealed = Vec::new();
    let Some(&(last, last_found)) = ids.last() else {
        if config.read_only {
            return Err(LogError::Layout {
                path: dir.to_path_buf(),
                reason: "no segments".into(),
            });
        }
        return Ok((
            fresh_writer(0, create_segment(fs, dir, kind, 0)?, sealed),
            noted,
        ));
    };
    for &(id, f) in &ids[..ids.len() - 1] {
        let local = if f.segment {
            match recover_sealed(o, id, f.sidecar, repairs) {
                Ok(s) => Some(s),
                // Evicted by a running server since the listing (read-only
                // opens run beside one).
                Err(LogError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound
                        && f.sidecar
                        && fs.open(&dir.join(remote_name(id)), false).is_ok() =>
                {
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        sealed.push(match local {
            Some(s) => s,
            None => recover_evicted(o, id, repairs)?,
        });
    }
    if !last_found.segment {
        sealed.push(recover_evicted(o, last, repairs)?);
        if config.read_only {
            return Err(LogError::Layout {
                path: dir.to_path_buf(),
                reason: "no open segment after the evicted ones".into(),
            });
        }
        return Ok((
            fresh_writer(last + 1, create_segment(fs, dir, kind, last + 1)?, sealed),
            noted,
        ));
    }
    let last_has_sidecar = last_found.sidecar;
    // Read-only: the last segment is read as if open, whatever its state.
    if last_has_sidecar && !config.read_only {
        let s = recover_sealed(o, last, true, repairs);
        // A sidecar that does not match means the segment was still open.
        if let Ok(s) = s {
            sealed.push(s);
            return Ok((
                fresh_writer(last + 1, create_segment(fs, dir, kind, last + 1)?, sealed),
                noted,
            ));
        }
    }
    let writer = recover_open(o, last, repairs, sealed)?;
    Ok((writer, noted))
}

/// Which files of one segment id a plane directory holds.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Found {
    pub segment: bool,
    pub sidecar: bool,
    pub remote: bool,
    pub retiring: bool,
    pub retired: bool,
}

/// An evicted segment: only its sidecar is local. Its blocks are located
/// from the sidecar (its checksum vouches for it) and read from the cold
/// tier.
fn recover_evicted(
    o: &Opening<'_>,
    id: u64,
    repairs: &mut Vec<String>,
) -> Result<Sealed, LogError> {
    let (fs, dir, kind, config) = (o.fs, o.dir, o.kind, o.config);
    if let Some(blocks) = o.covered(id) {
        // Its run has the locations: only the length is needed.
        let path = dir.join(sidecar_name(id));
        let len = read_head(fs, &path, 40)
            .map_err(|e| e.to_string())
            .and_then(|h| sidecar::segment_len(&h, kind, id))
            .map_err(|reason| LogError::DamagedSegment {
                path: path.clone(),
                offset: 0,
                reason: format!("the sidecar of an evicted segment is unreadable: {reason}"),
            })?;
        return Ok(Sealed {
            id,
            len,
            blocks,
            path: dir.join(segment_name(id)),
            evicted: true,
        });
    }
    let path = dir.join(sidecar_name(id));
    let decoded = read_file(fs, &path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| sidecar::decode_any_len(&bytes, kind, id, None));
    let (len, entries) = match decoded {
        Ok(d) => d,
        Err(reason) if config.repair => {
            repairs.push(format!(
                "{}: unreadable sidecar of an evicted segment ({reason}); its blocks are unreachable",
                path.display()
            ));
            (0, Vec::new())
        }
        Err(reason) => {
            return Err(LogError::DamagedSegment {
                path,
                offset: 0,
                reason: format!("the sidecar of an evicted segment is unreadable: {reason}"),
            });
        }
    };
    o.block_locations.load_sealed(kind, id, &entries)?;
    Ok(Sealed {
        id,
        len,
        blocks: entries.len() as u64,
        path: dir.join(segment_name(id)),
        evicted: true,
    })
}

/// The first `n` bytes of a file (fewer if it is shorter).
fn read_head(fs: &dyn LogFs, path: &Path, n: u64) -> io::Result<Vec<u8>> {
    let f = fs.open(path, false)?;
    let len = f.size()?.min(n);
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn read_file(fs: &dyn LogFs, path: &Path) -> io::Result<Vec<u8>> {
    let f = fs.open(path, false)?;
    let len = f.size()?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn fresh_writer(id: u64, seg: NewSegment, sealed: Vec<Sealed>) -> Writer {
    let NewSegment {
        file,
        sync_files,
        start_len,
    } = seg;
    Writer {
        seg_id: id,
        file,
        sync_files,
        len: start_len,
        start_len,
        base_lsn: 0,
        entries: Vec::new(),
        first_write: None,
        created: SystemTime::now(),
        sealed,
    }
}

fn recover_sealed(
    o: &Opening<'_>,
    id: u64,
    has_sidecar: bool,
    repairs: &mut Vec<String>,
) -> Result<Sealed, LogError> {
    let (fs, dir, kind, config) = (o.fs, o.dir, o.kind, o.config);
    let path = dir.join(segment_name(id));
    let file = fs
        .open(&path, false)
        .map_err(|e| LogError::io("opening", &path, e))?;
    let len = file.size().map_err(|e| LogError::io("reading", &path, e))?;
    let covered = o.covered(id);
    if let Some(blocks) = covered
        && has_sidecar
        && !config.verify_sealed_on_open
    {
        // Its run has the locations; the sidecar need not be read.
        return Ok(Sealed {
            id,
            len,
            blocks,
            path,
            evicted: false,
        });
    }
    let from_sidecar = if has_sidecar {
        read_sidecar(fs, dir, kind, id, len)
    } else {
        None
    };
    let entries = match (from_sidecar, config.verify_sealed_on_open) {
        (Some(entries), false) => entries,
        (sidecar, _) => {
            let s = scan(file.as_ref(), len, kind, id)
                .map_err(|e| LogError::io("reading", &path, e))?;
            if let Some((offset, reason)) = &s.problem {
                if !config.repair {
                    return Err(LogError::DamagedSegment {
                        path,
                        offset: *offset,
                        reason: reason.clone(),
                    });
                }
                repairs.push(format!(
                    "{}: damaged at byte {offset} ({reason}); kept the {} blocks that verify",
                    path.display(),
                    s.entries.len()
                ));
            }
            if sidecar.as_ref() != Some(&s.entries) && !config.read_only {
                let bytes = sidecar::encode(kind, id, len, &s.entries);
                write_durable(fs, dir, &sidecar_name(id), &bytes)
                    .map_err(|e| LogError::io("rebuilding sidecar for", &path, e))?;
            }
            s.entries
        }
    };
    if covered.is_none() {
        o.block_locations.load_sealed(kind, id, &entries)?;
    }
    Ok(Sealed {
        id,
        len,
        blocks: entries.len() as u64,
        path,
        evicted: false,
    })
}

fn read_sidecar(
    fs: &dyn LogFs,
    dir: &Path,
    kind: PlaneKind,
    id: u64,
    segment_len: u64,
) -> Option<Vec<Entry>> {
    let buf = read_file(fs, &dir.join(sidecar_name(id))).ok()?;
    sidecar::decode(&buf, kind, id, segment_len).ok()
}

fn recover_open(
    o: &Opening<'_>,
    id: u64,
    repairs: &mut Vec<String>,
    sealed: Vec<Sealed>,
) -> Result<Writer, LogError> {
    let (fs, dir, kind, config) = (o.fs, o.dir, o.kind, o.config);
    let path = dir.join(segment_name(id));
    let io = |op, e| LogError::io(op, &path, e);
    let file = fs
        .open(&path, !config.read_only)
        .map_err(|e| io("opening", e))?;
    let len = file.size().map_err(|e| io("reading", e))?;
    let (start, _) = segment_start(kind, id);
    let start_len = start.len() as u64;
    let s = scan(file.as_ref(), len, kind, id).map_err(|e| io("reading", e))?;
    if s.bad_start && config.read_only {
        // Nothing readable in it, and nothing may be changed.
        let seg = NewSegment {
            file,
            sync_files: Vec::new(),
            start_len,
        };
        return Ok(fresh_writer(id, seg, sealed));
    }
    if s.bad_start {
        if len <= start_len || config.repair {
            // Torn while being created (nothing was ever acknowledged in
            // it), or given up on under repair: start it afresh.
            if len > start_len {
                repairs.push(format!(
                    "{}: unreadable start; its blocks were dropped",
                    path.display()
                ));
            }
            file.set_len(0)
                .and_then(|()| file.write_all_at(&start, 0))
                .and_then(|()| file.sync_data())
                .map_err(|e| io("rewriting", e))?;
            let sync_files = open_sync_files(fs, &path).map_err(|e| io("opening", e))?;
            let seg = NewSegment {
                file,
                sync_files,
                start_len,
            };
            return Ok(fresh_writer(id, seg, sealed));
        }
        let (offset, reason) = s.problem.unwrap_or((0, "unreadable start".into()));
        return Err(LogError::DamagedSegment {
            path,
            offset,
            reason,
        });
    }
    let keep = if s.damage_before_good {
        let (offset, reason) = s.problem.clone().unwrap_or_default();
        if !config.repair && !config.read_only {
            return Err(LogError::DamagedSegment {
                path,
                offset,
                reason,
            });
        }
        repairs.push(format!(
            "{}: a block at byte {offset} is damaged ({reason}); dropped it, kept the rest",
            path.display()
        ));
        len
    } else {
        // Anything after the last good frame is a torn tail: bytes that
        // were never synced, hence never acknowledged.
        s.good_len
    };
    if !config.read_only {
        if keep < len {
            file.set_len(keep)
                .map_err(|e| io("cutting the torn tail of", e))?;
        }
        // What was recovered may still be only in the page cache.
        file.sync_data().map_err(|e| io("syncing", e))?;
    }
    o.block_locations
        .insert_hot(locations(kind, id, &s.entries));
    let sync_files = open_sync_files(fs, &path).map_err(|e| io("opening", e))?;
    Ok(Writer {
        seg_id: id,
        file,
        sync_files,
        len: keep,
        start_len,
        base_lsn: 0,
        first_write: (!s.entries.is_empty()).then(Instant::now),
        entries: s.entries,
        created: SystemTime::now(),
        sealed,
    })
}
