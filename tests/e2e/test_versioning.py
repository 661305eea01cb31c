"""Versioning through boto3: version ids, delete markers, reads and deletes
by version, ListObjectVersions paging, suspended buckets and the null
version; and `billet fsck` finding the version chains in the MST equal to
the index after every kind of change."""

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, run_billet, status


def versions_of(s3, bucket, **kw):
    out = s3.list_object_versions(Bucket=bucket, **kw)
    rows = [(v["Key"], v["VersionId"], v["IsLatest"], "v") for v in out.get("Versions", [])]
    rows += [(m["Key"], m["VersionId"], m["IsLatest"], "m") for m in out.get("DeleteMarkers", [])]
    return out, rows


def test_versions_markers_and_reads_by_version(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ids = [s3.put_object(Bucket=bucket, Key="doc", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v2"
    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert got["Body"].read() == f"v{i}".encode() and got["VersionId"] == vid
        assert s3.head_object(Bucket=bucket, Key="doc", VersionId=vid)["VersionId"] == vid
    # A delete marker hides the key; the versions below it stay readable.
    d = s3.delete_object(Bucket=bucket, Key="doc")
    assert d["DeleteMarker"] is True and d["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc")
    assert error_code(e) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=ids[1])["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=d["VersionId"])
    assert status(e) == 405
    assert "doc" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    # Removing the marker brings the newest version back.
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=d["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v2"
    # Removing a middle version for good.
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=ids[1])
    _, rows = versions_of(s3, bucket)
    assert [r[1] for r in rows] == [ids[2], ids[0]]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=ids[1])
    assert error_code(e) == "NoSuchVersion"
    # Copy and a version id.
    c = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": ids[0]})
    assert c["CopySourceVersionId"] == ids[0] and c["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"v0"


def test_versions_listed_across_pages(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expected = []
    for key in ["a", "b", "c/d"]:
        vids = [s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(3)]
        expected += [(key, v) for v in reversed(vids)]
    marker = s3.delete_object(Bucket=bucket, Key="b")["VersionId"]
    expected.insert(3, ("b", marker))
    got, kw = [], {}
    pages = 0
    while True:
        out, rows = versions_of(s3, bucket, MaxKeys=2, **kw)
        pages += 1
        # Within a page, versions and markers interleave by position.
        page = sorted(rows, key=lambda r: expected.index((r[0], r[1])))
        got += [(r[0], r[1]) for r in page]
        if not out["IsTruncated"]:
            break
        kw = {"KeyMarker": out["NextKeyMarker"], "VersionIdMarker": out["NextVersionIdMarker"]}
    assert got == expected and pages == 5
    _, rows = versions_of(s3, bucket, Prefix="c/", Delimiter="/")
    assert [r[0] for r in rows] == ["c/d"] * 3
    out, _ = versions_of(s3, bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["c/"]


def test_suspended_bucket_null_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # The new write takes the null id and replaces the pre-versioning null version.
    out = s3.put_object(Bucket=bucket, Key="k", Body=b"suspended 1")
    assert out.get("VersionId") in (None, "null")
    _, rows = versions_of(s3, bucket)
    assert [(r[1], r[2]) for r in rows] == [("null", True), (v1, False)]
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended 2")
    _, rows = versions_of(s3, bucket)
    assert [r[1] for r in rows] == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"suspended 2"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"versioned"
    # A delete marker in a suspended bucket is the null version.
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True
    _, rows = versions_of(s3, bucket)
    assert sorted((r[1], r[3]) for r in rows) == sorted([("null", "m"), (v1, "v")])


def test_bad_versioning_requests(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Sideways"})
    assert error_code(e) == "MalformedXML"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nothing", VersionId="0123")
    assert status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="no-such-bucket-x")
    assert error_code(e) == "NoSuchBucket"


def test_history_chains_stay_equal_to_the_index(tmp_path):
    """Every change that rewrites a key's version chain, then fsck."""
    server = Server(tmp_path / "data").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="hist")
        s3.put_object(Bucket="hist", Key="k", Body=b"null 0")
        s3.put_bucket_versioning(Bucket="hist", VersioningConfiguration={"Status": "Enabled"})
        vids = [s3.put_object(Bucket="hist", Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(4)]
        s3.delete_object(Bucket="hist", Key="k", VersionId=vids[1])
        s3.put_object_tagging(Bucket="hist", Key="k", VersionId=vids[0], Tagging={"TagSet": [{"Key": "old", "Value": "yes"}]})
        s3.put_object_tagging(Bucket="hist", Key="k", Tagging={"TagSet": [{"Key": "new", "Value": "yes"}]})
        s3.delete_object(Bucket="hist", Key="k")
        s3.put_bucket_versioning(Bucket="hist", VersioningConfiguration={"Status": "Suspended"})
        s3.put_object(Bucket="hist", Key="k", Body=b"null again")
        s3.put_object(Bucket="hist", Key="other", Body=b"x")
        s3.delete_object(Bucket="hist", Key="other", VersionId="null")
        tags = s3.get_object_tagging(Bucket="hist", Key="k", VersionId=vids[0])["TagSet"]
        assert tags == [{"Key": "old", "Value": "yes"}]
        assert s3.get_object(Bucket="hist", Key="k", VersionId=vids[3])["Body"].read() == b"v3"
        _, rows = versions_of(s3, "hist")
        # null 0 was replaced by "null again"; v1 is gone; a marker sits between.
        assert len(rows) == 5
    finally:
        assert server.stop() == 0, server.log_text()
    fsck = run_billet("fsck", "hist", data_dir=server.data_dir, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert " 0 problems" in fsck.stdout, fsck.stdout
    assert ": 1 keys, 5 versions," in fsck.stdout, fsck.stdout
