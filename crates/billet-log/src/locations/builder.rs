//! The threads that write location runs: the builder writes one for each
//! segment as it seals (so the segment's blocks leave memory within
//! moments), and the merger merges runs so that lookups probe few. They
//! are two so that a long merge of millions of entries never holds up the
//! small runs, and with them the memory of the blocks waiting for one.
//!
//! Merging is size-tiered: a run's tier is the base-4 logarithm of its
//! entry count; four runs of one tier merge into one of a higher tier, so
//! there are at most three runs per tier and an entry is rewritten about
//! log4(blocks / blocks per segment) times in its life. A run of which a
//! quarter or more lists segments that no longer exist is merged with its
//! tier (or rewritten alone) to shed them. A merge keeps, for each key,
//! the entry of the newest segment that still exists.

use std::collections::BinaryHeap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use super::run::Run;
use super::{BlockLocations, Key, Location, read, write};
use crate::segment::PlaneKind;

enum Job {
    Build {
        plane: PlaneKind,
        seg: u64,
        entries: Vec<(Key, Location)>,
    },
    Barrier(Sender<()>),
}

enum Merge {
    /// Look at the tiers; with `true`, at stale runs too.
    Compact(bool),
    Barrier(Sender<()>),
}

pub(super) struct Handle {
    builds: Sender<Job>,
    merges: Sender<Merge>,
    threads: Vec<JoinHandle<()>>,
}

/// Runs of one tier merged together.
const FANIN: usize = 4;

fn tier(count: u64) -> u32 {
    count.max(1).ilog(4)
}

impl Handle {
    pub fn start(owner: Weak<BlockLocations>) -> Handle {
        let (builds, build_rx) = channel();
        let (merges, merge_rx) = channel();
        let mut threads = Vec::new();
        let (o, m) = (owner.clone(), merges.clone());
        if let Ok(t) = std::thread::Builder::new()
            .name("billet-locations".into())
            .spawn(move || build_loop(o, build_rx, m))
        {
            threads.push(t);
        }
        if let Ok(t) = std::thread::Builder::new()
            .name("billet-merge".into())
            .spawn(move || merge_loop(owner, merge_rx))
        {
            threads.push(t);
        }
        Handle {
            builds,
            merges,
            threads,
        }
    }

    pub fn build(&self, plane: PlaneKind, seg: u64, entries: Vec<(Key, Location)>) {
        // A thread that is gone has nothing left to build for.
        let _ = self.builds.send(Job::Build {
            plane,
            seg,
            entries,
        });
    }

    pub fn compact(&self, look_for_stale: bool) {
        let _ = self.merges.send(Merge::Compact(look_for_stale));
    }

    /// What to wait on until everything sent so far is built, then
    /// merged: the builder passes the barrier on to the merger after the
    /// builds before it, whose merge checks precede it there.
    pub fn barrier(&self) -> Receiver<()> {
        let (tx, rx) = channel();
        let _ = self.builds.send(Job::Barrier(tx));
        rx
    }

