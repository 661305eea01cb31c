use std::fmt;

/// Multihash code of sha2-256, the only hash billet writes or accepts.
pub const SHA2_256: u64 = 0x12;

/// The IPLD codecs billet uses (multicodec table values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Body chunks: the bytes as they are.
    Raw,
    /// UnixFS file nodes.
    DagPb,
    /// Everything else: MST nodes, manifests, commits.
    DagCbor,
}

impl Codec {
    pub const fn code(self) -> u64 {
        match self {
            Codec::Raw => 0x55,
            Codec::DagPb => 0x70,
            Codec::DagCbor => 0x71,
        }
    }

    pub const fn from_code(code: u64) -> Option<Codec> {
        match code {
            0x55 => Some(Codec::Raw),
            0x70 => Some(Codec::DagPb),
            0x71 => Some(Codec::DagCbor),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::DagPb => "dag-pb",
            Codec::DagCbor => "dag-cbor",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
