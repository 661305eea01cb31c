//! The `[remote]` section: where sealed segments ship and how each plane
//! is treated (README, "Cold tier").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use billet_engine::{ColdConfig, Compression, PlanePolicy};
use billet_remote::{RemoteConfig, Secret, StoreKind};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    /// `s3` (default) or `filesystem`.
    pub store: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub path_style: Option<bool>,
    /// The directory, for `store = "filesystem"`.
    pub path: Option<PathBuf>,
    pub node: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub cache_bytes: Option<u64>,
    pub readahead_bytes: Option<u64>,
    #[serde(default)]
    pub data: PlaneFile,
    #[serde(default)]
    pub catalog: PlaneFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneFile {
    pub ship: Option<bool>,
    pub keep_local_secs: Option<u64>,
    pub disk_budget_bytes: Option<u64>,
    /// `auto`, `always` or `never`.
    pub compress: Option<String>,
}

/// The cold tier as configured: the store (opened lazily by the engine's
/// runtime) and the policies.
#[derive(Debug, Clone)]
pub struct Remote {
    pub store: RemoteConfig,
    pub node: String,
    pub data: PlanePolicy,
    pub catalog: PlanePolicy,
    pub read_timeout: Duration,
    pub cache_bytes: u64,
    pub readahead_bytes: u64,
}

fn plane(f: &PlaneFile, name: &str, default: Compression) -> Result<PlanePolicy> {
    let compression = match f.compress.as_deref() {
        None => default,
        Some("auto") => Compression::Auto,
        Some("always") => Compression::Always,
        Some("never") => Compression::Never,
        Some(other) => {
            bail!("remote.{name}.compress is {other:?}; it takes auto, always or never")
        }
    };
    Ok(PlanePolicy {
        ship: f.ship.unwrap_or(true),
        keep_local: f.keep_local_secs.map(Duration::from_secs),
        disk_budget: f.disk_budget_bytes,
        compression,
    })
}

impl Remote {
    /// `None` when the file has no `[remote]` section.
    pub fn from_file(f: Option<&RemoteFile>) -> Result<Option<Remote>> {
        let Some(f) = f else { return Ok(None) };
        let store = match f.store.as_deref().unwrap_or("s3") {
            "s3" => StoreKind::S3 {
                bucket: f
                    .bucket
                    .clone()
                    .context("remote.bucket is required for an S3 remote")?,
                endpoint: f.endpoint.clone(),
                region: f.region.clone(),
                access_key_id: f.access_key_id.clone(),
                secret_access_key: f.secret_access_key.clone().map(Secret::new),
                session_token: f.session_token.clone().map(Secret::new),
                // Self-hosted stores want the bucket in the path; AWS
                // wants it in the host name.
                path_style: f.path_style.unwrap_or(f.endpoint.is_some()),
            },
            "filesystem" => StoreKind::Filesystem {
                root: f
                    .path
                    .clone()
                    .context("remote.path is required for store = \"filesystem\"")?,
            },
            other => bail!("remote.store is {other:?}; it takes s3 or filesystem"),
        };
        let mut store = RemoteConfig::new(store);
        store.prefix = f.prefix.clone().unwrap_or_default();
        if let Some(ms) = f.connect_timeout_ms {
            store.connect_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = f.request_timeout_ms {
            store.request_timeout = Duration::from_millis(ms.max(1));
        }
        let node = f.node.clone().unwrap_or_else(|| "node-1".into());
        if !billet_remote::valid_node(&node) {
            bail!("remote.node {node:?} must be 1-64 of a-z A-Z 0-9 . _ -");
        }
        Ok(Some(Remote {
            store,
            node,
            data: plane(&f.data, "data", Compression::Auto)?,
            catalog: plane(&f.catalog, "catalog", Compression::Always)?,
            read_timeout: Duration::from_millis(f.read_timeout_ms.unwrap_or(10_000).max(1)),
            cache_bytes: f.cache_bytes.unwrap_or(256 << 20),
            readahead_bytes: f.readahead_bytes.unwrap_or(32 << 20),
        }))
    }

    /// The engine's cold-tier configuration over a freshly opened store.
    pub fn cold_config(&self) -> Result<ColdConfig> {
        let store: Arc<dyn billet_remote::Remote> =
            billet_remote::open(&self.store).context("opening the remote store")?;
        let mut c = ColdConfig::new(store, self.store.describe(), &self.node);
        c.data = self.data.clone();
        c.catalog = self.catalog.clone();
        c.read_timeout = self.read_timeout;
        c.cache_bytes = self.cache_bytes;
        c.readahead_bytes = self.readahead_bytes;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Option<Remote>> {
        #[derive(Deserialize)]
        struct F {
            remote: Option<RemoteFile>,
        }
        let f: F = toml::from_str(toml)?;
        Remote::from_file(f.remote.as_ref())
    }

    #[test]
    fn sections_parse_with_defaults_and_secrets_stay_out_of_debug() {
        assert!(parse("").unwrap().is_none());
        let r = parse(
            r#"
            [remote]
            bucket = "b"
            endpoint = "http://127.0.0.1:3900"
            secret_access_key = "hunter2"
            [remote.data]
            keep_local_secs = 60
            compress = "never"
            "#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.node, "node-1");
        assert_eq!(r.data.keep_local, Some(Duration::from_secs(60)));
        assert_eq!(r.data.compression, Compression::Never);
        assert_eq!(r.catalog.compression, Compression::Always);
        match &r.store.store {
            StoreKind::S3 { path_style, .. } => assert!(*path_style),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(parse("[remote]\nendpoint = \"x\"").is_err(), "no bucket");
        assert!(parse("[remote]\nbucket = \"b\"\nnode = \"a/b\"").is_err());
        assert!(parse("[remote]\nbucket = \"b\"\n[remote.data]\ncompress = \"lz4\"").is_err());
        assert!(
            parse("[remote]\nstore = \"filesystem\"").is_err(),
            "no path"
        );
    }
}
