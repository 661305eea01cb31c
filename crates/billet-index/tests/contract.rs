#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! One contract suite, run against both backends. PostgreSQL runs on
//! `BILLET_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/test),
//! each test in a schema of its own that it drops afterwards. Without a
//! server the PostgreSQL half skips with a message, except under CI=true,
//! where it fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use billet_block::{Block, Cid, Codec};
use billet_index::*;
use billet_records::{BucketSettings, Manifest, Versioning};

fn cid(tag: &str) -> Cid {
    *Block::new(Codec::DagCbor, tag.as_bytes().to_vec()).cid()
}

fn manifest(key: &str, tag: &str, size: u64, t: i64) -> Manifest {
    Manifest::new(
        key,
        *Block::new(Codec::Raw, tag.as_bytes().to_vec()).cid(),
        size,
        format!("{:032x}", size),
        [1; 32],
        t,
    )
}

fn state(name: &str) -> BucketState {
    BucketState {
        name: name.into(),
        owner: "owner".into(),
        created_ms: 1,
        head: cid(&format!("{name}-0")),
        seq: 0,
        settings: BucketSettings::default(),
    }
}

fn put(key: &str, version: &str, tag: &str) -> RowChange {
    let m = manifest(key, tag, tag.len() as u64, 10);
    RowChange::Put {
        key: key.into(),
        version_id: version.into(),
        manifest_cid: *m.to_block().unwrap().cid(),
        manifest: m,
    }
}

/// Commits `changes` on top of the bucket's current head.
async fn commit(ix: &dyn Index, bucket: &str, changes: Vec<RowChange>) -> Cid {
    let b = ix.bucket(bucket).await.unwrap().unwrap();
    let head = cid(&format!("{bucket}-{}", b.seq + 1));
    ix.commit(CommitBatch {
        bucket: bucket.into(),
        expected_head: b.head,
        head,
        seq: b.seq + 1,
        settings: None,
        changes,
        completed_uploads: vec![],
        mmr: vec![],
        commits: Vec::new(),
    })
    .await
    .unwrap();
    head
}

async fn put_keys(ix: &dyn Index, bucket: &str, keys: &[String]) {
    for chunk in keys.chunks(500) {
        commit(
            ix,
            bucket,
            chunk.iter().map(|k| put(k, NULL_VERSION, k)).collect(),
        )
        .await;
    }
}

/// S3 ListObjects computed the obvious way, as the model.
fn model_list(keys: &[String], q: &ListQuery) -> (Vec<String>, Vec<String>, bool) {
    let mut sorted = keys.to_vec();
    sorted.sort();
    let mut objects = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut count = 0;
    let mut truncated = false;
    for k in sorted {
        if !k.starts_with(&q.prefix) || q.after.as_ref().is_some_and(|a| k.as_str() <= a.as_str()) {
            continue;
        }
        let cp = q
            .delimiter
            .as_ref()
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                k[q.prefix.len()..]
                    .find(d.as_str())
                    .map(|i| k[..q.prefix.len() + i + d.len()].to_string())
            });
        match cp {
            Some(cp) => {
                if prefixes.last() == Some(&cp)
                    || q.after.as_ref().is_some_and(|a| a.starts_with(&cp))
                {
                    continue;
                }
                if count == q.max_keys {
                    truncated = true;
                    break;
                }
                prefixes.push(cp);
            }
            None => {
                if count == q.max_keys {
                    truncated = true;
                    break;
                }
                objects.push(k);
            }
        }
        count += 1;
    }
    (objects, prefixes, truncated && q.max_keys > 0)
}

async fn check_listing(ix: &dyn Index, bucket: &str, keys: &[String], q: ListQuery) {
    let page = ix.list_objects(bucket, &q).await.unwrap();
    let got: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
    let (objects, prefixes, truncated) = model_list(keys, &q);
    assert_eq!(
        (got, page.prefixes.clone(), page.truncated),
        (objects, prefixes, truncated),
        "{q:?}"
    );
}

/// Pages through a listing with `max` per page and returns everything seen.
async fn page_all(
    ix: &dyn Index,
    bucket: &str,
    prefix: &str,
    delim: Option<&str>,
    max: usize,
) -> (Vec<String>, Vec<String>) {
    let mut after = None;
    let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
    loop {
        let q = ListQuery {
            prefix: prefix.into(),
            delimiter: delim.map(str::to_string),
            after: after.clone(),
            max_keys: max,
        };
        let page = ix.list_objects(bucket, &q).await.unwrap();
        objects.extend(page.objects.iter().map(|o| o.key.clone()));
        prefixes.extend(page.prefixes.clone());
        if !page.truncated {
            return (objects, prefixes);
        }
        assert!(page.next_after > after, "pagination must advance");
        after = page.next_after;
    }
}

// The cases.

async fn case_buckets(ix: &dyn Index) {
    ix.create_bucket(&state("alpha")).await.unwrap();
    ix.create_bucket(&state("beta")).await.unwrap();
    assert!(matches!(
        ix.create_bucket(&state("alpha")).await,
        Err(IndexError::BucketExists(_))
    ));
    let names: Vec<String> = ix
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let a = ix.bucket("alpha").await.unwrap().unwrap();
    assert_eq!(
        (a.head, a.seq, a.owner.as_str()),
        (cid("alpha-0"), 0, "owner")
    );
    assert!(ix.bucket("nope").await.unwrap().is_none());
    commit(ix, "alpha", vec![put("k", NULL_VERSION, "v")]).await;
    assert!(matches!(
        ix.delete_bucket("alpha").await,
        Err(IndexError::BucketNotEmpty(_))
    ));
    ix.delete_bucket("beta").await.unwrap();
    assert!(matches!(
        ix.delete_bucket("beta").await,
        Err(IndexError::NoSuchBucket(_))
    ));
    assert!(matches!(
        ix.list_objects("beta", &ListQuery::default()).await,
        Err(IndexError::NoSuchBucket(_))
    ));
    // A deleted name can be created again, empty.
    ix.create_bucket(&state("beta")).await.unwrap();
    assert!(ix.object("beta", "k", None).await.unwrap().is_none());
}

