//! The index's rules, written once over the storage seam
//! ([`crate::tx::BucketTx`]) and run by every backend inside its
//! transaction: what a commit checks and changes, how listings page, how
//! multipart uploads open and close, how rows are rebuilt.
//!
//! Each backend provides [`RunTx`] (how to run a closure over a bucket's
//! rows, reading or in a write transaction); the `Index` methods that
//! carry rules are the functions below, which every backend's `Index`
//! implementation calls.

mod commit;
mod listing;
mod rebuild;
mod uploads;

use std::future::Future;

use billet_block::Cid;
use billet_records::BucketSettings;

use crate::RebuildRows;
use crate::error::IndexError;
use crate::tx::{BucketTx, Durability};
use crate::types::*;

/// How a backend runs a rule over one bucket's rows: on a blocking thread,
/// failing with `NoSuchBucket` if there is no such bucket; `write` commits
/// the transaction if the rule succeeds (durably with `Durable`).
pub(crate) trait RunTx {
    fn read<T: Send + 'static>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> impl Future<Output = Result<T, IndexError>> + Send;

    fn write<T: Send + 'static>(
        &self,
        bucket: &str,
        durability: Durability,
        f: impl FnOnce(&mut dyn BucketTx) -> Result<T, IndexError> + Send + 'static,
    ) -> impl Future<Output = Result<T, IndexError>> + Send;
}

pub(crate) async fn commit(b: &impl RunTx, batch: CommitBatch) -> Result<(), IndexError> {
    let name = batch.bucket.clone();
    b.write(&name, Durability::Deferred, move |tx| {
        commit::commit(tx, &batch)
    })
    .await
}

pub(crate) async fn commits(
    b: &impl RunTx,
    bucket: &str,
    from_seq: u64,
    max: usize,
) -> Result<Vec<CommitRow>, IndexError> {
    b.read(bucket, move |tx| tx.commits_from(from_seq, max))
        .await
}

pub(crate) async fn put_commits(
    b: &impl RunTx,
    bucket: &str,
    rows: Vec<CommitRow>,
) -> Result<(), IndexError> {
    b.write(bucket, Durability::Deferred, move |tx| {
        tx.put_commits(&rows)
    })
    .await
}

pub(crate) async fn list_objects(
    b: &impl RunTx,
    bucket: &str,
    q: &ListQuery,
) -> Result<ListPage, IndexError> {
    let q = q.clone();
    b.read(bucket, move |tx| listing::list_objects(tx, &q))
        .await
}

pub(crate) async fn list_versions(
    b: &impl RunTx,
    bucket: &str,
    q: &VersionQuery,
) -> Result<VersionPage, IndexError> {
    let q = q.clone();
    b.read(bucket, move |tx| listing::list_versions(tx, &q))
        .await
}

pub(crate) async fn list_uploads(
    b: &impl RunTx,
    bucket: &str,
    q: &UploadQuery,
) -> Result<UploadPage, IndexError> {
    let q = q.clone();
    b.read(bucket, move |tx| listing::list_uploads(tx, &q))
        .await
}

/// (A plain function returning the write's future: as an `async fn` its
/// future would hold the settings reference across the await, which the
/// compiler cannot prove `Send` for every lifetime.)
pub(crate) fn rebuild<'a>(
    b: &'a impl RunTx,
    bucket: &'a str,
    head: Cid,
    seq: u64,
    settings: &BucketSettings,
    rows: RebuildRows,
) -> impl Future<Output = Result<u64, IndexError>> + Send + 'a {
    let settings = settings.clone();
    b.write(bucket, Durability::Deferred, move |tx| {
        rebuild::rebuild(tx, head, seq, &settings, rows)
    })
}

pub(crate) async fn create_upload(
    b: &impl RunTx,
    bucket: &str,
    upload: &Upload,
) -> Result<(), IndexError> {
    let u = upload.clone();
    b.write(bucket, Durability::Durable, move |tx| {
        uploads::create_upload(tx, &u)
    })
    .await
}

pub(crate) async fn put_part(
    b: &impl RunTx,
    bucket: &str,
    upload_id: &str,
    part: &Part,
) -> Result<Option<Part>, IndexError> {
    let (id, p) = (upload_id.to_string(), part.clone());
    b.write(bucket, Durability::Durable, move |tx| {
        uploads::put_part(tx, &id, &p)
    })
    .await
}

pub(crate) async fn parts(
    b: &impl RunTx,
    bucket: &str,
    upload_id: &str,
    after: u32,
    max: usize,
) -> Result<PartPage, IndexError> {
    let id = upload_id.to_string();
    b.read(bucket, move |tx| uploads::parts(tx, &id, after, max))
        .await
}

pub(crate) async fn abort_upload(
    b: &impl RunTx,
    bucket: &str,
    upload_id: &str,
) -> Result<Vec<Part>, IndexError> {
    let id = upload_id.to_string();
    b.write(bucket, Durability::Durable, move |tx| {
        uploads::abort_upload(tx, &id)
    })
    .await
}
