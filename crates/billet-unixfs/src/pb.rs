//! The two protobuf layers of a UnixFS file node: the dag-pb `PBNode`
//! (through `ipld-dagpb`) and, in its `Data` field, the UnixFS `Data`
//! message (through `quick-protobuf`'s wire reader and writer).

use billet_block::{Block, Cid, Codec};
use bytes::Bytes;
use ipld_dagpb::{PbLink, PbNode};
use quick_protobuf::sizeofs::{sizeof_len, sizeof_varint};
use quick_protobuf::{BytesReader, MessageRead, MessageWrite, Writer, WriterBackend};

use crate::layout::Link;

const TYPE_RAW: u64 = 0;
const TYPE_FILE: u64 = 2;

/// A decoded UnixFS file (or raw) node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// Bytes held in the node itself (ahead of its children's bytes).
    pub data: Bytes,
    pub filesize: Option<u64>,
    /// (child CID, bytes of file content under it).
    pub children: Vec<(Cid, u64)>,
}

impl FileNode {
    /// Total file bytes under this node according to its own fields.
    pub fn content_len(&self) -> u64 {
        self.data.len() as u64 + self.children.iter().map(|(_, n)| n).sum::<u64>()
    }
}

#[derive(Debug, Default, PartialEq)]
struct UnixfsData<'a> {
    kind: u64,
    data: Option<&'a [u8]>,
    filesize: Option<u64>,
    blocksizes: Vec<u64>,
}

impl MessageWrite for UnixfsData<'_> {
    fn get_size(&self) -> usize {
        1 + sizeof_varint(self.kind)
            + self.data.map_or(0, |d| 1 + sizeof_len(d.len()))
            + self.filesize.map_or(0, |s| 1 + sizeof_varint(s))
            + self
                .blocksizes
                .iter()
                .map(|s| 1 + sizeof_varint(*s))
                .sum::<usize>()
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        w.write_with_tag(8, |w| w.write_uint64(self.kind))?;
        if let Some(d) = self.data {
            w.write_with_tag(18, |w| w.write_bytes(d))?;
        }
        if let Some(s) = self.filesize {
            w.write_with_tag(24, |w| w.write_uint64(s))?;
        }
        // proto2 `repeated uint64` without [packed]: one tag per value, as
        // kubo writes it.
        for s in &self.blocksizes {
            w.write_with_tag(32, |w| w.write_uint64(*s))?;
        }
        Ok(())
    }
}

impl<'a> MessageRead<'a> for UnixfsData<'a> {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut msg = UnixfsData::default();
        let mut saw_type = false;
        while !r.is_eof() {
            match r.next_tag(bytes)? {
                8 => {
                    msg.kind = r.read_uint64(bytes)?;
                    saw_type = true;
                }
                18 => msg.data = Some(r.read_bytes(bytes)?),
                24 => msg.filesize = Some(r.read_uint64(bytes)?),
                32 => msg.blocksizes.push(r.read_uint64(bytes)?),
                // Packed form, which some writers use.
                34 => msg.blocksizes = r.read_packed(bytes, |r, b| r.read_uint64(b))?,
                // hashType, fanout, mode, mtime: legal, irrelevant to a file's bytes.
                t => r.read_unknown(bytes, t)?,
            }
        }
        if !saw_type {
            return Err(quick_protobuf::Error::Message(
                "UnixFS Data has no Type".into(),
            ));
        }
        Ok(msg)
    }
}

/// Encodes a file node over `children` (which must be non-empty).
pub fn encode_file_node(children: &[Link]) -> Block {
    let filesize: u64 = children.iter().map(|l| l.file_size).sum();
    let data = UnixfsData {
        kind: TYPE_FILE,
        data: None,
        filesize: Some(filesize),
        blocksizes: children.iter().map(|l| l.file_size).collect(),
    };
    let mut unixfs = Vec::with_capacity(data.get_size());
    data.write_message(&mut Writer::new(&mut unixfs))
        .expect("writing to a Vec cannot fail");
    let node = PbNode {
        links: children
            .iter()
            .map(|l| PbLink {
                cid: l.cid,
                name: Some(String::new()),
                size: Some(l.tsize),
            })
            .collect(),
        data: Some(Bytes::from(unixfs)),
    };
    Block::new(Codec::DagPb, node.into_bytes())
}

/// Decodes a dag-pb UnixFS node of type File or Raw, checking that its
/// `blocksizes` pair up with its links.
pub fn decode_file_node(bytes: &Bytes) -> Result<FileNode, String> {
    let node = PbNode::from_bytes(bytes.clone()).map_err(|e| format!("not dag-pb: {e}"))?;
    let Some(raw) = node.data.as_ref() else {
        return Err("dag-pb node has no UnixFS Data".into());
    };
    let mut r = BytesReader::from_bytes(raw);
    let data = UnixfsData::from_reader(&mut r, raw).map_err(|e| format!("bad UnixFS Data: {e}"))?;
    if data.kind != TYPE_FILE && data.kind != TYPE_RAW {
        return Err(format!(
            "UnixFS type {} is not a file (directories and others are not object bodies)",
            data.kind
        ));
    }
    if data.blocksizes.len() != node.links.len() {
        return Err(format!(
            "{} links but {} blocksizes",
            node.links.len(),
            data.blocksizes.len()
        ));
    }
    let inline = data.data.map(|d| raw.slice_ref(d)).unwrap_or_default();
    let children: Vec<(Cid, u64)> = node
        .links
        .iter()
        .zip(&data.blocksizes)
        .map(|(l, s)| (l.cid, *s))
        .collect();
    let out = FileNode {
        data: inline,
        filesize: data.filesize,
        children,
    };
    let mut total: u64 = out.data.len() as u64;
    for (_, s) in &out.children {
        total = total
            .checked_add(*s)
            .ok_or_else(|| "blocksizes overflow".to_string())?;
    }
    if let Some(fs) = out.filesize
        && fs != total
    {
        return Err(format!(
            "filesize {fs} disagrees with data plus blocksizes {total}"
        ));
    }
    Ok(out)
}
