#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! The garbage collector against a model of what the buckets hold, and
//! the races it must win: a write that reuses a block the mark found
//! dead, a body still being staged, a multipart upload open across a
//! collection.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billet_block::{BlockStore, Cid, Codec};
use billet_engine::*;
use billet_index::{Index, SqliteConfig, SqliteIndex};
use billet_log::{LogConfig, PlaneConfig};
use billet_records::{BucketSettings, Versioning};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn config(dir: &std::path::Path, retention: Retention) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.log = LogConfig {
        data: PlaneConfig {
            seal_bytes: 256 << 10,
            seal_after: Duration::from_secs(3600),
        },
        catalog: PlaneConfig {
            seal_bytes: 32 << 10,
            seal_after: Duration::from_secs(3600),
        },
        ..LogConfig::default()
    };
    c.chunk_size = 64 << 10;
    c.min_part_size = 1;
    c.gc.retention = retention;
    c.gc.batch_bytes = 1 << 20;
    c
}

const ONLY_HEAD: Retention = Retention {
    keep_secs: None,
    keep_commits: None,
};

async fn open(dir: &std::path::Path, retention: Retention) -> Engine {
    let index = SqliteIndex::open(SqliteConfig::new(dir.join("index"))).unwrap();
    Engine::open(config(dir, retention), Arc::new(index) as Arc<dyn Index>)
        .await
        .unwrap()
}

async fn put(e: &Engine, bucket: &str, key: &str, data: &[u8]) -> PutOutcome {
    let state = e.bucket(bucket).await.unwrap();
    let body =
        futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    let staged = e.stage_body(&state, body, &[]).await.unwrap();
    e.put(bucket, key, staged, ObjectMeta::default(), None)
        .await
        .unwrap()
}

/// Bodies drawn from a small pool of chunks, so that objects share
/// blocks (deduplication) and dead blocks come back to life.
fn body(rng: &mut StdRng) -> Vec<u8> {
    let chunks = rng.random_range(0..5);
    let mut out = Vec::new();
    for _ in 0..chunks {
        let c: u8 = rng.random_range(0..12);
        out.extend(std::iter::repeat_n(c, 64 << 10));
    }
    let tail = rng.random_range(0..3000);
    out.extend((0..tail).map(|i| (i as u8).wrapping_mul(rng.random_range(1..4))));
    out
}

fn log_bytes(e: &Engine) -> u64 {
    e.log().segments().iter().map(|s| s.bytes).sum()
}

/// One version as the model knows it: its id and its bytes (`None`: a
/// delete marker).
type Versions = Vec<(Option<String>, Option<Vec<u8>>)>;
type Model = BTreeMap<(String, String), Versions>;

/// Every version the model holds reads back byte for byte (markers are
/// markers), and fsck and verify find nothing wrong.
async fn check(e: &Engine, model: &Model) {
    for ((bucket, key), versions) in model {
        match versions.last() {
            None => assert!(e.object(bucket, key, None).await.is_err(), "{bucket}/{key}"),
            Some((_, None)) => {
                assert!(
                    e.object(bucket, key, None)
                        .await
                        .unwrap()
                        .is_delete_marker()
                )
            }
            Some((_, Some(latest))) => {
                let v = e.object(bucket, key, None).await.unwrap();
                assert_eq!(
                    &e.read_all(&v.manifest).await.unwrap(),
                    latest,
                    "{bucket}/{key}"
                );
            }
        }
        for (vid, data) in versions {
            let Some(vid) = vid else { continue };
            let v = e.object(bucket, key, Some(vid)).await.unwrap();
            match data {
                None => assert!(v.is_delete_marker()),
                Some(d) => assert_eq!(
                    &e.read_all(&v.manifest).await.unwrap(),
                    d,
                    "{bucket}/{key}@{vid}"
                ),
            }
        }
    }
    for b in ["plain", "versioned"] {
        let f = e.fsck(b, false).await.unwrap();
        assert!(f.problems.is_empty(), "fsck {b}: {:?}", f.problems);
        let head = e.bucket(b).await.unwrap().head;
        let store = e.store().clone();
        let v = tokio::task::spawn_blocking(move || verify_head(store.as_ref(), &head))
            .await
            .unwrap()
            .unwrap();
        assert!(
            v.report.problems.is_empty(),
            "verify {b}: {:?}",
            v.report.problems
        );
    }
}

