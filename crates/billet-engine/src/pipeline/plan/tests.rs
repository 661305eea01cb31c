//! Planning against a model of versioned keys: random runs of puts (with
//! and without conditions), deletes, deletes by version id, retags and
//! versioning changes, cut into random batches, must leave the index rows,
//! the MST values and every manifest's `prev` chain exactly as S3's rules
//! say, and answer each mutation as S3 would.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, HashMap};

use billet_block::{Block, Cid, Codec, decode_dag_cbor};
use billet_index::{NULL_VERSION, ObjectVersion, RowChange};
use billet_log::Receipt;
use billet_mst::Op;
use billet_records::{BucketSettings, Manifest, Versioning};
use proptest::prelude::*;

use super::{Stamps, plan};
use crate::error::EngineError;
use crate::pipeline::mutation::{Condition, Mutation, Outcome, Rewrite};
use crate::pipeline::rows::Rows;

const KEYS: [&str; 3] = ["a", "b", "c"];

fn etag(n: u32) -> String {
    format!("{n:032x}")
}

fn manifest(key: &str, n: u32) -> Manifest {
    let body = *Block::new(Codec::Raw, n.to_be_bytes().to_vec()).cid();
    Manifest::new(key, body, 4, etag(n), [0; 32], 1_000)
}

/// One version as S3 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    id: String,
    marker: bool,
    etag: String,
    tags: BTreeMap<String, String>,
}

/// S3's rules, directly: each key's versions, newest first.
#[derive(Debug, Default)]
struct Model {
    versioning: Versioning,
    keys: BTreeMap<String, Vec<Seen>>,
}

/// What the model expects a mutation to answer.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Put,
    Delete { marker: bool },
    Retag,
    Failed,
}

impl Model {
    fn live(&self, key: &str) -> Option<&Seen> {
        self.keys.get(key)?.first().filter(|v| !v.marker)
    }

    /// Applies a mutation that succeeded with version id `id` (from the
    /// outcome), or says it must fail.
    fn apply(&mut self, m: &Op2, id: Option<String>) -> Expect {
        let null = || NULL_VERSION.to_string();
        match m {
            Op2::Put { key, n, condition } => {
                let ok = match condition {
                    None => true,
                    Some(Condition::IfNoneMatch) => self.live(key).is_none(),
                    Some(Condition::IfMatch(e)) => self.live(key).is_some_and(|v| &v.etag == e),
                };
                if !ok {
                    return Expect::Failed;
                }
                let v = Seen {
                    id: id.unwrap_or_else(null),
                    marker: false,
                    etag: etag(*n),
                    tags: BTreeMap::new(),
                };
                self.push(key, v);
                Expect::Put
            }
            Op2::Delete { key, if_match } => {
                if let Some(e) = if_match
                    && self.live(key).is_none_or(|v| &v.etag != e)
                {
                    return Expect::Failed;
                }
                if self.versioning == Versioning::Unversioned {
                    self.keys.remove(key);
                    return Expect::Delete { marker: false };
                }
                let v = Seen {
                    id: id.unwrap_or_else(null),
                    marker: true,
                    etag: String::new(),
                    tags: BTreeMap::new(),
                };
                self.push(key, v);
                Expect::Delete { marker: true }
            }
            Op2::DeleteVersion { key, id } => {
                let versions = self.keys.entry(key.clone()).or_default();
                let marker = match versions.iter().position(|v| &v.id == id) {
                    Some(at) => versions.remove(at).marker,
                    None => false,
                };
                if versions.is_empty() {
                    self.keys.remove(key);
                }
                Expect::Delete { marker }
            }
            Op2::Retag { key, id, tag } => {
                let Some(versions) = self.keys.get_mut(key) else {
                    return Expect::Failed;
                };
                let target = match id {
                    None => versions.first_mut(),
                    Some(id) => versions.iter_mut().find(|v| &v.id == id),
                };
                match target {
                    Some(v) if !v.marker => {
                        v.tags = BTreeMap::from([("t".to_string(), tag.to_string())]);
                        Expect::Retag
                    }
                    _ => Expect::Failed,
                }
            }
            Op2::Versioning(v) => {
                self.versioning = *v;
                Expect::Put
            }
        }
    }