    /// Lets the threads finish what they are writing and waits for them
    /// (unless this is one of them, dropping the last reference itself).
    pub fn stop(mut self) {
        drop(std::mem::replace(&mut self.builds, channel().0));
        drop(std::mem::replace(&mut self.merges, channel().0));
        for t in self.threads.drain(..) {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn build_loop(owner: Weak<BlockLocations>, rx: Receiver<Job>, merges: Sender<Merge>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Build {
                plane,
                seg,
                entries,
            } => {
                let Some(locs) = owner.upgrade() else { return };
                if let Err(e) = build(&locs, plane, seg, entries) {
                    // The entries stay hot; the next open writes the run.
                    eprintln!("billet: writing the location run of {plane} segment {seg}: {e}");
                    continue;
                }
                let _ = merges.send(Merge::Compact(false));
            }
            Job::Barrier(done) => {
                let _ = merges.send(Merge::Barrier(done));
            }
        }
    }
}

fn merge_loop(owner: Weak<BlockLocations>, rx: Receiver<Merge>) {
    while let Ok(first) = rx.recv() {
        // Checks asked for meanwhile are one check.
        let mut stale = false;
        let mut barriers = Vec::new();
        for m in std::iter::once(first).chain(rx.try_iter()) {
            match m {
                Merge::Compact(s) => stale |= s,
                Merge::Barrier(done) => barriers.push(done),
            }
        }
        if let Some(locs) = owner.upgrade() {
            compact(&locs, stale);
        }
        for b in barriers {
            let _ = b.send(());
        }
    }
}

fn build(
    locs: &BlockLocations,
    plane: PlaneKind,
    seg: u64,
    mut items: Vec<(Key, Location)>,
) -> Result<(), crate::error::LogError> {
    if !locs.alive(plane, seg) {
        // Retired before its run was written: nothing to keep.
        return Ok(());
    }
    let count = items.len() as u64;
    items.sort_unstable_by_key(|a| a.0);
    items.dedup_by(|a, b| a.0 == b.0);
    let keys: Vec<Key> = items.iter().map(|(k, _)| *k).collect();
    let run = locs.write_run(
        &[((plane, seg), count)],
        items.len() as u64,
        &mut items.into_iter().map(Ok),
    )?;
    {
        let mut runs = write(&locs.runs);
        let mut next: Vec<Arc<Run>> = runs.as_ref().clone();
        next.push(Arc::new(run));
        *runs = Arc::new(next);
    }
    locs.remove_hot_segment(plane, seg, &keys);
    Ok(())
}

/// Share of a run's entries from segments that no longer exist.
fn stale(locs: &BlockLocations, r: &Run) -> (u64, u64) {
    let dead: u64 = r
        .covers
        .iter()
        .filter(|((p, s), _)| !locs.alive(*p, *s))
        .map(|(_, n)| n)
        .sum();
    (dead, r.covers.iter().map(|(_, n)| n).sum())
}

/// Merges while a tier is full or a run is mostly stale.
fn compact(locs: &BlockLocations, look_for_stale: bool) {
    loop {
        let runs = read(&locs.runs).clone();
        let mut pick: Option<Vec<Arc<Run>>> = None;
        if look_for_stale {
            // Each mostly stale run together with the other runs of its tier.
            if let Some(r) = runs.iter().find(|r| {
                let (dead, total) = stale(locs, r);
                dead > 0 && dead * 4 >= total.max(1)
            }) {
                let t = tier(r.count);
                pick = Some(
                    runs.iter()
                        .filter(|o| Arc::ptr_eq(o, r) || tier(o.count) == t)
                        .cloned()
                        .collect(),
                );
            }
        }
        if pick.is_none() {
            let mut by_tier: std::collections::BTreeMap<u32, Vec<Arc<Run>>> = Default::default();
            for r in runs.iter() {
                by_tier.entry(tier(r.count)).or_default().push(r.clone());
            }
            pick = by_tier.into_values().find(|v| v.len() >= FANIN);
        }
        let Some(set) = pick else { return };
        if let Err(e) = merge(locs, &set) {
            eprintln!("billet: merging location runs: {e}");
            return;
        }
    }
}

/// One run's next entry in a merge.
struct Head {
    key: Key,
    loc: Location,
    src: usize,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.src == o.src
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    // A max-heap: the smallest key first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.key.cmp(&self.key).then(o.src.cmp(&self.src))
    }
}

fn merge(locs: &BlockLocations, set: &[Arc<Run>]) -> Result<(), crate::error::LogError> {
    let covers: Vec<((PlaneKind, u64), u64)> = set
        .iter()
        .flat_map(|r| r.covers.iter().copied())
        .filter(|((p, s), _)| locs.alive(*p, *s))
        .collect();
    let hint: u64 = set.iter().map(|r| r.count).sum();
    let mut iters: Vec<_> = set.iter().map(|r| r.iter()).collect();
    let mut heap = BinaryHeap::new();
    for (src, it) in iters.iter_mut().enumerate() {
        if let Some(e) = it.next() {
            let (key, loc) =
                e.map_err(|e| crate::error::LogError::io("reading", &set[src].path, e))?;
            heap.push(Head { key, loc, src });
        }
    }
    let mut failed: Option<std::io::Error> = None;
    let merged = {
        let mut out = std::iter::from_fn(|| {
            loop {
                let first = heap.pop()?;
                let mut best: Option<Location> = None;
                let mut take = |h: Head, heap: &mut BinaryHeap<Head>| {
                    if locs.alive(h.loc.plane, h.loc.segment)
                        && best.is_none_or(|b| h.loc.segment > b.segment)
                    {
                        best = Some(h.loc);
                    }
                    match iters[h.src].next() {
                        Some(Ok((key, loc))) => heap.push(Head {
                            key,
                            loc,
                            src: h.src,
                        }),
                        Some(Err(e)) => failed = Some(e),
                        None => {}
                    }
                };
                let key = first.key;
                take(first, &mut heap);
                while heap.peek().is_some_and(|h| h.key == key) {
                    if let Some(h) = heap.pop() {
                        take(h, &mut heap);
                    }
                }
                if let Some(loc) = best {
                    return Some(Ok((key, loc)));
                }
            }
        });
        locs.write_run(&covers, hint, &mut out)
    };
    if let Some(e) = failed {
        return Err(crate::error::LogError::io(
            "reading a location run",
            set[0].path.clone(),
            e,
        ));
    }
    let run = Arc::new(merged?);
    {
        let mut runs = write(&locs.runs);
        let next: Vec<Arc<Run>> = runs
            .iter()
            .filter(|r| !set.iter().any(|s| Arc::ptr_eq(r, s)))
            .cloned()
            .chain(std::iter::once(run))
            .collect();
        *runs = Arc::new(next);
    }
    for r in set {
        let _ = locs.fs.remove(&r.path);
    }
    let _ = locs.fs.sync_dir(&locs.dir);
    Ok(())
}
