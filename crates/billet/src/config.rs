//! Configuration: a TOML file, `BILLET_*` environment variables and
//! command-line flags, in rising precedence. Every field is documented in
//! the README's configuration table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The file's shape. Every field is optional; defaults fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub region: Option<String>,
    pub domain: Option<String>,
    pub chunk_size: Option<usize>,
    pub cache_bytes: Option<u64>,
    pub max_put_bytes: Option<u64>,
    pub min_part_size: Option<u64>,
    pub upload_expiry_secs: Option<u64>,
    pub checkpoint_interval_secs: Option<u64>,
    pub log_level: Option<String>,
    /// Who may use Basic authentication on `/_billet/v1`: `off`,
    /// `loopback` (default) or `on`.
    pub history_basic_auth: Option<String>,
    #[serde(default)]
    pub index: IndexFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub gc: GcFile,
    #[serde(default)]
    pub lifecycle: LifecycleFile,
    pub remote: Option<crate::remote_config::RemoteFile>,
}

/// The background pass that applies buckets' lifecycle configurations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    /// Seconds between passes (default a day); 0 turns them off.
    pub interval_secs: Option<u64>,
    /// How long a lifecycle "day" is, in seconds (default 86400). Shorter
    /// days are for tests, as Ceph RGW's `rgw_lc_debug_interval`.
    pub day_secs: Option<u64>,
}

/// The garbage collector (see `docs/gc.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcFile {
    /// Seconds between background collections; 0 turns them off.
    pub interval_secs: Option<u64>,
    /// History a bucket keeps readable unless it sets its own: commits
    /// younger than this many seconds...
    pub keep_secs: Option<u64>,
    /// ... or among the newest this many.
    pub keep_commits: Option<u64>,
    /// Segments whose live share is below this are rewritten.
    pub threshold: Option<f64>,
    /// Live bytes copied per batch.
    pub batch_bytes: Option<u64>,
    /// Memory the mark's filter may take.
    pub filter_max_bytes: Option<u64>,
    /// MiB copied per second at most (0: no limit).
    pub copy_mib_per_sec: Option<u64>,
}

/// Bounds on connections and their timing (see `listener`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub send_timeout_ms: Option<u64>,
    pub auth_failures_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexFile {
    /// `sqlite` (default) or `postgres`.
    pub backend: Option<String>,
    pub max_open_buckets: Option<usize>,
    pub url: Option<String>,
    pub schema: Option<String>,
    pub pool_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub data_seal_bytes: Option<u64>,
    pub data_seal_after_ms: Option<u64>,
    pub catalog_seal_bytes: Option<u64>,
    pub catalog_seal_after_ms: Option<u64>,
}

/// Values given on the command line or in the environment (clap merges
/// the two); they override the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Configuration file (TOML).
    #[arg(long, env = "BILLET_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the log, the index and the node identity.
    #[arg(long, env = "BILLET_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to serve S3 on.
    #[arg(long, env = "BILLET_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Index backend: `sqlite` or `postgres`.
    #[arg(long, env = "BILLET_INDEX", global = true)]
    pub index: Option<String>,
    /// PostgreSQL URL (backend `postgres`).
    #[arg(long, env = "BILLET_POSTGRES_URL", global = true)]
    pub postgres_url: Option<String>,
    /// PostgreSQL schema billet keeps its tables in (default `billet`).
    #[arg(long, env = "BILLET_POSTGRES_SCHEMA", global = true)]
    pub postgres_schema: Option<String>,
    /// Base domain for virtual-hosted-style requests.
    #[arg(long, env = "BILLET_DOMAIN", global = true)]
    pub domain: Option<String>,
    /// Log filter (e.g. `info`, `billet=debug`).
    #[arg(long, env = "BILLET_LOG", global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone)]