    /// A new current version: in a bucket that is not versioned, or for a
    /// new null version, the older null version goes.
    fn push(&mut self, key: &str, v: Seen) {
        let versions = self.keys.entry(key.to_string()).or_default();
        if self.versioning == Versioning::Unversioned {
            versions.clear();
        } else if v.id == NULL_VERSION {
            versions.retain(|x| x.id != NULL_VERSION);
        }
        versions.insert(0, v);
    }
}

/// A mutation as the test generates it.
#[derive(Debug, Clone)]
enum Op2 {
    Put {
        key: String,
        n: u32,
        condition: Option<Condition>,
    },
    Delete {
        key: String,
        /// `If-Match`: only if the live version has this ETag.
        if_match: Option<String>,
    },
    /// Deletes a version: the version id is resolved when the op runs.
    DeleteVersion {
        key: String,
        id: String,
    },
    Retag {
        key: String,
        id: Option<String>,
        tag: u32,
    },
    Versioning(Versioning),
}

/// The index rows as the backends keep them (the contract suite holds the
/// backends to these semantics), each key's versions newest first.
#[derive(Default)]
struct FakeIndex {
    keys: BTreeMap<String, Vec<ObjectVersion>>,
    mst: BTreeMap<String, Cid>,
    blocks: HashMap<Cid, Vec<u8>>,
}

impl FakeIndex {
    fn rows(&self) -> Rows {
        Rows::known(
            self.keys.iter().map(|(k, v)| (k.clone(), v.clone())),
            std::iter::empty(),
        )
    }

    fn apply(&mut self, changes: Vec<RowChange>, ops: Vec<Op>, blocks: Vec<Block>) {
        for b in blocks {
            self.blocks.insert(*b.cid(), b.data().to_vec());
        }
        for c in changes {
            match c {
                RowChange::Put {
                    key,
                    version_id,
                    manifest_cid,
                    manifest,
                } => {
                    let versions = self.keys.entry(key.clone()).or_default();
                    versions.retain(|v| v.version_id != version_id);
                    for v in versions.iter_mut() {
                        v.is_latest = false;
                    }
                    versions.insert(
                        0,
                        ObjectVersion {
                            key,
                            version_id,
                            is_latest: true,
                            manifest_cid,
                            manifest,
                            order: 0,
                        },
                    );
                }
                RowChange::Delete { key, version_id } => {
                    let versions = self.keys.entry(key.clone()).or_default();
                    let was_latest = versions
                        .iter()
                        .any(|v| v.version_id == version_id && v.is_latest);
                    versions.retain(|v| v.version_id != version_id);
                    if was_latest && let Some(first) = versions.first_mut() {
                        first.is_latest = true;
                    }
                    if versions.is_empty() {
                        self.keys.remove(&key);
                    }
                }
                RowChange::Replace {
                    key,
                    version_id,
                    manifest_cid,
                    manifest,
                } => {
                    let v = self
                        .keys
                        .get_mut(&key)
                        .and_then(|vs| vs.iter_mut().find(|v| v.version_id == version_id))
                        .expect("a replaced version exists");
                    v.manifest_cid = manifest_cid;
                    v.manifest = manifest;
                }
            }
        }
        for op in ops {
            let key = String::from_utf8(op.key().to_vec()).unwrap();
            match op {
                Op::Put { value, .. } => self.mst.insert(key, value),
                Op::Delete { .. } => self.mst.remove(&key),
            };
        }
    }

    /// Checks rows, MST values and chains against the model.
    fn check(&self, model: &Model) {
        let got: BTreeMap<&String, Vec<Seen>> = self
            .keys
            .iter()
            .map(|(k, vs)| {
                let seen = vs
                    .iter()
                    .map(|v| Seen {
                        id: v.version_id.clone(),
                        marker: v.manifest.delete_marker,
                        etag: v.manifest.etag.clone(),
                        tags: v.manifest.tags.clone(),
                    })
                    .collect();
                (k, seen)
            })
            .collect();
        let want: BTreeMap<&String, Vec<Seen>> =
            model.keys.iter().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(got, want, "index rows");
        for (key, versions) in &self.keys {
            assert!(versions[0].is_latest && versions[1..].iter().all(|v| !v.is_latest));
            // The MST holds the latest version, and its prev chain walks
            // exactly the versions the index keeps, newest first.
            assert_eq!(
                self.mst.get(key),
                Some(&versions[0].manifest_cid),
                "MST value of {key}"
            );
            let mut chain = Vec::new();
            let mut at = Some(versions[0].manifest_cid);
            while let Some(cid) = at {
                let m: Manifest = decode_dag_cbor(&self.blocks[&cid]).unwrap();
                chain.push(m.version_id.clone().unwrap_or_else(|| NULL_VERSION.into()));
                at = m.prev;
            }
            let ids: Vec<String> = versions.iter().map(|v| v.version_id.clone()).collect();
            assert_eq!(chain, ids, "prev chain of {key}");
        }
        for key in self.mst.keys() {
            assert!(
                self.keys.contains_key(key),
                "MST keeps {key} the index lost"
            );
        }
    }
}