/// Random puts, overwrites, deletes, version deletes, copies and
/// multipart uploads (completed, with a replaced part, and aborted), with
/// collections in between: after each, everything the model holds reads
/// back, fsck and verify are clean, a dry run finds nothing left to
/// reclaim, and the log holds little beyond the live bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_keep_exactly_what_the_buckets_hold() {
    let seed: u64 = std::env::var("BILLET_GC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6c0ffee);
    eprintln!("seed {seed} (BILLET_GC_SEED replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), ONLY_HEAD).await;
    e.create_bucket("plain", "me").await.unwrap();
    e.create_bucket("versioned", "me").await.unwrap();
    e.set_settings(
        "versioned",
        BucketSettings {
            versioning: Versioning::Enabled,
            chunk_size: 64 << 10,
            ..BucketSettings::default()
        },
    )
    .await
    .unwrap();
    let mut model = Model::new();
    let mut collections = 0;
    for round in 0..8 {
        for _ in 0..80 {
            let bucket = if rng.random_bool(0.5) {
                "plain"
            } else {
                "versioned"
            };
            let versioned = bucket == "versioned";
            let key = format!("k{}", rng.random_range(0..12));
            let slot = model.entry((bucket.into(), key.clone())).or_default();
            match rng.random_range(0..10) {
                0..=4 => {
                    let data = body(&mut rng);
                    let out = put(&e, bucket, &key, &data).await;
                    if !versioned {
                        slot.clear();
                    }
                    slot.push((out.version_id, Some(data)));
                }
                5 => {
                    let out = e.delete(bucket, &key, None).await.unwrap();
                    if versioned {
                        // A delete marker on top; the older versions stay.
                        assert!(out.delete_marker);
                        slot.push((out.version_id, None));
                    } else {
                        slot.clear();
                    }
                }
                6 if versioned && !slot.is_empty() => {
                    let i = rng.random_range(0..slot.len());
                    let (vid, _) = slot.remove(i);
                    e.delete(bucket, &key, vid.as_deref()).await.unwrap();
                }
                7 => {
                    // Copy another object of the plain bucket, if any.
                    let src: Option<(String, Vec<u8>)> = model
                        .iter()
                        .filter(|((b, _), _)| b == "plain")
                        .find_map(|((_, k), v)| Some((k.clone(), v.last()?.1.clone()?)));
                    if let Some((sk, data)) = src {
                        let out = e
                            .copy("plain", &sk, None, bucket, &key, None, None)
                            .await
                            .unwrap();
                        let slot = model.entry((bucket.into(), key.clone())).or_default();
                        if !versioned {
                            slot.clear();
                        }
                        slot.push((out.version_id, Some(data)));
                    }
                }
                _ => {
                    // Multipart: three parts, part 2 sent twice; one in
                    // three uploads is aborted instead.
                    let up = e
                        .create_upload(bucket, &key, ObjectMeta::default(), None)
                        .await
                        .unwrap();
                    let state = e.bucket(bucket).await.unwrap();
                    let mut parts = Vec::new();
                    let mut whole = Vec::new();
                    for (n, data) in [
                        (1, body(&mut rng)),
                        (2, body(&mut rng)),
                        (2, body(&mut rng)),
                        (3, body(&mut rng)),
                    ] {
                        let staged = e
                            .stage_body(
                                &state,
                                futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
                                    Bytes::from(data.clone()),
                                )]),
                                &[],
                            )
                            .await
                            .unwrap();
                        let p = e.put_part(bucket, &up, n, staged).await.unwrap();
                        if parts.len() as u32 >= n {
                            parts.pop();
                            whole.pop();
                        }
                        parts.push(CompletedPart {
                            number: n,
                            etag: p.etag.clone(),
                            checksums: vec![],
                        });
                        whole.push(data);
                    }
                    if rng.random_range(0..3) == 0 {
                        e.abort_upload(bucket, &up.upload_id).await.unwrap();
                    } else {
                        let done = e.complete_upload(bucket, &up, &parts, None).await.unwrap();
                        let slot = model.entry((bucket.into(), key.clone())).or_default();
                        if !versioned {
                            slot.clear();
                        }
                        slot.push((done.put.version_id, Some(whole.concat())));
                    }
                }
            }
        }
        let before = log_bytes(&e);
        let report = e.collect(CollectOptions::default()).await.unwrap();
        collections += 1;
        let after = log_bytes(&e);
        eprintln!(
            "round {round}: {before} -> {after} bytes; rewrote {} + {} segments",
            report.data.rewritten_segments, report.catalog.rewritten_segments
        );
        check(&e, &model).await;
        let dry = e.collect(CollectOptions { dry_run: true }).await.unwrap();
        assert_eq!(
            (dry.data.reclaimable_bytes, dry.catalog.reclaimable_bytes),
            (0, 0),
            "round {round}: garbage left beyond the threshold: {dry:?}"
        );
        // What is left is the live bytes and at most the threshold's share
        // of dead ones in segments not worth rewriting.
        let live = dry.data.live_bytes + dry.catalog.live_bytes;
        assert!(
            after as f64 <= live as f64 / 0.7 + (1 << 20) as f64,
            "round {round}: {after} bytes on disk for {live} live"
        );
        if round % 2 == 1 {
            // Everything holds after a restart too.
            drop(e);
            e = open(dir.path(), ONLY_HEAD).await;
            check(&e, &model).await;
        }
    }
    assert_eq!(collections, 8);
}