pub enum IndexBackend {
    Sqlite {
        max_open_buckets: usize,
    },
    Postgres {
        url: String,
        schema: String,
        pool_size: usize,
    },
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub domain: Option<String>,
    pub chunk_size: usize,
    pub cache_bytes: u64,
    pub max_put_bytes: u64,
    /// Smallest multipart part but the last.
    pub min_part_size: u64,
    /// Multipart uploads older than this are aborted.
    pub upload_expiry: Duration,
    /// How often each bucket whose head moved gets a new signed checkpoint.
    pub checkpoint_interval: Duration,
    pub log_level: String,
    pub index: IndexBackend,
    pub log: billet_log::LogConfig,
    pub limits: Limits,
    /// The cold tier, if a `[remote]` is configured.
    pub remote: Option<crate::remote_config::Remote>,
    /// The garbage collector.
    pub gc: billet_engine::GcConfig,
    /// Between background collections (`None`: none run).
    pub gc_interval: Option<Duration>,
    /// Between lifecycle passes (`None`: none run).
    pub lifecycle_interval: Option<Duration>,
    /// How long a lifecycle day is.
    pub lifecycle_day: Duration,
    /// Who may use Basic authentication on `/_billet/v1`.
    pub history_basic_auth: crate::history_api::BasicAuth,
}

/// How many connections the server holds and how long it waits for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; further ones wait in the listen backlog.
    /// The server lowers it to what its file-descriptor limit allows.
    pub max_connections: usize,
    /// From when the server starts waiting for a request (a new
    /// connection, or the end of the previous response on a kept-alive
    /// one) to the request's last header byte: so also how long an idle
    /// connection stays open.
    pub header_timeout: Duration,
    /// Longest the server waits for the next bytes of a request body.
    pub body_timeout: Duration,
    /// Longest a response write waits for the client to read.
    pub send_timeout: Duration,
    /// Failed `/_billet/v1` Basic-auth attempts per client address per
    /// minute before further attempts are refused (429).
    pub auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            auth_failures_per_minute: 10,
        }
    }
}