fn to_mutation(op: &Op2) -> Mutation {
    match op {
        Op2::Put { key, n, condition } => Mutation::Put {
            key: key.clone(),
            manifest: Box::new(manifest(key, *n)),
            condition: condition.clone(),
            receipt: Receipt::default(),
            upload: None,
        },
        Op2::Delete { key, if_match } => Mutation::Delete {
            key: key.clone(),
            version_id: None,
            condition: if_match.clone().map(Condition::IfMatch),
            bypass_governance: false,
        },
        Op2::DeleteVersion { key, id } => Mutation::Delete {
            key: key.clone(),
            version_id: Some(id.clone()),
            condition: None,
            bypass_governance: false,
        },
        Op2::Retag { key, id, tag } => Mutation::Rewrite {
            key: key.clone(),
            version_id: id.clone(),
            change: Rewrite::Tags(BTreeMap::from([("t".to_string(), tag.to_string())])),
        },
        Op2::Versioning(v) => Mutation::Settings(BucketSettings {
            versioning: *v,
            ..BucketSettings::default()
        }),
    }
}

/// Abstract ops: version choices are resolved against the model when run.
#[derive(Debug, Clone)]
enum Gen {
    Put(usize, u32, u8),
    Delete(usize, u8),
    DeleteVersion(usize, usize),
    Retag(usize, Option<usize>, u32),
    Enable,
    Suspend,
}

fn gen_op() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => (0..KEYS.len(), 0u32..50, 0u8..5).prop_map(|(k, n, c)| Gen::Put(k, n, c)),
        2 => (0..KEYS.len(), 0u8..4).prop_map(|(k, c)| Gen::Delete(k, c)),
        2 => (0..KEYS.len(), 0usize..6).prop_map(|(k, i)| Gen::DeleteVersion(k, i)),
        2 => (0..KEYS.len(), proptest::option::of(0usize..6), 0u32..9)
            .prop_map(|(k, i, t)| Gen::Retag(k, i, t)),
        1 => Just(Gen::Enable),
        1 => Just(Gen::Suspend),
    ]
}

fn resolve(g: &Gen, model: &Model) -> Op2 {
    let key = |k: usize| KEYS[k].to_string();
    let version = |k: usize, i: usize| {
        let versions = model
            .keys
            .get(KEYS[k])
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Past the end: a version id that does not exist.
        versions
            .get(i)
            .map_or_else(|| format!("missing-{i}"), |v| v.id.clone())
    };
    match g {
        Gen::Put(k, n, c) => Op2::Put {
            key: key(*k),
            n: *n,
            condition: match c {
                0 => Some(Condition::IfNoneMatch),
                1 => Some(Condition::IfMatch(
                    model
                        .live(KEYS[*k])
                        .map_or_else(|| etag(999), |v| v.etag.clone()),
                )),
                2 => Some(Condition::IfMatch(etag(998))),
                _ => None,
            },
        },
        Gen::Delete(k, c) => Op2::Delete {
            key: key(*k),
            if_match: match c {
                0 => Some(
                    model
                        .live(KEYS[*k])
                        .map_or_else(|| etag(999), |v| v.etag.clone()),
                ),
                1 => Some(etag(998)),
                _ => None,
            },
        },
        Gen::DeleteVersion(k, i) => Op2::DeleteVersion {
            key: key(*k),
            id: version(*k, *i),
        },
        Gen::Retag(k, i, t) => Op2::Retag {
            key: key(*k),
            id: i.map(|i| version(*k, i)),
            tag: *t,
        },
        Gen::Enable => Op2::Versioning(Versioning::Enabled),
        Gen::Suspend => Op2::Versioning(Versioning::Suspended),
    }
}