/// Hooks that stop a collection at one step until the test lets it go.
#[derive(Debug, Default)]
struct Gate {
    at: Mutex<Option<GcStep>>,
    reached: tokio::sync::Notify,
    release: std::sync::Condvar,
    released: Mutex<bool>,
}

impl GcHooks for Gate {
    fn at(&self, step: GcStep) {
        if *self.at.lock().unwrap() != Some(step) {
            return;
        }
        self.reached.notify_one();
        let mut r = self.released.lock().unwrap();
        while !*r {
            r = self.release.wait(r).unwrap();
        }
    }
}

impl Gate {
    fn stop_at(&self, step: GcStep) {
        *self.at.lock().unwrap() = Some(step);
        *self.released.lock().unwrap() = false;
    }

    fn open(&self) {
        *self.released.lock().unwrap() = true;
        self.release.notify_all();
    }
}

/// The dedup race, step by step: the mark finds a body dead; then, before
/// the segment holding it is retired, a PUT of the same bytes
/// deduplicates against it. The collection must keep it: the PUT reads
/// back after the collection and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_reuses_a_dead_body_during_a_collection_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), ONLY_HEAD).await;
    let gate = Arc::new(Gate::default());
    e.set_gc_hooks(gate.clone());
    e.create_bucket("b", "me").await.unwrap();
    let x: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let first = put(&e, "b", "a", &x).await;
    put(&e, "b", "a", b"something else").await;
    let x_root = first.manifest.body.unwrap();

    for step in [GcStep::Marked, GcStep::Copying] {
        gate.stop_at(step);
        let collector = {
            let e = e.clone();
            tokio::spawn(async move { e.collect(CollectOptions::default()).await })
        };
        gate.reached.notified().await;
        // The mark is done: `x` is dead as far as it knows.
        let key = format!("again-{}", step.name());
        put(&e, "b", &key, &x).await;
        gate.open();
        let report = collector.await.unwrap().unwrap();
        assert!(report.data.rewritten_segments > 0 || step == GcStep::Copying);
        let v = e.object("b", &key, None).await.unwrap();
        assert_eq!(v.manifest.body, Some(x_root));
        assert_eq!(e.read_all(&v.manifest).await.unwrap(), x);
        // Deleted again: the next collection takes it.
        e.delete("b", &key, None).await.unwrap();
    }
    put(&e, "b", "kept", &x).await;
    e.collect(CollectOptions::default()).await.unwrap();
    drop(e);
    let e = open(dir.path(), ONLY_HEAD).await;
    let v = e.object("b", "kept", None).await.unwrap();
    assert_eq!(e.read_all(&v.manifest).await.unwrap(), x);
    assert!(e.fsck("b", false).await.unwrap().problems.is_empty());
}