async fn case_cas_and_atomicity(ix: &dyn Index) {
    ix.create_bucket(&state("b")).await.unwrap();
    let head = commit(ix, "b", vec![put("a", NULL_VERSION, "1")]).await;
    // Wrong expected head: a typed conflict naming both.
    let err = ix
        .commit(CommitBatch {
            bucket: "b".into(),
            expected_head: cid("stale"),
            head: cid("x"),
            seq: 2,
            settings: None,
            changes: vec![put("z", NULL_VERSION, "z")],
            completed_uploads: vec![],
            mmr: vec![],
            commits: Vec::new(),
        })
        .await
        .unwrap_err();
    match err {
        IndexError::Conflict { actual, .. } => assert_eq!(*actual, head),
        e => panic!("{e:?}"),
    }
    // A commit failing halfway (unknown upload) changes nothing at all.
    let err = ix
        .commit(CommitBatch {
            bucket: "b".into(),
            expected_head: head,
            head: cid("y"),
            seq: 2,
            settings: Some(BucketSettings {
                versioning: Versioning::Enabled,
                ..BucketSettings::default()
            }),
            changes: vec![put("z", NULL_VERSION, "z")],
            completed_uploads: vec!["no-such-upload".into()],
            mmr: vec![(0, [7; 32])],
            commits: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::NoSuchUpload(_)), "{err:?}");
    let b = ix.bucket("b").await.unwrap().unwrap();
    assert_eq!(
        (b.head, b.seq, b.settings.versioning),
        (head, 1, Versioning::Unversioned)
    );
    assert!(ix.object("b", "z", None).await.unwrap().is_none());
    assert_eq!(ix.mmr_size("b").await.unwrap(), 0);
}

