//! A location run: the locations of the blocks of some sealed segments,
//! sorted by digest key, in one immutable file (`locations/{id:020}.run`).
//!
//! ```text
//! 0        8   magic "BLTLOCR1"
//! 8        8   run id (u64 LE)
//! 16       8   covered segment count C
//! 24       16C per covered segment: segment (u64, bit 63 = catalog) ‖ entries from it (u64)
//! 24+16C   36N entries, keys strictly increasing: key (16) ‖ segment (u64, bit 63 = catalog)
//!              ‖ offset (u64) ‖ length (u32)
//! …        F   Bloom filter of the keys (`DigestFilter::to_bytes`)
//! end-48   8   entry count N
//! end-40   8   filter length F
//! end-32   32  SHA-256 of every byte before it
//! ```
//!
//! In memory a run keeps its filter and every `SPARSE`-th key, so a lookup
//! is one filter probe and, when the filter says "perhaps", one read of at
//! most `SPARSE` entries.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use billet_block::{DigestFilter, DigestKey};
use sha2::{Digest, Sha256};

use super::Location;
use crate::fs::{FileReader, LogFile, LogFs, write_durable_with};
use crate::segment::PlaneKind;

const MAGIC: &[u8; 8] = b"BLTLOCR1";
pub(crate) const ENTRY: usize = 36;
const FOOTER: u64 = 48;
/// Keys kept in memory: one per this many entries.
const SPARSE: u64 = 64;
/// Bits of filter per key (about 1 % false positives).
pub(crate) const FILTER_BITS: u64 = 10;
/// No run's filter grows beyond this; a larger run has more false
/// positives instead.
const FILTER_MAX_BYTES: u64 = 64 << 20;

const CATALOG_BIT: u64 = 1 << 63;

pub(crate) fn run_name(id: u64) -> String {
    format!("{id:020}.run")
}

/// `Some(id)` for a run file's name.
pub(crate) fn parse_run_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".run")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

pub(crate) fn pack_segment(plane: PlaneKind, seg: u64) -> u64 {
    match plane {
        PlaneKind::Data => seg & !CATALOG_BIT,
        PlaneKind::Catalog => seg | CATALOG_BIT,
    }
}

pub(crate) fn unpack_segment(v: u64) -> (PlaneKind, u64) {
    if v & CATALOG_BIT == 0 {
        (PlaneKind::Data, v)
    } else {
        (PlaneKind::Catalog, v & !CATALOG_BIT)
    }
}

pub(crate) fn encode_entry(key: &DigestKey, loc: &Location) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..16].copy_from_slice(key);
    e[16..24].copy_from_slice(&pack_segment(loc.plane, loc.segment).to_le_bytes());
    e[24..32].copy_from_slice(&loc.offset.to_le_bytes());
    e[32..36].copy_from_slice(&loc.len.to_le_bytes());
    e
}

pub(crate) fn decode_entry(e: &[u8]) -> (DigestKey, Location) {
    let mut key = [0u8; 16];
    key.copy_from_slice(&e[..16]);
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&e[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let (plane, segment) = unpack_segment(u64_at(16));
    let mut l = [0u8; 4];
    l.copy_from_slice(&e[32..36]);
    (
        key,
        Location {
            plane,
            segment,
            offset: u64_at(24),
            len: u32::from_le_bytes(l),
        },
    )
}

/// One open run.
pub(crate) struct Run {
    pub id: u64,
    pub path: PathBuf,
    file: Arc<dyn LogFile>,
    /// Byte offset of the first entry.
    entries_at: u64,
    pub count: u64,
    filter: DigestFilter,
    sparse: Vec<DigestKey>,
    /// The segments whose blocks it lists, with how many each.
    pub covers: Vec<((PlaneKind, u64), u64)>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.id)
            .field("count", &self.count)
            .finish()
    }
}