/// A body being received while a collection runs (its blocks written
/// before the fence, its manifest committed after the sweep), and a
/// multipart upload whose parts were sent before the collection and
/// completed after: both read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_flight_survive_a_collection() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), ONLY_HEAD).await;
    e.create_bucket("b", "me").await.unwrap();
    let state = e.bucket("b").await.unwrap();

    // A PUT whose first half arrives, then waits.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let half: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    tx.send(Ok(Bytes::from(half.clone()))).await.unwrap();
    let staging = {
        let e = e.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let body = tokio_stream_from(rx);
            e.stage_body(&state, body, &[]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A multipart upload with its parts in.
    let up = e
        .create_upload("b", "mp", ObjectMeta::default(), None)
        .await
        .unwrap();
    let mut parts = Vec::new();
    let mut whole = Vec::new();
    for n in 1..=2u32 {
        let data = vec![n as u8 + 40; 150_000];
        let staged = e
            .stage_body(
                &state,
                futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(
                    data.clone(),
                ))]),
                &[],
            )
            .await
            .unwrap();
        let p = e.put_part("b", &up, n, staged).await.unwrap();
        parts.push(CompletedPart {
            number: n,
            etag: p.etag,
            checksums: vec![],
        });
        whole.extend(data);
    }

    // Everything sealed, a full collection, then another.
    e.collect(CollectOptions::default()).await.unwrap();
    e.collect(CollectOptions::default()).await.unwrap();

    tx.send(Ok(Bytes::from(half.clone()))).await.unwrap();
    drop(tx);
    let staged = staging.await.unwrap().unwrap();
    e.put("b", "slow", staged, ObjectMeta::default(), None)
        .await
        .unwrap();
    e.complete_upload("b", &up, &parts, None).await.unwrap();
    e.collect(CollectOptions::default()).await.unwrap();

    let v = e.object("b", "slow", None).await.unwrap();
    assert_eq!(
        e.read_all(&v.manifest).await.unwrap(),
        [half.clone(), half].concat()
    );
    let v = e.object("b", "mp", None).await.unwrap();
    assert_eq!(e.read_all(&v.manifest).await.unwrap(), whole);
    assert!(e.fsck("b", false).await.unwrap().problems.is_empty());
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The links of a block (dag-cbor links, dag-pb children).
fn links(cid: &Cid, data: &Bytes) -> Vec<Cid> {
    fn walk(v: &ipld_core::ipld::Ipld, out: &mut Vec<Cid>) {
        match v {
            ipld_core::ipld::Ipld::Link(c) => out.push(*c),
            ipld_core::ipld::Ipld::List(l) => l.iter().for_each(|x| walk(x, out)),
            ipld_core::ipld::Ipld::Map(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match Codec::from_code(cid.codec()) {
        Some(Codec::DagCbor) => {
            let v: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(data).unwrap();
            walk(&v, &mut out);
        }
        Some(Codec::DagPb) => {
            out.extend(
                billet_unixfs::decode_file_node(data)
                    .unwrap()
                    .children
                    .into_iter()
                    .map(|(c, _)| c),
            );
        }
        _ => {}
    }
    out
}

/// Exports a bucket and checks every link in the file resolves inside
/// it; returns the commits it holds.
fn export_is_closed(e: &Engine, head: &Cid, history: ExportHistory) -> u64 {
    let (stats, out) =
        export_car(e.store().as_ref(), head, history, Vec::new(), &mut |_| {}).unwrap();
    let mut r = billet_car::CarReader::new(&out[..]).unwrap();
    let mut have = HashSet::new();
    let mut wanted = Vec::new();
    while let Some(b) = r.next_block().unwrap() {
        have.insert(*b.block.cid());
        wanted.extend(links(b.block.cid(), b.block.data()));
    }
    for l in wanted {
        assert!(
            have.contains(&l),
            "the export links {l}, which it does not hold"
        );
    }
    stats.commits
}

/// Retention keeps a window of history readable and the rest goes; the
/// default export and `--history` stay closed whatever was collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_history_stays_readable_and_exports_stay_closed() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Retention {
        keep_secs: None,
        keep_commits: Some(4),
    };
    let e = open(dir.path(), keep).await;
    e.create_bucket("h", "me").await.unwrap();
    let mut bodies = Vec::new();
    for i in 0..12u32 {
        let data = vec![i as u8; 100_000 + i as usize];
        let out = put(&e, "h", "k", &data).await;
        bodies.push((out.manifest.body.unwrap(), data));
    }
    let report = e.collect(CollectOptions::default()).await.unwrap();
    let kept = report.buckets.iter().find(|b| b.bucket == "h").unwrap();
    assert_eq!(kept.head_seq, 12);
    assert_eq!(kept.floor, 9, "the newest four commits stay");
    assert!(kept.commits >= 13);
    // The bodies of the kept commits are there; older ones are gone.
    for (i, (root, data)) in bodies.iter().enumerate() {
        let present = e.store().has(root).unwrap();
        if i >= 8 {
            assert!(present, "body {i}");
            let store = e.store().clone();
            let r = *root;
            let len = data.len() as u64;
            let got = tokio::task::spawn_blocking(move || {
                billet_unixfs::RangeReader::new(store, r, len, 0, len)
                    .unwrap()
                    .map(|p| p.unwrap())
                    .collect::<Vec<_>>()
                    .concat()
            })
            .await
            .unwrap();
            assert_eq!(&got, data);
        }
    }
    let gone = bodies[..7]
        .iter()
        .filter(|(r, _)| !e.store().has(r).unwrap())
        .count();
    assert!(gone >= 6, "{gone} of 7 old bodies collected");
    let head = e.bucket("h").await.unwrap().head;
    let e2 = e.clone();
    let (one, history) = tokio::task::spawn_blocking(move || {
        (
            export_is_closed(&e2, &head, ExportHistory::Head),
            export_is_closed(&e2, &head, ExportHistory::Down(9)),
        )
    })
    .await
    .unwrap();
    assert_eq!(one, 1);
    assert_eq!(history, 4);
    // The history the export holds is what the retention keeps.
    let r = e.retained_history("h", keep).await.unwrap();
    assert_eq!(r.floor, 9);
}

/// Checkpoints of commits no longer kept are pruned (the newest stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_beyond_the_retention_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), ONLY_HEAD).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    e.create_bucket("c", "me").await.unwrap();
    for i in 0..5u8 {
        put(&e, "c", "k", &[i; 10]).await;
        e.sign_checkpoint("c", &key).await.unwrap();
    }
    assert_eq!(e.checkpoints("c").await.unwrap().len(), 5);
    let report = e.collect(CollectOptions::default()).await.unwrap();
    assert_eq!(report.checkpoints_pruned, 4);
    let left = e.checkpoints("c").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].checkpoint.seq, 5);
}