async fn case_concurrent_committers(ix: Arc<dyn Index>) {
    ix.create_bucket(&state("c")).await.unwrap();
    let start = ix.bucket("c").await.unwrap().unwrap();
    // Eight committers race from the same head: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ix = ix.clone();
        tasks.push(tokio::spawn(async move {
            ix.commit(CommitBatch {
                bucket: "c".into(),
                expected_head: start.head,
                head: cid(&format!("race-{i}")),
                seq: 1,
                settings: None,
                changes: vec![put(&format!("k{i}"), NULL_VERSION, "v")],
                completed_uploads: vec![],
                mmr: vec![],
                commits: Vec::new(),
            })
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(IndexError::Conflict { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(wins, 1);
    // Rebasing committers: each retries on the new head until it lands.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ix = ix.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let b = ix.bucket("c").await.unwrap().unwrap();
                let r = ix
                    .commit(CommitBatch {
                        bucket: "c".into(),
                        expected_head: b.head,
                        head: cid(&format!("rebase-{i}-{}", b.seq)),
                        seq: b.seq + 1,
                        settings: None,
                        changes: vec![put(&format!("r{i}"), NULL_VERSION, "v")],
                        completed_uploads: vec![],
                        mmr: vec![],
                        commits: Vec::new(),
                    })
                    .await;
                match r {
                    Ok(()) => return,
                    Err(IndexError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ix.bucket("c").await.unwrap().unwrap().seq, 9);
    let page = ix
        .list_objects(
            "c",
            &ListQuery {
                max_keys: 100,
                prefix: "r".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 8);
}

async fn case_versions(ix: &dyn Index) {
    ix.create_bucket(&state("v")).await.unwrap();
    commit(ix, "v", vec![put("k", "v1", "one")]).await;
    commit(ix, "v", vec![put("k", "v2", "two!")]).await;
    let dm = Manifest::delete_marker("k", "v3".into(), 20);
    commit(
        ix,
        "v",
        vec![RowChange::Put {
            key: "k".into(),
            version_id: "v3".into(),
            manifest_cid: *dm.to_block().unwrap().cid(),
            manifest: dm,
        }],
    )
    .await;
    let latest = ix.object("v", "k", None).await.unwrap().unwrap();
    assert!(latest.is_delete_marker() && latest.is_latest && latest.version_id == "v3");
    assert_eq!(
        ix.object("v", "k", Some("v1"))
            .await
            .unwrap()
            .unwrap()
            .size(),
        3
    );
    assert!(
        !ix.object("v", "k", Some("v1"))
            .await
            .unwrap()
            .unwrap()
            .is_latest
    );
    // A delete marker hides the key from ListObjects.
    assert!(
        ix.list_objects(
            "v",
            &ListQuery {
                max_keys: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .objects
        .is_empty()
    );
    // All versions, newest first.
    let all = ix
        .list_versions(
            "v",
            &VersionQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = all.versions.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(ids, ["v3", "v2", "v1"]);
    assert!(all.versions[0].delete_marker && all.versions[0].is_latest);
    // Removing the marker makes v2 latest again.
    commit(
        ix,
        "v",
        vec![RowChange::Delete {
            key: "k".into(),
            version_id: "v3".into(),
        }],
    )
    .await;
    let latest = ix.object("v", "k", None).await.unwrap().unwrap();
    assert_eq!((latest.version_id.as_str(), latest.is_latest), ("v2", true));
    // The null version is replaced in place, other versions stay.
    commit(ix, "v", vec![put("k", NULL_VERSION, "n1")]).await;
    commit(ix, "v", vec![put("k", NULL_VERSION, "n22")]).await;
    let all = ix
        .list_versions(
            "v",
            &VersionQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = all.versions.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(ids, ["null", "v2", "v1"]);
    assert_eq!(
        ix.object("v", "k", Some("null"))
            .await
            .unwrap()
            .unwrap()
            .size(),
        3
    );
    // Several puts of one key in one commit: applied in order.
    commit(ix, "v", vec![put("two", "a", "x"), put("two", "b", "yy")]).await;
    let two = ix
        .list_versions(
            "v",
            &VersionQuery {
                prefix: "two".into(),
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<(&str, bool)> = two
        .versions
        .iter()
        .map(|v| (v.version_id.as_str(), v.is_latest))
        .collect();
    assert_eq!(got, [("b", true), ("a", false)]);
    commit(
        ix,
        "v",
        vec![
            put("one", NULL_VERSION, "x"),
            put("one", NULL_VERSION, "yyy"),
        ],
    )
    .await;
    let one = ix
        .list_versions(
            "v",
            &VersionQuery {
                prefix: "one".into(),
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one.versions.len(), 1);
    assert_eq!(one.versions[0].size, 3);
    // Replace keeps position; an unknown version is a typed error.
    let mut m = manifest("k", "v1", 3, 10);
    m.tags.insert("t".into(), "x".into());
    commit(
        ix,
        "v",
        vec![RowChange::Replace {
            key: "k".into(),
            version_id: "v1".into(),
            manifest_cid: *m.to_block().unwrap().cid(),
            manifest: m.clone(),
        }],
    )
    .await;
    assert_eq!(
        ix.object("v", "k", Some("v1"))
            .await
            .unwrap()
            .unwrap()
            .manifest
            .tags["t"],
        "x"
    );
    let b = ix.bucket("v").await.unwrap().unwrap();
    let err = ix
        .commit(CommitBatch {
            bucket: "v".into(),
            expected_head: b.head,
            head: cid("q"),
            seq: b.seq + 1,
            settings: None,
            changes: vec![RowChange::Replace {
                key: "k".into(),
                version_id: "nope".into(),
                manifest_cid: cid("m"),
                manifest: m,
            }],
            completed_uploads: vec![],
            mmr: vec![],
            commits: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::NoSuchVersion { .. }));
}

/// Many changes in one commit end as if committed one by one: a later put
/// of a version replaces an earlier one, only a key's last put is latest,
/// a delete after puts sees them.
async fn case_changes_in_one_commit(ix: &dyn Index) {
    ix.create_bucket(&state("o")).await.unwrap();
    commit(ix, "o", vec![put("k", "v0", "old")]).await;
    commit(
        ix,
        "o",
        vec![
            put("k", "v1", "a"),
            put("k", "v2", "bb"),
            put("j", NULL_VERSION, "c"),
            put("j", NULL_VERSION, "dddd"),
            RowChange::Delete {
                key: "k".into(),
                version_id: "v2".into(),
            },
            put("m", NULL_VERSION, "e"),
        ],
    )
    .await;
    let k = ix.object("o", "k", None).await.unwrap().unwrap();
    assert_eq!((k.version_id.as_str(), k.is_latest), ("v1", true));
    let j = ix.object("o", "j", None).await.unwrap().unwrap();
    assert_eq!((j.version_id.as_str(), j.size()), (NULL_VERSION, 4));
    let all = ix
        .list_versions(
            "o",
            &VersionQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<(&str, &str, bool)> = all
        .versions
        .iter()
        .map(|v| (v.key.as_str(), v.version_id.as_str(), v.is_latest))
        .collect();
    assert_eq!(
        got,
        [
            ("j", NULL_VERSION, true),
            ("k", "v1", true),
            ("k", "v0", false),
            ("m", NULL_VERSION, true)
        ]
    );
    // A version-id marker whose version is gone continues with the next key.
    let page = ix
        .list_versions(
            "o",
            &VersionQuery {
                key_marker: Some("k".into()),
                version_id_marker: Some("v2".into()),
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = page.versions.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["m"]);
    // A live one continues right after it.
    let page = ix
        .list_versions(
            "o",
            &VersionQuery {
                key_marker: Some("k".into()),
                version_id_marker: Some("v1".into()),
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .versions
        .iter()
        .map(|v| v.version_id.as_str())
        .collect();
    assert_eq!(ids, ["v0", NULL_VERSION]);
}

async fn case_versions_across_pages(ix: &dyn Index) {
    ix.create_bucket(&state("vp")).await.unwrap();
    let mut want = Vec::new();
    for k in ["a", "b/x", "b/y", "c"] {
        for v in 0..3 {
            commit(ix, "vp", vec![put(k, &format!("{k}-{v}"), "x")]).await;
        }
        for v in (0..3).rev() {
            want.push(format!("{k}-{v}"));
        }
    }
    for max in [1, 2, 5] {
        let (mut km, mut vm) = (None, None);
        let mut got = Vec::new();
        loop {
            let page = ix
                .list_versions(
                    "vp",
                    &VersionQuery {
                        key_marker: km.clone(),
                        version_id_marker: vm.clone(),
                        max_keys: max,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            got.extend(page.versions.iter().map(|v| v.version_id.clone()));
            if !page.truncated {
                break;
            }
            km = page.next_key_marker;
            vm = page.next_version_id_marker;
        }
        assert_eq!(got, want, "max {max}");
    }
    // With a delimiter, b/ rolls up and is counted once.
    let page = ix
        .list_versions(
            "vp",
            &VersionQuery {
                delimiter: Some("/".into()),
                max_keys: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.prefixes, ["b/"]);
    assert_eq!(page.versions.len(), 6);
}

async fn case_listing_edges(ix: &dyn Index) {
    ix.create_bucket(&state("l")).await.unwrap();
    let mut keys: Vec<String> = vec![
        "a",
        "a/",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "ab",
        "b",
        "b--x--1",
        "b--x--2",
        "b--y",
        "c/ü/1",
        "c/ü/2",
        "c/ü/ñ/3",
        "c/üb",
        "c/🙂/1",
        "c/🙂",
        "d/",
        "d//e",
        "zz",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Multi-byte keys around page boundaries.
    keys.extend((0..30).map(|i| format!("m/é{i:02}/ß")));
    put_keys(ix, "l", &keys).await;
    let prefixes = [
        "", "a", "a/", "a/b", "ab", "c/", "c/ü", "m/", "m/é1", "zz", "zzz", "b--",
    ];
    let delims = [None, Some("/"), Some("--"), Some("ü"), Some("b/")];
    let afters = [
        None,
        Some("a"),
        Some("a/b"),
        Some("a/b/c"),
        Some("c/ü/"),
        Some("m/é05/ß"),
        Some("zz"),
        Some("b--x--1"),
    ];
    for prefix in prefixes {
        for delim in delims {
            for after in afters {
                for max in [0, 1, 2, 7, 1000] {
                    let q = ListQuery {
                        prefix: prefix.into(),
                        delimiter: delim.map(str::to_string),
                        after: after.map(str::to_string),
                        max_keys: max,
                    };
                    check_listing(ix, "l", &keys, q).await;
                }
            }
        }
    }
    // Paging with max 1 and 3 yields the same as one big page, never a
    // repeated common prefix.
    for delim in [None, Some("/"), Some("--")] {
        let (o1, p1) = page_all(ix, "l", "", delim, 1).await;
        let (o3, p3) = page_all(ix, "l", "", delim, 3).await;
        let (ob, pb) = page_all(ix, "l", "", delim, 1000).await;
        assert_eq!((&o1, &p1), (&ob, &pb));
        assert_eq!((&o3, &p3), (&ob, &pb));
        let mut dedup = pb.clone();
        dedup.dedup();
        assert_eq!(dedup, pb);
    }
}

async fn case_listing_random(ix: &dyn Index) {
    ix.create_bucket(&state("r")).await.unwrap();
    let mut x: u64 = 0x1234_5678;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let parts = ["a", "b", "é", "/", "//", "-", "x"];
    let mut keys: Vec<String> = (0..400)
        .map(|_| {
            (0..1 + rnd(6))
                .map(|_| parts[rnd(parts.len() as u64) as usize])
                .collect::<String>()
        })
        .collect();
    keys.sort();
    keys.dedup();
    put_keys(ix, "r", &keys).await;
    for _ in 0..150 {
        let prefix: String = (0..rnd(3))
            .map(|_| parts[rnd(parts.len() as u64) as usize])
            .collect();
        let delim = match rnd(4) {
            0 => None,
            1 => Some("/".to_string()),
            2 => Some("a".to_string()),
            _ => Some("é/".to_string()),
        };
        let after = (rnd(3) == 0).then(|| keys[rnd(keys.len() as u64) as usize].clone());
        let q = ListQuery {
            prefix,
            delimiter: delim,
            after,
            max_keys: rnd(40) as usize,
        };
        check_listing(ix, "r", &keys, q).await;
    }
}

async fn case_multipart(ix: &dyn Index) {
    ix.create_bucket(&state("m")).await.unwrap();
    for (i, key) in ["x/1", "x/1", "x/2", "y"].iter().enumerate() {
        ix.create_upload(
            "m",
            &Upload {
                upload_id: format!("u{i}"),
                key: key.to_string(),
                initiated_ms: i as i64,
                meta: vec![i as u8],
            },
        )
        .await
        .unwrap();
    }
    let part = |n: u32, tag: &str| Part {
        number: n,
        size: 5 << 20,
        etag: format!("{tag:0>32}"),
        root: cid(tag),
        last_modified_ms: 5,
        meta: vec![],
    };
    assert!(
        ix.put_part("m", "u0", &part(1, "a"))
            .await
            .unwrap()
            .is_none()
    );
    let old = ix
        .put_part("m", "u0", &part(1, "b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        old.root,
        cid("a"),
        "re-uploading a part number returns the replaced part"
    );
    for n in [3, 2, 10000] {
        ix.put_part("m", "u0", &part(n, "c")).await.unwrap();
    }
    let page = ix.parts("m", "u0", 0, 2).await.unwrap();
    assert_eq!(
        page.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(page.truncated && page.next_part_number_marker == Some(2));
    let page = ix.parts("m", "u0", 2, 10).await.unwrap();
    assert_eq!(
        page.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [3, 10000]
    );
    assert!(!page.truncated);
    assert_eq!(
        ix.parts("m", "u0", 0, 10).await.unwrap().parts[0].root,
        cid("b")
    );
    // Listing uploads, with markers and a delimiter.
    let q = |km: Option<&str>, um: Option<&str>, max| UploadQuery {
        key_marker: km.map(str::to_string),
        upload_id_marker: um.map(str::to_string),
        max_uploads: max,
        ..Default::default()
    };
    let all = ix.list_uploads("m", &q(None, None, 10)).await.unwrap();
    assert_eq!(
        all.uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        ["u0", "u1", "u2", "u3"]
    );
    let p = ix.list_uploads("m", &q(None, None, 1)).await.unwrap();
    assert!(
        p.truncated
            && p.next_key_marker.as_deref() == Some("x/1")
            && p.next_upload_id_marker.as_deref() == Some("u0")
    );
    let p = ix
        .list_uploads("m", &q(Some("x/1"), Some("u0"), 10))
        .await
        .unwrap();
    assert_eq!(
        p.uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        ["u1", "u2", "u3"]
    );
    let p = ix
        .list_uploads("m", &q(Some("x/1"), None, 10))
        .await
        .unwrap();
    assert_eq!(
        p.uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        ["u2", "u3"]
    );
    let p = ix
        .list_uploads(
            "m",
            &UploadQuery {
                delimiter: Some("/".into()),
                max_uploads: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p.prefixes, ["x/"]);
    assert_eq!(p.uploads.len(), 1);
    assert_eq!(ix.stale_uploads("m", 2, 10).await.unwrap().len(), 2);
    // Abort: the parts come back for collection, the upload is gone.
    let parts = ix.abort_upload("m", "u0").await.unwrap();
    assert_eq!(parts.len(), 4);
    assert!(ix.upload("m", "u0").await.unwrap().is_none());
    assert!(matches!(
        ix.put_part("m", "u0", &part(1, "z")).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(matches!(
        ix.abort_upload("m", "u0").await,
        Err(IndexError::NoSuchUpload(_))
    ));
    // Complete goes through a commit; completing an aborted upload fails
    // and commits nothing.
    let b = ix.bucket("m").await.unwrap().unwrap();
    let complete = |id: &str, seq: u64, head: Cid| CommitBatch {
        bucket: "m".into(),
        expected_head: head,
        head: cid(&format!("m-{seq}")),
        seq,
        settings: None,
        changes: vec![put("x/1", NULL_VERSION, "done")],
        completed_uploads: vec![id.into()],
        mmr: vec![],
        commits: Vec::new(),
    };
    assert!(matches!(
        ix.commit(complete("u0", 1, b.head)).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    ix.commit(complete("u1", 1, b.head)).await.unwrap();
    assert!(ix.upload("m", "u1").await.unwrap().is_none());
    assert!(ix.parts("m", "u1", 0, 10).await.unwrap().parts.is_empty());
    assert!(ix.object("m", "x/1", None).await.unwrap().is_some());
}

async fn case_complete_and_abort_race(ix: Arc<dyn Index>) {
    ix.create_bucket(&state("race")).await.unwrap();
    for round in 0..10 {
        let id = format!("up{round}");
        ix.create_upload(
            "race",
            &Upload {
                upload_id: id.clone(),
                key: "k".into(),
                initiated_ms: 0,
                meta: vec![],
            },
        )
        .await
        .unwrap();
        let b = ix.bucket("race").await.unwrap().unwrap();
        let (ix1, ix2, id1, id2) = (ix.clone(), ix.clone(), id.clone(), id.clone());
        let complete = tokio::spawn(async move {
            ix1.commit(CommitBatch {
                bucket: "race".into(),
                expected_head: b.head,
                head: cid(&format!("race-{}", b.seq + 1)),
                seq: b.seq + 1,
                settings: None,
                changes: vec![put("k", NULL_VERSION, &id1)],
                completed_uploads: vec![id1.clone()],
                mmr: vec![],
                commits: Vec::new(),
            })
            .await
        });
        let abort = tokio::spawn(async move { ix2.abort_upload("race", &id2).await });
        let (c, a) = (complete.await.unwrap(), abort.await.unwrap());
        // Exactly one outcome.
        assert!(
            c.is_ok() != a.is_ok(),
            "round {round}: complete {c:?}, abort {a:?}"
        );
        let committed = ix
            .object("race", "k", None)
            .await
            .unwrap()
            .map(|o| o.manifest.body);
        assert_eq!(
            committed == Some(Some(*Block::new(Codec::Raw, id.as_bytes().to_vec()).cid())),
            c.is_ok()
        );
    }
}

async fn case_pool_cap(ix: &dyn Index) {
    for i in 0..6 {
        ix.create_bucket(&state(&format!("p{i}"))).await.unwrap();
    }
    for round in 0..3 {
        for i in 0..6 {
            let name = format!("p{i}");
            commit(
                ix,
                &name,
                vec![put(&format!("k{round}"), NULL_VERSION, "v")],
            )
            .await;
        }
    }
    for i in 0..6 {
        let page = ix
            .list_objects(
                &format!("p{i}"),
                &ListQuery {
                    max_keys: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.objects.len(), 3);
    }
}

async fn case_mmr(ix: &dyn Index) {
    ix.create_bucket(&state("h")).await.unwrap();
    let b = ix.bucket("h").await.unwrap().unwrap();
    let batch = |seq: u64, expected: Cid, mmr: Vec<(u64, [u8; 32])>| CommitBatch {
        bucket: "h".into(),
        expected_head: expected,
        head: cid(&format!("h-{seq}")),
        seq,
        settings: None,
        changes: vec![],
        completed_uploads: vec![],
        mmr,
        commits: Vec::new(),
    };
    ix.commit(batch(1, b.head, vec![(0, [0; 32])]))
        .await
        .unwrap();
    ix.commit(batch(2, cid("h-1"), vec![(1, [1; 32]), (2, [2; 32])]))
        .await
        .unwrap();
    assert_eq!(ix.mmr_size("h").await.unwrap(), 3);
    assert_eq!(
        ix.mmr_nodes("h", &[2, 0, 9]).await.unwrap(),
        vec![Some([2; 32]), Some([0; 32]), None]
    );
    // History is append-only: no overwrite, no gap.
    assert!(matches!(
        ix.commit(batch(3, cid("h-2"), vec![(1, [9; 32])])).await,
        Err(IndexError::MmrOverwrite(1))
    ));
    assert!(matches!(
        ix.commit(batch(3, cid("h-2"), vec![(5, [9; 32])])).await,
        Err(IndexError::MmrOverwrite(5))
    ));
    assert_eq!(ix.bucket("h").await.unwrap().unwrap().seq, 2);
}

async fn case_commits_and_retention(ix: &dyn Index) {
    ix.create_bucket(&state("cr")).await.unwrap();
    let b = ix.bucket("cr").await.unwrap().unwrap();
    let row = |seq: u64| CommitRow {
        seq,
        cid: cid(&format!("cr-{seq}")),
        time_ms: 1000 + seq as i64,
    };
    // A commit records its row in the transaction that moves the head...
    ix.commit(CommitBatch {
        bucket: "cr".into(),
        expected_head: b.head,
        head: cid("cr-1"),
        seq: 1,
        settings: None,
        changes: vec![],
        completed_uploads: vec![],
        mmr: vec![],
        commits: vec![row(1)],
    })
    .await
    .unwrap();
    // ... and not when the head does not move.
    assert!(
        ix.commit(CommitBatch {
            bucket: "cr".into(),
            expected_head: b.head,
            head: cid("cr-x"),
            seq: 2,
            settings: None,
            changes: vec![],
            completed_uploads: vec![],
            mmr: vec![],
            commits: vec![row(2)],
        })
        .await
        .is_err()
    );
    assert_eq!(ix.commits("cr", 0, 10).await.unwrap(), vec![row(1)]);
    // Filling in older history; a row given again is replaced.
    ix.put_commits("cr", vec![row(0), row(1)]).await.unwrap();
    ix.put_commits("cr", (2..50).map(row).collect::<Vec<_>>())
        .await
        .unwrap();
    let page = ix.commits("cr", 10, 5).await.unwrap();
    assert_eq!(page, (10..15).map(row).collect::<Vec<_>>());
    assert_eq!(ix.commits("cr", 0, 1000).await.unwrap().len(), 50);
    assert!(ix.commits("cr", 50, 10).await.unwrap().is_empty());

    assert_eq!(ix.retention("cr").await.unwrap(), None);
    let r = Retention {
        keep_secs: Some(60),
        keep_commits: None,
    };
    assert!(ix.set_retention("cr", Some(r)).await.unwrap());
    assert_eq!(ix.retention("cr").await.unwrap(), Some(r));
    assert!(ix.set_retention("cr", None).await.unwrap());
    assert_eq!(ix.retention("cr").await.unwrap(), None);
    assert!(!ix.set_retention("nope", Some(r)).await.unwrap());
    assert_eq!(ix.retention("nope").await.unwrap(), None);
}

async fn case_access_keys(ix: &dyn Index) {
    let key = AccessKey {
        id: "AK1".into(),
        secret: "s".into(),
        owner: "o".into(),
        created_ms: 1,
        disabled: false,
        limited: true,
    };
    ix.put_access_key(&key).await.unwrap();
    assert!(matches!(
        ix.put_access_key(&key).await,
        Err(IndexError::AccessKeyExists(_))
    ));
    assert_eq!(ix.access_key("AK1").await.unwrap().unwrap(), key);
    assert_eq!(ix.access_keys().await.unwrap().len(), 1);
    assert!(ix.delete_access_key("AK1").await.unwrap());
    assert!(!ix.delete_access_key("AK1").await.unwrap());
    assert!(ix.access_key("AK1").await.unwrap().is_none());
}

async fn case_access_control(ix: &dyn Index) {
    ix.create_bucket(&state("ac")).await.unwrap();
    assert!(ix.bucket_settings("ac").await.unwrap().is_empty());
    assert!(
        ix.set_bucket_setting("ac", "policy", Some("{}"))
            .await
            .unwrap()
    );
    assert!(
        ix.set_bucket_setting("ac", "cors", Some("<x/>"))
            .await
            .unwrap()
    );
    assert!(
        ix.set_bucket_setting("ac", "policy", Some("{\"v\":2}"))
            .await
            .unwrap()
    );
    assert_eq!(
        ix.bucket_settings("ac").await.unwrap(),
        vec![
            ("cors".to_string(), "<x/>".to_string()),
            ("policy".to_string(), "{\"v\":2}".to_string())
        ]
    );
    assert!(ix.set_bucket_setting("ac", "cors", None).await.unwrap());
    assert_eq!(ix.bucket_settings("ac").await.unwrap().len(), 1);
    assert!(
        !ix.set_bucket_setting("nope", "policy", Some("{}"))
            .await
            .unwrap()
    );
    assert!(!ix.set_bucket_setting("nope", "policy", None).await.unwrap());
    assert!(ix.bucket_settings("nope").await.unwrap().is_empty());

    let key = AccessKey {
        id: "AKG".into(),
        secret: "s".into(),
        owner: "o".into(),
        created_ms: 1,
        disabled: false,
        limited: false,
    };
    ix.put_access_key(&key).await.unwrap();
    let g = |bucket: &str, read, write, owner| Grant {
        key_id: "AKG".into(),
        bucket: bucket.into(),
        read,
        write,
        owner,
    };
    ix.set_grant(&g("ac", true, false, false)).await.unwrap();
    ix.set_grant(&g("*", true, true, false)).await.unwrap();
    ix.set_grant(&g("ac", true, true, true)).await.unwrap();
    assert_eq!(
        ix.grants(Some("AKG")).await.unwrap(),
        vec![g("*", true, true, false), g("ac", true, true, true)]
    );
    assert_eq!(ix.grants(None).await.unwrap().len(), 2);
    assert!(ix.grants(Some("other")).await.unwrap().is_empty());
    ix.set_grant(&g("*", false, false, false)).await.unwrap();
    assert_eq!(
        ix.grants(Some("AKG")).await.unwrap(),
        vec![g("ac", true, true, true)]
    );

    // A bucket deleted takes its settings and the grants naming it; a key
    // deleted takes its grants.
    ix.delete_bucket("ac").await.unwrap();
    ix.create_bucket(&state("ac")).await.unwrap();
    assert!(ix.bucket_settings("ac").await.unwrap().is_empty());
    assert!(ix.grants(Some("AKG")).await.unwrap().is_empty());
    ix.set_grant(&g("ac", true, false, false)).await.unwrap();
    assert!(
        ix.set_bucket_setting("ac", "policy", Some("{}"))
            .await
            .unwrap()
    );
    assert!(ix.purge_bucket("ac").await.unwrap());
    assert!(ix.grants(None).await.unwrap().is_empty());
    ix.create_bucket(&state("ac")).await.unwrap();
    assert!(ix.bucket_settings("ac").await.unwrap().is_empty());
    ix.set_grant(&g("ac", true, false, false)).await.unwrap();
    assert!(ix.delete_access_key("AKG").await.unwrap());
    assert!(ix.grants(None).await.unwrap().is_empty());
}

async fn case_replay_from(ix: &dyn Index) {
    assert_eq!(ix.replay_from().await.unwrap(), 0, "never set reads as 0");
    ix.create_bucket(&state("ck")).await.unwrap();
    commit(ix, "ck", vec![put("k", NULL_VERSION, "v")]).await;
    ix.set_replay_from(7).await.unwrap();
    assert_eq!(ix.replay_from().await.unwrap(), 7);
    ix.set_replay_from(9).await.unwrap();
    assert_eq!(ix.replay_from().await.unwrap(), 9);
    // Flushing leaves the data as it was.
    assert!(ix.object("ck", "k", None).await.unwrap().is_some());
}

async fn case_rebuild(ix: &dyn Index) {
    ix.create_bucket(&state("rb")).await.unwrap();
    commit(
        ix,
        "rb",
        vec![
            put("old", NULL_VERSION, "x"),
            put("keep", NULL_VERSION, "y"),
        ],
    )
    .await;
    let rows: Vec<ObjectVersion> = ["a", "b", "keep"]
        .iter()
        .flat_map(|k| {
            (0..2).map(move |v| {
                let m = manifest(k, &format!("{k}{v}"), v, 1);
                ObjectVersion {
                    key: k.to_string(),
                    version_id: format!("v{}", 1 - v),
                    is_latest: v == 0,
                    manifest_cid: *m.to_block().unwrap().cid(),
                    manifest: m,
                    order: 0,
                }
            })
        })
        .collect();
    let n = ix
        .rebuild(
            "rb",
            cid("rebuilt"),
            7,
            &BucketSettings {
                versioning: Versioning::Enabled,
                ..BucketSettings::default()
            },
            Box::new(rows.into_iter().map(Ok)),
        )
        .await
        .unwrap();
    assert_eq!(n, 6);
    let b = ix.bucket("rb").await.unwrap().unwrap();
    assert_eq!((b.head, b.seq), (cid("rebuilt"), 7));
    assert_eq!(
        b.settings.versioning,
        Versioning::Enabled,
        "settings follow the rebuilt head"
    );
    assert!(ix.object("rb", "old", None).await.unwrap().is_none());
    let all = ix
        .list_versions(
            "rb",
            &VersionQuery {
                max_keys: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<(String, String, bool)> = all
        .versions
        .iter()
        .map(|v| (v.key.clone(), v.version_id.clone(), v.is_latest))
        .collect();
    assert_eq!(
        got[0..2],
        [
            ("a".into(), "v1".into(), true),
            ("a".into(), "v0".into(), false)
        ]
    );
    // New commits after a rebuild order as newer.
    commit(ix, "rb", vec![put("a", "v2", "z")]).await;
    let latest = ix.object("rb", "a", None).await.unwrap().unwrap();
    assert_eq!(latest.version_id, "v2");
    let all = ix
        .list_versions(
            "rb",
            &VersionQuery {
                max_keys: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        all.versions
            .iter()
            .map(|v| v.version_id.as_str())
            .collect::<Vec<_>>(),
        ["v2", "v1", "v0"]
    );
}

// Backends.

fn segment(node: &str, plane: &str, id: u64) -> RemoteSegment {
    RemoteSegment {
        node: node.into(),
        plane: plane.into(),
        id,
        state: RemoteState::Shipped,
        bytes: 1000 + id,
        stored_bytes: 400 + id,
        encoding: "zstd".into(),
        remote_key: format!("billet/v1/{node}/{plane}/{id:020}.car.zst"),
        sidecar_key: format!("billet/v1/{node}/{plane}/{id:020}.idx"),
        sha256: id.is_multiple_of(2).then_some([id as u8; 32]),
        shipped_ms: 5,
    }
}

async fn case_cold_tier(ix: &dyn Index) {
    for (plane, id) in [("data", 0), ("data", 1), ("catalog", 0)] {
        ix.put_segment(&segment("n1", plane, id)).await.unwrap();
    }
    ix.put_segment(&segment("n2", "data", 0)).await.unwrap();
    // Recording again replaces.
    let mut again = segment("n1", "data", 1);
    again.stored_bytes = 77;
    ix.put_segment(&again).await.unwrap();
    let rows = ix.segments("n1").await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|s| (s.plane.as_str(), s.id))
            .collect::<Vec<_>>(),
        [("catalog", 0), ("data", 0), ("data", 1)]
    );
    assert_eq!(rows[2], again);
    assert_eq!(rows[1], segment("n1", "data", 0));
    assert!(
        ix.set_segment_state("n1", "data", 0, RemoteState::Evicted)
            .await
            .unwrap()
    );
    assert!(
        !ix.set_segment_state("n1", "data", 9, RemoteState::Evicted)
            .await
            .unwrap()
    );
    assert_eq!(
        ix.segments("n1").await.unwrap()[1].state,
        RemoteState::Evicted
    );
    // The collector retires a segment: it stays recorded, with where its
    // copies went, until it is forgotten.
    assert!(ix.retire_segment("n1", "catalog", 0, 7).await.unwrap());
    assert!(!ix.retire_segment("n1", "catalog", 9, 7).await.unwrap());
    assert_eq!(
        ix.retired_segments("n1").await.unwrap(),
        vec![("catalog".to_string(), 0, 7)]
    );
    assert!(ix.retired_segments("n2").await.unwrap().is_empty());
    assert_eq!(
        ix.segments("n1").await.unwrap()[0].state,
        RemoteState::Retired
    );
    ix.put_segment(&segment("n1", "catalog", 0)).await.unwrap();
    assert!(ix.retired_segments("n1").await.unwrap().is_empty());

    // Forgetting queues both objects of each forgotten segment, at once.
    assert_eq!(ix.pending_deletes().await.unwrap(), 0);
    let n = ix
        .forget_segments("n1", &[("data".into(), 0), ("data".into(), 5)], 100)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ix.segments("n1").await.unwrap().len(), 2);
    assert_eq!(
        ix.segments("n2").await.unwrap().len(),
        1,
        "other nodes untouched"
    );
    assert_eq!(ix.pending_deletes().await.unwrap(), 2);
    let due = ix.due_deletes(100, 10).await.unwrap();
    let mut keys: Vec<&str> = due.iter().map(|d| d.remote_key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "billet/v1/n1/data/00000000000000000000.car.zst",
            "billet/v1/n1/data/00000000000000000000.idx"
        ]
    );
    // A failed attempt waits; a finished one is gone.
    ix.retry_delete(due[0].id, 500, "503 Slow Down")
        .await
        .unwrap();
    ix.finish_delete(due[1].id).await.unwrap();
    assert!(ix.due_deletes(499, 10).await.unwrap().is_empty());
    let later = ix.due_deletes(500, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].attempts, 1);
    assert_eq!(later[0].last_error.as_deref(), Some("503 Slow Down"));
    assert_eq!(later[0].enqueued_ms, 100);
    ix.finish_delete(later[0].id).await.unwrap();
    assert_eq!(ix.pending_deletes().await.unwrap(), 0);

    // Shipped heads follow their bucket.
    ix.create_bucket(&state("sh")).await.unwrap();
    ix.create_bucket(&state("sh2")).await.unwrap();
    let head = |b: &str, seq| ShippedHead {
        bucket: b.into(),
        head: cid(&format!("{b}{seq}")),
        seq,
        shipped_ms: 9,
    };
    ix.set_shipped_head(&head("sh", 1)).await.unwrap();
    ix.set_shipped_head(&head("sh", 2)).await.unwrap();
    ix.set_shipped_head(&head("sh2", 4)).await.unwrap();
    assert_eq!(
        ix.shipped_heads().await.unwrap(),
        [head("sh", 2), head("sh2", 4)]
    );
    ix.delete_bucket("sh2").await.unwrap();
    assert_eq!(ix.shipped_heads().await.unwrap(), [head("sh", 2)]);

    // Purging removes a bucket with everything in it.
    commit(ix, "sh", vec![put("k", NULL_VERSION, "v")]).await;
    ix.create_upload(
        "sh",
        &Upload {
            upload_id: "u1".into(),
            key: "big".into(),
            initiated_ms: 1,
            meta: vec![],
        },
    )
    .await
    .unwrap();
    assert!(ix.purge_bucket("sh").await.unwrap());
    assert!(!ix.purge_bucket("sh").await.unwrap());
    assert!(ix.bucket("sh").await.unwrap().is_none());
    assert!(ix.shipped_heads().await.unwrap().is_empty());
    // The name is free again, with nothing left over.
    ix.create_bucket(&state("sh")).await.unwrap();
    assert!(ix.object("sh", "k", None).await.unwrap().is_none());
    assert!(ix.upload("sh", "u1").await.unwrap().is_none());
    assert_eq!(ix.mmr_size("sh").await.unwrap(), 0);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite(cap: usize) -> (tempfile::TempDir, Arc<dyn Index>) {
    let dir = tempfile::tempdir().unwrap();
    let ix = SqliteIndex::open(SqliteConfig {
        dir: dir.path().to_path_buf(),
        max_open_buckets: cap,
    })
    .unwrap();
    (dir, Arc::new(ix))
}

/// A PostgreSQL index in a fresh schema, or `None` (skip) when no server
/// is reachable outside CI.
async fn postgres() -> Option<(PgIndex, String)> {
    let url = std::env::var("BILLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "billet_test_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    match PgIndex::open(PgConfig {
        url: url.clone(),
        schema: schema.clone(),
        pool_size: 8,
    })
    .await
    {
        Ok(ix) => Some((ix, schema)),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL at {url} is required under CI=true: {e}");
            }
            eprintln!("SKIPPED: PostgreSQL at {url} unreachable ({e}); set BILLET_TEST_PG_URL");
            None
        }
    }
}

macro_rules! contract {
    ($($name:ident => $case:expr),* $(,)?) => {
        mod on_sqlite {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let (_dir, ix) = sqlite(2);
                    rt().block_on(async move { ($case)(ix).await });
                }
            )*
        }
        mod on_postgres {
            use super::*;
            $(
                #[test]
                fn $name() {
                    rt().block_on(async move {
                        let Some((pg, schema)) = postgres().await else { return };
                        let ix: Arc<dyn Index> = Arc::new(pg.clone());
                        ($case)(ix).await;
                        pg.drop_schema(&schema).await.unwrap();
                    });
                }
            )*
        }
    };
}

contract! {
    buckets => |ix: Arc<dyn Index>| async move { case_buckets(ix.as_ref()).await },
    cas_and_atomicity => |ix: Arc<dyn Index>| async move { case_cas_and_atomicity(ix.as_ref()).await },
    concurrent_committers => |ix: Arc<dyn Index>| async move { case_concurrent_committers(ix).await },
    versions => |ix: Arc<dyn Index>| async move { case_versions(ix.as_ref()).await },
    changes_in_one_commit => |ix: Arc<dyn Index>| async move { case_changes_in_one_commit(ix.as_ref()).await },
    versions_across_pages => |ix: Arc<dyn Index>| async move { case_versions_across_pages(ix.as_ref()).await },
    listing_edges => |ix: Arc<dyn Index>| async move { case_listing_edges(ix.as_ref()).await },
    listing_random => |ix: Arc<dyn Index>| async move { case_listing_random(ix.as_ref()).await },
    multipart => |ix: Arc<dyn Index>| async move { case_multipart(ix.as_ref()).await },
    complete_and_abort_race => |ix: Arc<dyn Index>| async move { case_complete_and_abort_race(ix).await },
    pool_cap_below_bucket_count => |ix: Arc<dyn Index>| async move { case_pool_cap(ix.as_ref()).await },
    mmr_nodes_are_append_only => |ix: Arc<dyn Index>| async move { case_mmr(ix.as_ref()).await },
    access_keys => |ix: Arc<dyn Index>| async move { case_access_keys(ix.as_ref()).await },
    access_control => |ix: Arc<dyn Index>| async move { case_access_control(ix.as_ref()).await },
    rebuild_replaces_rows => |ix: Arc<dyn Index>| async move { case_rebuild(ix.as_ref()).await },
    replay_from => |ix: Arc<dyn Index>| async move { case_replay_from(ix.as_ref()).await },
    commits_and_retention => |ix: Arc<dyn Index>| async move { case_commits_and_retention(ix.as_ref()).await },
    cold_tier_rows => |ix: Arc<dyn Index>| async move { case_cold_tier(ix.as_ref()).await },
}

#[test]
fn sqlite_pool_stays_within_its_cap_and_files_follow_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let ix = SqliteIndex::open(SqliteConfig {
        dir: dir.path().to_path_buf(),
        max_open_buckets: 2,
    })
    .unwrap();
    rt().block_on(async {
        for i in 0..5 {
            ix.create_bucket(&state(&format!("f{i}"))).await.unwrap();
            commit(&ix, &format!("f{i}"), vec![put("k", NULL_VERSION, "v")]).await;
            assert!(ix.open_buckets() <= 2);
        }
        assert!(dir.path().join("buckets/f3.db").exists());
        commit(
            &ix,
            "f3",
            vec![RowChange::Delete {
                key: "k".into(),
                version_id: NULL_VERSION.into(),
            }],
        )
        .await;
        ix.delete_bucket("f3").await.unwrap();
        assert!(
            !dir.path().join("buckets/f3.db").exists(),
            "deleting a bucket deletes its file"
        );
    });
    // An orphan file (crash between creating and registering) is removed on open.
    std::fs::write(dir.path().join("buckets/orphan.db"), b"").unwrap();
    let _ix = SqliteIndex::open(SqliteConfig::new(dir.path())).unwrap();
    assert!(!dir.path().join("buckets/orphan.db").exists());
    let _ = BTreeMap::<u8, u8>::new();
}
