//! A bucket's Merkle Search Tree: object key → manifest CID.
//!
//! The node format, prefix compression and layer rule are those of the
//! atproto repository MST (<https://atproto.com/specs/repository>): a key's
//! layer is the number of leading zero bits of SHA-256(key) divided by two
//! (fanout 4); a node holds the keys of one layer in order, with subtrees of
//! the layer below between them. The shape depends only on the set of keys,
//! so the same map always has the same root CID. Keys are relaxed from
//! atproto's record paths to S3 keys (1..=1024 bytes of UTF-8, no NUL).
//!
//! Everything here is synchronous and does no I/O of its own: nodes are read
//! through a [`BlockStore`] and new nodes are returned, never written.
//!
//! * [`Mst::apply`] — a batch of puts and deletes; rewrites only the paths
//!   that change and returns exactly the new nodes.
//! * [`Builder`] — bulk build from sorted pairs in O(n), streaming nodes out.
//! * [`Mst::get`], [`Mst::iter`], [`Mst::diff`] — reads.
//! * [`Mst::prove`] / [`verify_proof`] — inclusion and non-inclusion.
//! * [`Mst::check`] — a full walk of untrusted data, checking every rule.

mod apply;
mod build;
mod check;
mod codec;
mod diff;
mod error;
mod layer;
mod node;
mod proof;
mod read;

use billet_block::{Block, BlockStore, Cid};

pub use apply::{Applied, Op};
pub use build::Builder;
pub use check::{EntryVisitor, TreeStats};
pub use diff::{Change, ChangeVisitor};
pub use error::MstError;
pub use layer::{common_prefix_len, layer_of};
pub use proof::{Proof, verify_proof};
pub use read::Iter;

/// The CID of the empty tree (a node with no entries and no left link).
pub const EMPTY_ROOT: &str = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

/// The block of the empty tree.
pub fn empty_root() -> Block {
    node::encode(&[], &[])
}

/// Operations on trees held in a block store. The tree itself is just a
/// root CID; this handle carries only the store.
#[derive(Debug, Clone)]
pub struct Mst<S> {
    store: S,
}

impl<S: BlockStore> Mst<S> {
    pub fn new(store: S) -> Self {
        Mst { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, root: &Cid, key: &[u8]) -> Result<Option<Cid>, MstError> {
        read::get(&self.store, root, key)
    }

    /// Applies puts and deletes in one pass. Later ops on the same key win.
    pub fn apply(&self, root: &Cid, ops: Vec<Op>) -> Result<Applied, MstError> {
        apply::apply(&self.store, root, ops)
    }

    /// Entries in key order, starting at the first key `>= from` and, with a
    /// prefix, stopping after the last key that starts with it.
    pub fn iter<'a>(
        &'a self,
        root: &Cid,
        from: Option<&[u8]>,
        prefix: Option<&[u8]>,
    ) -> Iter<'a, S> {
        Iter::new(&self.store, *root, from, prefix)
    }

    /// What changed from `old` to `new`, in key order, visiting only the
    /// subtrees that differ.
    pub fn diff(&self, old: &Cid, new: &Cid) -> Result<Vec<Change>, MstError> {
        diff::diff(&self.store, old, new)
    }

    /// Visits what the tree at `new` holds that the one at `old` does not
    /// (with `old = None`, all of it): every node block not in `old` and
    /// every key whose value differs, without collecting them. Memory is
    /// the trees' height.
    pub fn diff_visit(
        &self,
        old: Option<&Cid>,
        new: &Cid,
        on_node: &mut dyn FnMut(&Cid),
        on_change: &mut ChangeVisitor<'_>,
    ) -> Result<(), MstError> {
        diff::visit(&self.store, old, new, on_node, on_change)
    }

    /// The nodes on the path from `root` to where `key` is or would be.
    pub fn prove(&self, root: &Cid, key: &[u8]) -> Result<Proof, MstError> {
        proof::prove(&self.store, root, key)
    }

    /// Walks the whole tree checking every rule (for data from outside):
    /// calls `on_entry` in key order and `on_node` for every node block.
    pub fn check(
        &self,
        root: &Cid,
        on_node: &mut dyn FnMut(&Block),
        on_entry: &mut EntryVisitor<'_>,
    ) -> Result<TreeStats, MstError> {
        check::check(&self.store, root, on_node, on_entry)
    }
}
