//! The index rows a batch's planning needs, read before it decides, so
//! that planning itself is a pure function (see `plan`).
//!
//! What each mutation needs, with the versioning in force when it is
//! planned: a condition or a versioned write needs the key's latest
//! version; a new null version in a suspended bucket also needs to know
//! whether an older null version exists, and if it does, every version of
//! the key (the chain is re-linked without it); deleting or retagging a
//! version that exists needs every version of the key (a version not
//! loaded is one that does not exist); completing or aborting an upload
//! needs to know whether it is open. An unconditional overwrite
//! in an unversioned bucket reads nothing.

use std::collections::{HashMap, HashSet};

use billet_index::{NULL_VERSION, ObjectVersion, VersionQuery};
use billet_records::{BucketSettings, Versioning};

use super::mutation::Mutation;
use crate::Inner;
use crate::error::EngineError;

/// What planning reads about a batch's keys and uploads.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rows {
    /// Keys whose every version is known, newest first.
    all: HashMap<String, Vec<ObjectVersion>>,
    /// Keys whose latest version (or its absence) is known.
    latest: HashMap<String, Option<ObjectVersion>>,
    /// Keys known to have (or not to have) a null version.
    null: HashMap<String, bool>,
    /// Upload ids known to be open.
    open_uploads: HashSet<String>,
}

impl Rows {
    /// The key's latest version, delete markers included.
    pub fn latest(&self, key: &str) -> Option<&ObjectVersion> {
        match self.all.get(key) {
            Some(all) => all.iter().find(|v| v.is_latest),
            None => self.latest.get(key).and_then(Option::as_ref),
        }
    }

    /// One version of the key (the latest with `None`).
    pub fn version(&self, key: &str, version_id: Option<&str>) -> Option<&ObjectVersion> {
        match version_id {
            None => self.latest(key),
            Some(v) => self
                .all
                .get(key)
                .and_then(|all| all.iter().find(|x| x.version_id == v)),
        }
    }

    /// Every version of the key, newest first, if loaded.
    pub fn all(&self, key: &str) -> Option<&[ObjectVersion]> {
        self.all.get(key).map(Vec::as_slice)
    }

    pub fn has_null_version(&self, key: &str) -> bool {
        match self.all.get(key) {
            Some(all) => all.iter().any(|v| v.version_id == NULL_VERSION),
            None => self.null.get(key).copied().unwrap_or(false),
        }
    }

    pub fn upload_open(&self, upload_id: &str) -> bool {
        self.open_uploads.contains(upload_id)
    }

    /// Rows for tests: every version of each key given, newest first (the
    /// first is latest), and the open uploads.
    #[cfg(test)]
    pub fn known(
        keys: impl IntoIterator<Item = (String, Vec<ObjectVersion>)>,
        uploads: impl IntoIterator<Item = String>,
    ) -> Rows {
        Rows {
            all: keys.into_iter().collect(),
            open_uploads: uploads.into_iter().collect(),
            ..Rows::default()
        }
    }
}

/// Reads what `mutations` need, planned on a head with `settings`.
pub(crate) async fn load(
    inner: &Inner,
    bucket: &str,
    settings: &BucketSettings,
    mutations: &[Mutation],
) -> Result<Rows, EngineError> {
    let mut loader = Loader {
        inner,
        bucket,
        rows: Rows::default(),
    };
    let mut versioning = settings.versioning;
    for m in mutations {
        match m {
            Mutation::Settings(s) => versioning = s.versioning,
            Mutation::Put {
                key,
                condition,
                upload,
                ..
            } => {
                if let Some(id) = upload {
                    loader.upload(id).await?;
                }
                if condition.is_some() || versioning != Versioning::Unversioned {
                    loader.latest(key).await?;
                }
                if versioning == Versioning::Suspended {
                    loader.null_chain(key).await?;
                }
            }
            Mutation::Delete {
                key,
                version_id: None,
                ..
            } => {
                loader.latest(key).await?;
                if versioning == Versioning::Suspended {
                    loader.null_chain(key).await?;
                }
            }
            Mutation::Delete {
                key,
                version_id: Some(v),
                ..
            } => loader.version_chain(key, Some(v)).await?,
            Mutation::Rewrite {
                key, version_id, ..
            } => loader.version_chain(key, version_id.as_deref()).await?,
            Mutation::Abort { upload_id } => loader.upload(upload_id).await?,
        }
    }
    Ok(loader.rows)
}

struct Loader<'a> {
    inner: &'a Inner,
    bucket: &'a str,
    rows: Rows,
}

impl Loader<'_> {
    async fn upload(&mut self, id: &str) -> Result<(), EngineError> {
        if !self.rows.open_uploads.contains(id)
            && self.inner.index.upload(self.bucket, id).await?.is_some()
        {
            self.rows.open_uploads.insert(id.to_string());
        }
        Ok(())
    }

    async fn latest(&mut self, key: &str) -> Result<(), EngineError> {
        if self.rows.all.contains_key(key) || self.rows.latest.contains_key(key) {
            return Ok(());
        }
        let v = self.inner.index.object(self.bucket, key, None).await?;
        self.rows.latest.insert(key.to_string(), v);
        Ok(())
    }

    /// Whether a new null version on top of the latest leaves an older
    /// null version behind, and if so every version of the key.
    async fn null_chain(&mut self, key: &str) -> Result<(), EngineError> {
        self.latest(key).await?;
        let above_null = self
            .rows
            .latest(key)
            .is_some_and(|v| v.version_id != NULL_VERSION);
        if !above_null || self.rows.all.contains_key(key) || self.rows.null.contains_key(key) {
            return Ok(());
        }
        let null = self
            .inner
            .index
            .object(self.bucket, key, Some(NULL_VERSION))
            .await?
            .is_some();
        self.rows.null.insert(key.to_string(), null);
        if null {
            self.all(key).await?;
        }
        Ok(())
    }

    /// Every version of the key if the given one (the latest with `None`)
    /// exists: removing or retagging it re-links the versions above it.
    /// Planning takes a version that is not loaded to be absent.
    async fn version_chain(
        &mut self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(), EngineError> {
        let exists = match version_id {
            None => {
                self.latest(key).await?;
                self.rows.latest(key).is_some()
            }
            Some(v) => {
                self.rows.version(key, Some(v)).is_some()
                    || self
                        .inner
                        .index
                        .object(self.bucket, key, Some(v))
                        .await?
                        .is_some()
            }
        };
        if exists {
            self.all(key).await?;
        }
        Ok(())
    }

    /// Every version of the key, newest first, with manifests.
    async fn all(&mut self, key: &str) -> Result<(), EngineError> {
        if self.rows.all.contains_key(key) {
            return Ok(());
        }
        let (inner, bucket) = (self.inner, self.bucket);
        let mut out = Vec::new();
        let mut q = VersionQuery {
            prefix: key.to_string(),
            max_keys: 1000,
            ..Default::default()
        };
        'pages: loop {
            let page = inner.index.list_versions(bucket, &q).await?;
            for v in &page.versions {
                if v.key != key {
                    // Versions come key by key: the key's own are all first.
                    break 'pages;
                }
                if let Some(full) = inner.index.object(bucket, key, Some(&v.version_id)).await? {
                    out.push(full);
                }
            }
            if !page.truncated {
                break;
            }
            q.key_marker = page.next_key_marker;
            q.version_id_marker = page.next_version_id_marker;
        }
        self.rows.latest.remove(key);
        self.rows.all.insert(key.to_string(), out);
        Ok(())
    }
}
