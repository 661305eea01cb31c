//! Import: a bucket from a CAR file, checked end to end before anything
//! is written, then copied into the log, made durable, and indexed under
//! the same head commit CID.

use std::sync::Arc;

use billet_block::{Block, BlockStore};
use billet_car::CarFile;
use billet_index::BucketState;

use crate::error::{EngineError, join_error};
use crate::verify::{VerifyReport, verify_head};
use crate::{Engine, now_ms};

/// Bytes of blocks handed to the log per write.
const COPY_BATCH: usize = 8 << 20;

impl Engine {
    /// Imports the bucket in `car` as `name` (default: the name its head
    /// commit records). Any problem — a block that does not hash to its
    /// CID, a missing block, a broken MST, a manifest or body that
    /// disagrees with itself — fails the import before the log or the
    /// index is touched.
    pub async fn import_car(
        &self,
        car: Arc<CarFile>,
        name: Option<&str>,
        owner: &str,
    ) -> Result<VerifyReport, EngineError> {
        let head = match car.roots() {
            [one] => *one,
            roots => {
                return Err(EngineError::Invalid(format!(
                    "the CAR has {} roots; a bucket export has exactly one, its head commit",
                    roots.len()
                )));
            }
        };
        let checked = {
            let car = car.clone();
            tokio::task::spawn_blocking(move || verify_head(car.as_ref(), &head))
                .await
                .map_err(join_error)??
        };
        let report = checked.report;
        if !car.unchanged() {
            return Err(EngineError::Invalid(format!(
                "{} changed while it was being checked",
                car.path().display()
            )));
        }
        if let Some(first) = report.problems.first() {
            return Err(EngineError::Invalid(format!(
                "the CAR fails verification with {} problem(s); the first: {first}",
                report.problems.len()
            )));
        }
        let name = name.unwrap_or(&report.bucket).to_string();
        if !valid_bucket_name(&name) {
            return Err(EngineError::Invalid(format!(
                "{name:?} is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')"
            )));
        }
        if self.index().bucket(&name).await?.is_some() {
            return Err(EngineError::BucketExists(name));
        }

        // Every block of the file goes to the log (history and all), then
        // one sync makes them durable before the index points at them.
        let log = self.log().clone();
        let receipt = {
            let car = car.clone();
            tokio::task::spawn_blocking(move || copy_blocks(&car, &log))
                .await
                .map_err(join_error)??
        };
        if !car.unchanged() {
            return Err(EngineError::Invalid(format!(
                "{} changed while it was being imported",
                car.path().display()
            )));
        }
        self.log().sync(receipt).await?;

        let state = BucketState {
            name: name.clone(),
            owner: owner.to_string(),
            created_ms: now_ms(),
            head,
            seq: report.seq,
            settings: report.settings.clone(),
        };
        self.index().create_bucket(&state).await?;
        let rows = checked.rows;
        let rebuilt = self
            .index()
            .rebuild(
                &name,
                head,
                report.seq,
                &report.settings,
                Box::new(rows.into_iter().map(Ok)),
            )
            .await;
        if let Err(e) = rebuilt {
            // Leave no half-indexed bucket behind.
            let _ = self.index().delete_bucket(&name).await;
            return Err(e.into());
        }
        let time_ms = billet_records::Commit::decode(&billet_block::BlockStore::get(
            self.store().as_ref(),
            &head,
        )?)?
        .time;
        self.start_history(
            &name,
            billet_index::CommitRow {
                seq: report.seq,
                cid: head,
                time_ms,
            },
        )
        .await?;
        self.handle(&name).forget_head();
        self.note_head(&name, head, report.seq);
        Ok(report)
    }
}

/// S3's bucket naming rules, as far as they concern a name on disk.
fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Copies every block of the file into the log, hashing each again as it
/// goes in, on as many threads as there are cores (the log takes
/// concurrent writers). Returns what to sync.
fn copy_blocks(car: &CarFile, log: &billet_log::Log) -> Result<billet_log::Receipt, EngineError> {
    let cids = car.cids();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let per = cids.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = cids
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    let mut receipt = billet_log::Receipt::default();
                    let mut batch: Vec<Block> = Vec::new();
                    let mut pending = 0usize;
                    for cid in part {
                        if log.has(cid)? {
                            continue;
                        }
                        let block = car.block(cid)?;
                        pending += block.len();
                        batch.push(block);
                        if pending >= COPY_BATCH {
                            receipt = receipt.merge(log.write(&batch)?);
                            batch.clear();
                            pending = 0;
                        }
                    }
                    if !batch.is_empty() {
                        receipt = receipt.merge(log.write(&batch)?);
                    }
                    Ok::<_, EngineError>(receipt)
                })
            })
            .collect();
        let mut receipt = billet_log::Receipt::default();
        for w in workers {
            let r = w
                .join()
                .map_err(|_| EngineError::Task("a copy thread panicked".into()))??;
            receipt = receipt.merge(r);
        }
        Ok(receipt)
    })
}
