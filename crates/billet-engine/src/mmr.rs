//! A bucket's commit MMR as the write path needs it: the size and peaks,
//! from which each commit's leaf is appended without reading any other
//! node. Used by the commit pipeline, by roll-forward and by the proofs.

use billet_block::Cid;

use crate::Inner;
use crate::error::EngineError;

/// A bucket's commit MMR as appending needs it: its size and peaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmrState {
    pub size: u64,
    /// Peak values, highest first.
    pub peaks: Vec<billet_mmr::Hash>,
}

impl MmrState {
    /// Reads the size and the O(log n) peak nodes from the index.
    pub(crate) async fn load(inner: &Inner, bucket: &str) -> Result<MmrState, EngineError> {
        let size = inner.index.mmr_size(bucket).await?;
        let idx = billet_mmr::peaks(size)
            .map_err(|e| EngineError::Corrupt(format!("bucket {bucket}'s MMR: {e}")))?;
        let values = inner.index.mmr_nodes(bucket, &idx).await?;
        let peaks = values
            .into_iter()
            .zip(&idx)
            .map(|(v, i)| {
                v.ok_or_else(|| {
                    EngineError::Corrupt(format!("bucket {bucket}'s MMR lacks peak node {i}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MmrState { size, peaks })
    }

    /// Appends one leaf per commit (in order); returns the new nodes and
    /// the state after them.
    pub(crate) fn append(
        &self,
        commits: &[Cid],
    ) -> Result<(Vec<(u64, billet_mmr::Hash)>, MmrState), EngineError> {
        let mut state = self.clone();
        let mut nodes = Vec::new();
        for c in commits {
            let added = billet_mmr::append(
                state.size,
                &state.peaks,
                billet_mmr::leaf_hash(&c.to_bytes()),
            )
            .map_err(|e| EngineError::Internal(format!("MMR append: {e}")))?;
            state.peaks = billet_mmr::peaks_after(state.size, &state.peaks, &added)
                .map_err(|e| EngineError::Internal(format!("MMR append: {e}")))?;
            state.size += added.len() as u64;
            nodes.extend(added);
        }
        Ok((nodes, state))
    }

    /// The commits a new commit on `head` adds as leaves: the MMR of a
    /// bucket starts with the first commit it knew (creation or import),
    /// which `Engine::start_history` appends at once; it is still missing
    /// only if a crash came between, or the bucket predates that.
    pub(crate) fn leaves_for(&self, head: Cid, new: Cid) -> Vec<Cid> {
        if self.size == 0 {
            vec![head, new]
        } else {
            vec![new]
        }
    }
}