/// Writers, readers and deleters keep going while collections run back
/// to back: nobody fails or waits for ever (a lock taken in two orders
/// would hang here), and every acknowledged write reads back after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_and_writes_run_together() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), ONLY_HEAD).await;
    e.create_bucket("busy", "me").await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ops = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (e, stop, ops) = (e.clone(), stop.clone(), ops.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(w);
            let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("w{w}/k{}", rng.random_range(0..10));
                if rng.random_bool(0.8) {
                    let data = body(&mut rng);
                    put(&e, "busy", &key, &data).await;
                    model.insert(key, data);
                } else {
                    e.delete("busy", &key, None).await.unwrap();
                    model.remove(&key);
                }
                if let Some((k, want)) = model.iter().next() {
                    let v = e.object("busy", k, None).await.unwrap();
                    assert_eq!(&e.read_all(&v.manifest).await.unwrap(), want);
                }
                ops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            model
        }));
    }
    let run = async {
        let mut rewritten = 0;
        let mut runs = 0;
        while runs < 15 || ops.load(std::sync::atomic::Ordering::SeqCst) < 400 {
            let r = e.collect(CollectOptions::default()).await.unwrap();
            rewritten += r.data.rewritten_segments + r.catalog.rewritten_segments;
            runs += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut models = Vec::new();
        for w in writers {
            models.push(w.await.unwrap());
        }
        (rewritten, models)
    };
    // A hang (nextest stops it after ten minutes) is what this catches.
    let (rewritten, models) = run.await;
    assert!(rewritten > 0);
    for model in models {
        for (k, want) in model {
            let v = e.object("busy", &k, None).await.unwrap();
            assert_eq!(e.read_all(&v.manifest).await.unwrap(), want, "{k}");
        }
    }
    assert!(e.fsck("busy", false).await.unwrap().problems.is_empty());
}

