//! Bodies an operation refers to without writing them (a copied object's
//! body: the new manifest points at the source's blocks), held against
//! the collector from before the source is read until the new manifest
//! is committed.
//!
//! A pin registered before a collection starts is one of its roots; one
//! registered after touches every block of the body (`Log::touch`), each
//! a hit the collection keeps. Registering and starting a collection take
//! the same lock, so a pin is always one or the other. Touching also
//! proves the blocks are all still there: a copy whose source was
//! deleted and collected meanwhile fails instead of committing a body
//! with holes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use billet_block::{BlockStore, Cid, Codec};
use billet_log::Receipt;
use billet_unixfs::decode_file_node;

use crate::Engine;
use crate::error::{EngineError, join_error};
use crate::store::CachedStore;

#[derive(Debug, Default)]
pub(crate) struct Pins {
    state: Mutex<PinState>,
}

#[derive(Debug, Default)]
pub(crate) struct PinState {
    next: u64,
    roots: HashMap<u64, Cid>,
}

impl Pins {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PinState {
    pub(crate) fn roots(&self) -> Vec<Cid> {
        self.roots.values().copied().collect()
    }
}

/// Held while an operation refers to a body it did not write.
#[derive(Debug)]
pub struct PinGuard {
    pins: Arc<Pins>,
    id: u64,
    /// What must be durable before the body is referenced: copies of
    /// blocks a collection was taking.
    pub(crate) receipt: Receipt,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.pins.lock().roots.remove(&self.id);
    }
}

/// Calls `each` with the blocks of the body under `root`, a batch at a
/// time: interior file nodes read, leaves named by their parents.
pub(crate) fn body_blocks(
    store: &CachedStore,
    root: &Cid,
    each: &mut dyn FnMut(&[Cid]) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    const BATCH: usize = 4096;
    let mut batch = Vec::new();
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        batch.push(cid);
        if cid.codec() == Codec::DagPb.code() {
            let node = decode_file_node(&store.get(&cid)?)
                .map_err(|e| EngineError::Corrupt(format!("UnixFS node {cid}: {e}")))?;
            stack.extend(node.children.into_iter().map(|(c, _)| c));
        }
        if batch.len() >= BATCH {
            each(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        each(&batch)?;
    }
    Ok(())
}

impl Engine {
    /// Holds the body under `root` against collection (see the module
    /// docs). Fails with `Missing` naming a block that is gone.
    pub(crate) async fn pin_body(&self, root: Cid) -> Result<PinGuard, EngineError> {
        let pins = self.inner.gc.pins.clone();
        let id = {
            let mut st = pins.lock();
            st.next += 1;
            let id = st.next;
            st.roots.insert(id, root);
            id
        };
        let mut guard = PinGuard {
            pins,
            id,
            receipt: Receipt::default(),
        };
        let store = self.inner.store.clone();
        guard.receipt = tokio::task::spawn_blocking(move || {
            let mut receipt = Receipt::default();
            body_blocks(&store, &root, &mut |blocks| {
                receipt = receipt.merge(store.log().touch(blocks)?);
                Ok(())
            })?;
            Ok::<_, EngineError>(receipt)
        })
        .await
        .map_err(join_error)??;
        Ok(guard)
    }
}
