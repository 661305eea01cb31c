//! Reading a segment back when the log opens.

use std::io::{self, BufReader, Read};

use billet_car::{CarError, CarReader};

use crate::fs::LogFile;
use crate::segment::{PlaneKind, descriptor};
use crate::sidecar::Entry;

/// A positional reader over a [`LogFile`], for streaming a segment.
struct FileReader<'a> {
    file: &'a dyn LogFile,
    pos: u64,
    len: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

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
    let reader = BufReader::with_capacity(1 << 20, FileReader { file, pos: 0, len });
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
    let reader = BufReader::with_capacity(1 << 20, FileReader { file, pos: 0, len });
    let mut car = CarReader::new(reader)?;
    let mut first = true;
    while let Some(b) = car.next_block()? {
        if !std::mem::take(&mut first) {
            f(b.block);
        }
    }
    Ok(())
}
