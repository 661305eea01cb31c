#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! The store interface over a local directory, and the fault wrapper.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use billet_remote::fault::FaultyRemote;
use billet_remote::{Body, ObjectAttrs, Remote, RemoteConfig, RemoteError, StoreKind};
use bytes::Bytes;

fn dir_remote(root: &std::path::Path, prefix: &str) -> Arc<dyn Remote> {
    let mut c = RemoteConfig::new(StoreKind::Filesystem {
        root: root.to_path_buf(),
    });
    c.prefix = prefix.to_string();
    c.multipart_threshold = 6 << 20;
    c.part_size = 5 << 20;
    billet_remote::open(&c).unwrap()
}

#[tokio::test]
async fn put_get_range_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir_remote(dir.path(), "pre/fix/");
    let attrs = ObjectAttrs::default();
    r.put(
        "a/one",
        Body::Bytes(Bytes::from_static(b"hello world")),
        attrs,
    )
    .await
    .unwrap();
    // A file large enough to go up in parts.
    let big: Vec<u8> = (0..(13u32 << 20) / 4)
        .flat_map(|i| i.to_le_bytes())
        .collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    r.put(
        "a/two",
        Body::File {
            path: file.clone(),
            len: big.len() as u64,
        },
        attrs,
    )
    .await
    .unwrap();
    assert!(dir.path().join("pre/fix/a/two").is_file());
    assert_eq!(&r.get("a/one").await.unwrap()[..], b"hello world");
    assert_eq!(&r.get_range("a/one", 6..11).await.unwrap()[..], b"world");
    let at = 11u64 << 20;
    assert_eq!(
        &r.get_range("a/two", at..at + 8).await.unwrap()[..],
        &big[at as usize..at as usize + 8]
    );
    assert_eq!(r.size("a/two").await.unwrap(), Some(big.len() as u64));
    assert_eq!(r.size("a/none").await.unwrap(), None);
    assert!(matches!(
        r.get("a/none").await,
        Err(RemoteError::NotFound { .. })
    ));
    let keys: Vec<String> = r
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, ["a/one", "a/two"]);
    let keys: Vec<String> = r
        .list("a/o")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, ["a/one"]);
    r.delete("a/one").await.unwrap();
    r.delete("a/one").await.unwrap();
    assert_eq!(r.size("a/one").await.unwrap(), None);
}

#[tokio::test]
async fn faults_happen_as_asked_and_heal() {
    let dir = tempfile::tempdir().unwrap();
    let f = FaultyRemote::new(dir_remote(dir.path(), ""));
    let attrs = ObjectAttrs::default();
    f.put("k", Body::Bytes(Bytes::from_static(b"abcdef")), attrs)
        .await
        .unwrap();

    f.fail_next(2);
    for _ in 0..2 {
        let e = f.get("k").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }
    assert_eq!(&f.get("k").await.unwrap()[..], b"abcdef");

    f.set_down(true);
    assert!(f.size("k").await.is_err());
    assert!(f.put("k2", Body::Bytes(Bytes::new()), attrs).await.is_err());
    f.set_down(false);
    assert_eq!(f.size("k").await.unwrap(), Some(6));

    f.truncate_reads(true);
    assert_eq!(&f.get_range("k", 1..4).await.unwrap()[..], b"bc");
    f.truncate_reads(false);

    f.alter("k", 2);
    assert_eq!(&f.get_range("k", 1..4).await.unwrap()[..], b"bbd");
    assert_eq!(&f.get_range("k", 3..5).await.unwrap()[..], b"de");
    f.heal();
    assert_eq!(&f.get("k").await.unwrap()[..], b"abcdef");

    f.set_delay(Some(Duration::from_millis(300)));
    let slow = tokio::time::timeout(Duration::from_millis(50), f.get("k")).await;
    assert!(slow.is_err(), "a delayed read finished early");
    f.heal();
    assert!(f.calls.failed.load(Ordering::Relaxed) >= 4);
}
