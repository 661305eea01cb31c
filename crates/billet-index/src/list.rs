//! S3 listing semantics as a pure state machine, shared by the backends.
//!
//! A backend answers one kind of question — "rows in key order from this
//! cursor, below this bound, at most this many" — with an indexed range
//! scan. The [`Lister`] decides what to ask next: it rolls keys up into
//! common prefixes and, after each common prefix, *seeks* past every key
//! under it, so a page costs O(page size) rows however many keys a prefix
//! holds.

/// Where a scan starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// Keys `>= key`.
    From(Vec<u8>),
    /// Keys `> key`.
    After(Vec<u8>),
    /// Versions of `key` older than `order` (order `> order`), then keys
    /// `> key`.
    AfterVersion(Vec<u8>, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanRequest {
    pub cursor: Cursor,
    /// Exclusive upper bound (the end of the prefix range), if any.
    pub before: Option<Vec<u8>>,
    pub limit: usize,
    /// Return only the first row of each common-prefix group (and every
    /// row outside a group): `(prefix length, delimiter)`. Set only when
    /// the lister was built for a backend that can skip-scan.
    pub skip: Option<(usize, Vec<u8>)>,
}

/// What a scanned row must tell the lister.
pub(crate) trait Row {
    fn key(&self) -> &str;
    /// The cursor that continues right after this row.
    fn after(&self) -> Cursor;
}

#[derive(Debug)]
pub(crate) enum Item<T> {
    Row(T),
    Prefix(String),
}

/// Rows a plain scan fetches at most while rolling up common prefixes:
/// rows after the first of a group are wasted, so this bounds the waste
/// per group.
const GROUP_SCAN: usize = 32;

#[derive(Debug)]
pub(crate) struct Lister<T> {
    prefix: String,
    delimiter: Option<String>,
    /// The caller's marker key: common prefixes it lies in were returned
    /// by an earlier page.
    marker: Option<String>,
    max: usize,
    items: Vec<Item<T>>,
    cursor: Option<Cursor>,
    before: Option<Vec<u8>>,
    truncated: bool,
    /// The backend answers `ScanRequest::skip` (one row per group).
    skip_scan: bool,
    /// The common prefix of the last row seen.
    group: Option<String>,
}

/// The smallest byte string above every string starting with `p`, or
/// `None` if there is none.
pub(crate) fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl<T: Row> Lister<T> {
    /// `start`: where the first scan begins given the marker; `marker`: the
    /// marker key itself (for common-prefix roll-up); `skip_scan`: the
    /// backend honours `ScanRequest::skip`.
    pub fn new(
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        start: Option<Cursor>,
        max: usize,
        skip_scan: bool,
    ) -> Self {
        let p = prefix.as_bytes().to_vec();
        // Scanning starts at the later of the marker and the prefix.
        let cursor = match start {
            Some(c) if cursor_key(&c) >= p.as_slice() => c,
            _ => Cursor::From(p),
        };
        Lister {
            prefix: prefix.to_string(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            marker: marker.map(str::to_string),
            max,
            items: Vec::new(),
            cursor: (max > 0).then_some(cursor),
            before: prefix_end(prefix.as_bytes()).filter(|_| !prefix.is_empty()),
            truncated: false,
            skip_scan,
            group: None,
        }
    }

    /// The next scan to run, or `None` when the page is complete.
    pub fn request(&self) -> Option<ScanRequest> {
        let remaining = self.max + 1 - self.items.len();
        let skip = match (&self.delimiter, self.skip_scan) {
            (Some(d), true) => Some((self.prefix.len(), d.as_bytes().to_vec())),
            _ => None,
        };
        let limit = match (&self.delimiter, self.skip_scan) {
            (Some(_), false) => remaining.min(GROUP_SCAN),
            _ => remaining,
        };
        self.cursor.as_ref().map(|c| ScanRequest {
            cursor: c.clone(),
            before: self.before.clone(),
            limit,
            skip,
        })
    }

    fn common_prefix<'k>(&self, key: &'k str) -> Option<&'k str> {
        let d = self.delimiter.as_deref()?;
        key[self.prefix.len()..]
            .find(d)
            .map(|pos| &key[..self.prefix.len() + pos + d.len()])
    }

    /// Feeds the rows a scan returned (in order); `more`: the scan stopped
    /// at its limit, so rows may follow.
    pub fn feed(&mut self, rows: Vec<T>, more: bool) {
        let mut next: Option<Cursor> = None;
        for row in rows {
            let key = row.key();
            if !key.starts_with(&self.prefix) {
                // Past the prefix range: nothing further can match.
                self.cursor = None;
                return;
            }
            if let Some(cp) = self.common_prefix(key) {
                if self.group.as_deref() == Some(cp) {
                    // Another row of a group already handled.
                    continue;
                }
                let cp = cp.to_string();
                let seen = self.marker.as_deref().is_some_and(|m| m.starts_with(&cp));
                // Resume past every key under the prefix.
                next = Some(match prefix_end(cp.as_bytes()) {
                    Some(k) => Cursor::From(k),
                    None => {
                        self.cursor = None;
                        if !seen {
                            self.push(Item::Prefix(cp));
                        }
                        return;
                    }
                });
                self.group = Some(cp.clone());
                if !seen && self.push(Item::Prefix(cp)) {
                    return;
                }
                if !self.skip_scan {
                    // A plain scan: seek instead of reading the group.
                    self.cursor = next;
                    return;
                }
                continue;
            }
            self.group = None;
            next = Some(row.after());
            if self.push(Item::Row(row)) {
                return;
            }
        }
        self.cursor = if more { next } else { None };
    }

    /// Adds an item; true when the page is now complete (one past `max`
    /// proves it is truncated, and the extra item is dropped).
    fn push(&mut self, item: Item<T>) -> bool {
        self.items.push(item);
        if self.items.len() > self.max {
            self.items.pop();
            self.truncated = true;
            self.cursor = None;
            return true;
        }
        false
    }

    pub fn finish(self) -> (Vec<Item<T>>, bool) {
        (self.items, self.truncated)
    }
}

