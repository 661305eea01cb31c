//! A CAR file used as a block store: one verifying pass records where each
//! block's bytes lie, then reads are positioned reads checked against the
//! CID. Lets `verify` and `import` walk a bucket's DAG in any order the
//! file holds it, without loading the file into memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use billet_block::{Block, BlockError, BlockStore, Cid};
use bytes::Bytes;

use crate::error::CarError;
use crate::reader::{CarReader, Limits};

/// Threads hashing blocks while the file is indexed.
const HASHERS: usize = 2;

/// Where one block's bytes are in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    len: u32,
}

/// What identifies the file's contents as they were indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn identity(file: &File) -> std::io::Result<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok(Identity {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

#[derive(Debug)]
pub struct CarFile {
    path: PathBuf,
    file: File,
    identity: Identity,
    roots: Vec<Cid>,
    spans: HashMap<Cid, Span>,
    /// Blocks in file order, first occurrence of each CID.
    order: Vec<Cid>,
    bytes: u64,
    len: u64,
}

impl CarFile {
    /// Reads the whole file once, checking every frame and every block's
    /// hash; the first problem is returned with its byte offset.
    pub fn open(path: impl AsRef<Path>) -> Result<CarFile, CarError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| CarError::Io { offset: 0, source };
        let file = File::open(&path).map_err(io)?;
        let before = identity(&file).map_err(io)?;
        let len = before.len;
        let mut reader = CarReader::with_limits(
            BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?),
            Limits::default(),
        )?;
        let roots = reader.roots().to_vec();
        let mut spans = HashMap::new();
        let mut order = Vec::new();
        let mut bytes = 0u64;
        // Frames are parsed here in order and hashed on worker threads;
        // the first bad block in file order is the one reported.
        let first_bad: std::sync::Mutex<Option<CarError>> = std::sync::Mutex::new(None);
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Cid, Bytes, u64)>(64);
        let rx = std::sync::Mutex::new(rx);
        let parsed = std::thread::scope(|scope| -> Result<(), CarError> {
            // Moved in, so the hashers see the end when this returns.
            let tx = tx;
            for _ in 0..HASHERS {
                let (rx, first_bad) = (&rx, &first_bad);
                scope.spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((cid, data, offset)) = job else { return };
                        if let Err(e) = billet_block::verify(&cid, &data) {
                            let mut bad = first_bad.lock().unwrap_or_else(|p| p.into_inner());
                            if bad.as_ref().is_none_or(|b| b.offset() > offset) {
                                *bad = Some(CarError::BadBlock {
                                    offset,
                                    cid: Box::new(cid),
                                    reason: e.to_string(),
                                });
                            }
                        }
                    }
                });
            }
            while let Some((cid, data, frame_offset, data_offset)) = reader.next_frame()? {
                if spans.contains_key(&cid) {
                    // Duplicates are checked too: a reader of the file
                    // would meet them.
                    let _ = tx.send((cid, data, frame_offset));
                    continue;
                }
                bytes += data.len() as u64;
                spans.insert(
                    cid,
                    Span {
                        offset: data_offset,
                        len: data.len() as u32,
                    },
                );
                order.push(cid);
                if tx.send((cid, data, frame_offset)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let bad = first_bad.into_inner().unwrap_or_else(|p| p.into_inner());
        // A bad block before a framing error is the first problem.
        match (parsed, bad) {
            (Err(frame), Some(block)) if block.offset() < frame.offset() => return Err(block),
            (Err(frame), _) => return Err(frame),
            (Ok(()), Some(block)) => return Err(block),
            (Ok(()), None) => {}
        }
        let after = identity(&file).map_err(io)?;
        if after != before {
            return Err(CarError::Io {
                offset: 0,
                source: std::io::Error::other("the file changed while it was read"),
            });
        }
        Ok(CarFile {
            path,
            file,
            identity: after,
            roots,
            spans,
            order,
            bytes,
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Distinct blocks, in the order the file first holds them.
    pub fn cids(&self) -> &[Cid] {
        &self.order
    }

    /// Bytes of block data (distinct blocks).
    pub fn block_bytes(&self) -> u64 {
        self.bytes
    }

    /// Size of the file.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Reads one block as a verified [`Block`] (hashed again).
    pub fn block(&self, cid: &Cid) -> Result<Block, BlockError> {
        Block::verified(*cid, self.get(cid)?)
    }

    /// Whether the file is still the one that was indexed (same inode,
    /// size and modification time). Reads trust the hashes checked when it
    /// was indexed; call this once the reads are done to confirm nobody
    /// replaced or rewrote the file meanwhile.
    pub fn unchanged(&self) -> bool {
        identity(&self.file).is_ok_and(|now| now == self.identity)
            && std::fs::metadata(&self.path)
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == self.identity.inode)
    }
}

/// Blocks at most this size are hashed again on every read: re-checking
/// them is cheap, and MST nodes and manifests are what a walk decides on.
/// Larger blocks (body chunks) were hashed when the file was indexed, and
/// [`CarFile::unchanged`] confirms afterwards that the file is the same.
const REVERIFY_BELOW: usize = 64 << 10;

impl BlockStore for CarFile {
    fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        let span = self.spans.get(cid).ok_or(BlockError::Missing(*cid))?;
        let mut buf = vec![0u8; span.len as usize];
        self.file
            .read_exact_at(&mut buf, span.offset)
            .map_err(|source| BlockError::Io { cid: *cid, source })?;
        if buf.len() <= REVERIFY_BELOW {
            return Ok(Block::verified(*cid, buf)?.data().clone());
        }
        Ok(Bytes::from(buf))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockError> {
        Ok(self.spans.contains_key(cid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::CarWriter;
    use billet_block::Codec;

    #[test]
    fn indexes_and_reads_back_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.car");
        let blocks: Vec<Block> = (0..50u32)
            .map(|i| Block::new(Codec::Raw, i.to_be_bytes().repeat(i as usize + 1)))
            .collect();
        let mut w = CarWriter::new(File::create(&path).unwrap(), &[*blocks[0].cid()]).unwrap();
        for b in blocks.iter().chain(blocks.iter().take(3)) {
            w.write_block(b).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let car = CarFile::open(&path).unwrap();
        assert_eq!(car.roots(), &[*blocks[0].cid()]);
        assert_eq!(car.cids().len(), 50);
        for b in &blocks {
            assert_eq!(car.get(b.cid()).unwrap(), b.data());
        }
        let absent = Block::new(Codec::Raw, b"absent".to_vec());
        assert!(matches!(car.get(absent.cid()), Err(BlockError::Missing(_))));
        // A byte flipped after indexing is caught on read.
        let victim = &blocks[10];
        let span = car.spans[victim.cid()];
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[span.offset as usize] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            car.get(victim.cid()),
            Err(BlockError::HashMismatch { .. })
        ));
        assert!(!car.unchanged(), "a rewritten file is noticed");
        // And reopening names the damaged frame, just before the data.
        let err = CarFile::open(&path).unwrap_err();
        assert!(err.offset() < span.offset && err.offset() > 0, "{err}");
    }
}
