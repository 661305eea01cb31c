//! The per-bucket commit pipeline.
//!
//! Every mutation of a bucket (put, delete, retag, abort, settings) is
//! queued on the bucket (`queue`). One worker per bucket takes everything
//! queued; the batch's index rows are read (`rows`), every operation is
//! decided in order against the state it will commit on (`plan`, a pure
//! function), and the survivors are committed together (`commit`): one
//! MST batch, one catalog write, one group of fsyncs, one index
//! transaction. Every writer is answered only after that. N concurrent
//! writers cost one MST path rewrite per touched subtree, not N.

mod commit;
mod mutation;
mod plan;
mod queue;
mod rows;

pub use mutation::Condition;
pub(crate) use mutation::{Mutation, Outcome, Rewrite};
pub(crate) use queue::{BucketQueue, submit};