fn cursor_key(c: &Cursor) -> &[u8] {
    match c {
        Cursor::From(k) | Cursor::After(k) | Cursor::AfterVersion(k, _) => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct K(String);

    impl Row for K {
        fn key(&self) -> &str {
            &self.0
        }
        fn after(&self) -> Cursor {
            Cursor::After(self.0.clone().into_bytes())
        }
    }

    /// Runs a lister against a sorted key list, counting rows read, as a
    /// plain-scan backend and as a skip-scan backend; both must agree.
    fn run(
        keys: &[&str],
        prefix: &str,
        delim: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<String>, bool, usize) {
        let plain = run_mode(keys, prefix, delim, after, max, false);
        let skip = run_mode(keys, prefix, delim, after, max, true);
        assert_eq!(
            (&plain.0, plain.1),
            (&skip.0, skip.1),
            "plain and skip scans disagree"
        );
        (skip.0, skip.1, plain.2.max(skip.2))
    }

    fn run_mode(
        keys: &[&str],
        prefix: &str,
        delim: Option<&str>,
        after: Option<&str>,
        max: usize,
        skip_scan: bool,
    ) -> (Vec<String>, bool, usize) {
        let mut keys: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        keys.sort();
        let start = after.map(|a| Cursor::After(a.as_bytes().to_vec()));
        let mut l = Lister::<K>::new(prefix, delim, after, start, max, skip_scan);
        let mut read = 0;
        while let Some(req) = l.request() {
            let mut rows: Vec<K> = Vec::new();
            let mut group: Option<String> = None;
            for k in keys
                .iter()
                .filter(|k| match &req.cursor {
                    Cursor::From(c) => k.as_bytes() >= c.as_slice(),
                    Cursor::After(c) | Cursor::AfterVersion(c, _) => k.as_bytes() > c.as_slice(),
                })
                .filter(|k| {
                    req.before
                        .as_ref()
                        .is_none_or(|b| k.as_bytes() < b.as_slice())
                })
            {
                if rows.len() == req.limit {
                    break;
                }
                // A skip-scan backend returns one row per group.
                if let Some((plen, d)) = &req.skip {
                    let d = std::str::from_utf8(d).unwrap();
                    let cp = k[*plen..]
                        .find(d)
                        .map(|i| k[..plen + i + d.len()].to_string());
                    if cp.is_some() && cp == group {
                        continue;
                    }
                    group = cp;
                }
                rows.push(K(k.clone()));
            }
            read += rows.len();
            let more = rows.len() == req.limit;
            l.feed(rows, more);
        }
        let (items, truncated) = l.finish();
        let out = items
            .into_iter()
            .map(|i| match i {
                Item::Row(k) => k.0,
                Item::Prefix(p) => format!("P:{p}"),
            })
            .collect();
        (out, truncated, read)
    }

    #[test]
    fn plain_prefix_and_marker() {
        let keys = ["a", "b/1", "b/2", "c"];
        assert_eq!(run(&keys, "", None, None, 10).0, ["a", "b/1", "b/2", "c"]);
        assert_eq!(run(&keys, "b/", None, None, 10).0, ["b/1", "b/2"]);
        assert_eq!(run(&keys, "", None, Some("b/1"), 10).0, ["b/2", "c"]);
        assert_eq!(run(&keys, "b", None, Some("a"), 10).0, ["b/1", "b/2"]);
        // A prefix equal to a key includes the key.
        assert_eq!(run(&keys, "c", None, None, 10).0, ["c"]);
    }

    #[test]
    fn max_keys_edges() {
        let keys = ["a", "b", "c"];
        assert_eq!(run(&keys, "", None, None, 0), (vec![], false, 0));
        assert_eq!(run(&keys, "", None, None, 1).0, ["a"]);
        assert!(run(&keys, "", None, None, 1).1);
        assert!(!run(&keys, "", None, None, 3).1);
        assert!(run(&keys, "", None, None, 2).1);
    }

    #[test]
    fn delimiters_roll_up_and_seek() {
        let mut keys = vec!["a/1", "a/2", "b", "c/x/1", "c/y", "d"];
        let many: Vec<String> = (0..1000).map(|i| format!("z/{i:04}")).collect();
        keys.extend(many.iter().map(String::as_str));
        let (items, truncated, _) = run(&keys, "", Some("/"), None, 10);
        assert_eq!(items, ["P:a/", "b", "P:c/", "d", "P:z/"]);
        assert!(!truncated);
        // A skip-scan reads one row per item; a plain scan at most a bounded
        // batch per group, never the 1000 keys under z/.
        let skip = run_mode(&keys, "", Some("/"), None, 10, true).2;
        let plain = run_mode(&keys, "", Some("/"), None, 10, false).2;
        assert_eq!(skip, 5);
        assert!(plain <= 5 * GROUP_SCAN, "plain scan read {plain} rows");
        assert_eq!(run(&keys, "c/", Some("/"), None, 10).0, ["P:c/x/", "c/y"]);
        // Any delimiter string, not only "/".
        assert_eq!(
            run(&["a--b", "a--c", "ab"], "", Some("--"), None, 10).0,
            ["P:a--", "ab"]
        );
    }

    #[test]
    fn pagination_never_repeats_a_common_prefix() {
        let keys = ["a/1", "a/2", "b/1", "c", "d/1"];
        let mut after: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let (items, truncated, _) = run(&keys, "", Some("/"), after.as_deref(), 1);
            let last = items.last().cloned().unwrap();
            all.extend(items);
            if !truncated {
                break;
            }
            after = Some(last.trim_start_matches("P:").to_string());
        }
        assert_eq!(all, ["P:a/", "P:b/", "c", "P:d/"]);
        // A marker inside a prefix skips that prefix.
        assert_eq!(
            run(&keys, "", Some("/"), Some("a/1"), 10).0,
            ["P:b/", "c", "P:d/"]
        );
    }

    #[test]
    fn prefix_end_handles_high_bytes() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
