use std::collections::HashSet;

use foldhash::fast::RandomState;

use billet_block::{Block, BlockStore, Cid, validate_key};

use crate::error::{MstError, key_error};
use crate::layer::layer_of;
use crate::node::{Entry, Node, Sub, decode_trusted};

/// One change to a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: Vec<u8>, value: Cid },
    Delete { key: Vec<u8> },
}

impl Op {
    pub fn put(key: impl Into<Vec<u8>>, value: Cid) -> Op {
        Op::Put {
            key: key.into(),
            value,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::Delete { key: key.into() }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// The outcome of [`crate::Mst::apply`].
#[derive(Debug, Clone)]
pub struct Applied {
    pub root: Cid,
    /// The nodes the new tree has and the old one did not, each after the
    /// nodes it links to (so writing them in order never leaves a dangling
    /// link), the root last.
    pub blocks: Vec<Block>,
}

/// The store plus every node read during one apply: a rebuilt node that
/// hashes to one of them is not new (an edit can rebuild a node it took
/// apart, e.g. a merge followed by a split), and must not be reported.
struct Ctx<'s, S> {
    store: &'s S,
    loaded: HashSet<Cid, RandomState>,
}

impl<S: BlockStore> Ctx<'_, S> {
    fn load(&mut self, sub: Sub) -> Result<Node, MstError> {
        match sub {
            Sub::Empty => Ok(Node::empty()),
            Sub::Stored(cid) => {
                let node = decode_trusted(&cid, &self.store.get(&cid)?)?;
                self.loaded.insert(cid);
                Ok(node)
            }
            Sub::Dirty(node) => Ok(*node),
        }
    }
}

/// Batches with at least this many ops under one node split their work
/// across two threads.
const PARALLEL_OPS: usize = 256;

struct Prepared<'a> {
    key: &'a [u8],
    value: Option<Cid>,
    layer: u8,
}

pub(crate) fn apply<S: BlockStore>(
    store: &S,
    root: &Cid,
    mut ops: Vec<Op>,
) -> Result<Applied, MstError> {
    for op in &ops {
        validate_key(op.key()).map_err(|e| key_error(op.key(), e))?;
    }
    // Stable sort, then keep the last op of each key.
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    let mut prepared: Vec<Prepared<'_>> = Vec::with_capacity(ops.len());
    for op in &ops {
        let p = Prepared {
            key: op.key(),
            value: match op {
                Op::Put { value, .. } => Some(*value),
                Op::Delete { .. } => None,
            },
            layer: layer_of(op.key()),
        };
        match prepared.last_mut() {
            Some(last) if last.key == p.key => *last = p,
            _ => prepared.push(p),
        }
    }

    let mut ctx = Ctx {
        store,
        loaded: HashSet::default(),
    };
    let root_node = ctx.load(Sub::Stored(*root))?;
    if root_node.entries.is_empty() && !root_node.kids[0].is_empty() {
        return Err(MstError::BadNode {
            cid: *root,
            reason: "root has no entries, only a left subtree".into(),
        });
    }
    let root_layer = root_node.layer();
    let put_layer = prepared
        .iter()
        .filter(|p| p.value.is_some())
        .map(|p| p.layer)
        .max();
    let top = root_layer.max(put_layer).unwrap_or(0);

    let mut sub = match root_layer {
        Some(_) => Sub::Dirty(Box::new(root_node)),
        None => Sub::Empty,
    };
    // New keys above the old root: the old tree becomes the left subtree of
    // entry-less nodes up to the new top layer.
    for _ in root_layer.unwrap_or(top)..top {
        sub = Node::over(sub).into_sub();
    }
    // A delete above the top layer cannot name a stored key.
    let ops: Vec<&Prepared<'_>> = prepared
        .iter()
        .filter(|p| p.value.is_some() || p.layer <= top)
        .collect();
    sub = apply_at(&mut ctx, sub, top, &ops)?;

    // Deletes may have emptied the top layers: the root is the first node
    // down that has entries.
    loop {
        if sub.is_empty() {
            break;
        }
        let node = ctx.load(sub)?;
        if node.entries.is_empty() {
            sub = node.kids.into_iter().next().unwrap_or_default();
        } else {
            sub = Sub::Dirty(Box::new(node));
            break;
        }
    }

    let mut blocks = Vec::new();
    let split = ops.len() >= PARALLEL_OPS;
    let new_root = match seal(sub, &ctx.loaded, &mut blocks, split) {
        Some(cid) => cid,
        None => {
            let empty = crate::empty_root();
            let cid = *empty.cid();
            if cid != *root {
                blocks.push(empty);
            }
            cid
        }
    };
    Ok(Applied {
        root: new_root,
        blocks,
    })
}

