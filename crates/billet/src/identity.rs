//! The node's Ed25519 identity: created on first start, kept in the data
//! directory readable by the owner only, shown as a `did:key`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;

const FILE: &str = "identity.key";

/// Loads the identity, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte Ed25519 seed", path.display()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            let tmp = data_dir.join(format!("{FILE}.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(&seed)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(data_dir)?.sync_all()?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `did:key` of the node's public key (see `billet_proof::did_key`).
pub fn did_key(key: &SigningKey) -> String {
    billet_proof::did_key(&key.verifying_key())
}
