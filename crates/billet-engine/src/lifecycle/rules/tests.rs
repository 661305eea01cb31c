//! The lifecycle rules, case by case.

use std::collections::BTreeMap;

use super::*;

const DAY: i64 = 1000;

fn v(id: &str, marker: bool, size: u64, at_day: i64) -> Version {
    Version {
        version_id: id.into(),
        delete_marker: marker,
        size,
        last_modified_ms: at_day * DAY,
    }
}

fn rule(f: impl FnOnce(&mut Rule)) -> Lifecycle {
    let mut r = Rule {
        id: "r".into(),
        enabled: true,
        ..Rule::default()
    };
    f(&mut r);
    Lifecycle { rules: vec![r] }
}

fn no_tags(_: &str) -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn at(rules: &Lifecycle, key: &str, versions: &[Version], day: i64) -> Verdict {
    decide(rules, key, versions, day * DAY, DAY, &mut no_tags)
}

#[test]
fn current_versions_expire_by_age_or_date() {
    let by_age = rule(|r| r.expiration_days = Some(3));
    let one = [v("a", false, 10, 1)];
    assert!(!at(&by_age, "k", &one, 3).expire_current);
    assert!(at(&by_age, "k", &one, 4).expire_current);
    let by_date = rule(|r| r.expiration_date = Some(5 * DAY));
    assert!(!at(&by_date, "k", &one, 4).expire_current);
    assert!(at(&by_date, "k", &one, 5).expire_current);
    // A delete marker is not a current version to expire.
    assert!(!at(&by_age, "k", &[v("m", true, 0, 0)], 9).expire_current);
    // Disabled rules do nothing.
    let mut off = by_age.clone();
    off.rules[0].enabled = false;
    assert_eq!(at(&off, "k", &one, 9), Verdict::default());
}

#[test]
fn filters_pick_by_prefix_size_and_tags() {
    let r = rule(|r| {
        r.expiration_days = Some(1);
        r.filter = Filter {
            prefix: "logs/".into(),
            tags: BTreeMap::from([("tier".into(), "tmp".into())]),
            size_greater_than: Some(10),
            size_less_than: Some(100),
        };
    });
    let tagged = |_: &str| {
        BTreeMap::from([
            ("tier".to_string(), "tmp".to_string()),
            ("x".into(), "y".into()),
        ])
    };
    let other = |_: &str| BTreeMap::from([("tier".to_string(), "keep".to_string())]);
    let check = |key: &str, size: u64, tags: &dyn Fn(&str) -> BTreeMap<String, String>| {
        decide(
            &r,
            key,
            &[v("a", false, size, 0)],
            5 * DAY,
            DAY,
            &mut |id| tags(id),
        )
        .expire_current
    };
    assert!(check("logs/1", 50, &tagged));
    assert!(!check("data/1", 50, &tagged));
    assert!(!check("logs/1", 10, &tagged));
    assert!(!check("logs/1", 100, &tagged));
    assert!(!check("logs/1", 50, &other));
}

#[test]
fn noncurrent_versions_go_after_their_days_keeping_the_newest() {
    let r = rule(|r| {
        r.noncurrent_days = Some(2);
        r.newer_noncurrent_versions = Some(1);
    });
    // Newest first: d (current, day 9), c (noncurrent since 9), b (since
    // 5), a (since 3).
    let versions = [
        v("d", false, 1, 9),
        v("c", false, 1, 5),
        v("b", false, 1, 3),
        v("a", false, 1, 1),
    ];
    // c is the one kept; b went noncurrent on day 5, a on day 3.
    assert_eq!(at(&r, "k", &versions, 4).remove, Vec::<String>::new());
    assert_eq!(at(&r, "k", &versions, 5).remove, vec!["a".to_string()]);
    assert_eq!(
        at(&r, "k", &versions, 7).remove,
        vec!["b".to_string(), "a".into()]
    );
    assert!(
        !at(&r, "k", &versions, 100)
            .remove
            .contains(&"c".to_string())
    );
    let all = rule(|r| r.noncurrent_days = Some(2));
    assert_eq!(
        at(&all, "k", &versions, 11).remove,
        vec!["c".to_string(), "b".into(), "a".into()]
    );
}

#[test]
fn a_lone_delete_marker_is_removed() {
    let r = rule(|r| r.expired_object_delete_marker = true);
    assert_eq!(
        at(&r, "k", &[v("m", true, 0, 1)], 1).remove,
        vec!["m".to_string()]
    );
    // Not while versions remain below it.
    assert!(
        at(&r, "k", &[v("m", true, 0, 2), v("a", false, 1, 1)], 9)
            .remove
            .is_empty()
    );
}

#[test]
fn configurations_are_validated() {
    let ok = rule(|r| r.expiration_days = Some(1));
    assert!(ok.validate().is_ok());
    let bad = [
        rule(|_| {}),
        rule(|r| r.expiration_days = Some(0)),
        rule(|r| {
            r.expiration_days = Some(1);
            r.expiration_date = Some(1);
        }),
        rule(|r| {
            r.expiration_days = Some(1);
            r.expired_object_delete_marker = true;
        }),
        rule(|r| r.newer_noncurrent_versions = Some(1)),
        rule(|r| {
            r.abort_upload_days = Some(1);
            r.filter.tags.insert("a".into(), "b".into());
        }),
        rule(|r| {
            r.expiration_days = Some(1);
            r.filter.size_greater_than = Some(5);
            r.filter.size_less_than = Some(5);
        }),
        Lifecycle::default(),
    ];
    for b in bad {
        assert!(b.validate().is_err(), "{b:?}");
    }
    let mut twice = ok.clone();
    twice.rules.push(twice.rules[0].clone());
    assert!(twice.validate().unwrap_err().contains("used twice"));
}