/// Applies `ops` (sorted, at most layer `layer`) to the subtree `sub` whose
/// node is at `layer`, returning the new subtree.
fn apply_at<S: BlockStore>(
    ctx: &mut Ctx<'_, S>,
    sub: Sub,
    layer: u8,
    ops: &[&Prepared<'_>],
) -> Result<Sub, MstError> {
    if ops.is_empty() {
        return Ok(sub);
    }
    let mut node = ctx.load(sub)?;
    let below = layer.saturating_sub(1);
    let mut lower: Vec<&Prepared<'_>> = Vec::new();
    for op in ops {
        if op.layer < layer {
            lower.push(op);
            continue;
        }
        if op.layer > layer {
            return Err(MstError::Internal("an op reached a node below its layer"));
        }
        match node
            .entries
            .binary_search_by(|e| e.key.as_slice().cmp(op.key))
        {
            Ok(i) => match op.value {
                Some(v) => node.entries[i].value = v,
                None => {
                    node.entries.remove(i);
                    let right = node.kids.remove(i + 1);
                    let left = std::mem::take(&mut node.kids[i]);
                    node.kids[i] = merge(ctx, left, right, below)?;
                }
            },
            Err(i) => {
                if let Some(value) = op.value {
                    let gap = std::mem::take(&mut node.kids[i]);
                    let (l, r) = split(ctx, gap, op.key, below)?;
                    node.entries.insert(
                        i,
                        Entry {
                            key: op.key.to_vec(),
                            value,
                        },
                    );
                    node.kids[i] = l;
                    node.kids.insert(i + 1, r);
                }
            }
        }
    }
    // Group the lower ops by the gap (kid) they fall into.
    let mut groups: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    let mut j = 0;
    while j < lower.len() {
        let gap = node
            .entries
            .partition_point(|e| e.key.as_slice() < lower[j].key);
        let mut k = j + 1;
        while k < lower.len()
            && node
                .entries
                .get(gap)
                .is_none_or(|e| lower[k].key < e.key.as_slice())
        {
            k += 1;
        }
        groups.push((gap, j..k));
        j = k;
    }
    if lower.len() >= PARALLEL_OPS && groups.len() > 1 {
        // A large batch: the gaps are independent subtrees, so half of
        // them go to a second thread. The reads are memory-latency bound,
        // which a second core hides well.
        let total = lower.len();
        let mut acc = 0;
        let cut = groups
            .iter()
            .position(|(_, r)| {
                acc += r.len();
                acc * 2 >= total
            })
            .map_or(groups.len() / 2, |i| i + 1)
            .clamp(1, groups.len() - 1);
        let mut work: Vec<(usize, Sub, &[&Prepared<'_>])> = groups
            .iter()
            .map(|(gap, r)| {
                (
                    *gap,
                    std::mem::take(&mut node.kids[*gap]),
                    &lower[r.clone()],
                )
            })
            .collect();
        let second = work.split_off(cut);
        let store = ctx.store;
        let (first_done, second_done) = std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                let mut side = Ctx {
                    store,
                    loaded: HashSet::default(),
                };
                let out: Result<Vec<(usize, Sub)>, MstError> = second
                    .into_iter()
                    .map(|(gap, kid, ops)| Ok((gap, apply_at(&mut side, kid, below, ops)?)))
                    .collect();
                out.map(|o| (o, side.loaded))
            });
            let first: Result<Vec<(usize, Sub)>, MstError> = work
                .into_iter()
                .map(|(gap, kid, ops)| Ok((gap, apply_at(ctx, kid, below, ops)?)))
                .collect();
            let second = handle
                .join()
                .unwrap_or_else(|_| Err(MstError::Internal("an MST worker thread panicked")));
            (first, second)
        });
        let (second_subs, loaded) = second_done?;
        ctx.loaded.extend(loaded);
        for (gap, sub) in first_done?.into_iter().chain(second_subs) {
            node.kids[gap] = sub;
        }
    } else {
        for (gap, r) in groups {
            let kid = std::mem::take(&mut node.kids[gap]);
            node.kids[gap] = apply_at(ctx, kid, below, &lower[r])?;
        }
    }
    Ok(node.into_sub())
}

