//! A segment as stored on the remote: its CAR bytes cut into frames at
//! block boundaries, each frame either stored as is or zstd-compressed on
//! its own, so that one block is read back by fetching one frame.
//!
//! Compressed segments are in zstd's seekable format (independent frames
//! followed by a skippable frame holding the seek table): any zstd tool
//! decompresses the whole object to the segment's CAR, and a reader that
//! knows the frame table fetches one frame by byte range.

use std::io::{Read, Write};
use std::ops::Range;

use bytes::Bytes;

use crate::error::RemoteError;

/// How a stored segment's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The CAR bytes as they are.
    Identity,
    /// zstd seekable format.
    Zstd,
}

impl Encoding {
    pub fn code(self) -> u8 {
        match self {
            Encoding::Identity => 0,
            Encoding::Zstd => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<Encoding> {
        match c {
            0 => Some(Encoding::Identity),
            1 => Some(Encoding::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Zstd => "zstd",
        }
    }
}

/// Where each frame's bytes are, in the segment (raw) and in the stored
/// object: frame `i` is raw bytes `raw[i-1]..raw[i]` and stored bytes
/// `stored[i-1]..stored[i]` (with `raw[-1] = stored[-1] = 0`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameTable {
    raw_ends: Vec<u64>,
    stored_ends: Vec<u64>,
}

impl FrameTable {
    /// A table from each frame's raw and stored length.
    pub fn from_sizes(
        sizes: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<FrameTable, RemoteError> {
        let mut t = FrameTable::default();
        let (mut raw, mut stored) = (0u64, 0u64);
        for (r, s) in sizes {
            if r == 0 {
                return Err(RemoteError::damaged("a frame table", "an empty frame"));
            }
            raw += r;
            stored += s;
            t.raw_ends.push(raw);
            t.stored_ends.push(stored);
        }
        Ok(t)
    }

    /// Frames stored as they are, ending at `cuts`.
    pub fn identity(cuts: &[u64]) -> FrameTable {
        FrameTable {
            raw_ends: cuts.to_vec(),
            stored_ends: cuts.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.raw_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw_ends.is_empty()
    }

    /// Bytes of the segment the frames hold.
    pub fn raw_len(&self) -> u64 {
        self.raw_ends.last().copied().unwrap_or(0)
    }

    /// Bytes the frames take in the stored object (a seek table may follow).
    pub fn stored_len(&self) -> u64 {
        self.stored_ends.last().copied().unwrap_or(0)
    }

    pub fn raw_range(&self, i: usize) -> Range<u64> {
        let start = if i == 0 { 0 } else { self.raw_ends[i - 1] };
        start..self.raw_ends[i]
    }

    pub fn stored_range(&self, i: usize) -> Range<u64> {
        let start = if i == 0 { 0 } else { self.stored_ends[i - 1] };
        start..self.stored_ends[i]
    }

    /// The frame holding raw byte `offset`.
    pub fn frame_at(&self, offset: u64) -> Option<usize> {
        let i = self.raw_ends.partition_point(|end| *end <= offset);
        (i < self.raw_ends.len()).then_some(i)
    }

    /// The frames holding raw bytes `range` (non-empty), first to last.
    pub fn frames_for(&self, range: Range<u64>) -> Option<Range<usize>> {
        if range.start >= range.end || range.end > self.raw_len() {
            return None;
        }
        let first = self.frame_at(range.start)?;
        let last = self.frame_at(range.end - 1)?;
        Some(first..last + 1)
    }

    /// `(raw length, stored length)` of each frame.
    pub fn sizes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.len()).map(|i| {
            let (r, s) = (self.raw_range(i), self.stored_range(i));
            (r.end - r.start, s.end - s.start)
        })
    }
}

/// Where frames end: after the block that brings the frame to `target`
/// bytes or more, and at the segment's end. `block_ends` are the end
/// offsets of the segment's blocks in file order; a block never spans two
/// frames.
pub fn cut_points(
    block_ends: impl IntoIterator<Item = u64>,
    segment_len: u64,
    target: u64,
) -> Vec<u64> {
    let mut cuts = Vec::new();
    let mut start = 0u64;
    for end in block_ends {
        if end > segment_len {
            break;
        }
        if end - start >= target.max(1) {
            cuts.push(end);
            start = end;
        }
    }
    if start < segment_len {
        cuts.push(segment_len);
    }
    cuts
}

/// Compresses `raw` (the segment's `cuts.last()` bytes) frame by frame
/// into `out` in zstd's seekable format. Returns the frame table and the
/// bytes written (seek table included).
pub fn compress_seekable<W: Write>(
    mut raw: impl Read,
    cuts: &[u64],
    level: i32,
    mut out: W,
) -> Result<(FrameTable, u64), RemoteError> {
    let zerr =
        |e: zeekstd::Error| RemoteError::io("compressing", std::io::Error::other(e.to_string()));
    let opts = zeekstd::EncodeOptions::new()
        .compression_level(level)
        // Frames end where billet says, never by size.
        .frame_size_policy(zeekstd::FrameSizePolicy::Uncompressed(
            zeekstd::SEEKABLE_MAX_FRAME_SIZE as u32,
        ));
    let mut enc = zeekstd::Encoder::with_opts(&mut out, opts).map_err(zerr)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut at = 0u64;
    for &cut in cuts {
        while at < cut {
            let want = usize::try_from(cut - at)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            raw.read_exact(&mut buf[..want])
                .map_err(|e| RemoteError::io("reading the segment", e))?;
            let mut done = 0;
            while done < want {
                done += enc.compress(&buf[done..want]).map_err(zerr)?;
            }
            at += want as u64;
        }
        enc.end_frame().map_err(zerr)?;
    }
    // `finish` would end one more (empty) frame: flush the last one and
    // write the seek table here instead.
    enc.flush()
        .map_err(|e| RemoteError::io("writing the compressed segment", e))?;
    let frames_len = enc.written_compressed();
    let st = enc.into_seek_table();
    let table = table_of(&st)?;
    if table.raw_ends != cuts || table.stored_len() != frames_len {
        return Err(RemoteError::damaged(
            "compressing a segment",
            "the encoder's frames differ from the cuts asked for",
        ));
    }
    let mut ser = st.into_format_serializer(zeekstd::seek_table::Format::Foot);
    let mut chunk = [0u8; 4096];
    let mut written = frames_len;
    loop {
        let n = ser.write_into(&mut chunk);
        if n == 0 {
            break;
        }
        out.write_all(&chunk[..n])
            .map_err(|e| RemoteError::io("writing the seek table", e))?;
        written += n as u64;
    }
    out.flush()
        .map_err(|e| RemoteError::io("writing the compressed segment", e))?;
    Ok((table, written))
}

fn table_of(st: &zeekstd::SeekTable) -> Result<FrameTable, RemoteError> {
    let bad = |e: zeekstd::Error| RemoteError::damaged("a seek table", e.to_string());
    FrameTable::from_sizes(
        (0..st.num_frames())
            .map(|i| Ok((st.frame_size_decomp(i)?, st.frame_size_comp(i)?)))
            .collect::<Result<Vec<_>, zeekstd::Error>>()
            .map_err(bad)?,
    )
}

/// Bytes at the end of a seekable object that say how long its seek
/// table is: frame count (u32 LE), descriptor, magic (u32 LE).
pub const SEEK_TABLE_FOOTER: u64 = zeekstd::SEEK_TABLE_INTEGRITY_SIZE as u64;

/// How many bytes from the end of a seekable object its seek table takes,
/// given the object's last [`SEEK_TABLE_FOOTER`] bytes.
pub fn seek_table_len(footer: &[u8]) -> Result<u64, RemoteError> {
    let bad = |why: &str| RemoteError::damaged("a seek table footer", why.to_string());
    if footer.len() != SEEK_TABLE_FOOTER as usize {
        return Err(bad("wrong length"));
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([footer[at], footer[at + 1], footer[at + 2], footer[at + 3]])
    };
    if u32_at(5) != zeekstd::SEEKABLE_MAGIC_NUMBER {
        return Err(bad("no seekable-format magic"));
    }
    let frames = u64::from(u32_at(0));
    let per_frame = if footer[4] & 0x80 != 0 { 12 } else { 8 };
    Ok(8 + frames * per_frame + SEEK_TABLE_FOOTER)
}

/// The frame table of a seekable object, from its last
/// [`seek_table_len`] bytes.
pub fn parse_seek_table(tail: &[u8]) -> Result<FrameTable, RemoteError> {
    let st = zeekstd::SeekTable::from_seekable(&mut zeekstd::BytesWrapper::new(tail))
        .map_err(|e| RemoteError::damaged("a seek table", e.to_string()))?;
    table_of(&st)
}

/// A frame's raw bytes from its stored bytes; `raw_len` is what the frame
/// table says it holds.
pub fn decode_frame(encoding: Encoding, stored: Bytes, raw_len: u64) -> Result<Bytes, String> {
    let raw = match encoding {
        Encoding::Identity => stored,
        Encoding::Zstd => {
            let cap = usize::try_from(raw_len).map_err(|_| "frame too large".to_string())?;
            let mut out: Vec<u8> = Vec::with_capacity(cap);
            zstd_safe::decompress(&mut out, &stored)
                .map_err(|code| format!("zstd: {}", zstd_safe::get_error_name(code)))?;
            Bytes::from(out)
        }
    };
    if raw.len() as u64 != raw_len {
        return Err(format!(
            "the frame holds {} bytes, the frame table says {raw_len}",
            raw.len()
        ));
    }
    Ok(raw)
}

/// What zstd at `level` makes of `sample`, as compressed / original.
pub fn compression_ratio(sample: &[u8], level: i32) -> f64 {
    if sample.is_empty() {
        return 1.0;
    }
    let mut out: Vec<u8> = Vec::with_capacity(zstd_safe::compress_bound(sample.len()));
    match zstd_safe::compress(&mut out, sample, level) {
        Ok(n) => n as f64 / sample.len() as f64,
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_fall_on_block_ends() {
        assert_eq!(cut_points([10, 20, 30, 100], 100, 25), vec![30, 100]);
        assert_eq!(cut_points([10, 20], 25, 100), vec![25]);
        assert_eq!(cut_points([], 40, 100), vec![40]);
        assert_eq!(cut_points([5, 200], 200, 64), vec![200]);
    }

    #[test]
    fn lookups() {
        let t = FrameTable::from_sizes([(10, 4), (20, 5), (5, 5)]).unwrap();
        assert_eq!(t.frame_at(0), Some(0));
        assert_eq!(t.frame_at(9), Some(0));
        assert_eq!(t.frame_at(10), Some(1));
        assert_eq!(t.frame_at(34), Some(2));
        assert_eq!(t.frame_at(35), None);
        assert_eq!(t.frames_for(8..12), Some(0..2));
        assert_eq!(t.frames_for(10..30), Some(1..2));
        assert_eq!(t.frames_for(30..36), None);
        assert_eq!(t.stored_range(1), 4..9);
        assert_eq!(t.raw_range(2), 30..35);
    }

    fn segment(blocks: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
        let mut raw = b"header..".to_vec();
        let mut ends = Vec::new();
        for b in blocks {
            raw.extend_from_slice(&[b.len() as u8, 0xAA]);
            raw.extend_from_slice(b);
            ends.push(raw.len() as u64);
        }
        (raw, ends)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every block reads back from exactly one frame, and the whole
        /// object decompresses with plain zstd to the segment.
        #[test]
        fn every_block_from_one_frame(
            blocks in prop::collection::vec(prop::collection::vec(0u8..4, 1..200), 1..40),
            target in 1u64..400,
        ) {
            let (raw, ends) = segment(&blocks);
            let cuts = cut_points(ends.iter().copied(), raw.len() as u64, target);
            let mut stored = Vec::new();
            let (table, written) = compress_seekable(&raw[..], &cuts, 3, &mut stored).unwrap();
            prop_assert_eq!(written, stored.len() as u64);
            prop_assert_eq!(table.raw_len(), raw.len() as u64);
            let footer = &stored[stored.len() - SEEK_TABLE_FOOTER as usize..];
            let tail_len = seek_table_len(footer).unwrap() as usize;
            prop_assert_eq!(tail_len as u64, stored.len() as u64 - table.stored_len());
            prop_assert_eq!(&parse_seek_table(&stored[stored.len() - tail_len..]).unwrap(), &table);
            let mut start = 8u64;
            for (b, end) in blocks.iter().zip(&ends) {
                let data = (end - b.len() as u64)..*end;
                let frames = table.frames_for(data.clone()).unwrap();
                prop_assert_eq!(frames.len(), 1);
                let f = frames.start;
                let sr = table.stored_range(f);
                let frame = decode_frame(
                    Encoding::Zstd,
                    Bytes::copy_from_slice(&stored[sr.start as usize..sr.end as usize]),
                    table.raw_range(f).end - table.raw_range(f).start,
                ).unwrap();
                let at = (data.start - table.raw_range(f).start) as usize;
                prop_assert_eq!(&frame[at..at + b.len()], &b[..]);
                start = *end;
            }
            prop_assert!(start <= raw.len() as u64);
            // Several frames: plain zstd decodes them one after another.
            let mut all = Vec::new();
            for i in 0..table.len() {
                let sr = table.stored_range(i);
                let mut part = Vec::with_capacity(raw.len());
                zstd_safe::decompress(&mut part, &stored[sr.start as usize..sr.end as usize]).unwrap();
                all.extend_from_slice(&part);
            }
            prop_assert_eq!(all, raw);
        }
    }

    #[test]
    fn damage_is_detected() {
        let raw: Vec<u8> = (0..5000u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let cuts = vec![raw.len() as u64];
        let mut stored = Vec::new();
        let (table, _) = compress_seekable(&raw[..], &cuts, 3, &mut stored).unwrap();
        let sr = table.stored_range(0);
        let frame = &stored[sr.start as usize..sr.end as usize];
        let short = Bytes::copy_from_slice(&frame[..frame.len() - 1]);
        assert!(decode_frame(Encoding::Zstd, short, raw.len() as u64).is_err());
        assert!(decode_frame(Encoding::Identity, Bytes::from_static(b"abc"), 4).is_err());
        assert!(seek_table_len(&[0u8; 9]).is_err());
        assert!(compression_ratio(&raw, 3) < 0.5);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(compression_ratio(&noise, 3) > 0.9);
    }
}