/// Writes a run from entries already sorted by key with no key twice, and
/// returns it open: its filter and sparse keys are kept while it is
/// written, not read back. `size_hint` sizes the filter (an upper bound
/// of the entry count).
pub(crate) fn write_run(
    fs: &dyn LogFs,
    dir: &Path,
    id: u64,
    covers: &[((PlaneKind, u64), u64)],
    size_hint: u64,
    entries: &mut dyn Iterator<Item = io::Result<(DigestKey, Location)>>,
) -> io::Result<Run> {
    let mut filter = DigestFilter::new(size_hint, FILTER_BITS, FILTER_MAX_BYTES, 0);
    let mut sparse = Vec::new();
    let mut count = 0u64;
    write_durable_with(fs, dir, &run_name(id), &mut |out| {
        let mut out = Hashing {
            inner: out,
            hash: Sha256::new(),
        };
        out.write_all(MAGIC)?;
        out.write_all(&id.to_le_bytes())?;
        out.write_all(&(covers.len() as u64).to_le_bytes())?;
        for ((plane, seg), n) in covers {
            out.write_all(&pack_segment(*plane, *seg).to_le_bytes())?;
            out.write_all(&n.to_le_bytes())?;
        }
        let mut last: Option<DigestKey> = None;
        for item in &mut *entries {
            let (key, loc) = item?;
            if last.is_some_and(|l| l >= key) {
                return Err(io::Error::other("run entries out of order"));
            }
            last = Some(key);
            filter.insert(&key);
            if count.is_multiple_of(SPARSE) {
                sparse.push(key);
            }
            out.write_all(&encode_entry(&key, &loc))?;
            count += 1;
        }
        let fbytes = filter.to_bytes();
        out.write_all(&fbytes)?;
        out.write_all(&count.to_le_bytes())?;
        out.write_all(&(fbytes.len() as u64).to_le_bytes())?;
        let sum = out.hash.finalize();
        out.inner.write_all(&sum)
    })?;
    let path = dir.join(run_name(id));
    Ok(Run {
        id,
        file: fs.open(&path, false)?,
        path,
        entries_at: 24 + 16 * covers.len() as u64,
        count,
        filter,
        sparse,
        covers: covers.to_vec(),
    })
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn bad(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("location run {}: {why}", path.display()),
    )
}