/// Runs `ops` in batches of the given sizes, as the worker does: what a
/// batch defers goes first into the next one.
fn run(ops: &[Gen], batch_sizes: &[usize]) {
    let mut model = Model::default();
    let mut index = FakeIndex::default();
    let mut settings = BucketSettings::default();
    let mut next_id = 0u64;
    let mut queue: Vec<Gen> = ops.to_vec();
    let mut sizes = batch_sizes.iter().cycle();
    while !queue.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, queue.len());
        // Version choices are resolved as the batch is submitted.
        let batch: Vec<Op2> = queue[..n].iter().map(|g| resolve(g, &model)).collect();
        let mutations: Vec<Mutation> = batch.iter().map(to_mutation).collect();
        let mut ids = || {
            next_id += 1;
            format!("id{next_id:04}")
        };
        let plan = plan(
            &settings,
            &index.rows(),
            &mutations,
            Stamps {
                now_ms: 2_000,
                new_version_id: &mut ids,
            },
        )
        .unwrap();
        assert!(plan.results.len() <= n);
        for (op, result) in batch.iter().zip(&plan.results) {
            let id = match result {
                Ok(Outcome::Put { version_id, .. }) | Ok(Outcome::Delete { version_id, .. }) => {
                    version_id.clone()
                }
                _ => None,
            };
            let want = model.apply(op, id);
            let got = match result {
                Ok(Outcome::Put { .. }) | Ok(Outcome::Settings) => Expect::Put,
                Ok(Outcome::Delete { delete_marker, .. }) => Expect::Delete {
                    marker: *delete_marker,
                },
                Ok(Outcome::Rewrite { .. }) => Expect::Retag,
                Ok(Outcome::Abort) => unreachable!(),
                Err(
                    EngineError::PreconditionFailed(_)
                    | EngineError::NoSuchKey(_)
                    | EngineError::NoSuchVersion { .. }
                    | EngineError::MethodNotAllowed(_),
                ) => Expect::Failed,
                Err(e) => panic!("{op:?}: {e}"),
            };
            assert_eq!(got, want, "{op:?}");
        }
        if let Some(s) = &plan.settings {
            settings = s.clone();
        }
        index.apply(plan.changes, plan.ops, plan.blocks);
        index.check(&model);
        queue.drain(..plan.results.len());
        if plan.results.is_empty() {
            panic!("a batch took nothing: {batch:?}");
        }
    }
}

#[test]
fn versioned_keys_by_hand() {
    use Gen::*;
    // Versions on top of each other, a delete marker, removing it, a
    // suspended null version replacing an older null version, retagging
    // an old version.
    run(
        &[
            Put(0, 1, 9),
            Enable,
            Put(0, 2, 9),
            Put(0, 3, 9),
            Delete(0, 3),
            DeleteVersion(0, 0),
            Retag(0, Some(2), 5),
            Suspend,
            Put(0, 4, 9),
            Put(0, 5, 9),
            Delete(0, 3),
            DeleteVersion(0, 5),
            Retag(0, None, 6),
        ],
        &[1],
    );
}

#[test]
fn the_same_run_batched_differently_ends_the_same() {
    use Gen::*;
    let ops = [
        Enable,
        Put(0, 1, 9),
        Put(1, 2, 9),
        Put(0, 3, 0),
        Put(0, 4, 1),
        Delete(1, 0),
        Delete(0, 1),
        Retag(0, Some(1), 3),
        DeleteVersion(0, 1),
        Suspend,
        Put(0, 5, 9),
        Put(0, 6, 9),
        Put(2, 7, 2),
    ];
    for sizes in [&[1][..], &[2], &[3, 1], &[12]] {
        run(&ops, sizes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn planning_follows_the_model(
        ops in proptest::collection::vec(gen_op(), 1..40),
        sizes in proptest::collection::vec(1usize..6, 1..4),
    ) {
        run(&ops, &sizes);
    }
}

/// Found by the model test: deleting the version under a null delete
/// marker re-links the marker, and a null version replacing that marker in
/// the same batch must take the marker's new `prev`, not its old one
/// (which named the deleted version).
#[test]
fn a_null_version_over_a_relinked_marker_keeps_the_new_chain() {
    use Gen::*;
    run(
        &[
            Put(0, 0, 0),
            Put(0, 0, 0),
            Put(0, 0, 0),
            Enable,
            Put(0, 0, 1),
            Suspend,
            Delete(0, 3),
            DeleteVersion(0, 1),
            Put(0, 0, 0),
        ],
        &[2],
    );
}
