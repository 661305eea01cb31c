//! Conversions shared by both backends: manifests and settings to and from
//! their stored bytes, and the listing rows.

use billet_block::Cid;
use billet_records::{BucketSettings, Manifest};

use crate::error::IndexError;
use crate::list::{Cursor, Row};
use crate::types::{ObjectSummary, Upload};

pub(crate) fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>, IndexError> {
    serde_ipld_dagcbor::to_vec(m)
        .map_err(|e| IndexError::Corrupt(format!("manifest does not encode: {e}")))
}

/// Manifests in the index were validated before they were written; reading
/// them back skips the canonical re-encode check.
pub(crate) fn manifest_from(bytes: &[u8]) -> Result<Manifest, IndexError> {
    serde_ipld_dagcbor::from_slice(bytes)
        .map_err(|e| IndexError::Corrupt(format!("stored manifest: {e}")))
}

pub(crate) fn settings_bytes(s: &BucketSettings) -> Result<Vec<u8>, IndexError> {
    serde_ipld_dagcbor::to_vec(s)
        .map_err(|e| IndexError::Corrupt(format!("settings do not encode: {e}")))
}

pub(crate) fn settings_from(bytes: &[u8]) -> Result<BucketSettings, IndexError> {
    serde_ipld_dagcbor::from_slice(bytes)
        .map_err(|e| IndexError::Corrupt(format!("stored settings: {e}")))
}

pub(crate) fn cid_from(bytes: &[u8]) -> Result<Cid, IndexError> {
    Cid::try_from(bytes).map_err(|e| IndexError::Corrupt(format!("stored CID: {e}")))
}

pub(crate) fn key_from(bytes: Vec<u8>) -> Result<String, IndexError> {
    String::from_utf8(bytes).map_err(|_| IndexError::Corrupt("stored key is not UTF-8".into()))
}

/// A stand-in row for the first key of a common-prefix group, which a
/// listing reports only as the prefix.
pub(crate) fn anchor(key: String) -> ObjectSummary {
    ObjectSummary {
        key,
        version_id: String::new(),
        is_latest: true,
        delete_marker: false,
        size: 0,
        etag: String::new(),
        last_modified_ms: 0,
        order: 0,
    }
}

/// A row of ListObjects (cursor continues after the key).
pub(crate) struct ObjectRow(pub ObjectSummary);

impl Row for ObjectRow {
    fn key(&self) -> &str {
        &self.0.key
    }
    fn after(&self) -> Cursor {
        Cursor::After(self.0.key.as_bytes().to_vec())
    }
}

/// A row of ListObjectVersions (cursor continues after this version).
pub(crate) struct VersionRow(pub ObjectSummary);

impl Row for VersionRow {
    fn key(&self) -> &str {
        &self.0.key
    }
    fn after(&self) -> Cursor {
        Cursor::AfterVersion(self.0.key.as_bytes().to_vec(), self.0.order)
    }
}

/// A row of ListMultipartUploads, with its per-bucket sequence number.
pub(crate) struct UploadRow(pub Upload, pub i64);

impl Row for UploadRow {
    fn key(&self) -> &str {
        &self.0.key
    }
    fn after(&self) -> Cursor {
        Cursor::AfterVersion(self.0.key.as_bytes().to_vec(), self.1)
    }
}
