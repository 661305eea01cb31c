//! One queue and one worker per bucket: whoever submits to an idle bucket
//! starts its worker, which takes everything queued (up to the batch size)
//! and commits it as one batch, until the queue is empty.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::commit::{Head, commit_batch};
use super::mutation::{Mutation, Outcome};
use crate::Inner;
use crate::error::EngineError;

struct Pending {
    mutation: Mutation,
    reply: oneshot::Sender<Result<Outcome, EngineError>>,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Pending>,
    running: bool,
}

/// A bucket's queue of mutations and the head its last batch left.
pub(crate) struct BucketQueue {
    pub(super) name: String,
    queue: Mutex<Queue>,
    head: Mutex<Option<Head>>,
}

impl BucketQueue {
    pub fn new(name: &str) -> BucketQueue {
        BucketQueue {
            name: name.to_string(),
            queue: Mutex::new(Queue::default()),
            head: Mutex::new(None),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cached_head(&self) -> std::sync::MutexGuard<'_, Option<Head>> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the cached head: the next batch reads it from the index.
    pub fn forget_head(&self) {
        *self.cached_head() = None;
    }
}

/// Queues a mutation and waits for the batch it lands in to commit.
pub(crate) async fn submit(
    inner: &Arc<Inner>,
    bucket: &Arc<BucketQueue>,
    mutation: Mutation,
) -> Result<Outcome, EngineError> {
    if let Some(cold) = &inner.cold {
        cold.admit()?;
    }
    let (tx, rx) = oneshot::channel();
    let start_worker = {
        let mut q = bucket.queue();
        q.ops.push(Pending {
            mutation,
            reply: tx,
        });
        !std::mem::replace(&mut q.running, true)
    };
    if start_worker {
        let (inner, bucket) = (inner.clone(), bucket.clone());
        tokio::spawn(async move { worker(inner, bucket).await });
    }
    rx.await.map_err(|_| EngineError::PipelineStopped)?
}

async fn worker(inner: Arc<Inner>, bucket: Arc<BucketQueue>) {
    loop {
        let batch: Vec<Pending> = {
            let mut q = bucket.queue();
            if q.ops.is_empty() {
                q.running = false;
                return;
            }
            let n = q.ops.len().min(inner.config.max_batch);
            q.ops.drain(..n).collect()
        };
        inner.stats.record_batch(batch.len());
        let (mut mutations, mut replies): (Vec<Mutation>, Vec<_>) =
            batch.into_iter().map(|p| (p.mutation, p.reply)).unzip();
        let results = match commit_batch(&inner, &bucket, &mutations).await {
            Ok(results) => results,
            Err(e) => {
                bucket.forget_head();
                let msg = e.to_string();
                tracing::warn!(bucket = %bucket.name, error = %msg, "commit batch failed");
                // The whole batch failed; each writer gets the reason.
                (0..replies.len())
                    .map(|_| Err(EngineError::CommitFailed(msg.clone())))
                    .collect()
            }
        };
        // What the batch did not take goes back to the front of the queue.
        let taken = results.len().max(1).min(mutations.len());
        let rest: Vec<Pending> = mutations
            .drain(taken..)
            .zip(replies.drain(taken..))
            .map(|(mutation, reply)| Pending { mutation, reply })
            .collect();
        if !rest.is_empty() {
            bucket.queue().ops.splice(0..0, rest);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
