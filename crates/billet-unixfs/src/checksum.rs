use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The whole-object checksums S3 clients send as `x-amz-checksum-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The name S3 uses (`x-amz-checksum-algorithm`, `ChecksumAlgorithm`).
    pub fn s3_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    pub fn from_s3_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.s3_name().eq_ignore_ascii_case(name))
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// A computed checksum: raw digest bytes (CRCs big-endian, as S3 encodes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumValue {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

impl ChecksumValue {
    /// The base64 text S3 puts in `x-amz-checksum-*` headers.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.digest)
    }

    pub fn from_base64(algorithm: ChecksumAlgorithm, text: &str) -> Option<Self> {
        let digest = STANDARD.decode(text.trim()).ok()?;
        (digest.len() == algorithm.digest_len()).then_some(ChecksumValue { algorithm, digest })
    }
}

enum State {
    Crc(ChecksumAlgorithm, CrcDigest),
    Sha1(Sha1),
    Sha256(Sha256),
}

/// Computes any set of S3 checksums over the same bytes.
pub struct Checksummer {
    states: Vec<State>,
}

impl std::fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checksummer")
            .field("algorithms", &self.states.len())
            .finish()
    }
}

impl Checksummer {
    pub fn new(algorithms: &[ChecksumAlgorithm]) -> Self {
        let mut algorithms = algorithms.to_vec();
        algorithms.sort();
        algorithms.dedup();
        let states = algorithms
            .into_iter()
            .map(|a| match a {
                ChecksumAlgorithm::Crc32 => {
                    State::Crc(a, CrcDigest::new(CrcAlgorithm::Crc32IsoHdlc))
                }
                ChecksumAlgorithm::Crc32c => {
                    State::Crc(a, CrcDigest::new(CrcAlgorithm::Crc32Iscsi))
                }
                ChecksumAlgorithm::Crc64Nvme => {
                    State::Crc(a, CrcDigest::new(CrcAlgorithm::Crc64Nvme))
                }
                ChecksumAlgorithm::Sha1 => State::Sha1(Sha1::new()),
                ChecksumAlgorithm::Sha256 => State::Sha256(Sha256::new()),
            })
            .collect();
        Checksummer { states }
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn update(&mut self, data: &[u8]) {
        for s in &mut self.states {
            match s {
                State::Crc(_, d) => d.update(data),
                State::Sha1(h) => h.update(data),
                State::Sha256(h) => h.update(data),
            }
        }
    }

    pub fn finish(self) -> Vec<ChecksumValue> {
        self.states
            .into_iter()
            .map(|s| match s {
                State::Crc(algorithm, d) => {
                    let v = d.finalize();
                    let digest = if algorithm == ChecksumAlgorithm::Crc64Nvme {
                        v.to_be_bytes().to_vec()
                    } else {
                        (v as u32).to_be_bytes().to_vec()
                    };
                    ChecksumValue { algorithm, digest }
                }
                State::Sha1(h) => ChecksumValue {
                    algorithm: ChecksumAlgorithm::Sha1,
                    digest: h.finalize().to_vec(),
                },
                State::Sha256(h) => ChecksumValue {
                    algorithm: ChecksumAlgorithm::Sha256,
                    digest: h.finalize().to_vec(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(a: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut c = Checksummer::new(&[a]);
        // Split the input to prove streaming equals one-shot.
        let (x, y) = data.split_at(data.len() / 3);
        c.update(x);
        c.update(y);
        c.finish().remove(0).to_base64()
    }

    #[test]
    fn check_values_of_the_crc_catalogue() {
        // "123456789" check values: CRC-32/ISO-HDLC cbf43926,
        // CRC-32/ISCSI e3069283, CRC-64/NVME ae8b14860a799888.
        let mut c = Checksummer::new(&[
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ]);
        c.update(b"123456789");
        let got: Vec<String> = c.finish().iter().map(|v| hex::encode(&v.digest)).collect();
        assert_eq!(got, ["cbf43926", "e3069283", "ae8b14860a799888"]);
    }

    #[test]
    fn matches_reference_implementations_for_hello_world() {
        // Reference values for "Hello world" from Python's zlib and hashlib
        // and a bitwise CRC over the catalogue parameters (CRC32C, CRC64NVME).
        let body = b"Hello world";
        assert_eq!(b64(ChecksumAlgorithm::Crc32, body), "i9aeUg==");
        assert_eq!(b64(ChecksumAlgorithm::Crc32c, body), "crUfeA==");
        assert_eq!(b64(ChecksumAlgorithm::Crc64Nvme, body), "OOJZ0D8xKts=");
        assert_eq!(
            b64(ChecksumAlgorithm::Sha1, body),
            "e1AsOh9IyGCa4hLN+2Od7jlnP14="
        );
        assert_eq!(
            b64(ChecksumAlgorithm::Sha256, body),
            "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw="
        );
    }

    #[test]
    fn base64_round_trip_checks_length() {
        let v = ChecksumValue::from_base64(ChecksumAlgorithm::Crc32, "i9aeUg==").unwrap();
        assert_eq!(v.to_base64(), "i9aeUg==");
        assert!(ChecksumValue::from_base64(ChecksumAlgorithm::Crc64Nvme, "i9aeUg==").is_none());
        assert!(ChecksumValue::from_base64(ChecksumAlgorithm::Crc32, "not base64!").is_none());
    }
}
