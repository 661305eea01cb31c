//! The three S3 listings over the seam's range scans: markers become
//! cursors, the [`Lister`] state machine decides each scan, and its items
//! become the page S3 returns with the markers of the next one.

use crate::error::IndexError;
use crate::list::{Cursor, Item, Lister, Row, ScanRequest};
use crate::rows::{ObjectRow, UploadRow, VersionRow};
use crate::tx::BucketTx;
use crate::types::{ListPage, ListQuery, UploadPage, UploadQuery, VersionPage, VersionQuery};

/// Runs the lister's scans until its page is complete.
fn drive<T: Row>(
    mut lister: Lister<T>,
    mut scan: impl FnMut(&ScanRequest) -> Result<Vec<T>, IndexError>,
) -> Result<(Vec<Item<T>>, bool), IndexError> {
    while let Some(req) = lister.request() {
        let rows = scan(&req)?;
        let more = rows.len() == req.limit;
        lister.feed(rows, more);
    }
    Ok(lister.finish())
}

/// A key marker and the id of an entry under it become the cursor just
/// after that entry (`seq_of` finds the entry's position); an entry that
/// is gone continues with the next key.
fn entry_cursor(
    key: Option<&str>,
    id: Option<&str>,
    seq_of: impl FnOnce(&str, &str) -> Result<Option<i64>, IndexError>,
) -> Result<Option<Cursor>, IndexError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let k = key.as_bytes().to_vec();
    Ok(Some(match id {
        None => Cursor::After(k),
        Some(id) => match seq_of(key, id)? {
            Some(s) => Cursor::AfterVersion(k, s),
            None => Cursor::After(k),
        },
    }))
}

/// The marker whose common prefix a page must not repeat: with an entry id
/// the marker key's own group is being continued, so it does not count.
fn rollup_marker<'a>(key: Option<&'a str>, id: Option<&str>) -> Option<&'a str> {
    key.filter(|_| id.is_none())
}

/// A page's items split into rows and common prefixes, and where the next
/// page starts: the last item's key and, for a row, its entry id.
struct Paged<T> {
    rows: Vec<T>,
    prefixes: Vec<String>,
    next: Option<(String, Option<String>)>,
}

fn paged<T: Row>(
    items: Vec<Item<T>>,
    truncated: bool,
    id: impl Fn(&T) -> Option<String>,
) -> Paged<T> {
    let mut page = Paged {
        rows: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    for item in items {
        match item {
            Item::Row(r) => {
                page.next = Some((r.key().to_string(), id(&r)));
                page.rows.push(r);
            }
            Item::Prefix(p) => {
                page.next = Some((p.clone(), None));
                page.prefixes.push(p);
            }
        }
    }
    if !truncated {
        page.next = None;
    }
    page
}

pub(crate) fn list_objects(tx: &mut dyn BucketTx, q: &ListQuery) -> Result<ListPage, IndexError> {
    let start = q
        .after
        .as_ref()
        .map(|a| Cursor::After(a.as_bytes().to_vec()));
    let lister = Lister::new(
        &q.prefix,
        q.delimiter.as_deref(),
        q.after.as_deref(),
        start,
        q.max_keys,
        true,
    );
    let (items, truncated) = drive(lister, |req| {
        Ok(tx.scan_objects(req)?.into_iter().map(ObjectRow).collect())
    })?;
    let page = paged(items, truncated, |_| None);
    Ok(ListPage {
        objects: page.rows.into_iter().map(|r| r.0).collect(),
        prefixes: page.prefixes,
        truncated,
        next_after: page.next.map(|(k, _)| k),
    })
}

/// Where an entry sits among its key's entries (see `BucketTx::version_ord`).
type EntrySeq = fn(&mut dyn BucketTx, &str, &str) -> Result<Option<i64>, IndexError>;

/// A listing of entries under keys (versions, uploads): markers name a key
/// and an entry, the next page resumes after the last entry or prefix.
struct Entries<'q> {
    prefix: &'q str,
    delimiter: Option<&'q str>,
    key_marker: Option<&'q str>,
    id_marker: Option<&'q str>,
    max: usize,
}

impl Entries<'_> {
    fn list<T: Row>(
        &self,
        tx: &mut dyn BucketTx,
        seq_of: EntrySeq,
        scan: fn(&mut dyn BucketTx, &ScanRequest) -> Result<Vec<T>, IndexError>,
        id_of: fn(&T) -> String,
    ) -> Result<(Paged<T>, bool), IndexError> {
        let (key, id) = (self.key_marker, self.id_marker);
        let start = entry_cursor(key, id, |k, i| seq_of(tx, k, i))?;
        let lister = Lister::new(
            self.prefix,
            self.delimiter,
            rollup_marker(key, id),
            start,
            self.max,
            false,
        );
        let (items, truncated) = drive(lister, |req| scan(tx, req))?;
        Ok((paged(items, truncated, |r| Some(id_of(r))), truncated))
    }
}

pub(crate) fn list_versions(
    tx: &mut dyn BucketTx,
    q: &VersionQuery,
) -> Result<VersionPage, IndexError> {
    let entries = Entries {
        prefix: &q.prefix,
        delimiter: q.delimiter.as_deref(),
        key_marker: q.key_marker.as_deref(),
        id_marker: q.version_id_marker.as_deref(),
        max: q.max_keys,
    };
    let (page, truncated) = entries.list(
        tx,
        |tx, k, v| tx.version_ord(k, v),
        |tx, req| Ok(tx.scan_versions(req)?.into_iter().map(VersionRow).collect()),
        |r| r.0.version_id.clone(),
    )?;
    let (next_key_marker, next_version_id_marker) = page.next.unzip();
    Ok(VersionPage {
        versions: page.rows.into_iter().map(|r| r.0).collect(),
        prefixes: page.prefixes,
        truncated,
        next_key_marker,
        next_version_id_marker: next_version_id_marker.flatten(),
    })
}

pub(crate) fn list_uploads(
    tx: &mut dyn BucketTx,
    q: &UploadQuery,
) -> Result<UploadPage, IndexError> {
    let entries = Entries {
        prefix: &q.prefix,
        delimiter: q.delimiter.as_deref(),
        key_marker: q.key_marker.as_deref(),
        id_marker: q.upload_id_marker.as_deref(),
        max: q.max_uploads,
    };
    let (page, truncated) = entries.list(
        tx,
        |tx, k, u| tx.upload_seq(k, u),
        |tx, req| {
            let rows = tx.scan_uploads(req)?;
            Ok(rows.into_iter().map(|(u, s)| UploadRow(u, s)).collect())
        },
        |r| r.0.upload_id.clone(),
    )?;
    let (next_key_marker, next_upload_id_marker) = page.next.unzip();
    Ok(UploadPage {
        uploads: page.rows.into_iter().map(|r| r.0).collect(),
        prefixes: page.prefixes,
        truncated,
        next_key_marker,
        next_upload_id_marker: next_upload_id_marker.flatten(),
    })
}