impl Run {
    /// Opens a run, reading it once whole to check its checksum and keep
    /// its filter and sparse keys.
    pub fn open(fs: &dyn LogFs, path: &Path) -> io::Result<Run> {
        let file = fs.open(path, false)?;
        let len = file.size()?;
        if len < 24 + FOOTER {
            return Err(bad(path, format!("{len} bytes is too short")));
        }
        let mut footer = [0u8; FOOTER as usize];
        file.read_exact_at(&mut footer, len - FOOTER)?;
        let u64_of = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            u64::from_le_bytes(a)
        };
        let count = u64_of(&footer[..8]);
        let flen = u64_of(&footer[8..16]);
        let mut r = BufReader::with_capacity(1 << 20, FileReader::new(file.as_ref(), len - 32));
        let mut hash = Sha256::new();
        let mut read = |buf: &mut [u8]| -> io::Result<()> {
            r.read_exact(buf)?;
            hash.update(&*buf);
            Ok(())
        };
        let mut head = [0u8; 24];
        read(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(bad(path, "bad magic"));
        }
        let id = u64_of(&head[8..16]);
        let ncovers = u64_of(&head[16..24]);
        let body = ncovers
            .checked_mul(16)
            .and_then(|c| count.checked_mul(ENTRY as u64)?.checked_add(c))
            .and_then(|b| b.checked_add(flen)?.checked_add(24 + FOOTER));
        if body != Some(len) {
            return Err(bad(path, "its counts do not add up to its length"));
        }
        let mut covers = Vec::with_capacity(ncovers as usize);
        for _ in 0..ncovers {
            let mut c = [0u8; 16];
            read(&mut c)?;
            covers.push((unpack_segment(u64_of(&c[..8])), u64_of(&c[8..])));
        }
        let entries_at = 24 + 16 * ncovers;
        let mut sparse = Vec::with_capacity((count / SPARSE + 1) as usize);
        let mut e = [0u8; ENTRY];
        let mut last: Option<DigestKey> = None;
        for i in 0..count {
            read(&mut e)?;
            let (key, _) = decode_entry(&e);
            if last.is_some_and(|l| l >= key) {
                return Err(bad(path, format!("entry {i} is out of order")));
            }
            last = Some(key);
            if i % SPARSE == 0 {
                sparse.push(key);
            }
        }
        let mut fbytes = vec![0u8; flen as usize];
        read(&mut fbytes)?;
        let filter = DigestFilter::from_bytes(&fbytes).ok_or_else(|| bad(path, "bad filter"))?;
        let mut tail = [0u8; 16];
        read(&mut tail)?;
        if hash.finalize().as_slice() != &footer[16..] {
            return Err(bad(path, "checksum mismatch"));
        }
        Ok(Run {
            id,
            path: path.to_path_buf(),
            file,
            entries_at,
            count,
            filter,
            sparse,
            covers,
        })
    }

    /// Where this run says `key`'s block is.
    pub fn get(&self, key: &DigestKey) -> io::Result<Option<Location>> {
        if self.count == 0 || !self.filter.contains(key) {
            return Ok(None);
        }
        // The last stretch whose first key is at most `key`.
        let stretch = match self.sparse.binary_search(key) {
            Ok(i) => i,
            Err(0) => return Ok(None),
            Err(i) => i - 1,
        } as u64;
        let first = stretch * SPARSE;
        let n = SPARSE.min(self.count - first) as usize;
        let mut buf = vec![0u8; n * ENTRY];
        self.file
            .read_exact_at(&mut buf, self.entries_at + first * ENTRY as u64)?;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = &buf[mid * ENTRY..(mid + 1) * ENTRY];
            match e[..16].cmp(&key[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(decode_entry(e).1)),
            }
        }
        Ok(None)
    }

    /// Every entry in key order, read sequentially (for merging).
    pub fn iter(&self) -> impl Iterator<Item = io::Result<(DigestKey, Location)>> + '_ {
        let end = self.entries_at + self.count * ENTRY as u64;
        let mut r = BufReader::with_capacity(1 << 20, FileReader::new(self.file.as_ref(), end));
        let mut skip = vec![0u8; self.entries_at as usize];
        let mut started = false;
        let mut left = self.count;
        std::iter::from_fn(move || {
            if !started {
                started = true;
                if let Err(e) = r.read_exact(&mut skip) {
                    left = 0;
                    return Some(Err(e));
                }
            }
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut e = [0u8; ENTRY];
            Some(r.read_exact(&mut e).map(|()| decode_entry(&e)))
        })
    }

    /// Memory the run keeps (filter and sparse keys).
    pub fn memory(&self) -> u64 {
        self.filter.bytes() + self.sparse.len() as u64 * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    fn key(n: u32) -> DigestKey {
        billet_block::digest_key(&billet_block::cid_of(
            billet_block::Codec::Raw,
            &n.to_le_bytes(),
        ))
        .unwrap()
    }

    #[test]
    fn a_run_finds_what_it_holds_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries: Vec<(DigestKey, Location)> = (0..1000u32)
            .map(|n| {
                (
                    key(n),
                    Location {
                        plane: if n % 2 == 0 {
                            PlaneKind::Data
                        } else {
                            PlaneKind::Catalog
                        },
                        segment: u64::from(n % 7),
                        offset: u64::from(n) * 100,
                        len: n,
                    },
                )
            })
            .collect();
        entries.sort_by_key(|a| a.0);
        let covers = vec![((PlaneKind::Data, 3), 500), ((PlaneKind::Catalog, 4), 500)];
        let written = write_run(
            &StdFs,
            dir.path(),
            9,
            &covers,
            1000,
            &mut entries.iter().map(|e| Ok(*e)),
        )
        .unwrap();
        assert_eq!(written.count, 1000);
        let run = Run::open(&StdFs, &dir.path().join(run_name(9))).unwrap();
        assert_eq!(run.id, 9);
        assert_eq!(run.covers, covers);
        assert_eq!(
            (&run.sparse, &run.filter),
            (&written.sparse, &written.filter)
        );
        assert_eq!(run.entries_at, written.entries_at);
        for (k, loc) in &entries {
            assert_eq!(run.get(k).unwrap(), Some(*loc));
        }
        assert!((1000..2000).all(|n| run.get(&key(n)).unwrap().is_none()));
        let all: Vec<_> = run.iter().map(|e| e.unwrap()).collect();
        assert_eq!(all, entries);
        // Any flipped byte is caught when the run opens.
        let path = dir.path().join(run_name(9));
        let bytes = std::fs::read(&path).unwrap();
        for at in [
            0,
            30,
            100,
            bytes.len() / 2,
            bytes.len() - 40,
            bytes.len() - 1,
        ] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            std::fs::write(&path, &b).unwrap();
            assert!(Run::open(&StdFs, &path).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_run_name(&run_name(12)), Some(12));
        assert_eq!(parse_run_name("12.run"), None);
        assert_eq!(parse_run_name(&format!("{}.tmp", run_name(1))), None);
    }
}
