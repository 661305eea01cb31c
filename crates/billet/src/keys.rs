//! Access keys: `billet keys create|allow|deny|list|delete`, and the
//! first-start key.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use billet_index::{
    AccessKey, Grant, Index, IndexError, PgConfig, PgIndex, SqliteConfig, SqliteIndex,
};

use crate::config::{Config, IndexBackend};

/// Opens the configured index.
pub async fn open_index(config: &Config) -> Result<Arc<dyn Index>> {
    Ok(match &config.index {
        IndexBackend::Sqlite { max_open_buckets } => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let dir = config.data_dir.join("index");
            let ix = SqliteIndex::open(SqliteConfig {
                dir: dir.clone(),
                max_open_buckets: *max_open_buckets,
            })
            .with_context(|| format!("opening the SQLite index in {}", dir.display()))?;
            Arc::new(ix)
        }
        IndexBackend::Postgres {
            url,
            schema,
            pool_size,
        } => Arc::new(
            PgIndex::open(PgConfig {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: *pool_size,
            })
            .await
            .context("opening the PostgreSQL index")?,
        ),
    })
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new key pair: a 20-character id and a 40-character secret.
pub fn generate(owner: &str) -> AccessKey {
    AccessKey {
        id: format!(
            "BK{}",
            random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18)
        ),
        secret: random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        ),
        owner: owner.to_string(),
        created_ms: billet_engine::now_ms(),
        disabled: false,
        limited: false,
    }
}

pub async fn create(
    index: &dyn Index,
    owner: &str,
    id: Option<String>,
    secret: Option<String>,
    limited: bool,
) -> Result<AccessKey> {
    let mut key = generate(owner);
    key.limited = limited;
    if let Some(id) = id {
        if id.len() < 3 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("access key id {id:?} must be 3 to 128 letters and digits");
        }
        key.id = id;
    }
    if let Some(secret) = secret {
        if secret.len() < 8 {
            bail!("a secret key must be at least 8 characters");
        }
        key.secret = secret;
    }
    match index.put_access_key(&key).await {
        Ok(()) => Ok(key),
        Err(IndexError::AccessKeyExists(id)) => bail!("access key {id} already exists"),
        Err(e) => Err(e.into()),
    }
}

/// Credentials for first start: the ones in BILLET_ACCESS_KEY /
/// BILLET_SECRET_KEY (created if missing), else a generated pair when the
/// index has no key at all. Returns a key only when it was just created.
pub async fn bootstrap(index: &dyn Index) -> Result<Option<AccessKey>> {
    let id = std::env::var("BILLET_ACCESS_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    let secret = std::env::var("BILLET_SECRET_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => match index.access_key(&id).await? {
            Some(k) if k.secret == secret => Ok(None),
            Some(_) => {
                bail!("access key {id} exists with another secret; delete it or use its secret")
            }
            None => create(index, "billet", Some(id), Some(secret), false)
                .await
                .map(|_| None),
        },
        (None, None) => {
            if index.access_keys().await?.is_empty() {
                Ok(Some(create(index, "billet", None, None, false).await?))
            } else {
                Ok(None)
            }
        }
        _ => bail!("set both BILLET_ACCESS_KEY and BILLET_SECRET_KEY, or neither"),
    }
}

/// The permissions `billet keys allow|deny` name.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct PermFlags {
    /// Read objects, versions, tags and listings.
    #[arg(long)]
    pub read: bool,
    /// Write and delete objects, uploads and tags.
    #[arg(long)]
    pub write: bool,
    /// Configure the bucket (policy, ACL, CORS, versioning...) and delete it.
    #[arg(long)]
    pub owner: bool,
}

impl PermFlags {
    pub const READ: PermFlags = PermFlags {
        read: true,
        write: false,
        owner: false,
    };

    fn any(self) -> bool {
        self.read || self.write || self.owner
    }
}

async fn current_grant(index: &dyn Index, key: &str, bucket: &str) -> Result<Grant> {
    if index.access_key(key).await?.is_none() {
        bail!("access key {key} does not exist");
    }
    if bucket != "*" && index.bucket(bucket).await?.is_none() {
        bail!("bucket {bucket} does not exist");
    }
    Ok(index
        .grants(Some(key))
        .await?
        .into_iter()
        .find(|g| g.bucket == bucket)
        .unwrap_or(Grant {
            key_id: key.to_string(),
            bucket: bucket.to_string(),
            read: false,
            write: false,
            owner: false,
        }))
}

fn describe(g: &Grant) -> String {
    let perms: Vec<&str> = [(g.read, "read"), (g.write, "write"), (g.owner, "owner")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if perms.is_empty() {
        "nothing".into()
    } else {
        perms.join("+")
    }
}

pub async fn allow(index: &dyn Index, key: &str, bucket: &str, perms: PermFlags) -> Result<()> {
    if !perms.any() {
        bail!("name what to allow: --read, --write and/or --owner");
    }
    let mut g = current_grant(index, key, bucket).await?;
    g.read |= perms.read;
    g.write |= perms.write;
    g.owner |= perms.owner;
    index.set_grant(&g).await?;
    println!("{key} on {bucket}: {}", describe(&g));
    Ok(())
}

pub async fn deny(index: &dyn Index, key: &str, bucket: &str, perms: PermFlags) -> Result<()> {
    let mut g = current_grant(index, key, bucket).await?;
    if perms.any() {
        g.read &= !perms.read;
        g.write &= !perms.write;
        g.owner &= !perms.owner;
    } else {
        (g.read, g.write, g.owner) = (false, false, false);
    }
    index.set_grant(&g).await?;
    println!("{key} on {bucket}: {}", describe(&g));
    Ok(())
}

pub async fn list(index: &dyn Index) -> Result<()> {
    let keys = index.access_keys().await?;
    let grants = index.grants(None).await?;
    println!(
        "{:<24} {:<12} {:<9} created",
        "access key", "owner", "status"
    );
    for k in keys {
        let status = match (k.disabled, k.limited) {
            (true, _) => "disabled",
            (false, true) => "limited",
            (false, false) => "active",
        };
        let created =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(k.created_ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| k.created_ms.to_string());
        println!("{:<24} {:<12} {:<9} {created}", k.id, k.owner, status);
        for g in grants.iter().filter(|g| g.key_id == k.id) {
            println!("    {:<20} {}", g.bucket, describe(g));
        }
    }
    Ok(())
}

pub async fn delete(index: &dyn Index, id: &str) -> Result<()> {
    if !index.delete_access_key(id).await? {
        bail!("access key {id} does not exist");
    }
    println!("deleted {id}");
    Ok(())
}