impl Limits {
    fn from_file(f: &LimitsFile) -> Result<Limits> {
        let d = Limits::default();
        let ms = |v: Option<u64>, default: Duration, name: &str| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(0) => bail!("limits.{name} must be at least 1 ms"),
                Some(v) => Ok(Duration::from_millis(v)),
            }
        };
        let max_connections = f.max_connections.unwrap_or(d.max_connections);
        if max_connections == 0 {
            bail!("limits.max_connections must be at least 1");
        }
        Ok(Limits {
            max_connections,
            header_timeout: ms(f.header_timeout_ms, d.header_timeout, "header_timeout_ms")?,
            body_timeout: ms(f.body_timeout_ms, d.body_timeout, "body_timeout_ms")?,
            send_timeout: ms(f.send_timeout_ms, d.send_timeout, "send_timeout_ms")?,
            auth_failures_per_minute: f
                .auth_failures_per_minute
                .unwrap_or(d.auth_failures_per_minute),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl Config {
    pub fn load(o: &Overrides) -> Result<Config> {
        let file = match &o.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let chunk_size = file.chunk_size.unwrap_or(billet_unixfs_default_chunk());
        if chunk_size == 0 || chunk_size > 4 << 20 {
            bail!("chunk_size must be between 1 byte and 4 MiB, not {chunk_size}");
        }
        let backend = o
            .index
            .clone()
            .or(file.index.backend.clone())
            .unwrap_or_else(|| "sqlite".into());
        let index = match backend.as_str() {
            "sqlite" => IndexBackend::Sqlite {
                max_open_buckets: file.index.max_open_buckets.unwrap_or(256),
            },
            "postgres" => IndexBackend::Postgres {
                url: o
                    .postgres_url
                    .clone()
                    .or(file.index.url.clone())
                    .context("index backend postgres needs a URL (--postgres-url, BILLET_POSTGRES_URL or [index] url)")?,
                schema: o
                    .postgres_schema
                    .clone()
                    .or(file.index.schema.clone())
                    .unwrap_or_else(|| "billet".into()),
                pool_size: file.index.pool_size.unwrap_or(16),
            },
            other => bail!("unknown index backend {other:?} (sqlite or postgres)"),
        };
        let mut log = billet_log::LogConfig::default();
        if let Some(v) = file.log.data_seal_bytes {
            log.data.seal_bytes = v;
        }
        if let Some(v) = file.log.data_seal_after_ms {
            log.data.seal_after = Duration::from_millis(v);
        }
        if let Some(v) = file.log.catalog_seal_bytes {
            log.catalog.seal_bytes = v;
        }
        if let Some(v) = file.log.catalog_seal_after_ms {
            log.catalog.seal_after = Duration::from_millis(v);
        }
        Ok(Config {
            data_dir: o
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("billet-data")),
            listen: o
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
            region: file.region.unwrap_or_else(|| "us-east-1".into()),
            domain: o.domain.clone().or(file.domain),
            chunk_size,
            cache_bytes: file.cache_bytes.unwrap_or(16 << 20),
            max_put_bytes: file.max_put_bytes.unwrap_or(5 << 30),
            min_part_size: file.min_part_size.unwrap_or(5 << 20),
            upload_expiry: Duration::from_secs(
                file.upload_expiry_secs.unwrap_or(7 * 24 * 3600).max(1),
            ),
            checkpoint_interval: Duration::from_secs(
                file.checkpoint_interval_secs.unwrap_or(300).max(1),
            ),
            log_level: o
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            index,
            log,
            limits: Limits::from_file(&file.limits)?,
            remote: crate::remote_config::Remote::from_file(file.remote.as_ref())?,
            gc: gc_config(&file.gc)?,
            gc_interval: match file.gc.interval_secs.unwrap_or(3600) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            lifecycle_interval: match file.lifecycle.interval_secs.unwrap_or(86_400) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            lifecycle_day: match file.lifecycle.day_secs.unwrap_or(86_400) {
                0 => anyhow::bail!("lifecycle.day_secs must be at least 1"),
                s => Duration::from_secs(s),
            },
            history_basic_auth: match file.history_basic_auth.as_deref() {
                None => crate::history_api::BasicAuth::Loopback,
                Some(v) => crate::history_api::BasicAuth::parse(v).with_context(|| {
                    format!("history_basic_auth must be off, loopback or on, not {v:?}")
                })?,
            },
        })
    }
}

impl Config {
    /// What the engine is opened with: the log, the limits, and the cold
    /// tier over its store when a remote is configured.
    pub fn engine(&self) -> Result<billet_engine::EngineConfig> {
        let mut ec = billet_engine::EngineConfig::new(&self.data_dir);
        ec.chunk_size = self.chunk_size;
        ec.cache_bytes = self.cache_bytes;
        ec.max_put_bytes = self.max_put_bytes;
        ec.min_part_size = self.min_part_size;
        ec.log = self.log.clone();
        ec.cold = self.remote.as_ref().map(|r| r.cold_config()).transpose()?;
        ec.gc = self.gc.clone();
        Ok(ec)
    }
}

fn gc_config(f: &GcFile) -> Result<billet_engine::GcConfig> {
    let mut gc = billet_engine::GcConfig::default();
    if f.keep_secs.is_some() || f.keep_commits.is_some() {
        gc.retention = billet_engine::Retention {
            keep_secs: f.keep_secs,
            keep_commits: f.keep_commits,
        };
    }
    if let Some(t) = f.threshold {
        if !(0.0..=1.0).contains(&t) {
            bail!("gc.threshold must be between 0 and 1, not {t}");
        }
        gc.threshold = t;
    }
    if let Some(b) = f.batch_bytes {
        gc.batch_bytes = b.max(1);
    }
    if let Some(b) = f.filter_max_bytes {
        gc.filter_max_bytes = b.max(4096);
    }
    if let Some(m) = f.copy_mib_per_sec {
        gc.copy_bytes_per_sec = (m > 0).then(|| m.saturating_mul(1 << 20));
    }
    Ok(gc)
}

fn billet_unixfs_default_chunk() -> usize {
    1 << 20
}