/// A bucket imported from a version-1 export keeps its linked history
/// until a version-2 commit is the oldest it keeps; then the version-1
/// trees go, and exports are closed without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_history_goes_once_a_version_2_commit_is_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), ONLY_HEAD).await;
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/v1-history.car");
    let car = Arc::new(billet_car::CarFile::open(&golden).unwrap());
    e.import_car(car, None, "me").await.unwrap();
    let imported = e.bucket("golden-v1").await.unwrap().head;
    let r = e.collect(CollectOptions::default()).await.unwrap();
    assert_eq!(r.buckets[0].floor, 0, "version-1 history is kept whole");
    let e2 = e.clone();
    let commits =
        tokio::task::spawn_blocking(move || export_is_closed(&e2, &imported, ExportHistory::Head))
            .await
            .unwrap();
    assert_eq!(commits, 8);

    put(&e, "golden-v1", "new", b"a version-2 commit").await;
    let r = e.collect(CollectOptions::default()).await.unwrap();
    let b = r.buckets[0].clone();
    assert_eq!(b.floor, b.head_seq, "only the head is kept now");
    let head = e.bucket("golden-v1").await.unwrap().head;
    let e2 = e.clone();
    let (commits, history) = tokio::task::spawn_blocking(move || {
        (
            export_is_closed(&e2, &head, ExportHistory::Head),
            export_is_closed(&e2, &head, ExportHistory::Down(b.floor)),
        )
    })
    .await
    .unwrap();
    assert_eq!((commits, history), (1, 1));
    // The imported head's commit block stays (an MMR leaf); its tree's
    // unshared parts and the older commits went.
    assert!(e.store().has(&imported).unwrap());
    let fsck = e.fsck("golden-v1", false).await.unwrap();
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
    let v = e
        .object("golden-v1", "notes/hello.txt", None)
        .await
        .unwrap();
    assert_eq!(
        e.read_all(&v.manifest).await.unwrap(),
        b"hello again, second version\n"
    );
}
