//! The cold tier's own small runtime: remote I/O, shipping and deletes run
//! here, apart from the request path's runtime. Synchronous block reads
//! (the log's `ColdStore`, called from blocking threads) start fetches
//! here and wait on a condition variable, so they need not be inside any
//! runtime and cannot starve the request path's workers.

use tokio::runtime::{Builder, Handle, Runtime};

#[derive(Debug)]
pub(crate) struct RemoteRuntime {
    rt: Option<Runtime>,
}

/// Threads for remote requests. They only wait on sockets and timers:
/// compression and hashing go to the runtime's blocking pool.
const WORKERS: usize = 2;

impl RemoteRuntime {
    pub fn new() -> std::io::Result<RemoteRuntime> {
        Ok(RemoteRuntime {
            rt: Some(
                Builder::new_multi_thread()
                    .worker_threads(WORKERS)
                    .max_blocking_threads(4)
                    .thread_name("billet-remote")
                    .enable_all()
                    .build()?,
            ),
        })
    }

    pub fn handle(&self) -> &Handle {
        // Present until dropped.
        self.rt
            .as_ref()
            .expect("the runtime lives as long as its owner")
            .handle()
    }
}

impl Drop for RemoteRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime
        // (tests, and the server's shutdown): let its threads go instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
