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

impl ChecksumAlgorithm {
    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            ChecksumAlgorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
        }
    }

    /// Whether a whole-object checksum can be derived from the parts'
    /// checksums alone (CRCs combine; SHA digests do not).
    pub fn combines(self) -> bool {
        self.crc().is_some()
    }
}

fn crc_bytes(algorithm: ChecksumAlgorithm, v: u64) -> Vec<u8> {
    if algorithm == ChecksumAlgorithm::Crc64Nvme {
        v.to_be_bytes().to_vec()
    } else {
        (v as u32).to_be_bytes().to_vec()
    }
}

fn crc_value(digest: &[u8]) -> u64 {
    digest
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The S3 composite checksum of a multipart upload: the algorithm over the
/// concatenation of the parts' raw checksums (S3 shows it with `-N`).
pub fn composite_checksum(algorithm: ChecksumAlgorithm, parts: &[&[u8]]) -> ChecksumValue {
    let mut c = Checksummer::new(&[algorithm]);
    for p in parts {
        c.update(p);
    }
    let mut out = c.finish();
    out.remove(0)
}

/// The CRC of a whole object from its parts' CRCs and lengths, without
/// reading a byte (S3's `FULL_OBJECT` checksum type). `None` for SHA
/// algorithms, which do not combine.
pub fn combine_full_object(
    algorithm: ChecksumAlgorithm,
    parts: &[(&[u8], u64)],
) -> Option<ChecksumValue> {
    let crc = algorithm.crc()?;
    let mut acc: Option<u64> = None;
    for (digest, len) in parts {
        let v = crc_value(digest);
        acc = Some(match acc {
            None => v,
            Some(a) => crc_fast::checksum_combine(crc, a, v, *len),
        });
    }
    let v = match acc {
        Some(v) => v,
        None => crc_fast::checksum(crc, b""),
    };
    Some(ChecksumValue {
        algorithm,
        digest: crc_bytes(algorithm, v),
    })
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
            .map(|a| match (a, a.crc()) {
                (_, Some(crc)) => State::Crc(a, CrcDigest::new(crc)),
                (ChecksumAlgorithm::Sha1, None) => State::Sha1(Sha1::new()),
                _ => State::Sha256(Sha256::new()),
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
                State::Crc(algorithm, d) => ChecksumValue {
                    algorithm,
                    digest: crc_bytes(algorithm, d.finalize()),
                },
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
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let cuts = [0usize, 1, 4096, 65_537, 99_999, 100_000];
        for a in ChecksumAlgorithm::ALL {
            let whole = {
                let mut c = Checksummer::new(&[a]);
                c.update(&body);
                c.finish().remove(0)
            };
            let parts: Vec<(Vec<u8>, u64)> = cuts
                .windows(2)
                .map(|w| {
                    let mut c = Checksummer::new(&[a]);
                    c.update(&body[w[0]..w[1]]);
                    (c.finish().remove(0).digest, (w[1] - w[0]) as u64)
                })
                .collect();
            let refs: Vec<(&[u8], u64)> = parts.iter().map(|(d, l)| (d.as_slice(), *l)).collect();
            match combine_full_object(a, &refs) {
                Some(v) => assert_eq!(v, whole, "{a:?}"),
                None => assert!(!a.combines(), "{a:?}"),
            }
        }
    }

    #[test]
    fn composite_is_the_checksum_of_the_concatenated_part_checksums() {
        let p1 = [1u8, 2, 3, 4];
        let p2 = [5u8, 6, 7, 8];
        let got = composite_checksum(ChecksumAlgorithm::Crc32, &[&p1, &p2]);
        let mut c = Checksummer::new(&[ChecksumAlgorithm::Crc32]);
        c.update(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(got, c.finish().remove(0));
    }

    #[test]
    fn base64_round_trip_checks_length() {
        let v = ChecksumValue::from_base64(ChecksumAlgorithm::Crc32, "i9aeUg==").unwrap();
        assert_eq!(v.to_base64(), "i9aeUg==");
        assert!(ChecksumValue::from_base64(ChecksumAlgorithm::Crc64Nvme, "i9aeUg==").is_none());
        assert!(ChecksumValue::from_base64(ChecksumAlgorithm::Crc32, "not base64!").is_none());
    }
}
