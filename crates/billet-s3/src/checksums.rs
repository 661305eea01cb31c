//! An object's checksums as S3 shows them.

use billet_unixfs::{ChecksumAlgorithm, ChecksumValue};
use s3s::dto::ChecksumType;

/// Checksum output fields, filled from computed values.
#[derive(Default)]
pub(crate) struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a ChecksumValue>) -> Self {
        let mut c = Checksums::default();
        for v in values {
            let s = Some(v.to_base64());
            match v.algorithm {
                ChecksumAlgorithm::Crc32 => c.crc32 = s,
                ChecksumAlgorithm::Crc32c => c.crc32c = s,
                ChecksumAlgorithm::Crc64Nvme => c.crc64nvme = s,
                ChecksumAlgorithm::Sha1 => c.sha1 = s,
                ChecksumAlgorithm::Sha256 => c.sha256 = s,
            }
        }
        c
    }

    /// The object checksum a manifest records, as S3 shows it on GET,
    /// HEAD, Complete and copies: a COMPOSITE value carries its `-N` part
    /// count (which is what tells SDKs not to check it against the whole
    /// body), and the type always goes with it.
    pub fn of(m: &billet_records::Manifest) -> (Self, Option<ChecksumType>) {
        let composite = m.checksum_type == Some(billet_records::ChecksumType::Composite);
        let mut c = Checksums::default();
        for (name, digest) in &m.checksums {
            let Some(algorithm) = ChecksumAlgorithm::from_s3_name(name) else {
                continue;
            };
            let mut text = ChecksumValue {
                algorithm,
                digest: digest.to_vec(),
            }
            .to_base64();
            if composite {
                text = format!("{text}-{}", m.parts.len().max(1));
            }
            let slot = match algorithm {
                ChecksumAlgorithm::Crc32 => &mut c.crc32,
                ChecksumAlgorithm::Crc32c => &mut c.crc32c,
                ChecksumAlgorithm::Crc64Nvme => &mut c.crc64nvme,
                ChecksumAlgorithm::Sha1 => &mut c.sha1,
                ChecksumAlgorithm::Sha256 => &mut c.sha256,
            };
            *slot = Some(text);
        }
        let kind = m.checksum_type.map(|t| {
            ChecksumType::from_static(match t {
                billet_records::ChecksumType::FullObject => ChecksumType::FULL_OBJECT,
                billet_records::ChecksumType::Composite => ChecksumType::COMPOSITE,
            })
        });
        (c, kind)
    }
}
