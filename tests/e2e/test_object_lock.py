"""Object Lock against the real binary with boto3: retention (COMPLIANCE
and GOVERNANCE, with the bypass for the latter), legal holds, a bucket's
default retention, and an object proof that shows the lock and verifies
offline."""

import datetime
import json
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import BILLET, history, error_code, status


def locked_bucket(s3):
    name = "lock-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def soon(seconds):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


def test_a_compliance_lock_holds_until_its_date_and_the_proof_shows_it(server, s3, tmp_path):
    b = locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    conf = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled" and "Rule" not in conf
    until = soon(6).replace(microsecond=0)
    v = s3.put_object(Bucket=b, Key="record", Body=b"kept", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=b, Key="record")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    got = s3.get_object_retention(Bucket=b, Key="record", VersionId=v)["Retention"]
    assert got == {"Mode": "COMPLIANCE", "RetainUntilDate": until}

    # The object proof carries the lock, verifiable offline against the node.
    did = json.loads(history(server, "node"))["did"]
    proof = tmp_path / "record.cbor"
    proof.write_bytes(history(server, f"buckets/{b}/proof/object?key=record"))
    out = subprocess.run([BILLET, "verify-proof", str(proof), "--node", did], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"retained (COMPLIANCE) until {until.strftime('%Y-%m-%dT%H:%M:%SZ')}" in out.stdout, out.stdout

    # Nobody removes the version or weakens its retention before the date.
    for bypass in (False, True):
        with pytest.raises(ClientError) as e:
            s3.delete_object(Bucket=b, Key="record", VersionId=v, BypassGovernanceRetention=bypass)
        assert (status(e), error_code(e)) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=b, Key="record", VersionId=v, BypassGovernanceRetention=True,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=b, Key="record", VersionId=v,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(2)})
    assert error_code(e) == "AccessDenied"
    failed = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "record", "VersionId": v}]})
    assert [x["Code"] for x in failed["Errors"]] == ["AccessDenied"]
    # A delete without a version only hides it behind a delete marker.
    marker = s3.delete_object(Bucket=b, Key="record")
    assert marker["DeleteMarker"] is True
    assert s3.get_object(Bucket=b, Key="record", VersionId=v)["Body"].read() == b"kept"

    # Past the date, the version can go.
    while datetime.datetime.now(datetime.timezone.utc) <= until + datetime.timedelta(seconds=1):
        time.sleep(0.5)
    assert s3.delete_object(Bucket=b, Key="record", VersionId=v)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=b, Key="record", VersionId=v)
    assert status(e) == 404


def test_governance_yields_to_the_bypass_and_a_legal_hold_to_nothing(s3):
    b = locked_bucket(s3)
    v = s3.put_object(Bucket=b, Key="g", Body=b"g", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=soon(3600))["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=b, Key="g", VersionId=v)
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=b, Key="g", VersionId=v, Retention={})
    assert error_code(e) == "AccessDenied"
    # Extending needs no bypass; shortening does, and the owner has it.
    s3.put_object_retention(Bucket=b, Key="g", VersionId=v,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(7200)})
    s3.put_object_retention(Bucket=b, Key="g", VersionId=v, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(60)})
    s3.delete_object(Bucket=b, Key="g", VersionId=v, BypassGovernanceRetention=True)
    assert s3.list_object_versions(Bucket=b).get("Versions", []) == []

    v = s3.put_object(Bucket=b, Key="held", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.head_object(Bucket=b, Key="held")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=b, Key="held")["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=b, Key="held", VersionId=v, BypassGovernanceRetention=True)
    assert error_code(e) == "AccessDenied"
    s3.put_object_legal_hold(Bucket=b, Key="held", VersionId=v, LegalHold={"Status": "OFF"})
    assert "ObjectLockLegalHoldStatus" not in s3.head_object(Bucket=b, Key="held")
    s3.delete_object(Bucket=b, Key="held", VersionId=v)


def test_a_default_retention_applies_to_every_new_version(s3):
    b = locked_bucket(s3)
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    rule = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    before = datetime.datetime.now(datetime.timezone.utc)
    s3.put_object(Bucket=b, Key="d", Body=b"d")
    s3.copy_object(Bucket=b, Key="copied", CopySource={"Bucket": b, "Key": "d"})
    uid = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    for key in ("d", "copied", "mp"):
        head = s3.head_object(Bucket=b, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        left = head["ObjectLockRetainUntilDate"] - before
        assert datetime.timedelta(hours=23) < left < datetime.timedelta(hours=25), (key, left)
    # An explicit retention wins over the default.
    s3.put_object(Bucket=b, Key="explicit", Body=b"e", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon(30))
    assert s3.head_object(Bucket=b, Key="explicit")["ObjectLockMode"] == "COMPLIANCE"


def test_lock_configuration_rules(s3, bucket):
    # Lock headers need a bucket with Object Lock.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon(60))
    assert (status(e), error_code(e)) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert (status(e), error_code(e)) == (404, "ObjectLockConfigurationNotFoundError")
    # Enabling it on a bucket needs versioning; then versioning stays on.
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert (status(e), error_code(e)) == (409, "InvalidBucketState")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert (status(e), error_code(e)) == (409, "InvalidBucketState")
    # Malformed retentions are refused.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE")
    assert error_code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=soon(-60))
    assert error_code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}})
    assert error_code(e) == "InvalidArgument"
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    with pytest.raises(ClientError) as e:
        s3.get_object_retention(Bucket=bucket, Key="plain")
    assert (status(e), error_code(e)) == (404, "NoSuchObjectLockConfiguration")
