"""Lifecycle against the real binary: a node whose lifecycle pass runs every
second and whose lifecycle "day" lasts two seconds expires current
versions (by age, date, tag and size), removes noncurrent versions beyond
the newest kept and lone delete markers, aborts stale uploads, leaves
locked versions alone, and every removal is a commit that proofs show."""

import datetime
import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import BILLET, history, Server, error_code, status

DAY = 2


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    cfg = root / "billet.toml"
    cfg.write_text(f"[lifecycle]\ninterval_secs = 1\nday_secs = {DAY}\n")
    s = Server(root / "data", extra_args=["--config", str(cfg)]).start()
    yield s
    assert s.stop() == 0, s.log_text()


def until(what, check, timeout=60):
    """Polls `check` until it holds; the bound only keeps a broken server
    from hanging the suite."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout} s: {what}")


def versions(s3, bucket, prefix):
    out = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [(v["Key"], v["VersionId"]) for v in out.get("Versions", [])], \
        [(m["Key"], m["VersionId"]) for m in out.get("DeleteMarkers", [])]


def exists(s3, bucket, key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return False


def rule(rid, **kw):
    r = {"ID": rid, "Status": "Enabled", "Filter": kw.pop("Filter", {"Prefix": ""})}
    r.update(kw)
    return r


def test_lifecycle_configuration_round_trips_and_is_checked(node):
    s3 = node.client()
    s3.create_bucket(Bucket="lc-config")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket="lc-config")
    assert (status(e), error_code(e)) == (404, "NoSuchLifecycleConfiguration")
    rules = [
        rule("logs", Filter={"And": {"Prefix": "logs/", "Tags": [{"Key": "k", "Value": "v"}], "ObjectSizeGreaterThan": 5}},
             Expiration={"Days": 30}),
        rule("old", Filter={"Prefix": "old/"}, NoncurrentVersionExpiration={"NoncurrentDays": 7, "NewerNoncurrentVersions": 2},
             AbortIncompleteMultipartUpload={"DaysAfterInitiation": 3}),
    ]
    s3.put_bucket_lifecycle_configuration(Bucket="lc-config", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-config")["Rules"]
    assert got[0]["Filter"]["And"] == rules[0]["Filter"]["And"] and got[0]["Expiration"] == {"Days": 30}
    assert got[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}
    assert got[1]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    for bad in (
        [rule("a", Expiration={"Days": 0})],
        [rule("a", Expiration={"Days": 1}), rule("a", Expiration={"Days": 2})],
        [rule("a")],
        [rule("a", Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})],
    ):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_lifecycle_configuration(Bucket="lc-config", LifecycleConfiguration={"Rules": bad})
        assert status(e) == 400, bad
    s3.delete_bucket_lifecycle(Bucket="lc-config")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket="lc-config")
    assert error_code(e) == "NoSuchLifecycleConfiguration"


def test_expiry_noncurrent_versions_markers_and_uploads(node):
    s3 = node.client()
    b = "lc-versioned"
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        rule("tmp", Filter={"Prefix": "tmp/"}, Expiration={"Days": 1}),
        rule("tagged", Filter={"Tag": {"Key": "tier", "Value": "scratch"}}, Expiration={"Days": 1}),
        rule("big", Filter={"And": {"Prefix": "size/", "ObjectSizeGreaterThan": 100}}, Expiration={"Days": 1}),
        rule("history", Filter={"Prefix": "keep/"}, NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}),
        rule("markers", Filter={"Prefix": "gone/"}, Expiration={"ExpiredObjectDeleteMarker": True}),
        rule("uploads", Filter={"Prefix": "up/"}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
    ]})
    s3.put_object(Bucket=b, Key="tmp/a", Body=b"a")
    s3.put_object(Bucket=b, Key="t/tagged", Body=b"t", Tagging="tier=scratch")
    s3.put_object(Bucket=b, Key="t/untagged", Body=b"u")
    s3.put_object(Bucket=b, Key="size/big", Body=b"x" * 1000)
    s3.put_object(Bucket=b, Key="size/small", Body=b"x" * 10)
    kept = [s3.put_object(Bucket=b, Key="keep/x", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    locked = s3.put_object(Bucket=b, Key="keep/locked", Body=b"l", ObjectLockMode="GOVERNANCE",
                           ObjectLockRetainUntilDate=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))["VersionId"]
    s3.put_object(Bucket=b, Key="keep/locked", Body=b"newer")
    v = s3.put_object(Bucket=b, Key="gone/y", Body=b"y")["VersionId"]
    s3.delete_object(Bucket=b, Key="gone/y")
    s3.delete_object(Bucket=b, Key="gone/y", VersionId=v)
    assert versions(s3, b, "gone/")[1] != []
    uid = s3.create_multipart_upload(Bucket=b, Key="up/file")["UploadId"]
    other = s3.create_multipart_upload(Bucket=b, Key="elsewhere/file")["UploadId"]

    # Expired current versions get delete markers (the bucket is versioned).
    until("tmp/a, the tagged and the big object expire",
          lambda: not exists(s3, b, "tmp/a") and not exists(s3, b, "t/tagged") and not exists(s3, b, "size/big"))
    assert ("tmp/a", ) in [m[:1] for m in versions(s3, b, "tmp/")[1]]
    # Only the newest noncurrent version is kept below the current one.
    until("keep/x keeps two versions",
          lambda: [vid for k, vid in versions(s3, b, "keep/x")[0]] == [kept[2], kept[1]])
    until("the lone delete marker goes", lambda: versions(s3, b, "gone/") == ([], []))
    until("the stale upload is aborted",
          lambda: [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])] == [other])
    # What no rule selects stays; a locked noncurrent version stays too.
    time.sleep(3 * DAY)
    assert exists(s3, b, "t/untagged") and exists(s3, b, "size/small") and exists(s3, b, "keep/x")
    assert s3.get_object(Bucket=b, Key="keep/locked", VersionId=locked)["Body"].read() == b"l"
    assert [vid for k, vid in versions(s3, b, "keep/x")[0]] == [kept[2], kept[1]]
    s3.abort_multipart_upload(Bucket=b, Key="elsewhere/file", UploadId=other)


def test_an_expiry_is_a_commit_that_proofs_show(node, tmp_path):
    s3 = node.client()
    b = "lc-plain"
    s3.create_bucket(Bucket=b)
    for i in range(3):
        s3.put_object(Bucket=b, Key=f"old/{i}", Body=b"o")
    s3.put_object(Bucket=b, Key="new/0", Body=b"n")
    before = json.loads(history(node, f"buckets/{b}/checkpoint?format=json"))["checkpoint"]["seq"]
    yesterday = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        rule("by-date", Filter={"Prefix": "old/"}, Expiration={"Date": yesterday})]})
    until("old/ is emptied", lambda: s3.list_objects_v2(Bucket=b, Prefix="old/")["KeyCount"] == 0)
    assert exists(s3, b, "new/0")
    # Unversioned: removed outright, each removal a commit of the bucket.
    assert s3.list_object_versions(Bucket=b, Prefix="old/").get("Versions") is None
    after = json.loads(history(node, f"buckets/{b}/checkpoint?format=json"))["checkpoint"]["seq"]
    assert after > before
    did = json.loads(history(node, "node"))["did"]
    proof = tmp_path / "absent.cbor"
    proof.write_bytes(history(node, f"buckets/{b}/proof/object?key=old/1"))
    out = subprocess.run([BILLET, "verify-proof", str(proof), "--node", did], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"{b}/old/1 is absent" in out.stdout, out
