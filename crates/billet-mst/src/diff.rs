use billet_block::{BlockStore, Cid};

use crate::error::MstError;
use crate::node::{Node, Sub, decode_trusted};

/// One key whose value differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    /// `None`: the key was added.
    pub old: Option<Cid>,
    /// `None`: the key was removed.
    pub new: Option<Cid>,
}

enum Item<'n> {
    Tree { cid: Cid, layer: u8 },
    Entry { key: &'n [u8], value: Cid },
}

struct Frame {
    node: Node,
    layer: u8,
    pos: usize,
}

/// Walks one tree in order, yielding whole subtrees until asked to open one.
struct Cursor<'s, S> {
    store: &'s S,
    stack: Vec<Frame>,
}

impl<'s, S: BlockStore> Cursor<'s, S> {
    /// A cursor over the tree at `root`, or over nothing.
    fn new(store: &'s S, root: Option<&Cid>) -> Result<Self, MstError> {
        let mut c = Cursor {
            store,
            stack: Vec::new(),
        };
        if let Some(root) = root {
            c.open(root, None)?;
        }
        Ok(c)
    }

    fn open(&mut self, cid: &Cid, layer: Option<u8>) -> Result<(), MstError> {
        let node = decode_trusted(cid, &self.store.get(cid)?)?;
        let layer = node.layer().or(layer).unwrap_or(0);
        self.stack.push(Frame {
            node,
            layer,
            pos: 0,
        });
        Ok(())
    }

    /// The next item, skipping empty subtrees and finished nodes.
    fn peek(&mut self) -> Option<Item<'_>> {
        loop {
            let frame = self.stack.last_mut()?;
            let n = frame.node.entries.len();
            if frame.pos > 2 * n {
                self.stack.pop();
                continue;
            }
            if frame.pos % 2 == 0 && !matches!(frame.node.kids[frame.pos / 2], Sub::Stored(_)) {
                frame.pos += 1;
                continue;
            }
            break;
        }
        let frame = self.stack.last()?;
        if frame.pos % 2 == 1 {
            let e = &frame.node.entries[frame.pos / 2];
            return Some(Item::Entry {
                key: &e.key,
                value: e.value,
            });
        }
        match frame.node.kids[frame.pos / 2] {
            Sub::Stored(cid) => Some(Item::Tree {
                cid,
                layer: frame.layer.saturating_sub(1),
            }),
            // The loop above only stops at entries and stored subtrees.
            _ => None,
        }
    }

    fn skip(&mut self) {
        if let Some(f) = self.stack.last_mut() {
            f.pos += 1;
        }
    }

    /// Replaces the subtree under the cursor by its contents.
    fn descend(&mut self, cid: Cid, layer: u8) -> Result<(), MstError> {
        self.skip();
        self.open(&cid, Some(layer))
    }
}

enum Step {
    /// Identical subtrees: skip both.
    SkipBoth,
    /// Open the subtree on side a and/or side b.
    Descend(Option<(Cid, u8)>, Option<(Cid, u8)>),
    /// Record a change (if any) and move side a and/or b past its entry.
    Advance(Option<Change>, bool, bool),
    Done,
}

pub(crate) fn diff<S: BlockStore>(
    store: &S,
    old: &Cid,
    new: &Cid,
) -> Result<Vec<Change>, MstError> {
    let mut out = Vec::new();
    visit(store, Some(old), new, &mut |_| {}, &mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}

/// What a diff visitor hears of: a changed key.
pub type ChangeVisitor<'a> = dyn FnMut(Change) -> Result<(), MstError> + 'a;

/// Walks what `new` has that `old` (or, with `None`, an empty tree) does
/// not: `on_node` gets every node of `new` that is not a node of `old`
/// (its root first), `on_change` every key whose value differs, in key
/// order. Only differing subtrees are opened, and memory is the height
/// of the trees: a whole tree is walked with `old = None`.
pub(crate) fn visit<S: BlockStore>(
    store: &S,
    old: Option<&Cid>,
    new: &Cid,
    on_node: &mut dyn FnMut(&Cid),
    on_change: &mut ChangeVisitor<'_>,
) -> Result<(), MstError> {
    if old == Some(new) {
        return Ok(());
    }
    on_node(new);
    let mut a = Cursor::new(store, old)?;
    let mut b = Cursor::new(store, Some(new))?;
    loop {
        let step = match (a.peek(), b.peek()) {
            (None, None) => Step::Done,
            (Some(Item::Tree { cid: x, .. }), Some(Item::Tree { cid: y, .. })) if x == y => {
                Step::SkipBoth
            }
            (Some(Item::Tree { cid: x, layer: lx }), Some(Item::Tree { cid: y, layer: ly })) => {
                // Open the taller one first; equal heights open together.
                Step::Descend((lx >= ly).then_some((x, lx)), (ly >= lx).then_some((y, ly)))
            }
            (Some(Item::Tree { cid, layer }), _) => Step::Descend(Some((cid, layer)), None),
            (_, Some(Item::Tree { cid, layer })) => Step::Descend(None, Some((cid, layer))),
            (
                Some(Item::Entry { key: ka, value: va }),
                Some(Item::Entry { key: kb, value: vb }),
            ) => match ka.cmp(kb) {
                std::cmp::Ordering::Equal if va == vb => Step::Advance(None, true, true),
                std::cmp::Ordering::Equal => Step::Advance(
                    Some(Change {
                        key: ka.to_vec(),
                        old: Some(va),
                        new: Some(vb),
                    }),
                    true,
                    true,
                ),
                std::cmp::Ordering::Less => Step::Advance(
                    Some(Change {
                        key: ka.to_vec(),
                        old: Some(va),
                        new: None,
                    }),
                    true,
                    false,
                ),
                std::cmp::Ordering::Greater => Step::Advance(
                    Some(Change {
                        key: kb.to_vec(),
                        old: None,
                        new: Some(vb),
                    }),
                    false,
                    true,
                ),
            },
            (Some(Item::Entry { key, value }), None) => Step::Advance(
                Some(Change {
                    key: key.to_vec(),
                    old: Some(value),
                    new: None,
                }),
                true,
                false,
            ),
            (None, Some(Item::Entry { key, value })) => Step::Advance(
                Some(Change {
                    key: key.to_vec(),
                    old: None,
                    new: Some(value),
                }),
                false,
                true,
            ),
        };
        match step {
            Step::Done => return Ok(()),
            Step::SkipBoth => {
                a.skip();
                b.skip();
            }
            Step::Descend(ta, tb) => {
                if let Some((cid, layer)) = ta {
                    a.descend(cid, layer)?;
                }
                if let Some((cid, layer)) = tb {
                    on_node(&cid);
                    b.descend(cid, layer)?;
                }
            }
            Step::Advance(change, adv_a, adv_b) => {
                if let Some(c) = change {
                    on_change(c)?;
                }
                if adv_a {
                    a.skip();
                }
                if adv_b {
                    b.skip();
                }
            }
        }
    }
}
