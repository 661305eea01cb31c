use std::io::{self, Read};

/// Reads one unsigned LEB128 varint. `Ok(None)` means the stream ended
/// cleanly before its first byte; ending inside the varint is an error.
pub(crate) fn read_varint<R: Read>(r: &mut R) -> Result<Option<(u64, usize)>, VarintError> {
    let mut buf = [0u8; 10];
    for i in 0..buf.len() {
        let mut byte = [0u8; 1];
        match read_one(r, &mut byte) {
            Ok(true) => {}
            Ok(false) if i == 0 => return Ok(None),
            Ok(false) => return Err(VarintError::Truncated),
            Err(e) => return Err(VarintError::Io(e)),
        }
        buf[i] = byte[0];
        if byte[0] & 0x80 == 0 {
            return match unsigned_varint::decode::u64(&buf[..=i]) {
                Ok((v, _)) => Ok(Some((v, i + 1))),
                Err(e) => Err(VarintError::Invalid(e.to_string())),
            };
        }
    }
    Err(VarintError::Invalid("longer than 10 bytes".into()))
}

fn read_one<R: Read>(r: &mut R, byte: &mut [u8; 1]) -> io::Result<bool> {
    loop {
        match r.read(byte) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) enum VarintError {
    Truncated,
    Invalid(String),
    Io(io::Error),
}

pub(crate) fn encode_varint(v: u64, out: &mut Vec<u8>) {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.extend_from_slice(unsigned_varint::encode::u64(v, &mut buf));
}