/// Joins two adjacent subtrees at `layer` (every key of `a` below every key
/// of `b`): their entries concatenate and the subtrees at the seam merge
/// one layer down. Touches one path per layer.
fn merge<S: BlockStore>(ctx: &mut Ctx<'_, S>, a: Sub, b: Sub, layer: u8) -> Result<Sub, MstError> {
    if a.is_empty() {
        return Ok(b);
    }
    if b.is_empty() {
        return Ok(a);
    }
    let mut na = ctx.load(a)?;
    let mut nb = ctx.load(b)?;
    let a_last = na.kids.pop().unwrap_or_default();
    let b_first = std::mem::take(&mut nb.kids[0]);
    let seam = merge(ctx, a_last, b_first, layer.saturating_sub(1))?;
    na.entries.append(&mut nb.entries);
    na.kids.push(seam);
    na.kids.extend(nb.kids.into_iter().skip(1));
    Ok(na.into_sub())
}

/// Cuts the subtree at `layer` into the keys below `key` and those above
/// (`key` itself, of a higher layer, is not in it).
fn split<S: BlockStore>(
    ctx: &mut Ctx<'_, S>,
    sub: Sub,
    key: &[u8],
    layer: u8,
) -> Result<(Sub, Sub), MstError> {
    if sub.is_empty() {
        return Ok((Sub::Empty, Sub::Empty));
    }
    let node = ctx.load(sub)?;
    let i = node.entries.partition_point(|e| e.key.as_slice() < key);
    let mut entries = node.entries;
    let mut kids = node.kids;
    let right_entries = entries.split_off(i);
    let mut right_kids = kids.split_off(i + 1);
    let middle = kids.pop().unwrap_or_default();
    let (l, r) = split(ctx, middle, key, layer.saturating_sub(1))?;
    kids.push(l);
    right_kids.insert(0, r);
    let left = Node { entries, kids };
    let right = Node {
        entries: right_entries,
        kids: right_kids,
    };
    Ok((left.into_sub(), right.into_sub()))
}

/// Hashes a rebuilt subtree bottom-up, appending every node that is new.
/// With `split` set, the first dirty node with several dirty kids hashes
/// half of them on a second thread (hashing is most of the work).
fn seal(
    sub: Sub,
    old: &HashSet<Cid, RandomState>,
    out: &mut Vec<Block>,
    split: bool,
) -> Option<Cid> {
    match sub {
        Sub::Empty => None,
        Sub::Stored(cid) => Some(cid),
        Sub::Dirty(node) => {
            let Node { entries, mut kids } = *node;
            let dirty = kids.iter().filter(|k| matches!(k, Sub::Dirty(_))).count();
            let kid_cids: Vec<Option<Cid>> = if split && dirty >= 2 {
                let right = kids.split_off(kids.len() / 2);
                let (mut cids, (right_cids, right_out)) = std::thread::scope(|scope| {
                    let handle = scope.spawn(move || {
                        let mut o = Vec::new();
                        let c: Vec<Option<Cid>> = right
                            .into_iter()
                            .map(|k| seal(k, old, &mut o, false))
                            .collect();
                        (c, o)
                    });
                    let left: Vec<Option<Cid>> =
                        kids.into_iter().map(|k| seal(k, old, out, false)).collect();
                    let right = handle
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p));
                    (left, right)
                });
                out.extend(right_out);
                cids.extend(right_cids);
                cids
            } else {
                kids.into_iter().map(|k| seal(k, old, out, split)).collect()
            };
            let block = crate::node::encode(&entries, &kid_cids);
            let cid = *block.cid();
            if !old.contains(&cid) {
                out.push(block);
            }
            Some(cid)
        }
    }
}
